/* The pure pieces of the replica applier: which DDL loses its CONCURRENTLY to run inside
 * the replica's transaction. (Its identifier quoting is tested with the string buffer,
 * its type OID rewriting in test_oidrewrite.) */
#include "harness/runner.h"
#include "roles/replica/apply_private.h"

#include <stdlib.h>
#include <string.h>

static void expect_rewrite(const char *in, const char *want)
{
    char *got = apply_ddl_without_concurrently(in);
    if (!want) {
        if (got)
            unit_fail(__FILE__, __LINE__, "\"%s\": expected no rewrite, got \"%s\"", in, got);
        return;
    }
    if (!got || strcmp(got, want) != 0) {
        unit_fail(__FILE__, __LINE__, "\"%s\": expected \"%s\", got \"%s\"", in, want,
                  got ? got : "(none)");
    }
    free(got);
}

static void test_concurrently_is_dropped_only_from_index_ddl(void)
{
    expect_rewrite("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX  i ON t (a)");
    expect_rewrite("create unique index concurrently if not exists i on t (a)",
                   "create unique index  if not exists i on t (a)");
    expect_rewrite("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX  IF EXISTS i");
    expect_rewrite("REINDEX (VERBOSE) TABLE CONCURRENTLY t", "REINDEX (VERBOSE) TABLE  t");
    expect_rewrite("CREATE INDEX i ON t (a)", NULL);
    expect_rewrite("CREATE INDEX concurrently_named ON t (a)", NULL);
    expect_rewrite("CREATE TABLE concurrently (a int)", NULL);
    expect_rewrite("COMMENT ON INDEX i IS 'CONCURRENTLY'", NULL);
    expect_rewrite("", NULL);
}

UNIT_MAIN(UNIT_CASE(test_concurrently_is_dropped_only_from_index_ddl))
