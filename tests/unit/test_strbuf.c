/* The string buffer: it grows as needed, stays NUL-terminated, quotes SQL identifiers and
 * JSON strings the way PostgreSQL does (names and values from the log are hostile), and
 * hands its bytes over. */
#include "harness/runner.h"

#include "core/status.h"
#include "core/strbuf.h"

#include <stdlib.h>
#include <string.h>

static void test_sql_ident_doubles_quotes_and_always_quotes(void)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_sql_ident(&sb, "plain");
    EXPECT_EQ_STR("\"plain\"", sb.data);
    EXPECT_EQ_UINT(7, sb.len);
    strbuf_sql_ident(&sb, "we\"ird; DROP");
    EXPECT_EQ_STR("\"plain\"\"we\"\"ird; DROP\"", sb.data);
    strbuf_free(&sb);
    strbuf_sql_ident(&sb, "\"\"\"");
    EXPECT_EQ_STR("\"\"\"\"\"\"\"\"", sb.data);
    strbuf_free(&sb);
    strbuf_sql_ident(&sb, "");
    EXPECT_EQ_STR("\"\"", sb.data);
    strbuf_free(&sb);
}

static void test_appends_grow_past_the_first_allocation(void)
{
    strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&sb, "%03d,", i);
    EXPECT_EQ_UINT(4000, sb.len);
    EXPECT_EQ_UINT(4000, strlen(sb.data));
    EXPECT_TRUE(memcmp(sb.data + 3996, "999,", 4) == 0);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    strbuf_printf(&sb, "[%s]", big); /* longer than printf's first attempt */
    EXPECT_EQ_UINT(4000 + 301, sb.len);
    EXPECT_EQ_INT(']', sb.data[sb.len - 1]);
    EXPECT_EQ_INT(PGC_OK, strbuf_status(&sb));
    strbuf_free(&sb);
}

static void test_binary_appends_keep_their_nul_bytes(void)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "a\0b", 3);
    strbuf_putc(&sb, '\0');
    EXPECT_EQ_UINT(4, sb.len);
    EXPECT_EQ_MEM("a\0b\0", 4, sb.data, sb.len);
    EXPECT_EQ_INT('\0', sb.data[sb.len]);
    strbuf_free(&sb);
}

static void test_json_string_escapes_as_postgres_does(void)
{
    strbuf sb;
    strbuf_init(&sb);
    const char in[] = "q\"b\\n\n\x01\x1f\xc3\xa9";
    strbuf_json_string(&sb, in, sizeof in - 1);
    EXPECT_EQ_STR("\"q\\\"b\\\\n\\n\\u0001\\u001f\xc3\xa9\"", sb.data);
    strbuf_free(&sb);
}

static void test_take_hands_over_the_bytes_and_resets(void)
{
    strbuf sb;
    strbuf_init(&sb);
    size_t len = 99;
    char *empty = strbuf_take(&sb, &len);
    EXPECT_TRUE(empty != NULL);
    EXPECT_EQ_UINT(0, len);
    EXPECT_EQ_STR("", empty);
    free(empty);
    strbuf_puts(&sb, "abc");
    char *s = strbuf_take(&sb, &len);
    EXPECT_EQ_STR("abc", s);
    EXPECT_EQ_UINT(3, len);
    EXPECT_TRUE(sb.data == NULL && sb.len == 0);
    free(s);
}

UNIT_MAIN(UNIT_CASE(test_sql_ident_doubles_quotes_and_always_quotes),
          UNIT_CASE(test_appends_grow_past_the_first_allocation),
          UNIT_CASE(test_binary_appends_keep_their_nul_bytes),
          UNIT_CASE(test_json_string_escapes_as_postgres_does),
          UNIT_CASE(test_take_hands_over_the_bytes_and_resets))
