/* The controller's gRPC requests (see controller.h), handled in order on the controller
 * thread: Schedule, StopSchedule, SetScheduleCoolDown and Status answer at once;
 * PullDumpInfo streams join a URI's queue, get items handed out by dump_queue_dispatch and
 * report each item done or requeued. Every change is stored (controller_store.c) before it
 * is answered. */
#include "roles/controller/controller_private.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/acl.h"
#include "core/metrics.h"
#include "core/schemalist.h"
#include "core/status.h"
#include "roles/controller/controller_parse.h"
#include "roles/controller/queue_kv.h"

#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request that does not parse: INVALID_ARGUMENT with the reason (RESOURCE_EXHAUSTED when
 * out of memory). */
static void refuse(rpc_call *call, int rc, const char *err)
{
    rpc_call_finish(
        call, rc == PGC_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT,
        err);
}

/* Sends a packed message and finishes OK. */
static void reply(rpc_call *call, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        return;
    }
    protobuf_c_message_pack(m, buf);
    rpc_call_send(call, buf, n);
    free(buf);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void reply_empty(rpc_call *call)
{
    rpc_call_send(call, (const uint8_t *)"", 0);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Items of `uri` pending or outstanding. */
static uint64_t uri_items(controller *c, const char *uri)
{
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats st;
        dump_queue_uri_stats_at(c->q, i, &st);
        if (strcmp(st.uri, uri) == 0)
            return st.pending + st.outstanding;
    }
    return 0;
}

/* The ACL's verdict on the call's peer doing `verb` on `uri`: PGC_OK,
 * PGC_ERR_UNAUTHENTICATED or PGC_ERR_PERMISSION. */
static int check(controller *c, rpc_call *call, controller_verb verb, const char *uri)
{
    if (!c->acl)
        return PGC_OK;
    const char *ids[16];
    size_t n = rpc_call_identity_count(call);
    if (n > sizeof ids / sizeof ids[0])
        n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++)
        ids[i] = rpc_call_identity(call, i);
    acl_peer p;
    acl_peer_init(&p, ids, n, rpc_call_token(call));
    return controller_acl_check(c->acl, verb, uri, &p);
}

/* True when the peer may do `verb` on `uri`; otherwise ends the call with UNAUTHENTICATED
 * or PERMISSION_DENIED (the same for a URI the controller has never seen). */
static bool authorized(controller *c, rpc_call *call, controller_verb verb, const char *uri)
{
    static const char *const what[] = {"schedule", "read the status of", "pull the dumps of"};
    int rc = check(c, call, verb, uri);
    if (rc == PGC_OK)
        return true;
    log_warn("request refused", "peer=%s uri=%s verb=%s status=%s", rpc_call_peer(call), uri,
             what[verb], rc == PGC_ERR_UNAUTHENTICATED ? "UNAUTHENTICATED" : "PERMISSION_DENIED");
    if (rc == PGC_ERR_UNAUTHENTICATED) {
        rpc_call_finish(call, GRPC_STATUS_UNAUTHENTICATED,
                        "no credentials the controller accepts (a client certificate or a token)");
    } else {
        char msg[CONTROLLER_ERR_LEN];
        snprintf(msg, sizeof msg, "not allowed to %s uri \"%.200s\"", what[verb], uri);
        rpc_call_finish(call, GRPC_STATUS_PERMISSION_DENIED, msg);
    }
    return false;
}

void controller_requests_schedule(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[CONTROLLER_ERR_LEN];
    Pgcapture__ScheduleRequest *req;
    dump_queue_spec *specs;
    int rc = controller_parse_schedule(data, len, &req, &specs, err, sizeof err);
    if (rc != PGC_OK) {
        log_warn("schedule refused", "error=\"%s\"", err);
        refuse(call, rc, err);
        return;
    }
    if (!authorized(c, call, CONTROLLER_VERB_SCHEDULE, req->uri))
        goto out;
    const char *schemas = controller_acl_dump_schemas(c->acl, req->uri);
    for (size_t i = 0; i < req->n_dumps; i++) {
        const char *schema = specs[i].schema ? specs[i].schema : "";
        if (!schemalist_allows(schemas, schema)) {
            snprintf(err, sizeof err,
                     "dumps[%zu]: schema \"%.100s\" is not one this URI's dumps may read "
                     "(dump_schemas; by default no pg_* schema, information_schema or pgcapture)",
                     i, schema);
            log_warn("schedule refused", "uri=%s error=\"%s\"", req->uri, err);
            rpc_call_finish(call, GRPC_STATUS_PERMISSION_DENIED, err);
            goto out;
        }
    }
    if (c->cfg->max_items_per_uri > 0 &&
        uri_items(c, req->uri) + req->n_dumps > (uint64_t)c->cfg->max_items_per_uri) {
        snprintf(err, sizeof err,
                 "uri \"%.200s\" would hold more than %lld items: wait for it to drain", req->uri,
                 (long long)c->cfg->max_items_per_uri);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, err);
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
        if ((rc = controller_store_item(c, req->uri, &it, err, sizeof err)) != PGC_OK)
            break;
    }
    if (rc == PGC_OK)
        rc = dump_queue_schedule(c->q, req->uri, specs, req->n_dumps, NULL, err, sizeof err);
    if (rc == PGC_OK && controller_store_meta(c, req->uri, err, sizeof err) != PGC_OK) {
        /* Queued and its items stored: still durable (a restore takes the next id from
         * the item keys), so answer OK after logging. */
        log_warn("schedule stored without its counters", "uri=%s error=\"%s\"", req->uri, err);
    }
    if (rc != PGC_OK) {
        for (size_t i = 0; i < written; i++)
            controller_store_forget(c, req->uri, first + i);
        log_error("schedule not stored", "uri=%s dumps=%zu error=\"%s\"", req->uri, req->n_dumps,
                  err);
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, err);
        goto out;
    }
    log_info("dumps scheduled", "uri=%s dumps=%zu first_id=%llu", req->uri, req->n_dumps,
             (unsigned long long)first);
    reply_empty(call);
out:
    free(specs);
    pgcapture__schedule_request__free_unpacked(req, NULL);
}

void controller_requests_stop(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[CONTROLLER_ERR_LEN];
    Pgcapture__StopScheduleRequest *req;
    int rc = controller_parse_stop(data, len, &req, err, sizeof err);
    if (rc != PGC_OK) {
        refuse(call, rc, err);
        return;
    }
    if (authorized(c, call, CONTROLLER_VERB_SCHEDULE, req->uri)) {
        uint64_t *ids = NULL;
        long n = dump_queue_stop(c->q, req->uri, &ids);
        if (n < 0) {
            rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        } else {
            for (long i = 0; i < n; i++)
                controller_store_forget(c, req->uri, ids[i]);
            free(ids);
            controller_store_purge_if_drained(c, req->uri);
            log_info("schedule stopped", "uri=%s dropped=%ld", req->uri, n);
            reply_empty(call);
        }
    }
    pgcapture__stop_schedule_request__free_unpacked(req, NULL);
}

void controller_requests_cooldown(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[CONTROLLER_ERR_LEN];
    Pgcapture__SetScheduleCoolDownRequest *req;
    int64_t ms;
    int rc = controller_parse_cooldown(data, len, &req, &ms, err, sizeof err);
    if (rc != PGC_OK) {
        refuse(call, rc, err);
        return;
    }
    if (!authorized(c, call, CONTROLLER_VERB_SCHEDULE, req->uri))
        goto out;
    if (dump_queue_set_cooldown(c->q, req->uri, ms) != PGC_OK) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        goto out;
    }
    if (controller_store_meta(c, req->uri, err, sizeof err) != PGC_OK) {
        log_error("cool-down not stored", "uri=%s error=\"%s\"", req->uri, err);
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, err);
        goto out;
    }
    log_info("cool-down set", "uri=%s cool_down_ms=%lld", req->uri, (long long)ms);
    reply_empty(call);
out:
    pgcapture__set_schedule_cool_down_request__free_unpacked(req, NULL);
}

void controller_requests_status(controller *c, rpc_call *call, const uint8_t *data, size_t len)
{
    char err[CONTROLLER_ERR_LEN];
    Pgcapture__ControllerStatusRequest *req;
    int rc = controller_parse_status(data, len, &req, err, sizeof err);
    if (rc != PGC_OK) {
        refuse(call, rc, err);
        return;
    }
    bool one = req->uri && *req->uri;
    /* One URI: its verdict. Every URI: those the peer may read, once it is authenticated. */
    if (one ? !authorized(c, call, CONTROLLER_VERB_STATUS, req->uri)
            : check(c, call, CONTROLLER_VERB_STATUS, "") == PGC_ERR_UNAUTHENTICATED &&
                  !authorized(c, call, CONTROLLER_VERB_STATUS, "")) {
        pgcapture__controller_status_request__free_unpacked(req, NULL);
        return;
    }
    size_t n = dump_queue_uri_count(c->q), k = 0;
    Pgcapture__ControllerUriStatus *st = calloc(n ? n : 1, sizeof *st);
    Pgcapture__ControllerUriStatus **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    Google__Protobuf__Duration *cds = calloc(n ? n : 1, sizeof *cds);
    if (!st || !ptrs || !cds) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        goto out;
    }
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < n; i++) {
        dump_queue_uri_stats s;
        dump_queue_uri_stats_at(c->q, i, &s);
        if (one ? strcmp(req->uri, s.uri) != 0
                : check(c, call, CONTROLLER_VERB_STATUS, s.uri) != PGC_OK)
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
    char err[CONTROLLER_ERR_LEN];
    switch (done.outcome) {
    case DUMP_QUEUE_NOTHING:
        return;
    case DUMP_QUEUE_ACKED:
        metric_inc(metrics_get(METRIC_CONTROLLER_DONE, uri));
        log_debug("item acked", "uri=%s id=%llu stream=%llu", uri, (unsigned long long)done.id,
                  (unsigned long long)stream_id);
        controller_store_forget(c, uri, done.id);
        if (controller_store_meta(c, uri, err, sizeof err) != PGC_OK)
            log_warn("done count not stored", "uri=%s error=\"%s\"", uri, err);
        controller_store_purge_if_drained(c, uri);
        return;
    case DUMP_QUEUE_DROPPED:
        controller_store_forget(c, uri, done.id);
        controller_store_purge_if_drained(c, uri);
        return;
    case DUMP_QUEUE_REQUEUED:
        metric_inc(metrics_get(METRIC_CONTROLLER_REQUEUES, uri));
        log_info("item requeued", "uri=%s id=%llu stream=%llu attempts=%u reason=\"%s\"", uri,
                 (unsigned long long)done.id, (unsigned long long)stream_id, done.item->attempts,
                 reason);
        if (controller_store_item(c, uri, done.item, err, sizeof err) != PGC_OK)
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
    char err[CONTROLLER_ERR_LEN];
    Pgcapture__DumpInfoRequest *req;
    int rc = controller_parse_pull(data, len, !ps->uri, &req, err, sizeof err);
    if (rc != PGC_OK) {
        close_stream(c, ps, err);
        refuse(call, rc, err);
        return;
    }
    if (!ps->uri) {
        if (!authorized(c, call, CONTROLLER_VERB_PULL, req->uri)) {
            /* Refused: the stream never joins the URI's queue. */
        } else if (!(ps->uri = strdup(req->uri)) ||
                   dump_queue_stream_open(c->q, ps->uri, ps->id) != PGC_OK) {
            free(ps->uri);
            ps->uri = NULL;
            rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
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

void controller_requests_pull(controller *c, const controller_event *e)
{
    pull_stream *ps = rpc_call_ctx(e->call);
    if (!ps)
        return;
    if (!stream_by_id(c, ps->id)) {
        if (c->n_streams == c->cap_streams) {
            size_t cap = c->cap_streams ? c->cap_streams * 2 : 16;
            pull_stream **p = realloc(c->streams, cap * sizeof *p);
            if (p) {
                c->streams = p;
                c->cap_streams = cap;
            }
        }
        if (c->n_streams < c->cap_streams) {
            c->streams[c->n_streams++] = ps;
        } else if (e->kind != CONTROLLER_EV_DONE) {
            /* Untracked, it holds no item; its end frees it. */
            rpc_call_finish(e->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
            return;
        }
    }
    if (e->kind == CONTROLLER_EV_MESSAGE) {
        handle_pull_message(c, e->call, e->data, e->len);
    } else if (e->kind == CONTROLLER_EV_HALF_CLOSE) {
        close_stream(c, ps, "stream ended");
        rpc_call_finish(e->call, GRPC_STATUS_OK, NULL);
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
}

void controller_requests_dispatch(void *arg, const char *uri, uint64_t stream_id,
                                  const dump_queue_item *item)
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
    /* A failed send means the stream is over: its CONTROLLER_EV_DONE requeues the item. */
    if (rpc_call_send(ps->call, buf, n) != PGC_OK) {
        log_debug("item not sent: stream over", "uri=%s stream=%llu", uri,
                  (unsigned long long)stream_id);
        return;
    }
    /* A URI with a cool-down hands each item out only after waiting it. */
    if (dump_queue_cooldown(c->q, uri) > 0)
        metric_inc(metrics_get(METRIC_CONTROLLER_COOLDOWNS, uri));
    log_debug("item handed out", "uri=%s id=%llu stream=%llu table=%s.%s pages=%u-%u", uri,
              (unsigned long long)item->id, (unsigned long long)stream_id, item->schema,
              item->table, item->page_begin, item->page_end);
}
