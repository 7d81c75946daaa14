/* The durable pull reader (jetstream/jssub) against a real NATS server. A pull request can
 * outlive the fetch that sent it: when the server answers late, the fetch gives up and the
 * request still takes messages into the subscription. jssub_drain hands such messages over
 * instead of leaving them to the ack wait. The server is paused (SIGSTOP) to answer late. */
#include "core/names.h"
#include "core/status.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "jetstream/jsconn.h"
#include "jetstream/jssub.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define ACK_WAIT_MS 30000

static pid_t nats_pid(void)
{
    const char *dir = getenv("NATSTMP_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/nats.pid", dir ? dir : "");
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0)
        unit_fail(__FILE__, __LINE__, "no nats-server pid in %s: run via tests/run", path);
    fclose(f);
    return (pid_t)pid;
}

static void close_conn(void *arg)
{
    jsconn_destroy(arg);
}

static void close_sub(void *arg)
{
    jssub_destroy(arg);
}

static void resume_nats(void *arg)
{
    kill(*(pid_t *)arg, SIGCONT);
}

typedef struct taken {
    jssub_msg *m[8];
    int n;
} taken;

static void take(void *arg, jssub_msg *m)
{
    taken *t = arg;
    if (t->n < 8)
        t->m[t->n++] = m;
    else
        jssub_msg_destroy(m);
}

static void test_a_drained_reader_hands_over_what_a_late_pull_request_brought(void)
{
    char name[64], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], err[512] = "";
    harness_unique_name(name, sizeof name);
    names_stream(name, stream, sizeof stream);
    names_log_subject(name, subject, sizeof subject);
    jsconn *c = NULL;
    if (jsconn_open(harness_nats_url(), &c, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "jsconn_open: %s", err);
    unit_defer(close_conn, c);
    EXPECT_EQ_INT(PGC_OK, jsconn_ensure_stream(c, stream, subject, NULL, err, sizeof err));
    jssub_config cfg = {harness_nats_url(), stream, subject, "reader", ACK_WAIT_MS, 100};
    jssub *a = NULL, *b = NULL;
    EXPECT_EQ_INT(PGC_OK, jssub_create(&cfg, &a, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jssub_create(&cfg, &b, err, sizeof err));
    /* Messages are acked through their reader's connection: both live to the end. */
    unit_defer(close_sub, a);
    unit_defer(close_sub, b);
    /* The server takes A's pull request only after A's fetch gave up. */
    static pid_t pid;
    pid = nats_pid();
    EXPECT_EQ_INT(0, kill(pid, SIGSTOP));
    unit_defer(resume_nats, &pid);
    jssub_msg *got[8];
    EXPECT_EQ_INT(0, jssub_fetch(a, got, 8, 300, err, sizeof err));
    EXPECT_EQ_INT(0, kill(pid, SIGCONT));
    /* The message goes to the only request waiting: A's, into A's subscription (given the
     * time to get there: either way it must not wait for the ack wait below). */
    EXPECT_EQ_INT(PGC_OK,
                  jsconn_publish(c, subject, (const uint8_t *)"one", 3, NULL, 0, err, sizeof err));
    harness_sleep_ms(200);
    taken t = {{NULL}, 0};
    int n = jssub_drain(a, take, &t, 5000, err, sizeof err);
    if (n < 0)
        unit_fail(__FILE__, __LINE__, "jssub_drain: %s", err);
    EXPECT_EQ_INT(t.n, n);
    /* What A did not hand over reaches B at once, not after the ack wait. */
    long long until = harness_now_ms() + 5000;
    while (t.n == 0 && harness_now_ms() < until) {
        int k = jssub_fetch(b, got, 8, 200, err, sizeof err);
        for (int i = 0; i < k; i++)
            take(&t, got[i]);
    }
    EXPECT_EQ_INT(1, t.n);
    EXPECT_EQ_UINT(1, jssub_msg_stream_seq(t.m[0]));
    EXPECT_EQ_MEM("one", 3, jssub_msg_data(t.m[0]), jssub_msg_len(t.m[0]));
    for (int i = 0; i < t.n; i++) {
        EXPECT_EQ_INT(PGC_OK, jssub_ack(t.m[i], true, err, sizeof err));
        jssub_msg_destroy(t.m[i]);
    }
    /* Nothing else was delivered twice, and the durable is still there for B. */
    EXPECT_EQ_INT(PGC_OK,
                  jsconn_publish(c, subject, (const uint8_t *)"two", 3, NULL, 0, err, sizeof err));
    int k = 0;
    until = harness_now_ms() + 5000;
    while (k == 0 && harness_now_ms() < until)
        k = jssub_fetch(b, got, 8, 200, err, sizeof err);
    EXPECT_EQ_INT(1, k);
    EXPECT_EQ_UINT(2, jssub_msg_stream_seq(got[0]));
    jssub_ack(got[0], true, err, sizeof err);
    jssub_msg_destroy(got[0]);
}

UNIT_MAIN(UNIT_CASE(test_a_drained_reader_hands_over_what_a_late_pull_request_brought))
