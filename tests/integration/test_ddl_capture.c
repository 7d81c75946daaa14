/* DDL capture into pgcapture.ddl_logs with each install the server has: the SQL install
 * (sql/pgcapture-setup.sql, every server) and the C extension (where it is built). Both
 * must log one row per DDL statement with that statement's own text, for statements sent
 * alone, several in one query string, or nested in PL/pgSQL. Where the SQL install cannot
 * tell the statement apart, it says so (activity->>'inexact') instead of logging a text
 * that would run DML again on a replica, and the applier stops there with the fix. */
#include "harness/fixtures.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fresh database with pgcapture installed the given way ("sql" or "ext"). */
static PGconn *db_with(const char *install, char *conninfo, size_t len)
{
    harness_db_create(false, conninfo, len);
    PGconn *c = harness_connect(conninfo);
    if (!strcmp(install, "ext")) {
        harness_exec(c, "CREATE EXTENSION pgcapture");
    } else {
        char cmd[1024];
        const char *bin = getenv("PGC_TEST_BIN");
        snprintf(cmd, sizeof cmd, "'%s' setup --source '%s' >/dev/null", bin ? bin : "pgcapture",
                 conninfo);
        fflush(stdout);
        EXPECT_EQ_INT(0, system(cmd));
    }
    return c;
}

/* The installs this server can take: the SQL one always, the extension where it is built. */
static int installs(PGconn *any, const char *out[2])
{
    int n = 0;
    out[n++] = "sql";
    char *avail = harness_query_value(
        any, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgcapture'");
    if (avail && strcmp(avail, "1") == 0)
        out[n++] = "ext";
    return n;
}

/* The logged rows as "query|inexact-or-empty" lines, in order. */
static char *logged(PGconn *c)
{
    return harness_query_value(c, "SELECT coalesce(string_agg(query || '|' || "
                                  "coalesce(activity->>'inexact', ''), E'\\n' ORDER BY id), '') "
                                  "FROM pgcapture.ddl_logs");
}

static void expect_logged(PGconn *c, const char *install, const char *want)
{
    char *got = logged(c);
    if (strcmp(got, want) != 0)
        unit_fail(__FILE__, __LINE__, "install %s logged:\n%s\nexpected:\n%s", install, got, want);
    harness_exec(c, "TRUNCATE pgcapture.ddl_logs");
}

static void test_each_ddl_statement_is_logged_once_with_its_own_text(void)
{
    char probe[512];
    harness_db_create(false, probe, sizeof probe);
    const char *kinds[2];
    int n = installs(harness_connect(probe), kinds);
    for (int i = 0; i < n; i++) {
        char conninfo[512];
        PGconn *c = db_with(kinds[i], conninfo, sizeof conninfo);
        /* Installing logs nothing, and neither does installing again; the SQL install
         * refuses a database that has the extension. */
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "'%s' setup --source '%s' 2>&1 | grep -q 'extension is installed in this "
                 "database'",
                 getenv("PGC_TEST_BIN"), conninfo);
        fflush(stdout);
        EXPECT_EQ_INT(strcmp(kinds[i], "sql") ? 0 : 1, WEXITSTATUS(system(cmd)));
        expect_logged(c, kinds[i], "");

        harness_exec(c, "CREATE SCHEMA app");
        harness_exec(c, "CREATE TABLE app.items (id serial PRIMARY KEY, name text)");
        harness_exec(c, "/* why */ CREATE INDEX items_name ON app.items (name) -- note\n");
        harness_exec(c, "COMMENT ON TABLE app.items IS 'a; b'");
        harness_exec(c, "DROP TABLE IF EXISTS missing_table");
        harness_exec(c, "INSERT INTO app.items (name) VALUES ('dml is not ddl')");
        expect_logged(c, kinds[i],
                      "CREATE SCHEMA app|\n"
                      "CREATE TABLE app.items (id serial PRIMARY KEY, name text)|\n"
                      "/* why */ CREATE INDEX items_name ON app.items (name) -- note|\n"
                      "COMMENT ON TABLE app.items IS 'a; b'|\n"
                      "DROP TABLE IF EXISTS missing_table|");

        /* Several statements in one query string, DML among them, a COMMIT in between. */
        harness_exec(c, "CREATE TABLE m_a (id int); INSERT INTO m_a VALUES (1); "
                        "CREATE TABLE m_b (id int, note text DEFAULT ';'); "
                        "COMMIT; SELECT 1; ALTER TABLE m_b ADD COLUMN v int; "
                        "CREATE FUNCTION m_f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
                        "RETURN 1; END $$; DROP TABLE m_a");
        expect_logged(c, kinds[i],
                      "CREATE TABLE m_a (id int)|\n"
                      "CREATE TABLE m_b (id int, note text DEFAULT ';')|\n"
                      "ALTER TABLE m_b ADD COLUMN v int|\n"
                      "CREATE FUNCTION m_f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; "
                      "END $$|\n"
                      "DROP TABLE m_a|");

        /* Statements of a string that fire no event trigger are passed over. */
        harness_exec(c, "CREATE TABLE g_t (id int)");
        harness_exec(c, "TRUNCATE pgcapture.ddl_logs");
        harness_exec(c, "SELECT 1; COMMENT ON DATABASE postgres IS NULL; "
                        "GRANT SELECT ON g_t TO PUBLIC; SELECT 2 INTO g_s; "
                        "CREATE TABLE g_c AS SELECT * FROM g_t");
        expect_logged(c, kinds[i],
                      "GRANT SELECT ON g_t TO PUBLIC|\n"
                      "SELECT 2 INTO g_s|\n"
                      "CREATE TABLE g_c AS SELECT * FROM g_t|");

        /* Nested in PL/pgSQL: DO blocks, EXECUTE in a function, a trigger. */
        harness_exec(c, "CREATE FUNCTION mk(s text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                        "EXECUTE format('CREATE TABLE n_%s (id int)', s); END $$");
        harness_exec(c, "TRUNCATE pgcapture.ddl_logs");
        harness_exec(c, "SELECT mk('a'), mk('b')");
        harness_exec(c, "DO $$ BEGIN CREATE TABLE n_static (id int); "
                        "INSERT INTO n_static VALUES (1); "
                        "ALTER TABLE n_static ADD COLUMN v text; END $$");
        harness_exec(c, "DO $$ BEGIN CREATE TABLE \"Quoted \"\"q\"\" T\" (id int);\n"
                        "  ALTER TABLE \"Quoted \"\"q\"\" T\"\n    ADD COLUMN v int; END $$");
        expect_logged(c, kinds[i],
                      "CREATE TABLE n_a (id int)|\n"
                      "CREATE TABLE n_b (id int)|\n"
                      "CREATE TABLE n_static (id int)|\n"
                      "ALTER TABLE n_static ADD COLUMN v text|\n"
                      "CREATE TABLE \"Quoted \"\"q\"\" T\" (id int)|\n"
                      "ALTER TABLE \"Quoted \"\"q\"\" T\"\n    ADD COLUMN v int|");

        /* Temporary objects are not logged; the search_path a statement ran with is. */
        harness_exec(c, "CREATE TEMP TABLE tmp1 (id int)");
        harness_exec(c, "GRANT SELECT ON tmp1 TO PUBLIC");
        harness_exec(c, "DROP TABLE tmp1");
        harness_exec(c, "SET search_path = app, public");
        harness_exec(c, "CREATE TABLE in_app (id int)");
        harness_exec(c, "RESET search_path");
        expect_logged(c, kinds[i], "CREATE TABLE in_app (id int)|");
        harness_exec(c, "SET search_path = app, public");
        harness_exec(c, "CREATE TABLE in_app2 (id int)");
        harness_exec(c, "RESET search_path");
        char *path = harness_query_value(c, "SELECT activity->>'search_path' FROM "
                                            "pgcapture.ddl_logs");
        EXPECT_EQ_STR("app, public", path);
    }
}

static void test_ddl_the_sql_install_cannot_isolate_is_marked_inexact(void)
{
    char conninfo[512];
    PGconn *c = db_with("sql", conninfo, sizeof conninfo);
    /* DDL in an SQL-language function: no statement text is visible to PL/pgSQL. */
    harness_exec(c, "CREATE FUNCTION sql_ddl() RETURNS void LANGUAGE sql AS "
                    "'CREATE TABLE from_sql (id int)'");
    harness_exec(c, "TRUNCATE pgcapture.ddl_logs");
    harness_exec(c, "SELECT sql_ddl()");
    /* Several statements run by one EXECUTE, with DML among them. */
    harness_exec(c, "DO $$ BEGIN EXECUTE 'CREATE TABLE e1 (id int); INSERT INTO e1 VALUES (1)'; "
                    "END $$");
    char *got = harness_query_value(
        c, "SELECT string_agg(query || '|' || (activity->>'inexact') || '|' || "
           "(activity->'objects')::text, E'\\n' ORDER BY id) FROM pgcapture.ddl_logs");
    EXPECT_EQ_STR("SELECT sql_ddl()|it ran inside SQL function \"sql_ddl\" statement "
                  "1|[\"public.from_sql\"]\n"
                  "DO $$ BEGIN EXECUTE 'CREATE TABLE e1 (id int); INSERT INTO e1 VALUES (1)'; "
                  "END $$|it ran nested in PL/pgSQL as part of a string of several "
                  "statements|[\"public.e1\"]",
                  got);
}

static void drop_roles(void *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    PQclear(PQexec(c, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO CURRENT_USER', "
                      "current_database()); END $$"));
    PQclear(PQexec(c, "DROP OWNED BY pgct_owner, pgct_user"));
    PQclear(PQexec(c, "DROP ROLE pgct_owner"));
    PQclear(PQexec(c, "DROP ROLE pgct_user"));
    PQfinish(c);
    free(conninfo);
}

static void test_setup_needs_event_trigger_rights_and_rows_cannot_be_forged(void)
{
    char conninfo[512], owned[600], user_conn[600];
    harness_db_create(false, conninfo, sizeof conninfo);
    PGconn *admin = harness_connect(conninfo);
    char *db = harness_query_value(admin, "SELECT current_database()");
    char sql[512];
    /* A database owner without superuser: what a managed service's customer has at least. */
    harness_exec(admin, "DROP ROLE IF EXISTS pgct_owner");
    harness_exec(admin, "DROP ROLE IF EXISTS pgct_user");
    harness_exec(admin, "CREATE ROLE pgct_owner LOGIN");
    harness_exec(admin, "CREATE ROLE pgct_user LOGIN");
    /* Roles are cluster-wide: dropped when the case ends, after its connections close. */
    char *admin_conninfo = strdup(conninfo);
    unit_defer(drop_roles, admin_conninfo);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO pgct_owner", db);
    harness_exec(admin, sql);
    harness_exec(admin, "GRANT CREATE ON SCHEMA public TO pgct_user");
    snprintf(owned, sizeof owned, "%s user=pgct_owner", conninfo);
    snprintf(user_conn, sizeof user_conn, "%s user=pgct_user", conninfo);

    char cmd[1500], out[600];
    const char *bin = getenv("PGC_TEST_BIN");
    snprintf(out, sizeof out, "%s/setup-owner-%d.log",
             getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp", (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' setup --source '%s' >'%s' 2>&1", bin, owned, out);
    fflush(stdout);
    int rc = system(cmd);
    EXPECT_TRUE(rc != 0);
    snprintf(cmd, sizeof cmd,
             "grep -q 'permission denied to create event trigger.*superuser.*rds_superuser.*"
             "cloudsqlsuperuser.*nothing was installed' '%s'",
             out);
    if (system(cmd) != 0) {
        harness_print_log_tail(out, 5);
        unit_fail(__FILE__, __LINE__, "setup as a database owner did not say what it needs");
    }
    /* All or nothing: the owner's attempt left no schema behind. */
    EXPECT_EQ_INT(0, harness_query_int(admin, "SELECT count(*) FROM pg_namespace WHERE nspname "
                                              "= 'pgcapture'"));

    /* With the rights (here a superuser), DDL of ordinary users is logged as theirs. */
    snprintf(cmd, sizeof cmd, "'%s' setup --source '%s' >/dev/null", bin, conninfo);
    EXPECT_EQ_INT(0, system(cmd));
    PGconn *u = harness_connect(user_conn);
    harness_exec(u, "CREATE TABLE by_user (id int)");
    EXPECT_EQ_STR("CREATE TABLE by_user (id int)|pgct_user",
                  harness_query_value(admin, "SELECT query || '|' || (activity->>'user') FROM "
                                             "pgcapture.ddl_logs"));
    /* ... who can neither write the log nor call the recorder outside an event trigger. */
    PGresult *r = PQexec(u, "INSERT INTO pgcapture.ddl_logs (query) VALUES ('DROP TABLE x')");
    EXPECT_TRUE(PQresultStatus(r) == PGRES_FATAL_ERROR);
    PQclear(r);
    r = PQexec(u, "INSERT INTO pgcapture.ddl_strings VALUES (pg_backend_pid(), 'k', "
                  "'{\"DROP TABLE x\"}', 0)");
    EXPECT_TRUE(PQresultStatus(r) == PGRES_FATAL_ERROR);
    PQclear(r);
    /* A multi-statement string of theirs is logged statement by statement all the same. */
    harness_exec(u, "CREATE TABLE by_user2 (id int); INSERT INTO by_user2 VALUES (1); "
                    "ALTER TABLE by_user2 ADD COLUMN v int");
    EXPECT_EQ_STR("CREATE TABLE by_user2 (id int)|ALTER TABLE by_user2 ADD COLUMN v int",
                  harness_query_value(admin, "SELECT string_agg(query, '|' ORDER BY id) FROM "
                                             "pgcapture.ddl_logs WHERE id > 1"));
    harness_exec(u, "DROP TABLE by_user2");
    r = PQexec(u, "SELECT pgcapture.record_ddl('CREATE TABLE', 'public')");
    EXPECT_TRUE(PQresultStatus(r) == PGRES_FATAL_ERROR);
    EXPECT_TRUE(strstr(PQresultErrorMessage(r), "event trigger") != NULL);
    PQclear(r);
    EXPECT_EQ_INT(4, harness_query_int(admin, "SELECT count(*) FROM pgcapture.ddl_logs"));
    harness_exec(u, "DROP TABLE by_user");
}

static pid_t start_applier(const char *rep, const char *name, const char *log, const char *skip)
{
    const char *args[16] = {"replica", "--replica", rep,           "--nats-url", harness_nats_url(),
                            "--name",  name,        "--log-level", "debug",      NULL};
    if (skip) {
        args[9] = "--skip-ddl";
        args[10] = skip;
        args[11] = NULL;
    }
    return harness_spawn(log, args);
}

static void test_the_applier_stops_at_inexact_ddl_and_goes_on_with_skip_ddl(void)
{
    char src[512], rep[512], name[64], agent_log[512], replica_log[512];
    PGconn *s = db_with("sql", src, sizeof src);
    harness_replica_db_create(true, rep, sizeof rep);
    PGconn *r = harness_connect(rep);
    harness_unique_name(name, sizeof name);
    harness_agent_start(src, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(src, name, agent_log, 60000);
    const char *dir = getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp";
    snprintf(replica_log, sizeof replica_log, "%s/replica-%s.log", dir, name);
    pid_t applier = start_applier(rep, name, replica_log, NULL);
    harness_exec(s, "CREATE TABLE before (id int PRIMARY KEY)");
    /* DDL and DML in one EXECUTE: the SQL install cannot log the DDL alone. Replaying the
     * whole string would insert row 1 twice (it also arrives as a row change). */
    harness_exec(s, "DO $$ BEGIN EXECUTE 'CREATE TABLE made (id int PRIMARY KEY); "
                    "INSERT INTO made VALUES (1)'; END $$");
    harness_exec(s, "INSERT INTO made VALUES (2)");
    EXPECT_EQ_INT(1, harness_wait_exit(applier, 60000));
    char cmd[1200], pos[64] = "";
    snprintf(cmd, sizeof cmd,
             "grep -o 'was logged as its whole query string.*restart the applier with "
             "--skip-ddl [0-9A-F/]*:[0-9]*' '%s' | sed 's/.*--skip-ddl //' | head -1",
             replica_log);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(pos, sizeof pos, p))
            pos[0] = '\0';
        pclose(p);
    }
    pos[strcspn(pos, "\n")] = '\0';
    if (!pos[0]) {
        harness_print_log_tail(replica_log, 10);
        unit_fail(__FILE__, __LINE__, "the applier did not name the statement and the fix");
    }
    /* The operator applies the DDL by hand and lets the applier pass over that row. */
    harness_exec(r, "CREATE TABLE made (id int PRIMARY KEY)");
    start_applier(rep, name, replica_log, pos);
    long long deadline = harness_now_ms() + 60000;
    while (harness_query_int(r, "SELECT count(*) FROM made") < 2 && harness_now_ms() < deadline)
        harness_sleep_ms(100);
    EXPECT_EQ_STR("1,2", harness_query_value(r, "SELECT string_agg(id::text, ',' ORDER BY id) "
                                                "FROM made"));
    EXPECT_EQ_INT(1, harness_query_int(r, "SELECT count(*) FROM pg_tables WHERE tablename = "
                                          "'before'"));
}

UNIT_MAIN(UNIT_CASE(test_each_ddl_statement_is_logged_once_with_its_own_text),
          UNIT_CASE(test_ddl_the_sql_install_cannot_isolate_is_marked_inexact),
          UNIT_CASE(test_setup_needs_event_trigger_rights_and_rows_cannot_be_forged),
          UNIT_CASE(test_the_applier_stops_at_inexact_ddl_and_goes_on_with_skip_ddl))
