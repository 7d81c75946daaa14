/* The controller's ACL file: verbs per URI and for every URI, dump schemas, statuses, and
 * malformed files refused with their line. */
#include "core/status.h"
#include "harness/runner.h"
#include "roles/controller/controller_acl.h"

#include <stdio.h>
#include <string.h>

static controller_acl *parse_ok(const char *text)
{
    controller_acl *a = NULL;
    char err[300];
    if (controller_acl_parse(text, strlen(text), &a, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s", err);
    return a;
}

static int check(const controller_acl *a, controller_verb v, const char *uri, const char *id,
                 const char *token)
{
    const char *ids[] = {id};
    acl_peer p;
    acl_peer_init(&p, ids, id ? 1 : 0, token);
    return controller_acl_check(a, v, uri, &p);
}

static void test_verbs_are_granted_per_uri_and_for_every_uri(void)
{
    char h[ACL_HASH_TEXT_LEN], text[600];
    acl_hash_token("tok", 3, h);
    snprintf(text, sizeof text,
             "# controller ACL\n[*]\npull = gw1, gw2\nstatus = ops\n"
             "[app]\nschedule = ops\nschedule = %s\ndump_schemas = public, pg_catalog\n",
             h);
    controller_acl *a = parse_ok(text);
    EXPECT_EQ_INT(PGC_OK, check(a, CONTROLLER_VERB_PULL, "app", "gw2", NULL));
    EXPECT_EQ_INT(PGC_OK, check(a, CONTROLLER_VERB_PULL, "other", "gw1", NULL));
    EXPECT_EQ_INT(PGC_OK, check(a, CONTROLLER_VERB_SCHEDULE, "app", "ops", NULL));
    EXPECT_EQ_INT(PGC_OK, check(a, CONTROLLER_VERB_SCHEDULE, "app", NULL, "tok"));
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, check(a, CONTROLLER_VERB_SCHEDULE, "other", "ops", NULL));
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, check(a, CONTROLLER_VERB_SCHEDULE, "app", "gw1", NULL));
    EXPECT_EQ_INT(PGC_ERR_PERMISSION, check(a, CONTROLLER_VERB_STATUS, "app", NULL, "tok"));
    EXPECT_EQ_INT(PGC_ERR_UNAUTHENTICATED, check(a, CONTROLLER_VERB_SCHEDULE, "app", NULL, NULL));
    EXPECT_EQ_INT(PGC_ERR_UNAUTHENTICATED,
                  check(a, CONTROLLER_VERB_SCHEDULE, "app", NULL, "other-token"));
    EXPECT_EQ_STR("public, pg_catalog", controller_acl_dump_schemas(a, "app"));
    EXPECT_TRUE(controller_acl_dump_schemas(a, "other") == NULL);
    controller_acl_free(a);
}

static void test_without_an_acl_everything_is_allowed(void)
{
    EXPECT_EQ_INT(PGC_OK, check(NULL, CONTROLLER_VERB_SCHEDULE, "app", NULL, NULL));
    EXPECT_TRUE(controller_acl_dump_schemas(NULL, "app") == NULL);
}

static void expect_refused(const char *text, const char *want)
{
    controller_acl *a = NULL;
    char err[300] = "";
    EXPECT_EQ_INT(PGC_ERR_CONFIG, controller_acl_parse(text, strlen(text), &a, err, sizeof err));
    if (!strstr(err, want))
        unit_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, want);
}

static void test_malformed_files_are_refused_with_the_line(void)
{
    expect_refused("schedule = ops\n", "line 1: key before any [section]");
    expect_refused("[app]\nschedule = ops\nfrobnicate = 1\n", "line 3: unknown key");
    expect_refused("[app]\n[app]\n", "line 2: section [app] repeated");
    expect_refused("[app]\nschedule = sha256:00\n", "line 2: schedule:");
    expect_refused("[app]\ndump_schemas = a,,b\n", "line 2: dump_schemas");
    expect_refused("[]\n", "line 1:");
}

UNIT_MAIN(UNIT_CASE(test_verbs_are_granted_per_uri_and_for_every_uri),
          UNIT_CASE(test_without_an_acl_everything_is_allowed),
          UNIT_CASE(test_malformed_files_are_refused_with_the_line))
