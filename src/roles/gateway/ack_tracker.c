/* Per-change ack tracking (see ack_tracker.h). Batches are kept in fetch order in a
 * growable ring; consumers mostly ack in order, so lookups from the oldest end are short. */
#include "roles/gateway/ack_tracker.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

#define DONE_WINDOW 8192

struct ack_tracker {
    tracked_batch **ring;    /* slots; NULL once a batch is gone from the middle */
    size_t cap, head, count; /* count: slots used from head (holes included) */
    size_t live;
    uint64_t in_flight;
    uint64_t max_issued[2]; /* highest stream sequence issued per origin */
    /* Log batches completed lately: bit (seq % DONE_WINDOW) for the sequences in
     * (done_top - DONE_WINDOW, done_top]. */
    uint64_t done_top;
    uint8_t done_bits[DONE_WINDOW / 8];
    uint64_t next_serial;
};

tracked_batch *ack_tracker_batch_new(cphandle_origin origin, uint64_t stream_seq, uint32_t n)
{
    tracked_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->origin = origin;
    b->stream_seq = stream_seq;
    b->n = n;
    b->off = calloc(n ? n : 1, sizeof *b->off);
    b->mlen = calloc(n ? n : 1, sizeof *b->mlen);
    b->pos = calloc(n ? n : 1, sizeof *b->pos);
    b->state = malloc(n ? n : 1);
    if (!b->off || !b->mlen || !b->pos || !b->state) {
        ack_tracker_batch_free(b);
        return NULL;
    }
    memset(b->state, ACK_UNSENT, n);
    b->undone = n;
    return b;
}

void ack_tracker_batch_free(tracked_batch *b)
{
    if (!b)
        return;
    free(b->off);
    free(b->mlen);
    free(b->pos);
    free(b->state);
    free(b->own_data);
    free(b->msgs);
    free(b);
}

static bool is_done(uint8_t st)
{
    return st == ACK_DONE || st == ACK_NOACK;
}

void ack_tracker_batch_set(tracked_batch *b, uint32_t i, ack_state st)
{
    if (i >= b->n || b->state[i] == st)
        return;
    if (is_done(b->state[i]))
        b->undone++;
    if (is_done(st))
        b->undone--;
    b->state[i] = (uint8_t)st;
}

ack_tracker *ack_tracker_create(void)
{
    return calloc(1, sizeof(ack_tracker));
}

void ack_tracker_destroy(ack_tracker *t)
{
    if (!t)
        return;
    tracked_batch *b;
    while ((b = ack_tracker_pop(t)))
        ack_tracker_batch_free(b);
    free(t->ring);
    free(t);
}

static tracked_batch **slot(const ack_tracker *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

static void drop_holes(ack_tracker *t)
{
    while (t->count && !*slot(t, 0)) {
        t->head = (t->head + 1) % t->cap;
        t->count--;
    }
}

static void remember_done(ack_tracker *t, const tracked_batch *b)
{
    uint64_t seq = b->stream_seq;
    if (b->origin != CPHANDLE_LOG || seq + DONE_WINDOW <= t->done_top)
        return;
    if (seq > t->done_top) {
        if (seq - t->done_top >= DONE_WINDOW)
            memset(t->done_bits, 0, sizeof t->done_bits);
        else
            for (uint64_t k = t->done_top + 1; k <= seq; k++)
                t->done_bits[k % DONE_WINDOW / 8] &= (uint8_t) ~(1u << (k % 8));
        t->done_top = seq;
    }
    t->done_bits[seq % DONE_WINDOW / 8] |= (uint8_t)(1u << (seq % 8));
}

static size_t find(const ack_tracker *t, cphandle_origin origin, uint64_t seq);

ack_lookup ack_tracker_lookup(const ack_tracker *t, cphandle_origin origin, uint64_t stream_seq)
{
    /* First deliveries come in increasing order: only an old sequence can be known. */
    if (stream_seq > t->max_issued[origin])
        return ACK_LOOKUP_NEW;
    if (find(t, origin, stream_seq) != (size_t)-1)
        return ACK_LOOKUP_TRACKED;
    if (origin == CPHANDLE_LOG && stream_seq <= t->done_top &&
        stream_seq + DONE_WINDOW > t->done_top &&
        (t->done_bits[stream_seq % DONE_WINDOW / 8] >> (stream_seq % 8) & 1))
        return ACK_LOOKUP_DONE;
    return ACK_LOOKUP_NEW;
}

static uint64_t sent_of(const tracked_batch *b)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < b->n; i++)
        n += b->state[i] == ACK_SENT;
    return n;
}

int ack_tracker_add(ack_tracker *t, tracked_batch *b)
{
    if (b->stream_seq > t->max_issued[b->origin])
        t->max_issued[b->origin] = b->stream_seq;
    if (b->undone == 0) {
        remember_done(t, b);
        return 1;
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tracked_batch **r = malloc(cap * sizeof *r);
        if (!r)
            return PGC_ERR_NOMEM;
        for (size_t i = 0; i < t->count; i++)
            r[i] = *slot(t, i);
        free(t->ring);
        t->ring = r, t->cap = cap, t->head = 0;
    }
    b->serial = ++t->next_serial;
    *slot(t, t->count) = b;
    t->count++;
    t->live++;
    t->in_flight += sent_of(b);
    return 0;
}

static size_t find(const ack_tracker *t, cphandle_origin origin, uint64_t seq)
{
    for (size_t i = 0; i < t->count; i++) {
        const tracked_batch *b = *slot(t, i);
        if (b && b->origin == origin && b->stream_seq == seq)
            return i;
    }
    return (size_t)-1;
}

static tracked_batch *remove_at(ack_tracker *t, size_t i)
{
    tracked_batch *b = *slot(t, i);
    *slot(t, i) = NULL;
    t->live--;
    drop_holes(t);
    return b;
}

int ack_tracker_on_ack(ack_tracker *t, const cphandle *h, log_pos pos, bool requeue,
                       ack_result *res, char *err, size_t err_len)
{
    memset(res, 0, sizeof *res);
    size_t i = find(t, h->origin, h->stream_seq);
    if (i == (size_t)-1) {
        /* A batch issued earlier and completed since: a repeated ack, harmless. */
        if (h->stream_seq <= t->max_issued[h->origin]) {
            res->duplicate = true;
            return PGC_OK;
        }
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "ack for stream sequence %llu, never sent on this stream",
                          (unsigned long long)h->stream_seq);
    }
    tracked_batch *b = *slot(t, i);
    if (h->index >= b->n)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "ack for change %u of a batch of %u (stream sequence %llu)", h->index,
                          b->n, (unsigned long long)h->stream_seq);
    if (logpos_cmp(b->pos[h->index], pos) != 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "ack checkpoint %llX/%u does not match the change sent there",
                          (unsigned long long)pos.lsn, pos.seq);
    uint8_t st = b->state[h->index];
    if (st == ACK_DONE || st == ACK_REQUEUING) {
        res->duplicate = true;
        return PGC_OK;
    }
    if (st != ACK_SENT)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "ack for change %u of stream sequence %llu, which was never sent",
                          h->index, (unsigned long long)h->stream_seq);
    t->in_flight--;
    b->consumer_done++;
    res->batch_sent_mono_ns = b->sent_mono_ns;
    if (requeue) {
        b->state[h->index] = ACK_REQUEUING;
        res->requeue = b;
        res->requeue_index = h->index;
        return PGC_OK;
    }
    ack_tracker_batch_set(b, h->index, ACK_DONE);
    if (b->undone == 0 && !b->sending) {
        res->completed = remove_at(t, i);
        remember_done(t, b);
    }
    return PGC_OK;
}

tracked_batch *ack_tracker_find_serial(const ack_tracker *t, uint64_t serial)
{
    /* Serials grow with the ring's order: the oldest are first, and answers come mostly
     * in order. */
    for (size_t i = 0; i < t->count; i++) {
        tracked_batch *b = *slot(t, i);
        if (b && b->serial == serial)
            return b;
        if (b && b->serial > serial)
            break;
    }
    return NULL;
}

/* A batch answered in full leaves the tracker (remembered as done): returned for the caller
 * to ack and free, or NULL when it is not tracked. */
static tracked_batch *forget_done(ack_tracker *t, tracked_batch *b)
{
    for (size_t i = 0; i < t->count; i++)
        if (*slot(t, i) == b) {
            remember_done(t, b);
            return remove_at(t, i);
        }
    return NULL;
}

void ack_tracker_answer(ack_tracker *t, tracked_batch *b, uint32_t i, bool requeue, ack_result *res)
{
    memset(res, 0, sizeof *res);
    if (i >= b->n || b->state[i] != ACK_SENT)
        return;
    t->in_flight--;
    b->consumer_done++;
    res->batch_sent_mono_ns = b->sent_mono_ns;
    if (requeue) {
        b->state[i] = ACK_REQUEUING;
        res->requeue = b;
        res->requeue_index = i;
        return;
    }
    ack_tracker_batch_set(b, i, ACK_DONE);
    if (b->undone == 0 && !b->sending)
        res->completed = forget_done(t, b);
}

tracked_batch *ack_tracker_requeued(ack_tracker *t, tracked_batch *b, uint32_t index)
{
    ack_tracker_batch_set(b, index, ACK_DONE);
    if (b->undone || b->sending)
        return NULL;
    return forget_done(t, b);
}

tracked_batch *ack_tracker_sending_done(ack_tracker *t, tracked_batch *b)
{
    b->sending = false;
    if (b->undone)
        return NULL;
    return forget_done(t, b);
}

void ack_tracker_sent(ack_tracker *t, tracked_batch *b, uint32_t i)
{
    if (i < b->n && b->state[i] == ACK_UNSENT) {
        b->state[i] = ACK_SENT;
        t->in_flight++;
    }
}

uint64_t ack_tracker_in_flight(const ack_tracker *t)
{
    return t->in_flight;
}

size_t ack_tracker_batches(const ack_tracker *t)
{
    return t->live;
}

const tracked_batch *ack_tracker_oldest(ack_tracker *t)
{
    drop_holes(t);
    return t->count ? *slot(t, 0) : NULL;
}

tracked_batch *ack_tracker_pop(ack_tracker *t)
{
    drop_holes(t);
    if (!t->count)
        return NULL;
    tracked_batch *b = remove_at(t, 0);
    t->in_flight -= sent_of(b);
    return b;
}
