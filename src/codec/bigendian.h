/* Big-endian (network byte order) integers in byte buffers: what PostgreSQL's wire and
 * binary send formats use, and what our own binary records (checkpoint handles, queue
 * items, dump ids) use. The callers check lengths; these only move bytes. */
#ifndef PGC_CODEC_BIGENDIAN_H
#define PGC_CODEC_BIGENDIAN_H

#include <stdint.h>

static inline uint16_t bigendian_get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t bigendian_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t bigendian_get64(const uint8_t *p)
{
    return (uint64_t)bigendian_get32(p) << 32 | bigendian_get32(p + 4);
}

static inline void bigendian_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void bigendian_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void bigendian_put64(uint8_t *p, uint64_t v)
{
    bigendian_put32(p, (uint32_t)(v >> 32));
    bigendian_put32(p + 4, (uint32_t)v);
}

#endif
