/* Binary values rendered as PostgreSQL renders them: the types' output functions (with
 * DateStyle ISO, IntervalStyle postgres, TimeZone UTC, extra_float_digits 1: shortest
 * exact floats) and to_json. The integration test test_typedecode_pg compares both with
 * the server's own output for the same values. */
#include "client/render.h"
#include "core/status.h"
#include "pgcapture.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define USECS_PER_SEC INT64_C(1000000)
#define USECS_PER_MINUTE (60 * USECS_PER_SEC)
#define USECS_PER_HOUR (60 * USECS_PER_MINUTE)
#define USECS_PER_DAY (24 * USECS_PER_HOUR)
#define DAYS_1970_TO_2000 10957

/* Shortest decimal digits that read back as the same float (PostgreSQL's default output
 * since 12), formatted like its float output: fixed notation for decimal exponents in
 * [-4, 15) (float8) or [-4, 6) (float4), otherwise d.ddde+XX. */
static void render_float(strbuf *sb, double v, bool single, render_mode mode)
{
    if (isnan(v) || isinf(v)) {
        const char *s = isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
        if (mode == RENDER_JSON)
            strbuf_json_string(sb, s, strlen(s));
        else
            strbuf_puts(sb, s);
        return;
    }
    if (v == 0) {
        strbuf_puts(sb, signbit(v) ? "-0" : "0");
        return;
    }
    char tmp[64];
    int max_digits = single ? 9 : 17;
    for (int p = 1; p <= max_digits; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v)
            break;
    }
    /* tmp is [-]d[.ddd]e[+-]XX */
    const char *s = tmp;
    bool neg = *s == '-';
    if (neg)
        s++;
    char digits[32];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    int exp = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    if (neg)
        strbuf_putc(sb, '-');
    if (exp >= -4 && exp < (single ? 6 : 15)) {
        if (exp < 0) {
            strbuf_puts(sb, "0.");
            for (int i = 0; i < -exp - 1; i++)
                strbuf_putc(sb, '0');
            strbuf_append(sb, digits, nd);
        } else if ((size_t)exp + 1 >= nd) {
            strbuf_append(sb, digits, nd);
            for (size_t i = nd; i < (size_t)exp + 1; i++)
                strbuf_putc(sb, '0');
        } else {
            strbuf_append(sb, digits, (size_t)exp + 1);
            strbuf_putc(sb, '.');
            strbuf_append(sb, digits + exp + 1, nd - (size_t)exp - 1);
        }
    } else {
        strbuf_putc(sb, digits[0]);
        if (nd > 1) {
            strbuf_putc(sb, '.');
            strbuf_append(sb, digits + 1, nd - 1);
        }
        strbuf_printf(sb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

/* Proleptic Gregorian calendar date of a day count since 1970-01-01, astronomical years
 * (year 0 is 1 BC), by eras of 400 years that start on March 1st. */
static void civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* "YYYY-MM-DD"; *bc says the year is before 1 AD (the caller appends " BC"). */
static void render_ymd(strbuf *sb, int64_t days_since_2000, bool *bc)
{
    int64_t y;
    int m, d;
    civil_from_days(days_since_2000 + DAYS_1970_TO_2000, &y, &m, &d);
    *bc = y <= 0;
    strbuf_printf(sb, "%04lld-%02d-%02d", (long long)(y <= 0 ? 1 - y : y), m, d);
}

/* "HH:MM:SS" plus ".ffffff" without trailing zeros when there is a fraction. */
static void render_hms_parts(strbuf *sb, uint64_t h, uint64_t m, uint64_t s, uint64_t f)
{
    strbuf_printf(sb, "%02llu:%02llu:%02llu", (unsigned long long)h, (unsigned long long)m,
                  (unsigned long long)s);
    if (f) {
        char frac[24]; /* f < 1000000 in practice; room for any value anyway */
        snprintf(frac, sizeof frac, "%06llu", (unsigned long long)(f % 1000000));
        size_t n = 6;
        while (n > 0 && frac[n - 1] == '0')
            n--;
        strbuf_putc(sb, '.');
        strbuf_append(sb, frac, n);
    }
}

static void render_hms(strbuf *sb, int64_t usecs)
{
    int64_t h = usecs / USECS_PER_HOUR;
    usecs -= h * USECS_PER_HOUR;
    int64_t m = usecs / USECS_PER_MINUTE;
    usecs -= m * USECS_PER_MINUTE;
    int64_t s = usecs / USECS_PER_SEC;
    render_hms_parts(sb, (uint64_t)h, (uint64_t)m, (uint64_t)s,
                     (uint64_t)(usecs - s * USECS_PER_SEC));
}

/* |v| without overflow, also for INT64_MIN. */
static uint64_t abs_u64(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static void put_special(strbuf *sb, const char *s, render_mode mode)
{
    if (mode == RENDER_JSON)
        strbuf_json_string(sb, s, strlen(s));
    else
        strbuf_puts(sb, s);
}

static void render_date(strbuf *sb, int32_t days, render_mode mode)
{
    if (days == PGC_DATE_NEG_INFINITY || days == PGC_DATE_POS_INFINITY) {
        put_special(sb, days == PGC_DATE_POS_INFINITY ? "infinity" : "-infinity", mode);
        return;
    }
    bool bc;
    if (mode == RENDER_JSON)
        strbuf_putc(sb, '"');
    render_ymd(sb, days, &bc);
    if (bc)
        strbuf_puts(sb, " BC");
    if (mode == RENDER_JSON)
        strbuf_putc(sb, '"');
}

static void render_timestamp(strbuf *sb, int64_t ts, bool tz, render_mode mode)
{
    if (ts == PGC_TIMESTAMP_NEG_INFINITY || ts == PGC_TIMESTAMP_POS_INFINITY) {
        put_special(sb, ts == PGC_TIMESTAMP_POS_INFINITY ? "infinity" : "-infinity", mode);
        return;
    }
    int64_t days = ts / USECS_PER_DAY, rem = ts % USECS_PER_DAY;
    if (rem < 0) {
        rem += USECS_PER_DAY;
        days--;
    }
    bool bc;
    if (mode == RENDER_JSON)
        strbuf_putc(sb, '"');
    render_ymd(sb, days, &bc);
    strbuf_putc(sb, mode == RENDER_JSON ? 'T' : ' ');
    render_hms(sb, rem);
    if (tz)
        strbuf_puts(sb, mode == RENDER_JSON ? "+00:00" : "+00");
    if (bc)
        strbuf_puts(sb, " BC");
    if (mode == RENDER_JSON)
        strbuf_putc(sb, '"');
}

/* One "N unit(s)" part of IntervalStyle postgres; a positive part after a negative one
 * gets an explicit "+". */
static void interval_part(strbuf *sb, int64_t v, const char *unit, bool *is_zero, bool *is_before)
{
    if (v == 0)
        return;
    strbuf_printf(sb, "%s%s%lld %s%s", *is_zero ? "" : " ", *is_before && v > 0 ? "+" : "",
                  (long long)v, unit, v != 1 ? "s" : "");
    *is_before = v < 0;
    *is_zero = false;
}

static void render_interval(strbuf *sb, const pgc_interval *iv)
{
    bool is_zero = true, is_before = false;
    interval_part(sb, iv->months / 12, "year", &is_zero, &is_before);
    interval_part(sb, iv->months % 12, "mon", &is_zero, &is_before);
    interval_part(sb, iv->days, "day", &is_zero, &is_before);
    int64_t t = iv->usecs;
    int64_t h = t / USECS_PER_HOUR;
    t -= h * USECS_PER_HOUR;
    int64_t m = t / USECS_PER_MINUTE;
    t -= m * USECS_PER_MINUTE;
    int64_t s = t / USECS_PER_SEC;
    int64_t f = t - s * USECS_PER_SEC;
    if (is_zero || h || m || s || f) {
        bool minus = h < 0 || m < 0 || s < 0 || f < 0;
        strbuf_printf(sb, "%s%s", is_zero ? "" : " ", minus ? "-" : is_before ? "+" : "");
        render_hms_parts(sb, abs_u64(h), abs_u64(m), abs_u64(s), abs_u64(f));
    }
}

static void render_inet(strbuf *sb, const pgc_inet *in)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (!inet_ntop(in->family == 4 ? AF_INET : AF_INET6, in->addr, buf, sizeof buf)) {
        sb->failed = true;
        return;
    }
    strbuf_puts(sb, buf);
    unsigned max_bits = in->family == 4 ? 32 : 128;
    if (in->is_cidr || in->bits != max_bits)
        strbuf_printf(sb, "/%u", in->bits);
}

static void render_hex(strbuf *sb, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!strbuf_reserve(sb, 2 + 2 * n))
        return;
    strbuf_puts(sb, "\\x");
    for (size_t i = 0; i < n; i++) {
        sb->data[sb->len++] = hex[p[i] >> 4];
        sb->data[sb->len++] = hex[p[i] & 15];
    }
    sb->data[sb->len] = '\0';
}

/* Renders as text, then as a JSON string when the mode is JSON (to_json quotes what it
 * has no JSON form for). */
static int text_then_quote(strbuf *sb, uint32_t oid, const uint8_t *data, size_t len,
                           render_mode mode, char *err, size_t err_len)
{
    if (mode == RENDER_TEXT)
        return render_value(sb, oid, data, len, RENDER_TEXT, err, err_len);
    strbuf tmp;
    strbuf_init(&tmp);
    int rc = render_value(&tmp, oid, data, len, RENDER_TEXT, err, err_len);
    if (rc == PGC_OK) {
        strbuf_json_string(sb, tmp.data ? tmp.data : "", tmp.len);
        rc = strbuf_status(sb);
    }
    strbuf_free(&tmp);
    return rc;
}

/* array_out quotes an element that is empty, spells NULL, or holds a delimiter, brace,
 * quote, backslash or white space. */
static bool array_elem_needs_quotes(const char *s, size_t n)
{
    if (n == 0 || (n == 4 && strncasecmp(s, "NULL", 4) == 0))
        return true;
    for (size_t i = 0; i < n; i++)
        if (strchr("{},\"\\ \t\n\r\v\f", s[i]) && s[i] != '\0')
            return true;
    return false;
}

static int render_array(strbuf *sb, uint32_t oid, const uint8_t *data, size_t len, render_mode mode,
                        char *err, size_t err_len)
{
    uint32_t want_elem = pgc_type_get_array_elem(oid);
    pgc_array a;
    int rc = pgc_array_open(data, len, &a, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (a.elem_oid != want_elem)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "array: element type %u in an array of type %u (expected %u)", a.elem_oid,
                          oid, want_elem);
    /* A lower bound other than 1 shows in the text form, as array_out writes it. */
    if (mode == RENDER_TEXT && a.count > 0 && a.lower_bound != 1)
        strbuf_printf(sb, "[%d:%lld]=", (int)a.lower_bound,
                      (long long)a.lower_bound + (long long)a.count - 1);
    strbuf_putc(sb, mode == RENDER_JSON ? '[' : '{');
    const uint8_t *e;
    size_t el;
    strbuf tmp;
    strbuf_init(&tmp);
    for (size_t i = 0; pgc_array_read(&a, &e, &el); i++) {
        if (i > 0)
            strbuf_putc(sb, ',');
        if (!e) {
            strbuf_puts(sb, mode == RENDER_JSON ? "null" : "NULL");
            continue;
        }
        if (mode == RENDER_JSON) {
            rc = render_value(sb, want_elem, e, el, RENDER_JSON, err, err_len);
        } else {
            tmp.len = 0;
            rc = render_value(&tmp, want_elem, e, el, RENDER_TEXT, err, err_len);
            const char *s = tmp.data ? tmp.data : "";
            if (rc == PGC_OK && array_elem_needs_quotes(s, tmp.len)) {
                strbuf_putc(sb, '"');
                for (size_t k = 0; k < tmp.len; k++) {
                    if (s[k] == '"' || s[k] == '\\')
                        strbuf_putc(sb, '\\');
                    strbuf_putc(sb, s[k]);
                }
                strbuf_putc(sb, '"');
            } else if (rc == PGC_OK) {
                strbuf_append(sb, s, tmp.len);
            }
        }
        if (rc != PGC_OK) {
            strbuf_free(&tmp);
            return rc;
        }
    }
    strbuf_free(&tmp);
    strbuf_putc(sb, mode == RENDER_JSON ? ']' : '}');
    return strbuf_status(sb);
}

int render_value(strbuf *sb, uint32_t oid, const uint8_t *data, size_t len, render_mode mode,
                 char *err, size_t err_len)
{
    int rc;
    switch (oid) {
    case PGC_OID_BOOL: {
        bool v;
        if ((rc = pgc_value_decode_bool(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        strbuf_puts(sb, mode == RENDER_JSON ? (v ? "true" : "false") : (v ? "t" : "f"));
        break;
    }
    case PGC_OID_INT2: {
        int16_t v;
        if ((rc = pgc_value_decode_int2(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        strbuf_printf(sb, "%d", v);
        break;
    }
    case PGC_OID_INT4: {
        int32_t v;
        if ((rc = pgc_value_decode_int4(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        strbuf_printf(sb, "%d", (int)v);
        break;
    }
    case PGC_OID_INT8: {
        int64_t v;
        if ((rc = pgc_value_decode_int8(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        strbuf_printf(sb, "%lld", (long long)v);
        break;
    }
    case PGC_OID_FLOAT4: {
        float v;
        if ((rc = pgc_value_decode_float4(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        render_float(sb, v, true, mode);
        break;
    }
    case PGC_OID_FLOAT8: {
        double v;
        if ((rc = pgc_value_decode_float8(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        render_float(sb, v, false, mode);
        break;
    }
    case PGC_OID_NUMERIC: {
        if (mode == RENDER_TEXT)
            return numeric_render(sb, data, len, NULL, err, err_len);
        strbuf tmp;
        strbuf_init(&tmp);
        bool special;
        rc = numeric_render(&tmp, data, len, &special, err, err_len);
        if (rc == PGC_OK && special)
            strbuf_json_string(sb, tmp.data, tmp.len);
        else if (rc == PGC_OK)
            strbuf_append(sb, tmp.data, tmp.len);
        strbuf_free(&tmp);
        if (rc != PGC_OK)
            return rc;
        break;
    }
    case PGC_OID_TEXT:
    case PGC_OID_VARCHAR:
    case PGC_OID_BPCHAR:
    case PGC_OID_NAME: {
        const char *s;
        size_t n;
        if ((rc = pgc_value_decode_text(data, len, &s, &n, err, err_len)) != PGC_OK)
            return rc;
        if (mode == RENDER_JSON)
            strbuf_json_string(sb, s, n);
        else
            strbuf_append(sb, s, n);
        break;
    }
    case PGC_OID_JSON:
    case PGC_OID_JSONB: {
        const char *s;
        size_t n;
        rc = oid == PGC_OID_JSON ? pgc_value_decode_text(data, len, &s, &n, err, err_len)
                                 : pgc_value_decode_jsonb(data, len, &s, &n, err, err_len);
        if (rc != PGC_OK)
            return rc;
        /* to_json embeds json as it is; we check it first, since it came over the network
         * and would otherwise corrupt the whole document. */
        if (mode == RENDER_JSON && (rc = json_check(s, n, err, err_len)) != PGC_OK)
            return rc;
        strbuf_append(sb, s, n);
        break;
    }
    case PGC_OID_BYTEA:
        if (mode == RENDER_JSON)
            return text_then_quote(sb, oid, data, len, mode, err, err_len);
        render_hex(sb, data, len);
        break;
    case PGC_OID_UUID: {
        uint8_t u[16];
        if ((rc = pgc_value_decode_uuid(data, len, u, err, err_len)) != PGC_OK)
            return rc;
        if (mode == RENDER_JSON)
            strbuf_putc(sb, '"');
        for (int i = 0; i < 16; i++)
            strbuf_printf(sb, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", u[i]);
        if (mode == RENDER_JSON)
            strbuf_putc(sb, '"');
        break;
    }
    case PGC_OID_DATE: {
        int32_t v;
        if ((rc = pgc_value_decode_date(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        render_date(sb, v, mode);
        break;
    }
    case PGC_OID_TIME: {
        int64_t v;
        if ((rc = pgc_value_decode_time(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        if (mode == RENDER_JSON)
            strbuf_putc(sb, '"');
        render_hms(sb, v);
        if (mode == RENDER_JSON)
            strbuf_putc(sb, '"');
        break;
    }
    case PGC_OID_TIMESTAMP:
    case PGC_OID_TIMESTAMPTZ: {
        int64_t v;
        if ((rc = pgc_value_decode_timestamp(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        render_timestamp(sb, v, oid == PGC_OID_TIMESTAMPTZ, mode);
        break;
    }
    case PGC_OID_INTERVAL: {
        pgc_interval v;
        if ((rc = pgc_value_decode_interval(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        if (mode == RENDER_JSON)
            return text_then_quote(sb, oid, data, len, mode, err, err_len);
        render_interval(sb, &v);
        break;
    }
    case PGC_OID_INET:
    case PGC_OID_CIDR: {
        pgc_inet v;
        if ((rc = pgc_value_decode_inet(data, len, &v, err, err_len)) != PGC_OK)
            return rc;
        if (v.is_cidr != (oid == PGC_OID_CIDR))
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "%s: value flagged as %s",
                              oid == PGC_OID_CIDR ? "cidr" : "inet", v.is_cidr ? "cidr" : "inet");
        if (mode == RENDER_JSON)
            return text_then_quote(sb, oid, data, len, mode, err, err_len);
        render_inet(sb, &v);
        break;
    }
    default:
        if (pgc_type_get_array_elem(oid) != 0)
            return render_array(sb, oid, data, len, mode, err, err_len);
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED, "type OID %u is not supported", oid);
    }
    return strbuf_status(sb);
}

static int value_to(render_mode mode, uint32_t oid, const uint8_t *data, size_t len, char **out,
                    size_t *out_len, char *err, size_t err_len)
{
    if (!out || (!data && len > 0))
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "value: NULL argument");
    strbuf sb;
    strbuf_init(&sb);
    int rc = render_value(&sb, oid, data ? data : (const uint8_t *)"", len, mode, err, err_len);
    if (rc == PGC_OK && !(*out = strbuf_take(&sb, out_len)))
        rc = PGC_ERR_NOMEM;
    if (rc == PGC_ERR_NOMEM)
        errbuf_set(err, err_len, rc, "value of type %u: out of memory", oid);
    strbuf_free(&sb);
    return rc;
}

pgc_status pgc_value_render_text(uint32_t oid, const uint8_t *data, size_t len, char **out,
                                 size_t *out_len, char *err, size_t err_len)
{
    return value_to(RENDER_TEXT, oid, data, len, out, out_len, err, err_len);
}

pgc_status pgc_value_render_json(uint32_t oid, const uint8_t *data, size_t len, char **out,
                                 size_t *out_len, char *err, size_t err_len)
{
    return value_to(RENDER_JSON, oid, data, len, out, out_len, err, err_len);
}

void pgc_memory_free(void *p)
{
    free(p);
}
