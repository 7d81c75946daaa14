/* Checkpoint handles of the gateway (see cphandle.h). */
#include "codec/cphandle.h"

#include "codec/bigendian.h"
#include "core/status.h"

void cphandle_encode(const cphandle *h, uint8_t out[CPHANDLE_LEN])
{
    bigendian_put64(out, h->stream_seq);
    bigendian_put32(out + 8, h->index);
    out[12] = (uint8_t)h->origin;
}

int cphandle_decode(const uint8_t *data, size_t len, cphandle *out, char *err, size_t err_len)
{
    if (!data || len != CPHANDLE_LEN)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "checkpoint handle: %zu bytes, expected %d", len, CPHANDLE_LEN);
    uint64_t seq = bigendian_get64(data);
    uint32_t index = bigendian_get32(data + 8);
    if (seq == 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "checkpoint handle: stream sequence 0");
    if (data[12] != CPHANDLE_LOG && data[12] != CPHANDLE_RETRY)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "checkpoint handle: origin %u unknown",
                          data[12]);
    out->stream_seq = seq;
    out->index = index;
    out->origin = (cphandle_origin)data[12];
    return PGC_OK;
}
