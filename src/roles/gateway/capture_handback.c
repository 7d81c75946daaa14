/* What a Capture stream gives back (see capture_stream.h): changes the consumer requeued,
 * republished to the URI's retry subject; the retry thread that brings them back once due;
 * and, at the end of the stream, every batch still unacked. Runs on the stream thread,
 * except retry_main, the retry thread. */
#include "roles/gateway/capture_stream.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

/* How long the end of a stream waits for the server to confirm its subscriptions stopped. */
#define DRAIN_TIMEOUT_MS 5000

capture_requeue *capture_handback_take_requeues_locked(capture_stream *s)
{
    capture_requeue *q = s->rq_head;
    s->rq_head = s->rq_tail = NULL;
    return q;
}

/* Republishes a requeued change to retry, or, requeued max_requeues times now, to the
 * dead-letter subject (then it never comes back). */
static int requeue_one(capture_stream *s, tracked_batch *b, uint32_t i, const char *reason,
                       char *err, size_t err_len)
{
    uint32_t requeues = b->requeues + 1;
    int max = s->gw->opts.max_requeues;
    if (max <= 0 || requeues < (uint32_t)max)
        return retry_stream_publish(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i], requeues,
                                    err, err_len);
    int rc = retry_stream_dead_letter(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i],
                                      requeues, reason, err, err_len);
    if (rc == PGC_OK) {
        metric_inc(s->m.dead_lettered);
        log_warn("change dead-lettered: requeued too often",
                 "peer=%s lsn=%llX seq=%u "
                 "requeues=%u reason=\"%s\"",
                 s->tag, (unsigned long long)b->pos[i].lsn, b->pos[i].seq, requeues,
                 reason ? reason : "");
    }
    return rc;
}

void capture_handback_requeues(capture_stream *s, capture_requeue *q)
{
    char err[300];
    while (q) {
        capture_requeue *next = q->next;
        tracked_batch *b = q->b;
        uint32_t i = q->index;
        int rc = requeue_one(s, b, i, q->reason, err, sizeof err);
        free(q->reason);
        free(q);
        q = next;
        if (rc != PGC_OK) {
            /* Still REQUEUING: the end of the stream hands the batch back. */
            log_error("cannot republish a requeued change", "peer=%s error=\"%s\"", s->tag, err);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        tracked_batch *done = ack_tracker_requeued(s->acks, b, i);
        pthread_mutex_unlock(&s->mu);
        if (done)
            capture_acks_batch_ack(done);
    }
}

/* Requeued changes come back through the URI's retry durable once retry_delay_ms has
 * passed since they were republished. The retry thread fetches them (blocking, so the
 * stream thread never waits on an empty retry subject) and holds them until due; they are
 * not nak'ed with a delay, since a redelivery can land on an expired pull request and then
 * wait for the whole ack wait. The retry delay is below the ack wait, so a held message is
 * never redelivered elsewhere meanwhile. */
static void *retry_main(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-retry");
    capture_stream *s = arg;
    jssub_msg *got[CAPTURE_STREAM_RETRY_HOLD_MAX];
    char err[300];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->retry_stop && s->n_held >= CAPTURE_STREAM_RETRY_HOLD_MAX)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->retry_stop;
        int room = (int)(CAPTURE_STREAM_RETRY_HOLD_MAX - s->n_held);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        int n = jssub_fetch(retry_stream_sub(s->retry), got, room, 250, err, sizeof err);
        if (n < 0) {
            log_debug("retry fetch failed", "peer=%s error=\"%s\"", s->tag, err);
            clock_sleep_ms(200);
            continue;
        }
        if (n > 0 && capture_loss_check_retry(s, got, n)) {
            /* Reported: the stream ends; these come back to the next one, which sees the
             * same hole (they are not acked). */
            for (int i = 0; i < n; i++) {
                jssub_nak(got[i], 0, err, sizeof err);
                jssub_msg_destroy(got[i]);
            }
            pthread_mutex_lock(&s->mu);
            while (!s->retry_stop)
                pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++)
            s->held[s->n_held++] = got[i];
        pthread_mutex_unlock(&s->mu);
    }
}

int capture_handback_start(capture_stream *s, const char *nats_url, char *err, size_t err_len)
{
    pgc_gateway *gw = s->gw;
    retry_stream_config retry_cfg = {nats_url,
                                     s->target.source,
                                     s->target.durable,
                                     gw->opts.ack_wait_ms,
                                     gw->opts.max_ack_pending,
                                     gw->opts.retry_max_age_ms,
                                     gw->opts.retry_max_bytes};
    /* The retry stream keeps requeued changes as long as the log keeps changes (the log
     * stream's limits), or as the gateway's --retry-max-age/--retry-max-bytes say: set
     * when the retry stream is created, and on each start after. */
    int rc = retry_stream_create(&retry_cfg, &s->retry, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (pthread_create(&s->retry_thread, NULL, retry_main, s) != 0)
        return errbuf_set(err, err_len, PGC_ERR_STATE, "cannot start the retry thread");
    s->retry_started = true;
    return PGC_OK;
}

void capture_handback_due_retries(capture_stream *s)
{
    jssub_msg *due[CAPTURE_STREAM_RETRY_HOLD_MAX];
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
    /* Once the stream stops, take only tracks what is left: the hand-back gives it back. */
    for (uint32_t i = 0; i < k; i++)
        capture_delivery_take(s, CPHANDLE_RETRY, due[i]);
}

void capture_handback_stop_retries(capture_stream *s)
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

/* Republishes a partly acked batch's unacked changes to retry. False when one failed: the
 * batch then has to come back whole. */
static bool republish_unacked(capture_stream *s, tracked_batch *b, uint64_t *republished)
{
    char err[300];
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->state[i] == ACK_DONE || b->state[i] == ACK_NOACK)
            continue;
        /* Not requeued by a consumer: its count stays. */
        if (retry_stream_publish(s->retry, b->data + b->off[i], b->mlen[i], b->pos[i], b->requeues,
                                 err, sizeof err) != PGC_OK) {
            log_error("cannot republish an unacked change; its batch comes back whole",
                      "peer=%s error=\"%s\"", s->tag, err);
            return false;
        }
        log_debug("unacked change republished to retry",
                  "peer=%s lsn=%llX seq=%u stream_seq=%llu origin=%d", s->tag,
                  (unsigned long long)b->pos[i].lsn, b->pos[i].seq,
                  (unsigned long long)b->stream_seq, (int)b->origin);
        ack_tracker_batch_set(b, i, ACK_DONE);
        (*republished)++;
    }
    return true;
}

static void take_retry(void *arg, jssub_msg *m)
{
    capture_delivery_take(arg, CPHANDLE_RETRY, m);
}

static void take_log(void *arg, jssub_msg *m)
{
    capture_delivery_take(arg, CPHANDLE_LOG, m);
}

/* Nothing more reaches this stream's subscriptions (jssub_drain): what did after the last
 * fetch is tracked with the rest, and what is republished goes to other streams. */
static void drain(capture_stream *s, jssub *sub, void (*take)(void *, jssub_msg *))
{
    char err[300];
    if (jssub_drain(sub, take, s, DRAIN_TIMEOUT_MS, err, sizeof err) < 0)
        log_warn("cannot drain a subscription; what it still holds comes back after the ack wait",
                 "peer=%s error=\"%s\"", s->tag, err);
}

/* A log batch given back whole: nak'ed, so that its durable delivers it again before
 * anything newer, with what the consumer acked of it remembered (acked_memo.h) for the
 * gateway's stream that gets it next. False when it cannot be remembered, or when the
 * gateway is stopping (the memo dies with it): then the batch goes the retry way. */
static bool give_back_whole(capture_stream *s, tracked_batch *b)
{
    if (b->origin != CPHANDLE_LOG)
        return false;
    bool *done = calloc(b->n ? b->n : 1, sizeof *done);
    if (!done)
        return false;
    bool any = false;
    for (uint32_t i = 0; i < b->n; i++)
        any |= done[i] = b->state[i] == ACK_DONE;
    bool ok = true;
    if (any) {
        char key[ACKED_MEMO_KEY_LEN];
        ok = !atomic_load(&s->gw->stopping) &&
             capture_stream_memo_key(s, key, sizeof key) == PGC_OK &&
             acked_memo_put(s->gw->acked, key, b->stream_seq, b->n, done) == PGC_OK;
    }
    free(done);
    if (ok)
        capture_acks_batch_nak(b, 0);
    return ok;
}

/* The end of a stream (docs/protocol.md step 5): every change not acked (sent or not) comes
 * back once, and acked changes never do. Log batches are nak'ed, in log order, so their
 * durable delivers them again before anything newer (give_back_whole); first the consumer's
 * info is read, which makes the server drop this stream's pull requests (nobody listens for
 * them since the drain): nats-server 2.9 (Debian 12's) loses the redelivery of a nak'ed
 * message that finds only such requests waiting, and delivers the newest message once more
 * instead. When that read fails (NATS between two leaders), the batches are still given
 * back whole: republished to retry they would come after newer changes for sure, while a
 * lost redelivery is asked back by the URI's next stream (capture_stream.c, open_uri).
 * Retry batches, and a log batch that cannot be given back whole, have their unacked
 * changes republished to retry and the batch acked. A nak is the last resort when a
 * republish fails. */
static void hand_back(capture_stream *s)
{
    tracked_batch *b;
    uint64_t republished = 0, returned = 0, whole = 0;
    char err[300];
    /* The retry thread stopped, its held messages are tracked like the rest. */
    capture_handback_stop_retries(s);
    for (uint32_t i = 0; i < s->n_held; i++)
        capture_delivery_take(s, CPHANDLE_RETRY, s->held[i]);
    s->n_held = 0;
    drain(s, retry_stream_sub(s->retry), take_retry);
    drain(s, s->sub, take_log);
    if (jssub_sweep_requests(s->sub, err, sizeof err) != PGC_OK)
        log_warn("cannot sweep the stream's pull requests before giving back",
                 "peer=%s error=\"%s\"", s->tag, err);
    while ((b = ack_tracker_pop(s->acks))) {
        if (give_back_whole(s, b)) {
            whole++;
        } else if (republish_unacked(s, b, &republished)) {
            capture_acks_batch_ack(b);
        } else {
            log_debug("unacked batch returned to the log", "peer=%s stream_seq=%llu origin=%d",
                      s->tag, (unsigned long long)b->stream_seq, (int)b->origin);
            capture_acks_batch_nak(b, 0);
            returned++;
        }
    }
    capture_delivery_drop_parts(s, 0);
    /* The server has every ack and nak of this stream before a next stream asks for
     * anything (its requests come on another connection). */
    if (jssub_flush(s->sub, err, sizeof err) != PGC_OK)
        log_warn("cannot flush the hand-back", "peer=%s error=\"%s\"", s->tag, err);
    if (republished || returned || whole)
        log_info("unacked changes handed back",
                 "peer=%s batches_given_back_whole=%llu republished=%llu batches_returned=%llu",
                 s->tag, (unsigned long long)whole, (unsigned long long)republished,
                 (unsigned long long)returned);
}

/* A graceful stop lets the acks in flight land, up to the grace period. */
static void await_acks(capture_stream *s)
{
    int64_t until = clock_mono_ms() + atomic_load(&s->gw->stop_grace_ms);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        capture_requeue *q = capture_handback_take_requeues_locked(s);
        bool done = ack_tracker_in_flight(s->acks) == 0 || s->call_over;
        if (!q && !done && clock_mono_ms() < until) {
            struct timespec ts;
            clock_deadline_ms(&ts, 20);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
        capture_handback_requeues(s, q);
        if (done || clock_mono_ms() >= until)
            break;
    }
}

void capture_handback_end(capture_stream *s)
{
    pthread_mutex_lock(&s->mu);
    bool graceful = atomic_load(&s->gw->stopping) && !s->call_over && !s->bad_ack;
    pthread_mutex_unlock(&s->mu);
    if (graceful)
        await_acks(s);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    capture_requeue *q = capture_handback_take_requeues_locked(s);
    pthread_mutex_unlock(&s->mu);
    capture_handback_requeues(s, q);
    hand_back(s);
}
