/* Conversions between gRPC byte buffers and plain bytes, shared by the server and the
 * client plumbing. */
#ifndef PGC_RPC_BYTES_H
#define PGC_RPC_BYTES_H

#include <grpc/byte_buffer.h>
#include <stddef.h>
#include <stdint.h>

/* A new byte buffer holding a copy of data (caller destroys it). */
grpc_byte_buffer *rpc_bytes_to_buffer(const uint8_t *data, size_t len);
/* Copies a byte buffer into one malloc'ed block (never NULL on success, even when empty).
 * PGC_ERR_NOMEM on allocation failure. */
int rpc_bytes_from_buffer(grpc_byte_buffer *buf, uint8_t **data, size_t *len);

#endif
