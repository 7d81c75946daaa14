/* The gateway's resolver file: sections per URI, keys, comments, and every malformed
 * input refused with its line number. */
#include "core/status.h"
#include "roles/gateway/resolver_file.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static resolver_file *parse_ok(const char *text)
{
    resolver_file *c = NULL;
    char err[256] = "";
    int rc = resolver_file_parse(text, strlen(text), &c, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "parse failed: %s", err);
    return c;
}

static void expect_refused(const char *text, const char *want)
{
    resolver_file *c = NULL;
    char err[256] = "";
    int rc = resolver_file_parse(text, strlen(text), &c, err, sizeof err);
    if (rc == PGC_OK) {
        resolver_file_free(c);
        unit_fail(__FILE__, __LINE__, "accepted: %s", text);
    }
    EXPECT_EQ_INT(PGC_ERR_CONFIG, rc);
    if (!strstr(err, want))
        unit_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, want);
}

static void test_resolver_file_reads_sections_keys_and_comments(void)
{
    resolver_file *c =
        parse_ok("# a comment\n; another\n\n[orders-consumer]\n  source = main \r\n"
                 "nats_url = nats://10.0.0.1:4222\ndurable = orders\n"
                 "replica = host=r1 dbname=app password=x=y\n[billing]\nsource=s2\n");
    EXPECT_EQ_UINT(2, resolver_file_count(c));
    pgc_uri_target t;
    EXPECT_EQ_INT(PGC_OK, resolver_file_lookup(c, "orders-consumer", &t));
    EXPECT_EQ_STR("main", t.source);
    EXPECT_EQ_STR("nats://10.0.0.1:4222", t.nats_url);
    EXPECT_EQ_STR("orders", t.durable);
    EXPECT_EQ_STR("host=r1 dbname=app password=x=y", t.replica);
    EXPECT_EQ_INT(PGC_OK, resolver_file_lookup(c, "billing", &t));
    EXPECT_EQ_STR("s2", t.source);
    EXPECT_EQ_STR("", t.durable);
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND, resolver_file_lookup(c, "nope", &t));
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND, resolver_file_lookup(c, "Billing", &t));
    resolver_file_free(c);
}

static void test_resolver_file_refuses_malformed_files_with_the_line(void)
{
    expect_refused("source = main\n", "line 1: key before any [uri]");
    expect_refused("[a]\nsource = main\nbogus = 1\n", "line 3: unknown key");
    expect_refused("[a]\nsource = main\n[a]\nsource = x\n", "line 3: uri \"a\" repeated");
    expect_refused("[a]\nnats_url = x\n", "uri \"a\" has no source");
    expect_refused("[a]\nsource = ma.in\n", "line 2: source");
    expect_refused("[a]\nsource = main\nsource = other\n", "given twice");
    expect_refused("[a]\njust words\n", "line 2: expected key = value");
    expect_refused("[]\n", "line 1");
    expect_refused("[a\n", "line 1");
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char text[800];
    snprintf(text, sizeof text, "[a]\nsource = main\nnats_url = %s\n", big);
    expect_refused(text, "line 3: nats_url longer than");
    resolver_file *c = NULL;
    EXPECT_EQ_INT(PGC_ERR_CONFIG, resolver_file_parse("[a]\0x", 5, &c, NULL, 0));
}

static void test_resolver_file_names_are_nats_tokens(void)
{
    resolver_file_free(parse_ok("[a]\nsource = main_1-a\ndurable = Orders-2\n"));
    expect_refused("[a]\nsource = a*\n", "line 2: source \"a*\" must be letters");
    expect_refused("[a]\nsource = main\ndurable = a>\n", "line 3: durable \"a>\" must be letters");
    expect_refused("[a]\nsource = main\ndurable = a b\n", "line 3: durable");
}

static void test_resolver_file_load_reports_unreadable_files(void)
{
    resolver_file *c = NULL;
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_IO, resolver_file_load("/nonexistent/gw.conf", &c, err, sizeof err));
    EXPECT_TRUE(strstr(err, "/nonexistent/gw.conf") != NULL);
    char path[] = "/tmp/pgc-resolver_file.XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    const char *text = "[u]\nsource = main\n";
    EXPECT_EQ_INT((long long)strlen(text), write(fd, text, strlen(text)));
    close(fd);
    EXPECT_EQ_INT(PGC_OK, resolver_file_load(path, &c, err, sizeof err));
    EXPECT_EQ_UINT(1, resolver_file_count(c));
    resolver_file_free(c);
    unlink(path);
}

UNIT_MAIN(UNIT_CASE(test_resolver_file_reads_sections_keys_and_comments),
          UNIT_CASE(test_resolver_file_refuses_malformed_files_with_the_line),
          UNIT_CASE(test_resolver_file_names_are_nats_tokens),
          UNIT_CASE(test_resolver_file_load_reports_unreadable_files))
