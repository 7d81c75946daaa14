/* Binary decoders on hand-made input: exact values, and hostile input (short, long,
 * inconsistent lengths, bad flags) refused with a status and a message, never read past
 * the end. Server-written values are checked in tests/integration/test_typedecode_pg.c. */
#include "harness/runner.h"

#include "pgcapture.h"

#include <stdlib.h>
#include <string.h>

static void free_ptr(void *p)
{
    pgc_memory_free(p);
}

/* Renders in a heap copy of exactly `len` bytes, so ASan catches any over-read. */
static int text_of(uint32_t oid, const void *data, size_t len, char **out)
{
    uint8_t *copy = malloc(len ? len : 1);
    EXPECT_TRUE(copy != NULL);
    memcpy(copy, data, len);
    char err[256];
    *out = NULL;
    int rc = pgc_value_render_text(oid, copy, len, out, NULL, err, sizeof err);
    free(copy);
    if (*out)
        unit_defer(free_ptr, *out);
    return rc;
}

static void test_fixed_width_decoders_refuse_wrong_lengths(void)
{
    const uint8_t b[16] = {0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
    char err[128];
    int16_t i2;
    int32_t i4;
    int64_t i8;
    bool bo;
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgc_value_decode_int2(b, 1, &i2, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgc_value_decode_int4(b, 5, &i4, err, sizeof err));
    EXPECT_TRUE(strstr(err, "int4: 5 bytes, expected 4") != NULL);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgc_value_decode_int8(b, 7, &i8, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgc_value_decode_bool(b, 1, &bo, err, sizeof err)); /* 0x80 */
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_int2(b, 2, &i2, err, sizeof err));
    EXPECT_EQ_INT(-32768, i2);
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_int4(b, 4, &i4, err, sizeof err));
    EXPECT_EQ_INT(INT32_MIN + 1, i4);
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_int8(b + 4, 8, &i8, err, sizeof err));
    EXPECT_EQ_INT(INT64_C(0x0000000200000003), i8);
    pgc_interval iv;
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgc_value_decode_interval(b, 15, &iv, err, sizeof err));
    uint8_t u[16];
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgc_value_decode_uuid(b, 15, u, err, sizeof err));
    int64_t t;
    const uint8_t late[8] = {0, 0, 0, 0x14, 0x1d, 0xd7, 0x60, 0x01}; /* 24:00:00 + 1us */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgc_value_decode_time(late, 8, &t, err, sizeof err));
}

static void test_numeric_renders_exact_decimals_and_refuses_bad_headers(void)
{
    /* -12.3400: ndigits 2, weight 0, NEG, dscale 4, digits 12, 3400 */
    const uint8_t neg[] = {0, 2, 0, 0, 0x40, 0, 0, 4, 0, 12, 0x0d, 0x48};
    char buf[32];
    size_t n;
    char err[128];
    EXPECT_EQ_INT(PGC_OK,
                  pgc_value_decode_numeric(neg, sizeof neg, buf, sizeof buf, &n, err, sizeof err));
    EXPECT_EQ_STR("-12.3400", buf);
    EXPECT_EQ_UINT(8, n);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE,
                  pgc_value_decode_numeric(neg, sizeof neg, buf, 8, &n, err, sizeof err));
    EXPECT_EQ_UINT(8, n);
    /* 0.0001 with weight -1: ndigits 1, weight -1, dscale 4, digit 1 */
    const uint8_t small[] = {0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1};
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_numeric(small, sizeof small, buf, sizeof buf, NULL, err,
                                                   sizeof err));
    EXPECT_EQ_STR("0.0001", buf);
    const uint8_t nan[] = {0, 0, 0, 0, 0xC0, 0, 0, 0};
    EXPECT_EQ_INT(
        PGC_OK, pgc_value_decode_numeric(nan, sizeof nan, buf, sizeof buf, NULL, err, sizeof err));
    EXPECT_EQ_STR("NaN", buf);
    const uint8_t ninf[] = {0, 0, 0, 0, 0xF0, 0, 0, 0};
    EXPECT_EQ_INT(PGC_OK, pgc_value_decode_numeric(ninf, sizeof ninf, buf, sizeof buf, NULL, err,
                                                   sizeof err));
    EXPECT_EQ_STR("-Infinity", buf);
    const uint8_t bad_sign[] = {0, 0, 0, 0, 0x12, 0x34, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgc_value_decode_numeric(bad_sign, 8, buf, sizeof buf, NULL, err, sizeof err));
    const uint8_t bad_digit[] = {0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10}; /* 10000 */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgc_value_decode_numeric(bad_digit, 10, buf, sizeof buf, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgc_value_decode_numeric(neg, sizeof neg - 1, buf, sizeof buf,
                                                              NULL, err, sizeof err));
    const uint8_t neg_count[] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgc_value_decode_numeric(neg_count, 8, buf, sizeof buf, NULL, err, sizeof err));
    const uint8_t big_scale[] = {0, 0, 0, 0, 0, 0, 0x40, 0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgc_value_decode_numeric(big_scale, 8, buf, sizeof buf, NULL, err, sizeof err));
}

static void test_arrays_with_nulls_iterate_and_bad_arrays_are_refused(void)
{
    /* int4[] {7,NULL}: ndim 1, has nulls, elem 23, size 2, lbound 1, (4,7), (-1) */
    const uint8_t arr[] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0,    0,    0,    2,
                           0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7,  0xff, 0xff, 0xff, 0xff};
    pgc_array a;
    char err[128];
    EXPECT_EQ_INT(PGC_OK, pgc_array_open(arr, sizeof arr, &a, err, sizeof err));
    EXPECT_EQ_UINT(2, a.count);
    EXPECT_EQ_UINT(23, a.elem_oid);
    const uint8_t *e;
    size_t el;
    EXPECT_EQ_INT(1, pgc_array_read(&a, &e, &el));
    EXPECT_TRUE(e != NULL && el == 4 && e[3] == 7);
    EXPECT_EQ_INT(1, pgc_array_read(&a, &e, &el));
    EXPECT_TRUE(e == NULL);
    EXPECT_EQ_INT(0, pgc_array_read(&a, &e, &el));
    char *s;
    EXPECT_EQ_INT(PGC_OK, text_of(1007, arr, sizeof arr, &s));
    EXPECT_EQ_STR("{7,NULL}", s);
    for (size_t cut = 0; cut < sizeof arr; cut++)
        EXPECT_TRUE(text_of(1007, arr, cut, &s) < 0);
    uint8_t bad[sizeof arr];
    memcpy(bad, arr, sizeof arr);
    bad[7] = 0; /* NULL element without the has-nulls flag */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(1007, bad, sizeof bad, &s));
    memcpy(bad, arr, sizeof arr);
    bad[11] = 25; /* text elements in an int4[] */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(1007, bad, sizeof bad, &s));
    memcpy(bad, arr, sizeof arr);
    bad[15] = 0x7f; /* more elements than bytes */
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, text_of(1007, bad, sizeof bad, &s));
    memcpy(bad, arr, sizeof arr);
    bad[0] = 0xff; /* negative dimensions */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(1007, bad, sizeof bad, &s));
    memcpy(bad, arr, sizeof arr);
    bad[20] = 0x7f; /* element length past the end */
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, text_of(1007, bad, sizeof bad, &s));
    const uint8_t two_dim[] = {0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23};
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED, text_of(1007, two_dim, sizeof two_dim, &s));
}

static void test_inet_and_jsonb_headers_are_checked(void)
{
    const uint8_t v4[] = {2, 24, 0, 4, 192, 168, 1, 5};
    char *s;
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_INET, v4, sizeof v4, &s));
    EXPECT_EQ_STR("192.168.1.5/24", s);
    const uint8_t v4_cidr_host_bits[] = {2, 24, 1, 4, 192, 168, 1, 5};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_CIDR, v4_cidr_host_bits, 8, &s));
    const uint8_t bad_family[] = {9, 24, 0, 4, 192, 168, 1, 5};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_INET, bad_family, 8, &s));
    const uint8_t bad_bits[] = {2, 33, 0, 4, 192, 168, 1, 5};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_INET, bad_bits, 8, &s));
    const uint8_t v6_short[] = {3, 128, 0, 16, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_INET, v6_short, sizeof v6_short, &s));
    const uint8_t cidr_as_inet[] = {2, 8, 1, 4, 10, 0, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_INET, cidr_as_inet, 8, &s));
    const uint8_t jsonb_v2[] = {2, '{', '}'};
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED, text_of(PGC_OID_JSONB, jsonb_v2, 3, &s));
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, text_of(PGC_OID_JSONB, jsonb_v2, 0, &s));
    const uint8_t jsonb[] = {1, '[', '1', ']'};
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_JSONB, jsonb, 4, &s));
    EXPECT_EQ_STR("[1]", s);
    const uint8_t nul_text[] = {'a', 0, 'b'};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, text_of(PGC_OID_TEXT, nul_text, 3, &s));
}

static void test_unknown_oid_is_reported_with_its_number(void)
{
    char *out = NULL, err[128] = "";
    const uint8_t v[4] = {0};
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED,
                  pgc_value_render_json(790, v, 4, &out, NULL, err, sizeof err));
    EXPECT_TRUE(out == NULL);
    EXPECT_TRUE(strstr(err, "790") != NULL);
    EXPECT_TRUE(!pgc_type_is_supported(790));
    EXPECT_TRUE(pgc_type_is_supported(PGC_OID_JSONB) && pgc_type_is_supported(1007));
    EXPECT_EQ_UINT(PGC_OID_INT4, pgc_type_get_array_elem(1007));
    EXPECT_EQ_UINT(0, pgc_type_get_array_elem(PGC_OID_INT4));
    EXPECT_EQ_STR("unsupported", pgc_status_describe(PGC_ERR_UNSUPPORTED));
}

static void test_empty_bytea_and_dates_render(void)
{
    char *s;
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_BYTEA, "", 0, &s));
    EXPECT_EQ_STR("\\x", s);
    const uint8_t d[] = {0xff, 0xff, 0xff, 0xff}; /* 1999-12-31 */
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_DATE, d, 4, &s));
    EXPECT_EQ_STR("1999-12-31", s);
    const uint8_t inf[] = {0x7f, 0xff, 0xff, 0xff};
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_DATE, inf, 4, &s));
    EXPECT_EQ_STR("infinity", s);
    /* The smallest interval time part: its magnitude does not fit an int64. */
    const uint8_t iv[16] = {0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ_INT(PGC_OK, text_of(PGC_OID_INTERVAL, iv, 16, &s));
    EXPECT_EQ_STR("-2562047788:00:54.775808", s);
}

UNIT_MAIN(UNIT_CASE(test_fixed_width_decoders_refuse_wrong_lengths),
          UNIT_CASE(test_numeric_renders_exact_decimals_and_refuses_bad_headers),
          UNIT_CASE(test_arrays_with_nulls_iterate_and_bad_arrays_are_refused),
          UNIT_CASE(test_inet_and_jsonb_headers_are_checked),
          UNIT_CASE(test_unknown_oid_is_reported_with_its_number),
          UNIT_CASE(test_empty_bytea_and_dates_render))
