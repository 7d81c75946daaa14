/* A plain JetStream connection for the small synchronous work around the log: reading a
 * stream's bounds and one message's header, creating a stream or a durable consumer,
 * deleting a consumer, and publishing one message while waiting for its ack. The agent's
 * batches go through jspub and the readers through jssub; this is for the rest (the
 * gateway's retry subject, the replica's consumer reset). One thread at a time. */
#ifndef PGC_JETSTREAM_JSCONN_H
#define PGC_JETSTREAM_JSCONN_H

#include <stddef.h>
#include <stdint.h>

typedef struct jsconn jsconn;

/* Connects to NATS (URLs comma-separated; reconnects forever once connected).
 * PGC_ERR_CONN when NATS is unreachable. */
int jsconn_open(const char *nats_url, jsconn **out, char *err, size_t err_len);
void jsconn_destroy(jsconn *c); /* NULL is a no-op */

/* The stream's first and last sequences. PGC_ERR_NOT_FOUND when it does not exist,
 * PGC_ERR_CONN on any other failure. */
int jsconn_stream_bounds(jsconn *c, const char *stream, uint64_t *first_seq, uint64_t *last_seq,
                         char *err, size_t err_len);
/* What identifies a stream and what it holds: its created time (Unix ns), which JetStream
 * sets once (a recreated stream gets a new one, a purge keeps it; every node of a cluster
 * reports the same), and its first and last sequences. */
typedef struct jsconn_stream_state {
    int64_t created_ns;
    uint64_t first_seq, last_seq;
} jsconn_stream_state;

/* PGC_ERR_NOT_FOUND when the stream does not exist, PGC_ERR_CONN on any other failure. */
int jsconn_stream_read_state(jsconn *c, const char *stream, jsconn_stream_state *out, char *err,
                             size_t err_len);
/* Retention limits and replicas of a stream. */
typedef struct jsconn_limits {
    int64_t max_age_ms; /* 0: none */
    int64_t max_bytes;  /* 0: none */
    int replicas;
} jsconn_limits;

/* The limits of an existing stream. PGC_ERR_NOT_FOUND when it does not exist. */
int jsconn_stream_limits(jsconn *c, const char *stream, jsconn_limits *out, char *err,
                         size_t err_len);
/* Creates the stream (file storage, limits retention, one subject, which may be a
 * wildcard) when it does not exist, with `limits` (NULL: none); another process creating
 * it meanwhile is fine. An existing stream gets the age and size limits (its replicas stay
 * as they are). */
int jsconn_ensure_stream(jsconn *c, const char *stream, const char *subject,
                         const jsconn_limits *limits, char *err, size_t err_len);
/* The stream sequence of the last message on `subject` (0 when it has none). */
int jsconn_subject_last_seq(jsconn *c, const char *stream, const char *subject, uint64_t *seq,
                            char *err, size_t err_len);

/* The value of header `key` of the message at stream sequence `seq`, copied into out:
 * 1 when found, 0 when there is no such message or header, or a negative status. */
int jsconn_msg_header(jsconn *c, const char *stream, uint64_t seq, const char *key, char *out,
                      size_t out_len, char *err, size_t err_len);

typedef struct jsconn_consumer {
    const char *durable;
    const char *subject; /* filter subject */
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
    uint64_t start_seq; /* deliver from this stream sequence; 0: from the first */
} jsconn_consumer;

/* Deletes a durable consumer; PGC_OK also when there is none. */
int jsconn_delete_consumer(jsconn *c, const char *stream, const char *durable, char *err,
                           size_t err_len);
/* Creates a durable pull consumer with explicit acks. */
int jsconn_add_consumer(jsconn *c, const char *stream, const jsconn_consumer *cfg, char *err,
                        size_t err_len);

typedef struct jsconn_header {
    const char *key, *value;
} jsconn_header;

/* Publishes one message with headers and waits for JetStream's ack (blocking).
 * PGC_ERR_CONN when it was not stored. */
int jsconn_publish(jsconn *c, const char *subject, const uint8_t *data, size_t len,
                   const jsconn_header *headers, size_t n_headers, char *err, size_t err_len);

/* Publishes `data` like jsconn_publish when it fits the server's max_payload (less room for
 * headers), else as parts with a Pgc-Part header "i/n" (docs/protocol.md "In the log"),
 * each with the same headers (at most 7), each waited for. */
int jsconn_publish_parts(jsconn *c, const char *subject, const uint8_t *data, size_t len,
                         const jsconn_header *headers, size_t n_headers, char *err, size_t err_len);
/* Deletes the message at stream sequence `seq`; PGC_ERR_NOT_FOUND when there is none. */
int jsconn_delete_msg(jsconn *c, const char *stream, uint64_t seq, char *err, size_t err_len);

#endif
