/* Confirmation bookkeeping for the agent (see confirm.h). */
#include "roles/agent/confirm.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

#define BUCKET_MS 100

typedef struct pending_txn {
    uint64_t needed; /* publish number that must be acked (with all before it) */
    uint64_t end_lsn;
} pending_txn;

typedef struct delayed_lsn {
    int64_t first_ms; /* bucket opened */
    int64_t last_ms;  /* latest ack folded in: the delay counts from here */
    uint64_t lsn;
} delayed_lsn;

/* A FIFO of fixed-size items that grows geometrically. */
typedef struct fifo {
    void *items;
    size_t item_size, head, len, cap;
} fifo;

struct confirm_tracker {
    int64_t delay_ms;
    uint64_t confirmed;     /* reported so far (monotonic) */
    uint64_t acked_through; /* every publish <= this is acked */
    uint64_t last_pubno;    /* highest publish sent */
    /* acked[i] is whether publish acked_through + 1 + i is acked (out-of-order acks). */
    bool *acked;
    size_t acked_cap;
    fifo txns;    /* pending_txn, waiting for acks, in order */
    fifo delayed; /* delayed_lsn, acked but inside the delay, in order */
};

static void *fifo_at(const fifo *f, size_t i)
{
    return (char *)f->items + ((f->head + i) % f->cap) * f->item_size;
}

static int fifo_push(fifo *f, const void *item)
{
    if (f->len == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        char *items = malloc(cap * f->item_size);
        if (!items)
            return PGC_ERR_NOMEM;
        for (size_t i = 0; i < f->len; i++)
            memcpy(items + i * f->item_size, fifo_at(f, i), f->item_size);
        free(f->items);
        f->items = items;
        f->cap = cap;
        f->head = 0;
    }
    memcpy(fifo_at(f, f->len), item, f->item_size);
    f->len++;
    return PGC_OK;
}

static void fifo_pop(fifo *f)
{
    f->head = (f->head + 1) % f->cap;
    f->len--;
}

int64_t confirm_delay_for(int64_t flag_ms, int replicas)
{
    if (flag_ms >= 0)
        return flag_ms;
    return replicas > 1 ? 0 : CONFIRM_DELAY_SINGLE_MS;
}

int confirm_tracker_create(int64_t delay_ms, uint64_t start_lsn, confirm_tracker **out)
{
    confirm_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return PGC_ERR_NOMEM;
    t->delay_ms = delay_ms < 0 ? 0 : delay_ms;
    t->confirmed = start_lsn;
    t->txns.item_size = sizeof(pending_txn);
    t->delayed.item_size = sizeof(delayed_lsn);
    *out = t;
    return PGC_OK;
}

void confirm_tracker_destroy(confirm_tracker *t)
{
    if (!t)
        return;
    free(t->acked);
    free(t->txns.items);
    free(t->delayed.items);
    free(t);
}

int confirm_published(confirm_tracker *t, uint64_t pubno)
{
    if (pubno != t->last_pubno + 1)
        return PGC_ERR_STATE;
    size_t need = (size_t)(pubno - t->acked_through);
    if (need > t->acked_cap) {
        size_t cap = t->acked_cap ? t->acked_cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        bool *a = realloc(t->acked, cap * sizeof *a);
        if (!a)
            return PGC_ERR_NOMEM;
        memset(a + t->acked_cap, 0, (cap - t->acked_cap) * sizeof *a);
        t->acked = a;
        t->acked_cap = cap;
    }
    t->acked[need - 1] = false;
    t->last_pubno = pubno;
    return PGC_OK;
}

static void add_delayed(confirm_tracker *t, uint64_t lsn, int64_t now_ms)
{
    /* Coalesce into 100 ms buckets so the queue stays small over a 2-minute delay. */
    if (t->delayed.len > 0) {
        delayed_lsn *last = fifo_at(&t->delayed, t->delayed.len - 1);
        if (now_ms - last->first_ms < BUCKET_MS) {
            last->last_ms = now_ms;
            if (lsn > last->lsn)
                last->lsn = lsn;
            return;
        }
    }
    delayed_lsn d = {now_ms, now_ms, lsn};
    if (fifo_push(&t->delayed, &d) != PGC_OK) {
        /* Out of memory: fold into the last entry, which only delays confirmation. */
        if (t->delayed.len > 0) {
            delayed_lsn *last = fifo_at(&t->delayed, t->delayed.len - 1);
            last->last_ms = now_ms;
            if (lsn > last->lsn)
                last->lsn = lsn;
        }
    }
}

static void release_txns(confirm_tracker *t, int64_t now_ms)
{
    while (t->txns.len > 0) {
        pending_txn *p = fifo_at(&t->txns, 0);
        if (p->needed > t->acked_through)
            break;
        add_delayed(t, p->end_lsn, now_ms);
        fifo_pop(&t->txns);
    }
}

void confirm_acked(confirm_tracker *t, uint64_t pubno, int64_t now_ms)
{
    if (pubno <= t->acked_through || pubno > t->last_pubno)
        return;
    t->acked[pubno - t->acked_through - 1] = true;
    size_t shift = 0, window = (size_t)(t->last_pubno - t->acked_through);
    while (shift < window && t->acked[shift])
        shift++;
    if (shift == 0)
        return;
    memmove(t->acked, t->acked + shift, (window - shift) * sizeof *t->acked);
    memset(t->acked + (window - shift), 0, shift * sizeof *t->acked);
    t->acked_through += shift;
    release_txns(t, now_ms);
}

int confirm_txn_done(confirm_tracker *t, uint64_t needed_pubno, uint64_t end_lsn, int64_t now_ms)
{
    if (needed_pubno > t->last_pubno + 1)
        return PGC_ERR_STATE;
    if (t->txns.len > 0) {
        pending_txn *last = fifo_at(&t->txns, t->txns.len - 1);
        if (last->needed == needed_pubno) {
            if (end_lsn > last->end_lsn)
                last->end_lsn = end_lsn;
            return PGC_OK;
        }
    }
    pending_txn p = {needed_pubno, end_lsn};
    int rc = fifo_push(&t->txns, &p);
    if (rc == PGC_OK)
        release_txns(t, now_ms);
    return rc;
}

bool confirm_idle(confirm_tracker *t, uint64_t wal_end, int64_t now_ms)
{
    if (t->acked_through != t->last_pubno || t->txns.len > 0 || t->delayed.len > 0)
        return false;
    (void)now_ms;
    if (wal_end > t->confirmed)
        t->confirmed = wal_end;
    return true;
}

uint64_t confirm_lsn(confirm_tracker *t, int64_t now_ms)
{
    while (t->delayed.len > 0) {
        delayed_lsn *d = fifo_at(&t->delayed, 0);
        if (now_ms - d->last_ms < t->delay_ms)
            break;
        if (d->lsn > t->confirmed)
            t->confirmed = d->lsn;
        fifo_pop(&t->delayed);
    }
    return t->confirmed;
}

uint64_t confirm_acked_through(const confirm_tracker *t)
{
    return t->acked_through;
}

int confirm_waiting(const confirm_tracker *t)
{
    return (int)(t->txns.len + t->delayed.len);
}
