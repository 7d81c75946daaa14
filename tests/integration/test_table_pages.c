/* A table's size in pages, as `pgcapture schedule` plans dumps with it: the larger of
 * relpages and the real size, and the relations it must refuse, told apart. */
#include "core/status.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "pg/table_pages.h"

#include <string.h>

static void test_table_pages_counts_pages_past_relpages(void)
{
    char db[512], err[512] = "";
    harness_db_create(false, db, sizeof db);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int, pad text)");
    uint64_t pages = 99;
    EXPECT_EQ_INT(PGC_OK, table_pages_read(db, "public", "t", &pages, err, sizeof err));
    EXPECT_EQ_UINT(0, pages);
    /* Never analyzed: relpages says 0 (or -1), the relation has real pages. */
    harness_exec(c, "INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, 2000) g");
    long long real =
        harness_query_int(c, "SELECT pg_relation_size('t') / current_setting('block_size')::int8");
    EXPECT_TRUE(real > 10);
    EXPECT_EQ_INT(PGC_OK, table_pages_read(db, "public", "t", &pages, err, sizeof err));
    EXPECT_EQ_UINT((unsigned long long)real, pages);
    harness_exec(c, "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t");
    EXPECT_EQ_INT(PGC_OK, table_pages_read(db, "public", "mv", &pages, err, sizeof err));
    EXPECT_EQ_UINT((unsigned long long)real, pages);
}

static void test_table_pages_refuses_what_has_no_pages_of_its_own(void)
{
    char db[512], err[512] = "";
    harness_db_create(false, db, sizeof db);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE p (id int) PARTITION BY RANGE (id)");
    harness_exec(c, "CREATE VIEW v AS SELECT 1 AS one");
    uint64_t pages = 0;
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND,
                  table_pages_read(db, "public", "nope", &pages, err, sizeof err));
    EXPECT_EQ_STR("no table public.nope on the replica", err);
    EXPECT_EQ_INT(PGC_ERR_INVALID, table_pages_read(db, "public", "p", &pages, err, sizeof err));
    EXPECT_TRUE(strstr(err, "schedule its partitions instead") != NULL);
    EXPECT_EQ_INT(PGC_ERR_INVALID, table_pages_read(db, "public", "v", &pages, err, sizeof err));
    EXPECT_EQ_STR("public.v is not a table with storage (relkind v)", err);
}

static void test_table_pages_reports_a_connection_failure_without_the_conninfo(void)
{
    char err[512] = "";
    uint64_t pages = 0;
    const char *conninfo = "host=127.0.0.1 port=1 dbname=x password=secret connect_timeout=2";
    EXPECT_EQ_INT(PGC_ERR_CONN, table_pages_read(conninfo, "public", "t", &pages, err, sizeof err));
    EXPECT_TRUE(strncmp(err, "cannot connect to the replica: ", 31) == 0);
    EXPECT_TRUE(strstr(err, "secret") == NULL);
    EXPECT_TRUE(err[strlen(err) - 1] != '\n');
}

UNIT_MAIN(UNIT_CASE(test_table_pages_counts_pages_past_relpages),
          UNIT_CASE(test_table_pages_refuses_what_has_no_pages_of_its_own),
          UNIT_CASE(test_table_pages_reports_a_connection_failure_without_the_conninfo))
