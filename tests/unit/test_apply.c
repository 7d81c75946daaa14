/* The pure pieces of the replica apply engine: identifier quoting (every table and column
 * name from the log is hostile) and the element-type rewrite of binary arrays. */
#include "pg/apply.h"
#include "unit.h"

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
    uint8_t v[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1,
                   0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7};
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

UNIT_MAIN(UNIT_CASE(test_quote_ident_doubles_quotes_and_always_quotes),
          UNIT_CASE(test_quote_ident_refuses_what_does_not_fit),
          UNIT_CASE(test_array_elemtype_is_rewritten_big_endian),
          UNIT_CASE(test_array_elemtype_refuses_a_short_value))
