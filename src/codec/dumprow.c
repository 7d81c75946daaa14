/* Dump row Changes from COPY tuples (see dumprow.h). */
#include "codec/dumprow.h"

#include "codec/pbwire.h"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

/* Change field numbers (proto/pgcapture.proto). */
#define CHANGE_OP_UPDATE_BYTES 2 /* field 1 varint, value 1 */
#define TAG_CHANGE_SCHEMA 0x12
#define TAG_CHANGE_TABLE 0x1a
#define TAG_CHANGE_NEW 0x22
#define TAG_FIELD_NAME 0x0a
#define TAG_FIELD_OID 0x10
#define TAG_FIELD_BINARY 0x1a

struct dumprow {
    size_t ncols;
    uint8_t *head; /* op, schema and table, as written before the fields */
    size_t head_len;
    uint8_t **prefix; /* per column: name and oid of its Field */
    size_t *prefix_len;
};

static uint8_t *put_bytes(uint8_t *p, uint8_t tag, const void *data, size_t len)
{
    *p++ = tag;
    p = pbwire_put_varint(p, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

int dumprow_create(const char *schema, const char *table, size_t ncols, const char *const *names,
                   const uint32_t *oids, dumprow **out)
{
    if (ncols > COPYBIN_MAX_FIELDS)
        return PGC_ERR_INVALID;
    dumprow *r = calloc(1, sizeof *r);
    if (!r)
        return PGC_ERR_NOMEM;
    size_t sl = strlen(schema), tl = strlen(table);
    r->head = malloc(CHANGE_OP_UPDATE_BYTES + 2 * (1 + PBWIRE_VARINT_MAX) + sl + tl);
    r->prefix = calloc(ncols ? ncols : 1, sizeof *r->prefix);
    r->prefix_len = calloc(ncols ? ncols : 1, sizeof *r->prefix_len);
    if (!r->head || !r->prefix || !r->prefix_len) {
        dumprow_destroy(r);
        return PGC_ERR_NOMEM;
    }
    r->ncols = ncols;
    uint8_t *p = r->head;
    *p++ = 0x08; /* op = UPDATE */
    *p++ = 0x01;
    if (sl)
        p = put_bytes(p, TAG_CHANGE_SCHEMA, schema, sl);
    if (tl)
        p = put_bytes(p, TAG_CHANGE_TABLE, table, tl);
    r->head_len = (size_t)(p - r->head);
    for (size_t i = 0; i < ncols; i++) {
        size_t nl = strlen(names[i]);
        uint8_t *f = malloc(2 * (1 + PBWIRE_VARINT_MAX) + nl);
        if (!f) {
            dumprow_destroy(r);
            return PGC_ERR_NOMEM;
        }
        r->prefix[i] = f;
        p = f;
        if (nl)
            p = put_bytes(p, TAG_FIELD_NAME, names[i], nl);
        if (oids[i]) {
            *p++ = TAG_FIELD_OID;
            p = pbwire_put_varint(p, oids[i]);
        }
        r->prefix_len[i] = (size_t)(p - f);
    }
    *out = r;
    return PGC_OK;
}

void dumprow_destroy(dumprow *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->prefix && i < r->ncols; i++)
        free(r->prefix[i]);
    free(r->prefix);
    free(r->prefix_len);
    free(r->head);
    free(r);
}

size_t dumprow_ncols(const dumprow *r)
{
    return r->ncols;
}

static size_t field_len(const dumprow *r, size_t i, const copybin_field *f)
{
    size_t n = r->prefix_len[i];
    if (f->len >= 0)
        n += 1 + pbwire_varint_size((uint64_t)f->len) + (size_t)f->len;
    return n;
}

size_t dumprow_size(const dumprow *r, const copybin_tuple *t)
{
    size_t n = r->head_len;
    for (size_t i = 0; i < r->ncols && i < t->nfields; i++) {
        size_t fl = field_len(r, i, &t->fields[i]);
        n += 1 + pbwire_varint_size(fl) + fl;
    }
    return n;
}

size_t dumprow_write(const dumprow *r, const copybin_tuple *t, uint8_t *out)
{
    uint8_t *p = out;
    memcpy(p, r->head, r->head_len);
    p += r->head_len;
    for (size_t i = 0; i < r->ncols && i < t->nfields; i++) {
        const copybin_field *f = &t->fields[i];
        *p++ = TAG_CHANGE_NEW;
        p = pbwire_put_varint(p, field_len(r, i, f));
        memcpy(p, r->prefix[i], r->prefix_len[i]);
        p += r->prefix_len[i];
        if (f->len >= 0)
            p = put_bytes(p, TAG_FIELD_BINARY, f->data, (size_t)f->len);
    }
    return (size_t)(p - out);
}
