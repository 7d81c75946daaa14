/* A durable JetStream pull consumer: created when missing (explicit ack, ack wait,
 * max-ack-pending as the flow-control window, one filter subject) or bound when present,
 * so a restarted reader resumes where its acks left off. Used by the replica applier
 * and the gateway. One thread uses a jssub at a time; acks may come from any thread. */
#ifndef PGC_JETSTREAM_JSSUB_H
#define PGC_JETSTREAM_JSSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jssub jssub;
typedef struct jssub_msg jssub_msg;

typedef struct jssub_config {
    const char *nats_url;
    const char *stream;
    const char *subject; /* filter subject */
    const char *durable;
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
} jssub_config;

/* PGC_ERR_CONN when NATS is unreachable, PGC_ERR_NOT_FOUND when the stream does not
 * exist (yet), PGC_ERR_CONFIG when the durable exists with another filter subject. */
int jssub_create(const jssub_config *cfg, jssub **out, char *err, size_t err_len);
/* Destroys the subscription but keeps the durable consumer on the server. */
void jssub_destroy(jssub *s); /* NULL is a no-op */

/* Fetches up to `max` messages, waiting at most timeout_ms for the first. Returns how
 * many were put in `out` (0 on timeout) or a negative status. Each message must be acked,
 * nak'ed or left to redelivery, and destroyed. */
int jssub_fetch(jssub *s, jssub_msg **out, int max, int timeout_ms, char *err, size_t err_len);

/* Ends this reader's deliveries and hands `take` every message already delivered to it. A
 * pull request outlives the fetch that sent it when the fetch gives up first (the server
 * answers late under load): it goes on taking messages into the subscription, and those
 * would come back only after the ack wait once the subscription is destroyed. So the
 * subscription stops its interest (the server then skips such requests and delivers to
 * other readers), waits until the server has confirmed that (a flush, up to timeout_ms),
 * and passes each message that reached it to `take` (which owns it). Fetch no more after:
 * only jssub_destroy. Returns how many messages were taken, or a negative status (then
 * what was not taken comes back after the ack wait). */
int jssub_drain(jssub *s, void (*take)(void *arg, jssub_msg *m), void *arg, int timeout_ms,
                char *err, size_t err_len);

const uint8_t *jssub_msg_data(const jssub_msg *m);
size_t jssub_msg_len(const jssub_msg *m);
/* A header's value (borrowed), or NULL. */
const char *jssub_msg_header(jssub_msg *m, const char *key);
uint64_t jssub_msg_stream_seq(const jssub_msg *m);
/* The durable's count of deliveries (redeliveries too) when this one was made: a reader
 * that alone pulls from the durable sees it grow by one per message. */
uint64_t jssub_msg_consumer_seq(const jssub_msg *m);
uint64_t jssub_msg_delivered(const jssub_msg *m); /* 1 on first delivery */
int64_t jssub_msg_time_ns(const jssub_msg *m);    /* when the stream stored it, Unix ns */

/* Acknowledges; with `sync` waits for the server's confirmation (use it when the ack
 * must be durable before moving on, e.g. before confirming anything upstream). */
int jssub_ack(jssub_msg *m, bool sync, char *err, size_t err_len);
/* Asks for redelivery after delay_ms (libnats takes this delay in milliseconds, unlike the
 * ack wait, which is in nanoseconds). */
int jssub_nak(jssub_msg *m, int64_t delay_ms, char *err, size_t err_len);
void jssub_msg_destroy(jssub_msg *m); /* NULL is a no-op */

/* The value of header `key` of the last message on `subject` in the stream, copied into
 * out. 1 when found, 0 when the subject has no message or the message lacks the header,
 * or a negative status. (The gateway reads the log's end position, Pgc-Last, this way.) */
int jssub_last_header(jssub *s, const char *subject, const char *key, char *out, size_t out_len,
                      char *err, size_t err_len);

/* Messages of the filter subject not yet delivered to this durable consumer (what a
 * fetch could still return); 0 means every message of the log has been delivered. */
int jssub_num_pending(jssub *s, uint64_t *pending, char *err, size_t err_len);

/* The created time (Unix ns) of the subscription's stream, its identity (jsconn.h,
 * jsconn_stream_state). PGC_ERR_NOT_FOUND when the stream is gone, PGC_ERR_CONN when it
 * cannot be read. */
int jssub_stream_created(jssub *s, int64_t *created_ns, char *err, size_t err_len);

/* Where the durable consumer stands against what its stream still holds. */
typedef struct jssub_position {
    int64_t stream_created;             /* the stream's identity (jssub_stream_created) */
    uint64_t stream_first, stream_last; /* the stream's first and last sequences */
    uint64_t delivered;                 /* last stream sequence delivered to the durable */
    uint64_t ack_floor;                 /* stream sequence up to which everything is acked */
    bool acked_any;                     /* the ack floor is set (something was acked) */
} jssub_position;

int jssub_read_position(jssub *s, jssub_position *p, char *err, size_t err_len);

/* Asks JetStream to deliver again, at once and in stream order, what the durable delivered
 * and nobody acked (up to `max` sequences from its ack floor): the unacked messages of a
 * reader that is gone come back before anything newer, not after the ack wait behind it.
 * Only for a reader that knows no other live reader holds messages of the durable (those
 * would be delivered twice); with max_waiting >= 0, nothing is asked when more pull
 * requests than that wait at the server (another reader is pulling). Reading the consumer's
 * info first makes the server drop the pull requests of readers that are gone: nats-server
 * 2.9 loses a redelivery that finds only such requests waiting. Each message is nak'ed by
 * its stream sequence (the server ignores those no longer pending), the last one with a
 * reply, which the server sends once it processed every nak before it. *through: the last
 * sequence asked (0: none); *others_pulling (may be NULL): nothing was asked because more
 * than max_waiting pull requests wait. */
int jssub_redeliver_unacked(jssub *s, uint64_t max, int64_t max_waiting, uint64_t *through,
                            bool *others_pulling, char *err, size_t err_len);

/* Waits until the server has read everything sent on this reader's connection (its acks
 * and naks). */
int jssub_flush(jssub *s, char *err, size_t err_len);

/* Reads the consumer's info, for what that does at the server: it drops the pull requests
 * nobody listens for any more (of readers gone or drained). */
int jssub_sweep_requests(jssub *s, char *err, size_t err_len);

/* The stream sequences [*from, *to] the durable had not delivered, or delivered and never
 * acked, that the stream no longer holds (retention removed them); false when there are
 * none. A new durable starts at the stream's first message, and JetStream moves the ack
 * floor past delivered messages it removes, so a range found is messages lost to this
 * consumer (at least those). Pure. Only meaningful for a durable that sees every message of
 * its stream (not a filtered one on a stream of several subjects). */
bool jssub_position_gap(const jssub_position *p, uint64_t *from, uint64_t *to);

/* The stream's first and last sequences (to detect a reader fallen behind retention). */
int jssub_stream_bounds(jssub *s, uint64_t *first_seq, uint64_t *last_seq, char *err,
                        size_t err_len);

#endif
