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
#include "client/change.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/textfile.h"
#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"
#include "rpc/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAPTURE_METHOD "/pgcapture.DBLogGateway/Capture"
#define POLL_MS 100
#define ACK_WINDOW_MAX (1 << 20)
/* After a stop, how long the queued acks may take to go out before the stream is cut. */
#define ACK_FLUSH_MS 5000
#define CLOSE_WAIT_MS 2000 /* after a stop, for the gateway to end the call */

/* gRPC status codes the gateway uses to refuse a stream (grpc/status.h numbering). */
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_CANCELLED 1
#define GRPC_DATA_LOSS 15
#define GRPC_PERMISSION_DENIED 7
#define GRPC_UNAUTHENTICATED 16

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
    pgc_consumer *c = calloc(1, sizeof *c);
    size_t n = o->n_params + (o->table_regex ? 1 : 0);
    if (!c)
        goto nomem;
    atomic_init(&c->stop, 0);
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

static void ack_request(Pgcapture__CaptureRequest *req, Pgcapture__CaptureAck *ack,
                        Pgcapture__Checkpoint *empty, const Pgcapture__CaptureMessage *m,
                        const char *reason)
{
    pgcapture__checkpoint__init(empty);
    pgcapture__capture_ack__init(ack);
    ack->checkpoint = m->checkpoint ? m->checkpoint : empty;
    ack->requeue_reason = (char *)(reason ? reason : "");
    pgcapture__capture_request__init(req);
    req->type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req->ack = ack;
}

/* Sends the ack (or requeue) of `m` on the calling thread. */
static int send_ack(rpc_stream *st, const Pgcapture__CaptureMessage *m, const char *reason,
                    char *err, size_t err_len)
{
    Pgcapture__Checkpoint empty;
    Pgcapture__CaptureAck ack;
    Pgcapture__CaptureRequest req;
    ack_request(&req, &ack, &empty, m, reason);
    uint8_t small[256];
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    uint8_t *buf = len <= sizeof small ? small : malloc(len);
    if (!buf)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for an ack");
    pgcapture__capture_request__pack(&req, buf);
    int rc = rpc_stream_send(st, buf, len, err, err_len);
    if (buf != small)
        free(buf);
    return rc;
}

/* The acks of one run, in the order of the changes: a ring of packed CaptureRequests
 * filled by the run loop and drained by the sender thread. The slot being sent stays
 * counted until its send completes, so the run loop never writes into it; each slot's
 * buffer is reused. */
typedef struct ack_slot {
    uint8_t *buf;
    size_t len, cap;
} ack_slot;

typedef struct ack_queue {
    pthread_mutex_t mu;
    /* Signalled only when someone waits on it: a futex wake per ack would cost more
     * than the send it overlaps. */
    pthread_cond_t work;  /* the sender waits: a slot queued, closing */
    pthread_cond_t space; /* the run loop waits: a slot sent, a failure */
    bool sender_idle;
    int space_waiters;
    ack_slot *slots;
    size_t cap, head, count;
    bool closing; /* no more acks: the sender sends what is queued, then exits */
    int rc;       /* the first send failure; nothing more is sent after it */
    char err[256];
    rpc_stream *st;
} ack_queue;

static void *ack_sender(void *arg)
{
    ack_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->closing) {
            q->sender_idle = true;
            pthread_cond_wait(&q->work, &q->mu);
            q->sender_idle = false;
        }
        if (q->count == 0)
            break;
        ack_slot *slot = &q->slots[q->head];
        pthread_mutex_unlock(&q->mu);
        char err[256];
        int rc = rpc_stream_send(q->st, slot->buf, slot->len, err, sizeof err);
        pthread_mutex_lock(&q->mu);
        if (rc != PGC_OK) {
            q->rc = rc;
            memcpy(q->err, err, sizeof q->err);
            q->count = 0;
            pthread_cond_broadcast(&q->space);
            break;
        }
        q->head = (q->head + 1) % q->cap;
        q->count--;
        if (q->space_waiters)
            pthread_cond_broadcast(&q->space);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Queues the ack (or requeue) of `m`. Waits while the window is full, until a slot frees,
 * the sender fails (its status is returned) or the consumer is stopped (PGC_OK: the run
 * loop sees the stop). */
static int queue_ack(pgc_consumer *c, ack_queue *q, const Pgcapture__CaptureMessage *m,
                     const char *reason, char *err, size_t err_len)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && q->rc == PGC_OK && !atomic_load(&c->stop)) {
        struct timespec ts;
        clock_deadline_ms(&ts, POLL_MS);
        q->space_waiters++;
        pthread_cond_timedwait(&q->space, &q->mu, &ts);
        q->space_waiters--;
    }
    int rc = q->rc;
    if (rc != PGC_OK)
        errbuf_set(err, err_len, rc, "%s", q->err);
    bool full = q->count == q->cap;
    ack_slot *slot = &q->slots[(q->head + q->count) % q->cap];
    pthread_mutex_unlock(&q->mu);
    if (rc != PGC_OK || full)
        return rc;

    Pgcapture__Checkpoint empty;
    Pgcapture__CaptureAck ack;
    Pgcapture__CaptureRequest req;
    ack_request(&req, &ack, &empty, m, reason);
    size_t len = pgcapture__capture_request__get_packed_size(&req);
    if (len > slot->cap) {
        size_t cap = len < 128 ? 128 : len;
        uint8_t *buf = realloc(slot->buf, cap);
        if (!buf)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for an ack");
        slot->buf = buf;
        slot->cap = cap;
    }
    slot->len = pgcapture__capture_request__pack(&req, slot->buf);

    pthread_mutex_lock(&q->mu);
    if (q->rc == PGC_OK) { /* a failed sender emptied the queue and sends nothing more */
        q->count++;
        if (q->sender_idle)
            pthread_cond_signal(&q->work);
    }
    pthread_mutex_unlock(&q->mu);
    return PGC_OK;
}

/* Ends the sender: after a stop (`flush`) it may send what is queued for up to
 * ACK_FLUSH_MS; otherwise, or past that, the stream is cancelled so that a send stuck on
 * flow control returns. */
static void ack_queue_close(ack_queue *q, bool flush, pthread_t sender)
{
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    pthread_cond_signal(&q->work);
    if (flush) {
        struct timespec ts;
        clock_deadline_ms(&ts, ACK_FLUSH_MS);
        q->space_waiters++;
        while (q->count > 0 && pthread_cond_timedwait(&q->space, &q->mu, &ts) != ETIMEDOUT)
            ;
        q->space_waiters--;
    }
    bool drained = q->count == 0;
    pthread_mutex_unlock(&q->mu);
    if (!drained)
        rpc_stream_cancel(q->st);
    pthread_join(sender, NULL);
}

static void ack_queue_free(ack_queue *q)
{
    for (size_t i = 0; q->slots && i < q->cap; i++)
        free(q->slots[i].buf);
    free(q->slots);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->space);
    pthread_mutex_destroy(&q->mu);
}

static int ack_queue_init(ack_queue *q, size_t cap, rpc_stream *st, char *err, size_t err_len)
{
    memset(q, 0, sizeof *q);
    q->cap = cap;
    q->st = st;
    q->rc = PGC_OK;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->space, NULL);
    if (!(q->slots = calloc(cap, sizeof *q->slots))) {
        ack_queue_free(q);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for %zu acks", cap);
    }
    return PGC_OK;
}

/* The stream ended: turn the gRPC status into ours. */
static int stream_ended(pgc_consumer *c, rpc_stream *st, char *err, size_t err_len)
{
    const char *msg = NULL;
    int code = rpc_stream_status(st, &msg);
    if (atomic_load(&c->stop))
        return PGC_OK;
    int rc = code == GRPC_NOT_FOUND           ? PGC_ERR_NOT_FOUND
             : code == GRPC_INVALID_ARGUMENT  ? PGC_ERR_INVALID
             : code == GRPC_DATA_LOSS         ? PGC_ERR_DATA_LOSS
             : code == GRPC_UNAUTHENTICATED   ? PGC_ERR_UNAUTHENTICATED
             : code == GRPC_PERMISSION_DENIED ? PGC_ERR_PERMISSION
                                              : PGC_ERR_CONN;
    return errbuf_set(err, err_len, rc,
                      "gateway %s ended the Capture stream of %s: gRPC status %d%s%s", c->gateway,
                      c->uri, code, msg && *msg ? ": " : "", msg ? msg : "");
}

/* After a lost connection the next run gets a new channel: this one may sit in gRPC's own
 * reconnect back-off (growing to minutes) while the gateway is back already. */
static int drop_channel_after(pgc_consumer *c, int rc)
{
    if (rc == PGC_ERR_CONN) {
        rpc_channel_destroy(c->channel);
        c->channel = NULL;
    }
    return rc;
}

/* After a stop: half-closes and waits (bounded) for the gateway to end the call, so that
 * it reads every ack sent before (a cancel could overtake them, and what they acked would
 * come back on the next run). What arrives meanwhile is not handled: the gateway hands
 * back what was not acked. */
static void close_gracefully(rpc_stream *st)
{
    char err[128];
    if (rpc_stream_close_send(st, err, sizeof err) != PGC_OK)
        return;
    int64_t until = clock_mono_ms() + CLOSE_WAIT_MS;
    for (int64_t left; (left = until - clock_mono_ms()) > 0;) {
        uint8_t *data = NULL;
        size_t len = 0;
        int got = rpc_stream_recv(st, (int)left, &data, &len, err, sizeof err);
        free(data);
        if (got != 1)
            break;
    }
}

pgc_status pgc_consumer_run(pgc_consumer *c, const pgc_change_handler *handler, char *err,
                            size_t err_len)
{
    if (!c || !handler || !handler->handle)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "consumer: NULL argument");
    if (atomic_exchange(&c->stop, 0))
        return PGC_OK;
    const pgc_change_handler h = *handler;
    int rc;
    if (!c->channel && (rc = open_channel(c, err, err_len)) != PGC_OK)
        return rc;
    rpc_stream *st = NULL;
    if ((rc = rpc_stream_open(c->channel, CAPTURE_METHOD, &st, err, err_len)) != PGC_OK)
        return drop_channel_after(c, rc);
    if ((rc = send_init(c, st, err, err_len)) != PGC_OK) {
        if (rc == PGC_ERR_CONN)
            rc = stream_ended(c, st, err, err_len);
        rpc_stream_destroy(st);
        return drop_channel_after(c, rc);
    }
    ack_queue q, *queue = NULL; /* NULL: acks are sent on this thread */
    pthread_t sender;
    if (c->ack_window) {
        if ((rc = ack_queue_init(&q, c->ack_window, st, err, err_len)) != PGC_OK) {
            rpc_stream_destroy(st);
            return rc;
        }
        if (pthread_create(&sender, NULL, ack_sender, &q) != 0) {
            ack_queue_free(&q);
            rpc_stream_destroy(st);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: cannot start the ack sender");
        }
        queue = &q;
    }
    bool ended = false; /* the server ended the stream (its status is read) */
    for (;;) {
        if (atomic_load(&c->stop)) {
            rc = PGC_OK;
            break;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        int got = rpc_stream_recv(st, POLL_MS, &data, &len, err, err_len);
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
        Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, data);
        free(data);
        if (!m) {
            rc = errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                            "gateway %s sent %zu bytes that are not a CaptureMessage", c->gateway,
                            len);
            break;
        }
        pgc_change change;
        rc = change_view(&change, m, err, err_len);
        if (rc != PGC_OK) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
            break;
        }
        const char *reason = NULL;
        pgc_verdict v = h.handle(h.arg, &change, &reason);
        if (v == PGC_VERDICT_REQUEUE && (!reason || !*reason))
            reason = "requeued by consumer";
        if (v != PGC_VERDICT_REQUEUE)
            reason = "";
        rc = queue ? queue_ack(c, queue, m, reason, err, err_len)
                   : send_ack(st, m, reason, err, err_len);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        if (rc == PGC_ERR_CONN) {
            /* A send failed: the call is over, and its status (read once the
             * messages still buffered are skipped: they were not acked) says why. */
            while ((got = rpc_stream_recv(st, 10 * POLL_MS, &data, &len, err, err_len)) == 1)
                free(data);
            ended = got == 0;
            break;
        }
        if (rc != PGC_OK)
            break;
    }
    /* After a stop the decided acks still go out; otherwise they cannot. */
    if (queue) {
        ack_queue_close(queue, rc == PGC_OK && !ended, sender);
        ack_queue_free(queue);
    }
    if (ended)
        rc = stream_ended(c, st, err, err_len);
    else if (rc == PGC_OK)
        close_gracefully(st);
    rpc_stream_destroy(st);
    drop_channel_after(c, rc);
    if (rc == PGC_OK && err && err_len)
        err[0] = '\0'; /* not the last receive's time-out */
    /* A stop ends this run only: the consumer may be run again. */
    atomic_store(&c->stop, 0);
    return rc;
}
