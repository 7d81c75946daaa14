/* Binary COPY stream decoder (see copybin.h). Each unit (the header, a tuple, the trailer)
 * is measured and decoded in one bounds-checked pass; a unit that does not fit in what
 * has been fed is gathered into the decoder's buffer a piece at a time. */
#include "codec/copybin.h"

#include "codec/bigendian.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0};

/* Flag bit 16 says OIDs follow the field count (servers before PostgreSQL 12); bits 17-31
 * are critical flags a reader must refuse when it does not know them. */
#define FLAG_OIDS (1u << 16)
#define FLAGS_CRITICAL 0xFFFF0000u

typedef enum phase { PHASE_HEADER, PHASE_TUPLES, PHASE_DONE } phase;

struct copybin {
    size_t max_tuple_bytes;
    phase phase;
    int status; /* the first error, sticky */
    char status_msg[160];
    uint64_t tuples;

    const uint8_t *chunk; /* borrowed from copybin_feed */
    size_t chunk_len, chunk_off;

    uint8_t *buf; /* a unit cut across chunks, gathered */
    size_t buf_len, buf_cap;
    bool buf_release; /* the unit in buf was handed out: drop it on the next call */

    copybin_field *fields;
    size_t fields_cap;
};

int copybin_create(size_t max_tuple_bytes, copybin **out)
{
    copybin *d = calloc(1, sizeof *d);
    if (!d)
        return PGC_ERR_NOMEM;
    d->max_tuple_bytes = max_tuple_bytes < 64 ? 64 : max_tuple_bytes;
    *out = d;
    return PGC_OK;
}

void copybin_destroy(copybin *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d->fields);
    free(d);
}

void copybin_reset(copybin *d)
{
    d->phase = PHASE_HEADER;
    d->status = PGC_OK;
    d->status_msg[0] = '\0';
    d->tuples = 0;
    d->chunk = NULL;
    d->chunk_len = d->chunk_off = 0;
    d->buf_len = 0;
    d->buf_release = false;
}

uint64_t copybin_tuples(const copybin *d)
{
    return d->tuples;
}

int copybin_feed(copybin *d, const uint8_t *data, size_t len)
{
    if (d->chunk_off < d->chunk_len)
        return PGC_ERR_STATE;
    d->chunk = data;
    d->chunk_len = len;
    d->chunk_off = 0;
    return PGC_OK;
}

static int fail(copybin *d, int status, const char *msg, char *err, size_t err_len)
{
    if (d->status == PGC_OK) {
        d->status = status;
        snprintf(d->status_msg, sizeof d->status_msg, "copy binary: %s (tuple %llu)", msg,
                 (unsigned long long)d->tuples + 1);
    }
    return errbuf_set(err, err_len, d->status, "%s", d->status_msg);
}

/* Result of measuring a unit at p[0..n): its size when whole, or how many bytes it needs
 * at least to go on (more than n). */
typedef struct unit {
    size_t size; /* 0 while incomplete */
    size_t need;
    bool trailer;
    uint16_t nfields;
} unit;

static int measure_header(copybin *d, const uint8_t *p, size_t n, unit *u, char *err,
                          size_t err_len)
{
    memset(u, 0, sizeof *u);
    size_t cmp = n < sizeof signature ? n : sizeof signature;
    if (memcmp(p, signature, cmp) != 0)
        return fail(d, PGC_ERR_MALFORMED, "bad signature", err, err_len);
    if (n < 19) {
        u->need = 19;
        return PGC_OK;
    }
    uint32_t flags = bigendian_get32(p + 11), ext = bigendian_get32(p + 15);
    if (flags & FLAG_OIDS)
        return fail(d, PGC_ERR_MALFORMED, "rows with OIDs are not supported", err, err_len);
    if (flags & FLAGS_CRITICAL)
        return fail(d, PGC_ERR_MALFORMED, "unknown critical flag in the header", err, err_len);
    if (ext > d->max_tuple_bytes)
        return fail(d, PGC_ERR_TOO_LARGE, "header extension too large", err, err_len);
    if (n < 19 + (size_t)ext)
        u->need = 19 + (size_t)ext;
    else
        u->size = 19 + (size_t)ext;
    return PGC_OK;
}

static int grow_fields(copybin *d, size_t n)
{
    if (n <= d->fields_cap)
        return PGC_OK;
    copybin_field *f = realloc(d->fields, n * sizeof *f);
    if (!f)
        return PGC_ERR_NOMEM;
    d->fields = f;
    d->fields_cap = n;
    return PGC_OK;
}

/* Measures a tuple or the trailer and fills d->fields as it goes (pointing into p). */
static int measure_tuple(copybin *d, const uint8_t *p, size_t n, unit *u, char *err, size_t err_len)
{
    memset(u, 0, sizeof *u);
    if (n < 2) {
        u->need = 2;
        return PGC_OK;
    }
    int16_t count = (int16_t)bigendian_get16(p);
    if (count == -1) {
        u->trailer = true;
        u->size = 2;
        return PGC_OK;
    }
    if (count < 0 || count > COPYBIN_MAX_FIELDS)
        return fail(d, PGC_ERR_MALFORMED, "bad field count", err, err_len);
    if (grow_fields(d, (size_t)count) != PGC_OK)
        return fail(d, PGC_ERR_NOMEM, "out of memory", err, err_len);
    size_t off = 2;
    for (int i = 0; i < count; i++) {
        if (n - off < 4) {
            u->need = off + 4;
            return PGC_OK;
        }
        int32_t len = (int32_t)bigendian_get32(p + off);
        off += 4;
        if (off > d->max_tuple_bytes)
            return fail(d, PGC_ERR_TOO_LARGE, "tuple larger than the limit", err, err_len);
        if (len < -1)
            return fail(d, PGC_ERR_MALFORMED, "bad field length", err, err_len);
        if (len == -1) {
            d->fields[i] = (copybin_field){NULL, -1};
            continue;
        }
        if ((size_t)len > d->max_tuple_bytes - off)
            return fail(d, PGC_ERR_TOO_LARGE, "tuple larger than the limit", err, err_len);
        if (n - off < (size_t)len) {
            u->need = off + (size_t)len;
            return PGC_OK;
        }
        d->fields[i] = (copybin_field){p + off, len};
        off += (size_t)len;
    }
    u->size = off;
    u->nfields = (uint16_t)count;
    return PGC_OK;
}

static int measure(copybin *d, const uint8_t *p, size_t n, unit *u, char *err, size_t err_len)
{
    if (d->phase == PHASE_HEADER)
        return measure_header(d, p, n, u, err, err_len);
    return measure_tuple(d, p, n, u, err, err_len);
}

/* Takes a whole unit: the header moves on to the tuples, a tuple goes out (1), the trailer
 * ends the stream. -1: nothing to hand out, go on. */
static int take(copybin *d, const unit *u, copybin_tuple *out)
{
    if (d->phase == PHASE_HEADER) {
        d->phase = PHASE_TUPLES;
        return -1;
    }
    if (u->trailer) {
        d->phase = PHASE_DONE; /* the caller checks that nothing follows */
        return -1;
    }
    d->tuples++;
    out->nfields = u->nfields;
    out->fields = d->fields;
    return 1;
}

static int gather(copybin *d, size_t upto)
{
    if (upto > d->buf_cap) {
        size_t cap = d->buf_cap ? d->buf_cap : 256;
        while (cap < upto)
            cap *= 2;
        uint8_t *b = realloc(d->buf, cap);
        if (!b)
            return PGC_ERR_NOMEM;
        d->buf = b;
        d->buf_cap = cap;
    }
    size_t avail = d->chunk_len - d->chunk_off, want = upto - d->buf_len;
    size_t k = avail < want ? avail : want;
    memcpy(d->buf + d->buf_len, d->chunk + d->chunk_off, k);
    d->buf_len += k;
    d->chunk_off += k;
    return PGC_OK;
}

int copybin_next(copybin *d, copybin_tuple *out, char *err, size_t err_len)
{
    if (d->status != PGC_OK)
        return errbuf_set(err, err_len, d->status, "%s", d->status_msg);
    if (d->buf_release) {
        d->buf_release = false;
        d->buf_len = 0;
    }
    for (;;) {
        if (d->phase == PHASE_DONE) {
            if (d->chunk_off < d->chunk_len)
                return fail(d, PGC_ERR_MALFORMED, "bytes after the trailer", err, err_len);
            return 2;
        }
        unit u;
        int rc;
        if (d->buf_len > 0) {
            /* Finish the unit cut across chunks, a piece at a time. */
            if ((rc = measure(d, d->buf, d->buf_len, &u, err, err_len)) != PGC_OK)
                return rc;
            if (!u.size) {
                if (d->chunk_off == d->chunk_len)
                    return 0;
                if (gather(d, u.need) != PGC_OK)
                    return fail(d, PGC_ERR_NOMEM, "out of memory", err, err_len);
                continue;
            }
            if ((rc = take(d, &u, out)) >= 0) {
                d->buf_release = true; /* handed out: valid until the next call */
                return rc;
            }
            d->buf_len = 0;
            continue;
        }
        size_t avail = d->chunk_len - d->chunk_off;
        if (avail == 0)
            return 0;
        const uint8_t *p = d->chunk + d->chunk_off;
        if ((rc = measure(d, p, avail, &u, err, err_len)) != PGC_OK)
            return rc;
        if (!u.size) {
            if (gather(d, avail) != PGC_OK)
                return fail(d, PGC_ERR_NOMEM, "out of memory", err, err_len);
            return 0;
        }
        d->chunk_off += u.size;
        if ((rc = take(d, &u, out)) >= 0)
            return rc;
    }
}

int copybin_finish(const copybin *d, char *err, size_t err_len)
{
    if (d->status != PGC_OK)
        return errbuf_set(err, err_len, d->status, "%s", d->status_msg);
    if (d->phase == PHASE_DONE && d->chunk_off == d->chunk_len)
        return PGC_OK;
    return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                      "copy binary: the data ended %s after %llu tuples",
                      d->phase == PHASE_HEADER ? "in the header" : "before the trailer",
                      (unsigned long long)d->tuples);
}
