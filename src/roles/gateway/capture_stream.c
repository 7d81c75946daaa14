/* One DBLogGateway.Capture stream (docs/protocol.md "The Capture stream, step by step"): init,
 * then Change messages from the URI's durable JetStream consumer (shared with the URI's
 * other streams, so they spread the load) and from its retry subject, with per-change
 * acks and requeues tracked per batch (ack_tracker.c).
 *
 * Threading: the gRPC completion-queue thread runs on_start/on_message/on_done; it
 * decodes requests, validates acks against the tracker and acks completed batches in
 * JetStream (fire-and-forget), but never blocks: requeues (a synchronous publish) are
 * queued to the stream's own thread. That thread resolves the URI, connects, fetches,
 * sends (waiting for gRPC flow control, and for the ack window), republishes requeues and,
 * at the end, hands back what is unacked. A second thread per stream blocks on the retry
 * durable and holds what it fetches until due (retry_main). `mu` guards the tracker, the requeue
 * queue and the flags; the struct is freed when both sides have let go (refs). */
#include "roles/gateway/gateway_private.h"

#include "codec/batch.h"
#include "codec/capmsg.h"
#include "codec/cphandle.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/saferegex.h"
#include "core/names.h"
#include "core/status.h"
#include "jetstream/jssub.h"
#include "roles/gateway/ack_tracker.h"
#include "roles/gateway/dumper.h"
#include "roles/gateway/stream_hold.h"
#include "roles/gateway/capture_request.h"
#include "roles/gateway/retry_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_MAX 64
#define FETCH_WAIT_MS 100
#define RETRY_POLL_MS 100
#define RETRY_HOLD_MAX 64
#define MAX_QUEUED_SENDS 64
#define MAX_JOINED_BYTES (256u * 1024 * 1024)

typedef struct rq_item {
    tracked_batch *b;
    uint32_t index;
    struct rq_item *next;
} rq_item;

struct gwstream {
    pgc_gateway *gw;
    rpc_call *call;
    gwstream *prev, *next; /* in gw->streams, under gw->mu */
    /* completion-queue thread only */
    bool inited;
    /* written before the thread starts, read-only after */
    char uri[CAPTURE_REQUEST_MAX_URI + 1];
    char *table_regex; /* as the client sent it, or NULL */
    /* compiled by the stream thread (off the completion-queue thread: a hostile pattern
     * may take a while) before the dumper starts; read-only after */
    saferegex *re;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool call_over, closing, bad_ack;
    ack_tracker *acks;
    rq_item *rq_head, *rq_tail;
    /* the stream thread only */
    pgc_uri_target target;
    jssub *sub;
    retry_stream *retry;
    part_joiner *pj;
    jssub_msg **parts;
    uint32_t n_parts, cap_parts;
    uint8_t *out;
    size_t out_cap;
    /* retry: a thread of its own blocks on the retry durable and fills `held` (under
     * mu); the stream thread takes what is due */
    pthread_t retry_thread;
    bool retry_started, retry_stop;
    jssub_msg *held[RETRY_HOLD_MAX];
    uint32_t n_held;
    uint64_t sent, filtered;
    double changes_per_batch; /* moving average of changes sent per batch */
    /* dumps: the dumper thread (started by the stream thread once the log is open; its
     * pointer read by the completion-queue thread under mu) and the hold it puts on the
     * live delivery */
    dumper *dumper;
    stream_hold *hold;
    char log_subject[NAMES_BUF_LEN];
    char tag[64]; /* for log lines: the peer */
};

static void stream_unref(gwstream *s)
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
    for (rq_item *q = s->rq_head, *n; q; q = n) {
        n = q->next;
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
    for (gwstream *s = gw->streams; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&gw->mu);
}

/* Acks every NATS message of a finished batch and frees it. */
static void batch_ack(tracked_batch *b)
{
    char err[256];
    for (uint32_t i = 0; i < b->n_msgs; i++) {
        if (jssub_ack(b->msgs[i], false, err, sizeof err) != PGC_OK)
            log_warn("cannot ack a batch; it will be redelivered", "error=\"%s\"", err);
        jssub_msg_destroy(b->msgs[i]);
    }
    tracked_batch_free(b);
}

static void batch_nak(tracked_batch *b, int64_t delay_ms)
{
    char err[256];
    for (uint32_t i = 0; i < b->n_msgs; i++) {
        if (jssub_nak(b->msgs[i], delay_ms, err, sizeof err) != PGC_OK)
            log_debug("cannot nak a batch; it comes back after the ack wait", "error=\"%s\"", err);
        jssub_msg_destroy(b->msgs[i]);
    }
    tracked_batch_free(b);
}

/* ---- completion-queue side ---------------------------------------------------------- */

void capture_stream_on_start(rpc_call *call)
{
    pgc_gateway *gw = rpc_call_method_ctx(call);
    if (atomic_load(&gw->stopping)) {
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "gateway is shutting down");
        return;
    }
    gwstream *s = calloc(1, sizeof *s);
    if (!s || !(s->acks = ack_tracker_create())) {
        free(s);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
    s->gw = gw;
    s->call = call;
    s->refs = 1;
    s->changes_per_batch = 8.0;
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

static void refuse(gwstream *s, grpc_status_code code, const char *what, const char *detail)
{
    log_warn(what, "peer=%s uri=\"%s\" status=%d error=\"%s\"", s->tag, s->uri, (int)code, detail);
    char msg[600];
    snprintf(msg, sizeof msg, "%s: %s", what, detail);
    rpc_call_finish(s->call, code, msg);
}

static void *stream_main(void *arg);

static void on_init(gwstream *s, const capture_request *req)
{
    memcpy(s->uri, req->uri, sizeof s->uri);
    if (req->has_table_regex && req->table_regex[0] &&
        !(s->table_regex = strdup(req->table_regex))) {
        rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
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
        refuse(s, GRPC_STATUS_UNAVAILABLE, "cannot start the stream", "no thread");
    }
}

static void on_ack(gwstream *s, const capture_request *req)
{
    char err[300];
    if (req->lsn == 0) {
        /* Dump rows carry lsn 0 (docs/protocol.md "Checkpoints"): their acks go to the dumper.
         * The stream thread clears s->dumper under mu before destroying it. */
        pthread_mutex_lock(&s->mu);
        int drc = s->dumper ? dumper_on_ack(s->dumper, req->seq, req->data, req->data_len,
                                            req->requeue ? req->requeue_reason : "")
                            : PGC_ERR_INVALID;
        pthread_mutex_unlock(&s->mu);
        if (drc != PGC_OK)
            refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused",
                   "checkpoint with lsn 0 (a dump row) for a dump this stream never sent");
        return;
    }
    cphandle h;
    if (cphandle_decode(req->data, req->data_len, &h, err, sizeof err) != PGC_OK) {
        refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused", err);
        return;
    }
    ack_result res;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        /* The stream is winding down and has handed its batches back already. */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    int rc = ack_tracker_on_ack(s->acks, &h, (log_pos){req->lsn, req->seq}, req->requeue, &res, err,
                                sizeof err);
    if (rc != PGC_OK) {
        s->bad_ack = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused", err);
        return;
    }
    if (res.requeue) {
        rq_item *q = malloc(sizeof *q);
        if (q) {
            *q = (rq_item){res.requeue, res.requeue_index, NULL};
            if (s->rq_tail)
                s->rq_tail->next = q;
            else
                s->rq_head = q;
            s->rq_tail = q;
        } else {
            /* Left REQUEUING: the end of the stream hands it back. */
            log_error("out of memory queueing a requeue", "peer=%s", s->tag);
        }
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (res.completed)
        batch_ack(res.completed);
    if (res.requeue)
        log_debug("change requeued", "peer=%s lsn=%llX seq=%u reason=\"%s\"", s->tag,
                  (unsigned long long)req->lsn, req->seq, req->requeue_reason);
}

void capture_stream_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    gwstream *s = rpc_call_ctx(call);
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
        refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "malformed request", err);
    else if (!s->inited && req->kind != CAPTURE_REQUEST_INIT)
        refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "bad request", "the first request must be init");
    else if (s->inited && req->kind == CAPTURE_REQUEST_INIT)
        refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "bad request", "init sent twice");
    else if (req->kind == CAPTURE_REQUEST_INIT)
        on_init(s, req);
    else
        on_ack(s, req);
    free(req);
}

void capture_stream_on_done(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    gwstream *s = rpc_call_ctx(call);
    if (!s)
        return;
    rpc_call_set_ctx(call, NULL);
    pthread_mutex_lock(&s->mu);
    s->call_over = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    stream_unref(s);
}

/* ---- the stream thread ---------------------------------------------------------------- */

static bool should_stop_locked(gwstream *s)
{
    return s->call_over || s->bad_ack || atomic_load(&s->gw->stopping);
}

static int send_change(gwstream *s, const tracked_batch *b, uint32_t i, const uint8_t *change,
                       size_t change_len)
{
    uint8_t handle[CPHANDLE_LEN];
    cphandle h = {b->stream_seq, i, b->origin};
    cphandle_encode(&h, handle);
    size_t need = capmsg_build_size(change_len, CPHANDLE_LEN);
    if (need > s->out_cap) {
        uint8_t *o = realloc(s->out, need);
        if (!o)
            return PGC_ERR_NOMEM;
        s->out = o, s->out_cap = need;
    }
    size_t n = capmsg_build(s->out, b->pos[i].lsn, b->pos[i].seq, handle, CPHANDLE_LEN, change,
                            change_len);
    /* gRPC flow control: a slow consumer fills its own queue and waits here, alone. */
    for (;;) {
        int rc = rpc_call_wait_writable(s->call, MAX_QUEUED_SENDS, 200);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT)
            return rc;
        pthread_mutex_lock(&s->mu);
        bool stop = should_stop_locked(s);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return PGC_ERR_STATE;
    }
    int rc = rpc_call_send(s->call, s->out, n);
    if (rc == PGC_OK)
        s->sent++;
    log_debug("change sent", "peer=%s lsn=%llX seq=%u stream_seq=%llu index=%u origin=%d", s->tag,
              (unsigned long long)b->pos[i].lsn, b->pos[i].seq, (unsigned long long)b->stream_seq,
              i, (int)b->origin);
    return rc;
}

static bool table_wanted(gwstream *s, const uint8_t *change, size_t len)
{
    if (!s->re)
        return true;
    const uint8_t *t;
    size_t tl;
    if (capmsg_change_table(change, len, &t, &tl, NULL, 0) != PGC_OK)
        return true; /* let the consumer see (and refuse) what we cannot read */
    return saferegex_search(s->re, (const char *)t, tl);
}

static void drop_parts(gwstream *s, int64_t nak_delay_ms)
{
    char err[200];
    for (uint32_t i = 0; i < s->n_parts; i++) {
        jssub_nak(s->parts[i], nak_delay_ms, err, sizeof err);
        jssub_msg_destroy(s->parts[i]);
    }
    s->n_parts = 0;
}

/* Fills a batch's positions and states from its content. PGC_ERR_MALFORMED on bad bytes. */
static int index_batch(gwstream *s, tracked_batch *b, log_pos first, char *err, size_t err_len)
{
    batch_reader r;
    batch_reader_init(&r, b->data, b->len);
    const uint8_t *p;
    size_t n;
    int rc;
    uint32_t i = 0;
    log_pos prev = first;
    while ((rc = batch_reader_next(&r, &p, &n, err, err_len)) == 1 && i < b->n) {
        capmsg_kind kind;
        const uint8_t *sub;
        size_t sub_len;
        if ((rc = capmsg_peek(p, n, &kind, &sub, &sub_len, err, err_len)) != PGC_OK)
            return rc;
        log_pos pos;
        uint64_t lsn;
        if (kind == CAPMSG_BEGIN) {
            if ((rc = capmsg_begin_lsn(sub, sub_len, &lsn, err, err_len)) != PGC_OK)
                return rc;
            pos = (log_pos){lsn, 0};
        } else if (i == 0) {
            pos = first;
        } else {
            pos = (log_pos){prev.lsn, prev.seq + 1};
        }
        b->off[i] = (uint32_t)(p - b->data);
        b->mlen[i] = (uint32_t)n;
        b->pos[i] = pos;
        bool send = kind == CAPMSG_CHANGE && table_wanted(s, sub, sub_len);
        if (kind == CAPMSG_CHANGE && !send)
            s->filtered++;
        tracked_batch_set(b, i, send ? ACK_UNSENT : ACK_NOACK);
        prev = pos;
        i++;
    }
    return rc < 0 ? rc : PGC_OK;
}

static uint32_t count_messages(const uint8_t *data, size_t len, char *err, size_t err_len, int *rc)
{
    batch_reader r;
    batch_reader_init(&r, data, len);
    const uint8_t *p;
    size_t n;
    uint32_t count = 0;
    while ((*rc = batch_reader_next(&r, &p, &n, err, err_len)) == 1)
        count++;
    return count;
}

/* Takes one fetched NATS message. Returns PGC_ERR_STATE once the call is over. */
static int handle_msg(gwstream *s, cphandle_origin origin, jssub_msg *m)
{
    char err[300];
    const uint8_t *data = jssub_msg_data(m);
    size_t len = jssub_msg_len(m);
    uint64_t seq = jssub_msg_stream_seq(m);
    const char *part = jssub_msg_header(m, "Pgc-Part");
    const char *first_s = jssub_msg_header(m, "Pgc-First");
    log_pos first;
    if (!first_s || !logpos_parse(first_s, &first)) {
        log_error("log message without a valid Pgc-First header: skipped",
                  "peer=%s stream_seq=%llu", s->tag, (unsigned long long)seq);
        jssub_ack(m, false, err, sizeof err);
        jssub_msg_destroy(m);
        return PGC_OK;
    }
    uint8_t *own = NULL;
    if (part) {
        uint32_t pi, pn;
        if (!part_header_parse(part, &pi, &pn)) {
            log_error("log message with a bad Pgc-Part header: skipped",
                      "peer=%s stream_seq=%llu part=\"%s\"", s->tag, (unsigned long long)seq, part);
            jssub_ack(m, false, err, sizeof err);
            jssub_msg_destroy(m);
            return PGC_OK;
        }
        const uint8_t *joined;
        size_t joined_len;
        int rc = part_joiner_feed(s->pj, pi, pn, data, len, &joined, &joined_len, err, sizeof err);
        if (rc < 0) {
            /* Parts out of order (another stream of the URI holds the others): hand all
             * back for a later, whole delivery. */
            log_warn("parts of a large message arrived out of order: handed back",
                     "peer=%s stream_seq=%llu error=\"%s\"", s->tag, (unsigned long long)seq, err);
            drop_parts(s, 0);
            jssub_nak(m, 0, err, sizeof err);
            jssub_msg_destroy(m);
            return PGC_OK;
        }
        if (s->n_parts == s->cap_parts) {
            uint32_t cap = s->cap_parts ? s->cap_parts * 2 : 8;
            jssub_msg **np = realloc(s->parts, cap * sizeof *np);
            if (!np) {
                drop_parts(s, 0);
                jssub_nak(m, 0, err, sizeof err);
                jssub_msg_destroy(m);
                return PGC_OK;
            }
            s->parts = np, s->cap_parts = cap;
        }
        s->parts[s->n_parts++] = m;
        if (rc == 0)
            return PGC_OK;
        if (!(own = malloc(joined_len ? joined_len : 1))) {
            drop_parts(s, 0);
            return PGC_OK;
        }
        memcpy(own, joined, joined_len);
        data = own;
        len = joined_len;
    }
    int rc;
    uint32_t n = count_messages(data, len, err, sizeof err, &rc);
    tracked_batch *b = rc < 0 ? NULL : tracked_batch_new(origin, seq, n);
    if (!b || (b->msgs = malloc((part ? s->n_parts : 1) * sizeof(void *))) == NULL) {
        if (rc < 0)
            log_error("malformed batch in the log: skipped", "peer=%s stream_seq=%llu error=\"%s\"",
                      s->tag, (unsigned long long)seq, err);
        tracked_batch_free(b);
        free(own);
        if (part)
            drop_parts(s, 0);
        else if (rc < 0) {
            jssub_ack(m, false, err, sizeof err);
            jssub_msg_destroy(m);
        } else {
            jssub_nak(m, 0, err, sizeof err);
            jssub_msg_destroy(m);
        }
        return PGC_OK;
    }
    if (part) {
        memcpy(b->msgs, s->parts, s->n_parts * sizeof(void *));
        b->n_msgs = s->n_parts;
        s->n_parts = 0;
    } else {
        b->msgs[0] = m;
        b->n_msgs = 1;
    }
    b->own_data = own;
    b->data = data;
    b->len = len;
    if ((rc = index_batch(s, b, first, err, sizeof err)) != PGC_OK) {
        log_error("malformed batch in the log: skipped", "peer=%s stream_seq=%llu error=\"%s\"",
                  s->tag, (unsigned long long)seq, err);
        batch_ack(b);
        return PGC_OK;
    }
    pthread_mutex_lock(&s->mu);
    rc = ack_tracker_add(s->acks, b);
    pthread_mutex_unlock(&s->mu);
    bool from_log = origin == CPHANDLE_LOG;
    if (rc == 1) {
        /* Nothing for the consumer, but its positions still count towards a hold. */
        for (uint32_t i = 0; i < n && from_log; i++) {
            if (stream_hold_gate(s->hold, true, b->pos[i]) != PGC_OK) {
                batch_nak(b, 0);
                return PGC_ERR_STATE;
            }
            stream_hold_passed(s->hold, b->pos[i]);
        }
        batch_ack(b);
        return PGC_OK;
    }
    if (rc < 0) {
        batch_nak(b, 0);
        return PGC_OK;
    }
    /* Tracked before sending, so that an ack can never overtake its batch. The batch
     * stays valid while it has UNSENT or SENT changes: only their acks or the end of the
     * stream (this thread) complete it. */
    uint32_t to_send = 0;
    for (uint32_t i = 0; i < n; i++)
        to_send += b->state[i] == ACK_UNSENT;
    s->changes_per_batch = 0.75 * s->changes_per_batch + 0.25 * to_send;
    for (uint32_t i = 0; i < n; i++) {
        /* A dump being prepared or sent holds live delivery at its snapshot's position:
         * nothing past it goes out meanwhile (stream_hold.h). */
        if (stream_hold_gate(s->hold, from_log, b->pos[i]) != PGC_OK)
            return PGC_ERR_STATE;
        if (b->state[i] != ACK_UNSENT) {
            if (from_log)
                stream_hold_passed(s->hold, b->pos[i]);
            continue;
        }
        /* The window holds even inside a batch: a consumer that stops acking gets no
         * more than --window changes. */
        pthread_mutex_lock(&s->mu);
        while (!should_stop_locked(s) &&
               ack_tracker_in_flight(s->acks) >= (uint64_t)s->gw->opts.window) {
            struct timespec ts;
            clock_deadline_ms(&ts, 100);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        bool stop = should_stop_locked(s);
        if (!stop)
            ack_tracker_sent(s->acks, b, i);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return PGC_ERR_STATE;
        capmsg_kind kind;
        const uint8_t *change;
        size_t change_len;
        capmsg_peek(b->data + b->off[i], b->mlen[i], &kind, &change, &change_len, NULL, 0);
        if ((rc = send_change(s, b, i, change, change_len)) != PGC_OK)
            return PGC_ERR_STATE;
        if (from_log)
            stream_hold_passed(s->hold, b->pos[i]);
    }
    return PGC_OK;
}

static void process_requeues(gwstream *s, rq_item *q)
{
    char err[300];
    while (q) {
        rq_item *next = q->next;
        tracked_batch *b = q->b;
        uint32_t i = q->index;
        free(q);
        q = next;
        if (retry_stream_publish(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i], err,
                                 sizeof err) != PGC_OK) {
            /* Still REQUEUING: the end of the stream hands the batch back. */
            log_error("cannot republish a requeued change", "peer=%s error=\"%s\"", s->tag, err);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        tracked_batch *done = ack_tracker_requeued(s->acks, b, i);
        pthread_mutex_unlock(&s->mu);
        if (done)
            batch_ack(done);
    }
}

static rq_item *take_requeues(gwstream *s)
{
    rq_item *q = s->rq_head;
    s->rq_head = s->rq_tail = NULL;
    return q;
}

/* Requeued changes come back through the URI's retry durable once retry_delay_ms has
 * passed since they were republished. The retry thread fetches them (blocking, so the
 * stream thread never waits on an empty retry subject) and holds them until due; they are
 * not nak'ed with a delay, since a redelivery can land on an expired pull request and then
 * wait for the whole ack wait. The retry delay is below the ack wait, so a held message is
 * never redelivered elsewhere meanwhile. */
static void *retry_main(void *arg)
{
    gwstream *s = arg;
    jssub_msg *got[RETRY_HOLD_MAX];
    char err[300];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->retry_stop && s->n_held >= RETRY_HOLD_MAX)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->retry_stop;
        int room = (int)(RETRY_HOLD_MAX - s->n_held);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        int n = jssub_fetch(retry_stream_sub(s->retry), got, room, 250, err, sizeof err);
        if (n < 0) {
            log_debug("retry fetch failed", "peer=%s error=\"%s\"", s->tag, err);
            clock_sleep_ms(200);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++)
            s->held[s->n_held++] = got[i];
        pthread_mutex_unlock(&s->mu);
    }
}

/* Sends the held retry messages that are due. */
static void take_due_retries(gwstream *s)
{
    jssub_msg *due[RETRY_HOLD_MAX];
    uint32_t k = 0;
    int64_t now = clock_real_ns(), delay_ns = s->gw->opts.retry_delay_ms * 1000000LL;
    pthread_mutex_lock(&s->mu);
    while (k < s->n_held && jssub_msg_time_ns(s->held[k]) + delay_ns <= now) {
        due[k] = s->held[k];
        k++;
    }
    memmove(s->held, s->held + k, (s->n_held - k) * sizeof *s->held);
    s->n_held -= k;
    if (k)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    char err[200];
    for (uint32_t i = 0; i < k; i++) {
        if (handle_msg(s, CPHANDLE_RETRY, due[i]) != PGC_OK) {
            for (uint32_t j = i + 1; j < k; j++) {
                jssub_nak(due[j], 0, err, sizeof err);
                jssub_msg_destroy(due[j]);
            }
            return;
        }
    }
}

static void stop_retry_thread(gwstream *s)
{
    if (!s->retry_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->retry_stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->retry_thread, NULL);
    s->retry_started = false;
}

/* The end of a stream (docs/protocol.md step 5): a batch the consumer partly acked gets its
 * unacked changes republished to retry and is acked, so the acked ones never come back;
 * a batch with nothing acked goes back to the log whole (nak: redelivered at once). */
static void hand_back(gwstream *s)
{
    char err[300];
    tracked_batch *b;
    uint64_t republished = 0, returned = 0;
    while ((b = ack_tracker_pop(s->acks))) {
        if (b->consumer_done == 0) {
            log_debug("unacked batch returned to the log", "peer=%s stream_seq=%llu origin=%d",
                      s->tag, (unsigned long long)b->stream_seq, (int)b->origin);
            batch_nak(b, 0);
            returned++;
            continue;
        }
        bool ok = true;
        for (uint32_t i = 0; i < b->n && ok; i++) {
            if (b->state[i] == ACK_DONE || b->state[i] == ACK_NOACK)
                continue;
            if (retry_stream_publish(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i], err,
                                     sizeof err) != PGC_OK) {
                log_error("cannot republish an unacked change; its batch comes back whole",
                          "peer=%s error=\"%s\"", s->tag, err);
                ok = false;
            } else {
                log_debug("unacked change republished to retry",
                          "peer=%s lsn=%llX seq=%u stream_seq=%llu origin=%d", s->tag,
                          (unsigned long long)b->pos[i].lsn, b->pos[i].seq,
                          (unsigned long long)b->stream_seq, (int)b->origin);
                tracked_batch_set(b, i, ACK_DONE);
                republished++;
            }
        }
        if (ok)
            batch_ack(b);
        else
            batch_nak(b, 0);
    }
    drop_parts(s, 0);
    stop_retry_thread(s);
    for (uint32_t i = 0; i < s->n_held; i++) {
        jssub_nak(s->held[i], 0, err, sizeof err);
        jssub_msg_destroy(s->held[i]);
    }
    s->n_held = 0;
    if (republished || returned)
        log_info("unacked changes handed back", "peer=%s republished=%llu batches_returned=%llu",
                 s->tag, (unsigned long long)republished, (unsigned long long)returned);
}

static void wind_down(gwstream *s)
{
    pgc_gateway *gw = s->gw;
    pthread_mutex_lock(&s->mu);
    bool graceful = atomic_load(&gw->stopping) && !s->call_over && !s->bad_ack;
    pthread_mutex_unlock(&s->mu);
    if (graceful) {
        /* Let the acks in flight land, up to the grace period. */
        int64_t until = clock_mono_ms() + atomic_load(&gw->stop_grace_ms);
        for (;;) {
            pthread_mutex_lock(&s->mu);
            rq_item *q = take_requeues(s);
            bool done = ack_tracker_in_flight(s->acks) == 0 || s->call_over;
            if (!q && !done && clock_mono_ms() < until) {
                struct timespec ts;
                clock_deadline_ms(&ts, 20);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
            pthread_mutex_unlock(&s->mu);
            process_requeues(s, q);
            if (done || clock_mono_ms() >= until)
                break;
        }
    }
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    rq_item *q = take_requeues(s);
    pthread_mutex_unlock(&s->mu);
    process_requeues(s, q);
    hand_back(s);
}

/* ---- the dumper's view of this stream (dumper.h) ------------------------------ */

static bool stream_stopped(void *arg)
{
    gwstream *s = arg;
    pthread_mutex_lock(&s->mu);
    bool stop = should_stop_locked(s);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static int hook_freeze(void *arg, uint64_t *lsn, uint32_t *seq)
{
    gwstream *s = arg;
    if (stream_stopped(s))
        return PGC_ERR_CONN;
    /* Frozen first, then the end read: whatever the stream is sending now is in the log,
     * so at or below the end. */
    stream_hold_freeze(s->hold);
    char v[64], err[300];
    int rc = jssub_last_header(s->sub, s->log_subject, "Pgc-Last", v, sizeof v, err, sizeof err);
    log_pos end = {0, 0};
    if (rc < 0 || (rc == 1 && !logpos_parse(v, &end))) {
        stream_hold_release(s->hold);
        log_warn("cannot read the log's end for a dump", "peer=%s uri=\"%s\" error=\"%s\"", s->tag,
                 s->uri, rc < 0 ? err : "bad Pgc-Last header");
        return PGC_ERR_IO;
    }
    *lsn = end.lsn;
    *seq = end.seq;
    return PGC_OK;
}

static int hook_hold_at(void *arg, uint64_t lsn, uint32_t seq, int timeout_ms)
{
    gwstream *s = arg;
    return stream_hold_hold_at(s->hold, (log_pos){lsn, seq}, timeout_ms);
}

static void hook_release(void *arg)
{
    gwstream *s = arg;
    stream_hold_release(s->hold);
}

static int hook_send(void *arg, const uint8_t *msg, size_t len)
{
    gwstream *s = arg;
    for (;;) {
        int rc = rpc_call_wait_writable(s->call, MAX_QUEUED_SENDS, 200);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT || stream_stopped(s))
            return -1;
    }
    return rpc_call_send(s->call, msg, len) == PGC_OK ? 0 : -1;
}

static bool hook_table_wanted(void *arg, const char *table)
{
    gwstream *s = arg;
    return !s->re || saferegex_search(s->re, table, strlen(table));
}

/* Dumps need a controller and a replica for the URI; without either the stream serves
 * changes only. */
static int start_dumper(gwstream *s, char *err, size_t err_len)
{
    pgc_gateway *gw = s->gw;
    if (!gw->opts.controller || !*gw->opts.controller || !s->target.replica[0])
        return PGC_OK;
    dumper_config dc = {gw->opts.controller, s->uri, s->target.replica, s->target.source, 0, 0, 0};
    dumper_hooks hooks = {s, hook_freeze, hook_hold_at, hook_release, hook_send, hook_table_wanted};
    dumper *d;
    int rc = dumper_start(&dc, &hooks, &d, err, err_len);
    if (rc != PGC_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->dumper = d;
    pthread_mutex_unlock(&s->mu);
    return PGC_OK;
}

static void stop_dumper(gwstream *s)
{
    pthread_mutex_lock(&s->mu);
    dumper *d = s->dumper;
    s->dumper = NULL;
    pthread_mutex_unlock(&s->mu);
    if (s->hold)
        stream_hold_wake(s->hold);
    dumper_destroy(d);
}

static grpc_status_code run(gwstream *s, char *msg, size_t msg_len)
{
    pgc_gateway *gw = s->gw;
    char err[512];
    int rc;
    if (s->table_regex && (rc = saferegex_compile(s->table_regex, strlen(s->table_regex), &s->re,
                                                  err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "bad TableRegex: %.400s", err);
        log_warn("stream refused", "peer=%s uri=\"%s\" error=\"%s\"", s->tag, s->uri, msg);
        return rc == PGC_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT;
    }
    rc = gw->resolver.resolve(gw->resolver.arg, s->uri, &s->target, err, sizeof err);
    if (rc == PGC_ERR_NOT_FOUND) {
        snprintf(msg, msg_len, "unknown uri \"%.200s\": %.400s", s->uri, err);
        return GRPC_STATUS_NOT_FOUND;
    }
    if (rc != PGC_OK) {
        snprintf(msg, msg_len, "cannot resolve uri \"%.200s\": %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    s->target.source[sizeof s->target.source - 1] = '\0';
    s->target.durable[sizeof s->target.durable - 1] = '\0';
    s->target.nats_url[sizeof s->target.nats_url - 1] = '\0';
    if (!s->target.durable[0])
        names_durable_from_uri(s->uri, s->target.durable, sizeof s->target.durable);
    char stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN];
    if (!names_token_valid(s->target.source) || !names_token_valid(s->target.durable) ||
        names_stream(s->target.source, stream, sizeof stream) != PGC_OK ||
        names_log_subject(s->target.source, subject, sizeof subject) != PGC_OK) {
        snprintf(msg, msg_len, "uri \"%.200s\" resolves to a bad source or durable name", s->uri);
        return GRPC_STATUS_FAILED_PRECONDITION;
    }
    const char *url = s->target.nats_url[0] ? s->target.nats_url : gw->opts.nats_url;
    jssub_config jc = {
        url, stream, subject, s->target.durable, gw->opts.ack_wait_ms, gw->opts.max_ack_pending};
    if ((rc = jssub_create(&jc, &s->sub, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "log of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    retry_stream_config rc_cfg = {url, s->target.source, s->target.durable, gw->opts.ack_wait_ms,
                                  gw->opts.max_ack_pending};
    if ((rc = retry_stream_create(&rc_cfg, &s->retry, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "retry subject of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    if (part_joiner_create(MAX_JOINED_BYTES, &s->pj) != PGC_OK) {
        snprintf(msg, msg_len, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (pthread_create(&s->retry_thread, NULL, retry_main, s) != 0) {
        snprintf(msg, msg_len, "cannot start the retry thread");
        return GRPC_STATUS_UNAVAILABLE;
    }
    s->retry_started = true;
    snprintf(s->log_subject, sizeof s->log_subject, "%s", subject);
    if (stream_hold_create(stream_stopped, s, &s->hold) != PGC_OK) {
        snprintf(msg, msg_len, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if ((rc = start_dumper(s, err, sizeof err)) != PGC_OK) {
        snprintf(msg, msg_len, "dumps of uri \"%.200s\" unavailable: %.400s", s->uri, err);
        return GRPC_STATUS_UNAVAILABLE;
    }
    log_info("stream started", "peer=%s uri=\"%s\" stream=%s durable=%s table_regex=%s", s->tag,
             s->uri, stream, s->target.durable, s->re ? "yes" : "no");
    uint64_t window = (uint64_t)gw->opts.window;
    int64_t next_retry = 0;
    jssub_msg *msgs[FETCH_MAX];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!should_stop_locked(s) && !s->rq_head && ack_tracker_in_flight(s->acks) >= window) {
            struct timespec ts;
            clock_deadline_ms(&ts, 100);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        rq_item *q = take_requeues(s);
        bool stop = should_stop_locked(s);
        uint64_t in_flight = ack_tracker_in_flight(s->acks);
        bool full = in_flight >= window;
        pthread_mutex_unlock(&s->mu);
        process_requeues(s, q);
        if (stop)
            break;
        if (full)
            continue;
        if (clock_mono_ms() >= next_retry) {
            take_due_retries(s);
            next_retry = clock_mono_ms() + RETRY_POLL_MS;
        }
        /* As many batches as the window has room for, by the changes a batch carried
         * lately: the window is overshot by about one batch at most. */
        uint64_t room = window - in_flight;
        double want = (double)room / (s->changes_per_batch > 1.0 ? s->changes_per_batch : 1.0);
        int max = want < 1.0 ? 1 : want > FETCH_MAX ? FETCH_MAX : (int)want;
        int n = jssub_fetch(s->sub, msgs, max, FETCH_WAIT_MS, err, sizeof err);
        if (n < 0) {
            log_warn("fetch failed; retrying", "peer=%s error=\"%s\"", s->tag, err);
            clock_sleep_ms(200);
            continue;
        }
        if (n == 0 && stream_hold_running(s->hold)) {
            /* A dump waits for this stream to reach its position: with nothing fetched and
             * nothing pending, the whole log has been delivered. */
            uint64_t pending = 1;
            int prc = jssub_num_pending(s->sub, &pending, err, sizeof err);
            log_debug("dump waits for the stream; log drained?",
                      "peer=%s pending=%llu rc=%d error=\"%s\"", s->tag,
                      (unsigned long long)pending, prc, prc ? err : "");
            if (prc == PGC_OK && pending == 0)
                stream_hold_caught_up(s->hold);
        }
        for (int i = 0; i < n; i++) {
            if (handle_msg(s, CPHANDLE_LOG, msgs[i]) != PGC_OK) {
                for (int k = i + 1; k < n; k++) {
                    jssub_nak(msgs[k], 0, err, sizeof err);
                    jssub_msg_destroy(msgs[k]);
                }
                break;
            }
        }
    }
    pthread_mutex_lock(&s->mu);
    bool bad = s->bad_ack, over = s->call_over;
    pthread_mutex_unlock(&s->mu);
    if (bad) {
        snprintf(msg, msg_len, "ack refused");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (over || rpc_call_is_over(s->call)) {
        snprintf(msg, msg_len, "stream over");
        return GRPC_STATUS_CANCELLED;
    }
    snprintf(msg, msg_len, "gateway is shutting down");
    return GRPC_STATUS_UNAVAILABLE;
}

static void *stream_main(void *arg)
{
    gwstream *s = arg;
    pgc_gateway *gw = s->gw;
    char msg[700];
    grpc_status_code code = run(s, msg, sizeof msg);
    stop_dumper(s);
    if (s->sub && s->retry)
        wind_down(s);
    stop_retry_thread(s);
    if (code != GRPC_STATUS_CANCELLED && code != GRPC_STATUS_INVALID_ARGUMENT) {
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
    s->hold = NULL;
    free(s->parts);
    free(s->out);
    rpc_call_unref(s->call);
    stream_unref(s);
    pthread_mutex_lock(&gw->mu);
    gw->live_streams--;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}
