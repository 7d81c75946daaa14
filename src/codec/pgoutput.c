/* pgoutput decoder (see pgoutput.h). A cursor walks the buffer with a bounds check on
 * every read; the first failed read records where and what was missing. */
#include "codec/pgoutput.h"

#include "codec/bigendian.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pgoutput_decoder {
    int proto_version;
    bool in_stream;
    /* Scratch reused across calls: two tuples' values, columns, relids. */
    pgoutput_value *values;
    size_t values_cap;
    pgoutput_column *cols;
    size_t cols_cap;
    uint32_t *relids;
    size_t relids_cap;
};

typedef struct cursor {
    const uint8_t *buf;
    size_t len, off;
    int status;
    const char *what; /* message kind name, for errors */
    char *err;
    size_t err_len;
} cursor;

static bool fail(cursor *c, int status, const char *fmt, const char *detail, size_t need)
{
    if (c->status == PGC_OK) {
        char d[160];
        snprintf(d, sizeof d, fmt, detail, need, c->len - c->off);
        c->status =
            errbuf_set(c->err, c->err_len, status, "pgoutput: %s %s at offset %zu: %s",
                       status == PGC_ERR_TRUNCATED ? "truncated" : "malformed", c->what, c->off, d);
    }
    return false;
}

static bool need(cursor *c, size_t n, const char *field)
{
    if (c->status != PGC_OK)
        return false;
    if (c->len - c->off < n)
        return fail(c, PGC_ERR_TRUNCATED, "need %2$zu bytes for %1$s, have %3$zu", field, n);
    return true;
}

static uint8_t get_u8(cursor *c, const char *field)
{
    if (!need(c, 1, field))
        return 0;
    return c->buf[c->off++];
}

static uint16_t get_u16(cursor *c, const char *field)
{
    if (!need(c, 2, field))
        return 0;
    const uint8_t *p = c->buf + c->off;
    c->off += 2;
    return bigendian_get16(p);
}

static uint32_t get_u32(cursor *c, const char *field)
{
    if (!need(c, 4, field))
        return 0;
    const uint8_t *p = c->buf + c->off;
    c->off += 4;
    return bigendian_get32(p);
}

static uint64_t get_u64(cursor *c, const char *field)
{
    uint64_t hi = get_u32(c, field);
    uint64_t lo = get_u32(c, field);
    return hi << 32 | lo;
}

/* A NUL-terminated string inside the buffer (borrowed). */
static const char *get_cstring(cursor *c, const char *field)
{
    if (c->status != PGC_OK)
        return "";
    const uint8_t *start = c->buf + c->off;
    const uint8_t *nul = memchr(start, '\0', c->len - c->off);
    if (!nul) {
        fail(c, PGC_ERR_TRUNCATED, "%s has no terminating NUL (%zu, %zu bytes left)", field, 0);
        return "";
    }
    c->off += (size_t)(nul - start) + 1;
    return (const char *)start;
}

static int grow(void **arr, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return PGC_OK;
    size_t n = *cap ? *cap : 64;
    while (n < want)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p)
        return PGC_ERR_NOMEM;
    *arr = p;
    *cap = n;
    return PGC_OK;
}

/* Reads a tuple into values[first...]. */
static bool get_tuple(cursor *c, pgoutput_decoder *d, size_t first, pgoutput_tuple *t)
{
    uint16_t ncols = get_u16(c, "column count");
    if (c->status != PGC_OK)
        return false;
    if (ncols > PGOUTPUT_MAX_COLUMNS) {
        c->status = errbuf_set(c->err, c->err_len, PGC_ERR_TOO_LARGE,
                               "pgoutput: %s at offset %zu has %u columns, more than %d", c->what,
                               c->off - 2, ncols, PGOUTPUT_MAX_COLUMNS);
        return false;
    }
    if (grow((void **)&d->values, &d->values_cap, first + ncols, sizeof *d->values) != PGC_OK) {
        c->status = errbuf_set(c->err, c->err_len, PGC_ERR_NOMEM, "pgoutput: out of memory");
        return false;
    }
    pgoutput_value *v = d->values + first;
    for (uint16_t i = 0; i < ncols; i++) {
        uint8_t kind = get_u8(c, "column kind");
        if (c->status != PGC_OK)
            return false;
        v[i].kind = (char)kind;
        v[i].len = 0;
        v[i].data = NULL;
        switch (kind) {
        case 'n':
        case 'u':
            break;
        case 't':
        case 'b': {
            uint32_t len = get_u32(c, "value length");
            if (c->status != PGC_OK)
                return false;
            if (len > 0x7fffffffU) {
                c->status = errbuf_set(c->err, c->err_len, PGC_ERR_MALFORMED,
                                       "pgoutput: malformed %s at offset %zu: negative value "
                                       "length",
                                       c->what, c->off - 4);
                return false;
            }
            if (!need(c, len, "value"))
                return false;
            v[i].len = len;
            v[i].data = c->buf + c->off;
            c->off += len;
            break;
        }
        default:
            c->status = errbuf_set(c->err, c->err_len, PGC_ERR_MALFORMED,
                                   "pgoutput: malformed %s at offset %zu: column kind 0x%02x",
                                   c->what, c->off - 1, kind);
            return false;
        }
    }
    t->ncols = ncols;
    t->values = v;
    return true;
}

static const char *kind_name(char k)
{
    switch (k) {
    case 'B':
        return "Begin";
    case 'C':
        return "Commit";
    case 'O':
        return "Origin";
    case 'R':
        return "Relation";
    case 'Y':
        return "Type";
    case 'I':
        return "Insert";
    case 'U':
        return "Update";
    case 'D':
        return "Delete";
    case 'T':
        return "Truncate";
    case 'M':
        return "Message";
    case 'S':
        return "Stream Start";
    case 'E':
        return "Stream Stop";
    case 'c':
        return "Stream Commit";
    case 'A':
        return "Stream Abort";
    }
    return "message";
}

/* Streamed blocks prefix most messages with the transaction id. */
static void maybe_xid(cursor *c, pgoutput_decoder *d, pgoutput_msg *m)
{
    m->xid = d->in_stream ? get_u32(c, "xid") : 0;
}

int pgoutput_decode(pgoutput_decoder *d, const uint8_t *buf, size_t len, pgoutput_msg *out,
                    char *err, size_t err_len)
{
    if (len == 0)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "pgoutput: empty message");
    cursor c = {buf, len, 1, PGC_OK, kind_name((char)buf[0]), err, err_len};
    pgoutput_msg *m = out;
    memset(m, 0, sizeof *m);
    m->kind = (char)buf[0];
    switch (m->kind) {
    case 'B':
        m->u.begin.final_lsn = get_u64(&c, "final LSN");
        m->u.begin.commit_time = (int64_t)get_u64(&c, "commit time");
        m->u.begin.xid = get_u32(&c, "xid");
        break;
    case 'C':
        m->u.commit.flags = get_u8(&c, "flags");
        m->u.commit.commit_lsn = get_u64(&c, "commit LSN");
        m->u.commit.end_lsn = get_u64(&c, "end LSN");
        m->u.commit.commit_time = (int64_t)get_u64(&c, "commit time");
        break;
    case 'O':
        m->u.origin.lsn = get_u64(&c, "origin LSN");
        m->u.origin.name = get_cstring(&c, "origin name");
        break;
    case 'R': {
        maybe_xid(&c, d, m);
        m->u.relation.oid = get_u32(&c, "relation OID");
        m->u.relation.nspname = get_cstring(&c, "namespace");
        m->u.relation.relname = get_cstring(&c, "relation name");
        m->u.relation.replident = (char)get_u8(&c, "replica identity");
        uint16_t ncols = get_u16(&c, "column count");
        if (c.status != PGC_OK)
            break;
        if (ncols > PGOUTPUT_MAX_COLUMNS)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                              "pgoutput: Relation %u has %u columns, more than %d",
                              m->u.relation.oid, ncols, PGOUTPUT_MAX_COLUMNS);
        if (grow((void **)&d->cols, &d->cols_cap, ncols, sizeof *d->cols) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "pgoutput: out of memory");
        for (uint16_t i = 0; i < ncols && c.status == PGC_OK; i++) {
            d->cols[i].flags = get_u8(&c, "column flags");
            d->cols[i].name = get_cstring(&c, "column name");
            d->cols[i].type_oid = get_u32(&c, "column type");
            d->cols[i].type_mod = (int32_t)get_u32(&c, "column type modifier");
        }
        m->u.relation.ncols = ncols;
        m->u.relation.cols = d->cols;
        break;
    }
    case 'Y':
        maybe_xid(&c, d, m);
        m->u.type.oid = get_u32(&c, "type OID");
        m->u.type.nspname = get_cstring(&c, "namespace");
        m->u.type.typname = get_cstring(&c, "type name");
        break;
    case 'I': {
        maybe_xid(&c, d, m);
        m->u.insert.relid = get_u32(&c, "relation OID");
        uint8_t tag = get_u8(&c, "tuple tag");
        if (c.status == PGC_OK && tag != 'N')
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "pgoutput: malformed Insert at offset %zu: tuple tag 0x%02x, "
                              "expected 'N'",
                              c.off - 1, tag);
        get_tuple(&c, d, 0, &m->u.insert.new_tuple);
        break;
    }
    case 'U': {
        maybe_xid(&c, d, m);
        m->u.update.relid = get_u32(&c, "relation OID");
        uint8_t tag = get_u8(&c, "tuple tag");
        size_t first = 0;
        if (c.status == PGC_OK && (tag == 'K' || tag == 'O')) {
            m->u.update.old_kind = (char)tag;
            if (!get_tuple(&c, d, 0, &m->u.update.old_tuple))
                break;
            first = m->u.update.old_tuple.ncols;
            tag = get_u8(&c, "tuple tag");
        }
        if (c.status == PGC_OK && tag != 'N')
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "pgoutput: malformed Update at offset %zu: tuple tag 0x%02x",
                              c.off - 1, tag);
        if (get_tuple(&c, d, first, &m->u.update.new_tuple) && m->u.update.old_kind)
            /* The scratch array may have moved while the new tuple grew it. */
            m->u.update.old_tuple.values = d->values;
        break;
    }
    case 'D': {
        maybe_xid(&c, d, m);
        m->u.del.relid = get_u32(&c, "relation OID");
        uint8_t tag = get_u8(&c, "tuple tag");
        if (c.status == PGC_OK && tag != 'K' && tag != 'O')
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "pgoutput: malformed Delete at offset %zu: tuple tag 0x%02x",
                              c.off - 1, tag);
        m->u.del.old_kind = (char)tag;
        get_tuple(&c, d, 0, &m->u.del.old_tuple);
        break;
    }
    case 'T': {
        maybe_xid(&c, d, m);
        uint32_t n = get_u32(&c, "relation count");
        m->u.truncate.options = get_u8(&c, "options");
        if (c.status != PGC_OK)
            break;
        /* Bound by the bytes present before allocating anything. */
        if (n > (len - c.off) / 4) {
            need(&c, (size_t)n * 4, "relation OIDs");
            break;
        }
        if (grow((void **)&d->relids, &d->relids_cap, n ? n : 1, sizeof *d->relids) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "pgoutput: out of memory");
        for (uint32_t i = 0; i < n; i++)
            d->relids[i] = get_u32(&c, "relation OID");
        m->u.truncate.nrels = n;
        m->u.truncate.relids = d->relids;
        break;
    }
    case 'M': {
        maybe_xid(&c, d, m);
        m->u.message.transactional = get_u8(&c, "flags") & 1;
        m->u.message.lsn = get_u64(&c, "message LSN");
        m->u.message.prefix = get_cstring(&c, "prefix");
        uint32_t n = get_u32(&c, "content length");
        if (c.status == PGC_OK && need(&c, n, "content")) {
            m->u.message.len = n;
            m->u.message.content = buf + c.off;
            c.off += n;
        }
        break;
    }
    case 'S':
    case 'E':
    case 'c':
    case 'A':
        if (d->proto_version < 2)
            return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                              "pgoutput: %s (0x%02x) needs protocol version 2, the stream uses 1",
                              kind_name(m->kind), (unsigned)buf[0]);
        if (m->kind == 'S') {
            m->u.stream_start.xid = get_u32(&c, "xid");
            m->u.stream_start.first_segment = get_u8(&c, "first segment") == 1;
            if (c.status == PGC_OK)
                d->in_stream = true;
        } else if (m->kind == 'E') {
            d->in_stream = false;
        } else if (m->kind == 'c') {
            m->u.stream_commit.xid = get_u32(&c, "xid");
            m->u.stream_commit.flags = get_u8(&c, "flags");
            m->u.stream_commit.commit_lsn = get_u64(&c, "commit LSN");
            m->u.stream_commit.end_lsn = get_u64(&c, "end LSN");
            m->u.stream_commit.commit_time = (int64_t)get_u64(&c, "commit time");
        } else {
            m->u.stream_abort.xid = get_u32(&c, "xid");
            m->u.stream_abort.subxid = get_u32(&c, "subxid");
        }
        break;
    default:
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                          "pgoutput: unknown message kind 0x%02x at offset 0", (unsigned)buf[0]);
    }
    if (c.status != PGC_OK)
        return c.status;
    if (c.off != len)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "pgoutput: malformed %s: %zu trailing bytes after offset %zu", c.what,
                          len - c.off, c.off);
    return PGC_OK;
}

int pgoutput_decoder_create(int proto_version, pgoutput_decoder **out)
{
    if (proto_version != 1 && proto_version != 2)
        return PGC_ERR_INVALID;
    pgoutput_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return PGC_ERR_NOMEM;
    d->proto_version = proto_version;
    *out = d;
    return PGC_OK;
}

void pgoutput_decoder_destroy(pgoutput_decoder *d)
{
    if (!d)
        return;
    free(d->values);
    free(d->cols);
    free(d->relids);
    free(d);
}
