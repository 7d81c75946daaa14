/* A Capture client for integration tests, on src/rpc and protobuf-c so that every ack and
 * requeue is under the test's control, and the environment it talks to: a source database
 * with table t (id int primary key, v text, n int8), its agent streaming, and a
 * `pgcapture gateway` whose config knows URI "<name>-uri" and "<name>-other" (same source,
 * another durable). Everything is stopped and removed at the end of the case. */
#include "harness/capclient.h"

#include "codec/bigendian.h"
#include "core/status.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/scrape.h"

#include "google/protobuf/struct.pb-c.h"
#include "rpc/methods.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *g_cap_gw_log; /* the current gateway's log, shown when a case fails */

void cap_show_gateway_log(void)
{
    if (g_cap_gw_log)
        harness_print_log_tail(g_cap_gw_log, 40);
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

void cap_start_gateway(cap_env *e, const char *const *extra)
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
    g_cap_gw_log = e->gw_log;
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
void cap_setup(cap_env *e, const char *extra_sql)
{
    cap_setup_with(e, extra_sql, NULL);
}

void cap_setup_with(cap_env *e, const char *extra_sql, const char *const *agent_extra)
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
    e->agent_pid =
        harness_agent_start(e->db, e->name, agent_extra, e->agent_log, sizeof e->agent_log);
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
    cap_start_gateway(e, NULL);
}

static void client_free(void *arg)
{
    cap_client *c = arg;
    rpc_stream_destroy(c->st);
    rpc_channel_destroy(c->ch);
    free(c);
}

void cap_send_request(cap_client *c, const Pgcapture__CaptureRequest *req)
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

cap_client *cap_open_raw(const char *addr)
{
    cap_client *c = calloc(1, sizeof *c);
    char err[256];
    if (rpc_channel_create(addr, &c->ch, err, sizeof err) != 0 ||
        rpc_stream_open(c->ch, RPC_METHOD_CAPTURE, &c->st, err, sizeof err) != 0)
        unit_fail(__FILE__, __LINE__, "cannot open Capture on %s: %s", addr, err);
    unit_defer(client_free, c);
    return c;
}

void cap_send_init_with(cap_client *c, const char *uri, const char *regex, int batch_limit,
                        bool truncate)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e[3] = {GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                                  GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                                  GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT};
    Google__Protobuf__Value v[3] = {GOOGLE__PROTOBUF__VALUE__INIT, GOOGLE__PROTOBUF__VALUE__INIT,
                                    GOOGLE__PROTOBUF__VALUE__INIT};
    Google__Protobuf__Struct__FieldsEntry *entries[3];
    size_t n = 0;
    init.uri = (char *)uri;
    if (regex) {
        v[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v[n].string_value = (char *)regex;
        e[n].key = "TableRegex";
        e[n].value = &v[n];
        entries[n] = &e[n];
        n++;
    }
    if (batch_limit) {
        v[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v[n].number_value = batch_limit;
        e[n].key = "BatchLimit";
        e[n].value = &v[n];
        entries[n] = &e[n];
        n++;
    }
    if (truncate) {
        v[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v[n].bool_value = 1;
        e[n].key = "Truncate";
        e[n].value = &v[n];
        entries[n] = &e[n];
        n++;
    }
    if (n) {
        params.n_fields = n;
        params.fields = entries;
        init.parameters = &params;
    }
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    cap_send_request(c, &req);
}

void cap_send_init_batch(cap_client *c, const char *uri, const char *regex, int batch_limit)
{
    cap_send_init_with(c, uri, regex, batch_limit, false);
}

void cap_send_init(cap_client *c, const char *uri, const char *regex)
{
    cap_send_init_batch(c, uri, regex, 0);
}

cap_client *cap_open(const char *addr, const char *uri, const char *regex)
{
    cap_client *c = cap_open_raw(addr);
    cap_send_init(c, uri, regex);
    return c;
}

static void free_msg(void *arg)
{
    pgcapture__capture_message__free_unpacked(arg, NULL);
}

/* The next message, or NULL after timeout_ms; fails the case when the stream ends. */
static Pgcapture__CaptureMessage *recv_message(cap_client *c, int timeout_ms)
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
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "stream ended: status %d %s", code, m ? m : "");
    }
    if (rc != 1)
        unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
    Pgcapture__CaptureMessage *msg = pgcapture__capture_message__unpack(NULL, len, data);
    free(data);
    if (!msg)
        unit_fail(__FILE__, __LINE__, "not a CaptureMessage");
    unit_defer(free_msg, msg);
    return msg;
}

Pgcapture__CaptureMessage *cap_recv(cap_client *c, int timeout_ms)
{
    Pgcapture__CaptureMessage *msg = recv_message(c, timeout_ms);
    if (msg && (!msg->checkpoint || !msg->change || msg->batch || msg->n_items))
        unit_fail(__FILE__, __LINE__, "not a per-change CaptureMessage");
    return msg;
}

Pgcapture__CaptureMessage *cap_recv_batch(cap_client *c, int timeout_ms)
{
    Pgcapture__CaptureMessage *msg = recv_message(c, timeout_ms);
    if (msg && (msg->checkpoint || msg->change || !msg->batch || !msg->n_items))
        unit_fail(__FILE__, __LINE__, "not a batch (batch %llu, %zu items)",
                  (unsigned long long)msg->batch, msg->n_items);
    for (size_t i = 0; msg && i < msg->n_items; i++)
        if (!msg->items[i]->checkpoint || !msg->items[i]->change)
            unit_fail(__FILE__, __LINE__, "batch item %zu without checkpoint or change", i);
    return msg;
}

/* Waits for the stream's end; returns its gRPC status code. */
int cap_wait_end(cap_client *c, int timeout_ms)
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

void cap_ack(cap_client *c, const Pgcapture__Checkpoint *cp, const char *requeue)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint copy = *cp;
    ack.checkpoint = &copy;
    if (requeue)
        ack.requeue_reason = (char *)requeue;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    cap_send_request(c, &req);
}

void cap_wait_acked(const cap_env *e, const char *uri, int n)
{
    char series[200];
    snprintf(series, sizeof series, "pgcapture_gateway_changes_acked_total{uri=\"%s\"}", uri);
    harness_metric_wait(e->metrics_port, series, n, 20000);
}

const Pgcapture__Field *cap_field(const Pgcapture__Change *c, const char *name)
{
    for (size_t i = 0; i < c->n_new_; i++)
        if (strcmp(c->new_[i]->name, name) == 0)
            return c->new_[i];
    return NULL;
}

void cap_ack_batch(cap_client *c, uint64_t batch, const char *requeue)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    ack.batch = batch;
    if (requeue)
        ack.requeue_reason = (char *)requeue;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    cap_send_request(c, &req);
}

int32_t cap_id_of(const Pgcapture__Change *c)
{
    const Pgcapture__Field *f = cap_field(c, "id");
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 4)
        unit_fail(__FILE__, __LINE__, "change without a binary int4 id");
    const uint8_t *p = f->binary.data;
    return (int32_t)bigendian_get32(p);
}

/* Receives exactly `n` changes (failing after timeout_ms). */
void cap_recv_n(cap_client *c, Pgcapture__CaptureMessage **out, int n, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (int i = 0; i < n;) {
        if (harness_now_ms() > until) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "got %d changes of %d", i, n);
        }
        Pgcapture__CaptureMessage *m = cap_recv(c, 500);
        if (m)
            out[i++] = m;
    }
}

/* Nothing more arrives within ms. */
void cap_expect_quiet(cap_client *c, int ms)
{
    Pgcapture__CaptureMessage *m = cap_recv(c, ms);
    if (m)
        cap_show_gateway_log();
    if (m)
        unit_fail(__FILE__, __LINE__, "unexpected change: table %s id %d", m->change->table,
                  cap_field(m->change, "id") ? cap_id_of(m->change) : -1);
}

void cap_insert_rows(cap_env *e, int from, int to, bool one_txn)
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
