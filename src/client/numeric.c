/* numeric's binary send format to its exact decimal text: a sign word, a weight (power of
 * 10000 of the first digit), a display scale, and base-10000 digits. */
#include "client/render.h"
#include "codec/bigendian.h"
#include "core/status.h"
#include "pgcapture.h"

#include <string.h>

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF

static unsigned digit_at(const uint8_t *digits, int ndigits, long i)
{
    if (i < 0 || i >= ndigits)
        return 0;
    return bigendian_get16(digits + 2 * i);
}

int numeric_render(strbuf *sb, const uint8_t *data, size_t len, bool *special, char *err,
                   size_t err_len)
{
    if (len < 8)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "numeric: %zu bytes, header needs 8",
                          len);
    int ndigits = (int16_t)bigendian_get16(data);
    int weight = (int16_t)bigendian_get16(data + 2);
    unsigned sign = bigendian_get16(data + 4);
    unsigned dscale = bigendian_get16(data + 6);
    if (ndigits < 0 || len != 8 + 2 * (size_t)ndigits)
        return errbuf_set(err, err_len,
                          ndigits >= 0 && len < 8 + 2 * (size_t)ndigits ? PGC_ERR_TRUNCATED
                                                                        : PGC_ERR_MALFORMED,
                          "numeric: %d digits in %zu bytes", ndigits, len);
    const uint8_t *digits = data + 8;
    if (special)
        *special = false;
    switch (sign) {
    case NUMERIC_NAN:
    case NUMERIC_PINF:
    case NUMERIC_NINF:
        if (special)
            *special = true;
        strbuf_puts(sb, sign == NUMERIC_NAN    ? "NaN"
                        : sign == NUMERIC_PINF ? "Infinity"
                                               : "-Infinity");
        return strbuf_status(sb);
    case NUMERIC_POS:
    case NUMERIC_NEG:
        break;
    default:
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "numeric: sign word 0x%04X", sign);
    }
    if (dscale > NUMERIC_DSCALE_MAX)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "numeric: display scale %u", dscale);
    for (int i = 0; i < ndigits; i++)
        if (digit_at(digits, ndigits, i) > 9999)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "numeric: digit %u out of range",
                              digit_at(digits, ndigits, i));
    size_t int_digits = weight >= 0 ? 4 * ((size_t)weight + 1) : 1;
    if (!strbuf_reserve(sb, 1 + int_digits + 1 + dscale + 4))
        return PGC_ERR_NOMEM;
    if (sign == NUMERIC_NEG)
        strbuf_putc(sb, '-');
    if (weight < 0) {
        strbuf_putc(sb, '0');
    } else {
        for (long d = 0; d <= weight; d++) {
            unsigned v = digit_at(digits, ndigits, d);
            if (d == 0)
                strbuf_printf(sb, "%u", v);
            else
                strbuf_printf(sb, "%04u", v);
        }
    }
    if (dscale > 0) {
        strbuf_putc(sb, '.');
        size_t written = 0;
        for (long d = (long)weight + 1; written < dscale; d++) {
            char four[5];
            unsigned v = digit_at(digits, ndigits, d);
            four[0] = (char)('0' + v / 1000);
            four[1] = (char)('0' + v / 100 % 10);
            four[2] = (char)('0' + v / 10 % 10);
            four[3] = (char)('0' + v % 10);
            size_t take = dscale - written < 4 ? dscale - written : 4;
            strbuf_append(sb, four, take);
            written += take;
        }
    }
    return strbuf_status(sb);
}

pgc_status pgc_value_decode_numeric(const uint8_t *data, size_t len, char *buf, size_t buf_len,
                                    size_t *out_len, char *err, size_t err_len)
{
    strbuf sb;
    strbuf_init(&sb);
    int rc = numeric_render(&sb, data, len, NULL, err, err_len);
    if (rc == PGC_OK) {
        if (out_len)
            *out_len = sb.len;
        if (!buf || sb.len >= buf_len)
            rc = errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                            "numeric: %zu characters do not fit a buffer of %zu", sb.len, buf_len);
        else
            memcpy(buf, sb.data, sb.len + 1);
    } else if (rc == PGC_ERR_NOMEM) {
        errbuf_set(err, err_len, rc, "numeric: out of memory");
    }
    strbuf_free(&sb);
    return rc;
}
