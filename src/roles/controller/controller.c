/* The controller role (see controller.h).
 *
 * Threading: gRPC callbacks run on the server's completion-queue thread and must not
 * block, so they only copy each request into an inbox (mutex + condition variable) with
 * a reference on its call. The controller thread (the one in controller_run) owns the
 * queue, the key-value bucket and every pull stream's state: it drains the inbox in
 * order, writes the bucket (blocking round trips to NATS), answers unary calls, hands
 * items to idle streams and sleeps until the next event or the next back-off/cool-down
 * expiry. rpc_call_send and rpc_call_finish are thread-safe, so it answers directly.
 *
 * Durability: an item's key is written before Schedule answers and deleted only when the
 * item is acked (or dropped by StopSchedule), so whatever was scheduled and not acked is
 * handed out again after a restart, outstanding items included. */
#include "roles/controller/controller.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "jetstream/jskv.h"
#include "jetstream/natsprobe.h"
#include "roles/controller/dump_queue.h"
#include "roles/controller/queue_kv.h"
#include "rpc/health.h"
#include "rpc/server.h"

#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_LEN 512
#define IDLE_WAIT_MS 200
#define CONNECT_RETRY_MS 1000
#define RETRY_LOG_INTERVAL_MS 30000
/* Each item is one synchronous write to the bucket: 100,000 take about 15 s. */
#define MAX_DUMPS_PER_SCHEDULE 100000

static volatile sig_atomic_t stop_requested;

void controller_request_stop(void)
{
    stop_requested = 1;
}

typedef enum method_kind {
    M_PULL = 0,
    M_SCHEDULE,
    M_STOP,
    M_COOLDOWN,
    M_STATUS,
} method_kind;

typedef enum event_kind {
    EV_MESSAGE,    /* a request message of any method */
    EV_HALF_CLOSE, /* a pull stream's client stopped sending */
    EV_DONE,       /* a pull stream is over */
} event_kind;

typedef struct event {
    struct event *next;
    event_kind kind;
    method_kind method;
    rpc_call *call; /* referenced; the controller thread unrefs */
    uint8_t *data;
    size_t len;
} event;

/* One PullDumpInfo stream, owned by the controller thread once its first event is
 * handled (created on the completion-queue thread in on_start). */
typedef struct pull_stream {
    uint64_t id;
    rpc_call *call; /* referenced until EV_DONE is handled */
    char *uri;      /* NULL until the first request */
    bool closed;    /* its queue stream is closed (item requeued) */
} pull_stream;

typedef struct controller {
    const controller_config *cfg;
    dump_queue *q;
    jskv *kv;
    rpc_server *srv;
    rpc_health *health; /* grpc.health.v1: NOT_SERVING while NATS is unreachable */
    natsprobe *nats_probe;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    event *head, *tail;

    uint64_t next_stream_id; /* under mu */
    pull_stream **streams;   /* controller thread only */
    size_t n_streams, cap_streams;
} controller;

/* ---- completion-queue thread: copy into the inbox ----------------------------------- */

static void push_event(controller *c, event_kind kind, method_kind method, rpc_call *call,
                       const uint8_t *data, size_t len)
{
    event *e = calloc(1, sizeof *e);
    if (!e || (len && !(e->data = malloc(len)))) {
        /* Daemons may abort on allocation failure (docs/style.md): a controller that cannot
         * queue a request cannot keep its guarantees; its durable state is in NATS. */
        log_error("out of memory queueing a request", "method=%d", (int)method);
        abort();
    }
    e->kind = kind;
    e->method = method;
    e->call = call;
    rpc_call_ref(call);
    if (len)
        memcpy(e->data, data, len);
    e->len = len;
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void pull_on_start(rpc_call *call)
{
    controller *c = rpc_call_method_ctx(call);
    pull_stream *ps = calloc(1, sizeof *ps);
    if (!ps) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        return;
    }
    pthread_mutex_lock(&c->mu);
    ps->id = ++c->next_stream_id;
    pthread_mutex_unlock(&c->mu);
    ps->call = call;
    rpc_call_ref(call);
    rpc_call_set_ctx(call, ps);
}

static void pull_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    push_event(rpc_call_method_ctx(call), EV_MESSAGE, M_PULL, call, data, len);
}

static void pull_on_half_close(rpc_call *call)
{
    push_event(rpc_call_method_ctx(call), EV_HALF_CLOSE, M_PULL, call, NULL, 0);
}

static void pull_on_done(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    if (rpc_call_ctx(call))
        push_event(rpc_call_method_ctx(call), EV_DONE, M_PULL, call, NULL, 0);
}

#define UNARY_HANDLER(fn, kind)                                                                    \
    static void fn(rpc_call *call, const uint8_t *data, size_t len)                                \
    {                                                                                              \
        push_event(rpc_call_method_ctx(call), EV_MESSAGE, kind, call, data, len);                  \
    }
UNARY_HANDLER(schedule_on_message, M_SCHEDULE)
UNARY_HANDLER(stop_on_message, M_STOP)
UNARY_HANDLER(cooldown_on_message, M_COOLDOWN)
UNARY_HANDLER(status_on_message, M_STATUS)

static void unary_on_done(rpc_call *call, bool cancelled)
{
    (void)call, (void)cancelled;
}

/* ---- controller thread ----------------------------------------------------------------- */

static void finish(rpc_call *call, grpc_status_code code, const char *msg)
{
    rpc_call_finish(call, code, msg);
}

/* Sends a packed message and finishes OK. */
static void reply(rpc_call *call, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        return;
    }
    protobuf_c_message_pack(m, buf);
    rpc_call_send(call, buf, n);
    free(buf);
    finish(call, GRPC_STATUS_OK, NULL);
}

static void reply_empty(rpc_call *call)
{
    rpc_call_send(call, (const uint8_t *)"", 0);
    finish(call, GRPC_STATUS_OK, NULL);
}

static int persist_meta(controller *c, const char *uri, char *err, size_t err_len)
{
    char key[QUEUE_KV_MAX_KEY_BYTES];
    uint8_t val[64];
    dump_queue_uri_stats st;
    memset(&st, 0, sizeof st);
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats_at(c->q, i, &st);
        if (strcmp(st.uri, uri) == 0)
            break;
    }
    if (queue_kv_meta_key(uri, key, sizeof key) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri cannot be a key");
    size_t n = queue_kv_encode_meta(dump_queue_cooldown(c->q, uri), st.done,
                                    dump_queue_next_id(c->q, uri), val, sizeof val);
    return jskv_put(c->kv, key, val, n, err, err_len);
}

static int persist_item(controller *c, const char *uri, const dump_queue_item *it, char *err,
                        size_t err_len)
{
    char key[QUEUE_KV_MAX_KEY_BYTES];
    uint8_t val[QUEUE_KV_MAX_VALUE_BYTES];
    size_t n = queue_kv_encode_item(it, val, sizeof val);
    if (queue_kv_item_key(uri, it->id, key, sizeof key) != PGC_OK || n == 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "item cannot be stored");
    return jskv_put(c->kv, key, val, n, err, err_len);
}

static void forget_item(controller *c, const char *uri, uint64_t id)
{
    char key[QUEUE_KV_MAX_KEY_BYTES], err[ERR_LEN];
    if (queue_kv_item_key(uri, id, key, sizeof key) != PGC_OK)
        return;
    if (jskv_delete(c->kv, key, err, sizeof err) != PGC_OK)
        log_warn("cannot delete a finished item from the bucket: it will be handed out again "
                 "after a restart",
                 "uri=%s id=%llu error=\"%s\"", uri, (unsigned long long)id, err);
}

/* Once a URI has nothing left (pending or outstanding), the markers of its finished
 * items are dropped in one purge, so the bucket holds no more than the live schedule. */
static void purge_if_drained(controller *c, const char *uri)
{
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats st;
        dump_queue_uri_stats_at(c->q, i, &st);
        if (strcmp(st.uri, uri) != 0)
            continue;
        if (st.pending || st.outstanding)
            return;
        char filter[QUEUE_KV_MAX_KEY_BYTES], err[ERR_LEN];
        if (queue_kv_items_filter(uri, filter, sizeof filter) != PGC_OK)
            return;
        if (jskv_purge(c->kv, filter, err, sizeof err) != PGC_OK)
            log_warn("cannot purge the markers of finished items", "uri=%s error=\"%s\"", uri, err);
        return;
    }
}

static void handle_schedule(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[ERR_LEN];
    Pgcapture__ScheduleRequest *req = pgcapture__schedule_request__unpack(NULL, len, data);
    if (!req) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed ScheduleRequest");
        return;
    }
    if (req->n_dumps > MAX_DUMPS_PER_SCHEDULE) {
        snprintf(err, sizeof err, "%zu dumps in one request, at most %d", req->n_dumps,
                 MAX_DUMPS_PER_SCHEDULE);
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, err);
        pgcapture__schedule_request__free_unpacked(req, NULL);
        return;
    }
    dump_queue_spec *specs = calloc(req->n_dumps ? req->n_dumps : 1, sizeof *specs);
    if (!specs) {
        finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        pgcapture__schedule_request__free_unpacked(req, NULL);
        return;
    }
    int rc = PGC_OK;
    if (!req->uri || !*req->uri) {
        rc = errbuf_set(err, sizeof err, PGC_ERR_INVALID, "uri is empty");
    }
    for (size_t i = 0; rc == PGC_OK && i < req->n_dumps; i++) {
        const Pgcapture__DumpInfoResponse *d = req->dumps[i];
        specs[i] = (dump_queue_spec){d->schema, d->table, d->page_begin, d->page_end};
        char why[256];
        if ((rc = dump_queue_validate(req->uri, &specs[i], why, sizeof why)) != PGC_OK)
            errbuf_set(err, sizeof err, rc, "dumps[%zu]: %s", i, why);
    }
    if (rc != PGC_OK) {
        log_warn("schedule refused", "uri=%s error=\"%s\"", req->uri ? req->uri : "", err);
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, err);
        goto out;
    }
    /* Persist first, with the ids the queue will give, so an answered Schedule is durable. */
    uint64_t first = dump_queue_next_id(c->q, req->uri);
    size_t written = 0;
    for (; written < req->n_dumps; written++) {
        dump_queue_item it = {first + written,
                              (char *)(specs[written].schema ? specs[written].schema : ""),
                              (char *)specs[written].table,
                              specs[written].page_begin,
                              specs[written].page_end,
                              0,
                              0,
                              false};
        if ((rc = persist_item(c, req->uri, &it, err, sizeof err)) != PGC_OK)
            break;
    }
    if (rc == PGC_OK)
        rc = dump_queue_schedule(c->q, req->uri, specs, req->n_dumps, NULL, err, sizeof err);
    if (rc == PGC_OK && persist_meta(c, req->uri, err, sizeof err) != PGC_OK) {
        /* Queued and its items stored: still durable (a restore takes the next id from
         * the item keys), so answer OK after logging. */
        log_warn("schedule stored without its counters", "uri=%s error=\"%s\"", req->uri, err);
    }
    if (rc != PGC_OK) {
        for (size_t i = 0; i < written; i++)
            forget_item(c, req->uri, first + i);
        log_error("schedule not stored", "uri=%s dumps=%zu error=\"%s\"", req->uri, req->n_dumps,
                  err);
        finish(call, GRPC_STATUS_UNAVAILABLE, err);
        goto out;
    }
    log_info("dumps scheduled", "uri=%s dumps=%zu first_id=%llu", req->uri, req->n_dumps,
             (unsigned long long)first);
    reply_empty(call);
out:
    free(specs);
    pgcapture__schedule_request__free_unpacked(req, NULL);
}

static void handle_stop(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    Pgcapture__StopScheduleRequest *req = pgcapture__stop_schedule_request__unpack(NULL, len, data);
    if (!req) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed StopScheduleRequest");
        return;
    }
    if (!req->uri || !*req->uri) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "uri is empty");
    } else {
        uint64_t *ids = NULL;
        long n = dump_queue_stop(c->q, req->uri, &ids);
        if (n < 0) {
            finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        } else {
            for (long i = 0; i < n; i++)
                forget_item(c, req->uri, ids[i]);
            free(ids);
            purge_if_drained(c, req->uri);
            log_info("schedule stopped", "uri=%s dropped=%ld", req->uri, n);
            reply_empty(call);
        }
    }
    pgcapture__stop_schedule_request__free_unpacked(req, NULL);
}

static void handle_cooldown(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[ERR_LEN];
    Pgcapture__SetScheduleCoolDownRequest *req =
        pgcapture__set_schedule_cool_down_request__unpack(NULL, len, data);
    if (!req) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed SetScheduleCoolDownRequest");
        return;
    }
    int64_t ms = 0;
    if (req->duration) {
        int64_t s = req->duration->seconds;
        int32_t ns = req->duration->nanos;
        if (s < 0 || ns < 0 || ns > 999999999 || s > 365LL * 24 * 3600) {
            finish(call, GRPC_STATUS_INVALID_ARGUMENT, "duration must be between 0 and 365 days");
            goto out;
        }
        ms = s * 1000 + ns / 1000000;
    }
    if (!req->uri || !*req->uri) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "uri is empty");
        goto out;
    }
    if (strlen(req->uri) > DUMP_QUEUE_MAX_URI_BYTES) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "uri is too long");
        goto out;
    }
    if (dump_queue_set_cooldown(c->q, req->uri, ms) != PGC_OK) {
        finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        goto out;
    }
    if (persist_meta(c, req->uri, err, sizeof err) != PGC_OK) {
        log_error("cool-down not stored", "uri=%s error=\"%s\"", req->uri, err);
        finish(call, GRPC_STATUS_UNAVAILABLE, err);
        goto out;
    }
    log_info("cool-down set", "uri=%s cool_down_ms=%lld", req->uri, (long long)ms);
    reply_empty(call);
out:
    pgcapture__set_schedule_cool_down_request__free_unpacked(req, NULL);
}

static void handle_status(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    Pgcapture__ControllerStatusRequest *req =
        pgcapture__controller_status_request__unpack(NULL, len, data);
    if (!req) {
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed ControllerStatusRequest");
        return;
    }
    size_t n = dump_queue_uri_count(c->q), k = 0;
    Pgcapture__ControllerUriStatus *st = calloc(n ? n : 1, sizeof *st);
    Pgcapture__ControllerUriStatus **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    Google__Protobuf__Duration *cds = calloc(n ? n : 1, sizeof *cds);
    if (!st || !ptrs || !cds) {
        finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        goto out;
    }
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < n; i++) {
        dump_queue_uri_stats s;
        dump_queue_uri_stats_at(c->q, i, &s);
        if (req->uri && *req->uri && strcmp(req->uri, s.uri) != 0)
            continue;
        Pgcapture__ControllerUriStatus *o = &st[k];
        pgcapture__controller_uri_status__init(o);
        google__protobuf__duration__init(&cds[k]);
        o->uri = (char *)s.uri;
        o->pending = s.pending;
        o->backing_off = s.backing_off;
        o->outstanding = s.outstanding;
        o->done = s.done;
        o->requeued = s.requeued;
        o->rows_sent = s.rows_sent;
        o->streams = (uint32_t)s.streams;
        cds[k].seconds = s.cooldown_ms / 1000;
        cds[k].nanos = (int32_t)(s.cooldown_ms % 1000) * 1000000;
        o->cool_down = &cds[k];
        if (s.done_here > 1 && s.last_done_ms > s.first_done_ms)
            o->done_per_second =
                (double)(s.done_here - 1) * 1000.0 / (double)(now - s.first_done_ms);
        o->eta_ms = dump_queue_eta_ms(&s, now);
        ptrs[k] = o;
        k++;
    }
    Pgcapture__ControllerStatusResponse resp = PGCAPTURE__CONTROLLER_STATUS_RESPONSE__INIT;
    resp.n_uris = k;
    resp.uris = ptrs;
    reply(call, &resp.base);
out:
    free(st);
    free(ptrs);
    free(cds);
    pgcapture__controller_status_request__free_unpacked(req, NULL);
}

static pull_stream *stream_by_id(controller *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_streams; i++)
        if (c->streams[i]->id == id)
            return c->streams[i];
    return NULL;
}

static void after_completion(controller *c, const char *uri, dump_queue_completion done,
                             const char *reason, uint64_t stream_id)
{
    char err[ERR_LEN];
    switch (done.outcome) {
    case DUMP_QUEUE_NOTHING:
        return;
    case DUMP_QUEUE_ACKED:
        log_debug("item acked", "uri=%s id=%llu stream=%llu", uri, (unsigned long long)done.id,
                  (unsigned long long)stream_id);
        forget_item(c, uri, done.id);
        if (persist_meta(c, uri, err, sizeof err) != PGC_OK)
            log_warn("done count not stored", "uri=%s error=\"%s\"", uri, err);
        purge_if_drained(c, uri);
        return;
    case DUMP_QUEUE_DROPPED:
        forget_item(c, uri, done.id);
        purge_if_drained(c, uri);
        return;
    case DUMP_QUEUE_REQUEUED:
        log_info("item requeued", "uri=%s id=%llu stream=%llu attempts=%u reason=\"%s\"", uri,
                 (unsigned long long)done.id, (unsigned long long)stream_id, done.item->attempts,
                 reason);
        if (persist_item(c, uri, done.item, err, sizeof err) != PGC_OK)
            log_warn("requeue count not stored", "uri=%s id=%llu error=\"%s\"", uri,
                     (unsigned long long)done.id, err);
        return;
    }
}

static void close_stream(controller *c, pull_stream *ps, const char *why)
{
    if (ps->closed || !ps->uri)
        return;
    ps->closed = true;
    dump_queue_completion done = dump_queue_stream_close(c->q, ps->id, clock_mono_ms());
    after_completion(c, ps->uri, done, why, ps->id);
    log_info("puller left", "uri=%s stream=%llu peer=%s", ps->uri, (unsigned long long)ps->id,
             rpc_call_peer(ps->call));
}

static void handle_pull_message(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    pull_stream *ps = rpc_call_ctx(call);
    if (!ps || ps->closed)
        return;
    Pgcapture__DumpInfoRequest *req = pgcapture__dump_info_request__unpack(NULL, len, data);
    if (!req) {
        close_stream(c, ps, "malformed DumpInfoRequest");
        finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed DumpInfoRequest");
        return;
    }
    if (!ps->uri) {
        if (!req->uri || !*req->uri || strlen(req->uri) > DUMP_QUEUE_MAX_URI_BYTES) {
            finish(call, GRPC_STATUS_INVALID_ARGUMENT,
                   "the first DumpInfoRequest must carry a uri (at most 1024 bytes)");
        } else if (!(ps->uri = strdup(req->uri)) ||
                   dump_queue_stream_open(c->q, ps->uri, ps->id) != PGC_OK) {
            free(ps->uri);
            ps->uri = NULL;
            finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        } else {
            log_info("puller joined", "uri=%s stream=%llu peer=%s", ps->uri,
                     (unsigned long long)ps->id, rpc_call_peer(call));
        }
    } else {
        const char *reason = req->requeue_reason ? req->requeue_reason : "";
        dump_queue_add_rows_sent(c->q, ps->id, req->rows_sent);
        dump_queue_completion done = dump_queue_complete(c->q, ps->id, reason, clock_mono_ms());
        after_completion(c, ps->uri, done, reason, ps->id);
    }
    pgcapture__dump_info_request__free_unpacked(req, NULL);
}

static void handle_event(controller *c, event *e)
{
    switch (e->method) {
    case M_SCHEDULE:
        handle_schedule(c, e->call, e->data, e->len);
        break;
    case M_STOP:
        handle_stop(c, e->call, e->data, e->len);
        break;
    case M_COOLDOWN:
        handle_cooldown(c, e->call, e->data, e->len);
        break;
    case M_STATUS:
        handle_status(c, e->call, e->data, e->len);
        break;
    case M_PULL: {
        pull_stream *ps = rpc_call_ctx(e->call);
        if (!ps)
            break;
        if (!stream_by_id(c, ps->id)) {
            if (c->n_streams == c->cap_streams) {
                size_t cap = c->cap_streams ? c->cap_streams * 2 : 16;
                pull_stream **p = realloc(c->streams, cap * sizeof *p);
                if (!p) {
                    log_error("out of memory tracking a puller", "stream=%llu",
                              (unsigned long long)ps->id);
                    abort();
                }
                c->streams = p;
                c->cap_streams = cap;
            }
            c->streams[c->n_streams++] = ps;
        }
        if (e->kind == EV_MESSAGE) {
            handle_pull_message(c, e->call, e->data, e->len);
        } else if (e->kind == EV_HALF_CLOSE) {
            close_stream(c, ps, "stream ended");
            finish(e->call, GRPC_STATUS_OK, NULL);
        } else {
            close_stream(c, ps, "stream ended");
            for (size_t i = 0; i < c->n_streams; i++)
                if (c->streams[i] == ps) {
                    c->streams[i] = c->streams[--c->n_streams];
                    break;
                }
            rpc_call_set_ctx(e->call, NULL);
            rpc_call_unref(ps->call); /* the reference taken in on_start */
            free(ps->uri);
            free(ps);
        }
        break;
    }
    }
}

static void on_dispatch(void *arg, const char *uri, uint64_t stream_id, const dump_queue_item *item)
{
    controller *c = arg;
    pull_stream *ps = stream_by_id(c, stream_id);
    if (!ps)
        return;
    Pgcapture__DumpInfoResponse resp = PGCAPTURE__DUMP_INFO_RESPONSE__INIT;
    resp.schema = item->schema;
    resp.table = item->table;
    resp.page_begin = item->page_begin;
    resp.page_end = item->page_end;
    uint8_t buf[QUEUE_KV_MAX_VALUE_BYTES + 32];
    size_t n = pgcapture__dump_info_response__pack(&resp, buf);
    /* A failed send means the stream is over: its EV_DONE requeues the item. */
    if (rpc_call_send(ps->call, buf, n) != PGC_OK)
        log_debug("item not sent: stream over", "uri=%s stream=%llu", uri,
                  (unsigned long long)stream_id);
    else
        log_debug("item handed out", "uri=%s id=%llu stream=%llu table=%s.%s pages=%u-%u", uri,
                  (unsigned long long)item->id, (unsigned long long)stream_id, item->schema,
                  item->table, item->page_begin, item->page_end);
}

/* ---- start-up: restore the bucket ------------------------------------------------------ */

typedef struct restore_ctx {
    controller *c;
    size_t items, metas, bad;
} restore_ctx;

static int restore_one(void *arg, const char *key, const uint8_t *data, size_t len)
{
    restore_ctx *r = arg;
    char uri[DUMP_QUEUE_MAX_URI_BYTES + 1], err[ERR_LEN];
    uint64_t id = 0;
    int rc = PGC_ERR_MALFORMED;
    snprintf(err, sizeof err, "unknown key");
    switch (queue_kv_parse_key(key, uri, sizeof uri, &id)) {
    case QUEUE_KV_KEY_ITEM: {
        queue_kv_item_value v;
        if ((rc = queue_kv_decode_item(data, len, &v, err, sizeof err)) != PGC_OK)
            break;
        dump_queue_spec spec = {v.schema, v.table, v.page_begin, v.page_end};
        if ((rc = dump_queue_restore_item(r->c->q, uri, id, &spec, v.attempts, err, sizeof err)) ==
            PGC_OK)
            r->items++;
        break;
    }
    case QUEUE_KV_KEY_META: {
        int64_t cd;
        uint64_t done, next;
        if ((rc = queue_kv_decode_meta(data, len, &cd, &done, &next, err, sizeof err)) != PGC_OK)
            break;
        if ((rc = dump_queue_restore_meta(r->c->q, uri, cd, done, next, err, sizeof err)) == PGC_OK)
            r->metas++;
        break;
    }
    case QUEUE_KV_KEY_UNKNOWN:
        break;
    }
    if (rc == PGC_ERR_NOMEM)
        return rc;
    if (rc != PGC_OK) {
        r->bad++;
        log_warn("bucket entry skipped", "key=%.64s error=\"%s\"", key, err);
    }
    return 0;
}

static int open_bucket(controller *c)
{
    char err[ERR_LEN];
    int64_t last_log = 0;
    while (!stop_requested) {
        int rc = jskv_open(c->cfg->nats_url, c->cfg->bucket, &c->kv, err, sizeof err);
        if (rc == PGC_OK)
            return 0;
        int64_t now = clock_mono_ms();
        if (last_log == 0 || now - last_log >= RETRY_LOG_INTERVAL_MS) {
            log_warn("cannot open the key-value bucket; retrying", "bucket=%s error=\"%s\"",
                     c->cfg->bucket, err);
            last_log = now;
        }
        clock_sleep_ms(CONNECT_RETRY_MS);
    }
    return -1;
}

static int restore(controller *c)
{
    char err[ERR_LEN];
    restore_ctx r = {c, 0, 0, 0};
    int rc = jskv_scan(c->kv, QUEUE_KV_META_FILTER, restore_one, &r, err, sizeof err);
    if (rc == PGC_OK)
        rc = jskv_scan(c->kv, QUEUE_KV_ITEM_FILTER, restore_one, &r, err, sizeof err);
    if (rc != PGC_OK) {
        log_error("cannot read the controller's state from its bucket", "bucket=%s error=\"%s\"",
                  c->cfg->bucket, rc == PGC_ERR_NOMEM ? "out of memory" : err);
        return -1;
    }
    dump_queue_restore_finish(c->q);
    log_info("state restored", "bucket=%s items=%zu uris=%zu skipped=%zu", c->cfg->bucket, r.items,
             dump_queue_uri_count(c->q), r.bad);
    return 0;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Handles, in order, and frees the events of a batch taken from the inbox. */
static void handle_batch(controller *c, event *batch)
{
    while (batch) {
        event *e = batch;
        batch = e->next;
        handle_event(c, e);
        rpc_call_unref(e->call);
        free(e->data);
        free(e);
    }
}

static void drain_inbox(controller *c)
{
    pthread_mutex_lock(&c->mu);
    event *batch = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->mu);
    handle_batch(c, batch);
}

static void run_loop(controller *c)
{
    int64_t wake = INT64_MAX;
    while (!stop_requested) {
        pthread_mutex_lock(&c->mu);
        if (!c->head) {
            int64_t now = clock_mono_ms();
            int64_t wait = wake == INT64_MAX ? IDLE_WAIT_MS : wake - now;
            if (wait > IDLE_WAIT_MS)
                wait = IDLE_WAIT_MS;
            if (wait > 0) {
                struct timespec ts;
                clock_deadline_mono_ms(&ts, wait);
                pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            }
        }
        event *batch = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        handle_batch(c, batch);
        wake = dump_queue_dispatch(c->q, clock_mono_ms(), on_dispatch, c);
    }
}

int controller_run(const controller_config *cfg)
{
    controller c;
    char err[ERR_LEN];
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    pthread_mutex_init(&c.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c.cv, &ca);
    pthread_condattr_destroy(&ca);
    int exit_code = 1;

    dump_queue_config qc = {cfg->backoff_base_ms, cfg->backoff_max_ms};
    if (!(c.q = dump_queue_create(&qc))) {
        log_error("out of memory", "what=%s", "queue");
        goto out;
    }
    if (open_bucket(&c) != 0) {
        exit_code = 0; /* stopped while waiting for NATS */
        goto out;
    }
    if (restore(&c) != 0)
        goto out;

    static const char *const services[] = {"pgcapture.DBLogController",
                                           "pgcapture.DBLogControllerAdmin"};
    if (rpc_health_create(services, 2, &c.health, err, sizeof err) != PGC_OK ||
        natsprobe_start(cfg->nats_url, "nats", &c.nats_probe, err, sizeof err) != PGC_OK) {
        log_error("cannot start health checks", "error=\"%s\"", err);
        goto out;
    }
    rpc_method methods[5 + RPC_HEALTH_N_METHODS] = {
        {"/pgcapture.DBLogController/PullDumpInfo", &c, pull_on_start, pull_on_message,
         pull_on_half_close, pull_on_done},
        {"/pgcapture.DBLogController/Schedule", &c, NULL, schedule_on_message, NULL, unary_on_done},
        {"/pgcapture.DBLogController/StopSchedule", &c, NULL, stop_on_message, NULL, unary_on_done},
        {"/pgcapture.DBLogController/SetScheduleCoolDown", &c, NULL, cooldown_on_message, NULL,
         unary_on_done},
        {"/pgcapture.DBLogControllerAdmin/Status", &c, NULL, status_on_message, NULL,
         unary_on_done},
    };
    rpc_health_methods(c.health, &methods[5]);
    int port = 0;
    if (rpc_server_create(methods, sizeof methods / sizeof methods[0], NULL, &c.srv, err,
                          sizeof err) != PGC_OK ||
        rpc_server_listen(c.srv, cfg->listen, &port, err, sizeof err) != PGC_OK ||
        rpc_server_start(c.srv, err, sizeof err) != PGC_OK) {
        log_error("cannot serve gRPC", "listen=%s error=\"%s\"", cfg->listen, err);
        goto out;
    }
    log_info("controller ready", "listen=%s port=%d bucket=%s", cfg->listen, port, cfg->bucket);
    run_loop(&c);
    log_info("stopping", "grace_ms=%lld", (long long)cfg->shutdown_grace_ms);

    /* Pull streams' on_done callbacks only queue events, so shutting down from this
     * thread cannot deadlock; their events are drained right after. */
    rpc_health_stop(c.health);
    rpc_server_shutdown(c.srv, (int)cfg->shutdown_grace_ms);
    drain_inbox(&c);
    exit_code = 0;
out:
    rpc_server_destroy(c.srv);
    rpc_health_destroy(c.health);
    natsprobe_stop(c.nats_probe);
    drain_inbox(&c);
    for (size_t i = 0; i < c.n_streams; i++) {
        rpc_call_unref(c.streams[i]->call);
        free(c.streams[i]->uri);
        free(c.streams[i]);
    }
    free(c.streams);
    jskv_destroy(c.kv);
    dump_queue_destroy(c.q);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return exit_code;
}
