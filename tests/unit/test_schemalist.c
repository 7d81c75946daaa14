/* Which schemas a URI's dumps may read. */
#include "core/schemalist.h"
#include "core/status.h"
#include "harness/runner.h"

#include <string.h>

static void test_default_keeps_out_catalogs_and_pgcapture(void)
{
    EXPECT_TRUE(schemalist_allows(NULL, "public"));
    EXPECT_TRUE(schemalist_allows("", "sales"));
    EXPECT_TRUE(schemalist_allows(NULL, "pgcapture_app")); /* only the schema itself */
    EXPECT_TRUE(!schemalist_allows(NULL, "pg_catalog"));
    EXPECT_TRUE(!schemalist_allows(NULL, "information_schema"));
    EXPECT_TRUE(!schemalist_allows(NULL, "pgcapture"));
    EXPECT_TRUE(!schemalist_allows(NULL, "pg_toast"));
    EXPECT_TRUE(!schemalist_allows(NULL, "pg_temp_3"));
}

static void test_a_list_allows_exactly_its_names(void)
{
    EXPECT_TRUE(schemalist_allows("public, sales", "sales"));
    EXPECT_TRUE(schemalist_allows("public, sales", "public"));
    EXPECT_TRUE(!schemalist_allows("public, sales", "Sales"));
    EXPECT_TRUE(!schemalist_allows("public, sales", "sale"));
    EXPECT_TRUE(!schemalist_allows("public", "pg_catalog"));
    EXPECT_TRUE(schemalist_allows("pg_catalog", "pg_catalog"));
    EXPECT_TRUE(schemalist_allows("*", "pg_catalog"));
}

static void test_empty_names_are_refused(void)
{
    char err[200];
    EXPECT_EQ_INT(PGC_OK, schemalist_check("public, sales", err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_CONFIG, schemalist_check("public,,sales", err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_CONFIG, schemalist_check("public, ", err, sizeof err));
}

UNIT_MAIN(UNIT_CASE(test_default_keeps_out_catalogs_and_pgcapture),
          UNIT_CASE(test_a_list_allows_exactly_its_names), UNIT_CASE(test_empty_names_are_refused))
