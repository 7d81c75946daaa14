/* TableRegex patterns through RE2: the semantics consumers rely on (an unanchored search
 * in the table name, anchors, classes, alternations) and the refusals that keep a hostile
 * pattern from costing the gateway memory or time. */
#include "core/saferegex.h"
#include "core/status.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_re(void *re)
{
    saferegex_free(re);
}

static saferegex *compile_ok(const char *p)
{
    saferegex *re = NULL;
    char err[256];
    int rc = saferegex_compile(p, strlen(p), &re, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s: %s", p, err);
    unit_defer(free_re, re);
    return re;
}

static bool search(const saferegex *re, const char *s)
{
    return saferegex_search(re, s, strlen(s));
}

static void test_a_pattern_is_searched_anywhere_in_the_name(void)
{
    const saferegex *re = compile_ok("ord");
    EXPECT_TRUE(search(re, "orders"));
    EXPECT_TRUE(search(re, "old_orders"));
    EXPECT_TRUE(!search(re, "users"));
}

static void test_anchors_classes_and_alternations_behave_as_in_posix_ere(void)
{
    const saferegex *re = compile_ok("^(users|orders)$");
    EXPECT_TRUE(search(re, "users"));
    EXPECT_TRUE(!search(re, "users2"));
    re = compile_ok("^t[0-9]+_[[:alpha:]]{2,3}$");
    EXPECT_TRUE(search(re, "t12_ab"));
    EXPECT_TRUE(!search(re, "t12_abcd"));
    re = compile_ok("ddl_logs|^a.c$");
    EXPECT_TRUE(search(re, "ddl_logs"));
    EXPECT_TRUE(search(re, "abc"));
    EXPECT_TRUE(!search(re, "abbc"));
}

static void test_names_with_any_bytes_are_matched_by_length(void)
{
    const saferegex *re = compile_ok("^caf\xc3\xa9$");
    EXPECT_TRUE(search(re, "caf\xc3\xa9"));
    EXPECT_TRUE(saferegex_search(re, "caf\xc3\xa9xyz", 5));
}

static void expect_refused(const char *p, const char *reason)
{
    saferegex *re = NULL;
    char err[256] = "";
    EXPECT_EQ_INT(PGC_ERR_INVALID, saferegex_compile(p, strlen(p), &re, err, sizeof err));
    EXPECT_TRUE(re == NULL);
    if (!strstr(err, reason))
        unit_fail(__FILE__, __LINE__, "refusal of %.60s says \"%s\", expected \"%s\"", p, err,
                  reason);
}

static void test_nested_counted_repetitions_are_refused(void)
{
    /* 26 bytes that took 11.6 s and 3.9 GB to compile with POSIX regcomp. */
    expect_refused("((a{1,255}){1,255}){1,255}", "invalid repetition size");
    expect_refused("(a{1,1000}){1,1000}", "invalid repetition size");
    expect_refused("a{1001}", "invalid repetition size");
}

static void test_a_pattern_whose_program_is_over_the_limit_is_refused(void)
{
    char p[4097] = "";
    while (strlen(p) + 13 < sizeof p)
        strcat(p, "[a-z]{1,1000}");
    expect_refused(p, "over the gateway's limit");
    p[0] = '\0';
    while (strlen(p) + 11 < sizeof p)
        strcat(p, "\\pL{1,1000}");
    expect_refused(p, "over the gateway's limit");
}

static void test_malformed_patterns_and_nul_bytes_are_refused(void)
{
    expect_refused("(unclosed", "missing )");
    expect_refused("a**", "bad repetition");
    saferegex *re = NULL;
    char err[128];
    EXPECT_EQ_INT(PGC_ERR_INVALID, saferegex_compile("a\0b", 3, &re, err, sizeof err));
}

static void test_a_backtracking_bomb_matches_in_linear_time(void)
{
    /* (a+)+$ over "aaa...b" is exponential for a backtracking engine; RE2 answers at once.
     * The check is the answer; the test's own deadline is the time bound. */
    const saferegex *re = compile_ok("^(a+)+$");
    char text[4097];
    memset(text, 'a', sizeof text - 2);
    text[sizeof text - 2] = 'b';
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < 100; i++)
        EXPECT_TRUE(!search(re, text));
}

UNIT_MAIN(UNIT_CASE(test_a_pattern_is_searched_anywhere_in_the_name),
          UNIT_CASE(test_anchors_classes_and_alternations_behave_as_in_posix_ere),
          UNIT_CASE(test_names_with_any_bytes_are_matched_by_length),
          UNIT_CASE(test_nested_counted_repetitions_are_refused),
          UNIT_CASE(test_a_pattern_whose_program_is_over_the_limit_is_refused),
          UNIT_CASE(test_malformed_patterns_and_nul_bytes_are_refused),
          UNIT_CASE(test_a_backtracking_bomb_matches_in_linear_time))
