/* Checkpoint handles of the gateway (see cphandle.h). */
#include "codec/cphandle.h"

#include "core/status.h"

void cphandle_encode(const cphandle *h, uint8_t out[CPHANDLE_LEN])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(h->stream_seq >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[8 + i] = (uint8_t)(h->index >> (24 - 8 * i));
    out[12] = (uint8_t)h->origin;
}

int cphandle_decode(const uint8_t *data, size_t len, cphandle *out, char *err, size_t err_len)
{
    if (!data || len != CPHANDLE_LEN)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "checkpoint handle: %zu bytes, expected %d", len, CPHANDLE_LEN);
    uint64_t seq = 0;
    uint32_t index = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | data[i];
    for (int i = 0; i < 4; i++)
        index = index << 8 | data[8 + i];
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
