/* What differs between PostgreSQL majors, on the run's source and replica servers: stored
 * generated columns, which PostgreSQL 18 publishes (the agent asks for them there:
 * publish_generated_columns) and earlier majors leave out; either way the replica computes
 * its own and the applier never writes them. */
#include "codec/bigendian.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/streamread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *digest_sql = "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' "
                                "ORDER BY x.id), '')) FROM gen x";

typedef struct seen {
    int inserts, with_total;
    long long total_of_id2;
} seen;

static void scan_gen(log_pos pos, const Pgcapture__Message *m, void *arg)
{
    (void)pos;
    seen *s = arg;
    if (m->type_case != PGCAPTURE__MESSAGE__TYPE_CHANGE || strcmp(m->change->table, "gen") != 0 ||
        m->change->op != PGCAPTURE__CHANGE__OPERATION__INSERT)
        return;
    s->inserts++;
    const Pgcapture__Field *total = stream_field(m->change, "total", 0);
    const Pgcapture__Field *id = stream_field(m->change, "id", 0);
    if (!total)
        return;
    s->with_total++;
    if (id && id->binary.len == 4 && id->binary.data[3] == 2 &&
        total->value_case == PGCAPTURE__FIELD__VALUE_BINARY && total->binary.len == 8) {
        s->total_of_id2 = (long long)bigendian_get64(total->binary.data);
    }
}

static void test_generated_columns_reach_consumers_on_18_and_replicas_compute_them(void)
{
    char src[512], rep[512], name[64], agent_log[512], replica_log[512];
    harness_db_create(true, src, sizeof src);
    harness_replica_db_create(true, rep, sizeof rep);
    harness_unique_name(name, sizeof name);
    PGconn *s = harness_connect(src), *r = harness_connect(rep);
    int major = harness_server_major(src);
    harness_agent_start(src, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(src, name, agent_log, 60000);
    const char *dir = getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp";
    snprintf(replica_log, sizeof replica_log, "%s/replica-%s.log", dir, name);
    const char *apply[] = {"replica", "--replica", rep,           "--nats-url", harness_nats_url(),
                           "--name",  name,        "--log-level", "debug",      NULL};
    harness_spawn(replica_log, apply);
    /* The table comes to the replica as replayed DDL, generated column included. */
    harness_exec(s, "CREATE TABLE gen (id int PRIMARY KEY, price bigint, qty bigint, "
                    "total bigint GENERATED ALWAYS AS (price * qty) STORED, note text)");
    harness_exec(s, "INSERT INTO gen (id, price, qty, note) SELECT g, g * 10, g, 'n' FROM "
                    "generate_series(1, 50) g");
    harness_exec(s, "UPDATE gen SET qty = qty + 1 WHERE id % 2 = 0");
    harness_exec(s, "UPDATE gen SET note = 'only note' WHERE id = 3");
    harness_exec(s, "DELETE FROM gen WHERE id = 5");
    char *want = harness_query_value(s, digest_sql);
    long long deadline = harness_now_ms() + 60000;
    char *got = NULL;
    for (;;) {
        PGresult *res = PQexec(r, digest_sql);
        bool equal =
            PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), want) == 0;
        PQclear(res);
        if (equal)
            break;
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(replica_log, 20);
            got = harness_query_value(r, "SELECT to_regclass('gen') IS NOT NULL");
            unit_fail(__FILE__, __LINE__, "replica did not converge (table there: %s)", got);
        }
        harness_sleep_ms(100);
    }
    /* The replica's own column is generated too (its DDL was replayed, not a copy). */
    EXPECT_EQ_STR("s", harness_query_value(r, "SELECT attgenerated FROM pg_attribute WHERE "
                                              "attrelid = 'gen'::regclass AND attname = 'total'"));
    seen sn = {0};
    stream_scan(name, scan_gen, &sn);
    EXPECT_EQ_INT(50, sn.inserts);
    if (major >= 18) {
        EXPECT_EQ_INT(50, sn.with_total);
        EXPECT_EQ_INT(40, sn.total_of_id2); /* 20 * 2 */
    } else {
        EXPECT_EQ_INT(0, sn.with_total);
    }
    printf("MEASURE versions: PostgreSQL %d source publishes generated columns: %s\n", major,
           sn.with_total ? "yes" : "no");
}

UNIT_MAIN(UNIT_CASE(test_generated_columns_reach_consumers_on_18_and_replicas_compute_them))
