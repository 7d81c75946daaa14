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
#include "harness/rowview.h"
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
#define HELD_MAX 256
#define THEFTS 3

/* Receives without acking until nothing comes for a second (the gateway's window is
 * full, so it pulls nothing more); the messages, to ack later, into held. */
static int receive_unacked(cap_client *c, row_view *v, Pgcapture__CaptureMessage **held)
{
    int n = 0;
    Pgcapture__CaptureMessage *m;
    while ((m = cap_recv(c, 1000)) != NULL) {
        if (n == HELD_MAX)
            unit_fail(__FILE__, __LINE__, "more than %d changes past a window of " WINDOW,
                      HELD_MAX);
        row_view_note(v, m->change);
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

/* With the gateway's window full: `max` of what the durable delivers next are lost, then
 * the consumer acks what it held. How many were lost; *redelivered (may be NULL): how many
 * of them were redeliveries. */
static int lose_next(const cap_env *e, cap_client *c, row_view *v, int max, int *redelivered)
{
    Pgcapture__CaptureMessage *held[HELD_MAX];
    int n = receive_unacked(c, v, held);
    int stolen = steal(e, max, redelivered);
    printf("    %d log messages lost after value %lld (%d changes held)\n", stolen,
           (long long)row_view_last_new(v), n);
    EXPECT_TRUE(stolen > 0);
    for (int i = 0; i < n; i++)
        cap_ack(c, held[i]->checkpoint, NULL);
    return stolen;
}

/* The row updated UPDATES times in a log of small messages (about ten changes each, so that
 * a theft takes a few), a gateway with a small window (it pulls nothing more while the
 * consumer holds it full), and a consumer that has received the first 100 values. */
static cap_client *start(cap_env *e, row_view **v)
{
    const char *agent[] = {"--batch-size", "1kB", NULL};
    cap_setup_with(e, NULL, agent);
    kill(e->gw_pid, SIGKILL);
    waitpid(e->gw_pid, NULL, 0);
    const char *extra[] = {"--window", WINDOW, NULL};
    cap_start_gateway(e, extra);
    harness_exec(e->conn, "INSERT INTO t VALUES (1, 'row', 0)");
    row_view_write_updates(e->conn, 1, UPDATES);
    *v = row_view_create(UPDATES);
    cap_client *c = cap_open(e->addr, e->uri, NULL);
    row_view_receive_until(c, *v, 100);
    return c;
}

/* Deliveries lost several times within seconds, under a live stream: each loss is asked
 * back before anything newer goes out. */
static void test_deliveries_lost_again_and_again_come_first_each_time(void)
{
    cap_env e;
    row_view *v;
    cap_client *c = start(&e, &v);
    for (int t = 0; t < THEFTS; t++)
        lose_next(&e, c, v, 5, NULL);
    row_view_receive_until(c, v, UPDATES);
    printf("    the gateway asked back lost deliveries %d times\n",
           count_log_lines(&e, "skipped: delivered to a reader that is gone"));
    row_view_expect_all_in_order(v);
}

/* Lost, asked back, and lost again on their way back (redeliveries): asked back again,
 * although the log's sequences show no skip this time. */
static void test_lost_deliveries_lost_again_when_redelivered_come_first(void)
{
    cap_env e;
    row_view *v;
    cap_client *c = start(&e, &v);
    lose_next(&e, c, v, 8, NULL);
    /* The gateway asks them back, takes what its window has room for and stops: the rest
     * of what it asked back waits at the server, and is lost now. */
    int redelivered = 0;
    lose_next(&e, c, v, 2, &redelivered);
    printf("    %d of them redeliveries\n", redelivered);
    EXPECT_TRUE(redelivered > 0);
    row_view_receive_until(c, v, UPDATES);
    row_view_expect_all_in_order(v);
}

/* A consumer leaves: its stream gives back what it held, and those redeliveries are lost
 * before the consumer's next stream opens. The next stream asks them back first. */
static void test_handed_back_changes_lost_before_the_next_stream_come_first(void)
{
    cap_env e;
    row_view *v;
    cap_client *c = start(&e, &v);
    Pgcapture__CaptureMessage *held[HELD_MAX];
    int n = receive_unacked(c, v, held);
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
    row_view_receive_until(c2, v, UPDATES);
    row_view_expect_all_in_order(v);
}

UNIT_MAIN(UNIT_CASE(test_deliveries_lost_again_and_again_come_first_each_time),
          UNIT_CASE(test_lost_deliveries_lost_again_when_redelivered_come_first),
          UNIT_CASE(test_handed_back_changes_lost_before_the_next_stream_come_first))
