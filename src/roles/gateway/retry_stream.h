/* A URI's retry subject (docs/protocol.md "In the log"): a requeued change is republished, as
 * a one-Message batch with the usual Pgc-* headers, to pgcapture.<source>.retry.<durable>,
 * held by the stream PGCAPTURE_<source>_RETRY (subjects pgcapture.<source>.retry.>; a
 * stream of its own, so the agent's stream keeps exactly the subjects the agent gave it),
 * and read back by the URI's durable "<durable>_retry" after the retry delay. A change the
 * consumers requeued too often (the gateway's --max-requeues) goes instead to the URI's
 * dead-letter subject pgcapture.<source>.retry.<durable>.dead in the same stream, which
 * nothing reads back. */
#ifndef PGC_ROLES_GATEWAY_RETRY_STREAM_H
#define PGC_ROLES_GATEWAY_RETRY_STREAM_H

#include "codec/logpos.h"
#include "jetstream/jssub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct retry_stream retry_stream;

typedef struct retry_stream_config {
    const char *nats_url;
    const char *source; /* the log stream PGCAPTURE_<source> lends its limits */
    const char *durable;
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
    int64_t max_age_ms; /* retention of the retry stream; 0: the log stream's */
    int64_t max_bytes;  /* ... 0: the log stream's */
} retry_stream_config;

/* Connects, creates the retry stream when missing, gives it the configured retention limits
 * (each one not configured: the log stream's; replicas: the log's, when it creates it), and
 * binds (or creates) the retry durable. A Message larger than the server's max_payload is
 * published in parts (Pgc-Part), each with the same headers.
 * PGC_ERR_CONN when NATS is unreachable. */
int retry_stream_create(const retry_stream_config *cfg, retry_stream **out, char *err,
                        size_t err_len);
void retry_stream_destroy(retry_stream *r); /* NULL is a no-op */

/* Publishes one serialized Message at `pos` and waits for JetStream's ack (blocking). It
 * names the URI's requeued change before it (header Pgc-Prev: its stream sequence, 0 for
 * none), so a reader can tell one that expired unread, and how often consumers have
 * requeued it (Pgc-Requeues). */
int retry_stream_publish(retry_stream *r, const uint8_t *msg, size_t len, log_pos pos,
                         uint32_t requeues, char *err, size_t err_len);
/* Publishes one serialized Message to the dead-letter subject (blocking), with the times it
 * was requeued and the consumer's last reason (header Pgc-Reason, at most 256 bytes, line
 * breaks replaced). */
int retry_stream_dead_letter(retry_stream *r, const uint8_t *msg, size_t len, log_pos pos,
                             uint32_t requeues, const char *reason, char *err, size_t err_len);
/* The retry durable, for fetching. */
jssub *retry_stream_sub(retry_stream *r);

#endif
