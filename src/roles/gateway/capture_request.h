/* Decoding of the Capture stream's requests (docs/protocol.md "The Capture stream, step by
 * step", "Batch mode"): a serialized CaptureRequest becomes an init (URI, TableRegex,
 * BatchLimit) or an ack (of a checkpoint or of a batch, requeue reason), with every length
 * checked. Pure: no I/O, no logging. */
#ifndef PGC_ROLES_GATEWAY_CAPTURE_REQUEST_H
#define PGC_ROLES_GATEWAY_CAPTURE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPTURE_REQUEST_MAX_BYTES (1024 * 1024) /* larger requests are refused before parsing */
#define CAPTURE_REQUEST_MAX_URI 1024
#define CAPTURE_REQUEST_MAX_REGEX 4096
#define CAPTURE_REQUEST_MAX_DATA 64
#define CAPTURE_REQUEST_MAX_REASON 4096 /* longer reasons are cut, not refused */
#define CAPTURE_REQUEST_MAX_BATCH 8192  /* a larger BatchLimit is lowered to this */
/* A larger MaxMessageSize is lowered to this (gRPC's limits are ints); a smaller one is
 * refused (no change would fit). */
#define CAPTURE_REQUEST_MAX_MESSAGE_MAX 2147483647u
#define CAPTURE_REQUEST_MAX_MESSAGE_MIN 65536u

typedef enum capture_request_kind {
    CAPTURE_REQUEST_INIT = 1,
    CAPTURE_REQUEST_ACK = 2,
} capture_request_kind;

typedef struct capture_request {
    capture_request_kind kind;
    /* init */
    char uri[CAPTURE_REQUEST_MAX_URI + 1];
    bool has_table_regex;
    char table_regex[CAPTURE_REQUEST_MAX_REGEX + 1];
    bool truncate;        /* parameter Truncate: true (or "true"): send TRUNCATE changes */
    uint32_t batch_limit; /* 0: per-change mode */
    /* parameter MaxMessageSize: the largest Capture message the client takes (0: not
     * said; the gateway's --max-message-size then) */
    uint32_t max_message_bytes;
    /* ack: of a change (lsn, seq, data), or of batch `batch` (no checkpoint) */
    uint64_t batch;
    uint64_t lsn;
    uint32_t seq;
    uint8_t data[CAPTURE_REQUEST_MAX_DATA];
    size_t data_len;
    bool requeue;
    char requeue_reason[CAPTURE_REQUEST_MAX_REASON + 1];
} capture_request;

/* Decodes one request. PGC_ERR_MALFORMED for bytes that are not a CaptureRequest, or one
 * with neither init nor ack, or an ack with neither a checkpoint nor a batch;
 * PGC_ERR_TOO_LARGE for oversized input, URI, regex or checkpoint data; PGC_ERR_INVALID for
 * an empty URI, a TableRegex that is not a string, a Truncate that is neither a bool nor
 * "true"/"false", a BatchLimit that is not a whole number from 0 up, a MaxMessageSize that is not a
 * whole number (or a string of digits) of at least 64 KiB, or an ack with both a
 * checkpoint and a batch. Unknown parameters are ignored. */
int capture_request_decode(const uint8_t *data, size_t len, capture_request *out, char *err,
                           size_t err_len);

#endif
