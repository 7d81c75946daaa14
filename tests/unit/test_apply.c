/* The pure pieces of the replica apply engine: identifier quoting (every table and column
 * name from the log is hostile) and the element-type rewrite of binary arrays. */
#include "roles/replica/apply.h"
#include "harness/runner.h"

#include <stdlib.h>
#include <string.h>

static void test_quote_ident_doubles_quotes_and_always_quotes(void)
{
    char buf[64];
    size_t n = apply_quote_ident(buf, sizeof buf, 0, "plain");
    EXPECT_EQ_STR("\"plain\"", buf);
    EXPECT_EQ_UINT(7, n);
    n = apply_quote_ident(buf, sizeof buf, 0, "we\"ird; DROP");
    EXPECT_EQ_STR("\"we\"\"ird; DROP\"", buf);
    n = apply_quote_ident(buf, sizeof buf, n, "x");
    EXPECT_EQ_STR("\"we\"\"ird; DROP\"\"x\"", buf);
}

static void test_quote_ident_refuses_what_does_not_fit(void)
{
    char buf[8];
    memset(buf, 'z', sizeof buf);
    EXPECT_EQ_UINT(0, apply_quote_ident(buf, sizeof buf, 0, "toolong"));
    EXPECT_EQ_UINT(7, apply_quote_ident(buf, sizeof buf, 0, "short"));
    EXPECT_EQ_UINT(0, apply_quote_ident(buf, sizeof buf, 0, "\"\"\""));
}

static void test_array_elemtype_is_rewritten_big_endian(void)
{
    /* int4[] '{7}': ndim 1, no nulls, element oid 23, dim 1 lbound 1, len 4, value 7 */
    uint8_t v[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0,
                   0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0,  0, 7};
    EXPECT_TRUE(apply_array_set_elemtype(v, sizeof v, 0x01020304u));
    const uint8_t want[] = {1, 2, 3, 4};
    EXPECT_EQ_MEM(want, 4, v + 8, 4);
    EXPECT_EQ_INT(7, v[27]);
}

static void test_array_elemtype_refuses_a_short_value(void)
{
    uint8_t v[11] = {0};
    EXPECT_TRUE(!apply_array_set_elemtype(v, sizeof v, 5));
    uint8_t before[11] = {0};
    EXPECT_EQ_MEM(before, sizeof before, v, sizeof v);
}

static void expect_rewrite(const char *in, const char *want)
{
    char *got = apply_ddl_without_concurrently(in);
    if (!want) {
        if (got)
            unit_fail(__FILE__, __LINE__, "\"%s\": expected no rewrite, got \"%s\"", in, got);
        return;
    }
    if (!got || strcmp(got, want) != 0) {
        unit_fail(__FILE__, __LINE__, "\"%s\": expected \"%s\", got \"%s\"", in, want,
                  got ? got : "(none)");
    }
    free(got);
}

static void test_concurrently_is_dropped_only_from_index_ddl(void)
{
    expect_rewrite("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX  i ON t (a)");
    expect_rewrite("create unique index concurrently if not exists i on t (a)",
                   "create unique index  if not exists i on t (a)");
    expect_rewrite("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX  IF EXISTS i");
    expect_rewrite("REINDEX (VERBOSE) TABLE CONCURRENTLY t", "REINDEX (VERBOSE) TABLE  t");
    expect_rewrite("CREATE INDEX i ON t (a)", NULL);
    expect_rewrite("CREATE INDEX concurrently_named ON t (a)", NULL);
    expect_rewrite("CREATE TABLE concurrently (a int)", NULL);
    expect_rewrite("COMMENT ON INDEX i IS 'CONCURRENTLY'", NULL);
    expect_rewrite("", NULL);
}

static const uint32_t PT_ATTS[] = {23, 6000};
static const apply_type_desc TYPES[] = {
    {100, 'c', 0, 2, (uint32_t *)PT_ATTS}, /* composite (int4, enum 6000 on the replica) */
    {101, 'a', 100, 0, NULL},              /* its array type */
    {23, 'b', 0, 0, NULL},
    {6000, 'b', 0, 0, NULL},
};

static const apply_type_desc *lookup(void *ctx, uint32_t oid)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].oid == oid)
            return &TYPES[i];
    return NULL;
}

static void test_record_field_oids_become_the_replica_types(void)
{
    /* ROW(7, 'ok') from a source where the enum is oid 5000 */
    uint8_t v[] = {0, 0, 0, 2, 0, 0,    0,    23, 0, 0, 0, 4,   0,
                   0, 0, 7, 0, 0, 0x13, 0x88, 0,  0, 0, 2, 'o', 'k'};
    EXPECT_TRUE(apply_rewrite_oids(v, sizeof v, 100, lookup, NULL));
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
    EXPECT_TRUE(apply_rewrite_oids(v, sizeof v, 101, lookup, NULL));
    const uint8_t elem[] = {0, 0, 0, 100}, att[] = {0, 0, 0x17, 0x70};
    EXPECT_EQ_MEM(elem, 4, v + 8, 4);
    EXPECT_EQ_MEM(att, 4, v + 36, 4);
}

static void test_truncated_records_and_arrays_are_refused(void)
{
    uint8_t rec[] = {0, 0, 0, 2, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0};
    EXPECT_TRUE(!apply_rewrite_oids(rec, sizeof rec, 100, lookup, NULL));
    uint8_t arr[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1};
    EXPECT_TRUE(!apply_rewrite_oids(arr, sizeof arr, 101, lookup, NULL));
    uint8_t plain[] = {1, 2, 3};
    EXPECT_TRUE(apply_rewrite_oids(plain, sizeof plain, 23, lookup, NULL));
}

UNIT_MAIN(UNIT_CASE(test_quote_ident_doubles_quotes_and_always_quotes),
          UNIT_CASE(test_quote_ident_refuses_what_does_not_fit),
          UNIT_CASE(test_array_elemtype_is_rewritten_big_endian),
          UNIT_CASE(test_array_elemtype_refuses_a_short_value),
          UNIT_CASE(test_concurrently_is_dropped_only_from_index_ddl),
          UNIT_CASE(test_record_field_oids_become_the_replica_types),
          UNIT_CASE(test_array_of_records_is_rewritten_element_by_element),
          UNIT_CASE(test_truncated_records_and_arrays_are_refused))
