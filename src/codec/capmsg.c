/* Raw protobuf scanning and writing for the gateway (see capmsg.h). */
#include "codec/capmsg.h"

#include "core/status.h"

#include <string.h>

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return PGC_ERR_MALFORMED;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return PGC_OK;
        }
    }
    return PGC_ERR_MALFORMED;
}

/* Steps over one field; for length-delimited fields returns its bytes. */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wire,
                      const uint8_t **ld, size_t *ld_len)
{
    uint64_t key, v;
    if (get_varint(p, end, &key) != PGC_OK || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return PGC_ERR_MALFORMED;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    switch (*wire) {
    case 0:
        return get_varint(p, end, &v);
    case 1:
        if ((size_t)(end - *p) < 8)
            return PGC_ERR_MALFORMED;
        *p += 8;
        return PGC_OK;
    case 5:
        if ((size_t)(end - *p) < 4)
            return PGC_ERR_MALFORMED;
        *p += 4;
        return PGC_OK;
    case 2:
        if (get_varint(p, end, &v) != PGC_OK || v > (uint64_t)(end - *p))
            return PGC_ERR_MALFORMED;
        *ld = *p;
        *ld_len = (size_t)v;
        *p += v;
        return PGC_OK;
    default:
        return PGC_ERR_MALFORMED;
    }
}

int capmsg_peek(const uint8_t *msg, size_t len, capmsg_kind *kind, const uint8_t **change,
                size_t *change_len, char *err, size_t err_len)
{
    const uint8_t *p = msg, *end = msg + len;
    *kind = CAPMSG_OTHER;
    *change = NULL;
    *change_len = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *ld = NULL;
        size_t ld_len = 0;
        if (next_field(&p, end, &field, &wire, &ld, &ld_len) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "log message: bad protobuf at byte %zu of %zu", (size_t)(p - msg),
                              len);
        if (field >= 1 && field <= 4 && wire != 2)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "log message: field %u has wire type %d", field, wire);
        if (field == 3 || field == 1) {
            *kind = field == 3 ? CAPMSG_CHANGE : CAPMSG_BEGIN;
            *change = ld;
            *change_len = ld_len;
        } else if (field == 2 || field == 4) {
            *kind = CAPMSG_OTHER;
            *change = NULL;
            *change_len = 0;
        }
    }
    return PGC_OK;
}

int capmsg_begin_lsn(const uint8_t *begin, size_t len, uint64_t *lsn, char *err, size_t err_len)
{
    const uint8_t *p = begin, *end = begin + len;
    *lsn = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *ld = NULL;
        size_t ld_len = 0;
        const uint8_t *start = p;
        if (next_field(&p, end, &field, &wire, &ld, &ld_len) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "begin: bad protobuf");
        if (field == 1 && wire == 0) {
            uint64_t key;
            get_varint(&start, end, &key);
            get_varint(&start, end, lsn);
        }
    }
    return PGC_OK;
}

int capmsg_change_table(const uint8_t *change, size_t len, const uint8_t **table, size_t *table_len,
                        char *err, size_t err_len)
{
    const uint8_t *p = change, *end = change + len;
    *table = change;
    *table_len = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *ld = NULL;
        size_t ld_len = 0;
        if (next_field(&p, end, &field, &wire, &ld, &ld_len) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad protobuf at byte %zu of %zu", (size_t)(p - change), len);
        if (field == 3) {
            if (wire != 2)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change: table has wire type %d",
                                  wire);
            *table = ld;
            *table_len = ld_len;
        }
    }
    return PGC_OK;
}

int capmsg_change_op(const uint8_t *change, size_t len, int *op, char *err, size_t err_len)
{
    const uint8_t *p = change, *end = change + len;
    *op = 0;
    while (p < end) {
        const uint8_t *at = p;
        uint64_t key, v;
        if (get_varint(&p, end, &key) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change: bad protobuf at byte %zu",
                              (size_t)(at - change));
        if (key == (1 << 3 | 0)) { /* field 1, varint: op */
            if (get_varint(&p, end, &v) != PGC_OK)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change: bad op");
            *op = (int)(int32_t)v;
            continue;
        }
        p = at;
        uint32_t field;
        int wire;
        const uint8_t *ld = NULL;
        size_t ld_len = 0;
        if (next_field(&p, end, &field, &wire, &ld, &ld_len) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad protobuf at byte %zu of %zu", (size_t)(at - change),
                              len);
    }
    return PGC_OK;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static size_t checkpoint_size(uint64_t lsn, uint32_t seq, size_t data_len)
{
    size_t n = 0;
    if (lsn)
        n += 1 + varint_size(lsn);
    if (seq)
        n += 1 + varint_size(seq);
    if (data_len)
        n += 1 + varint_size(data_len) + data_len;
    return n;
}

size_t capmsg_build_size(size_t change_len, size_t data_len)
{
    /* Worst case of every varint: 10 bytes. */
    return 1 + 10 + (1 + 10) * 2 + 1 + 10 + data_len + 1 + 10 + change_len;
}

size_t capmsg_build(uint8_t *out, uint64_t lsn, uint32_t seq, const uint8_t *data, size_t data_len,
                    const uint8_t *change, size_t change_len)
{
    uint8_t *p = out;
    *p++ = (1 << 3) | 2; /* checkpoint, always present so data-less acks still echo it */
    p = put_varint(p, checkpoint_size(lsn, seq, data_len));
    if (lsn) {
        *p++ = (1 << 3) | 0;
        p = put_varint(p, lsn);
    }
    if (seq) {
        *p++ = (2 << 3) | 0;
        p = put_varint(p, seq);
    }
    if (data_len) {
        *p++ = (3 << 3) | 2;
        p = put_varint(p, data_len);
        memcpy(p, data, data_len);
        p += data_len;
    }
    *p++ = (2 << 3) | 2;
    p = put_varint(p, change_len);
    if (change_len)
        memcpy(p, change, change_len);
    p += change_len;
    return (size_t)(p - out);
}
