/* The gateway's resolver file: sections per URI, keys, comments, and every malformed
 * input refused with its line number. */
#include "core/acl.h"
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

static int authorize(const resolver_file *c, const char *uri, const char *id, const char *token)
{
    acl_peer p;
    const char *ids[] = {id};
    acl_peer_init(&p, ids, id ? 1 : 0, token);
    return resolver_file_authorize(c, uri, &p);
}

static void test_capture_lists_grant_identities_and_tokens_per_uri(void)
{
    char a[ACL_HASH_TEXT_LEN], text[600];
    acl_hash_token("tok-a", 5, a);
    snprintf(text, sizeof text,
             "[orders]\nsource = main\ncapture = alice\ncapture = %s\n"
             "[billing]\nsource = main\ncapture = bob\n[public]\nsource = main\n",
             a);
    resolver_file *c = parse_ok(text);
    EXPECT_EQ_INT(PGC_OK, authorize(c, "orders", "alice", NULL));
    EXPECT_EQ_INT(PGC_OK, authorize(c, "orders", NULL, "tok-a"));
    EXPECT_EQ_INT(PGC_OK, authorize(c, "public", NULL, NULL)); /* no list: open */
    /* A verified certificate or a known token: authenticated, so PERMISSION_DENIED ... */
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, authorize(c, "billing", "alice", NULL));
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, authorize(c, "billing", NULL, "tok-a"));
    /* ... and the same for a URI the file does not have: nothing tells it apart. */
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, authorize(c, "no-such-uri", "alice", NULL));
    /* No credentials, or a token nobody listed: UNAUTHENTICATED, existing or not. */
    EXPECT_EQ_INT(PGC_ERR_UNAUTHENTICATED, authorize(c, "orders", NULL, NULL));
    EXPECT_EQ_INT(PGC_ERR_UNAUTHENTICATED, authorize(c, "orders", NULL, "tok-b"));
    EXPECT_EQ_INT(PGC_ERR_UNAUTHENTICATED, authorize(c, "no-such-uri", NULL, "tok-b"));
    const char *first = NULL;
    EXPECT_EQ_UINT(1, resolver_file_open_uris(c, &first));
    EXPECT_EQ_STR("public", first);
    resolver_file_free(c);
}

static void test_a_file_without_capture_lists_grants_everyone(void)
{
    resolver_file *c = parse_ok("[orders]\nsource = main\n");
    EXPECT_EQ_INT(PGC_OK, authorize(c, "orders", NULL, NULL));
    EXPECT_EQ_INT(PGC_OK, authorize(c, "no-such-uri", NULL, NULL)); /* lookup says NOT_FOUND */
    resolver_file_free(c);
}

static void test_dump_schemas_and_bad_capture_lists(void)
{
    resolver_file *c = parse_ok("[a]\nsource = main\ndump_schemas = public, sales\n");
    pgc_uri_target t;
    EXPECT_EQ_INT(PGC_OK, resolver_file_lookup(c, "a", &t));
    EXPECT_EQ_STR("public, sales", t.dump_schemas);
    resolver_file_free(c);
    expect_refused("[a]\nsource = main\ndump_schemas = public,,x\n", "line 3: dump_schemas");
    expect_refused("[a]\nsource = main\ncapture = sha256:12\n", "line 3: capture");
    expect_refused("[a]\nsource = main\ncapture = alice,\n", "line 3: capture");
}

UNIT_MAIN(UNIT_CASE(test_resolver_file_reads_sections_keys_and_comments),
          UNIT_CASE(test_capture_lists_grant_identities_and_tokens_per_uri),
          UNIT_CASE(test_a_file_without_capture_lists_grants_everyone),
          UNIT_CASE(test_dump_schemas_and_bad_capture_lists),
          UNIT_CASE(test_resolver_file_refuses_malformed_files_with_the_line),
          UNIT_CASE(test_resolver_file_names_are_nats_tokens),
          UNIT_CASE(test_resolver_file_load_reports_unreadable_files))
