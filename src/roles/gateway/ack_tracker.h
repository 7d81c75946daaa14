/* Per-change ack tracking of one Capture stream over per-batch JetStream messages
 * (docs/protocol.md "In the log"): a batch is done once every Message in it is acked by the
 * consumer, requeued (republished to retry), or needed no ack (Begin, Commit, KeepAlive,
 * filtered). Pure bookkeeping: the stream owns the NATS messages and does the I/O, and
 * locks around every call (the tracker is not thread-safe by itself). */
#ifndef PGC_ROLES_GATEWAY_ACK_TRACKER_H
#define PGC_ROLES_GATEWAY_ACK_TRACKER_H

#include "codec/cphandle.h"
#include "codec/logpos.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ack_state {
    ACK_DONE = 0,      /* acked by the consumer, or requeued and republished */
    ACK_UNSENT = 1,    /* a change to send, not sent yet (waiting for the window) */
    ACK_SENT = 2,      /* sent, waiting for the consumer */
    ACK_REQUEUING = 3, /* the consumer requeued it; republish pending */
    ACK_NOACK = 4,     /* never sent, needs no ack (Begin, Commit, KeepAlive, filtered) */
} ack_state;

typedef struct tracked_batch {
    uint64_t serial; /* unique on the stream, set by ack_tracker_add (batch mode names it) */
    cphandle_origin origin;
    uint64_t stream_seq; /* of the batch's last NATS message (the handle's sequence) */
    void **msgs;         /* the NATS messages (parts) of the batch, owned by the stream */
    uint32_t n_msgs;
    const uint8_t *data; /* the batch's bytes (joined parts are copied into own_data) */
    size_t len;
    uint8_t *own_data;
    uint32_t n;           /* protocol Messages in the batch */
    uint32_t *off, *mlen; /* each Message's bytes within data */
    log_pos *pos;
    uint8_t *state;         /* ack_state per Message */
    uint32_t undone;        /* Messages neither ACK_DONE nor ACK_NOACK */
    uint32_t consumer_done; /* acked or requeued by the consumer */
    int64_t sent_mono_ns;   /* when its first change was sent (metrics: ack latency) */
    int64_t stored_ns;      /* when JetStream stored it, Unix ns (metrics: consumer lag) */
    int64_t commit_ns;      /* commit time of its first Begin, Unix ns; 0: no Begin in it */
    uint32_t requeues;      /* times consumers requeued its change (a retry batch holds one) */
    /* The stream thread is still going through the batch: an ack that completes it
     * meanwhile leaves it tracked, and ack_tracker_sending_done hands it over. */
    bool sending;
} tracked_batch;

/* A batch of n Messages, all ACK_UNSENT. NULL when out of memory. */
tracked_batch *ack_tracker_batch_new(cphandle_origin origin, uint64_t stream_seq, uint32_t n);
/* Frees the bookkeeping (and own_data), not the NATS messages. NULL is a no-op. */
void ack_tracker_batch_free(tracked_batch *b);
/* Sets Message i's state while the stream is filling a new batch (before ack_tracker_add). */
void ack_tracker_batch_set(tracked_batch *b, uint32_t i, ack_state st);

typedef struct ack_tracker ack_tracker;

ack_tracker *ack_tracker_create(void);
/* Frees the tracker; batches still in it are freed too (their messages are not). */
void ack_tracker_destroy(ack_tracker *t);

/* Tracks a batch (ownership passes). A batch with nothing undone is not tracked: returns 1
 * and the caller acks and frees it at once. 0 when tracked, PGC_ERR_NOMEM. */
int ack_tracker_add(ack_tracker *t, tracked_batch *b);

typedef struct ack_result {
    tracked_batch *completed; /* the batch is done: ack its messages, then ack_tracker_batch_free */
    tracked_batch *requeue;   /* republish Message requeue_index of it, then ack_tracker_requeued */
    uint32_t requeue_index;
    bool duplicate;             /* an ack of something already done: ignored */
    int64_t batch_sent_mono_ns; /* the acked change's batch's sent_mono_ns (not a duplicate) */
} ack_result;

/* A consumer's ack (requeue false) or requeue of the change at handle h, whose checkpoint
 * said (lsn, seq). PGC_ERR_INVALID when this stream never sent such a change (unknown
 * batch past anything issued, index out of range, not a sent change, or a position that
 * does not match); nothing changes then. */
int ack_tracker_on_ack(ack_tracker *t, const cphandle *h, log_pos pos, bool requeue,
                       ack_result *res, char *err, size_t err_len);
/* The tracked batch of this serial, or NULL when it is gone (completed) or never was. */
tracked_batch *ack_tracker_find_serial(const ack_tracker *t, uint64_t serial);
/* A batch ack's answer to change i of tracked batch b (docs/protocol.md "Batch mode"): a
 * change sent and not answered yet is acked, or requeued (res->requeue set: republish it,
 * then ack_tracker_requeued); any other change is left as it is. res->completed is set
 * when the batch is done (caller acks and frees it). */
void ack_tracker_answer(ack_tracker *t, tracked_batch *b, uint32_t i, bool requeue,
                        ack_result *res);
/* The requeued change was republished: it counts as done. Returns the batch when that
 * completed it (caller acks and frees), else NULL. */
tracked_batch *ack_tracker_requeued(ack_tracker *t, tracked_batch *b, uint32_t index);

/* Message i of a tracked batch (ACK_UNSENT) is being sent now: it becomes ACK_SENT and
 * counts in the window. Call it before the send, so that no ack can overtake it. */
void ack_tracker_sent(ack_tracker *t, tracked_batch *b, uint32_t i);
/* The stream thread is done with a batch it marked `sending` (tracked or not): returns it
 * when it completed meanwhile (removed from the tracker; caller acks and frees), else NULL. */
tracked_batch *ack_tracker_sending_done(ack_tracker *t, tracked_batch *b);
typedef enum ack_lookup {
    ACK_LOOKUP_NEW = 0,     /* not seen lately: deliver it */
    ACK_LOOKUP_TRACKED = 1, /* a batch of this stream being delivered now */
    ACK_LOOKUP_DONE = 2,    /* a log batch this stream's consumer acked whole lately */
} ack_lookup;

/* Whether a fetched NATS message is one this stream has already (JetStream delivers a
 * message twice now and then, a pull request expiring as it is answered): such a copy is
 * not sent again. Cheap for new messages. */
ack_lookup ack_tracker_lookup(const ack_tracker *t, cphandle_origin origin, uint64_t stream_seq);
/* Changes sent and not yet acked or requeued (the window). */
uint64_t ack_tracker_in_flight(const ack_tracker *t);
size_t ack_tracker_batches(const ack_tracker *t);
/* The oldest tracked batch (borrowed; NULL when none). */
const tracked_batch *ack_tracker_oldest(ack_tracker *t);
/* Removes and returns the oldest tracked batch (NULL when empty): for the end of a
 * stream. */
tracked_batch *ack_tracker_pop(ack_tracker *t);

#endif
