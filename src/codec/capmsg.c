/* Raw protobuf scanning and writing for the gateway (see capmsg.h). */
#include "codec/capmsg.h"

#include "codec/pbwire.h"
#include "core/status.h"

#include <string.h>

int capmsg_peek(const uint8_t *msg, size_t len, capmsg_kind *kind, const uint8_t **change,
                size_t *change_len, char *err, size_t err_len)
{
    const uint8_t *p = msg, *end = msg + len;
    *kind = CAPMSG_OTHER;
    *change = NULL;
    *change_len = 0;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "log message: bad protobuf at byte %zu of %zu", (size_t)(p - msg),
                              len);
        if (f.number >= 1 && f.number <= 4 && f.wire != 2)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "log message: field %u has wire type %d", f.number, f.wire);
        if (f.number == 3 || f.number == 1) {
            *kind = f.number == 3 ? CAPMSG_CHANGE : CAPMSG_BEGIN;
            *change = f.bytes;
            *change_len = f.len;
        } else if (f.number == 2 || f.number == 4) {
            *kind = CAPMSG_OTHER;
            *change = NULL;
            *change_len = 0;
        }
    }
    return PGC_OK;
}

int capmsg_begin_lsn(const uint8_t *begin, size_t len, uint64_t *lsn, uint64_t *commit_time,
                     char *err, size_t err_len)
{
    const uint8_t *p = begin, *end = begin + len;
    *lsn = 0;
    *commit_time = 0;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "begin: bad protobuf");
        if (f.number == 1 && f.wire == 0)
            *lsn = f.varint;
        else if (f.number == 2 && f.wire == 0)
            *commit_time = f.varint;
    }
    return PGC_OK;
}

/* The last string field `number` of a serialized Change (empty when absent). */
static int change_string(const uint8_t *change, size_t len, uint32_t number, const char *what,
                         const uint8_t **out, size_t *out_len, char *err, size_t err_len)
{
    const uint8_t *p = change, *end = change + len;
    *out = change;
    *out_len = 0;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad protobuf at byte %zu of %zu", (size_t)(p - change), len);
        if (f.number == number) {
            if (f.wire != 2)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "change: %s has wire type %d",
                                  what, f.wire);
            *out = f.bytes;
            *out_len = f.len;
        }
    }
    return PGC_OK;
}

int capmsg_change_table(const uint8_t *change, size_t len, const uint8_t **table, size_t *table_len,
                        char *err, size_t err_len)
{
    return change_string(change, len, 3, "table", table, table_len, err, err_len);
}

int capmsg_change_schema(const uint8_t *change, size_t len, const uint8_t **schema,
                         size_t *schema_len, char *err, size_t err_len)
{
    return change_string(change, len, 2, "schema", schema, schema_len, err, err_len);
}

int capmsg_change_op(const uint8_t *change, size_t len, int *op, char *err, size_t err_len)
{
    const uint8_t *p = change, *end = change + len;
    *op = 0;
    while (p < end) {
        const uint8_t *at = p;
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad protobuf at byte %zu of %zu", (size_t)(at - change),
                              len);
        if (f.number == 1 && f.wire == 0)
            *op = (int)(int32_t)f.varint;
    }
    return PGC_OK;
}

#define CHANGE_OLD 5
#define FIELD_BINARY 3
#define FIELD_TEXT 4

/* Whether a serialized Field has no value: neither binary nor text is on the wire (a oneof
 * member is written even when empty, so an empty value is still a value). -1 on bad bytes. */
static int field_is_null(const uint8_t *field, size_t len)
{
    const uint8_t *p = field, *end = field + len;
    int is_null = 1;
    while (p < end) {
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return -1;
        if (f.number == FIELD_BINARY || f.number == FIELD_TEXT) {
            if (f.wire != 2)
                return -1;
            is_null = 0;
        }
    }
    return is_null;
}

int capmsg_change_old_has_null(const uint8_t *change, size_t len, bool *has, char *err,
                               size_t err_len)
{
    const uint8_t *p = change, *end = change + len;
    *has = false;
    while (p < end) {
        const uint8_t *at = p;
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad protobuf at byte %zu of %zu", (size_t)(at - change),
                              len);
        if (f.number != CHANGE_OLD)
            continue;
        int is_null = f.wire == 2 ? field_is_null(f.bytes, f.len) : -1;
        if (is_null < 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "change: bad old field at byte %zu of %zu", (size_t)(at - change),
                              len);
        if (is_null)
            *has = true;
    }
    return PGC_OK;
}

size_t capmsg_change_drop_old_nulls(const uint8_t *change, size_t len, uint8_t *out)
{
    const uint8_t *p = change, *end = change + len;
    uint8_t *o = out;
    while (p < end) {
        const uint8_t *at = p;
        pbwire_field f;
        if (pbwire_next_field(&p, end, &f) != 0)
            break; /* not for unchecked bytes (see capmsg.h) */
        if (f.number == CHANGE_OLD && f.wire == 2 && field_is_null(f.bytes, f.len) == 1)
            continue;
        memcpy(o, at, (size_t)(p - at));
        o += p - at;
    }
    return (size_t)(o - out);
}

static size_t checkpoint_size(uint64_t lsn, uint32_t seq, size_t data_len)
{
    size_t n = 0;
    if (lsn)
        n += 1 + pbwire_varint_size(lsn);
    if (seq)
        n += 1 + pbwire_varint_size(seq);
    if (data_len)
        n += 1 + pbwire_varint_size(data_len) + data_len;
    return n;
}

size_t capmsg_build_size(size_t change_len, size_t data_len)
{
    /* Worst case of every varint: 10 bytes. */
    return 1 + 10 + (1 + 10) * 2 + 1 + 10 + data_len + 1 + 10 + change_len;
}

size_t capmsg_build_len(uint64_t lsn, uint32_t seq, size_t data_len, size_t change_len)
{
    size_t cp = checkpoint_size(lsn, seq, data_len);
    return 1 + pbwire_varint_size(cp) + cp + 1 + pbwire_varint_size(change_len) + change_len;
}

uint8_t *capmsg_build_head(uint8_t *out, uint64_t lsn, uint32_t seq, const uint8_t *data,
                           size_t data_len, size_t change_len)
{
    uint8_t *p = out;
    *p++ = (1 << 3) | 2; /* checkpoint, always present so data-less acks still echo it */
    p = pbwire_put_varint(p, checkpoint_size(lsn, seq, data_len));
    if (lsn) {
        *p++ = (1 << 3) | 0;
        p = pbwire_put_varint(p, lsn);
    }
    if (seq) {
        *p++ = (2 << 3) | 0;
        p = pbwire_put_varint(p, seq);
    }
    if (data_len) {
        *p++ = (3 << 3) | 2;
        p = pbwire_put_varint(p, data_len);
        memcpy(p, data, data_len);
        p += data_len;
    }
    *p++ = (2 << 3) | 2;
    return pbwire_put_varint(p, change_len);
}

size_t capmsg_build(uint8_t *out, uint64_t lsn, uint32_t seq, const uint8_t *data, size_t data_len,
                    const uint8_t *change, size_t change_len)
{
    uint8_t *p = capmsg_build_head(out, lsn, seq, data, data_len, change_len);
    if (change_len)
        memcpy(p, change, change_len);
    p += change_len;
    return (size_t)(p - out);
}
