/* The consumer's acks and requeues of one Capture stream (see capture_stream.h), on the
 * completion-queue thread: checked against the tracker, completed batches acked in
 * JetStream (fire-and-forget), requeues queued for the stream thread, dump-row acks handed
 * to the dumper. Never blocks on I/O. */
#include "roles/gateway/capture_stream.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <stdlib.h>

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
static void queue_requeue_locked(capture_stream *s, const ack_result *res)
{
    capture_requeue *q = malloc(sizeof *q);
    if (!q) {
        /* Left REQUEUING: the end of the stream hands it back. */
        log_error("out of memory queueing a requeue", "peer=%s", s->tag);
        return;
    }
    *q = (capture_requeue){res->requeue, res->requeue_index, NULL};
    if (s->rq_tail)
        s->rq_tail->next = q;
    else
        s->rq_head = q;
    s->rq_tail = q;
}

void capture_acks_on_ack(capture_stream *s, const capture_request *req)
{
    char err[300];
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
        s->bad_ack = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        capture_stream_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, "ack refused", err);
        return;
    }
    if (res.requeue)
        queue_requeue_locked(s, &res);
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
