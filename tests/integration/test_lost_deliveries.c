/* Deliveries lost on their way to the gateway: JetStream counts them delivered to the
 * URI's durable, the gateway never got them (as when a NATS node dies with them in a
 * connection, or a stream's pull request outlives it). Here a "thief" pulls from the durable
 * and drops what it got, unacked: the same at the server. Unasked, the lost changes would
 * come back only after the ack wait (30 s here), behind newer ones, and a consumer applying
 * changes in arrival order would take its row back in time. The gateway asks them back
 * first, every time: a row updated thousands of times, one transaction each, must reach the
 * consumer with every new value exactly one more than the last new one. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "codec/bigendian.h"
#include "core/names.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define UPDATES 3000
#define WINDOW "20"
#define THEFTS 3

typedef struct row_view {
    bool seen[UPDATES + 1]; /* values of n received at least once */
    int64_t last_new;       /* the last value received for the first time (-1: none) */
    int copies, went_back;
} row_view;

static void write_updates(cap_env *e, int from, int to)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN FOR i IN %d..%d LOOP UPDATE t SET n = i WHERE id = 1; COMMIT; "
             "END LOOP; END $$",
             from, to);
    harness_exec(e->conn, sql);
}

/* Notes one received value in the view. */
static void note(row_view *v, const Pgcapture__CaptureMessage *m)
{
    const Pgcapture__Field *f = cap_field(m->change, "n");
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 8)
        unit_fail(__FILE__, __LINE__, "change without a binary int8 n");
    int64_t n = (int64_t)bigendian_get64(f->binary.data);
    if (n < 0 || n > UPDATES)
        unit_fail(__FILE__, __LINE__, "value %lld was never written", (long long)n);
    if (v->seen[n]) {
        v->copies++;
        return;
    }
    if (n != v->last_new + 1 && v->went_back++ < 5)
        printf("    new value %lld after %lld\n", (long long)n, (long long)v->last_new);
    v->seen[n] = true;
    if (n > v->last_new)
        v->last_new = n;
}

static void receive_until(cap_client *c, row_view *v, int64_t until)
{
    while (v->last_new < until) {
        Pgcapture__CaptureMessage *m = cap_recv(c, 60000);
        if (!m) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "no change for 60 s; last new value %lld",
                      (long long)v->last_new);
        }
        note(v, m);
        cap_ack(c, m->checkpoint, NULL);
    }
}

/* Receives without acking until nothing comes for a second (the gateway's window is
 * full, so it pulls nothing more); the messages, to ack later, into held. */
static int receive_unacked(cap_client *c, row_view *v, Pgcapture__CaptureMessage **held, int cap)
{
    int n = 0;
    Pgcapture__CaptureMessage *m;
    while ((m = cap_recv(c, 1000)) != NULL) {
        if (n == cap)
            unit_fail(__FILE__, __LINE__, "more than %d changes past a window of " WINDOW, cap);
        note(v, m);
        held[n++] = m;
    }
    return n;
}

/* Pulls up to `max` messages from the URI's durable and drops them unacked: how many;
 * *redelivered (may be NULL): how many of them were redeliveries. */
static int steal(const cap_env *e, int max, int *redelivered)
{
    char stream[128], durable[128], subject[160];
    if (names_stream(e->name, stream, sizeof stream) != 0 ||
        names_durable_from_uri(e->uri, durable, sizeof durable) != 0 ||
        names_log_subject(e->name, subject, sizeof subject) != 0)
        unit_fail(__FILE__, __LINE__, "bad names");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    jsErrCode jerr = 0;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr) != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot bind to consumer %s of %s (%d)", durable, stream,
                  (int)jerr);
    natsMsgList list = {NULL, 0};
    int got = 0;
    if (natsSubscription_Fetch(&list, sub, max, 2000, &jerr) == NATS_OK)
        got = list.Count;
    if (redelivered)
        *redelivered = 0;
    for (int i = 0; i < got && redelivered; i++) {
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, list.Msgs[i]) == NATS_OK && meta->NumDelivered > 1)
            (*redelivered)++;
        jsMsgMetaData_Destroy(meta);
    }
    natsMsgList_Destroy(&list);
    /* Destroy, not Unsubscribe: the durable stays. */
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return got;
}

static int count_log_lines(const cap_env *e, const char *what)
{
    FILE *f = fopen(e->gw_log, "r");
    if (!f)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

static void start(cap_env *e, row_view *v)
{
    /* Small log messages (about ten changes each), so that a theft takes a few. */
    const char *agent[] = {"--batch-size", "1kB", NULL};
    cap_setup_with(e, NULL, agent);
    /* A small window: the gateway pulls nothing more while the consumer holds it full. */
    kill(e->gw_pid, SIGKILL);
    waitpid(e->gw_pid, NULL, 0);
    const char *extra[] = {"--window", WINDOW, NULL};
    cap_start_gateway(e, extra);
    harness_exec(e->conn, "INSERT INTO t VALUES (1, 'row', 0)");
    write_updates(e, 1, UPDATES);
    v->last_new = -1; /* the insert's 0 comes first */
}

static void expect_every_value_once_in_order(const row_view *v)
{
    printf("    %d values received twice\n", v->copies);
    EXPECT_EQ_INT(0, v->went_back);
    for (int i = 0; i <= UPDATES; i++)
        if (!v->seen[i])
            unit_fail(__FILE__, __LINE__, "value %d never arrived", i);
}

/* Deliveries lost several times within seconds, under a live stream: each loss is asked
 * back before anything newer goes out. */
static void test_deliveries_lost_again_and_again_come_first_each_time(void)
{
    cap_env e;
    row_view *v = calloc(1, sizeof *v);
    unit_defer(free, v);
    start(&e, v);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    receive_until(c, v, 100);
    Pgcapture__CaptureMessage *held[256];
    for (int t = 0; t < THEFTS; t++) {
        int n = receive_unacked(c, v, held, 256);
        int stolen = steal(&e, 5, NULL);
        printf("    theft %d: %d log messages lost after value %lld (%d changes held)\n", t + 1,
               stolen, (long long)v->last_new, n);
        EXPECT_TRUE(stolen > 0);
        for (int i = 0; i < n; i++)
            cap_ack(c, held[i]->checkpoint, NULL);
    }
    receive_until(c, v, UPDATES);
    printf("    the gateway asked back lost deliveries %d times\n",
           count_log_lines(&e, "skipped: delivered to a reader that is gone"));
    expect_every_value_once_in_order(v);
}

/* A consumer leaves: its stream gives back what it held, and those redeliveries are lost
 * before the consumer's next stream opens. The next stream asks them back first. */
static void test_handed_back_changes_lost_before_the_next_stream_come_first(void)
{
    cap_env e;
    row_view *v = calloc(1, sizeof *v);
    unit_defer(free, v);
    start(&e, v);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    receive_until(c, v, 100);
    Pgcapture__CaptureMessage *held[256];
    int n = receive_unacked(c, v, held, 256);
    int handed = count_log_lines(&e, "unacked changes handed back");
    rpc_stream_cancel(c->st);
    long long until = harness_now_ms() + 30000;
    while (count_log_lines(&e, "unacked changes handed back") == handed) {
        if (harness_now_ms() > until)
            unit_fail(__FILE__, __LINE__, "the stream did not hand back within 30 s");
        harness_sleep_ms(50);
    }
    /* Everything the durable would deliver next, redeliveries first: lost. */
    int stolen = steal(&e, 200, NULL);
    printf("    %d changes held when the consumer left, %d log messages lost after\n", n, stolen);
    EXPECT_TRUE(stolen > 0);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    receive_until(c2, v, UPDATES);
    expect_every_value_once_in_order(v);
}

/* Lost, asked back, and lost again on their way back (redeliveries): asked back again,
 * although the log's sequences show no skip this time. */
static void test_lost_deliveries_lost_again_when_redelivered_come_first(void)
{
    cap_env e;
    row_view *v = calloc(1, sizeof *v);
    unit_defer(free, v);
    start(&e, v);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    receive_until(c, v, 100);
    Pgcapture__CaptureMessage *held[256];
    int n = receive_unacked(c, v, held, 256);
    int stolen = steal(&e, 8, NULL);
    EXPECT_TRUE(stolen > 0);
    for (int i = 0; i < n; i++)
        cap_ack(c, held[i]->checkpoint, NULL);
    /* The gateway asks them back, takes what its window has room for and stops: the rest
     * of what it asked back waits at the server, and is lost now. */
    n = receive_unacked(c, v, held, 256);
    int redelivered = 0;
    int again = steal(&e, 2, &redelivered);
    printf("    %d log messages lost, then %d of them again (%d lost in all the second time)\n",
           stolen, redelivered, again);
    EXPECT_TRUE(redelivered > 0);
    for (int i = 0; i < n; i++)
        cap_ack(c, held[i]->checkpoint, NULL);
    receive_until(c, v, UPDATES);
    expect_every_value_once_in_order(v);
}

UNIT_MAIN(UNIT_CASE(test_deliveries_lost_again_and_again_come_first_each_time),
          UNIT_CASE(test_lost_deliveries_lost_again_when_redelivered_come_first),
          UNIT_CASE(test_handed_back_changes_lost_before_the_next_stream_come_first))
