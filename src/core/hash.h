/* The one general-purpose string hash of the tree: 32-bit FNV-1a. Good enough for hash
 * tables keyed by names and for short stable suffixes; not for anything adversarial
 * (bucket counts are bounded, chains are walked). */
#ifndef PGC_CORE_HASH_H
#define PGC_CORE_HASH_H

#include <stdint.h>

static inline uint32_t hash_fnv1a_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

#endif
