/* The gateway against real PostgreSQL, NATS and agent: rows committed on the source reach
 * a Capture client with identical values; acks remove them, a requeue brings back exactly
 * that change, a consumer that dies gets its unacked changes again, two consumers of one
 * URI share the work, TableRegex filters, bad input gets the status docs/protocol.md names, and
 * pgcapture's Python client works unchanged. The client here is a tiny one on src/rpc and
 * protobuf-c, so that every ack and requeue is under the test's control. */
#include "harness/runner.h"
#include "codec/bigendian.h"
#include "harness/fixtures.h"
#include "harness/scrape.h"
#include "core/names.h"
#include "core/status.h"
#include "roles/gateway/retry_stream.h"
#include "rpc/client.h"

#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAPTURE "/pgcapture.DBLogGateway/Capture"

/* ---- environment: source db, agent, gateway ----------------------------------------- */

typedef struct gw_env {
    char db[512];
    char name[64];
    char uri[80];
    char agent_log[512], gw_log[512], conf[512];
    pid_t gw_pid;
    char addr[64];
    int metrics_port;
    PGconn *conn;
} gw_env;

static const char *g_gw_log; /* the current gateway's log, shown when a case fails */

static void show_gateway_log(void)
{
    if (g_gw_log)
        harness_print_log_tail(g_gw_log, 40);
}

static void delete_retry_stream(void *arg)
{
    char *name = arg;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    char stream[128];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s_RETRY", name);
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        js_DeleteStream(js, stream, NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(name);
}

static void start_gateway(gw_env *e, const char *const *extra)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(e->gw_log, sizeof e->gw_log, "%s/gateway-%s.log", dir && *dir ? dir : "/tmp", e->name);
    const char *args[32] = {
        "gateway",    "--uri-config",     e->conf,       "--listen", "127.0.0.1:0",
        "--nats-url", harness_nats_url(), "--log-level", "debug",    "--retry-delay",
        "300ms",      "--metrics-listen", "127.0.0.1:0", NULL};
    int n = 0;
    while (args[n])
        n++;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    /* The log is appended to: remember where this run starts. */
    struct stat st;
    long offset = stat(e->gw_log, &st) == 0 ? (long)st.st_size : 0;
    e->gw_pid = harness_spawn(e->gw_log, args);
    g_gw_log = e->gw_log;
    long long until = harness_now_ms() + 15000;
    while (harness_now_ms() < until) {
        FILE *f = fopen(e->gw_log, "r");
        char line[1024];
        if (f) {
            fseek(f, offset, SEEK_SET);
            while (fgets(line, sizeof line, f)) {
                const char *m = strstr(line, "serving metrics");
                if (m && strstr(m, "port="))
                    e->metrics_port = atoi(strstr(m, "port=") + 5);
                const char *p = strstr(line, "gateway listening");
                const char *q = p ? strstr(p, "port=") : NULL;
                if (q) {
                    snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", atoi(q + 5));
                    fclose(f);
                    return;
                }
            }
            fclose(f);
        }
        harness_sleep_ms(20);
    }
    harness_print_log_tail(e->gw_log, 30);
    unit_fail(__FILE__, __LINE__, "gateway did not start listening");
}

/* A source with table t (id int primary key, v text, n int8), its agent streaming, and a
 * gateway whose config knows URI "<name>-uri" (and "<name>-other", same source). */
static void setup(gw_env *e, const char *extra_sql)
{
    memset(e, 0, sizeof *e);
    harness_db_create(false, e->db, sizeof e->db);
    e->conn = harness_connect(e->db);
    harness_exec(e->conn, "CREATE TABLE t (id int PRIMARY KEY, v text, n int8)");
    if (extra_sql)
        harness_exec(e->conn, extra_sql);
    harness_unique_name(e->name, sizeof e->name);
    unit_defer(delete_retry_stream, strdup(e->name));
    snprintf(e->uri, sizeof e->uri, "%s-uri", e->name);
    harness_agent_start(e->db, e->name, NULL, e->agent_log, sizeof e->agent_log);
    harness_agent_wait_streaming(e->db, e->name, e->agent_log, 60000);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(e->conf, sizeof e->conf, "%s/gateway-%s.conf", dir && *dir ? dir : "/tmp", e->name);
    FILE *f = fopen(e->conf, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", e->conf);
    fprintf(f,
            "# test resolver\n[%s]\nsource = %s\n\n[%s-other]\nsource = %s\ndurable = other_%s\n",
            e->uri, e->name, e->name, e->name, e->name);
    fclose(f);
    start_gateway(e, NULL);
}

/* ---- a minimal Capture client ---------------------------------------------------------- */

typedef struct client {
    rpc_channel *ch;
    rpc_stream *st;
} client;

static void client_free(void *arg)
{
    client *c = arg;
    rpc_stream_destroy(c->st);
    rpc_channel_destroy(c->ch);
    free(c);
}

static void send_request(client *c, const Pgcapture__CaptureRequest *req)
{
    size_t n = pgcapture__capture_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    pgcapture__capture_request__pack(req, buf);
    char err[256];
    int rc = rpc_stream_send(c->st, buf, n, err, sizeof err);
    free(buf);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "send failed: %s", err);
}

static client *client_open_raw(const char *addr)
{
    client *c = calloc(1, sizeof *c);
    char err[256];
    if (rpc_channel_create(addr, &c->ch, err, sizeof err) != 0 ||
        rpc_stream_open(c->ch, CAPTURE, &c->st, err, sizeof err) != 0)
        unit_fail(__FILE__, __LINE__, "cannot open Capture on %s: %s", addr, err);
    unit_defer(client_free, c);
    return c;
}

/* Init with TableRegex when `regex` is given and Truncate: true when `truncate`. */
static void send_init_params(client *c, const char *uri, const char *regex, bool truncate)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry tentry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Value val = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Value tval = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[2];
    init.uri = (char *)uri;
    if (regex) {
        val.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        val.string_value = (char *)regex;
        entry.key = "TableRegex";
        entry.value = &val;
        entries[params.n_fields++] = &entry;
    }
    if (truncate) {
        tval.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        tval.bool_value = 1;
        tentry.key = "Truncate";
        tentry.value = &tval;
        entries[params.n_fields++] = &tentry;
    }
    if (params.n_fields) {
        params.fields = entries;
        init.parameters = &params;
    }
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    send_request(c, &req);
}

static void send_init(client *c, const char *uri, const char *regex)
{
    send_init_params(c, uri, regex, false);
}

static client *client_open(const char *addr, const char *uri, const char *regex)
{
    client *c = client_open_raw(addr);
    send_init(c, uri, regex);
    return c;
}

static void free_msg(void *arg)
{
    pgcapture__capture_message__free_unpacked(arg, NULL);
}

/* The next change, or NULL after timeout_ms; fails the case when the stream ends. */
static Pgcapture__CaptureMessage *client_recv(client *c, int timeout_ms)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256];
    int rc = rpc_stream_recv(c->st, timeout_ms, &data, &len, err, sizeof err);
    if (rc == PGC_ERR_TIMEOUT)
        return NULL;
    if (rc == 0) {
        const char *m = NULL;
        int code = rpc_stream_status(c->st, &m);
        show_gateway_log();
        unit_fail(__FILE__, __LINE__, "stream ended: status %d %s", code, m ? m : "");
    }
    if (rc != 1)
        unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
    Pgcapture__CaptureMessage *msg = pgcapture__capture_message__unpack(NULL, len, data);
    free(data);
    if (!msg || !msg->checkpoint || !msg->change)
        unit_fail(__FILE__, __LINE__, "not a CaptureMessage with checkpoint and change");
    unit_defer(free_msg, msg);
    return msg;
}

/* Waits for the stream's end; returns its gRPC status code. */
static int client_wait_end(client *c, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        uint8_t *data = NULL;
        size_t len = 0;
        char err[256];
        int left = (int)(until - harness_now_ms());
        if (left <= 0)
            unit_fail(__FILE__, __LINE__, "stream did not end within %d ms", timeout_ms);
        int rc = rpc_stream_recv(c->st, left, &data, &len, err, sizeof err);
        free(data);
        if (rc == 0) {
            const char *m = NULL;
            return rpc_stream_status(c->st, &m);
        }
        if (rc < 0 && rc != PGC_ERR_TIMEOUT)
            unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
    }
}

static void client_ack(client *c, const Pgcapture__Checkpoint *cp, const char *requeue)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint copy = *cp;
    ack.checkpoint = &copy;
    if (requeue)
        ack.requeue_reason = (char *)requeue;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    send_request(c, &req);
}

/* Waits until the gateway has taken `n` acks of `uri` in all: acks are fire-and-forget on
 * the wire, and a consumer that leaves right after acking must not leave before they land. */
static void wait_acked(const gw_env *e, const char *uri, int n)
{
    char series[200];
    snprintf(series, sizeof series, "pgcapture_gateway_changes_acked_total{uri=\"%s\"}", uri);
    harness_metric_wait(e->metrics_port, series, n, 20000);
}

static const Pgcapture__Field *field(const Pgcapture__Change *c, const char *name)
{
    for (size_t i = 0; i < c->n_new_; i++)
        if (strcmp(c->new_[i]->name, name) == 0)
            return c->new_[i];
    return NULL;
}

static int32_t id_of(const Pgcapture__Change *c)
{
    const Pgcapture__Field *f = field(c, "id");
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 4)
        unit_fail(__FILE__, __LINE__, "change without a binary int4 id");
    const uint8_t *p = f->binary.data;
    return (int32_t)bigendian_get32(p);
}

/* Receives exactly `n` changes (failing after timeout_ms). */
static void recv_n(client *c, Pgcapture__CaptureMessage **out, int n, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (int i = 0; i < n;) {
        if (harness_now_ms() > until) {
            show_gateway_log();
            unit_fail(__FILE__, __LINE__, "got %d changes of %d", i, n);
        }
        Pgcapture__CaptureMessage *m = client_recv(c, 500);
        if (m)
            out[i++] = m;
    }
}

/* Nothing more arrives within ms. */
static void expect_quiet(client *c, int ms)
{
    Pgcapture__CaptureMessage *m = client_recv(c, ms);
    if (m)
        show_gateway_log();
    if (m)
        unit_fail(__FILE__, __LINE__, "unexpected change: table %s id %d", m->change->table,
                  field(m->change, "id") ? id_of(m->change) : -1);
}

static void insert_rows(gw_env *e, int from, int to, bool one_txn)
{
    char sql[256];
    if (one_txn)
        harness_exec(e->conn, "BEGIN");
    for (int i = from; i <= to; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, 'row %d', %lld)", i, i,
                 (long long)i * 10000000000LL);
        harness_exec(e->conn, sql);
    }
    if (one_txn)
        harness_exec(e->conn, "COMMIT");
}

/* ---- cases -------------------------------------------------------------------------------- */

static void test_gateway_delivers_rows_with_identical_values(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    harness_exec(e.conn, "INSERT INTO t VALUES (1, 'héllo', -5), (2, NULL, 9000000000)");
    harness_exec(e.conn, "UPDATE t SET v = 'changed' WHERE id = 1");
    harness_exec(e.conn, "DELETE FROM t WHERE id = 2");
    Pgcapture__CaptureMessage *m[4];
    recv_n(c, m, 4, 20000);
    EXPECT_EQ_STR("public", m[0]->change->schema);
    EXPECT_EQ_STR("t", m[0]->change->table);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, m[0]->change->op);
    EXPECT_EQ_INT(1, id_of(m[0]->change));
    const Pgcapture__Field *v = field(m[0]->change, "v");
    EXPECT_TRUE(v && v->value_case == PGCAPTURE__FIELD__VALUE_BINARY);
    EXPECT_EQ_MEM("h\xc3\xa9llo", 6, v->binary.data, v->binary.len);
    EXPECT_EQ_UINT(25, v->oid);
    const Pgcapture__Field *n = field(m[0]->change, "n");
    EXPECT_TRUE(n && n->binary.len == 8);
    EXPECT_EQ_MEM("\xff\xff\xff\xff\xff\xff\xff\xfb", 8, n->binary.data, n->binary.len);
    EXPECT_EQ_INT(2, id_of(m[1]->change));
    v = field(m[1]->change, "v");
    EXPECT_TRUE(v && v->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET); /* SQL NULL */
    n = field(m[1]->change, "n");
    EXPECT_EQ_MEM("\x00\x00\x00\x02\x18\x71\x1a\x00", 8, n->binary.data, n->binary.len);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, m[2]->change->op);
    v = field(m[2]->change, "v");
    EXPECT_EQ_MEM("changed", 7, v->binary.data, v->binary.len);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__DELETE, m[3]->change->op);
    EXPECT_TRUE(m[3]->change->n_old >= 1);
    /* Checkpoints: the transaction's commit LSN, seq 1.. within it, a 13-byte handle. */
    EXPECT_TRUE(m[0]->checkpoint->lsn != 0);
    EXPECT_EQ_UINT(m[0]->checkpoint->lsn, m[1]->checkpoint->lsn);
    EXPECT_EQ_UINT(1, m[0]->checkpoint->seq);
    EXPECT_EQ_UINT(2, m[1]->checkpoint->seq);
    EXPECT_TRUE(m[2]->checkpoint->lsn > m[1]->checkpoint->lsn);
    EXPECT_EQ_UINT(13, m[0]->checkpoint->data.len);
    /* Only changes: no Begin/Commit reached us, so nothing else is pending. */
    expect_quiet(c, 500);
}

/* A change larger than a batch travels as parts (Pgc-Part); the gateway joins them. */
static void test_gateway_joins_a_change_split_into_parts(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    harness_exec(e.conn, "INSERT INTO t SELECT 1, string_agg(md5(i::text), ''), 1 "
                         "FROM generate_series(1, 8000) i");
    insert_rows(&e, 2, 2, false);
    char *want = harness_query_value(e.conn, "SELECT v FROM t WHERE id = 1");
    Pgcapture__CaptureMessage *m[2];
    recv_n(c, m, 2, 20000);
    EXPECT_EQ_INT(1, id_of(m[0]->change));
    const Pgcapture__Field *v = field(m[0]->change, "v");
    EXPECT_TRUE(v != NULL);
    EXPECT_EQ_UINT(256000, v->binary.len);
    EXPECT_EQ_MEM(want, strlen(want), v->binary.data, v->binary.len);
    EXPECT_EQ_INT(2, id_of(m[1]->change));
    client_ack(c, m[0]->checkpoint, NULL);
    client_ack(c, m[1]->checkpoint, NULL);
    wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st);
    client *c2 = client_open(e.addr, e.uri, NULL);
    expect_quiet(c2, 1000);
}

static void test_gateway_acked_changes_never_come_back(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 5, false);
    Pgcapture__CaptureMessage *m[5];
    recv_n(c, m, 5, 20000);
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ_INT(i + 1, id_of(m[i]->change));
        client_ack(c, m[i]->checkpoint, NULL);
    }
    wait_acked(&e, e.uri, 5);
    rpc_stream_cancel(c->st);
    insert_rows(&e, 6, 6, false);
    client *c2 = client_open(e.addr, e.uri, NULL);
    Pgcapture__CaptureMessage *m2[1];
    recv_n(c2, m2, 1, 20000);
    EXPECT_EQ_INT(6, id_of(m2[0]->change));
    expect_quiet(c2, 1000);
}

static void test_gateway_requeue_brings_back_exactly_that_change(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 3, true); /* one transaction: one batch */
    Pgcapture__CaptureMessage *m[3];
    recv_n(c, m, 3, 20000);
    client_ack(c, m[0]->checkpoint, NULL);
    client_ack(c, m[1]->checkpoint, "not now");
    client_ack(c, m[2]->checkpoint, NULL);
    Pgcapture__CaptureMessage *again[1];
    recv_n(c, again, 1, 10000);
    EXPECT_EQ_INT(2, id_of(again[0]->change));
    EXPECT_EQ_UINT(m[1]->checkpoint->lsn, again[0]->checkpoint->lsn);
    EXPECT_EQ_UINT(m[1]->checkpoint->seq, again[0]->checkpoint->seq);
    EXPECT_EQ_STR("row 2", field(again[0]->change, "v") ? "row 2" : NULL);
    EXPECT_EQ_MEM("row 2", 5, field(again[0]->change, "v")->binary.data,
                  field(again[0]->change, "v")->binary.len);
    expect_quiet(c, 1000); /* rows 1 and 3 never come back */
    /* Requeued twice: it comes back twice. Then acked: gone for good. */
    client_ack(c, again[0]->checkpoint, "still not");
    recv_n(c, again, 1, 10000);
    EXPECT_EQ_INT(2, id_of(again[0]->change));
    client_ack(c, again[0]->checkpoint, NULL);
    wait_acked(&e, e.uri, 3);
    rpc_stream_cancel(c->st);
    client *c2 = client_open(e.addr, e.uri, NULL);
    expect_quiet(c2, 1500);
}

static void test_gateway_consumer_killed_midstream_gets_unacked_again(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 4, true);
    insert_rows(&e, 5, 6, true);
    Pgcapture__CaptureMessage *m[6];
    recv_n(c, m, 6, 20000);
    client_ack(c, m[0]->checkpoint, NULL);
    client_ack(c, m[1]->checkpoint, NULL);
    wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st); /* the consumer dies with 3..6 unacked */
    client *c2 = client_open(e.addr, e.uri, NULL);
    int seen[7] = {0};
    Pgcapture__CaptureMessage *r[4];
    recv_n(c2, r, 4, 20000);
    for (int i = 0; i < 4; i++) {
        int id = id_of(r[i]->change);
        EXPECT_TRUE(id >= 3 && id <= 6);
        seen[id]++;
        client_ack(c2, r[i]->checkpoint, NULL);
    }
    for (int id = 3; id <= 6; id++)
        if (seen[id] != 1) {
            show_gateway_log();
            unit_fail(__FILE__, __LINE__, "row %d received %d times (got %d %d %d %d)", id,
                      seen[id], id_of(r[0]->change), id_of(r[1]->change), id_of(r[2]->change),
                      id_of(r[3]->change));
        }
    expect_quiet(c2, 1000);
}

/* Consumers of one URI die one after another, each next one joining at once while the last
 * one's stream still hands back: in every round the next consumer gets each change nobody
 * acked exactly once, and never one that was acked. Each round leaves log batches partly
 * acked and untouched and retried changes unacked. (A hand-back by nak failed a round in a
 * few dozen: nats-server before 2.11 may drop a nak'ed message's redelivery for the whole
 * ack wait and send the consumer's newest message, acked or not, again instead.) */
static void test_gateway_consumers_dying_in_turn_lose_and_repeat_nothing(void)
{
    enum { ROUNDS = 30, PER_ROUND = 5, N = ROUNDS * PER_ROUND };
    gw_env e;
    setup(&e, NULL);
    /* 0: not received yet, 1: received, not acked (it must come again), 2: acked */
    int state[N + 1] = {0}, acked = 0;
    client *c = client_open(e.addr, e.uri, NULL);
    for (int round = 0; round <= ROUNDS; round++) {
        int first = round * PER_ROUND + 1, want = 0, got = 0;
        if (round < ROUNDS) {
            /* Three transactions: two of two rows, one of one row. */
            insert_rows(&e, first, first + 1, true);
            insert_rows(&e, first + 2, first + 3, true);
            insert_rows(&e, first + 4, first + 4, true);
        }
        bool here[N + 1] = {false};
        for (int id = 1; id <= N; id++)
            want += (id >= first && id < first + PER_ROUND && round < ROUNDS) || state[id] == 1;
        Pgcapture__CaptureMessage *m[N];
        long long until = harness_now_ms() + 20000;
        while (got < want) {
            if (harness_now_ms() > until) {
                show_gateway_log();
                unit_fail(__FILE__, __LINE__, "round %d: got %d changes of %d", round, got, want);
            }
            Pgcapture__CaptureMessage *msg = client_recv(c, 500);
            if (!msg)
                continue;
            int id = id_of(msg->change);
            if (id < 1 || id > N || state[id] == 2 || here[id]) {
                show_gateway_log();
                unit_fail(__FILE__, __LINE__, "round %d: row %d again (%s)", round, id,
                          id < 1 || id > N ? "unknown"
                          : here[id]       ? "twice"
                                           : "it was acked");
            }
            here[id] = true;
            m[got++] = msg;
        }
        /* Ack the rows received a second time and the even ones: the rest must come again. */
        for (int i = 0; i < got; i++) {
            int id = id_of(m[i]->change);
            if (round == ROUNDS || state[id] == 1 || id % 2 == 0) {
                client_ack(c, m[i]->checkpoint, NULL);
                state[id] = 2;
                acked++;
            } else {
                state[id] = 1;
            }
        }
        wait_acked(&e, e.uri, acked);
        if (round < ROUNDS) {
            rpc_stream_cancel(c->st);
            c = client_open(e.addr, e.uri, NULL);
        }
    }
    expect_quiet(c, 1000);
    for (int id = 1; id <= N; id++)
        EXPECT_EQ_INT(2, state[id]);
}

/* TRUNCATE (op 3, an addition to pgcapture's protocol) goes only to a consumer that asks
 * with Truncate: true; another gets everything else, and the gateway acks the TRUNCATE for it
 * (nothing comes back on its next stream). */
static void test_gateway_sends_truncate_only_to_consumers_that_ask(void)
{
    gw_env e;
    setup(&e, NULL);
    char other[96];
    snprintf(other, sizeof other, "%s-other", e.name);
    client *plain = client_open(e.addr, e.uri, NULL);
    client *asks = client_open_raw(e.addr);
    send_init_params(asks, other, NULL, true);
    insert_rows(&e, 1, 2, false);
    harness_exec(e.conn, "TRUNCATE t");
    insert_rows(&e, 3, 3, false);
    Pgcapture__CaptureMessage *m[4];
    recv_n(asks, m, 4, 20000);
    static const int ops[4] = {
        PGCAPTURE__CHANGE__OPERATION__INSERT, PGCAPTURE__CHANGE__OPERATION__INSERT,
        PGCAPTURE__CHANGE__OPERATION__TRUNCATE, PGCAPTURE__CHANGE__OPERATION__INSERT};
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ_INT(ops[i], m[i]->change->op);
        EXPECT_EQ_STR("t", m[i]->change->table);
        client_ack(asks, m[i]->checkpoint, NULL);
    }
    Pgcapture__CaptureMessage *p[3];
    recv_n(plain, p, 3, 20000);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, p[i]->change->op);
        EXPECT_EQ_INT(i + 1, id_of(p[i]->change));
        client_ack(plain, p[i]->checkpoint, NULL);
    }
    expect_quiet(plain, 1000);
    harness_sleep_ms(300); /* the acks land */
    rpc_stream_cancel(plain->st);
    client *again = client_open(e.addr, e.uri, NULL);
    expect_quiet(again, 2000);
}

/* ---- changes the log no longer holds ---------------------------------------------------- */

/* Keeps the last `keep` messages of a stream, as its retention would. */
static void stream_keep_last(const char *stream, int64_t keep)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL, *upd = NULL;
    jsErrCode jerr = 0;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot read stream %s", stream);
    jsStreamConfig sc = *si->Config;
    sc.MaxMsgs = keep;
    natsStatus ns = js_UpdateStream(&upd, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(upd);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (ns != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot limit stream %s: %d %d", stream, ns, (int)jerr);
}

static uint64_t stream_last_seq(const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    uint64_t last = 0;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK)
        last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return last;
}

/* The stream ends with DATA_LOSS, naming the URI and what to do; so does the gateway log. */
static void expect_data_loss(gw_env *e, client *c, const char *uri)
{
    int code = client_wait_end(c, 20000);
    const char *m = NULL;
    rpc_stream_status(c->st, &m);
    if (code != GRPC_STATUS_DATA_LOSS)
        show_gateway_log();
    EXPECT_EQ_INT(GRPC_STATUS_DATA_LOSS, code);
    EXPECT_TRUE(m && strstr(m, uri) && strstr(m, "schedule dumps"));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -q 'changes lost: the stream ends with DATA_LOSS.*%s' '%s'",
             uri, e->gw_log);
    EXPECT_EQ_INT(0, system(cmd));
}

static void test_gateway_ends_with_data_loss_when_retention_removed_undelivered_changes(void)
{
    gw_env e;
    setup(&e, NULL);
    char stream[NAMES_BUF_LEN], other[96];
    names_stream(e.name, stream, sizeof stream);
    snprintf(other, sizeof other, "%s-other", e.name);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 2, false);
    Pgcapture__CaptureMessage *m[2];
    recv_n(c, m, 2, 20000);
    client_ack(c, m[0]->checkpoint, NULL);
    client_ack(c, m[1]->checkpoint, NULL);
    harness_sleep_ms(300);
    uint64_t held = stream_last_seq(stream);
    rpc_stream_cancel(c->st);
    /* Written while the consumer is away, then removed by retention before delivery. */
    for (int id = 3; id <= 6; id++) {
        insert_rows(&e, id, id, false);
        long long until = harness_now_ms() + 20000; /* one NATS message each */
        while (stream_last_seq(stream) < held + (uint64_t)(id - 2) && harness_now_ms() < until)
            harness_sleep_ms(50);
    }
    EXPECT_EQ_UINT(held + 4, stream_last_seq(stream));
    stream_keep_last(stream, 1);
    expect_data_loss(&e, client_open(e.addr, e.uri, NULL), e.uri);
    /* Not delivered around the hole on the next stream either. */
    expect_data_loss(&e, client_open(e.addr, e.uri, NULL), e.uri);
    /* A new durable (another URI here) starts at the oldest change the log holds. */
    client *fresh = client_open(e.addr, other, NULL);
    Pgcapture__CaptureMessage *f = client_recv(fresh, 20000);
    EXPECT_TRUE(f && id_of(f->change) > 2);
}

/* Requeued changes are kept as long as the log keeps changes, not forever. */
static void test_gateway_retry_stream_has_the_logs_retention_limits(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 1, false);
    Pgcapture__CaptureMessage *m[1];
    recv_n(c, m, 1, 20000); /* the stream is open: so is the retry stream */
    char stream[NAMES_BUF_LEN], retry[NAMES_BUF_LEN];
    names_stream(e.name, stream, sizeof stream);
    names_retry_stream(e.name, retry, sizeof retry);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *log = NULL, *rs = NULL;
    EXPECT_EQ_INT(NATS_OK, natsConnection_ConnectTo(&nc, harness_nats_url()));
    EXPECT_EQ_INT(NATS_OK, natsConnection_JetStream(&js, nc, NULL));
    EXPECT_EQ_INT(NATS_OK, js_GetStreamInfo(&log, js, stream, NULL, NULL));
    EXPECT_EQ_INT(NATS_OK, js_GetStreamInfo(&rs, js, retry, NULL, NULL));
    int64_t log_age = log->Config->MaxAge, retry_age = rs->Config->MaxAge;
    int64_t log_bytes = log->Config->MaxBytes, retry_bytes = rs->Config->MaxBytes;
    jsStreamInfo_Destroy(log);
    jsStreamInfo_Destroy(rs);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    EXPECT_TRUE(log_age > 0); /* the agent's --max-age, 7 days by default */
    EXPECT_EQ_INT(log_age, retry_age);
    EXPECT_EQ_INT(log_bytes, retry_bytes);
}

/* A requeued change that expired in the retry stream before any stream of the URI read it:
 * the next requeued change names it (Pgc-Prev), and the stream that finds it gone ends. */
static void test_gateway_ends_with_data_loss_when_a_requeued_change_expired_unread(void)
{
    gw_env e;
    setup(&e, NULL);
    char durable[NAMES_BUF_LEN], retry[NAMES_BUF_LEN], err[512];
    names_durable_from_uri(e.uri, durable, sizeof durable);
    names_retry_stream(e.name, retry, sizeof retry);
    /* Requeued by a gateway whose consumer then went away for good. */
    retry_stream_config rc = {harness_nats_url(), e.name, durable, 30000, 1000};
    retry_stream *r = NULL;
    EXPECT_EQ_INT(PGC_OK, retry_stream_create(&rc, &r, err, sizeof err));
    Pgcapture__Message msg = PGCAPTURE__MESSAGE__INIT;
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.schema = "public";
    ch.table = "t";
    msg.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    msg.change = &ch;
    uint8_t buf[64];
    size_t n = pgcapture__message__pack(&msg, buf);
    EXPECT_EQ_INT(PGC_OK, retry_stream_publish(r, buf, n, (log_pos){100, 1}, 1, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, retry_stream_publish(r, buf, n, (log_pos){200, 1}, 1, err, sizeof err));
    retry_stream_destroy(r);
    stream_keep_last(retry, 1); /* the first one expires unread */
    expect_data_loss(&e, client_open(e.addr, e.uri, NULL), e.uri);
}

static void test_gateway_two_consumers_on_one_uri_share_every_message(void)
{
    gw_env e;
    setup(&e, NULL);
    client *a = client_open(e.addr, e.uri, NULL);
    client *b = client_open(e.addr, e.uri, NULL);
    harness_sleep_ms(500); /* both streams pulling */
    enum { N = 120 };
    for (int i = 1; i <= N; i += 6) {
        insert_rows(&e, i, i + 5, false);
        harness_sleep_ms(15);
    }
    int seen[N + 1] = {0}, got_a = 0, got_b = 0, total = 0;
    long long until = harness_now_ms() + 30000;
    while (total < N && harness_now_ms() < until) {
        for (int k = 0; k < 2; k++) {
            client *c = k ? b : a;
            Pgcapture__CaptureMessage *m = client_recv(c, 30);
            if (!m)
                continue;
            int id = id_of(m->change);
            EXPECT_TRUE(id >= 1 && id <= N);
            seen[id]++;
            total++;
            if (k)
                got_b++;
            else
                got_a++;
            client_ack(c, m->checkpoint, NULL);
        }
    }
    for (int id = 1; id <= N; id++)
        if (seen[id] != 1)
            unit_fail(__FILE__, __LINE__, "row %d received %d times", id, seen[id]);
    EXPECT_TRUE(got_a > 0);
    EXPECT_TRUE(got_b > 0);
}

/* A consumer that stops acking holds at most --window changes and slows nobody else. */
static void test_gateway_slow_consumer_is_bounded_by_its_window_alone(void)
{
    gw_env e;
    setup(&e, NULL);
    kill(e.gw_pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(e.gw_pid, 15000));
    const char *extra[] = {"--window", "5", NULL};
    start_gateway(&e, extra);
    char other[128];
    snprintf(other, sizeof other, "%s-other", e.name);
    client *slow = client_open(e.addr, e.uri, NULL);
    client *fast = client_open(e.addr, other, NULL);
    for (int i = 1; i <= 40; i += 4) /* separate transactions, so several batches */
        insert_rows(&e, i, i + 3, true);
    for (int i = 0; i < 40; i++) {
        Pgcapture__CaptureMessage *m[1];
        recv_n(fast, m, 1, 20000);
        EXPECT_EQ_INT(i + 1, id_of(m[0]->change));
        client_ack(fast, m[0]->checkpoint, NULL);
    }
    /* The slow one got exactly what its window allows (even inside a batch), then nothing
     * while it acks nothing. */
    int got = 0;
    while (client_recv(slow, 1000))
        got++;
    if (got != 5)
        unit_fail(__FILE__, __LINE__, "slow consumer got %d changes, window 5", got);
}

static void test_gateway_table_regex_filters_and_acks_the_rest(void)
{
    gw_env e;
    setup(&e,
          "CREATE TABLE keep_me (id int PRIMARY KEY); CREATE TABLE drop_me (id int PRIMARY KEY)");
    client *c = client_open(e.addr, e.uri, "^keep_");
    harness_exec(e.conn, "INSERT INTO drop_me VALUES (1)");
    harness_exec(e.conn, "INSERT INTO keep_me VALUES (2)");
    harness_exec(e.conn, "INSERT INTO drop_me VALUES (3)");
    harness_exec(e.conn, "INSERT INTO keep_me VALUES (4)");
    Pgcapture__CaptureMessage *m[2];
    recv_n(c, m, 2, 20000);
    EXPECT_EQ_STR("keep_me", m[0]->change->table);
    EXPECT_EQ_INT(2, id_of(m[0]->change));
    EXPECT_EQ_INT(4, id_of(m[1]->change));
    client_ack(c, m[0]->checkpoint, NULL);
    client_ack(c, m[1]->checkpoint, NULL);
    expect_quiet(c, 500);
    wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st);
    /* The filtered changes were acked by the gateway: a consumer without a regex on the
     * same URI sees nothing of them. */
    client *c2 = client_open(e.addr, e.uri, NULL);
    expect_quiet(c2, 1500);
}

static void test_gateway_refuses_bad_input_with_the_right_status(void)
{
    gw_env e;
    setup(&e, NULL);
    /* First request not init. */
    client *c = client_open_raw(e.addr);
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    ack.checkpoint = &cp;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    send_request(c, &req);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c, 10000));
    /* Garbage bytes. */
    c = client_open_raw(e.addr);
    char err[128];
    EXPECT_EQ_INT(0,
                  rpc_stream_send(c->st, (const uint8_t *)"\xff\xff\xff\x0f", 4, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c, 10000));
    /* Unknown URI. */
    c = client_open(e.addr, "no-such-uri", NULL);
    EXPECT_EQ_INT(GRPC_STATUS_NOT_FOUND, client_wait_end(c, 10000));
    /* Bad regex. */
    c = client_open(e.addr, e.uri, "([a-z");
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c, 10000));
    /* A regex bomb (11.6 s and 3.9 GB to compile with POSIX regcomp): refused, and the
     * gateway goes on serving (the cases below). */
    c = client_open(e.addr, e.uri, "((a{1,255}){1,255}){1,255}");
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c, 10000));
    /* An ack for a checkpoint never sent: refused, and nothing acked because of it. */
    c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 1, false);
    Pgcapture__CaptureMessage *m[1];
    recv_n(c, m, 1, 20000);
    Pgcapture__Checkpoint forged = *m[0]->checkpoint;
    uint8_t data[13];
    memcpy(data, forged.data.data, 13);
    data[7] ^= 0x40; /* a stream sequence far past anything sent */
    forged.data.data = data;
    client_ack(c, &forged, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c, 10000));
    /* Also a real handle with a wrong position. */
    client *c2 = client_open(e.addr, e.uri, NULL);
    recv_n(c2, m, 1, 20000);
    EXPECT_EQ_INT(1, id_of(m[0]->change));
    Pgcapture__Checkpoint wrong = *m[0]->checkpoint;
    wrong.seq += 7;
    client_ack(c2, &wrong, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c2, 10000));
    /* Init twice. */
    client *c3 = client_open(e.addr, e.uri, NULL);
    recv_n(c3, m, 1, 20000);
    EXPECT_EQ_INT(1, id_of(m[0]->change)); /* still there: nothing was acked */
    send_init(c3, e.uri, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, client_wait_end(c3, 10000));
}

static void test_gateway_sigterm_ends_streams_unavailable(void)
{
    gw_env e;
    setup(&e, NULL);
    client *c = client_open(e.addr, e.uri, NULL);
    insert_rows(&e, 1, 2, true);
    Pgcapture__CaptureMessage *m[2];
    recv_n(c, m, 2, 20000);
    client_ack(c, m[0]->checkpoint, NULL);
    wait_acked(&e, e.uri, 1);
    kill(e.gw_pid, SIGTERM);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, client_wait_end(c, 15000));
    EXPECT_EQ_INT(0, harness_wait_exit(e.gw_pid, 15000));
    /* The unacked row 2 comes back through a new gateway; row 1 does not. */
    start_gateway(&e, NULL);
    client *c2 = client_open(e.addr, e.uri, NULL);
    recv_n(c2, m, 1, 20000);
    EXPECT_EQ_INT(2, id_of(m[0]->change));
    expect_quiet(c2, 1000);
}

static void test_gateway_python_client_compat(void)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        unit_fail(__FILE__, __LINE__, "/usr/bin/python3 missing (python3-grpcio needed)");
    gw_env e;
    setup(&e, NULL);
    char tmp[] = "/tmp/pgc-pystubs.XXXXXX";
    if (!mkdtemp(tmp))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "protoc -Iproto -I/usr/include --python_out=%s proto/pgcapture.proto >%s.protoc 2>&1",
             tmp, e.gw_log);
    if (system(cmd) != 0) {
        harness_print_log_tail(e.gw_log, 5);
        unit_fail(__FILE__, __LINE__, "protoc --python_out failed");
    }
    insert_rows(&e, 1, 3, true);
    harness_exec(e.conn, "UPDATE t SET v = 'py' WHERE id = 2");
    snprintf(cmd, sizeof cmd,
             "PYTHONPATH=%s /usr/bin/python3 tests/integration/compat_capture.py %s %s "
             ">>%s 2>&1",
             tmp, e.addr, e.uri, e.gw_log);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) {
        /* Only a temp dir left behind. */
    }
    if (rc != 0) {
        harness_print_log_tail(e.gw_log, 30);
        unit_fail(__FILE__, __LINE__, "the Python client failed (status %d)", rc);
    }
    /* The Python client acked everything: nothing comes back. */
    client *c = client_open(e.addr, e.uri, NULL);
    expect_quiet(c, 1500);
}

static void kill_pid(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    if (kill(pid, 0) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* examples/custom_resolver.c: a complete gateway with its own resolver. */
static void test_gateway_custom_resolver_example_serves_source_slash_consumer(void)
{
    gw_env e;
    setup(&e, NULL);
    char bin[600], out[600], line[256], url[256];
    snprintf(bin, sizeof bin, "%s", getenv("PGC_TEST_BIN"));
    char *slash = strrchr(bin, '/');
    if (!slash)
        unit_fail(__FILE__, __LINE__, "PGC_TEST_BIN has no directory");
    strcpy(slash, "/examples/custom_resolver");
    snprintf(out, sizeof out, "%s.example", e.gw_log);
    snprintf(url, sizeof url, "%s", harness_nats_url());
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(out, "w", stdout);
        (void)f;
        execl(bin, bin, "127.0.0.1:0", url, (char *)NULL);
        _exit(127);
    }
    unit_defer(kill_pid, (void *)(intptr_t)pid);
    int port = 0;
    long long until = harness_now_ms() + 10000;
    while (!port && harness_now_ms() < until) {
        FILE *f = fopen(out, "r");
        if (f && fgets(line, sizeof line, f) && strncmp(line, "listening on ", 13) == 0)
            port = atoi(line + 13);
        if (f)
            fclose(f);
        harness_sleep_ms(20);
    }
    if (!port)
        unit_fail(__FILE__, __LINE__, "the example did not start (%s)", bin);
    char addr[64], uri[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    snprintf(uri, sizeof uri, "%s/example_consumer", e.name);
    client *c = client_open(addr, uri, NULL);
    insert_rows(&e, 7, 7, false);
    Pgcapture__CaptureMessage *m[1];
    recv_n(c, m, 1, 20000);
    EXPECT_EQ_INT(7, id_of(m[0]->change));
    client *bad = client_open(addr, "no-slash-here", NULL);
    EXPECT_EQ_INT(GRPC_STATUS_NOT_FOUND, client_wait_end(bad, 10000));
    kill(pid, SIGTERM);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, client_wait_end(c, 15000));
    int status = 0;
    EXPECT_EQ_INT(pid, waitpid(pid, &status, 0));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

UNIT_MAIN(UNIT_CASE(test_gateway_delivers_rows_with_identical_values),
          UNIT_CASE(test_gateway_joins_a_change_split_into_parts),
          UNIT_CASE(test_gateway_acked_changes_never_come_back),
          UNIT_CASE(test_gateway_requeue_brings_back_exactly_that_change),
          UNIT_CASE(test_gateway_consumer_killed_midstream_gets_unacked_again),
          UNIT_CASE(test_gateway_consumers_dying_in_turn_lose_and_repeat_nothing),
          UNIT_CASE(test_gateway_sends_truncate_only_to_consumers_that_ask),
          UNIT_CASE(test_gateway_ends_with_data_loss_when_retention_removed_undelivered_changes),
          UNIT_CASE(test_gateway_retry_stream_has_the_logs_retention_limits),
          UNIT_CASE(test_gateway_ends_with_data_loss_when_a_requeued_change_expired_unread),
          UNIT_CASE(test_gateway_two_consumers_on_one_uri_share_every_message),
          UNIT_CASE(test_gateway_slow_consumer_is_bounded_by_its_window_alone),
          UNIT_CASE(test_gateway_table_regex_filters_and_acks_the_rest),
          UNIT_CASE(test_gateway_refuses_bad_input_with_the_right_status),
          UNIT_CASE(test_gateway_sigterm_ends_streams_unavailable),
          UNIT_CASE(test_gateway_python_client_compat),
          UNIT_CASE(test_gateway_custom_resolver_example_serves_source_slash_consumer))
