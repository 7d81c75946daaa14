/* One DBLogGateway.Capture stream (docs/protocol.md "The Capture stream, step by step"):
 * init, then Change messages from the URI's durable JetStream consumer (shared with the
 * URI's other streams, so they spread the load) and from its retry subject, with per-change
 * acks and requeues tracked per batch (ack_tracker.h), and the URI's dumps in between. In
 * batch mode (docs/protocol.md "Batch mode") the changes go out packed into batches, built
 * from the log's bytes, and the batches sent and not yet answered by a batch ack are kept
 * in a registry (batch_registry.h).
 * Its state, shared by the files that do one job each:
 *   capture_stream.c    lifetime: start, init, opening the log, end
 *   capture_acks.c      the consumer's acks and requeues; acking batches in JetStream
 *   capture_delivery.c  delivery of log batches: fetch, filter, send, the window
 *   capture_handback.c  requeues republished, the retry thread, the hand-back at the end
 *   capture_dumps.c     the dumper's hooks into the stream (freeze, hold, release, send)
 *   capture_loss.c      changes the log no longer holds: DATA_LOSS
 *
 * Threading: the call's gRPC completion-queue thread (one of the server's) runs
 * on_start/on_message/on_half_close/on_done, in order; it
 * decodes requests, validates acks against the tracker and acks completed batches in
 * JetStream (fire-and-forget), but never blocks: requeues (a synchronous publish) are
 * queued to the stream's own thread. That thread resolves the URI, connects, fetches,
 * sends (waiting for gRPC flow control, and for the ack window), republishes requeues and,
 * at the end, hands back what is unacked. A second thread per stream blocks on the retry
 * durable and holds what it fetches until due; a third, the dumper's, sends dumps through
 * the hooks. `mu` guards the tracker, the requeue queue, the held retries, the dumper
 * pointer and the flags; the struct is freed when both sides have let go (refs). */
#ifndef PGC_ROLES_GATEWAY_CAPTURE_STREAM_H
#define PGC_ROLES_GATEWAY_CAPTURE_STREAM_H

#include "roles/gateway/gateway_private.h"

#include "codec/batch.h"
#include "codec/part.h"
#include "codec/capbatch.h"
#include "codec/cphandle.h"
#include "core/names.h"
#include "core/saferegex.h"
#include "jetstream/jssub.h"
#include "roles/gateway/ack_tracker.h"
#include "roles/gateway/batch_registry.h"
#include "roles/gateway/capture_request.h"
#include "roles/gateway/dumper.h"
#include "roles/gateway/order_guard.h"
#include "roles/gateway/retry_stream.h"
#include "roles/gateway/stream_hold.h"
#include "roles/gateway/uri_metrics.h"

#include <grpc/status.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* How long newer log messages give way to ones given or asked back (order_guard.h) while
 * none of those comes. */
#define TAKE_BACK_PATIENCE_MS 2000

/* The DATA_LOSS message of a stream that found changes gone, at most. */
#define CAPTURE_STREAM_LOSS_LEN 1024
/* Retry messages held until due, at most. */
#define CAPTURE_STREAM_RETRY_HOLD_MAX 64
/* gRPC messages queued on the call before a sender waits (flow control), and their bytes
 * (batch mode). */
#define CAPTURE_STREAM_MAX_QUEUED_SENDS 64
#define CAPTURE_STREAM_MAX_QUEUED_BYTES (4u * 1024 * 1024)
/* Batch mode: a batch goes out at this size at the latest (and at BatchLimit changes). */
#define CAPTURE_STREAM_BATCH_BYTES (256u * 1024)
/* Batch mode: batches not answered by a batch ack, at most (the stream waits), and of them
 * dump batches (the dumper waits). */
#define CAPTURE_STREAM_MAX_OPEN_BATCHES 1024
#define CAPTURE_STREAM_MAX_OPEN_DUMP_BATCHES 16

/* A change the consumer requeued, waiting for the stream thread to republish it. */
typedef struct capture_requeue {
    tracked_batch *b;
    uint32_t index;
    char *reason; /* the consumer's requeue reason (NULL when out of memory) */
    struct capture_requeue *next;
} capture_requeue;

struct capture_stream {
    pgc_gateway *gw;
    rpc_call *call;
    capture_stream *prev, *next; /* in gw->streams, under gw->mu */
    bool admitted;               /* counted against its URI's stream limit, under gw->mu */
    bool ending; /* handing back what it holds (admitted until done), under gw->mu */
    /* completion-queue thread only */
    bool inited;
    /* written before the thread starts, read-only after */
    char uri[CAPTURE_REQUEST_MAX_URI + 1];
    char *table_regex; /* as the client sent it, or NULL */
    bool truncate;     /* the client asked for TRUNCATE changes (parameter Truncate) */
    /* compiled by the stream thread (off the completion-queue thread: a hostile pattern
     * may take a while) before the dumper starts; read-only after */
    saferegex *re;
    uint32_t batch_limit; /* 0: per-change mode */
    uint64_t window;      /* changes sent and not answered, at most */
    /* the largest Capture message the client takes: its MaxMessageSize, else the
     * gateway's --max-message-size; a change that would not fit is dead-lettered */
    size_t max_message_bytes;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool call_over, closing, bad_ack;
    bool client_done;                   /* the client half-closed: end the stream gracefully */
    char loss[CAPTURE_STREAM_LOSS_LEN]; /* non-empty: the log failed the stream; ends with */
    grpc_status_code loss_code;         /* this (DATA_LOSS: changes are gone) */
    ack_tracker *acks;
    batch_registry *batches; /* batch mode: batches sent, not answered by a batch ack */
    capture_requeue *rq_head, *rq_tail;
    /* the stream thread only */
    pgc_uri_target target;
    jssub *sub;
    retry_stream *retry;
    part_joiner *pj;
    jssub_msg **parts;
    uint32_t n_parts, cap_parts;
    uint8_t *out;
    size_t out_cap;
    uint8_t *shaped; /* a change as the consumer gets it, when that differs from the log's */
    size_t shaped_cap;
    /* batch mode: the batch being built, what it carries, and the last position of the log
     * passed over since it began (reported to the hold once the batch is out) */
    capbatch out_batch;
    batch_record *out_rec;
    bool pass_pending;
    log_pos pass_pos;
    /* retry: a thread of its own blocks on the retry durable and fills `held` (under
     * mu); the stream thread takes what is due */
    pthread_t retry_thread;
    bool retry_started, retry_stop;
    jssub_msg *held[CAPTURE_STREAM_RETRY_HOLD_MAX];
    uint32_t n_held;
    uint64_t sent, filtered;
    uint64_t last_new_seq;         /* highest log sequence delivered to this stream (0: unknown) */
    int64_t log_created;           /* the log stream's identity (its created time) when opened */
    int64_t next_identity_ms;      /* when an idle stream checks that identity again */
    bool log_missing;              /* the last check found no log stream */
    int64_t next_gap_take_back_ms; /* skips are asked back from then on (another reader met) */
    uint64_t last_consumer_seq;    /* the durable's delivery count at the last delivery here */
    bool take_back_due;            /* a skip could not be asked back yet */
    order_guard *guard;            /* log order while messages are given or asked back */
    double changes_per_batch;      /* moving average of changes sent per batch */
    /* dumps: the dumper thread (started by the stream thread once the log is open; its
     * pointer read by the completion-queue thread under mu) and the hold it puts on the
     * live delivery */
    dumper *dumper;
    stream_hold *hold;
    int64_t hold_since_ns; /* the dumper thread only: when the live delivery froze */
    /* metrics: series set by the stream thread before the stream serves anything */
    uri_metrics m;
    int64_t next_metrics_ms;
    bool counted; /* in the URI's streams gauge */
    char log_subject[NAMES_BUF_LEN];
    char tag[64]; /* for log lines: the peer */
};

/* capture_stream.c */
/* The call is over, the client half-closed, an ack was refused, the stream hands back, or
 * the gateway stops.
 * Caller holds mu. */
bool capture_stream_should_stop_locked(capture_stream *s);
/* The same, taking mu; `arg` is the stream (a stream_hold and dumper callback). */
bool capture_stream_stopped(void *arg);
/* The key of s's durable in the gateway's acked memo. PGC_ERR_INVALID when too long. */
int capture_stream_memo_key(const capture_stream *s, char *out, size_t out_len);
/* No other stream of this gateway reads s's durable. */
bool capture_stream_sole_reader(capture_stream *s);
/* Asks the durable to deliver again first what it delivered and nobody acked
 * (jssub_redeliver_unacked; max_waiting and *others_pulling, which may be NULL, as there):
 * PGC_OK with *through the last stream sequence asked (0: none), or the error (logged). */
int capture_stream_take_back(capture_stream *s, int64_t max_waiting, uint64_t *through,
                             bool *others_pulling);
/* Logs and ends the call with `code` and "what: detail". */
void capture_stream_refuse(capture_stream *s, grpc_status_code code, const char *what,
                           const char *detail);

/* capture_takeback.c, stream thread: deliveries lost on their way. Whether the consumer
 * sequences of msgs skip some of the durable's deliveries. */
bool capture_takeback_consumer_skip(capture_stream *s, jssub_msg **msgs, int n);
/* A skip seen (log sequence past `before`, consumer_skip, or a take-back still due): asks the
 * lost messages back and gives msgs back after them. True when msgs were given back (the
 * caller drops them). */
bool capture_takeback_skipped(capture_stream *s, uint64_t before, bool consumer_skip,
                              jssub_msg **msgs, int n);
/* Gives back those of msgs newer than what is away (order_guard.h); how many are left,
 * moved to the front. */
int capture_takeback_keep_order(capture_stream *s, jssub_msg **msgs, int n);

/* capture_acks.c, completion-queue thread */
void capture_acks_on_ack(capture_stream *s, const capture_request *req);
/* Acks (or naks, to come back after delay_ms) every NATS message of a batch, then frees
 * the batch. Any thread; the batch must no longer be tracked. */
void capture_acks_batch_ack(tracked_batch *b);
void capture_acks_batch_nak(tracked_batch *b, int64_t delay_ms);

/* capture_delivery.c, the stream thread */
/* Delivers the log (and due retries) until the stream stops. */
void capture_delivery_run(capture_stream *s);
/* Takes one fetched NATS message of the log or of the retry subject: tracks its batch and
 * sends its changes. PGC_ERR_STATE once the stream stops: nothing more is sent, and the
 * message stays tracked (a part: kept) for the hand-back. */
int capture_delivery_take(capture_stream *s, cphandle_origin origin, jssub_msg *m);
/* Naks and drops the parts of a large message collected so far. */
void capture_delivery_drop_parts(capture_stream *s, int64_t nak_delay_ms);
/* Batch mode: sends the batch being built, if any (the hold's flush callback too; `arg` is
 * the stream). 0, or non-zero when the stream is over. */
int capture_delivery_flush(void *arg);
/* Registers rec as the next batch once fewer than the stream's limit of open batches (of
 * dump batches, for a dump's record) are open; frees rec on failure. PGC_OK with its
 * number, PGC_ERR_STATE once the stream stops. Stream thread or dumper thread. */
int capture_delivery_register_batch(capture_stream *s, batch_record *rec, uint64_t *number);
/* Sends a finished batch once the call has room; PGC_ERR_STATE once the stream stops. */
int capture_delivery_send_batch(capture_stream *s, const capbatch *b);

/* capture_handback.c, the stream thread */
/* Binds the URI's retry subject and starts the retry thread. */
int capture_handback_start(capture_stream *s, const char *nats_url, char *err, size_t err_len);
/* Takes the queued requeues; caller holds mu. Republish them with capture_handback_requeues
 * after unlocking. */
capture_requeue *capture_handback_take_requeues_locked(capture_stream *s);
void capture_handback_requeues(capture_stream *s, capture_requeue *q);
/* Delivers the held retry messages that are due. */
void capture_handback_due_retries(capture_stream *s);
/* The end of the stream: lets acks in flight land when the gateway stops gracefully, then
 * hands back everything unacked. */
void capture_handback_end(capture_stream *s);
/* Stops and joins the retry thread (no-op when not started). */
void capture_handback_stop_retries(capture_stream *s);

/* capture_loss.c: changes the log no longer holds */
/* Logs what is lost and what to do, and ends the stream with DATA_LOSS. Any thread. */
void capture_loss_report(capture_stream *s, const char *what, const char *durable, uint64_t from,
                         uint64_t to);
/* The stream thread, before anything of the log is sent (at the start, and after a fetch
 * capture_loss_log_suspect finds suspicious): true when the URI's durable lags behind the
 * log's retention, or the log stream is not the one the stream opened (reported). */
bool capture_loss_check_log(capture_stream *s);
/* The stream thread, while idle (at most once a second): true when the log stream was
 * deleted or recreated since the stream opened it (it ends with ABORTED), reported with a
 * log line. The durable consumer goes with a deleted stream, and fetches
 * then find nothing, forever; one of the same name on a new stream numbers its messages
 * anew. */
bool capture_loss_check_identity(capture_stream *s);
/* Whether fetched log messages do not simply follow the last one this stream took (then
 * capture_loss_check_log must look before they are sent). */
bool capture_loss_log_suspect(capture_stream *s, jssub_msg **msgs, int n);
/* The retry thread, on what it fetched: true when a requeued change of the URI expired
 * unread (reported). Each requeued change names the one before it (Pgc-Prev). */
bool capture_loss_check_retry(capture_stream *s, jssub_msg **msgs, int n);

/* capture_dumps.c, the stream thread */
/* Starts the URI's dumper when the gateway has a controller and the URI a replica. */
int capture_dumps_start(capture_stream *s, char *err, size_t err_len);
void capture_dumps_stop(capture_stream *s);

#endif
