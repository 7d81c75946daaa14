/* Allocation for the daemons' roles: a daemon that cannot allocate cannot keep its
 * guarantees, so it aborts and restarts from its durable position (as Redis does).
 * Never for libpgcapture, which returns PGC_ERR_NOMEM instead. */
#ifndef PGC_CORE_XALLOC_H
#define PGC_CORE_XALLOC_H

#include <stdlib.h>
#include <string.h>

static inline void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static inline void *xmalloc(size_t n)
{
    return xrealloc(NULL, n);
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static inline char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

#endif
