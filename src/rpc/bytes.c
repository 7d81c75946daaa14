/* gRPC byte buffers to and from plain bytes (see bytes.h). */
#include "rpc/bytes.h"

#include "core/status.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

grpc_byte_buffer *rpc_bytes_to_buffer(const uint8_t *data, size_t len)
{
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return buf;
}

int rpc_bytes_from_buffer(grpc_byte_buffer *buf, uint8_t **data, size_t *len)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, buf))
        return PGC_ERR_MALFORMED;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    size_t n = GRPC_SLICE_LENGTH(all);
    uint8_t *out = malloc(n ? n : 1);
    if (!out) {
        grpc_slice_unref(all);
        return PGC_ERR_NOMEM;
    }
    memcpy(out, GRPC_SLICE_START_PTR(all), n);
    grpc_slice_unref(all);
    *data = out;
    *len = n;
    return PGC_OK;
}
