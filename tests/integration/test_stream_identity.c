/* A source's stream deleted and recreated (the agent restarted, writes going on) or purged
 * under its readers: the replica applier stops with what happened and what to do instead of
 * resuming at its stored sequence in a stream that numbers other messages, and a running
 * Capture stream ends with a status instead of reading the new stream as the old. Real
 * PostgreSQL, NATS, agent, applier and gateway. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"

#include <grpc/status.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pair {
    char src[512], rep[512], name[64], stream[160];
    char agent_log[512], replica_log[512];
    PGconn *s, *r;
    pid_t agent, replica;
} pair;

static void start_agent(pair *p)
{
    p->agent = harness_agent_start(p->src, p->name, NULL, p->agent_log, sizeof p->agent_log);
    harness_agent_wait_streaming(p->src, p->name, p->agent_log, 60000);
}

static void start_replica(pair *p, const char *extra)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(p->replica_log, sizeof p->replica_log, "%s/replica-%s.log", dir && *dir ? dir : "/tmp",
             p->name);
    const char *args[] = {"replica", "--replica", p->rep,        "--nats-url", harness_nats_url(),
                          "--name",  p->name,     "--log-level", "debug",      "--retry-max",
                          "500ms",   extra,       NULL};
    p->replica = harness_spawn(p->replica_log, args);
}

static void setup(pair *p)
{
    memset(p, 0, sizeof *p);
    harness_db_create(true, p->src, sizeof p->src);
    harness_replica_db_create(true, p->rep, sizeof p->rep);
    harness_unique_name(p->name, sizeof p->name);
    snprintf(p->stream, sizeof p->stream, "PGCAPTURE_%s", p->name);
    p->s = harness_connect(p->src);
    p->r = harness_connect(p->rep);
    start_agent(p);
    harness_exec(p->s, "CREATE TABLE r (id int PRIMARY KEY)");
}

/* Rows from..to, one transaction (so about one NATS message) each. */
static void insert_rows(PGconn *c, const char *table, int from, int to)
{
    for (int id = from; id <= to; id++) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%d)", table, id);
        harness_exec(c, sql);
    }
}

/* The count and sum of r's ids ("" while r does not exist). */
static void summary(PGconn *c, char *out, size_t len)
{
    PGresult *r = PQexec(c, "SELECT count(*) || ':' || coalesce(sum(id), 0) FROM r");
    snprintf(out, len, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

/* The replica holds exactly the source's rows of r. */
static bool converged(pair *p)
{
    char a[64], b[64];
    summary(p->s, a, sizeof a);
    summary(p->r, b, sizeof b);
    return a[0] && !strcmp(a, b);
}

static void wait_converged(pair *p, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (!converged(p)) {
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(p->replica_log, 30);
            unit_fail(__FILE__, __LINE__, "replica did not converge in %d ms", timeout_ms);
        }
        harness_sleep_ms(100);
    }
}

static bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void expect_log(const char *path, const char *needle)
{
    if (log_has(path, needle))
        return;
    harness_print_log_tail(path, 30);
    unit_fail(__FILE__, __LINE__, "log %s never said \"%s\"", path, needle);
}

/* Inserts row `id` into r and waits until the agent confirmed its transaction to PostgreSQL,
 * which it does only once the stream holds it. */
static void wait_published(pair *p, int id)
{
    char sql[320];
    harness_exec(p->s, "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO r VALUES (%d)", id);
    harness_exec(p->s, sql);
    char *lsn = harness_query_value(p->s, "SELECT pg_current_wal_insert_lsn()::text");
    harness_exec(p->s, "COMMIT");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s' AND "
             "confirmed_flush_lsn >= '%s'",
             p->name, lsn);
    long long deadline = harness_now_ms() + 30000;
    while (harness_query_int(p->s, sql) != 1) {
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(p->agent_log, 20);
            unit_fail(__FILE__, __LINE__, "the agent did not publish row %d in 30 s", id);
        }
        harness_sleep_ms(50);
    }
}

/* Runs one JetStream admin call on the test NATS. */
typedef enum { STREAM_DELETE, STREAM_PURGE } stream_op;

static void stream_admin(const char *stream, stream_op op)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    EXPECT_EQ_INT(NATS_OK, natsConnection_ConnectTo(&nc, harness_nats_url()));
    EXPECT_EQ_INT(NATS_OK, natsConnection_JetStream(&js, nc, NULL));
    natsStatus ns = op == STREAM_DELETE ? js_DeleteStream(js, stream, NULL, NULL)
                                        : js_PurgeStream(js, stream, NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    EXPECT_EQ_INT(NATS_OK, ns);
}

/* The agent stopped, its stream deleted, the agent started again: it creates a new stream
 * and publishes from its slot's confirmed position. */
static void recreate_stream(pid_t *agent, const char *src, const char *name, const char *stream,
                            char *agent_log, size_t agent_log_len)
{
    kill(*agent, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(*agent, 30000));
    stream_admin(stream, STREAM_DELETE);
    *agent = harness_agent_start(src, name, NULL, agent_log, agent_log_len);
    harness_agent_wait_streaming(src, name, agent_log, 60000);
}

/* The applier is down while its stream is recreated and written to past the sequence it
 * stored: it stops, naming the stream, and reads the new one only when told to. */
static void test_applier_stops_on_a_stream_recreated_while_it_was_down(void)
{
    pair p;
    setup(&p);
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 1, 20);
    wait_converged(&p, 30000);
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    recreate_stream(&p.agent, p.src, p.name, p.stream, p.agent_log, sizeof p.agent_log);
    /* More messages than the old stream had: its stored sequence exists in the new one. */
    insert_rows(p.s, "r", 21, 80);
    start_replica(&p, NULL);
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    expect_log(p.replica_log, "is not the one this replica was reading");
    expect_log(p.replica_log, "--accept-new-stream");
    /* Told to: the new stream holds everything after the replica's position (the agent
     * published again from its slot), read from its first message. */
    start_replica(&p, "--accept-new-stream");
    wait_converged(&p, 60000);
    insert_rows(p.s, "r", 81, 85);
    wait_converged(&p, 30000);
    /* And from then on the new stream is the replica's own: a restart just resumes. */
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 86, 90);
    wait_converged(&p, 30000);
    EXPECT_TRUE(kill(p.replica, 0) == 0);
}

/* The stream is recreated under a running applier: the same. */
static void test_running_applier_stops_on_a_stream_recreated_under_it(void)
{
    pair p;
    setup(&p);
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 1, 20);
    wait_converged(&p, 30000);
    recreate_stream(&p.agent, p.src, p.name, p.stream, p.agent_log, sizeof p.agent_log);
    insert_rows(p.s, "r", 21, 80);
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    expect_log(p.replica_log, "is not the one this replica was reading");
}

/* The length of the stored position's `mid` (the stream sequence, then its identity). */
static long long mid_len(pair *p)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(length(mid), 0) FROM pgcapture.sources WHERE id = '%s'", p->name);
    return harness_query_int(p->r, sql);
}

/* A position stored before identities were (its mid only the sequence) adopts the stream's
 * identity once, saying so; and with none stored, a recreated stream is still caught by its
 * message at the stored sequence, which holds other positions. */
static void test_a_position_without_identity_adopts_it_and_is_still_checked(void)
{
    pair p;
    setup(&p);
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 1, 20);
    wait_converged(&p, 30000);
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    EXPECT_EQ_INT(16, mid_len(&p));
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE pgcapture.sources SET mid = substring(mid FROM 1 FOR 8)");
    harness_exec(p.r, sql);
    start_replica(&p, NULL);
    long long deadline = harness_now_ms() + 30000;
    while (!log_has(p.replica_log, "adopting the stream's") && harness_now_ms() < deadline)
        harness_sleep_ms(50);
    expect_log(p.replica_log, "adopting the stream's");
    insert_rows(p.s, "r", 21, 25);
    wait_converged(&p, 30000);
    EXPECT_EQ_INT(16, mid_len(&p));
    /* Old again, then the stream recreated and written to past the stored sequence. */
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    harness_exec(p.r, sql);
    recreate_stream(&p.agent, p.src, p.name, p.stream, p.agent_log, sizeof p.agent_log);
    insert_rows(p.s, "r", 26, 100);
    start_replica(&p, NULL);
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    expect_log(p.replica_log, "is not the one this replica was reading");
    EXPECT_EQ_INT(8, mid_len(&p));
}

/* A stream purged while the applier was stopped behind it, then written to: it stops
 * instead of going on after the hole. */
static void test_applier_stops_on_a_stream_purged_past_its_position(void)
{
    pair p;
    setup(&p);
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 1, 5);
    wait_converged(&p, 30000);
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    insert_rows(p.s, "r", 6, 9);
    wait_published(&p, 10);
    stream_admin(p.stream, STREAM_PURGE);
    insert_rows(p.s, "r", 11, 15);
    start_replica(&p, NULL);
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    expect_log(p.replica_log, "what lies between is gone (retention, or a purge)");
    EXPECT_EQ_INT(5, harness_query_int(p.r, "SELECT count(*) FROM r"));
}

/* The log stream is recreated under a running Capture stream: the stream ends with ABORTED
 * and a log line (its durable went with the old stream), and the next stream of the URI
 * reads the new log. */
static void test_capture_stream_ends_when_its_log_stream_is_recreated(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 5, false);
    Pgcapture__CaptureMessage *got[5];
    cap_recv_n(c, got, 5, 30000);
    for (int i = 0; i < 5; i++)
        cap_ack(c, got[i]->checkpoint, NULL);
    cap_wait_acked(&e, e.uri, 5);
    char stream[160];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s", e.name);
    recreate_stream(&e.agent_pid, e.db, e.name, stream, e.agent_log, sizeof e.agent_log);
    cap_insert_rows(&e, 6, 10, false);
    int code = cap_wait_end(c, 30000);
    if (code != GRPC_STATUS_ABORTED)
        cap_show_gateway_log();
    EXPECT_EQ_INT(GRPC_STATUS_ABORTED, code);
    expect_log(e.gw_log, "the log stream changed under a stream");
    /* A client that connects again gets the new stream's changes. */
    cap_client *d = cap_open(e.addr, e.uri, NULL);
    bool seen10 = false;
    long long deadline = harness_now_ms() + 30000;
    while (!seen10 && harness_now_ms() < deadline) {
        Pgcapture__CaptureMessage *m = cap_recv(d, 1000);
        if (!m)
            continue;
        seen10 = cap_id_of(m->change) == 10;
        cap_ack(d, m->checkpoint, NULL);
    }
    if (!seen10)
        cap_show_gateway_log();
    EXPECT_TRUE(seen10);
}

/* A message JetStream delivered into a connection that then died (its NATS node killed) is
 * pending for the ack wait and never reaches the applier, whose next fetch skips it: the
 * stream still holds it, so nothing is lost, and the applier reads again from its stored
 * position instead of stopping as if retention had removed it. Here another connection
 * takes the message from the applier's durable while the applier is stopped, and closes. */
static void test_a_message_delivered_into_a_dead_connection_is_read_again_not_called_lost(void)
{
    pair p;
    setup(&p);
    start_replica(&p, NULL);
    insert_rows(p.s, "r", 1, 1);
    wait_converged(&p, 30000);
    kill(p.replica, SIGSTOP);
    harness_sleep_ms(1500); /* its waiting pull request expires (500 ms) */
    char subject[160];
    snprintf(subject, sizeof subject, "pgcapture.%s.log", p.name);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsConsumerNamesList *names = NULL;
    natsSubscription *sub = NULL;
    natsMsgList got = {0};
    EXPECT_EQ_INT(NATS_OK, natsConnection_ConnectTo(&nc, harness_nats_url()));
    EXPECT_EQ_INT(NATS_OK, natsConnection_JetStream(&js, nc, NULL));
    EXPECT_EQ_INT(NATS_OK, js_ConsumerNames(&names, js, p.stream, NULL, NULL));
    if (!names || names->Count != 1)
        unit_fail(__FILE__, __LINE__, "expected the applier's durable alone on %s", p.stream);
    insert_rows(p.s, "r", 2, 2);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = p.stream;
    so.Consumer = names->List[0];
    EXPECT_EQ_INT(NATS_OK, js_PullSubscribe(&sub, js, subject, names->List[0], NULL, &so, NULL));
    EXPECT_EQ_INT(NATS_OK, natsSubscription_Fetch(&got, sub, 1, 10000, NULL));
    EXPECT_EQ_INT(1, got.Count);
    natsMsgList_Destroy(&got); /* not acked: pending for the ack wait */
    natsSubscription_Destroy(sub);
    jsConsumerNamesList_Destroy(names);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    insert_rows(p.s, "r", 3, 3);
    kill(p.replica, SIGCONT);
    wait_converged(&p, 30000);
    EXPECT_TRUE(kill(p.replica, 0) == 0); /* still running */
    expect_log(p.replica_log, "reading again from the stored position");
}

UNIT_MAIN(UNIT_CASE(test_applier_stops_on_a_stream_recreated_while_it_was_down),
          UNIT_CASE(test_running_applier_stops_on_a_stream_recreated_under_it),
          UNIT_CASE(test_a_position_without_identity_adopts_it_and_is_still_checked),
          UNIT_CASE(test_applier_stops_on_a_stream_purged_past_its_position),
          UNIT_CASE(test_capture_stream_ends_when_its_log_stream_is_recreated),
          UNIT_CASE(test_a_message_delivered_into_a_dead_connection_is_read_again_not_called_lost))
