/* Relation cache (see relcache.h): open addressing with linear probing on the OID; each
 * entry is one allocation holding the strings and columns, so replacing is one free. */
#include "codec/relcache.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

struct relcache {
    relcache_entry **slots;
    size_t cap, count;
    uint64_t generation;
};

static size_t slot_of(uint32_t oid, size_t cap)
{
    /* Fibonacci hashing: OIDs are often consecutive. */
    return (size_t)(((uint64_t)oid * 11400714819323198485ULL) >> 32) & (cap - 1);
}

int relcache_create(relcache **out)
{
    relcache *c = calloc(1, sizeof *c);
    if (!c)
        return PGC_ERR_NOMEM;
    c->cap = 64;
    c->slots = calloc(c->cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return PGC_ERR_NOMEM;
    }
    *out = c;
    return PGC_OK;
}

void relcache_destroy(relcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i]);
    free(c->slots);
    free(c);
}

static relcache_entry **find_slot(relcache_entry **slots, size_t cap, uint32_t oid)
{
    size_t i = slot_of(oid, cap);
    while (slots[i] && slots[i]->oid != oid)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int rehash(relcache *c)
{
    size_t cap = c->cap * 2;
    relcache_entry **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return PGC_ERR_NOMEM;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i])
            *find_slot(slots, cap, c->slots[i]->oid) = c->slots[i];
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return PGC_OK;
}

int relcache_put(relcache *c, const pgoutput_msg *m, const relcache_entry **out, char *err,
                 size_t err_len)
{
    if (m->kind != 'R')
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "relcache: not a Relation message");
    if ((c->count + 1) * 2 > c->cap && rehash(c) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "relcache: out of memory");
    size_t strings = strlen(m->u.relation.nspname) + strlen(m->u.relation.relname) + 2;
    for (uint16_t i = 0; i < m->u.relation.ncols; i++)
        strings += strlen(m->u.relation.cols[i].name) + 1;
    size_t cols_bytes = (size_t)m->u.relation.ncols * sizeof(pgoutput_column);
    relcache_entry *e = malloc(sizeof *e + cols_bytes + strings);
    if (!e)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "relcache: out of memory");
    e->oid = m->u.relation.oid;
    e->replident = m->u.relation.replident;
    e->ncols = m->u.relation.ncols;
    e->cols = (pgoutput_column *)(void *)(e + 1);
    char *p = (char *)e->cols + cols_bytes;
#define COPY_STR(dst, src)                                                                         \
    do {                                                                                           \
        size_t n_ = strlen(src) + 1;                                                               \
        memcpy(p, src, n_);                                                                        \
        (dst) = p;                                                                                 \
        p += n_;                                                                                   \
    } while (0)
    COPY_STR(e->nspname, m->u.relation.nspname);
    COPY_STR(e->relname, m->u.relation.relname);
    for (uint16_t i = 0; i < e->ncols; i++) {
        e->cols[i] = m->u.relation.cols[i];
        char *name;
        COPY_STR(name, m->u.relation.cols[i].name);
        e->cols[i].name = name;
    }
#undef COPY_STR
    e->generation = ++c->generation;
    relcache_entry **slot = find_slot(c->slots, c->cap, e->oid);
    if (*slot)
        free(*slot);
    else
        c->count++;
    *slot = e;
    if (out)
        *out = e;
    return PGC_OK;
}

const relcache_entry *relcache_lookup(const relcache *c, uint32_t oid)
{
    return *find_slot(c->slots, c->cap, oid);
}

size_t relcache_count(const relcache *c)
{
    return c->count;
}
