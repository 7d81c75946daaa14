/* A gateway killed with kill -9 in the middle of a stream: the changes it had fetched from
 * the URI's durable and not got acked come again first, in log order, to the next stream of
 * the URI, not after the ack wait behind newer ones. A consumer that applies changes in
 * arrival order therefore never takes a row back in time (it may see some twice: at least
 * once). The row here is updated thousands of times, one transaction each, so every new
 * value must be exactly one more than the last new one; half the updates come after the
 * kill, so the log holds newer changes than the dead stream had taken. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/rowview.h"
#include "rpc/client.h"
#include "core/names.h"

#include "pgcapture.pb-c.h"

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define UPDATES 10000
#define RECEIVED_BEFORE_KILL 1000

/* How many messages the URI's durable delivered and nobody acked. */
static int64_t unacked_of(const cap_env *e)
{
    char stream[128], durable[128];
    if (names_stream(e->name, stream, sizeof stream) != 0 ||
        names_durable_from_uri(e->uri, durable, sizeof durable) != 0)
        unit_fail(__FILE__, __LINE__, "bad names");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsConsumerInfo *ci = NULL;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_GetConsumerInfo(&ci, js, stream, durable, NULL, NULL) != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot read consumer %s of %s", durable, stream);
    int64_t n = ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return n;
}

static void test_a_row_updated_many_times_never_goes_back_across_a_gateway_kill(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    row_view *v = row_view_create(UPDATES);
    harness_exec(e.conn, "INSERT INTO t VALUES (1, 'row', 0)");
    row_view_write_updates(e.conn, 1, UPDATES / 2);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    row_view_receive_until(c, v, RECEIVED_BEFORE_KILL);
    kill(e.gw_pid, SIGKILL);
    waitpid(e.gw_pid, NULL, 0);
    /* The dead gateway held changes it had fetched and not got acked: what this case is
     * about (they stay unacked for the ack wait, 30 s). */
    int64_t unacked = unacked_of(&e);
    printf("    gateway killed after value %lld, %lld log messages unacked\n",
           (long long)row_view_last_new(v), (long long)unacked);
    EXPECT_TRUE(unacked > 0);
    cap_start_gateway(&e, NULL);
    row_view_write_updates(e.conn, UPDATES / 2 + 1, UPDATES);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    row_view_receive_until(c2, v, UPDATES);
    row_view_expect_all_in_order(v);
}

/* The consumer dies instead (its stream cancelled), after the gateway took its acks: the
 * gateway gives the batches it held back to the durable whole, in log order, and the next
 * consumer gets what was not acked first and nothing that was. */
static void test_a_row_updated_many_times_never_goes_back_across_a_consumer_death(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    row_view *v = row_view_create(UPDATES);
    harness_exec(e.conn, "INSERT INTO t VALUES (1, 'row', 0)");
    row_view_write_updates(e.conn, 1, UPDATES / 2);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    row_view_receive_until(c, v, RECEIVED_BEFORE_KILL);
    cap_wait_acked(&e, e.uri, RECEIVED_BEFORE_KILL + 1);
    rpc_stream_cancel(c->st);
    /* Newer changes in the log than the dead stream had taken. */
    row_view_write_updates(e.conn, UPDATES / 2 + 1, UPDATES);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    row_view_receive_until(c2, v, UPDATES);
    row_view_expect_all_in_order(v);
    EXPECT_EQ_INT(0, row_view_copies(v)); /* acked changes never come back */
}

UNIT_MAIN(UNIT_CASE(test_a_row_updated_many_times_never_goes_back_across_a_gateway_kill),
          UNIT_CASE(test_a_row_updated_many_times_never_goes_back_across_a_consumer_death))
