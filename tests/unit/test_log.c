/* Log lines: key=value fields quoted and escaped so no value can end the line or forge a
 * key, the JSON format one valid object per line, levels filtering. */
#include "harness/runner.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void restore(void *unused)
{
    (void)unused;
    log_set_format(LOG_FORMAT_TEXT);
    log_set_level(LOG_LEVEL_INFO);
    log_set_component("pgcapture");
    log_set_fd(2);
}

static const char *tail(const char *line)
{
    const char *p = strstr(line, "test: ");
    EXPECT_TRUE(p != NULL);
    return p + 6;
}

static void test_text_fields_keep_their_shape(void)
{
    unit_defer(restore, NULL);
    log_set_component("test");
    char buf[1024];
    log_format_line(buf, sizeof buf, LOG_LEVEL_INFO, "slot created",
                    "slot=%s lsn=%X/%X count=%llu table=%s.%s", "pgcapture_app", 0x1u, 0x6B3748u,
                    42ULL, "public", "users");
    EXPECT_EQ_STR("slot created slot=pgcapture_app lsn=1/6B3748 count=42 table=public.users",
                  tail(buf));
    EXPECT_TRUE(strncmp(buf + 24, " info  test: ", 13) == 0);
}

static void test_quoted_values_cannot_forge_a_line_or_a_key(void)
{
    unit_defer(restore, NULL);
    log_set_component("test");
    char buf[1024];
    log_format_line(buf, sizeof buf, LOG_LEVEL_WARN, "requeued", "uri=\"%s\" reason=\"%s\"",
                    "app\" level=error", "bad\nFAKE 2024 error agent: pwned\r\t\x01");
    EXPECT_EQ_STR("requeued uri=\"app\\\" level=error\" "
                  "reason=\"bad\\nFAKE 2024 error agent: pwned\\r\\t\\x01\"",
                  tail(buf));
    EXPECT_TRUE(strchr(buf, '\n') == NULL);
}

static void test_unquoted_values_get_quotes_when_they_need_them(void)
{
    unit_defer(restore, NULL);
    log_set_component("test");
    char buf[1024];
    log_format_line(buf, sizeof buf, LOG_LEVEL_INFO, "x", "a=%s b=%s c=%s d=%d", "two words", "k=v",
                    "", -3);
    EXPECT_EQ_STR("x a=\"two words\" b=\"k=v\" c=\"\" d=-3", tail(buf));
}

static void test_json_is_one_object_with_typed_fields(void)
{
    unit_defer(restore, NULL);
    log_set_component("test");
    log_set_format(LOG_FORMAT_JSON);
    char buf[1024];
    log_format_line(buf, sizeof buf, LOG_LEVEL_ERROR, "cannot \"serve\"",
                    "listen=%s port=%d error=\"%s\" lsn=%X/%X width=%.*s pct=%%%d", "127.0.0.1:1",
                    10000, "line\nbreak \x02", 0x1u, 0xAu, 3, "abcdef", 5);
    const char *body = strstr(buf, "\",\"level\"");
    EXPECT_TRUE(strncmp(buf, "{\"time\":\"", 9) == 0 && body != NULL);
    EXPECT_EQ_STR("\",\"level\":\"error\",\"component\":\"test\",\"msg\":\"cannot \\\"serve\\\"\","
                  "\"listen\":\"127.0.0.1:1\",\"port\":10000,\"error\":\"line\\nbreak "
                  "\\u0002\",\"lsn\":\"1/A\",\"width\":\"abc\",\"pct\":\"%5\"}",
                  body);
    /* Python's json module (Debian's) parses it. */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import json,sys; json.loads(sys.argv[1])' '%s'",
             buf);
    EXPECT_EQ_INT(0, system(cmd));
}

static void test_levels_below_the_threshold_are_not_written(void)
{
    unit_defer(restore, NULL);
    int fds[2];
    EXPECT_EQ_INT(0, pipe(fds));
    log_set_fd(fds[1]);
    log_set_level(LOG_LEVEL_WARN);
    log_info("hidden", "k=%d", 1);
    log_debug("hidden", "k=%d", 2);
    log_warn("shown", "k=%d", 3);
    close(fds[1]);
    char out[512] = "";
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    EXPECT_TRUE(n > 0);
    out[n] = '\0';
    EXPECT_TRUE(strstr(out, "hidden") == NULL);
    EXPECT_TRUE(strstr(out, "shown k=3\n") != NULL);
    EXPECT_EQ_INT(LOG_FORMAT_JSON, log_format_parse("JSON"));
    EXPECT_EQ_INT(-1, log_format_parse("xml"));
    EXPECT_EQ_INT(LOG_LEVEL_TRACE, log_level_parse("trace"));
}

static void test_long_values_are_cut_within_the_line(void)
{
    unit_defer(restore, NULL);
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char buf[512];
    size_t n = log_format_line(buf, sizeof buf, LOG_LEVEL_INFO, "big", "v=%s", big);
    EXPECT_TRUE(n < sizeof buf);
    EXPECT_EQ_UINT(n, strlen(buf));
}

UNIT_MAIN(UNIT_CASE(test_text_fields_keep_their_shape),
          UNIT_CASE(test_quoted_values_cannot_forge_a_line_or_a_key),
          UNIT_CASE(test_unquoted_values_get_quotes_when_they_need_them),
          UNIT_CASE(test_json_is_one_object_with_typed_fields),
          UNIT_CASE(test_levels_below_the_threshold_are_not_written),
          UNIT_CASE(test_long_values_are_cut_within_the_line))
