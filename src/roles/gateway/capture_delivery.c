/* Delivery of the log to one Capture stream (see capture_stream.h), on the stream thread:
 * fetch as many batches as the ack window has room for, join the parts of large messages,
 * index each batch's Messages, filter them by TableRegex, track the batch and send its
 * changes (waiting for gRPC flow control and for the window), and let a dump's hold stop
 * the delivery at its snapshot's position.
 *
 * Batch mode: the changes are spliced into the batch being built (capbatch), which goes
 * out when full, when what was fetched is used up, and before the stream waits for
 * anything (the window, a hold): a change never waits in a batch for more changes to come,
 * and a hold always begins with everything before it delivered. */
#include "roles/gateway/capture_stream.h"

#include "codec/capmsg.h"
#include "codec/gapmark.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METRICS_POLL_MS 1000
#define FETCH_MAX 64
#define FETCH_WAIT_MS 100
#define FETCH_WAIT_HOLD_MS 5
#define RETRY_POLL_MS 100
/* A batch's number field at most: a tag and a varint. */
#define BATCH_NUMBER_BYTES 11

static int send_change(capture_stream *s, const tracked_batch *b, uint32_t i, const uint8_t *change,
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
        int rc = rpc_call_wait_writable(s->call, CAPTURE_STREAM_MAX_QUEUED_SENDS, 200);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT)
            return rc;
        if (capture_stream_stopped(s))
            return PGC_ERR_STATE;
    }
    int rc = rpc_call_send(s->call, s->out, n);
    if (rc == PGC_OK) {
        s->sent++;
        metric_inc(s->m.sent);
    }
    log_debug("change sent", "peer=%s lsn=%llX seq=%u stream_seq=%llu index=%u origin=%d", s->tag,
              (unsigned long long)b->pos[i].lsn, b->pos[i].seq, (unsigned long long)b->stream_seq,
              i, (int)b->origin);
    return rc;
}

/* TableRegex, and TRUNCATE (operation 3, an addition to pgcapture's protocol) only for a
 * consumer that asked with Truncate: true; what is not wanted is acked here, never sent.
 * The gap marker (pgcapture.gaps) reaches every consumer whatever its TableRegex: a gap
 * concerns every table. */
static bool change_wanted(capture_stream *s, const uint8_t *change, size_t len)
{
    int op;
    if (!s->truncate && capmsg_change_op(change, len, &op, NULL, 0) == PGC_OK &&
        op == PGCAPTURE__CHANGE__OPERATION__TRUNCATE)
        return false;
    if (!s->re)
        return true;
    const uint8_t *t, *sc;
    size_t tl, sl;
    if (capmsg_change_table(change, len, &t, &tl, NULL, 0) != PGC_OK ||
        capmsg_change_schema(change, len, &sc, &sl, NULL, 0) != PGC_OK)
        return true; /* let the consumer see (and refuse) what we cannot read */
    if (gapmark_is_marker((const char *)sc, sl, (const char *)t, tl))
        return true;
    return saferegex_search(s->re, (const char *)t, tl);
}

void capture_delivery_drop_parts(capture_stream *s, int64_t nak_delay_ms)
{
    char err[200];
    for (uint32_t i = 0; i < s->n_parts; i++) {
        jssub_nak(s->parts[i], nak_delay_ms, err, sizeof err);
        jssub_msg_destroy(s->parts[i]);
    }
    s->n_parts = 0;
}

/* Fills a batch's positions and states from its content. PGC_ERR_MALFORMED on bad bytes. */
static int index_batch(capture_stream *s, tracked_batch *b, log_pos first, char *err,
                       size_t err_len)
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
            uint64_t commit_us;
            if ((rc = capmsg_begin_lsn(sub, sub_len, &lsn, &commit_us, err, err_len)) != PGC_OK)
                return rc;
            pos = (log_pos){lsn, 0};
            if (!b->commit_ns && commit_us)
                b->commit_ns = ((int64_t)commit_us + CLOCK_PG_EPOCH_UNIX_S * 1000000) * 1000;
        } else if (i == 0) {
            pos = first;
        } else {
            pos = (log_pos){prev.lsn, prev.seq + 1};
        }
        b->off[i] = (uint32_t)(p - b->data);
        b->mlen[i] = (uint32_t)n;
        b->pos[i] = pos;
        bool send = kind == CAPMSG_CHANGE && change_wanted(s, sub, sub_len);
        if (kind == CAPMSG_CHANGE && !send)
            s->filtered++;
        ack_tracker_batch_set(b, i, send ? ACK_UNSENT : ACK_NOACK);
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

/* Whether a Pgc-Part header "i/n" names the last part (that part's sequence is the
 * batch's). */
static bool part_is_last(const char *part)
{
    uint32_t i, n;
    return part_header_parse(part, &i, &n) && i == n;
}

static void skip_msg(jssub_msg *m)
{
    char err[200];
    jssub_ack(m, false, err, sizeof err);
    jssub_msg_destroy(m);
}

static void hand_back_msg(jssub_msg *m, int64_t delay_ms)
{
    char err[200];
    jssub_nak(m, delay_ms, err, sizeof err);
    jssub_msg_destroy(m);
}

/* Collects one part of a large message (Pgc-Part "i/n"). True once the last part is in:
 * *own then holds the joined message (caller frees). False when more parts are missing or
 * the message was skipped or handed back. */
static bool join_part(capture_stream *s, jssub_msg *m, const char *part, log_pos pos, uint8_t **own,
                      size_t *own_len)
{
    uint64_t seq = jssub_msg_stream_seq(m);
    char err[300];
    uint32_t pi, pn;
    if (!part_header_parse(part, &pi, &pn)) {
        log_error("log message with a bad Pgc-Part header: skipped",
                  "peer=%s stream_seq=%llu part=\"%s\"", s->tag, (unsigned long long)seq, part);
        skip_msg(m);
        return false;
    }
    /* A part 1 while parts are held: the held ones belong to a message whose other parts
     * went elsewhere (another stream of the URI, or a gateway that died and whose
     * deliveries come back after the ack wait). They are handed back now (kept, they would
     * be acked with this message's batch), to come back whole later. */
    int64_t later_ms = s->gw->opts.retry_delay_ms;
    if (pi == 1 && s->n_parts > 0) {
        log_warn("parts of a large message left incomplete: handed back",
                 "peer=%s stream_seq=%llu parts=%u", s->tag, (unsigned long long)seq, s->n_parts);
        capture_delivery_drop_parts(s, later_ms);
    }
    const uint8_t *joined;
    size_t joined_len;
    int rc = part_joiner_feed(s->pj, pos, pi, pn, jssub_msg_data(m), jssub_msg_len(m), &joined,
                              &joined_len, err, sizeof err);
    if (rc < 0) {
        /* Parts out of order or of another message: hand all back for a later, whole
         * delivery, after a delay (at once, they would spin until the missing parts are
         * redelivered, which can take the whole ack wait). */
        log_warn("parts of a large message arrived out of order: handed back",
                 "peer=%s stream_seq=%llu error=\"%s\"", s->tag, (unsigned long long)seq, err);
        capture_delivery_drop_parts(s, later_ms);
        hand_back_msg(m, later_ms);
        return false;
    }
    if (s->n_parts == s->cap_parts) {
        uint32_t cap = s->cap_parts ? s->cap_parts * 2 : 8;
        jssub_msg **np = realloc(s->parts, cap * sizeof *np);
        if (!np) {
            capture_delivery_drop_parts(s, 0);
            hand_back_msg(m, 0);
            return false;
        }
        s->parts = np, s->cap_parts = cap;
    }
    s->parts[s->n_parts++] = m;
    if (rc == 0)
        return false;
    if (!(*own = malloc(joined_len ? joined_len : 1))) {
        capture_delivery_drop_parts(s, 0);
        return false;
    }
    memcpy(*own, joined, joined_len);
    *own_len = joined_len;
    return true;
}

/* A tracked batch of a whole message (`m`, or the parts collected when `joined`), indexed.
 * NULL when the message was skipped (malformed) or handed back (out of memory). */
/* How often consumers requeued a retry message's change (Pgc-Requeues; 0 when absent, as
 * in messages an older gateway wrote, or malformed). */
static uint32_t requeues_of(jssub_msg *m)
{
    const char *h = jssub_msg_header(m, "Pgc-Requeues");
    if (!h || !*h)
        return 0;
    char *end;
    unsigned long v = strtoul(h, &end, 10);
    return *end || v > UINT32_MAX ? 0 : (uint32_t)v;
}

/* A log batch delivered again after a stream of this gateway gave it back whole
 * (capture_handback.c): what its consumer acked is not sent again. */
static void skip_acked_before(capture_stream *s, tracked_batch *b)
{
    char key[ACKED_MEMO_KEY_LEN];
    bool *done = calloc(b->n ? b->n : 1, sizeof *done);
    if (!done || capture_stream_memo_key(s, key, sizeof key) != PGC_OK ||
        !acked_memo_take(s->gw->acked, key, b->stream_seq, b->n, done)) {
        free(done);
        return;
    }
    uint32_t skipped = 0;
    for (uint32_t i = 0; i < b->n; i++)
        if (done[i] && b->state[i] == ACK_UNSENT) {
            ack_tracker_batch_set(b, i, ACK_DONE);
            skipped++;
        }
    free(done);
    log_debug("batch given back whole: changes acked before not sent again",
              "peer=%s stream_seq=%llu skipped=%u", s->tag, (unsigned long long)b->stream_seq,
              skipped);
}

static tracked_batch *new_batch(capture_stream *s, cphandle_origin origin, jssub_msg *m,
                                bool joined, const uint8_t *data, size_t len, uint8_t *own,
                                log_pos first)
{
    char err[300];
    uint64_t seq = jssub_msg_stream_seq(m);
    int rc;
    uint32_t n = count_messages(data, len, err, sizeof err, &rc);
    tracked_batch *b = rc < 0 ? NULL : ack_tracker_batch_new(origin, seq, n);
    if (b) {
        b->stored_ns = jssub_msg_time_ns(m);
        if (origin == CPHANDLE_RETRY)
            b->requeues = requeues_of(m);
    }
    if (!b || (b->msgs = malloc((joined ? s->n_parts : 1) * sizeof(void *))) == NULL) {
        if (rc < 0)
            log_error("malformed batch in the log: skipped", "peer=%s stream_seq=%llu error=\"%s\"",
                      s->tag, (unsigned long long)seq, err);
        ack_tracker_batch_free(b);
        free(own);
        if (joined)
            capture_delivery_drop_parts(s, 0);
        else if (rc < 0)
            skip_msg(m);
        else
            hand_back_msg(m, 0);
        return NULL;
    }
    if (joined) {
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
    if (index_batch(s, b, first, err, sizeof err) != PGC_OK) {
        log_error("malformed batch in the log: skipped", "peer=%s stream_seq=%llu error=\"%s\"",
                  s->tag, (unsigned long long)seq, err);
        capture_acks_batch_ack(b);
        return NULL;
    }
    if (origin == CPHANDLE_LOG && jssub_msg_delivered(m) > 1)
        skip_acked_before(s, b);
    return b;
}

/* The hold learns that the log up to p went out or was passed over; in batch mode once the
 * batch being built (which holds changes before p) is out. */
static void note_passed(capture_stream *s, log_pos p)
{
    if (s->out_batch.count) {
        s->pass_pending = true;
        s->pass_pos = p;
    } else {
        stream_hold_passed(s->hold, p);
    }
}

int capture_delivery_register_batch(capture_stream *s, batch_record *rec, uint64_t *number)
{
    pthread_mutex_lock(&s->mu);
    while (!capture_stream_should_stop_locked(s) &&
           (rec->dump
                ? batch_registry_open_dumps(s->batches) >= CAPTURE_STREAM_MAX_OPEN_DUMP_BATCHES
                : batch_registry_open_count(s->batches) >= CAPTURE_STREAM_MAX_OPEN_BATCHES)) {
        struct timespec ts;
        clock_deadline_ms(&ts, 100);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int rc =
        capture_stream_should_stop_locked(s) ? PGC_ERR_STATE : batch_registry_add(s->batches, rec);
    *number = rc == PGC_OK ? rec->number : 0; /* rec is the registry's now */
    pthread_mutex_unlock(&s->mu);
    if (rc != PGC_OK)
        batch_record_free(rec);
    return rc;
}

int capture_delivery_send_batch(capture_stream *s, const capbatch *b)
{
    for (;;) {
        int rc = rpc_call_wait_room(s->call, CAPTURE_STREAM_MAX_QUEUED_SENDS,
                                    CAPTURE_STREAM_MAX_QUEUED_BYTES, 200);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT || capture_stream_stopped(s))
            return PGC_ERR_STATE;
    }
    return rpc_call_send(s->call, b->buf, b->len);
}

/* Numbers the batch being built, records what it carries and sends it. */
static int send_out_batch(capture_stream *s)
{
    batch_record *rec = s->out_rec;
    uint32_t count = s->out_batch.count;
    s->out_rec = NULL;
    uint64_t number;
    int rc = capture_delivery_register_batch(s, rec, &number);
    if (rc != PGC_OK)
        return rc;
    if ((rc = capbatch_finish(&s->out_batch, number)) != PGC_OK)
        return rc;
    if ((rc = capture_delivery_send_batch(s, &s->out_batch)) != PGC_OK)
        return rc;
    s->sent += count;
    metric_add(s->m.sent, count);
    log_debug("batch sent", "peer=%s batch=%llu changes=%u bytes=%zu", s->tag,
              (unsigned long long)number, count, s->out_batch.len);
    return PGC_OK;
}

int capture_delivery_flush(void *arg)
{
    capture_stream *s = arg;
    int rc = PGC_OK;
    if (s->out_batch.count)
        rc = send_out_batch(s);
    capbatch_reset(&s->out_batch);
    if (rc == PGC_ERR_NOMEM)
        rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
    if (rc != PGC_OK)
        return -1;
    if (s->pass_pending) {
        s->pass_pending = false;
        stream_hold_passed(s->hold, s->pass_pos);
    }
    return 0;
}

/* Batch mode: change i of b into the batch being built, which goes out once full. */
static int add_change(capture_stream *s, const tracked_batch *b, uint32_t i, const uint8_t *change,
                      size_t change_len)
{
    uint8_t handle[CPHANDLE_LEN];
    cphandle h = {b->stream_seq, i, b->origin};
    cphandle_encode(&h, handle);
    if (!s->out_rec && !(s->out_rec = batch_record_new(false)))
        return PGC_ERR_NOMEM;
    /* What is in the batch goes out first when this change would take it past the
     * client's limit. */
    size_t item = capbatch_item_size(b->pos[i].lsn, b->pos[i].seq, CPHANDLE_LEN, change_len);
    if (s->out_batch.count && s->out_batch.len + item + BATCH_NUMBER_BYTES > s->max_message_bytes &&
        capture_delivery_flush(s) != 0)
        return PGC_ERR_STATE;
    uint8_t *at = capbatch_add_item(&s->out_batch, b->pos[i].lsn, b->pos[i].seq, handle,
                                    CPHANDLE_LEN, change_len);
    if (!at || batch_record_add(s->out_rec, b->serial, i) != PGC_OK) {
        rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return PGC_ERR_NOMEM;
    }
    memcpy(at, change, change_len);
    if (s->out_batch.count < s->batch_limit && s->out_batch.len < CAPTURE_STREAM_BATCH_BYTES)
        return PGC_OK;
    return capture_delivery_flush(s) == 0 ? PGC_OK : PGC_ERR_STATE;
}

/* The change as the consumer gets it: pgcapture leaves NULL fields out of `old` (a key
 * whose NULL cannot identify a row); the log keeps them for the replica applier. Bytes that
 * cannot be read go as they are, for the consumer to refuse. */
static int shape_change(capture_stream *s, const uint8_t **change, size_t *len)
{
    bool has_null;
    if (capmsg_change_old_has_null(*change, *len, &has_null, NULL, 0) != PGC_OK || !has_null)
        return PGC_OK;
    if (*len > s->shaped_cap) {
        uint8_t *o = realloc(s->shaped, *len);
        if (!o)
            return PGC_ERR_NOMEM;
        s->shaped = o, s->shaped_cap = *len;
    }
    *len = capmsg_change_drop_old_nulls(*change, *len, s->shaped);
    *change = s->shaped;
    return PGC_OK;
}

/* The bytes of the Capture message that would carry change i of b alone. */
static size_t message_size(const capture_stream *s, const tracked_batch *b, uint32_t i,
                           size_t change_len)
{
    if (s->batch_limit)
        return capbatch_item_size(b->pos[i].lsn, b->pos[i].seq, CPHANDLE_LEN, change_len) +
               BATCH_NUMBER_BYTES;
    return capmsg_build_len(b->pos[i].lsn, b->pos[i].seq, CPHANDLE_LEN, change_len);
}

/* A change too large for the client (gRPC refuses a message over its receive limit, and the
 * change would come back for ever): to the URI's dead letters instead, where `pgcapture
 * dead-letters` shows it and can replay it to a client that takes it. False when it could
 * not be stored: the stream then ends (UNAVAILABLE) and the change comes back to the
 * next one. */
static bool dead_letter_too_large(capture_stream *s, tracked_batch *b, uint32_t i, size_t size)
{
    char reason[96], err[400];
    snprintf(reason, sizeof reason, "too large: %zu bytes > %zu", size, s->max_message_bytes);
    int rc = retry_stream_dead_letter(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i],
                                      b->requeues, reason, err, sizeof err);
    pthread_mutex_lock(&s->mu);
    if (rc == PGC_OK)
        ack_tracker_requeued(s->acks, b, i); /* b is `sending`: never completes here */
    else if (!s->loss[0]) {
        snprintf(s->loss, sizeof s->loss, "cannot dead-letter a change too large: %.250s", err);
        s->loss_code = GRPC_STATUS_UNAVAILABLE;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc != PGC_OK) {
        log_error("cannot dead-letter a change too large for the client; the stream ends",
                  "peer=%s uri=\"%s\" lsn=%llX seq=%u error=\"%s\"", s->tag, s->uri,
                  (unsigned long long)b->pos[i].lsn, b->pos[i].seq, err);
        return false;
    }
    metric_inc(s->m.dead_lettered);
    log_warn("change dead-lettered: too large for the client",
             "peer=%s uri=\"%s\" lsn=%llX seq=%u bytes=%zu max_message_bytes=%zu", s->tag, s->uri,
             (unsigned long long)b->pos[i].lsn, b->pos[i].seq, size, s->max_message_bytes);
    return true;
}

/* Waits until the window has room for one more change, then marks change i sent. False
 * when the stream stops meanwhile. */
static bool claim_window(capture_stream *s, tracked_batch *b, uint32_t i)
{
    pthread_mutex_lock(&s->mu);
    if (s->out_batch.count && ack_tracker_in_flight(s->acks) >= s->window) {
        /* The acks that would make room can only come once the batch is out. */
        pthread_mutex_unlock(&s->mu);
        if (capture_delivery_flush(s) != 0)
            return false;
        pthread_mutex_lock(&s->mu);
    }
    while (!capture_stream_should_stop_locked(s) && ack_tracker_in_flight(s->acks) >= s->window) {
        struct timespec ts;
        clock_deadline_ms(&ts, 100);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool stop = capture_stream_should_stop_locked(s);
    if (!stop) {
        ack_tracker_sent(s->acks, b, i);
        if (!b->sent_mono_ns)
            b->sent_mono_ns = clock_mono_ns();
    }
    pthread_mutex_unlock(&s->mu);
    return !stop;
}

/* Sends the changes of a tracked batch. The batch is marked `sending`: an ack that
 * completes it meanwhile (the consumer may ack the last change before this loop is done with
 * the batch's positions) leaves it to send_batch. */
static int send_changes(capture_stream *s, tracked_batch *b, bool from_log)
{
    uint32_t to_send = 0;
    for (uint32_t i = 0; i < b->n; i++)
        to_send += b->state[i] == ACK_UNSENT;
    s->changes_per_batch = 0.75 * s->changes_per_batch + 0.25 * to_send;
    for (uint32_t i = 0; i < b->n; i++) {
        /* A dump being prepared or sent holds live delivery at its snapshot's position:
         * nothing past it goes out meanwhile (stream_hold.h). */
        if (stream_hold_gate(s->hold, from_log, b->pos[i]) != PGC_OK)
            return PGC_ERR_STATE;
        if (b->state[i] != ACK_UNSENT) {
            if (from_log)
                note_passed(s, b->pos[i]);
            continue;
        }
        capmsg_kind kind;
        const uint8_t *change;
        size_t change_len;
        capmsg_peek(b->data + b->off[i], b->mlen[i], &kind, &change, &change_len, NULL, 0);
        int rc = shape_change(s, &change, &change_len);
        if (rc == PGC_ERR_NOMEM) {
            rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
            return PGC_ERR_STATE;
        }
        size_t size = message_size(s, b, i, change_len);
        if (size > s->max_message_bytes) {
            if (!dead_letter_too_large(s, b, i, size))
                return PGC_ERR_STATE;
            if (from_log)
                note_passed(s, b->pos[i]);
            continue;
        }
        /* The window holds even inside a batch: a consumer that stops acking gets no
         * more than --window changes. */
        if (!claim_window(s, b, i))
            return PGC_ERR_STATE;
        rc = s->batch_limit ? add_change(s, b, i, change, change_len)
                            : send_change(s, b, i, change, change_len);
        if (rc != PGC_OK)
            return PGC_ERR_STATE;
        if (from_log)
            note_passed(s, b->pos[i]);
    }
    return PGC_OK;
}

static int send_batch(capture_stream *s, tracked_batch *b, bool from_log)
{
    int rc = send_changes(s, b, from_log);
    pthread_mutex_lock(&s->mu);
    tracked_batch *done = ack_tracker_sending_done(s->acks, b);
    pthread_mutex_unlock(&s->mu);
    if (done)
        capture_acks_batch_ack(done);
    return rc;
}

int capture_delivery_take(capture_stream *s, cphandle_origin origin, jssub_msg *m)
{
    const char *part = jssub_msg_header(m, "Pgc-Part");
    const char *first_s = jssub_msg_header(m, "Pgc-First");
    log_pos first;
    if (!first_s || !logpos_parse(first_s, &first)) {
        log_error("log message without a valid Pgc-First header: skipped",
                  "peer=%s stream_seq=%llu", s->tag, (unsigned long long)jssub_msg_stream_seq(m));
        skip_msg(m);
        return PGC_OK;
    }
    if (!part || part_is_last(part)) {
        pthread_mutex_lock(&s->mu);
        ack_lookup seen = ack_tracker_lookup(s->acks, origin, jssub_msg_stream_seq(m));
        pthread_mutex_unlock(&s->mu);
        if (seen != ACK_LOOKUP_NEW) {
            /* A second copy (JetStream's, not a redelivery this stream asked for): in
             * flight, the first copy's ack acks it; done, the consumer has it already. */
            log_debug("copy of a message this stream has already: not sent again",
                      "peer=%s stream_seq=%llu state=%s", s->tag,
                      (unsigned long long)jssub_msg_stream_seq(m),
                      seen == ACK_LOOKUP_DONE ? "acked" : "in flight");
            if (seen == ACK_LOOKUP_DONE)
                skip_msg(m);
            else
                jssub_msg_destroy(m);
            return PGC_OK;
        }
    }
    const uint8_t *data = jssub_msg_data(m);
    size_t len = jssub_msg_len(m);
    uint8_t *own = NULL;
    if (part) {
        if (!join_part(s, m, part, first, &own, &len))
            return PGC_OK;
        data = own;
    }
    tracked_batch *b = new_batch(s, origin, m, part != NULL, data, len, own, first);
    if (!b)
        return PGC_OK;
    /* Tracked before sending, so that an ack can never overtake its batch. */
    pthread_mutex_lock(&s->mu);
    b->sending = true;
    int rc = ack_tracker_add(s->acks, b);
    pthread_mutex_unlock(&s->mu);
    bool from_log = origin == CPHANDLE_LOG;
    if (rc == 1) {
        /* Nothing for the consumer, but its positions still count towards a hold. Acked
         * even when the stream stops meanwhile: nobody needs it. */
        for (uint32_t i = 0; i < b->n && from_log; i++) {
            if (stream_hold_gate(s->hold, true, b->pos[i]) != PGC_OK) {
                capture_acks_batch_ack(b);
                return PGC_ERR_STATE;
            }
            note_passed(s, b->pos[i]);
        }
        capture_acks_batch_ack(b);
        return PGC_OK;
    }
    if (rc < 0) {
        capture_acks_batch_nak(b, 0);
        return PGC_OK;
    }
    return send_batch(s, b, from_log);
}

/* With nothing fetched while a dump waits for this stream to reach its position: when
 * nothing is pending either, the whole log has been delivered. */
static void check_caught_up(capture_stream *s)
{
    char err[300];
    uint64_t pending = 1;
    int rc = jssub_num_pending(s->sub, &pending, err, sizeof err);
    log_debug("dump waits for the stream; log drained?", "peer=%s pending=%llu rc=%d error=\"%s\"",
              s->tag, (unsigned long long)pending, rc, rc ? err : "");
    if (rc == PGC_OK && pending == 0)
        stream_hold_caught_up(s->hold);
}

/* Waits while the window is full; republishes requeues meanwhile. Returns the window's
 * room (0: full, look again), or -1 once the stream stops. */
static int64_t wait_for_room(capture_stream *s, uint64_t window)
{
    pthread_mutex_lock(&s->mu);
    while (!capture_stream_should_stop_locked(s) && !s->rq_head &&
           ack_tracker_in_flight(s->acks) >= window) {
        struct timespec ts;
        clock_deadline_ms(&ts, 100);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    capture_requeue *q = capture_handback_take_requeues_locked(s);
    bool stop = capture_stream_should_stop_locked(s);
    uint64_t in_flight = ack_tracker_in_flight(s->acks);
    pthread_mutex_unlock(&s->mu);
    capture_handback_requeues(s, q);
    if (stop)
        return -1;
    return in_flight >= window ? 0 : (int64_t)(window - in_flight);
}

/* Consumer lag of the URI as this stream sees it: the durable's messages not delivered yet
 * plus the batches this stream holds unacked, and the age of the oldest of those. */
static void update_lag_metrics(capture_stream *s)
{
    uint64_t pending = 0;
    char err[300];
    if (jssub_num_pending(s->sub, &pending, err, sizeof err) != PGC_OK)
        return;
    pthread_mutex_lock(&s->mu);
    const tracked_batch *oldest = ack_tracker_oldest(s->acks);
    /* The commit time of its first transaction; a batch that continues one begun earlier
     * has none, and its store time stands in (later by the agent's part only). */
    int64_t stored_ns = !oldest ? 0 : oldest->commit_ns ? oldest->commit_ns : oldest->stored_ns;
    size_t held = ack_tracker_batches(s->acks);
    pthread_mutex_unlock(&s->mu);
    metric_set(s->m.pending, (double)(pending + held));
    double age = stored_ns ? (double)(clock_real_ns() - stored_ns) / 1e9 : 0;
    metric_set(s->m.lag, age > 0 ? age : 0);
}

void capture_delivery_run(capture_stream *s)
{
    char err[512];
    uint64_t window = s->window;
    int64_t next_retry = 0;
    jssub_msg *msgs[FETCH_MAX];
    for (;;) {
        /* What was taken goes out before any wait (batch mode). */
        if (capture_delivery_flush(s) != 0)
            break;
        int64_t room = wait_for_room(s, window);
        if (room < 0)
            break;
        if (room == 0)
            continue;
        if (clock_mono_ms() >= next_retry) {
            capture_handback_due_retries(s);
            next_retry = clock_mono_ms() + RETRY_POLL_MS;
            if (capture_delivery_flush(s) != 0)
                break;
        }
        if (clock_mono_ms() >= s->next_metrics_ms) {
            update_lag_metrics(s);
            s->next_metrics_ms = clock_mono_ms() + METRICS_POLL_MS;
        }
        /* As many batches as the window has room for, by the changes a batch carried
         * lately: the window is overshot by about one batch at most. */
        double want = (double)room / (s->changes_per_batch > 1.0 ? s->changes_per_batch : 1.0);
        int max = want < 1.0 ? 1 : want > FETCH_MAX ? FETCH_MAX : (int)want;
        /* A dump waiting for this stream to reach its position learns soon that the log is
         * drained. */
        int wait_ms = stream_hold_running(s->hold) ? FETCH_WAIT_HOLD_MS : FETCH_WAIT_MS;
        int n = jssub_fetch(s->sub, msgs, max, wait_ms, err, sizeof err);
        if (n <= 0 && capture_loss_check_identity(s))
            break;
        if (n < 0) {
            log_warn("fetch failed; retrying", "peer=%s error=\"%s\"", s->tag, err);
            clock_sleep_ms(200);
            continue;
        }
        if (n == 0 && stream_hold_running(s->hold))
            check_caught_up(s);
        /* Before anything fetched goes out: is it past a hole retention made? Not acked
         * then, so the hole stays visible to the next stream. */
        uint64_t before = s->last_new_seq;
        bool consumer_skip = n > 0 && capture_takeback_consumer_skip(s, msgs, n);
        bool suspect = n > 0 && capture_loss_log_suspect(s, msgs, n);
        if (suspect && capture_loss_check_log(s)) {
            for (int k = 0; k < n; k++)
                jssub_msg_destroy(msgs[k]);
            break;
        }
        if ((suspect || consumer_skip || (n > 0 && s->take_back_due)) &&
            capture_takeback_skipped(s, before, consumer_skip, msgs, n)) {
            for (int k = 0; k < n; k++)
                jssub_msg_destroy(msgs[k]); /* nak'ed too: they come again after the skipped */
            continue;
        }
        n = capture_takeback_keep_order(s, msgs, n);
        /* Once the stream stops, take only tracks what is left: the hand-back gives it
         * back (capture_handback.c). */
        for (int i = 0; i < n; i++)
            capture_delivery_take(s, CPHANDLE_LOG, msgs[i]);
    }
}
