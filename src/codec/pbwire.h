/* Protobuf wire-format primitives for the codecs that write and scan protocol messages as
 * bytes (capmsg, capbatch, dumprow): varints and tags, inline. Pure. */
#ifndef PGC_CODEC_PBWIRE_H
#define PGC_CODEC_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

#define PBWIRE_VARINT_MAX 10

static inline size_t pbwire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *pbwire_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Reads a varint at *p (below end), advancing *p. 0, or -1 when cut short or longer than
 * ten bytes. */
static inline int pbwire_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* One field of a message: its number, wire type, and its value (varint) or bytes
 * (length-delimited, borrowed). */
typedef struct pbwire_field {
    uint32_t number;
    int wire;
    uint64_t varint;
    const uint8_t *bytes;
    size_t len;
} pbwire_field;

/* Reads the field at *p (below end) and steps over it. 0, or -1 on bytes that are not
 * protobuf (bad key, wire type or length, cut short). */
static inline int pbwire_next_field(const uint8_t **p, const uint8_t *end, pbwire_field *f)
{
    uint64_t key, v;
    if (pbwire_get_varint(p, end, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->bytes = NULL;
    f->len = 0;
    f->varint = 0;
    switch (f->wire) {
    case 0:
        return pbwire_get_varint(p, end, &f->varint);
    case 1:
        if ((size_t)(end - *p) < 8)
            return -1;
        *p += 8;
        return 0;
    case 5:
        if ((size_t)(end - *p) < 4)
            return -1;
        *p += 4;
        return 0;
    case 2:
        if (pbwire_get_varint(p, end, &v) != 0 || v > (uint64_t)(end - *p))
            return -1;
        f->bytes = *p;
        f->len = (size_t)v;
        *p += v;
        return 0;
    default:
        return -1;
    }
}

#endif
