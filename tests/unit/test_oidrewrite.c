/* Type OID rewriting in binary values, on values laid out as array_send and record_send
 * write them: the OIDs become the replica's, nothing else moves, and truncated or
 * malformed values are errors that name the field, never out-of-bounds accesses. */
#include "harness/runner.h"

#include "codec/bigendian.h"
#include "codec/oidrewrite.h"
#include "core/status.h"

#include <string.h>

static const uint32_t PT_ATTS[] = {23, 6000};
static const uint32_t NEST_ATTS[] = {200};
static const oidrewrite_type TYPES[] = {
    {100, 'c', 0, 2, (uint32_t *)PT_ATTS},   /* composite (int4, enum 6000 on the replica) */
    {101, 'a', 100, 0, NULL},                /* its array type */
    {102, 'a', 0x01020304u, 0, NULL},        /* an array of a type with nothing to rewrite */
    {103, 'c', 0, 0, NULL},                  /* a record type with no known attributes */
    {200, 'c', 0, 1, (uint32_t *)NEST_ATTS}, /* a record that contains itself */
    {23, 'b', 0, 0, NULL},
    {6000, 'b', 0, 0, NULL},
};

static const oidrewrite_type *lookup(void *ctx, uint32_t oid)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].oid == oid)
            return &TYPES[i];
    return NULL;
}

static int rewrite(uint8_t *v, size_t len, uint32_t oid, char *err, size_t err_len)
{
    return oidrewrite_value(v, len, oid, lookup, NULL, err, err_len);
}

static void test_array_elemtype_is_rewritten_big_endian(void)
{
    /* '{7}' of type 102: ndim 1, no nulls, element oid 23, dim 1 lbound 1, len 4, value 7 */
    uint8_t v[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0,
                   0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0,  0, 7};
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rewrite(v, sizeof v, 102, err, sizeof err));
    const uint8_t want[] = {1, 2, 3, 4};
    EXPECT_EQ_MEM(want, 4, v + 8, 4);
    EXPECT_EQ_INT(7, v[27]);
}

static void test_a_short_array_is_refused_and_left_untouched(void)
{
    uint8_t v[11] = {0};
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, rewrite(v, sizeof v, 102, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: truncated value of type 102 at offset 8: need 4 bytes for array "
                  "element type, have 3",
                  err);
    const uint8_t before[11] = {0};
    EXPECT_EQ_MEM(before, sizeof before, v, sizeof v);
}

static void test_record_field_oids_become_the_replica_types(void)
{
    /* ROW(7, 'ok') from a source where the enum is oid 5000 */
    uint8_t v[] = {0, 0, 0, 2, 0, 0,    0,    23, 0, 0, 0, 4,   0,
                   0, 0, 7, 0, 0, 0x13, 0x88, 0,  0, 0, 2, 'o', 'k'};
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rewrite(v, sizeof v, 100, err, sizeof err));
    const uint8_t want[] = {0, 0, 0x17, 0x70}; /* 6000 */
    EXPECT_EQ_MEM(want, 4, v + 16, 4);
    EXPECT_EQ_INT('k', v[25]);
}

static void test_array_of_records_is_rewritten_element_by_element(void)
{
    /* ARRAY[ROW(NULL, 'a')::pt, NULL]: source element oid 900, enum oid 5000 */
    uint8_t v[] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0x03, 0x84, 0, 0, 0, 2, 0, 0, 0, 1,
                   /* element 1: 21 bytes */
                   0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x13, 0x88,
                   0, 0, 0, 1, 'a',
                   /* element 2: NULL */
                   0xff, 0xff, 0xff, 0xff};
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rewrite(v, sizeof v, 101, err, sizeof err));
    const uint8_t elem[] = {0, 0, 0, 100}, att[] = {0, 0, 0x17, 0x70};
    EXPECT_EQ_MEM(elem, 4, v + 8, 4);
    EXPECT_EQ_MEM(att, 4, v + 36, 4);
}

static void test_fields_past_the_known_attributes_keep_their_oids(void)
{
    /* A record of type 103 (no attributes known): ROW(ROW(1, 'x')::pt) whose inner field
     * says 100, then the enum as 5000; the inner record is still rewritten. */
    uint8_t v[] = {0, 0, 0, 1, 0, 0,    0,    100, 0, 0, 0, 25, /* one field: type 100, 25 bytes */
                   0, 0, 0, 2, 0, 0,    0,    23,  0, 0, 0, 4,  0,
                   0, 0, 1, 0, 0, 0x13, 0x88, 0,   0, 0, 1, 'x'};
    uint8_t before[sizeof v];
    memcpy(before, v, sizeof v);
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rewrite(v, sizeof v, 103, err, sizeof err));
    EXPECT_EQ_MEM(before, 28, v, 28);
    const uint8_t att[] = {0, 0, 0x17, 0x70};
    EXPECT_EQ_MEM(att, 4, v + 28, 4);
    EXPECT_EQ_MEM(before + 32, sizeof v - 32, v + 32, sizeof v - 32);
}

static void test_values_of_plain_types_are_not_read(void)
{
    uint8_t plain[] = {1, 2, 3};
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rewrite(plain, sizeof plain, 23, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rewrite(plain, sizeof plain, 424242, err, sizeof err));
    const uint8_t want[] = {1, 2, 3};
    EXPECT_EQ_MEM(want, 3, plain, 3);
}

static void test_truncated_records_and_arrays_are_refused_naming_the_field(void)
{
    char err[256];
    uint8_t rec[] = {0, 0, 0, 2, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, rewrite(rec, sizeof rec, 100, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: truncated value of type 100 at offset 12: need 4 bytes for record "
                  "field, have 2",
                  err);
    uint8_t arr[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, rewrite(arr, sizeof arr, 101, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: malformed value of type 101 at offset 0: array element count "
                  "2147483647",
                  err);
    uint8_t dims[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 100};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, rewrite(dims, sizeof dims, 101, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: malformed value of type 101 at offset 12: array dimension count 7",
                  err);
    uint8_t hdr[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 1};
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, rewrite(hdr, sizeof hdr, 101, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: truncated value of type 101 at offset 12: need 8 bytes for array "
                  "dimensions, have 4",
                  err);
    uint8_t field[] = {0, 0, 0, 1, 0, 0, 0, 23, 0, 0};
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, rewrite(field, sizeof field, 100, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: truncated value of type 100 at offset 4: need 8 bytes for record "
                  "field type and length, have 6",
                  err);
}

static void test_nesting_deeper_than_the_limit_is_refused(void)
{
    /* Records of type 200, each holding the next, the innermost with a NULL field. */
    enum { LEVELS = OIDREWRITE_MAX_DEPTH + 2 };
    uint8_t v[LEVELS * 12];
    for (int i = 0; i < LEVELS; i++) {
        uint8_t *p = v + i * 12;
        bigendian_put32(p, 1);
        bigendian_put32(p + 4, 200);
        /* the field's length: the levels inside it, or NULL for the innermost */
        bigendian_put32(p + 8, i == LEVELS - 1 ? 0xffffffffu : (uint32_t)((LEVELS - 1 - i) * 12));
    }
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED, rewrite(v, sizeof v, 200, err, sizeof err));
    EXPECT_EQ_STR("oidrewrite: value of type 200 at offset 108 nests deeper than 8 levels", err);
    /* One level less fits. */
    EXPECT_EQ_INT(PGC_OK, rewrite(v + 12, sizeof v - 12, 200, err, sizeof err));
}

UNIT_MAIN(UNIT_CASE(test_array_elemtype_is_rewritten_big_endian),
          UNIT_CASE(test_a_short_array_is_refused_and_left_untouched),
          UNIT_CASE(test_record_field_oids_become_the_replica_types),
          UNIT_CASE(test_array_of_records_is_rewritten_element_by_element),
          UNIT_CASE(test_fields_past_the_known_attributes_keep_their_oids),
          UNIT_CASE(test_values_of_plain_types_are_not_read),
          UNIT_CASE(test_truncated_records_and_arrays_are_refused_naming_the_field),
          UNIT_CASE(test_nesting_deeper_than_the_limit_is_refused))
