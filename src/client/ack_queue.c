/* The consumer's ack sender thread (see ack_queue.h). The slot being sent stays counted
 * until its send completes, so the run loop never writes into it; each slot's buffer is
 * reused. */
#include "client/ack_queue.h"

#include "core/clock.h"
#include "core/status.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100

typedef struct ack_slot {
    uint8_t *buf;
    size_t len, cap;
} ack_slot;

struct ack_queue {
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
    pthread_t sender;
};

static void *sender_main(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-ack-send");
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

static void queue_free(ack_queue *q)
{
    for (size_t i = 0; q->slots && i < q->cap; i++)
        free(q->slots[i].buf);
    free(q->slots);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->space);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int ack_queue_start(size_t cap, rpc_stream *st, ack_queue **out, char *err, size_t err_len)
{
    ack_queue *q = calloc(1, sizeof *q);
    if (!q)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for acks");
    q->cap = cap;
    q->st = st;
    q->rc = PGC_OK;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->space, NULL);
    if (!(q->slots = calloc(cap, sizeof *q->slots))) {
        queue_free(q);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for %zu acks", cap);
    }
    if (pthread_create(&q->sender, NULL, sender_main, q) != 0) {
        queue_free(q);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: cannot start the ack sender");
    }
    *out = q;
    return PGC_OK;
}

int ack_queue_push(ack_queue *q, const uint8_t *req, size_t len, const atomic_int *stop, char *err,
                   size_t err_len)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && q->rc == PGC_OK && !atomic_load(stop)) {
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
    if (len > slot->cap) {
        size_t cap = len < 128 ? 128 : len;
        uint8_t *buf = realloc(slot->buf, cap);
        if (!buf)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "consumer: out of memory for an ack");
        slot->buf = buf;
        slot->cap = cap;
    }
    memcpy(slot->buf, req, len);
    slot->len = len;
    pthread_mutex_lock(&q->mu);
    if (q->rc == PGC_OK) { /* a failed sender emptied the queue and sends nothing more */
        q->count++;
        if (q->sender_idle)
            pthread_cond_signal(&q->work);
    }
    pthread_mutex_unlock(&q->mu);
    return PGC_OK;
}

bool ack_queue_stop(ack_queue *q, bool flush, int flush_ms)
{
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    pthread_cond_signal(&q->work);
    if (flush) {
        struct timespec ts;
        clock_deadline_ms(&ts, flush_ms);
        q->space_waiters++;
        while (q->count > 0 && pthread_cond_timedwait(&q->space, &q->mu, &ts) != ETIMEDOUT)
            ;
        q->space_waiters--;
    }
    bool drained = q->count == 0 && q->rc == PGC_OK;
    pthread_mutex_unlock(&q->mu);
    if (!drained)
        rpc_stream_cancel(q->st);
    pthread_join(q->sender, NULL);
    queue_free(q);
    return drained;
}
