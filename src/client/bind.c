/* Binding a row of a change to a C struct from a descriptor array (pgc_bind_column): the
 * C counterpart of pgcapture's Go struct tags. Members are written with memcpy, so the
 * struct's layout and alignment are the compiler's business, not ours. */
#include "client/render.h"
#include "core/status.h"
#include "pgcapture.h"

#include <stdlib.h>
#include <string.h>

static size_t ctype_size(pgc_ctype t, size_t string_size)
{
    switch (t) {
    case PGC_CTYPE_BOOL:
        return sizeof(bool);
    case PGC_CTYPE_INT16:
        return sizeof(int16_t);
    case PGC_CTYPE_INT32:
    case PGC_CTYPE_DATE:
        return sizeof(int32_t);
    case PGC_CTYPE_INT64:
    case PGC_CTYPE_TIMESTAMP:
        return sizeof(int64_t);
    case PGC_CTYPE_FLOAT:
        return sizeof(float);
    case PGC_CTYPE_DOUBLE:
        return sizeof(double);
    case PGC_CTYPE_STRING:
        return string_size;
    case PGC_CTYPE_STRING_DUP:
        return sizeof(char *);
    case PGC_CTYPE_BYTES:
        return sizeof(pgc_bytes);
    case PGC_CTYPE_UUID:
        return 16;
    case PGC_CTYPE_INTERVAL:
        return sizeof(pgc_interval);
    case PGC_CTYPE_INET:
        return sizeof(pgc_inet);
    }
    return 0;
}

/* Frees what a previous bind left in a PGC_CTYPE_STRING_DUP or PGC_CTYPE_BYTES member. */
static void release_member(pgc_ctype t, uint8_t *member)
{
    if (t == PGC_CTYPE_STRING_DUP) {
        char *old;
        memcpy(&old, member, sizeof old);
        free(old);
    } else if (t == PGC_CTYPE_BYTES) {
        pgc_bytes old;
        memcpy(&old, member, sizeof old);
        free(old.data);
    }
}

static int put_string(const pgc_bind_column *col, uint8_t *member, const char *s, size_t n,
                      char *err, size_t err_len)
{
    if (col->ctype == PGC_CTYPE_STRING) {
        if (n >= col->size)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "%zu bytes do not fit char[%zu]", n,
                              col->size);
        memcpy(member, s, n);
        member[n] = '\0';
        return PGC_OK;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    memcpy(copy, s, n);
    copy[n] = '\0';
    release_member(col->ctype, member);
    /* The member is a char * of the caller's struct (offsetof keeps it aligned). */
    *(char **)(void *)member = copy;
    return PGC_OK;
}

static int wrong_type(const pgc_bind_column *col, uint32_t oid, char *err, size_t err_len)
{
    return errbuf_set(err, err_len, PGC_ERR_INVALID, "type OID %u cannot go into C type %d", oid,
                      (int)col->ctype);
}

static int bind_binary(const pgc_bind_column *col, uint8_t *m, uint32_t oid, const uint8_t *d,
                       size_t n, char *err, size_t err_len)
{
    int rc;
    switch (col->ctype) {
    case PGC_CTYPE_BOOL: {
        bool v;
        if (oid != PGC_OID_BOOL)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_bool(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    case PGC_CTYPE_INT16:
    case PGC_CTYPE_INT32:
    case PGC_CTYPE_INT64:
    case PGC_CTYPE_DOUBLE: {
        int64_t v;
        double dv = 0;
        bool is_float = false;
        if (oid == PGC_OID_INT2) {
            int16_t x;
            rc = pgc_value_decode_int2(d, n, &x, err, err_len);
            v = x;
        } else if (oid == PGC_OID_INT4 && col->ctype != PGC_CTYPE_INT16) {
            int32_t x;
            rc = pgc_value_decode_int4(d, n, &x, err, err_len);
            v = x;
        } else if (oid == PGC_OID_INT8 &&
                   (col->ctype == PGC_CTYPE_INT64 || col->ctype == PGC_CTYPE_DOUBLE)) {
            rc = pgc_value_decode_int8(d, n, &v, err, err_len);
        } else if (oid == PGC_OID_FLOAT4 && col->ctype == PGC_CTYPE_DOUBLE) {
            float x;
            rc = pgc_value_decode_float4(d, n, &x, err, err_len);
            dv = x;
            is_float = true;
            v = 0;
        } else if (oid == PGC_OID_FLOAT8 && col->ctype == PGC_CTYPE_DOUBLE) {
            rc = pgc_value_decode_float8(d, n, &dv, err, err_len);
            is_float = true;
            v = 0;
        } else {
            return wrong_type(col, oid, err, err_len);
        }
        if (rc != PGC_OK)
            return rc;
        if (col->ctype == PGC_CTYPE_DOUBLE) {
            double x = is_float ? dv : (double)v;
            memcpy(m, &x, sizeof x);
        } else if (col->ctype == PGC_CTYPE_INT16) {
            int16_t x = (int16_t)v;
            memcpy(m, &x, sizeof x);
        } else if (col->ctype == PGC_CTYPE_INT32) {
            int32_t x = (int32_t)v;
            memcpy(m, &x, sizeof x);
        } else {
            memcpy(m, &v, sizeof v);
        }
        return PGC_OK;
    }
    case PGC_CTYPE_FLOAT: {
        float v;
        if (oid != PGC_OID_FLOAT4)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_float4(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    case PGC_CTYPE_STRING:
    case PGC_CTYPE_STRING_DUP: {
        const char *s;
        size_t sn;
        if (oid == PGC_OID_TEXT || oid == PGC_OID_VARCHAR || oid == PGC_OID_BPCHAR ||
            oid == PGC_OID_NAME || oid == PGC_OID_JSON || oid == PGC_OID_JSONB) {
            rc = oid == PGC_OID_JSONB ? pgc_value_decode_jsonb(d, n, &s, &sn, err, err_len)
                                      : pgc_value_decode_text(d, n, &s, &sn, err, err_len);
            return rc == PGC_OK ? put_string(col, m, s, sn, err, err_len) : rc;
        }
        strbuf sb;
        strbuf_init(&sb);
        rc = render_value(&sb, oid, d, n, RENDER_TEXT, err, err_len);
        if (rc == PGC_OK)
            rc = put_string(col, m, sb.data ? sb.data : "", sb.len, err, err_len);
        else if (rc == PGC_ERR_NOMEM)
            errbuf_set(err, err_len, rc, "out of memory");
        strbuf_free(&sb);
        return rc;
    }
    case PGC_CTYPE_BYTES: {
        if (oid != PGC_OID_BYTEA)
            return wrong_type(col, oid, err, err_len);
        pgc_bytes b = {malloc(n ? n : 1), n};
        if (!b.data)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        if (n)
            memcpy(b.data, d, n);
        release_member(col->ctype, m);
        memcpy(m, &b, sizeof b);
        return PGC_OK;
    }
    case PGC_CTYPE_TIMESTAMP: {
        int64_t v;
        if (oid != PGC_OID_TIMESTAMP && oid != PGC_OID_TIMESTAMPTZ)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_timestamp(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    case PGC_CTYPE_DATE: {
        int32_t v;
        if (oid != PGC_OID_DATE)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_date(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    case PGC_CTYPE_UUID:
        if (oid != PGC_OID_UUID)
            return wrong_type(col, oid, err, err_len);
        return pgc_value_decode_uuid(d, n, m, err, err_len);
    case PGC_CTYPE_INTERVAL: {
        pgc_interval v;
        if (oid != PGC_OID_INTERVAL)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_interval(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    case PGC_CTYPE_INET: {
        pgc_inet v;
        if (oid != PGC_OID_INET && oid != PGC_OID_CIDR)
            return wrong_type(col, oid, err, err_len);
        if ((rc = pgc_value_decode_inet(d, n, &v, err, err_len)) == PGC_OK)
            memcpy(m, &v, sizeof v);
        return rc;
    }
    }
    return wrong_type(col, oid, err, err_len);
}

pgc_status pgc_change_bind(const pgc_change *c, pgc_row row, const pgc_bind_column *cols,
                           size_t n_cols, void *dst, bool *present, char *err, size_t err_len)
{
    if (!c || (!cols && n_cols) || !dst)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "bind: NULL argument");
    for (size_t i = 0; i < n_cols; i++) {
        const pgc_bind_column *col = &cols[i];
        if (!col->column || (unsigned)col->ctype > PGC_CTYPE_INET ||
            (col->ctype == PGC_CTYPE_STRING && col->size == 0))
            return errbuf_set(err, err_len, PGC_ERR_INVALID,
                              "bind: descriptor %zu: no column name, unknown C type or "
                              "a string of size 0",
                              i);
    }
    uint8_t *base = dst;
    for (size_t i = 0; i < n_cols; i++) {
        const pgc_bind_column *col = &cols[i];
        uint8_t *member = base + col->offset;
        const pgc_field *f = pgc_change_find_field(c, row, col->column);
        if (present)
            present[i] = f != NULL;
        if (!f)
            continue;
        bool is_null = pgc_field_get_kind(f) == PGC_VALUE_KIND_NULL;
        if (col->null_offset != PGC_BIND_NO_NULL)
            memcpy(base + col->null_offset, &is_null, sizeof is_null);
        size_t len;
        const uint8_t *data = pgc_field_get_data(f, &len);
        char why[256] = "";
        int rc;
        switch (pgc_field_get_kind(f)) {
        case PGC_VALUE_KIND_NULL:
            release_member(col->ctype, member);
            memset(member, 0, ctype_size(col->ctype, col->size));
            continue;
        case PGC_VALUE_KIND_TEXT:
            if (col->ctype != PGC_CTYPE_STRING && col->ctype != PGC_CTYPE_STRING_DUP)
                return errbuf_set(err, err_len, PGC_ERR_INVALID,
                                  "bind: column %s came as text (type OID %u) and only binds "
                                  "to a string",
                                  col->column, pgc_field_get_oid(f));
            rc = put_string(col, member, (const char *)data, len, why, sizeof why);
            break;
        default:
            rc = bind_binary(col, member, pgc_field_get_oid(f), data, len, why, sizeof why);
            break;
        }
        if (rc != PGC_OK)
            return errbuf_set(err, err_len, rc, "bind: column %s: %s", col->column, why);
    }
    return PGC_OK;
}
