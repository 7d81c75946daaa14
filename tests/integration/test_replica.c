/* The replica applier against real PostgreSQL and NATS: a source database, the agent, the
 * stream and a replica database of the one test cluster. Every case ends by comparing the
 * replica with the source table by table (a hash of the sorted rows computed by SQL on
 * both sides), after DML, DDL, TRUNCATE, crashes, conflicts and a bootstrap. */
#include "harness/runner.h"
#include "harness/fixtures.h"
#include "core/status.h"
#include "roles/replica/apply.h"

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct pair {
    char src[512], rep[512], name[64];
    char agent_log[512], replica_log[512];
    PGconn *s, *r;
    pid_t agent, replica;
} pair;

static void start_agent(pair *p)
{
    p->agent = harness_agent_start(p->src, p->name, NULL, p->agent_log, sizeof p->agent_log);
    harness_agent_wait_streaming(p->src, p->name, p->agent_log, 60000);
}

static pid_t start_replica(pair *p, const char *const *extra)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(p->replica_log, sizeof p->replica_log, "%s/replica-%s.log", dir && *dir ? dir : "/tmp",
             p->name);
    const char *args[32] = {"replica",
                            "--replica",
                            p->rep,
                            "--nats-url",
                            harness_nats_url(),
                            "--name",
                            p->name,
                            "--log-level",
                            "debug",
                            "--retry-max",
                            "500ms",
                            "--stats-interval",
                            "2s",
                            NULL};
    int n = 0;
    while (args[n])
        n++;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    p->replica = harness_spawn(p->replica_log, args);
    return p->replica;
}

/* Source and replica databases (both with the extension), the agent streaming. */
static void setup(pair *p, bool agent)
{
    memset(p, 0, sizeof *p);
    harness_db_create(true, p->src, sizeof p->src);
    harness_replica_db_create(true, p->rep, sizeof p->rep);
    harness_unique_name(p->name, sizeof p->name);
    p->s = harness_connect(p->src);
    p->r = harness_connect(p->rep);
    if (agent)
        start_agent(p);
}

static const char *table_hash_sql(const char *table, char *buf, size_t len)
{
    snprintf(buf, len,
             "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), "
             "'')) FROM %s x",
             table);
    return buf;
}

/* Hash of one table, or NULL when the table does not exist (yet). */
static char *try_hash(PGconn *c, const char *table)
{
    char sql[512];
    PGresult *r = PQexec(c, table_hash_sql(table, sql, sizeof sql));
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static bool tables_equal(pair *p, const char *const *tables, char *diff, size_t diff_len)
{
    for (int i = 0; tables[i]; i++) {
        char *a = try_hash(p->s, tables[i]), *b = try_hash(p->r, tables[i]);
        bool eq = a && b && !strcmp(a, b);
        if (!eq)
            snprintf(diff, diff_len, "table %s: source %s, replica %s", tables[i],
                     a ? a : "(missing)", b ? b : "(missing)");
        free(a);
        free(b);
        if (!eq)
            return false;
    }
    return true;
}

/* The replica has applied everything the source committed so far: every table equal. */
static void wait_converged(pair *p, const char *const *tables, int timeout_ms)
{
    char diff[512] = "";
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        if (tables_equal(p, tables, diff, sizeof diff))
            return;
        harness_sleep_ms(100);
    }
    harness_print_log_tail(p->agent_log, 20);
    harness_print_log_tail(p->replica_log, 40);
    unit_fail(__FILE__, __LINE__, "replica did not converge in %d ms: %s", timeout_ms, diff);
}

static void log_contains(const char *path, const char *needle, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        FILE *f = fopen(path, "r");
        if (f) {
            char line[4096];
            bool found = false;
            while (!found && fgets(line, sizeof line, f))
                found = strstr(line, needle) != NULL;
            fclose(f);
            if (found)
                return;
        }
        harness_sleep_ms(100);
    }
    harness_print_log_tail(path, 30);
    unit_fail(__FILE__, __LINE__, "log %s never said \"%s\"", path, needle);
}

/* The stored position of the replica's source; (0, 0) while it has none. */
static log_pos read_position(PGconn *c, const char *name)
{
    apply_position p;
    char err[256];
    if (apply_read_position(c, name, &p, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s", err);
    return p.pos;
}

/* ---- cases ---------------------------------------------------------------------------- */

static const char *const BASIC_TABLES[] = {"public.t_pk",    "public.t_comp",  "public.t_full",
                                           "public.t_toast", "public.t_types", NULL};

static void test_dml_ddl_truncate_and_user_types_apply_exactly(void)
{
    pair p;
    setup(&p, true);
    start_replica(&p, NULL);
    /* Every table comes to the replica through replayed DDL. */
    harness_exec(p.s, "CREATE TABLE t_pk (id int PRIMARY KEY, v text, n numeric)");
    harness_exec(p.s, "CREATE TABLE t_comp (a int, b text, v int, PRIMARY KEY (a, b))");
    harness_exec(p.s, "CREATE TABLE t_full (a int, b text)");
    harness_exec(p.s, "ALTER TABLE t_full REPLICA IDENTITY FULL");
    harness_exec(p.s, "CREATE TABLE t_toast (id int PRIMARY KEY, big text, small int)");
    harness_exec(p.s, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    harness_exec(p.s, "CREATE TYPE pt AS (x int, m mood, tags text[], ms mood[])");
    harness_exec(p.s, "CREATE TABLE t_types (id int PRIMARY KEY, m mood, ms mood[], ia int[], "
                      "j jsonb, ts timestamptz, u uuid, c pt, cs pt[])");
    harness_exec(p.s,
                 "INSERT INTO t_pk SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 200) g");
    harness_exec(p.s, "UPDATE t_pk SET v = 'upd' WHERE id % 3 = 0");
    harness_exec(p.s, "UPDATE t_pk SET id = id + 1000 WHERE id % 7 = 0"); /* key changes */
    harness_exec(p.s, "DELETE FROM t_pk WHERE id % 5 = 0");
    harness_exec(p.s,
                 "INSERT INTO t_comp SELECT g % 10, 'k' || g, g FROM generate_series(1, 100) g");
    harness_exec(p.s, "UPDATE t_comp SET b = b || 'x' WHERE a = 3");
    harness_exec(p.s, "DELETE FROM t_comp WHERE a = 4");
    harness_exec(p.s, "INSERT INTO t_full SELECT g % 5, 'dup' FROM generate_series(1, 20) g");
    harness_exec(p.s, "INSERT INTO t_full VALUES (NULL, NULL), (NULL, 'x')");
    harness_exec(p.s, "UPDATE t_full SET b = 'changed' WHERE a = 1");
    harness_exec(p.s, "DELETE FROM t_full WHERE ctid = (SELECT min(ctid) FROM t_full WHERE a = 2)");
    harness_exec(p.s, "UPDATE t_full SET b = 'was null' WHERE a IS NULL AND b IS NULL");
    harness_exec(p.s, "INSERT INTO t_toast SELECT g, repeat(md5(g::text), 4000), g FROM "
                      "generate_series(1, 5) g");
    harness_exec(p.s, "UPDATE t_toast SET small = small + 100"); /* big is unchanged TOAST */
    harness_exec(p.s, "UPDATE t_toast SET big = 'short' WHERE id = 2");
    /* A 2 MB value: its Message travels as several NATS messages (parts) joined again. */
    harness_exec(p.s, "INSERT INTO t_toast VALUES (100, repeat(md5('big'), 65536), 1)");
    /* 5 MiB that do not repeat, more than gRPC's default message limit: the applier reads
     * the log itself and takes any size the agent can write. */
    harness_exec(p.s, "INSERT INTO t_toast SELECT 101, string_agg(md5(i::text), '' ORDER BY i), "
                      "1 FROM generate_series(1, 163840) i");
    harness_exec(p.s, "INSERT INTO t_types VALUES (1, 'happy', '{sad,happy}', '{1,NULL,3}', "
                      "'{\"a\": [1, 2]}', '2024-02-29 12:00:00+00', gen_random_uuid()), "
                      "(2, NULL, NULL, NULL, NULL, NULL, NULL)");
    harness_exec(p.s, "UPDATE t_types SET ms = '{ok}' WHERE id = 2");
    /* Records and arrays of records embed their fields' type OIDs: mood's differs. */
    harness_exec(p.s, "UPDATE t_types SET c = ROW(1, 'ok', '{a,b}', '{sad,NULL}')::pt, cs = "
                      "ARRAY[ROW(2, 'happy', NULL, '{ok}')::pt, NULL, ROW(3, NULL, '{}', "
                      "NULL)::pt] WHERE id = 1");
    wait_converged(&p, BASIC_TABLES, 30000);

    /* The enum's OID differs between the two databases, and arrays of it still apply. */
    char *src_oid = harness_query_value(p.s, "SELECT 'mood'::regtype::oid::text");
    char *rep_oid = harness_query_value(p.r, "SELECT 'mood'::regtype::oid::text");
    EXPECT_TRUE(strcmp(src_oid, rep_oid) != 0);

    harness_exec(p.s, "TRUNCATE t_comp");
    harness_exec(p.s, "TRUNCATE t_pk, t_full");
    harness_exec(p.s, "INSERT INTO t_pk VALUES (1, 'after truncate', 1)");
    harness_exec(p.s, "ALTER TABLE t_pk ADD COLUMN extra int DEFAULT 7");
    harness_exec(p.s, "INSERT INTO t_pk VALUES (2, 'with extra', 2, 8)");
    harness_exec(p.s, "ALTER TABLE t_pk DROP COLUMN n");
    harness_exec(p.s, "UPDATE t_pk SET extra = 9 WHERE id = 1");
    harness_exec(p.s, "CREATE INDEX CONCURRENTLY t_pk_v ON t_pk (v)");
    harness_exec(p.s, "ALTER TABLE t_comp RENAME TO t_comp2");
    harness_exec(p.s, "INSERT INTO t_comp2 VALUES (1, 'renamed', 1)");
    const char *const after[] = {"public.t_pk", "public.t_comp2", "public.t_full", "public.t_toast",
                                 NULL};
    wait_converged(&p, after, 30000);
    EXPECT_EQ_INT(0, harness_query_int(p.r, "SELECT count(*) FROM t_comp2 WHERE a <> 1"));
    EXPECT_EQ_INT(1, harness_query_int(p.r, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                            "'t_pk_v'"));
    /* The applier's position is recorded for this source. */
    EXPECT_EQ_INT(1, harness_query_int(p.r, "SELECT count(*) FROM pgcapture.sources WHERE "
                                            "commit IS NOT NULL AND mid IS NOT NULL"));
}

/* docs/protocol.md, "Rows and values": with REPLICA IDENTITY FULL an UPDATE's new row
 * carries its unchanged TOAST values (from the old row), so the applier sets them to what
 * they were; the log keeps old NULLs, so a keyless FULL table's row is matched by them
 * (`IS NOT DISTINCT FROM NULL`), never a row with a value there. */
static void test_unchanged_toast_and_old_nulls_apply_exactly_under_each_identity(void)
{
    pair p;
    setup(&p, true);
    start_replica(&p, NULL);
    harness_exec(p.s, "CREATE TABLE s_default (id int PRIMARY KEY, n int, note text, body text)");
    harness_exec(p.s, "CREATE TABLE s_full (id int, n int, note text, body text)");
    harness_exec(p.s, "ALTER TABLE s_full REPLICA IDENTITY FULL");
    harness_exec(p.s, "CREATE TABLE s_index (id int PRIMARY KEY, code int NOT NULL, n int, "
                      "note text, body text)");
    harness_exec(p.s, "CREATE UNIQUE INDEX s_index_code ON s_index (code)");
    harness_exec(p.s, "ALTER TABLE s_index REPLICA IDENTITY USING INDEX s_index_code");
    const char *const tables[] = {"public.s_default", "public.s_full", "public.s_index", NULL};
    for (int i = 0; tables[i]; i++) {
        char sql[256];
        /* 100 kB that pglz cannot shrink, out of line. */
        snprintf(sql, sizeof sql, "ALTER TABLE %s ALTER body SET STORAGE EXTERNAL", tables[i]);
        harness_exec(p.s, sql);
    }
    const char *body =
        "(SELECT string_agg(md5((i + g)::text), '') FROM generate_series(1, 3200) i)";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO s_default SELECT g, g, CASE WHEN g %% 2 = 0 THEN 'x' END, %s "
             "FROM generate_series(1, 6) g",
             body);
    harness_exec(p.s, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO s_index SELECT g, 100 + g, g, CASE WHEN g %% 2 = 0 THEN 'x' END, %s "
             "FROM generate_series(1, 6) g",
             body);
    harness_exec(p.s, sql);
    /* Keyless: rows that differ only in a NULL note, the one with a value first (a match
     * that ignored the NULL would take it). */
    snprintf(sql, sizeof sql,
             "INSERT INTO s_full SELECT 1, 1, note, %s FROM (VALUES ('x'), (NULL), ('y')) v(note), "
             "generate_series(1, 1) g",
             body);
    harness_exec(p.s, sql);
    for (int i = 0; tables[i]; i++) {
        snprintf(sql, sizeof sql, "UPDATE %s SET n = n + 10", tables[i]); /* body unchanged */
        harness_exec(p.s, sql);
    }
    harness_exec(p.s, "UPDATE s_full SET n = 50 WHERE note IS NULL");
    harness_exec(p.s, "UPDATE s_full SET note = 'was null' WHERE n = 50");
    harness_exec(p.s, "UPDATE s_full SET note = NULL WHERE note = 'y'");
    harness_exec(p.s, "DELETE FROM s_full WHERE note IS NULL");
    harness_exec(p.s, "UPDATE s_default SET note = NULL WHERE id = 2");
    harness_exec(p.s,
                 "UPDATE s_index SET code = 200 WHERE id = 3"); /* key change, body unchanged */
    harness_exec(p.s, "DELETE FROM s_default WHERE note IS NULL AND id > 4");
    harness_exec(p.s, "DELETE FROM s_index WHERE id = 6");
    wait_converged(&p, tables, 30000);
    EXPECT_EQ_INT(2, harness_query_int(p.r, "SELECT count(*) FROM s_full"));
    EXPECT_EQ_INT(1, harness_query_int(p.r, "SELECT count(*) FROM s_full WHERE n = 50 AND "
                                            "note = 'was null' AND length(body) = 102400"));
    EXPECT_EQ_INT(5, harness_query_int(p.r, "SELECT count(*) FROM s_index WHERE "
                                            "length(body) = 102400"));
}

static void test_dml_and_ddl_in_one_source_transaction_apply_in_order(void)
{
    pair p;
    setup(&p, true);
    harness_exec(p.s, "CREATE TABLE acct (id int PRIMARY KEY, bal int)");
    start_replica(&p, NULL);
    harness_exec(p.s, "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 50) g");
    /* pgcapture's Go sink drops the DML queued before a DDL in such a transaction. */
    harness_exec(p.s, "BEGIN; UPDATE acct SET bal = bal + 1; "
                      "ALTER TABLE acct ADD COLUMN note text; "
                      "INSERT INTO acct VALUES (51, 0, 'new'); "
                      "UPDATE acct SET note = 'seen' WHERE id <= 10; "
                      "ALTER TABLE acct RENAME COLUMN bal TO balance; "
                      "DELETE FROM acct WHERE id = 2; "
                      "INSERT INTO acct (id, balance) VALUES (52, 5); COMMIT");
    const char *const tables[] = {"public.acct", NULL};
    wait_converged(&p, tables, 30000);
    EXPECT_EQ_INT(101 * 49, harness_query_int(p.r, "SELECT sum(balance) FROM acct WHERE id <= 50"));
    EXPECT_EQ_INT(9, harness_query_int(p.r, "SELECT count(*) FROM acct WHERE note = 'seen'"));
    /* Once caught up, the progress line reports no lag in stream messages. */
    log_contains(p.replica_log, "lag_messages=0 ", 10000);
}

static void test_conflicting_row_stops_the_applier_and_a_restart_resumes(void)
{
    pair p;
    setup(&p, true);
    const char *const tables[] = {"public.c", NULL};
    start_replica(&p, NULL);
    harness_exec(p.s, "CREATE TABLE c (id int PRIMARY KEY, v text)");
    wait_converged(&p, tables, 30000);
    harness_exec(p.r, "INSERT INTO c VALUES (42, 'squatter')");
    harness_exec(p.s, "INSERT INTO c SELECT g, 'v' FROM generate_series(1, 41) g");
    harness_exec(p.s, "INSERT INTO c VALUES (42, 'real')");
    harness_exec(p.s, "INSERT INTO c VALUES (43, 'after')");
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    /* The message names the failing change: its table, operation and the key. */
    log_contains(p.replica_log, "INSERT of \\\"public\\\".\\\"c\\\"", 1000);
    log_contains(p.replica_log, "(id)=(42) already exists", 1000);
    harness_exec(p.r, "DELETE FROM c WHERE id = 42");
    start_replica(&p, NULL);
    wait_converged(&p, tables, 30000);
}

/* The agent recreated a lost slot knowingly (--accept-slot-recreate): row 2, written while
 * the slot was gone, is not in the log, and a pgcapture.gaps marker is. The applier stops
 * there, saying what is missing and how to recover; with --accept-gap it passes over it,
 * stores a position past it (a restart without the flag goes on), and applies what follows. */
static void test_applier_stops_at_a_gap_marker_and_goes_on_only_with_accept_gap(void)
{
    pair p;
    setup(&p, true);
    /* The replica equals the source except for the row lost in the gap. */
    const char *const tables[] = {"(SELECT * FROM g WHERE id <> 2)", NULL};
    start_replica(&p, NULL);
    harness_exec(p.s, "CREATE TABLE g (id int PRIMARY KEY, v text)");
    harness_exec(p.s, "INSERT INTO g VALUES (1, 'before')");
    wait_converged(&p, tables, 30000);
    kill(p.agent, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.agent, 30000));
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s' AND "
             "active",
             p.name);
    long long deadline = harness_now_ms() + 30000;
    while (harness_query_int(p.s, sql) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    snprintf(sql, sizeof sql, "SELECT pg_drop_replication_slot('pgcapture_%s')", p.name);
    harness_exec(p.s, sql);
    harness_exec(p.s, "INSERT INTO g VALUES (2, 'lost')");
    const char *recreate[] = {"--accept-slot-recreate", NULL};
    p.agent = harness_agent_start(p.src, p.name, recreate, p.agent_log, sizeof p.agent_log);
    harness_agent_wait_streaming(p.src, p.name, p.agent_log, 60000);
    harness_exec(p.s, "INSERT INTO g VALUES (3, 'after')");
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    log_contains(p.replica_log, "gap in the log at", 1000);
    log_contains(p.replica_log, "slot lost", 1000);
    log_contains(p.replica_log, "pgcapture replica init", 1000);
    log_contains(p.replica_log, "--accept-gap", 1000);
    EXPECT_EQ_INT(1, harness_query_int(p.r, "SELECT count(*) FROM g"));
    log_pos stopped = read_position(p.r, p.name);
    const char *accept[] = {"--accept-gap", NULL};
    start_replica(&p, accept);
    wait_converged(&p, tables, 30000);
    EXPECT_EQ_INT(0,
                  harness_query_int(p.r, "SELECT count(*) FROM pg_class WHERE relname = 'gaps'"));
    log_contains(p.replica_log, "gap in the log accepted", 1000);
    EXPECT_TRUE(logpos_cmp(read_position(p.r, p.name), stopped) > 0);
    kill(p.replica, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 30000));
    start_replica(&p, NULL);
    harness_exec(p.s, "INSERT INTO g VALUES (4, 'later')");
    wait_converged(&p, tables, 30000);
    EXPECT_EQ_INT(3, harness_query_int(p.r, "SELECT count(*) FROM g"));
}

/* Retention removes messages a running applier had not read yet (it was paused): it stops
 * saying so instead of applying what follows around the hole. */
static void test_a_running_applier_stops_when_retention_removed_what_it_had_not_applied(void)
{
    pair p;
    setup(&p, true);
    const char *const tables[] = {"public.g", NULL};
    start_replica(&p, NULL);
    harness_exec(p.s, "CREATE TABLE g (id int PRIMARY KEY)");
    harness_exec(p.s, "INSERT INTO g VALUES (1)");
    wait_converged(&p, tables, 30000);
    kill(p.replica, SIGSTOP);
    char stream[160];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s", p.name);
    for (int id = 2; id <= 5; id++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO g VALUES (%d)", id);
        harness_exec(p.s, sql);
        harness_sleep_ms(300); /* one NATS message each */
    }
    /* Keep only the last message, as retention would. */
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL, *upd = NULL;
    EXPECT_EQ_INT(NATS_OK, natsConnection_ConnectTo(&nc, harness_nats_url()));
    EXPECT_EQ_INT(NATS_OK, natsConnection_JetStream(&js, nc, NULL));
    EXPECT_EQ_INT(NATS_OK, js_GetStreamInfo(&si, js, stream, NULL, NULL));
    jsStreamConfig sc = *si->Config;
    sc.MaxMsgs = 1;
    EXPECT_EQ_INT(NATS_OK, js_UpdateStream(&upd, js, &sc, NULL, NULL));
    jsStreamInfo_Destroy(upd);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    kill(p.replica, SIGCONT);
    int st = harness_wait_exit(p.replica, 30000);
    if (st != 1)
        harness_print_log_tail(p.replica_log, 30);
    EXPECT_EQ_INT(1, st);
    log_contains(p.replica_log, "what lies between is gone", 1000);
    EXPECT_EQ_INT(0, harness_query_int(p.r, "SELECT count(*) FROM g WHERE id = 5"));
}

static void test_second_applier_on_the_same_replica_exits_with_a_message(void)
{
    pair p;
    setup(&p, true);
    harness_exec(p.s, "CREATE TABLE one (id int PRIMARY KEY)");
    start_replica(&p, NULL);
    harness_exec(p.s, "INSERT INTO one VALUES (1)");
    const char *const tables[] = {"public.one", NULL};
    wait_converged(&p, tables, 30000);
    pid_t first = p.replica;
    char first_log[512];
    snprintf(first_log, sizeof first_log, "%s", p.replica_log);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    char second_log[512];
    snprintf(second_log, sizeof second_log, "%s/replica2-%s.log", dir && *dir ? dir : "/tmp",
             p.name);
    const char *args[] = {
        "replica", "--replica",      p.rep, "--nats-url", harness_nats_url(), "--name",
        p.name,    "--busy-timeout", "1s",  NULL};
    pid_t second = harness_spawn(second_log, args);
    EXPECT_EQ_INT(1, harness_wait_exit(second, 20000));
    log_contains(second_log, "only one may run at a time", 1000);
    /* The first goes on applying. */
    harness_exec(p.s, "INSERT INTO one VALUES (2)");
    wait_converged(&p, tables, 30000);
    EXPECT_TRUE(kill(first, 0) == 0);
}

static void test_sigterm_commits_what_is_applied_and_exits_zero(void)
{
    pair p;
    setup(&p, true);
    harness_exec(p.s, "CREATE TABLE st (id int PRIMARY KEY, v text)");
    start_replica(&p, NULL);
    harness_exec(p.s, "INSERT INTO st SELECT g, 'x' FROM generate_series(1, 5000) g");
    const char *const tables[] = {"public.st", NULL};
    wait_converged(&p, tables, 30000);
    kill(p.replica, SIGTERM);
    /* Under ASan a leak makes this exit status non-zero. */
    EXPECT_EQ_INT(0, harness_wait_exit(p.replica, 20000));
    log_contains(p.replica_log, "replica stopped", 1000);
    harness_exec(p.s, "UPDATE st SET v = 'y' WHERE id % 2 = 0");
    start_replica(&p, NULL);
    wait_converged(&p, tables, 30000);
}

static void test_huge_transaction_is_committed_in_parts_and_survives_kill9(void)
{
    pair p;
    setup(&p, true);
    harness_exec(p.s, "CREATE TABLE huge (id int PRIMARY KEY, v text)");
    /* Two NATS messages held at most: the 200,000-row transaction spans hundreds. */
    const char *const extra[] = {"--max-pending", "2", NULL};
    start_replica(&p, extra);
    harness_exec(p.s, "INSERT INTO huge SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
    /* The table itself arrives as DDL first: a slow applier (valgrind) may not be there yet. */
    long long deadline = harness_now_ms() + 30000;
    while (harness_query_int(p.r, "SELECT (to_regclass('public.huge') IS NOT NULL)::int") == 0 &&
           harness_now_ms() < deadline)
        harness_sleep_ms(20);
    while (harness_query_int(p.r, "SELECT count(*) FROM (SELECT 1 FROM huge LIMIT 1) x") == 0 &&
           harness_now_ms() < deadline)
        harness_sleep_ms(20);
    kill(p.replica, SIGKILL);
    harness_wait_exit(p.replica, 5000);
    /* The replica holds a part of the transaction, and the position inside it: both read
     * in one snapshot (the killed applier's last COMMIT may still land). */
    char *both = harness_query_value(p.r, "SELECT s.seq || ' ' || (SELECT count(*) FROM huge) "
                                          "FROM pgcapture.sources s");
    long long seq = 0, rows = 0;
    if (sscanf(both, "%lld %lld", &seq, &rows) != 2)
        unit_fail(__FILE__, __LINE__, "bad position and count \"%s\"", both);
    printf("killed inside the transaction: position seq %lld, %lld rows applied\n", seq, rows);
    EXPECT_TRUE(rows > 0);
    /* Position and rows agree: inside the transaction seq k is its k-th row; at its end
     * the Commit's seq is one past the last row. */
    if (rows < 200000)
        EXPECT_EQ_INT(seq, rows);
    else
        EXPECT_EQ_INT(200001, seq);
    start_replica(&p, extra);
    const char *const tables[] = {"public.huge", NULL};
    wait_converged(&p, tables, 60000);
}

/* ---- randomized workload with crashes ----------------------------------------------------- */

static unsigned rnd_state;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void random_step(PGconn *c, int step)
{
    char sql[1024];
    int k = (int)rnd(400), k2 = (int)rnd(400);
    switch (rnd(14)) {
    case 0:
    case 1:
    case 2:
        snprintf(sql, sizeof sql,
                 "INSERT INTO w_pk VALUES (%d, 'i%d', %d) ON CONFLICT (id) DO UPDATE SET v = "
                 "EXCLUDED.v",
                 k, step, step);
        break;
    case 3:
        snprintf(sql, sizeof sql, "UPDATE w_pk SET n = n + 1 WHERE id BETWEEN %d AND %d", k,
                 k + 20);
        break;
    case 4: /* primary key change */
        snprintf(sql, sizeof sql,
                 "UPDATE w_pk SET id = %d WHERE id = %d AND NOT EXISTS (SELECT 1 FROM w_pk "
                 "WHERE id = %d)",
                 k2 + 1000, k, k2 + 1000);
        break;
    case 5:
        snprintf(sql, sizeof sql, "DELETE FROM w_pk WHERE id BETWEEN %d AND %d", k, k + 5);
        break;
    case 6:
        snprintf(sql, sizeof sql,
                 "INSERT INTO w_comp VALUES (%d, 'b%d', %d) ON CONFLICT DO NOTHING", k % 20, k2,
                 step);
        break;
    case 7:
        snprintf(sql, sizeof sql, "UPDATE w_comp SET v = v + 1, b = b || 'u' WHERE a = %d", k % 20);
        break;
    case 8:
        snprintf(sql, sizeof sql, "INSERT INTO w_full VALUES (%d, 'f%d')", k % 30, step % 7);
        break;
    case 9:
        snprintf(sql, sizeof sql,
                 "DELETE FROM w_full WHERE ctid = (SELECT ctid FROM w_full WHERE a = %d LIMIT 1)",
                 k % 30);
        break;
    case 10:
        snprintf(sql, sizeof sql,
                 "INSERT INTO w_toast VALUES (%d, repeat(md5('%d'), %d), 0) ON CONFLICT (id) DO "
                 "UPDATE SET small = w_toast.small + 1",
                 k % 50, step, 100 + (int)rnd(3000));
        break;
    case 11:
        snprintf(sql, sizeof sql,
                 "BEGIN; UPDATE w_pk SET v = 'tx' WHERE id < %d; INSERT INTO w_comp VALUES "
                 "(99, 'tx%d', 1) ON CONFLICT DO NOTHING; DELETE FROM w_full WHERE a = %d; COMMIT",
                 k / 4, step, k % 30);
        break;
    case 12:
        if (rnd(20) == 0)
            snprintf(sql, sizeof sql, "TRUNCATE w_comp");
        else
            snprintf(sql, sizeof sql, "UPDATE w_toast SET small = small + 1 WHERE id = %d", k % 50);
        break;
    default: /* DDL now and then: add or drop a column, a new table */
        switch (rnd(12)) {
        case 0:
            snprintf(sql, sizeof sql,
                     "ALTER TABLE w_pk ADD COLUMN IF NOT EXISTS c%d int DEFAULT %d", step, step);
            break;
        case 1:
            snprintf(sql, sizeof sql,
                     "DO $$DECLARE c text; BEGIN SELECT attname INTO c FROM pg_attribute WHERE "
                     "attrelid = 'w_pk'::regclass AND attname ~ '^c[0-9]+$' AND NOT attisdropped "
                     "LIMIT 1; IF c IS NOT NULL THEN EXECUTE format('ALTER TABLE w_pk DROP "
                     "COLUMN %%I', c); END IF; END$$");
            break;
        case 2:
            snprintf(sql, sizeof sql,
                     "CREATE TABLE IF NOT EXISTS w_new%d (id int PRIMARY KEY, v int); INSERT "
                     "INTO w_new%d VALUES (1, %d) ON CONFLICT DO NOTHING",
                     step % 3, step % 3, step);
            break;
        default:
            snprintf(sql, sizeof sql, "UPDATE w_pk SET v = v || '+' WHERE id = %d", k);
            break;
        }
        break;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        unit_fail(__FILE__, __LINE__, "workload step %d failed (seed %u): %s: %s", step, rnd_state,
                  sql, msg);
    }
    PQclear(r);
}

static void test_randomized_workload_with_kill9_converges_and_never_moves_back(void)
{
    pair p;
    setup(&p, true);
    unsigned seed = (unsigned)time(NULL);
    if (getenv("PGC_TEST_SEED"))
        seed = (unsigned)strtoul(getenv("PGC_TEST_SEED"), NULL, 10);
    printf("seed %u (PGC_TEST_SEED to repeat)\n", seed);
    fflush(stdout);
    rnd_state = seed;
    harness_exec(p.s, "CREATE TABLE w_pk (id int PRIMARY KEY, v text, n int)");
    harness_exec(p.s, "CREATE TABLE w_comp (a int, b text, v int, PRIMARY KEY (a, b))");
    harness_exec(p.s, "CREATE TABLE w_full (a int, b text)");
    harness_exec(p.s, "ALTER TABLE w_full REPLICA IDENTITY FULL");
    harness_exec(p.s, "CREATE TABLE w_toast (id int PRIMARY KEY, big text, small int)");
    harness_exec(p.s, "ALTER TABLE w_toast ALTER COLUMN big SET STORAGE EXTERNAL");
    const char *const extra[] = {"--batch-txns", "50", NULL};
    start_replica(&p, extra);
    log_pos prev = {0, 0}, pos;
    int kills = 0;
    for (int step = 0; step < 3000; step++) {
        random_step(p.s, step);
        if (step % 150 == 0) {
            pos = read_position(p.r, p.name);
            if (logpos_cmp(pos, prev) < 0)
                unit_fail(__FILE__, __LINE__, "position moved backwards (seed %u)", seed);
            prev = pos;
        }
        if (step % 500 == 250) {
            kill(p.replica, SIGKILL);
            harness_wait_exit(p.replica, 5000);
            kills++;
            pos = read_position(p.r, p.name);
            if (logpos_cmp(pos, prev) < 0)
                unit_fail(__FILE__, __LINE__, "position moved backwards after kill (seed %u)",
                          seed);
            prev = pos;
            start_replica(&p, extra);
        }
    }
    EXPECT_EQ_INT(6, kills);
    const char *const tables[] = {"public.w_pk", "public.w_comp", "public.w_full", "public.w_toast",
                                  NULL};
    wait_converged(&p, tables, 60000);
    for (int i = 0; i < 3; i++) {
        char t[32];
        snprintf(t, sizeof t, "w_new%d", i);
        char *exists = harness_query_value(
            p.s, i == 0 ? "SELECT to_regclass('w_new0') IS NOT NULL"
                        : (i == 1 ? "SELECT to_regclass('w_new1') IS NOT NULL"
                                  : "SELECT to_regclass('w_new2') IS NOT NULL"));
        if (exists && exists[0] == 't') {
            const char *const one[] = {t, NULL};
            wait_converged(&p, one, 10000);
        }
    }
}

static void test_replica_init_while_the_source_is_written_converges(void)
{
    pair p;
    setup(&p, false);
    /* The replica database of init must be empty: drop the extension the harness added. */
    harness_require_pg_dump_for(p.src);
    harness_exec(p.r, "DROP EXTENSION IF EXISTS pgcapture CASCADE");
    harness_exec(p.r, "DROP SCHEMA IF EXISTS pgcapture CASCADE");
    harness_exec(p.s, "CREATE TABLE b (id int PRIMARY KEY, v int)");
    harness_exec(p.s, "INSERT INTO b SELECT g, g FROM generate_series(1, 20000) g");
    /* A writer keeps committing while the copy runs. */
    pid_t writer = fork();
    if (writer == 0) {
        PGconn *w = PQconnectdb(p.src);
        for (int i = 0; i < 400 && PQstatus(w) == CONNECTION_OK; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "UPDATE b SET v = v + 1 WHERE id %% 400 = %d", i);
            PQclear(PQexec(w, sql));
            snprintf(sql, sizeof sql, "INSERT INTO b VALUES (%d, 0)", 100000 + i);
            PQclear(PQexec(w, sql));
        }
        PQfinish(w);
        _exit(0);
    }
    harness_sleep_ms(50);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    char init_log[512];
    snprintf(init_log, sizeof init_log, "%s/replica-init-%s.log", dir && *dir ? dir : "/tmp",
             p.name);
    const char *args[] = {"replica", "init",   "--source", p.src, "--replica",
                          p.rep,     "--name", p.name,     NULL};
    pid_t init = harness_spawn(init_log, args);
    int st = harness_wait_exit(init, 60000);
    if (st != 0)
        harness_print_log_tail(init_log, 30);
    EXPECT_EQ_INT(0, st);
    /* The agent finds the slot that init created and streams from its consistent point. */
    start_agent(&p);
    start_replica(&p, NULL);
    EXPECT_EQ_INT(0, harness_wait_exit(writer, 60000));
    const char *const tables[] = {"public.b", NULL};
    wait_converged(&p, tables, 60000);
    EXPECT_EQ_INT(20400, harness_query_int(p.r, "SELECT count(*) FROM b"));

    /* A second replica from the first one: its snapshot and its position together. That
     * takes a pg_dump that can dump the replica's server. */
    if (!harness_pg_dump_can_dump(p.rep)) {
        printf("NOTE --from-replica not run: the local pg_dump cannot dump PostgreSQL %d\n",
               harness_server_major(p.rep));
        return;
    }
    char rep2[512];
    harness_replica_db_create(false, rep2, sizeof rep2);
    const char *args2[] = {"replica", "init", "--source",       p.rep, "--replica", rep2,
                           "--name",  p.name, "--from-replica", NULL};
    init = harness_spawn(init_log, args2);
    EXPECT_EQ_INT(0, harness_wait_exit(init, 60000));
    harness_exec(p.s, "INSERT INTO b VALUES (-1, -1)");
    pair q = p;
    snprintf(q.rep, sizeof q.rep, "%s", rep2);
    q.r = harness_connect(rep2);
    start_replica(&q, NULL);
    wait_converged(&q, tables, 60000);
}

UNIT_MAIN(UNIT_CASE(test_dml_ddl_truncate_and_user_types_apply_exactly),
          UNIT_CASE(test_unchanged_toast_and_old_nulls_apply_exactly_under_each_identity),
          UNIT_CASE(test_dml_and_ddl_in_one_source_transaction_apply_in_order),
          UNIT_CASE(test_conflicting_row_stops_the_applier_and_a_restart_resumes),
          UNIT_CASE(test_applier_stops_at_a_gap_marker_and_goes_on_only_with_accept_gap),
          UNIT_CASE(test_a_running_applier_stops_when_retention_removed_what_it_had_not_applied),
          UNIT_CASE(test_second_applier_on_the_same_replica_exits_with_a_message),
          UNIT_CASE(test_sigterm_commits_what_is_applied_and_exits_zero),
          UNIT_CASE(test_huge_transaction_is_committed_in_parts_and_survives_kill9),
          UNIT_CASE(test_randomized_workload_with_kill9_converges_and_never_moves_back),
          UNIT_CASE(test_replica_init_while_the_source_is_written_converges))
