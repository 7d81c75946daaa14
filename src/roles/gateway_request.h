/* Decoding of the Capture stream's requests (protocol.md "The Capture stream, step by
 * step"): a serialized CaptureRequest becomes an init (URI, TableRegex) or an ack
 * (checkpoint, requeue reason), with every length checked. Pure: no I/O, no logging. */
#ifndef PGC_ROLES_GATEWAY_REQUEST_H
#define PGC_ROLES_GATEWAY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GWREQ_MAX_BYTES (1024 * 1024) /* larger requests are refused before parsing */
#define GWREQ_MAX_URI 1024
#define GWREQ_MAX_REGEX 4096
#define GWREQ_MAX_DATA 64
#define GWREQ_MAX_REASON 4096 /* longer reasons are cut, not refused */

typedef enum gwreq_kind {
    GWREQ_INIT = 1,
    GWREQ_ACK = 2,
} gwreq_kind;

typedef struct gwreq {
    gwreq_kind kind;
    /* init */
    char uri[GWREQ_MAX_URI + 1];
    bool has_table_regex;
    char table_regex[GWREQ_MAX_REGEX + 1];
    /* ack */
    uint64_t lsn;
    uint32_t seq;
    uint8_t data[GWREQ_MAX_DATA];
    size_t data_len;
    bool requeue;
    char requeue_reason[GWREQ_MAX_REASON + 1];
} gwreq;

/* Decodes one request. PGC_ERR_MALFORMED for bytes that are not a CaptureRequest, or one
 * with neither init nor ack, or an ack without a checkpoint; PGC_ERR_TOO_LARGE for
 * oversized input, URI, regex or checkpoint data; PGC_ERR_INVALID for an empty URI or a
 * TableRegex that is not a string. Unknown parameters are ignored. */
int gwreq_decode(const uint8_t *data, size_t len, gwreq *out, char *err, size_t err_len);

#endif
