/* The consumer's acks and requeues of one Capture stream (see capture_stream.h), on the
 * completion-queue thread: checked against the tracker, completed batches acked in
 * JetStream (fire-and-forget), requeues queued for the stream thread, dump-row acks handed
 * to the dumper; batch acks (batch mode) checked against the registry of open batches and
 * applied to what their batch carried. Never blocks on I/O. */
#include "roles/gateway/capture_stream.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

void capture_acks_batch_ack(tracked_batch *b)
{
    char err[256];
    for (uint32_t i = 0; i < b->n_msgs; i++) {
        if (jssub_ack(b->msgs[i], false, err, sizeof err) != PGC_OK)
            log_warn("cannot ack a batch; it will be redelivered", "error=\"%s\"", err);
        jssub_msg_destroy(b->msgs[i]);
    }
    ack_tracker_batch_free(b);
}

void capture_acks_batch_nak(tracked_batch *b, int64_t delay_ms)
{
    char err[256];
    for (uint32_t i = 0; i < b->n_msgs; i++) {
        if (jssub_nak(b->msgs[i], delay_ms, err, sizeof err) != PGC_OK)
            log_debug("cannot nak a batch; it comes back after the ack wait", "error=\"%s\"", err);
        jssub_msg_destroy(b->msgs[i]);
    }
    ack_tracker_batch_free(b);
}

/* Dump rows carry lsn 0 (docs/protocol.md "Checkpoints"): their acks go to the dumper.
 * The stream thread clears s->dumper under mu before destroying it. */
static void on_dump_ack(capture_stream *s, const capture_request *req)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->dumper ? dumper_on_ack(s->dumper, req->seq, req->data, req->data_len,
                                       req->requeue ? req->requeue_reason : "")
                       : PGC_ERR_INVALID;
    pthread_mutex_unlock(&s->mu);
    if (rc != PGC_OK)
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused",
                              "checkpoint with lsn 0 (a dump row) for a dump this stream never "
                              "sent");
}

/* Queues a requeued change for the stream thread. Caller holds mu. */
static void queue_requeue_locked(capture_stream *s, const ack_result *res, const char *reason)
{
    capture_requeue *q = malloc(sizeof *q);
    if (!q) {
        /* Left REQUEUING: the end of the stream hands it back. */
        log_error("out of memory queueing a requeue", "peer=%s", s->tag);
        return;
    }
    /* The reason only matters to a dead letter: without memory for it, it is left empty. */
    *q = (capture_requeue){res->requeue, res->requeue_index, strdup(reason ? reason : ""), NULL};
    if (s->rq_tail)
        s->rq_tail->next = q;
    else
        s->rq_head = q;
    s->rq_tail = q;
}

/* Refuses an ack: the stream ends with INVALID_ARGUMENT and hands back what is unanswered.
 * Caller holds mu; releases it. */
static void refuse_locked(capture_stream *s, const char *err)
{
    s->bad_ack = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused", err);
}

/* What a batch ack answered of one run: how many changes, sent when (metrics). */
typedef struct run_answer {
    int64_t sent_mono_ns;
    uint64_t changes;
} run_answer;

/* Applies a batch ack to the changes of the log a batch carried. Caller holds mu. The
 * tracked batches it completes go into done[] (room for one per run: a run completes at
 * most its own batch) and what each run answered into answered[]; the caller acks the
 * batches and counts the answers after unlocking. */
static size_t answer_runs_locked(capture_stream *s, const batch_record *rec, bool requeue,
                                 const char *reason, tracked_batch **done, run_answer *answered)
{
    size_t n_done = 0;
    for (uint32_t r = 0; r < rec->n_runs; r++) {
        const batch_run *run = &rec->runs[r];
        tracked_batch *b = ack_tracker_find_serial(s->acks, run->serial);
        answered[r] = (run_answer){0, 0};
        for (uint32_t i = run->first; b && i <= run->last; i++) {
            ack_result res;
            ack_tracker_answer(s->acks, b, i, requeue, &res);
            if (res.batch_sent_mono_ns)
                answered[r] = (run_answer){res.batch_sent_mono_ns, answered[r].changes + 1};
            if (res.requeue)
                queue_requeue_locked(s, &res, reason);
            if (res.completed) {
                done[n_done++] = res.completed;
                b = NULL; /* gone from the tracker: all of it was answered */
            }
        }
    }
    return n_done;
}

/* A batch ack (docs/protocol.md "Batch mode"): answers every change of the batch that was
 * not answered on its own. */
static void on_batch_ack(capture_stream *s, const capture_request *req)
{
    char err[300];
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    batch_record *rec;
    if (batch_registry_take(s->batches, req->batch, &rec, err, sizeof err) != PGC_OK) {
        refuse_locked(s, err);
        return;
    }
    size_t runs = rec->n_runs ? rec->n_runs : 1;
    tracked_batch **done = malloc(runs * sizeof *done);
    run_answer *answered = malloc(runs * sizeof *answered);
    size_t n_done = 0;
    if (!done || !answered) {
        /* Its changes stay unanswered: the end of the stream hands them back. */
        pthread_mutex_unlock(&s->mu);
        free(done);
        free(answered);
        batch_record_free(rec);
        rpc_call_finish(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "gateway: out of memory");
        return;
    }
    if (!rec->dump)
        n_done = answer_runs_locked(s, rec, req->requeue, req->requeue_reason, done, answered);
    else if (s->dumper)
        dumper_on_batch_ack(s->dumper, rec->dump_id, rec->dump_last,
                            req->requeue ? req->requeue_reason : "");
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    int64_t now = clock_mono_ns();
    for (uint32_t r = 0; !rec->dump && r < rec->n_runs; r++) {
        if (!answered[r].changes)
            continue;
        metric_add(req->requeue ? s->m.requeued : s->m.acked, answered[r].changes);
        metric_observe_n(s->m.ack_latency, (double)(now - answered[r].sent_mono_ns) / 1e9,
                         answered[r].changes);
    }
    for (size_t i = 0; i < n_done; i++)
        capture_acks_batch_ack(done[i]);
    free(done);
    free(answered);
    if (req->requeue)
        log_debug("batch requeued", "peer=%s batch=%llu reason=\"%s\"", s->tag,
                  (unsigned long long)req->batch, req->requeue_reason);
    batch_record_free(rec);
}

void capture_acks_on_ack(capture_stream *s, const capture_request *req)
{
    char err[300];
    if (req->batch) {
        on_batch_ack(s, req);
        return;
    }
    if (req->lsn == 0) {
        on_dump_ack(s, req);
        return;
    }
    cphandle h;
    if (cphandle_decode(req->data, req->data_len, &h, err, sizeof err) != PGC_OK) {
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused", err);
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
        refuse_locked(s, err);
        return;
    }
    if (res.requeue)
        queue_requeue_locked(s, &res, req->requeue_reason);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!res.duplicate) {
        metric_inc(req->requeue ? s->m.requeued : s->m.acked);
        if (res.batch_sent_mono_ns)
            metric_observe(s->m.ack_latency,
                           (double)(clock_mono_ns() - res.batch_sent_mono_ns) / 1e9);
    }
    if (res.completed)
        capture_acks_batch_ack(res.completed);
    if (res.requeue)
        log_debug("change requeued", "peer=%s lsn=%llX seq=%u reason=\"%s\"", s->tag,
                  (unsigned long long)req->lsn, req->seq, req->requeue_reason);
}
