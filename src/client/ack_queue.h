/* The consumer's ack sender (pgc_consumer_options.ack_window > 0): the run loop pushes
 * packed CaptureRequests into a ring and a thread of the queue's own sends them in order,
 * so a handler never waits for the transport (HTTP/2 flow control) until the ring is full.
 *
 * Threading: push from the run loop's thread only; the sender thread and the run loop
 * share only the ring, under its mutex. */
#ifndef PGC_CLIENT_ACK_QUEUE_H
#define PGC_CLIENT_ACK_QUEUE_H

#include "rpc/client.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ack_queue ack_queue;

/* A ring of `cap` acks sending on `st` (borrowed until ack_queue_stop), and its thread.
 * PGC_ERR_NOMEM. */
int ack_queue_start(size_t cap, rpc_stream *st, ack_queue **out, char *err, size_t err_len);
/* Queues a copy of one packed request. Waits while the ring is full, until a slot frees,
 * the sender fails (its status is returned: nothing is sent after a failure) or *stop is
 * set (PGC_OK and nothing queued: the run loop sees the stop). PGC_ERR_NOMEM. */
int ack_queue_push(ack_queue *q, const uint8_t *req, size_t len, const atomic_int *stop, char *err,
                   size_t err_len);
/* Ends the sender and frees the queue. With `flush` what is queued may go out for up to
 * flush_ms first; otherwise, or past that, the stream is cancelled so that a send stuck on
 * flow control returns. Returns whether everything queued was sent. */
bool ack_queue_stop(ack_queue *q, bool flush, int flush_ms);

#endif
