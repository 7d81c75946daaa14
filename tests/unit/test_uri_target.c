/* The setters a resolver fills a pgc_uri_target with: each copies its value, "" resets it,
 * and a value that does not fit is refused whole (never cut: a cut source name would read
 * another source's log), leaving the target as it was. */
#include "roles/gateway/uri_target.h"
#include "harness/runner.h"

#include <string.h>

static void test_uri_target_setters_copy_and_reset_values(void)
{
    pgc_uri_target t;
    memset(&t, 0, sizeof t);
    char value[32] = "main";
    char err[128] = "";
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_source(&t, value, err, sizeof err));
    strcpy(value, "changed"); /* the target holds its own copy */
    EXPECT_EQ_STR("main", t.source);
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_durable(&t, "orders", err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_nats_url(&t, "nats://10.0.0.1:4222", NULL, 0));
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_replica(&t, "host=r1 dbname=app", NULL, 0));
    EXPECT_EQ_STR("orders", t.durable);
    EXPECT_EQ_STR("nats://10.0.0.1:4222", t.nats_url);
    EXPECT_EQ_STR("host=r1 dbname=app", t.replica);
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_durable(&t, "", NULL, 0));
    EXPECT_EQ_STR("", t.durable);
}

static void test_uri_target_refuses_values_that_do_not_fit_and_null(void)
{
    pgc_uri_target t;
    memset(&t, 0, sizeof t);
    char err[128] = "";
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_source(&t, "main", NULL, 0));
    char longest[PGC_GATEWAY_NAME_MAX + 1];
    memset(longest, 'a', sizeof longest - 1);
    longest[PGC_GATEWAY_NAME_MAX] = '\0';
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, pgc_uri_target_set_source(&t, longest, err, sizeof err));
    EXPECT_EQ_STR("uri target: source of 128 bytes, at most 127", err);
    EXPECT_EQ_STR("main", t.source);
    longest[PGC_GATEWAY_NAME_MAX - 1] = '\0'; /* 127 bytes fit */
    EXPECT_EQ_INT(PGC_OK, pgc_uri_target_set_source(&t, longest, NULL, 0));
    EXPECT_EQ_UINT(PGC_GATEWAY_NAME_MAX - 1, strlen(t.source));
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgc_uri_target_set_replica(&t, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgc_uri_target_set_nats_url(NULL, "nats://x", NULL, 0));
}

UNIT_MAIN(UNIT_CASE(test_uri_target_setters_copy_and_reset_values),
          UNIT_CASE(test_uri_target_refuses_values_that_do_not_fit_and_null))
