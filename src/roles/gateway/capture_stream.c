/* The lifetime of one Capture stream (see capture_stream.h): created on the call's start,
 * its thread started by init, the URI resolved and its log opened on that thread, and the
 * call finished and everything freed at the end. */
#include "roles/gateway/capture_stream.h"
#include "roles/gateway/peer.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

/* Sequences from the ack floor a new stream asks back at most (take_back_unacked). */
#define REDELIVER_MAX_SEQS 100000
/* How long a new stream waits for an ending one of its durable to hand back. */
#define ENDING_WAIT_MS 10000
#define BATCH_WINDOW_BATCHES 16

static void stream_unref(capture_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left > 0)
        return;
    pgc_gateway *gw = s->gw;
    pthread_mutex_lock(&gw->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        gw->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&gw->mu);
    ack_tracker_destroy(s->acks);
    batch_registry_destroy(s->batches);
    for (capture_requeue *q = s->rq_head, *n; q; q = n) {
        n = q->next;
        free(q->reason);
        free(q);
    }
    free(s->table_regex);
    saferegex_free(s->re);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void capture_stream_wake_all(pgc_gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    for (capture_stream *s = gw->streams; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&gw->mu);
}

/* ---- completion-queue side ---------------------------------------------------------- */

void capture_stream_on_start(rpc_call *call)
{
    pgc_gateway *gw = rpc_call_method_ctx(call);
    if (atomic_load(&gw->stopping)) {
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "gateway is shutting down");
        return;
    }
    capture_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->acks = ack_tracker_create()) || !(s->batches = batch_registry_create())) {
        if (s)
            ack_tracker_destroy(s->acks);
        free(s);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
    s->gw = gw;
    s->call = call;
    s->refs = 1;
    s->changes_per_batch = 8.0;
    capbatch_init(&s->out_batch);
    snprintf(s->tag, sizeof s->tag, "%s", rpc_call_peer(call) ? rpc_call_peer(call) : "?");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_lock(&gw->mu);
    s->next = gw->streams;
    if (gw->streams)
        gw->streams->prev = s;
    gw->streams = s;
    pthread_mutex_unlock(&gw->mu);
    rpc_call_set_ctx(call, s);
}

void capture_stream_refuse(capture_stream *s, grpc_status_code code, const char *what,
                           const char *detail)
{
    log_warn(what, "peer=%s uri=\"%s\" status=%d error=\"%s\"", s->tag, s->uri, (int)code, detail);
    char msg[600];
    snprintf(msg, sizeof msg, "%s: %s", what, detail);
    rpc_call_finish(s->call, code, msg);
}

static void *stream_main(void *arg);
static void set_ending(capture_stream *s, bool ending);

static void on_init(capture_stream *s, const capture_request *req)
{
    memcpy(s->uri, req->uri, sizeof s->uri);
    s->truncate = req->truncate;
    if (req->has_table_regex && req->table_regex[0] &&
        !(s->table_regex = strdup(req->table_regex))) {
        rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
    /* Batch mode: a window of 16 batches at least. A stream's rate is its window over the
     * round trip of a batch and its ack; 4 batches held one stream to about 2M changes/s
     * here, 16 let it reach what the CPUs allow (bench/README.md, gateway). */
    s->batch_limit = req->batch_limit;
    s->max_message_bytes =
        req->max_message_bytes ? req->max_message_bytes : (size_t)s->gw->opts.max_message_bytes;
    s->window = (uint64_t)s->gw->opts.window;
    if (s->batch_limit && s->window < BATCH_WINDOW_BATCHES * (uint64_t)s->batch_limit)
        s->window = BATCH_WINDOW_BATCHES * (uint64_t)s->batch_limit;
    s->inited = true;
    pgc_gateway *gw = s->gw;
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
    rpc_call_ref(s->call);
    pthread_mutex_lock(&gw->mu);
    gw->live_streams++;
    pthread_mutex_unlock(&gw->mu);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, stream_main, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&gw->mu);
        gw->live_streams--;
        pthread_cond_broadcast(&gw->cv);
        pthread_mutex_unlock(&gw->mu);
        rpc_call_unref(s->call);
        stream_unref(s);
        capture_stream_refuse(s, GRPC_STATUS_UNAVAILABLE, "cannot start the stream", "no thread");
    }
}

void capture_stream_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    capture_stream *s = rpc_call_ctx(call);
    if (!s || rpc_call_is_over(call))
        return;
    capture_request *req = malloc(sizeof *req);
    char err[300];
    if (!req) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
    int rc = capture_request_decode(data, len, req, err, sizeof err);
    if (rc != PGC_OK)
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "malformed request", err);
    else if (!s->inited && req->kind != CAPTURE_REQUEST_INIT)
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "bad request",
                              "the first request must be init");
    else if (s->inited && req->kind == CAPTURE_REQUEST_INIT)
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "bad request", "init sent twice");
    else if (req->kind == CAPTURE_REQUEST_INIT)
        on_init(s, req);
    else
        capture_acks_on_ack(s, req);
    free(req);
}

/* The client finished sending (libpgcapture does so when it stops): every ack it sent has
 * been read (they come in order, before this), so the stream ends and hands back the rest. */
void capture_stream_on_half_close(rpc_call *call)
{
    capture_stream *s = rpc_call_ctx(call);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->client_done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    set_ending(s, true);
}

void capture_stream_on_done(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    capture_stream *s = rpc_call_ctx(call);
    if (!s)
        return;
    rpc_call_set_ctx(call, NULL);
    pthread_mutex_lock(&s->mu);
    s->call_over = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->inited)
        set_ending(s, true); /* a new stream of its durable waits for its hand-back */
    stream_unref(s);
}

/* ---- the stream thread ---------------------------------------------------------------- */

bool capture_stream_should_stop_locked(capture_stream *s)
{
    return s->call_over || s->client_done || s->bad_ack || s->closing || s->loss[0] ||
           atomic_load(&s->gw->stopping);
}

bool capture_stream_stopped(void *arg)
{
    capture_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    bool stop = capture_stream_should_stop_locked(s);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* The status a refusing resolver's answer ends the call with. */
static grpc_status_code refusal(int rc, const char *uri, const char *err, char *msg, size_t msg_len)
{
    switch (rc) {
    case PGC_ERR_UNAUTHENTICATED:
        snprintf(msg, msg_len, "%.400s", err);
        return GRPC_STATUS_UNAUTHENTICATED;
    case PGC_ERR_PERMISSION:
        snprintf(msg, msg_len, "%.400s", err);
        return GRPC_STATUS_PERMISSION_DENIED;
    case PGC_ERR_NOT_FOUND:
        snprintf(msg, msg_len, "unknown uri \"%.200s\": %.400s", uri, err);
        return GRPC_STATUS_NOT_FOUND;
    default:
        snprintf(msg, msg_len, "cannot resolve uri \"%.200s\": %.400s", uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
}

static bool same_durable(const capture_stream *a, const capture_stream *b)
{
    return strcmp(a->target.source, b->target.source) == 0 &&
           strcmp(a->target.durable, b->target.durable) == 0 &&
           strcmp(a->target.nats_url, b->target.nats_url) == 0;
}

/* Counts the stream against its URI's limit: false when the URI has its fill. */
static bool admit(capture_stream *s)
{
    pgc_gateway *gw = s->gw;
    int max = gw->opts.max_streams_per_uri, open = 0;
    pthread_mutex_lock(&gw->mu);
    for (capture_stream *o = gw->streams; o; o = o->next)
        if (o->admitted && o != s && !o->ending && strcmp(o->uri, s->uri) == 0)
            open++;
    bool ok = max <= 0 || open < max;
    s->admitted = ok;
    pthread_mutex_unlock(&gw->mu);
    return ok;
}

/* Whether another stream of this gateway reads s's durable: 2 when one delivers, 1 when
 * only ending ones (handing back) do, 0 when none. Caller holds gw->mu. */
static int other_readers_locked(const capture_stream *s)
{
    int found = 0;
    for (const capture_stream *o = s->gw->streams; o && found < 2; o = o->next)
        if (o != s && o->admitted && same_durable(o, s))
            found = o->ending ? 1 : 2;
    return found;
}

/* A consumer that died and comes back finds its old stream still handing back: the new
 * stream waits for that (up to ENDING_WAIT_MS) so that what is handed back comes to it
 * first, in log order. True when no other stream here reads its durable now: then what the
 * durable delivered unacked is either handed back or was fetched by a reader that is gone. */
static bool await_sole_reader(capture_stream *s)
{
    pgc_gateway *gw = s->gw;
    int64_t until = clock_mono_ms() + ENDING_WAIT_MS;
    pthread_mutex_lock(&gw->mu);
    int others = other_readers_locked(s);
    while (others == 1 && clock_mono_ms() < until && !atomic_load(&gw->stopping)) {
        struct timespec ts;
        clock_deadline_ms(&ts, 100);
        pthread_cond_timedwait(&gw->cv, &gw->mu, &ts);
        others = other_readers_locked(s);
    }
    pthread_mutex_unlock(&gw->mu);
    return others == 0;
}

int capture_stream_memo_key(const capture_stream *s, char *out, size_t out_len)
{
    int n =
        snprintf(out, out_len, "%s %s %s", s->target.source, s->target.durable, s->target.nats_url);
    return n > 0 && (size_t)n < out_len ? PGC_OK : PGC_ERR_INVALID;
}

bool capture_stream_sole_reader(capture_stream *s)
{
    pthread_mutex_lock(&s->gw->mu);
    bool sole = other_readers_locked(s) == 0;
    pthread_mutex_unlock(&s->gw->mu);
    return sole;
}

int capture_stream_take_back(capture_stream *s, int64_t max_waiting, uint64_t *through,
                             bool *others_pulling)
{
    char err[300];
    int rc = jssub_redeliver_unacked(s->sub, REDELIVER_MAX_SEQS, max_waiting, through,
                                     others_pulling, err, sizeof err);
    if (rc != PGC_OK) {
        log_warn("cannot ask for the unacked changes of a reader that is gone",
                 "peer=%s uri=\"%s\" error=\"%s\"", s->tag, s->uri, err);
        return rc;
    }
    if (*through)
        log_info("unacked changes of a reader that is gone delivered again first",
                 "peer=%s uri=\"%s\" durable=%s through_stream_seq=%llu", s->tag, s->uri,
                 s->target.durable, (unsigned long long)*through);
    return PGC_OK;
}

static grpc_status_code end_status(capture_stream *s, char *msg, size_t msg_len);

/* Resolves the URI and opens its log, retry subject, hold and dumps. GRPC_STATUS_OK, or
 * the status to end the call with and its message. */
static grpc_status_code open_uri(capture_stream *s, char *msg, size_t msg_len)
{
    pgc_gateway *gw = s->gw;
    char err[512];
    int rc;
    /* Who may read the URI is settled first: nothing else is spent on a stranger. */
    pgc_peer peer = {s->call};
    rc = gw->resolver.resolve(gw->resolver.arg, s->uri, &peer, &s->target, err, sizeof err);
    if (rc != PGC_OK)
        return refusal(rc, s->uri, err, msg, msg_len);
    s->target.source[sizeof s->target.source - 1] = '\0';
    s->target.durable[sizeof s->target.durable - 1] = '\0';
    s->target.nats_url[sizeof s->target.nats_url - 1] = '\0';
    if (!s->target.durable[0])
        names_durable_from_uri(s->uri, s->target.durable, sizeof s->target.durable);
    char stream[NAMES_BUF_LEN];
    if (!names_token_valid(s->target.source) || !names_token_valid(s->target.durable) ||
        names_stream(s->target.source, stream, sizeof stream) != PGC_OK ||
        names_log_subject(s->target.source, s->log_subject, sizeof s->log_subject) != PGC_OK) {
        snprintf(msg, msg_len, "uri \"%.200s\" resolves to a bad source or durable name", s->uri);
        return GRPC_STATUS_FAILED_PRECONDITION;
    }
    if (!admit(s)) {
        snprintf(msg, msg_len, "too many streams on uri \"%.200s\": at most %d", s->uri,
                 gw->opts.max_streams_per_uri);
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (s->table_regex && (rc = saferegex_compile(s->table_regex, strlen(s->table_regex), &s->re,
                                                  err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "bad TableRegex: %.400s", err);
        log_warn("stream refused", "peer=%s uri=\"%s\" error=\"%s\"", s->tag, s->uri, msg);
        return rc == PGC_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT;
    }
    const char *url = s->target.nats_url[0] ? s->target.nats_url : gw->opts.nats_url;
    jssub_config jc = {url,
                       stream,
                       s->log_subject,
                       s->target.durable,
                       gw->opts.ack_wait_ms,
                       gw->opts.max_ack_pending};
    if ((rc = jssub_create(&jc, &s->sub, err, sizeof err)) != PGC_OK ||
        (rc = jssub_stream_created(s->sub, &s->log_created, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "log of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    if (capture_loss_check_log(s))
        return end_status(s, msg, msg_len);
    /* The durable delivered changes nobody acked and no stream here holds them: a gateway
     * that crashed had fetched them, or what a stream that ended here gave back was lost on
     * its way again. They come again now and first, in log order, rather than after the ack
     * wait behind newer changes (which would take a row back in time). */
    if (!(s->guard = order_guard_create(TAKE_BACK_PATIENCE_MS))) {
        snprintf(msg, msg_len, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    uint64_t through = 0;
    if (await_sole_reader(s)) {
        /* Failed (logged): asked again with what the first fetch brings, which is given
         * back meanwhile (capture_takeback.c). */
        s->take_back_due = capture_stream_take_back(s, -1, &through, NULL) != PGC_OK;
        order_guard_asked_back(s->guard, through, clock_mono_ms());
    }
    if (part_joiner_create(PART_MAX_MESSAGE_BYTES, &s->pj) != PGC_OK ||
        stream_hold_create(capture_stream_stopped, s->batch_limit ? capture_delivery_flush : NULL,
                           s, &s->hold) != PGC_OK) {
        snprintf(msg, msg_len, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if ((rc = capture_handback_start(s, url, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "retry subject of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    if ((rc = capture_dumps_start(s, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "dumps of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    log_info("stream started", "peer=%s uri=\"%s\" stream=%s durable=%s table_regex=%s truncate=%s",
             s->tag, s->uri, stream, s->target.durable, s->re ? "yes" : "no",
             s->truncate ? "yes" : "no");
    metric_gauge_add(s->m.streams, 1);
    s->counted = true;
    return GRPC_STATUS_OK;
}

/* Why the delivery stopped, as the status that ends the call. */
static grpc_status_code end_status(capture_stream *s, char *msg, size_t msg_len)
{
    pthread_mutex_lock(&s->mu);
    bool bad = s->bad_ack, over = s->call_over, lost = s->loss[0] != '\0', done = s->client_done;
    grpc_status_code lost_code = s->loss_code;
    if (lost)
        snprintf(msg, msg_len, "%s", s->loss);
    pthread_mutex_unlock(&s->mu);
    if (lost)
        return lost_code;
    if (bad) {
        snprintf(msg, msg_len, "ack refused");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (over || rpc_call_is_over(s->call)) {
        snprintf(msg, msg_len, "stream over");
        return GRPC_STATUS_CANCELLED;
    }
    if (done) {
        snprintf(msg, msg_len, "the client finished");
        return GRPC_STATUS_OK;
    }
    snprintf(msg, msg_len, "gateway is shutting down");
    return GRPC_STATUS_UNAVAILABLE;
}

/* Readers of the same durable wait for an ending stream's hand-back (await_sole_reader). */
static void set_ending(capture_stream *s, bool ending)
{
    pthread_mutex_lock(&s->gw->mu);
    s->ending = ending;
    if (!ending)
        s->admitted = false;
    pthread_cond_broadcast(&s->gw->cv);
    pthread_mutex_unlock(&s->gw->mu);
}

static void *stream_main(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-stream");
    capture_stream *s = arg;
    pgc_gateway *gw = s->gw;
    char msg[CAPTURE_STREAM_LOSS_LEN + 64];
    uri_metrics_init(&s->m, s->uri);
    grpc_status_code code = open_uri(s, msg, sizeof msg);
    if (code == GRPC_STATUS_OK) {
        capture_delivery_run(s);
        code = end_status(s, msg, sizeof msg);
    }
    capture_dumps_stop(s);
    set_ending(s, true);
    if (s->sub && s->retry)
        capture_handback_end(s);
    capture_handback_stop_retries(s);
    set_ending(s, false); /* and no longer a reader: what it held is handed back */
    if (s->counted)
        metric_gauge_add(s->m.streams, -1);
    if (code != GRPC_STATUS_CANCELLED && code != GRPC_STATUS_INVALID_ARGUMENT &&
        code != GRPC_STATUS_DATA_LOSS && code != GRPC_STATUS_OK &&
        !s->loss[0]) { /* a loss has its own line */
        if (code != GRPC_STATUS_UNAVAILABLE || !atomic_load(&gw->stopping))
            log_warn("stream refused", "peer=%s uri=\"%s\" status=%d error=\"%s\"", s->tag, s->uri,
                     (int)code, msg);
    }
    rpc_call_finish(s->call, code, msg);
    log_info("stream ended", "peer=%s uri=\"%s\" sent=%llu filtered=%llu", s->tag, s->uri,
             (unsigned long long)s->sent, (unsigned long long)s->filtered);
    retry_stream_destroy(s->retry);
    jssub_destroy(s->sub);
    part_joiner_destroy(s->pj);
    stream_hold_destroy(s->hold);
    order_guard_destroy(s->guard);
    s->hold = NULL;
    free(s->parts);
    free(s->out);
    free(s->shaped);
    capbatch_free(&s->out_batch);
    batch_record_free(s->out_rec);
    rpc_call_unref(s->call);
    stream_unref(s);
    pthread_mutex_lock(&gw->mu);
    gw->live_streams--;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}
