/* Decoders from PostgreSQL's binary send format (network byte order, as each type's
 * *send function writes it) to C values. Every input is treated as hostile: lengths and
 * contents are checked before anything is read. */
#include "codec/bigendian.h"
#include "core/status.h"
#include "pgcapture.h"

#include <string.h>

static int want_len(const char *type, size_t len, size_t want, char *err, size_t err_len)
{
    if (len == want)
        return PGC_OK;
    return errbuf_set(err, err_len, len < want ? PGC_ERR_TRUNCATED : PGC_ERR_MALFORMED,
                      "%s: %zu bytes, expected %zu", type, len, want);
}

pgc_status pgc_value_decode_bool(const uint8_t *data, size_t len, bool *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("bool", len, 1, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (data[0] > 1)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "bool: byte %u is neither 0 nor 1",
                          data[0]);
    *out = data[0] == 1;
    return PGC_OK;
}

pgc_status pgc_value_decode_int2(const uint8_t *data, size_t len, int16_t *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("int2", len, 2, err, err_len);
    if (rc == PGC_OK)
        *out = (int16_t)bigendian_get16(data);
    return rc;
}

pgc_status pgc_value_decode_int4(const uint8_t *data, size_t len, int32_t *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("int4", len, 4, err, err_len);
    if (rc == PGC_OK)
        *out = (int32_t)bigendian_get32(data);
    return rc;
}

pgc_status pgc_value_decode_int8(const uint8_t *data, size_t len, int64_t *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("int8", len, 8, err, err_len);
    if (rc == PGC_OK)
        *out = (int64_t)bigendian_get64(data);
    return rc;
}

pgc_status pgc_value_decode_float4(const uint8_t *data, size_t len, float *out, char *err,
                                   size_t err_len)
{
    int rc = want_len("float4", len, 4, err, err_len);
    if (rc == PGC_OK) {
        uint32_t u = bigendian_get32(data);
        memcpy(out, &u, sizeof *out);
    }
    return rc;
}

pgc_status pgc_value_decode_float8(const uint8_t *data, size_t len, double *out, char *err,
                                   size_t err_len)
{
    int rc = want_len("float8", len, 8, err, err_len);
    if (rc == PGC_OK) {
        uint64_t u = bigendian_get64(data);
        memcpy(out, &u, sizeof *out);
    }
    return rc;
}

pgc_status pgc_value_decode_text(const uint8_t *data, size_t len, const char **out, size_t *out_len,
                                 char *err, size_t err_len)
{
    if (len > 0 && memchr(data, 0, len))
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "text: holds a NUL byte");
    *out = len ? (const char *)data : "";
    *out_len = len;
    return PGC_OK;
}

pgc_status pgc_value_decode_jsonb(const uint8_t *data, size_t len, const char **out,
                                  size_t *out_len, char *err, size_t err_len)
{
    if (len < 1)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "jsonb: empty, expected a version");
    if (data[0] != 1)
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED, "jsonb: version %u, expected 1",
                          data[0]);
    return pgc_value_decode_text(data + 1, len - 1, out, out_len, err, err_len);
}

pgc_status pgc_value_decode_uuid(const uint8_t *data, size_t len, uint8_t out[16], char *err,
                                 size_t err_len)
{
    int rc = want_len("uuid", len, 16, err, err_len);
    if (rc == PGC_OK)
        memcpy(out, data, 16);
    return rc;
}

pgc_status pgc_value_decode_date(const uint8_t *data, size_t len, int32_t *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("date", len, 4, err, err_len);
    if (rc == PGC_OK)
        *out = (int32_t)bigendian_get32(data);
    return rc;
}

pgc_status pgc_value_decode_time(const uint8_t *data, size_t len, int64_t *out, char *err,
                                 size_t err_len)
{
    int rc = want_len("time", len, 8, err, err_len);
    if (rc != PGC_OK)
        return rc;
    int64_t v = (int64_t)bigendian_get64(data);
    /* time_recv accepts 00:00:00 through 24:00:00 inclusive. */
    if (v < 0 || v > INT64_C(86400000000))
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "time: %lld microseconds out of range",
                          (long long)v);
    *out = v;
    return PGC_OK;
}

pgc_status pgc_value_decode_timestamp(const uint8_t *data, size_t len, int64_t *out, char *err,
                                      size_t err_len)
{
    int rc = want_len("timestamp", len, 8, err, err_len);
    if (rc == PGC_OK)
        *out = (int64_t)bigendian_get64(data);
    return rc;
}

pgc_status pgc_value_decode_interval(const uint8_t *data, size_t len, pgc_interval *out, char *err,
                                     size_t err_len)
{
    int rc = want_len("interval", len, 16, err, err_len);
    if (rc == PGC_OK) {
        out->usecs = (int64_t)bigendian_get64(data);
        out->days = (int32_t)bigendian_get32(data + 8);
        out->months = (int32_t)bigendian_get32(data + 12);
    }
    return rc;
}

/* inet_send: family (PGSQL_AF_INET = 2, PGSQL_AF_INET6 = 3), bits, is_cidr, address
 * length, address. */
pgc_status pgc_value_decode_inet(const uint8_t *data, size_t len, pgc_inet *out, char *err,
                                 size_t err_len)
{
    if (len < 4)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "inet: %zu bytes, expected at least 4",
                          len);
    unsigned family = data[0], bits = data[1], is_cidr = data[2], nb = data[3];
    if (family != 2 && family != 3)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "inet: unknown address family %u",
                          family);
    unsigned max_bits = family == 2 ? 32 : 128;
    if (nb != max_bits / 8 || len != 4 + nb)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "inet: address of %u bytes in %zu, expected %u", nb, len, max_bits / 8);
    if (bits > max_bits || is_cidr > 1)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "inet: %u bits (cidr flag %u)", bits,
                          is_cidr);
    if (is_cidr) {
        /* cidr_recv refuses host bits set to the right of the netmask. */
        for (unsigned b = bits; b < max_bits; b++)
            if (data[4 + b / 8] & (0x80u >> (b % 8)))
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                  "cidr: bits set to the right of the /%u netmask", bits);
    }
    memset(out, 0, sizeof *out);
    out->family = family == 2 ? 4 : 6;
    out->bits = (uint8_t)bits;
    out->is_cidr = is_cidr == 1;
    memcpy(out->addr, data + 4, nb);
    return PGC_OK;
}

/* array_send: ndim, has-nulls flag, element type, then (size, lower bound) per dimension,
 * then each element as a 4-byte length (-1: NULL) and its bytes. */
pgc_status pgc_array_open(const uint8_t *data, size_t len, pgc_array *out, char *err,
                          size_t err_len)
{
    if (len < 12)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "array: %zu bytes, header needs 12",
                          len);
    int32_t ndim = (int32_t)bigendian_get32(data);
    uint32_t flags = bigendian_get32(data + 4);
    uint32_t elem_oid = bigendian_get32(data + 8);
    if (flags > 1)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "array: flags %u", flags);
    if (ndim < 0 || ndim > 6)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "array: %d dimensions", (int)ndim);
    if (ndim > 1)
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                          "array: %d dimensions, only one-dimensional arrays are supported",
                          (int)ndim);
    const uint8_t *p = data + 12, *end = data + len;
    size_t count = 0;
    int32_t lbound = 1;
    if (ndim == 1) {
        if (len < 20)
            return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                              "array: %zu bytes, header with one dimension needs 20", len);
        int32_t n = (int32_t)bigendian_get32(p);
        lbound = (int32_t)bigendian_get32(p + 4);
        p += 8;
        if (n < 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "array: %d elements", (int)n);
        if ((int64_t)lbound + n - 1 > INT32_MAX)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "array: upper bound past the integer range");
        count = (size_t)n;
    }
    /* Check every element now so that pgc_array_read cannot fail. */
    const uint8_t *q = p;
    for (size_t i = 0; i < count; i++) {
        if ((size_t)(end - q) < 4)
            return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                              "array: element %zu of %zu has no length", i + 1, count);
        int32_t el = (int32_t)bigendian_get32(q);
        q += 4;
        if (el == -1) {
            if (!flags)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                  "array: NULL element %zu but no NULL flag", i + 1);
            continue;
        }
        if (el < 0)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "array: element length %d", (int)el);
        if ((size_t)(end - q) < (size_t)el)
            return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                              "array: element %zu of %zu needs %d bytes, %zu left", i + 1, count,
                              (int)el, (size_t)(end - q));
        q += el;
    }
    if (q != end)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "array: %zu bytes after the last element", (size_t)(end - q));
    out->elem_oid = elem_oid;
    out->count = count;
    out->lower_bound = lbound;
    out->next_ = p;
    out->end_ = end;
    return PGC_OK;
}

bool pgc_array_read(pgc_array *a, const uint8_t **elem, size_t *elem_len)
{
    if (a->next_ >= a->end_)
        return false;
    int32_t el = (int32_t)bigendian_get32(a->next_);
    a->next_ += 4;
    if (el < 0) {
        *elem = NULL;
        *elem_len = 0;
    } else {
        *elem = a->next_;
        *elem_len = (size_t)el;
        a->next_ += el;
    }
    return true;
}

static const struct {
    uint32_t array;
    uint32_t elem;
} array_types[] = {
    {1000, PGC_OID_BOOL},     {1001, PGC_OID_BYTEA},     {1003, PGC_OID_NAME},
    {1016, PGC_OID_INT8},     {1005, PGC_OID_INT2},      {1007, PGC_OID_INT4},
    {1009, PGC_OID_TEXT},     {199, PGC_OID_JSON},       {651, PGC_OID_CIDR},
    {1021, PGC_OID_FLOAT4},   {1022, PGC_OID_FLOAT8},    {1041, PGC_OID_INET},
    {1014, PGC_OID_BPCHAR},   {1015, PGC_OID_VARCHAR},   {1182, PGC_OID_DATE},
    {1183, PGC_OID_TIME},     {1115, PGC_OID_TIMESTAMP}, {1185, PGC_OID_TIMESTAMPTZ},
    {1187, PGC_OID_INTERVAL}, {1231, PGC_OID_NUMERIC},   {2951, PGC_OID_UUID},
    {3807, PGC_OID_JSONB},
};

uint32_t pgc_type_get_array_elem(uint32_t oid)
{
    for (size_t i = 0; i < sizeof array_types / sizeof array_types[0]; i++)
        if (array_types[i].array == oid)
            return array_types[i].elem;
    return 0;
}

bool pgc_type_is_supported(uint32_t oid)
{
    switch (oid) {
    case PGC_OID_BOOL:
    case PGC_OID_BYTEA:
    case PGC_OID_NAME:
    case PGC_OID_INT8:
    case PGC_OID_INT2:
    case PGC_OID_INT4:
    case PGC_OID_TEXT:
    case PGC_OID_JSON:
    case PGC_OID_CIDR:
    case PGC_OID_FLOAT4:
    case PGC_OID_FLOAT8:
    case PGC_OID_INET:
    case PGC_OID_BPCHAR:
    case PGC_OID_VARCHAR:
    case PGC_OID_DATE:
    case PGC_OID_TIME:
    case PGC_OID_TIMESTAMP:
    case PGC_OID_TIMESTAMPTZ:
    case PGC_OID_INTERVAL:
    case PGC_OID_NUMERIC:
    case PGC_OID_UUID:
    case PGC_OID_JSONB:
        return true;
    default:
        return pgc_type_get_array_elem(oid) != 0;
    }
}
