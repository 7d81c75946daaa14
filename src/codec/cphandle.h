/* The gateway's checkpoint handle (Checkpoint.data, docs/protocol.md "Checkpoints"): where a
 * change sent to a consumer sits in JetStream, so that its ack can be traced back to the
 * NATS message that carries it. Layout, 13 bytes: the stream sequence of the NATS message
 * (8 bytes, big endian), the change's index among the Messages of its batch (4 bytes, big
 * endian), and the origin (1 byte: 0 = the source's log stream, 1 = the URI's retry stream,
 * whose sequences are its own). Consumers treat it as opaque and echo it back. */
#ifndef PGC_CODEC_CPHANDLE_H
#define PGC_CODEC_CPHANDLE_H

#include <stddef.h>
#include <stdint.h>

#define CPHANDLE_LEN 13

typedef enum cphandle_origin {
    CPHANDLE_LOG = 0,
    CPHANDLE_RETRY = 1,
} cphandle_origin;

typedef struct cphandle {
    uint64_t stream_seq; /* never 0: JetStream sequences start at 1 */
    uint32_t index;
    cphandle_origin origin;
} cphandle;

void cphandle_encode(const cphandle *h, uint8_t out[CPHANDLE_LEN]);
/* PGC_ERR_MALFORMED (with context in err) unless `data` is exactly one well-formed handle. */
int cphandle_decode(const uint8_t *data, size_t len, cphandle *out, char *err, size_t err_len);

#endif
