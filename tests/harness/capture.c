/* Capture-stream test helpers (see capture.h). */
#include "capture.h"

#include "certs.h"
#include "core/status.h"
#include "fixtures.h"
#include "runner.h"

#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void harness_gateway_start(harness_gateway *g, const char *tag, const char *conf,
                           const char *const *extra)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(g->log, sizeof g->log, "%s/gateway-%s.log", dir && *dir ? dir : "/tmp", tag);
    const char *args[64] = {
        "gateway",          "--uri-config", conf,    "--listen",      "127.0.0.1:0", "--nats-url",
        harness_nats_url(), "--log-level",  "debug", "--retry-delay", "300ms",       NULL};
    int n = 0;
    while (args[n])
        n++;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    struct stat st;
    long offset = stat(g->log, &st) == 0 ? (long)st.st_size : 0;
    g->pid = harness_spawn(g->log, args);
    long long until = harness_now_ms() + 20000;
    while (harness_now_ms() < until) {
        FILE *f = fopen(g->log, "r");
        char line[2048];
        if (f) {
            fseek(f, offset, SEEK_SET);
            while (fgets(line, sizeof line, f)) {
                const char *p = strstr(line, "gateway listening");
                const char *q = p ? strstr(p, "port=") : NULL;
                if (q) {
                    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", atoi(q + 5));
                    fclose(f);
                    return;
                }
            }
            fclose(f);
        }
        harness_sleep_ms(20);
    }
    harness_print_log_tail(g->log, 30);
    unit_fail(__FILE__, __LINE__, "gateway did not start listening");
}

struct capclient {
    rpc_channel *ch;
    rpc_stream *st;
    bool ended;
    int code;
    char message[512];
};

static void capclient_free(void *arg)
{
    capclient *c = arg;
    rpc_stream_destroy(c->st);
    rpc_channel_destroy(c->ch);
    free(c);
}

static void send_request(capclient *c, const Pgcapture__CaptureRequest *req)
{
    size_t n = pgcapture__capture_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    pgcapture__capture_request__pack(req, buf);
    char err[256];
    /* A send on a stream the server already ended fails: the status tells why. */
    rpc_stream_send(c->st, buf, n, err, sizeof err);
    free(buf);
}

capclient *capclient_open(const char *addr, const rpc_channel_options *o, const char *uri,
                          const char *regex)
{
    capclient *c = calloc(1, sizeof *c);
    char err[512];
    if (rpc_channel_create_opts(addr, o, &c->ch, err, sizeof err) != PGC_OK ||
        rpc_stream_open(c->ch, RPC_METHOD_CAPTURE, &c->st, err, sizeof err) != PGC_OK) {
        rpc_channel_destroy(c->ch);
        free(c);
        unit_fail(__FILE__, __LINE__, "cannot open Capture on %s: %s", addr, err);
    }
    unit_defer(capclient_free, c);
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Value val = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[1] = {&entry};
    init.uri = (char *)uri;
    if (regex) {
        val.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        val.string_value = (char *)regex;
        entry.key = "TableRegex";
        entry.value = &val;
        params.n_fields = 1;
        params.fields = entries;
        init.parameters = &params;
    }
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    send_request(c, &req);
    return c;
}

static void note_end(capclient *c)
{
    const char *m = NULL;
    c->code = rpc_stream_status(c->st, &m);
    snprintf(c->message, sizeof c->message, "%s", m ? m : "");
    c->ended = true;
}

int capclient_wait_end(capclient *c, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    while (!c->ended) {
        int left = (int)(until - harness_now_ms());
        if (left <= 0)
            return -1;
        uint8_t *data = NULL;
        size_t len = 0;
        char err[256];
        int rc = rpc_stream_recv(c->st, left, &data, &len, err, sizeof err);
        free(data);
        if (rc == 0)
            note_end(c);
        else if (rc < 0 && rc != PGC_ERR_TIMEOUT)
            unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
    }
    return c->code;
}

const char *capclient_status_message(capclient *c)
{
    return c->message;
}

static int32_t id_of(const Pgcapture__Change *ch)
{
    for (size_t i = 0; i < ch->n_new_; i++) {
        const Pgcapture__Field *f = ch->new_[i];
        if (strcmp(f->name, "id") == 0 && f->value_case == PGCAPTURE__FIELD__VALUE_BINARY &&
            f->binary.len == 4) {
            const uint8_t *p = f->binary.data;
            return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
                             p[3]);
        }
    }
    unit_fail(__FILE__, __LINE__, "change of %s without a binary int4 id", ch->table);
}

static void ack(capclient *c, const Pgcapture__Checkpoint *cp)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck a = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint copy = *cp;
    a.checkpoint = &copy;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &a;
    send_request(c, &req);
}

int capclient_take(capclient *c, int32_t *ids, int n, int timeout_ms, bool acking)
{
    long long until = harness_now_ms() + timeout_ms;
    int got = 0;
    while (got < n && !c->ended) {
        int left = (int)(until - harness_now_ms());
        if (left <= 0)
            break;
        uint8_t *data = NULL;
        size_t len = 0;
        char err[256];
        int rc = rpc_stream_recv(c->st, left, &data, &len, err, sizeof err);
        if (rc == 0) {
            note_end(c);
            break;
        }
        if (rc == PGC_ERR_TIMEOUT)
            break;
        if (rc != 1)
            unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
        Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, data);
        free(data);
        if (!m || !m->checkpoint || !m->change)
            unit_fail(__FILE__, __LINE__, "not a CaptureMessage with checkpoint and change");
        if (strcmp(m->change->table, "t") != 0)
            unit_fail(__FILE__, __LINE__, "a change of table %s.%s arrived", m->change->schema,
                      m->change->table);
        ids[got++] = id_of(m->change);
        if (acking)
            ack(c, m->checkpoint);
        pgcapture__capture_message__free_unpacked(m, NULL);
    }
    return got;
}

void capclient_cancel(capclient *c)
{
    rpc_stream_cancel(c->st);
}

/* A copy of s that lives until the end of the case. */
static const char *case_str(const char *s)
{
    char *p = strdup(s);
    unit_defer(free, p);
    return p;
}

rpc_channel_options harness_tls_client(const char *cert, const char *token)
{
    rpc_channel_options o;
    rpc_channel_options_init(&o);
    o.tls_ca_file = case_str(harness_cert("ca.pem"));
    if (cert) {
        char pem[64], key[64];
        snprintf(pem, sizeof pem, "%s.pem", cert);
        snprintf(key, sizeof key, "%s.key", cert);
        o.tls_cert_file = case_str(harness_cert(pem));
        o.tls_key_file = case_str(harness_cert(key));
    }
    o.token = token ? case_str(token) : NULL;
    return o;
}
