/* The freeze/run-to/hold state of one Capture stream (see stream_hold.h). */
#include "roles/gateway/stream_hold.h"

#include "core/clock.h"
#include "core/status.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef enum hold_state { HOLD_NONE, HOLD_FROZEN, HOLD_RUNNING_TO, HOLD_HELD } hold_state;

struct stream_hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hold_state state;
    log_pos target;
    bool has_passed;
    log_pos passed; /* the last position of the log the stream delivered */
    bool (*stopped)(void *arg);
    int (*flush)(void *arg);
    void *arg;
};

int stream_hold_create(bool (*stopped)(void *arg), int (*flush)(void *arg), void *arg,
                       stream_hold **out)
{
    stream_hold *h = calloc(1, sizeof *h);
    if (!h)
        return PGC_ERR_NOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->stopped = stopped;
    h->flush = flush;
    h->arg = arg;
    *out = h;
    return PGC_OK;
}

void stream_hold_destroy(stream_hold *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

/* A bounded wait, so the stop condition (owned by the stream) is polled. */
static void wait_a_little(stream_hold *h, int ms)
{
    struct timespec ts;
    clock_deadline_ms(&ts, ms);
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
}

int stream_hold_gate(stream_hold *h, bool from_log, log_pos p)
{
    pthread_mutex_lock(&h->mu);
    int rc = PGC_OK;
    bool flushed = false;
    for (;;) {
        if (h->stopped(h->arg)) {
            rc = PGC_ERR_STATE;
            break;
        }
        bool past = h->state == HOLD_RUNNING_TO && from_log && logpos_cmp(p, h->target) > 0;
        if (!past && h->state != HOLD_FROZEN && h->state != HOLD_HELD)
            break;
        /* About to stop here: what the stream has gathered goes out first, so that a
         * hold only ever begins with everything before it delivered. */
        if (!flushed && h->flush) {
            flushed = true;
            pthread_mutex_unlock(&h->mu);
            rc = h->flush(h->arg);
            pthread_mutex_lock(&h->mu);
            if (rc != PGC_OK) {
                rc = PGC_ERR_STATE;
                break;
            }
            continue;
        }
        if (past) {
            h->state = HOLD_HELD;
            pthread_cond_broadcast(&h->cv);
        }
        wait_a_little(h, 100);
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void stream_hold_passed(stream_hold *h, log_pos p)
{
    pthread_mutex_lock(&h->mu);
    h->has_passed = true;
    h->passed = p;
    if (h->state == HOLD_RUNNING_TO && logpos_cmp(p, h->target) >= 0) {
        h->state = HOLD_HELD;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

bool stream_hold_running(stream_hold *h)
{
    pthread_mutex_lock(&h->mu);
    bool r = h->state == HOLD_RUNNING_TO;
    pthread_mutex_unlock(&h->mu);
    return r;
}

void stream_hold_caught_up(stream_hold *h)
{
    pthread_mutex_lock(&h->mu);
    if (h->state == HOLD_RUNNING_TO) {
        h->state = HOLD_HELD;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

void stream_hold_freeze(stream_hold *h)
{
    pthread_mutex_lock(&h->mu);
    h->state = HOLD_FROZEN;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

int stream_hold_hold_at(stream_hold *h, log_pos target, int timeout_ms)
{
    long long deadline = clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&h->mu);
    h->target = target;
    /* Delivered up to the target already (the usual case on a quiet log: the target is
     * the log's end, which the stream reached before the freeze): held at once, rather
     * than when the stream next finds the log drained. */
    h->state = h->has_passed && logpos_cmp(h->passed, target) >= 0 ? HOLD_HELD : HOLD_RUNNING_TO;
    pthread_cond_broadcast(&h->cv);
    int rc = PGC_OK;
    while (h->state != HOLD_HELD) {
        if (h->stopped(h->arg)) {
            rc = PGC_ERR_CONN;
            break;
        }
        if (clock_mono_ms() >= deadline) {
            rc = PGC_ERR_TIMEOUT;
            break;
        }
        wait_a_little(h, 100);
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void stream_hold_release(stream_hold *h)
{
    pthread_mutex_lock(&h->mu);
    h->state = HOLD_NONE;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void stream_hold_wake(stream_hold *h)
{
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}
