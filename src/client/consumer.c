/* The consumer: one DBLogGateway.Capture stream (docs/protocol.md "The Capture stream"): init
 * with the URI and parameters, then for each CaptureMessage call the handler and send an
 * ack echoing the checkpoint (a requeue when the handler says so).
 *
 * Threading: pgc_consumer_run receives, decodes and calls the handler on the caller's
 * thread. By default it sends each ack there too: a gRPC send completes when the transport
 * has taken the message, not after a server round trip, so acks are pipelined with the
 * next changes already (and this is the fastest on two cores: no cross-thread wake-ups).
 * With an ack window, a sender thread of its own (one per run) sends the acks, so that the
 * handler never waits for the transport (HTTP/2 flow control); the two share only the ack
 * queue, under its mutex. Another thread (or a signal handler) touches only the atomic
 * stop flag, which the run loop polls between short receive waits. */
#include "client/ack_queue.h"
#include "client/change.h"
#include "client/pbarena.h"
#include "client/stream_end.h"
#include "codec/part.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/textfile.h"
#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"
#include "rpc/client.h"
#include "rpc/methods.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100
#define ACK_WINDOW_MAX (1 << 20)
#define BATCH_LIMIT_DEFAULT 1024
#define BATCH_LIMIT_MAX 65536
/* The largest Capture message taken from the gateway, and said to it (MaxMessageSize):
 * the largest Message the agent can write, with room for its checkpoint (a client with
 * gRPC's default 4 MiB would have larger changes dead-lettered). */
#define MAX_MESSAGE_BYTES (PART_MAX_MESSAGE_BYTES + 65536)
/* After a stop, how long the queued acks may take to go out before the stream is cut. */
#define ACK_FLUSH_MS 5000
#define CLOSE_WAIT_MS 2000 /* after a stop, for the gateway to end the call */

struct pgc_consumer {
    char *gateway;
    char *uri;
    /* TLS files, server name and token (NULL when not given); the token wiped on destroy */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name, *token;
    char **names; /* parameters, TableRegex first when given */
    char **values;
    size_t n_params;
    size_t n_alloc; /* slots of names/values (zeroed when allocated) */
    size_t ack_window;
    rpc_channel *channel;
    atomic_int stop;
    /* how the last run's stream ended (pgc_consumer_get_grpc_status) */
    pgc_grpc_code end_code;
    char *end_message; /* NULL: none */
};

void pgc_consumer_options_init(pgc_consumer_options *o)
{
    memset(o, 0, sizeof *o);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Copies an optional string: 0, or -1 on out of memory. */
static int dup_opt(const char *s, char **out)
{
    *out = s ? dup_str(s) : NULL;
    return s && !*out ? -1 : 0;
}

static int open_channel(pgc_consumer *c, char *err, size_t err_len)
{
    rpc_channel_options o;
    rpc_channel_options_init(&o);
    o.tls_ca_file = c->tls_ca_file;
    o.tls_cert_file = c->tls_cert_file;
    o.tls_key_file = c->tls_key_file;
    o.tls_server_name = c->tls_server_name;
    o.token = c->token;
    o.max_recv_bytes = (int)MAX_MESSAGE_BYTES;
    char sub[400];
    int rc = rpc_channel_create_opts(c->gateway, &o, &c->channel, sub, sizeof sub);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "consumer: %s", sub);
    return PGC_OK;
}

pgc_status pgc_consumer_create(const pgc_consumer_options *o, pgc_consumer **out, char *err,
                               size_t err_len)
{
    if (!o || !out)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: NULL argument");
    if (!o->gateway || !*o->gateway || !o->uri || !*o->uri)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: gateway and uri are required");
    if (o->n_params && (!o->param_names || !o->param_values))
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "consumer: %zu parameters without names "
                          "or values",
                          o->n_params);
    for (size_t i = 0; i < o->n_params; i++)
        if (!o->param_names[i] || !o->param_values[i])
            return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: parameter %zu is NULL", i);
    if (o->ack_window < 0 || o->ack_window > ACK_WINDOW_MAX)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "consumer: ack_window %d is out of range (0 to %d)", o->ack_window,
                          ACK_WINDOW_MAX);
    if (o->batch_limit < -1 || o->batch_limit > BATCH_LIMIT_MAX)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "consumer: batch_limit %d is out of range (-1 to %d)", o->batch_limit,
                          BATCH_LIMIT_MAX);
    for (size_t i = 0; i < o->n_params; i++)
        if (strcmp(o->param_names[i], "BatchLimit") == 0)
            return errbuf_set(err, err_len, PGC_ERR_INVALID,
                              "consumer: set batch_limit instead of the BatchLimit parameter");
    bool says_max = false;
    for (size_t i = 0; i < o->n_params; i++)
        says_max = says_max || strcmp(o->param_names[i], "MaxMessageSize") == 0;
    pgc_consumer *c = calloc(1, sizeof *c);
    bool batches = o->batch_limit != -1;
    size_t n = o->n_params + (o->table_regex ? 1 : 0) + (batches ? 1 : 0) + (says_max ? 0 : 1);
    if (!c)
        goto nomem;
    atomic_init(&c->stop, 0);
    c->end_code = PGC_GRPC_CODE_NONE;
    c->ack_window = (size_t)o->ack_window;
    c->gateway = dup_str(o->gateway);
    c->uri = dup_str(o->uri);
    if (dup_opt(o->tls_ca_file, &c->tls_ca_file) || dup_opt(o->tls_cert_file, &c->tls_cert_file) ||
        dup_opt(o->tls_key_file, &c->tls_key_file) ||
        dup_opt(o->tls_server_name, &c->tls_server_name) || dup_opt(o->token, &c->token))
        goto nomem;
    c->names = calloc(n ? n : 1, sizeof *c->names);
    c->values = calloc(n ? n : 1, sizeof *c->values);
    if (!c->gateway || !c->uri || !c->names || !c->values)
        goto nomem;
    c->n_alloc = n;
    if (o->table_regex) {
        if (!(c->names[0] = dup_str("TableRegex")) || !(c->values[0] = dup_str(o->table_regex)))
            goto nomem;
        c->n_params = 1;
    }
    for (size_t i = 0; i < o->n_params; i++, c->n_params++) {
        if (!(c->names[c->n_params] = dup_str(o->param_names[i])) ||
            !(c->values[c->n_params] = dup_str(o->param_values[i])))
            goto nomem;
    }
    if (batches) {
        /* Batch mode (docs/protocol.md "Batch mode"); a number, as send_init sends digits. */
        char limit[16];
        snprintf(limit, sizeof limit, "%d", o->batch_limit ? o->batch_limit : BATCH_LIMIT_DEFAULT);
        if (!(c->names[c->n_params] = dup_str("BatchLimit")) ||
            !(c->values[c->n_params] = dup_str(limit)))
            goto nomem;
        c->n_params++;
    }
    if (!says_max) {
        /* The gateway sends changes up to this size instead of dead-lettering them. */
        char max[24];
        snprintf(max, sizeof max, "%zu", (size_t)MAX_MESSAGE_BYTES);
        if (!(c->names[c->n_params] = dup_str("MaxMessageSize")) ||
            !(c->values[c->n_params] = dup_str(max)))
            goto nomem;
        c->n_params++;
    }
    /* The channel is made now (it does not connect yet), so bad TLS files are reported
     * here rather than at the first run. */
    int rc = open_channel(c, err, err_len);
    if (rc != PGC_OK) {
        pgc_consumer_destroy(c);
        return rc;
    }
    *out = c;
    return PGC_OK;
nomem:
    pgc_consumer_destroy(c);
    return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory");
}

void pgc_consumer_destroy(pgc_consumer *c)
{
    if (!c)
        return;
    rpc_channel_destroy(c->channel);
    for (size_t i = 0; i < c->n_alloc; i++) {
        free(c->names[i]);
        free(c->values[i]);
    }
    free(c->names);
    free(c->values);
    free(c->gateway);
    free(c->uri);
    free(c->tls_ca_file);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->tls_server_name);
    textfile_free_secret(c->token);
    free(c->end_message);
    free(c);
}

void pgc_consumer_stop(pgc_consumer *c)
{
    if (c)
        atomic_store(&c->stop, 1);
}

/* Init parameters go as a google.protobuf.Struct: "true"/"false" as booleans, numbers as
 * numbers, anything else as a string (pgcapture's TableRegex is a string). */
static int send_init(pgc_consumer *c, rpc_stream *st, char *err, size_t err_len)
{
    size_t n = c->n_params;
    Google__Protobuf__Struct__FieldsEntry *entries = calloc(n ? n : 1, sizeof *entries);
    Google__Protobuf__Struct__FieldsEntry **entry_ptrs = calloc(n ? n : 1, sizeof *entry_ptrs);
    Google__Protobuf__Value *values = calloc(n ? n : 1, sizeof *values);
    uint8_t *buf = NULL;
    int rc = PGC_ERR_NOMEM;
    if (!entries || !entry_ptrs || !values)
        goto out;
    for (size_t i = 0; i < n; i++) {
        google__protobuf__struct__fields_entry__init(&entries[i]);
        google__protobuf__value__init(&values[i]);
        entries[i].key = c->names[i];
        entries[i].value = &values[i];
        entry_ptrs[i] = &entries[i];
        const char *v = c->values[i];
        char *end = NULL;
        double d = *v ? strtod(v, &end) : 0;
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
            values[i].bool_value = v[0] == 't';
        } else if (end && *end == '\0' && strcmp(c->names[i], "TableRegex") != 0) {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
            values[i].number_value = d;
        } else {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
            values[i].string_value = c->values[i];
        }
    }
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    params.n_fields = n;
    params.fields = entry_ptrs;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    init.uri = c->uri;
    init.parameters = &params;
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    if (!(buf = malloc(len ? len : 1)))
        goto out;
    pgcapture__capture_request__pack(&req, buf);
    rc = rpc_stream_send(st, buf, len, err, err_len);
out:
    if (rc == PGC_ERR_NOMEM)
        errbuf_set(err, err_len, rc, "consumer: out of memory for the init request");
    free(buf);
    free(values);
    free(entry_ptrs);
    free(entries);
    return rc;
}

pgc_grpc_code pgc_consumer_get_grpc_status(const pgc_consumer *c, const char **message)
{
    if (message)
        *message = c && c->end_message ? c->end_message : "";
    return c ? c->end_code : PGC_GRPC_CODE_NONE;
}

/* The stream ended: keep its gRPC status and turn it into ours (stream_end.c), unless the
 * run was stopped. */
static int stream_ended(pgc_consumer *c, rpc_stream *st, char *err, size_t err_len)
{
    const char *msg = NULL;
    int code = rpc_stream_status(st, &msg);
    if (atomic_load(&c->stop))
        return PGC_OK;
    c->end_code = (pgc_grpc_code)code;
    c->end_message = dup_str(msg ? msg : ""); /* NULL on out of memory: reads as "" */
    return stream_end_explain(c->end_code, msg, c->gateway, c->uri, err, err_len);
}

/* After a lost connection the next run gets a new channel: this one may sit in gRPC's own
 * reconnect back-off (growing to minutes) while the gateway is back already. */
static int drop_channel_after(pgc_consumer *c, int rc)
{
    if (status_is_transient(rc)) {
        rpc_channel_destroy(c->channel);
        c->channel = NULL;
    }
    return rc;
}

/* One run: the stream, where its acks go, and the buffers reused from message to
 * message. */
typedef struct run_ctx {
    pgc_consumer *c;
    pgc_change_handler h;
    rpc_stream *st;
    ack_queue *q; /* NULL: acks are sent on the run's thread */
    pbarena *arena;
    uint8_t *ack; /* the packed request: `small`, or allocated when larger */
    size_t ack_cap;
    uint8_t small[256];
} run_ctx;

/* Sends (or queues) an ack: of one change (checkpoint) or of a whole batch (batch != 0),
 * a requeue when reason is not empty. */
static int send_ack(run_ctx *r, const Pgcapture__Checkpoint *cp, uint64_t batch, const char *reason,
                    char *err, size_t err_len)
{
    Pgcapture__Checkpoint empty = PGCAPTURE__CHECKPOINT__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    ack.checkpoint = batch ? NULL : cp ? (Pgcapture__Checkpoint *)cp : &empty;
    ack.batch = batch;
    ack.requeue_reason = (char *)(reason ? reason : "");
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    if (len > r->ack_cap) {
        uint8_t *b = malloc(len);
        if (!b)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for an ack");
        if (r->ack != r->small)
            free(r->ack);
        r->ack = b;
        r->ack_cap = len;
    }
    pgcapture__capture_request__pack(&req, r->ack);
    return r->q ? ack_queue_push(r->q, r->ack, len, &r->c->stop, err, err_len)
                : rpc_stream_send(r->st, r->ack, len, err, err_len);
}

/* Calls the handler on one change; *reason is "" for an ack. */
static int handle_one(run_ctx *r, const Pgcapture__Checkpoint *cp, const Pgcapture__Change *ch,
                      const char **reason, char *err, size_t err_len)
{
    pgc_change change;
    int rc = change_view(&change, cp, ch, err, err_len);
    if (rc != PGC_OK)
        return rc;
    const char *why = NULL;
    pgc_verdict v = r->h.handle(r->h.arg, &change, &why);
    if (v != PGC_VERDICT_REQUEUE)
        *reason = "";
    else
        *reason = why && *why ? why : "requeued by consumer";
    return PGC_OK;
}

/* A batch (docs/protocol.md "Batch mode"): each change goes to the handler in order; a
 * requeue is sent at once, and the batch ack answers the rest of the batch. After a stop
 * in the middle of the batch, the changes handled so far are acked one by one and the
 * rest is left unanswered (the gateway hands it back when the stream ends). */
static int handle_batch(run_ctx *r, const Pgcapture__CaptureMessage *m, char *err, size_t err_len)
{
    if (m->batch == 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "gateway %s sent batch items without a batch number", r->c->gateway);
    ProtobufCAllocator *alloc = pbarena_allocator(r->arena);
    bool *acked = alloc->alloc(alloc->allocator_data, m->n_items ? m->n_items : 1);
    if (!acked)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for a batch");
    size_t handled = 0, n_acked = 0;
    for (size_t i = 0; i < m->n_items; i++) {
        if (i > 0 && atomic_load(&r->c->stop))
            break;
        const Pgcapture__CaptureItem *it = m->items[i];
        const char *reason;
        int rc = it ? handle_one(r, it->checkpoint, it->change, &reason, err, err_len)
                    : errbuf_set(err, err_len, PGC_ERR_MALFORMED, "empty batch item");
        if (rc != PGC_OK)
            return rc;
        handled++;
        acked[i] = !*reason;
        n_acked += acked[i];
        if (*reason && (rc = send_ack(r, it->checkpoint, 0, reason, err, err_len)) != PGC_OK)
            return rc;
    }
    /* Every batch gets its batch ack, requeued changes or not: it closes the batch at the
     * gateway. */
    if (handled == m->n_items)
        return send_ack(r, NULL, m->batch, "", err, err_len);
    for (size_t i = 0; i < handled && n_acked; i++) {
        int rc = acked[i] ? send_ack(r, m->items[i]->checkpoint, 0, "", err, err_len) : PGC_OK;
        if (rc != PGC_OK)
            return rc;
    }
    return PGC_OK;
}

/* One received message: a single change (per-change mode, or a gateway without batch
 * mode) or a batch. */
static int handle_message(run_ctx *r, const uint8_t *data, size_t len, char *err, size_t err_len)
{
    pbarena_reset(r->arena);
    Pgcapture__CaptureMessage *m =
        pgcapture__capture_message__unpack(pbarena_allocator(r->arena), len, data);
    if (!m)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "gateway %s sent %zu bytes that are not a CaptureMessage (or out of "
                          "memory)",
                          r->c->gateway, len);
    if (m->n_items || m->batch)
        return handle_batch(r, m, err, err_len);
    const char *reason;
    int rc = handle_one(r, m->checkpoint, m->change, &reason, err, err_len);
    return rc != PGC_OK ? rc : send_ack(r, m->checkpoint, 0, reason, err, err_len);
}

/* After a stop: the acks are out (or queued); half-close and let the gateway end the
 * stream, so that every ack sent is taken before the stream goes (a cancel could overtake
 * the last ones). Changes that arrive meanwhile are not handled: they come back. */
static void close_gracefully(run_ctx *r)
{
    char err[256];
    if (rpc_stream_close_send(r->st, err, sizeof err) != PGC_OK)
        return;
    int64_t until = clock_mono_ms() + CLOSE_WAIT_MS;
    for (int64_t left; (left = until - clock_mono_ms()) > 0;) {
        uint8_t *data;
        size_t len;
        if (rpc_stream_recv(r->st, (int)left, &data, &len, err, sizeof err) != 1)
            break;
        free(data);
    }
}

pgc_status pgc_consumer_run(pgc_consumer *c, const pgc_change_handler *handler, char *err,
                            size_t err_len)
{
    if (!c || !handler || !handler->handle)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: NULL argument");
    c->end_code = PGC_GRPC_CODE_NONE;
    free(c->end_message);
    c->end_message = NULL;
    if (atomic_exchange(&c->stop, 0))
        return PGC_OK;
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.h = *handler;
    r.ack = r.small;
    r.ack_cap = sizeof r.small;
    int rc;
    if (!c->channel && (rc = open_channel(c, err, err_len)) != PGC_OK)
        return rc;
    if (!(r.arena = pbarena_create()))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory");
    if ((rc = rpc_stream_open(c->channel, RPC_METHOD_CAPTURE, &r.st, err, err_len)) != PGC_OK) {
        pbarena_destroy(r.arena);
        return drop_channel_after(c, rc);
    }
    if ((rc = send_init(c, r.st, err, err_len)) != PGC_OK) {
        if (rc == PGC_ERR_CONN)
            rc = stream_ended(c, r.st, err, err_len);
        rpc_stream_destroy(r.st);
        pbarena_destroy(r.arena);
        return drop_channel_after(c, rc);
    }
    if (c->ack_window &&
        (rc = ack_queue_start(c->ack_window, r.st, &r.q, err, err_len)) != PGC_OK) {
        rpc_stream_destroy(r.st);
        pbarena_destroy(r.arena);
        return rc;
    }
    bool ended = false; /* the server ended the stream (its status is read) */
    for (;;) {
        if (atomic_load(&c->stop)) {
            rc = PGC_OK;
            break;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        int got = rpc_stream_recv(r.st, POLL_MS, &data, &len, err, err_len);
        if (got == PGC_ERR_TIMEOUT)
            continue;
        if (got == 0) {
            ended = true;
            break;
        }
        if (got < 0) {
            rc = got;
            break;
        }
        rc = handle_message(&r, data, len, err, err_len);
        free(data);
        if (rc == PGC_ERR_CONN) {
            /* A send failed: the call is over, and its status (read once the
             * messages still buffered are skipped: they were not acked) says why. */
            while ((got = rpc_stream_recv(r.st, 10 * POLL_MS, &data, &len, err, err_len)) == 1)
                free(data);
            ended = got == 0 || got == PGC_ERR_TIMEOUT;
            break;
        }
        if (rc != PGC_OK)
            break;
    }
    /* After a stop the decided acks still go out, and the gateway takes them before the
     * stream ends; otherwise they cannot. */
    bool stopped = rc == PGC_OK && !ended;
    bool flushed = r.q ? ack_queue_stop(r.q, stopped, ACK_FLUSH_MS) : true;
    if (stopped && flushed)
        close_gracefully(&r);
    if (ended)
        rc = stream_ended(c, r.st, err, err_len);
    rpc_stream_destroy(r.st);
    pbarena_destroy(r.arena);
    if (r.ack != r.small)
        free(r.ack);
    drop_channel_after(c, rc);
    if (rc == PGC_OK && err && err_len)
        err[0] = '\0'; /* not the last receive's time-out */
    /* A stop ends this run only: the consumer may be run again. */
    atomic_store(&c->stop, 0);
    return rc;
}
