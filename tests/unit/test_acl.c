/* Principal lists: identities, token hashes, the wildcard, and refusals of malformed
 * hashes. */
#include "core/acl.h"
#include "core/status.h"
#include "harness/runner.h"

#include <stdio.h>
#include <string.h>

static void destroy(void *a)
{
    acl_destroy(a);
}

static acl *list(const char *s)
{
    acl *a = acl_create();
    char err[256];
    if (acl_add_list(a, s, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s: %s", s, err);
    unit_defer(destroy, a);
    return a;
}

static void test_identities_match_exactly_any_of_the_peers(void)
{
    const acl *a = list("alice, gw1.example.com");
    EXPECT_EQ_UINT(2, acl_count(a));
    const char *ids[] = {"bob", "gw1.example.com"};
    acl_peer p;
    acl_peer_init(&p, ids, 2, NULL);
    EXPECT_TRUE(acl_allows(a, &p));
    const char *other[] = {"Alice", "alice2", "gw1.example.co"};
    acl_peer_init(&p, other, 3, NULL);
    EXPECT_TRUE(!acl_allows(a, &p));
    acl_peer_init(&p, NULL, 0, NULL);
    EXPECT_TRUE(!acl_allows(a, &p));
}

static void test_tokens_match_by_their_hash(void)
{
    char h[ACL_HASH_TEXT_LEN], line[200];
    acl_hash_token("s3cret", 6, h);
    EXPECT_EQ_STR("sha256:1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0", h);
    snprintf(line, sizeof line, "alice,%s", h);
    const acl *a = list(line);
    acl_peer p;
    acl_peer_init(&p, NULL, 0, "s3cret");
    EXPECT_TRUE(acl_allows(a, &p));
    EXPECT_TRUE(acl_knows_token(a, &p));
    acl_peer_init(&p, NULL, 0, "s3cret2");
    EXPECT_TRUE(!acl_allows(a, &p));
    EXPECT_TRUE(!acl_knows_token(a, &p));
    /* The hash itself is not a token. */
    acl_peer_init(&p, NULL, 0, h);
    EXPECT_TRUE(!acl_allows(a, &p));
}

static void test_wildcard_lets_anyone_in(void)
{
    const acl *a = list("*");
    acl_peer p;
    acl_peer_init(&p, NULL, 0, NULL);
    EXPECT_TRUE(acl_allows(a, &p));
}

static void expect_refused(const char *s)
{
    acl *a = acl_create();
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_CONFIG, acl_add_list(a, s, err, sizeof err));
    acl_destroy(a);
}

static void test_malformed_lists_are_refused(void)
{
    expect_refused("alice,,bob");
    expect_refused("sha256:abc");
    expect_refused("sha256:1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcbaZ");
    expect_refused("");
}

UNIT_MAIN(UNIT_CASE(test_identities_match_exactly_any_of_the_peers),
          UNIT_CASE(test_tokens_match_by_their_hash), UNIT_CASE(test_wildcard_lets_anyone_in),
          UNIT_CASE(test_malformed_lists_are_refused))
