/* Type OID rewriting in binary values (see oidrewrite.h). The layouts are those of
 * array_send and record_send in PostgreSQL's arrayfuncs.c and rowtypes.c. */
#include "codec/oidrewrite.h"

#include "codec/bigendian.h"
#include "core/status.h"

/* One cursor walks the whole value; a nested value narrows `end` to its own bytes, so
 * offsets in errors are from the start of the outermost value. */
typedef struct cursor {
    uint8_t *buf;
    size_t off, end;
    uint32_t oid; /* type of the innermost value being read, for errors */
    oidrewrite_lookup lookup;
    void *ctx;
    int status;
    char *err;
    size_t err_len;
} cursor;

bool oidrewrite_needed(const oidrewrite_type *t)
{
    return t && (t->kind == 'a' || t->kind == 'c');
}

static bool need(cursor *c, size_t n, const char *field)
{
    if (c->status != PGC_OK)
        return false;
    if (c->end - c->off < n) {
        c->status = errbuf_set(c->err, c->err_len, PGC_ERR_TRUNCATED,
                               "oidrewrite: truncated value of type %u at offset %zu: need %zu "
                               "bytes for %s, have %zu",
                               c->oid, c->off, n, field, c->end - c->off);
        return false;
    }
    return true;
}

static bool malformed(cursor *c, const char *what, uint64_t n)
{
    c->status = errbuf_set(c->err, c->err_len, PGC_ERR_MALFORMED,
                           "oidrewrite: malformed value of type %u at offset %zu: %s %llu", c->oid,
                           c->off, what, (unsigned long long)n);
    return false;
}

static uint32_t get_u32(cursor *c, const char *field)
{
    if (!need(c, 4, field))
        return 0;
    uint32_t v = bigendian_get32(c->buf + c->off);
    c->off += 4;
    return v;
}

static bool rewrite(cursor *c, uint32_t oid, int depth);

/* The next `n` bytes are a value of type `oid`: rewrites it and steps over it. */
static bool rewrite_nested(cursor *c, size_t n, uint32_t oid, int depth, const char *field)
{
    if (!need(c, n, field))
        return false;
    size_t start = c->off, end = c->end;
    uint32_t outer = c->oid;
    c->end = start + n;
    bool ok = rewrite(c, oid, depth + 1);
    c->off = start + n;
    c->end = end;
    c->oid = outer;
    return ok;
}

/* ndim, a has-nulls flag, the element type, ndim x (size, lower bound), then each element
 * as a length (-1: NULL) and its bytes. */
static bool rewrite_array(cursor *c, const oidrewrite_type *t, int depth)
{
    size_t start = c->off, len = c->end - c->off;
    uint32_t ndim = get_u32(c, "array dimension count");
    get_u32(c, "array flags");
    size_t elem_at = c->off;
    get_u32(c, "array element type");
    if (c->status != PGC_OK)
        return false;
    if (ndim > OIDREWRITE_MAX_DIMS)
        return malformed(c, "array dimension count", ndim);
    if (!need(c, (size_t)ndim * 8, "array dimensions"))
        return false;
    bigendian_put32(c->buf + elem_at, t->elem);
    uint64_t nelems = ndim ? 1 : 0;
    for (uint32_t i = 0; i < ndim; i++) {
        nelems *= get_u32(c, "array dimension size");
        get_u32(c, "array lower bound");
        /* Each element takes at least its length word: a larger count cannot fit. */
        if (nelems > len) {
            c->off = start;
            return malformed(c, "array element count", nelems);
        }
    }
    if (!oidrewrite_needed(c->lookup(c->ctx, t->elem)))
        return true;
    for (uint64_t i = 0; i < nelems; i++) {
        int32_t elen = (int32_t)get_u32(c, "array element length");
        if (c->status != PGC_OK)
            return false;
        if (elen >= 0 && !rewrite_nested(c, (size_t)elen, t->elem, depth, "array element"))
            return false;
    }
    return true;
}

/* A field count, then per field its type, a length (-1: NULL) and its bytes. */
static bool rewrite_record(cursor *c, const oidrewrite_type *t, int depth)
{
    uint32_t n = get_u32(c, "record field count");
    if (c->status != PGC_OK)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (!need(c, 8, "record field type and length"))
            return false;
        uint8_t *p = c->buf + c->off;
        uint32_t att = (int64_t)i < t->natts ? t->atts[i] : bigendian_get32(p);
        bigendian_put32(p, att);
        int32_t flen = (int32_t)bigendian_get32(p + 4);
        c->off += 8;
        if (flen >= 0 && !rewrite_nested(c, (size_t)flen, att, depth, "record field"))
            return false;
    }
    return true;
}

static bool rewrite(cursor *c, uint32_t oid, int depth)
{
    const oidrewrite_type *t = c->lookup(c->ctx, oid);
    if (!oidrewrite_needed(t))
        return true;
    c->oid = oid;
    if (depth > OIDREWRITE_MAX_DEPTH) {
        c->status = errbuf_set(c->err, c->err_len, PGC_ERR_UNSUPPORTED,
                               "oidrewrite: value of type %u at offset %zu nests deeper than %d "
                               "levels",
                               oid, c->off, OIDREWRITE_MAX_DEPTH);
        return false;
    }
    return t->kind == 'a' ? rewrite_array(c, t, depth) : rewrite_record(c, t, depth);
}

int oidrewrite_value(uint8_t *v, size_t len, uint32_t oid, oidrewrite_lookup lookup, void *ctx,
                     char *err, size_t err_len)
{
    cursor c = {v, 0, len, oid, lookup, ctx, PGC_OK, err, err_len};
    rewrite(&c, oid, 0);
    return c.status;
}
