/* A major-version upgrade with minimum downtime, end to end: the source (on the test run's
 * source server, PostgreSQL 15 in the matrix) under live writes; a replica on the
 * replicas' server (18 in the matrix) made by `pgcapture replica init` and kept by the
 * applier; then the cut-over: writes stop, `pgcapture replica wait-caught-up` says when
 * the replica has applied the source's last commit and sets its sequences, the tables
 * compare equal row for row, and the application switches to the replica (new rows there
 * take sequence values past every copied one). The write-stop window is measured and
 * printed. Also: `replica init` refuses a source newer than the local pg_dump. */
#include "harness/fixtures.h"
#include "harness/runner.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char SCHEMA[] =
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
    "CREATE TABLE accounts (id bigserial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2),"
    "  mood mood, tags text[], meta jsonb, updated timestamptz DEFAULT now());"
    "CREATE TABLE events (id serial PRIMARY KEY, account bigint, kind text, payload bytea);"
    "CREATE SEQUENCE invoice_no START 1000;"
    "INSERT INTO accounts (owner, balance, mood, tags, meta)"
    "  SELECT 'owner' || g, g * 1.5, 'ok', ARRAY['a', 'b' || g], jsonb_build_object('g', g)"
    "  FROM generate_series(1, 2000) g;"
    "INSERT INTO events (account, kind, payload) SELECT g % 2000 + 1, 'seed', '\\x00ff'::bytea"
    "  FROM generate_series(1, 3000) g;";

static volatile sig_atomic_t writer_stop;
static void on_term(int sig)
{
    (void)sig;
    writer_stop = 1;
}

/* The application: small transactions of inserts (taking sequence values), updates and
 * deletes, until SIGTERM; then it finishes its transaction and exits 0. */
static pid_t start_writer(const char *conninfo)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    PGconn *w = PQconnectdb(conninfo);
    unsigned seed = 7;
    int i = 0;
    while (!writer_stop && PQstatus(w) == CONNECTION_OK) {
        char sql[1024];
        long acct = (long)(rand_r(&seed) % 2000) + 1;
        snprintf(sql, sizeof sql,
                 "BEGIN;"
                 "INSERT INTO accounts (owner, balance, mood, tags, meta) VALUES ('new%d', %d.25,"
                 "  'happy', ARRAY['n'], '{\"n\": %d}');"
                 "UPDATE accounts SET balance = balance + 1, mood = 'sad', updated = now() "
                 "  WHERE id = %ld;"
                 "INSERT INTO events (account, kind, payload) VALUES (%ld, 'upd', "
                 "  decode(md5('%d'), 'hex'));"
                 "SELECT nextval('invoice_no');"
                 "%s"
                 "COMMIT",
                 i, i, i, acct, acct, i,
                 i % 7 == 0 ? "DELETE FROM events WHERE id = (SELECT min(id) FROM events);" : "");
        PGresult *r = PQexec(w, sql);
        PQclear(r);
        i++;
        usleep(2000);
    }
    PQfinish(w);
    _exit(0);
}

static const char *const TABLES[] = {"accounts", "events", NULL};

static char *table_digest(PGconn *c, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) "
             "FROM %s x",
             table);
    return harness_query_value(c, sql);
}

static void test_live_source_upgrades_to_a_newer_replica_with_a_short_write_stop(void)
{
    char src[512], rep[512], name[64], agent_log[512], replica_log[512], init_log[512],
        cut_log[512];
    harness_db_create(true, src, sizeof src);
    harness_replica_db_create(false, rep, sizeof rep);
    harness_require_pg_dump_for(src);
    harness_unique_name(name, sizeof name);
    PGconn *s = harness_connect(src);
    PGconn *r = harness_connect(rep);
    harness_exec(s, SCHEMA);
    printf("MEASURE upgrade: source PostgreSQL %d, replica PostgreSQL %d\n",
           harness_server_major(src), harness_server_major(rep));

    /* Writes go on from before the copy to the cut-over. */
    pid_t writer = start_writer(src);
    harness_sleep_ms(300);
    const char *dir = getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp";
    snprintf(init_log, sizeof init_log, "%s/upgrade-init-%s.log", dir, name);
    const char *init[] = {"replica", "init",   "--source", src, "--replica",
                          rep,       "--name", name,       NULL};
    int st = harness_wait_exit(harness_spawn(init_log, init), 120000);
    if (st != 0)
        harness_print_log_tail(init_log, 20);
    EXPECT_EQ_INT(0, st);
    harness_agent_start(src, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(src, name, agent_log, 60000);
    snprintf(replica_log, sizeof replica_log, "%s/upgrade-replica-%s.log", dir, name);
    const char *apply[] = {"replica", "--replica", rep,           "--nats-url", harness_nats_url(),
                           "--name",  name,        "--log-level", "debug",      NULL};
    harness_spawn(replica_log, apply);
    /* A schema change while live: it reaches the replica through the log. */
    harness_sleep_ms(1000);
    harness_exec(s, "ALTER TABLE accounts ADD COLUMN note text DEFAULT 'v2'");
    harness_sleep_ms(1500);

    /* Cut-over: stop the writes, wait until caught up (sequences set), compare, switch. */
    long long t_stop = harness_now_ms();
    kill(writer, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(writer, 30000));
    long long t_stopped = harness_now_ms();
    snprintf(cut_log, sizeof cut_log, "%s/upgrade-cutover-%s.log", dir, name);
    const char *cut[] = {"replica", "wait-caught-up", "--source", src, "--replica", rep, "--name",
                         name,      "--timeout",      "60s",      NULL};
    st = harness_wait_exit(harness_spawn(cut_log, cut), 90000);
    long long t_caught = harness_now_ms();
    if (st != 0) {
        harness_print_log_tail(cut_log, 10);
        harness_print_log_tail(replica_log, 20);
    }
    EXPECT_EQ_INT(0, st);
    harness_print_log_tail(cut_log, 2);
    printf(
        "MEASURE upgrade: write-stop window %lld ms (writes stopped in %lld ms, then the replica "
        "caught up and its sequences were set in %lld ms)\n",
        t_caught - t_stop, t_stopped - t_stop, t_caught - t_stopped);

    for (int i = 0; TABLES[i]; i++) {
        char *a = table_digest(s, TABLES[i]), *b = table_digest(r, TABLES[i]);
        if (strcmp(a, b) != 0)
            unit_fail(__FILE__, __LINE__, "%s differs after the cut-over: source %s, replica %s",
                      TABLES[i], a, b);
    }
    const char *seq_sql = "SELECT string_agg(sequencename || '=' || coalesce(last_value::text, "
                          "'-'), ',' ORDER BY sequencename) FROM pg_sequences";
    EXPECT_EQ_STR(harness_query_value(s, seq_sql), harness_query_value(r, seq_sql));
    EXPECT_TRUE(harness_query_int(s, "SELECT count(*) FROM accounts") > 2000);

    /* The switch: the application writes to the replica; its sequences go on from the
     * source's values, so new keys collide with none copied. */
    long long max_id = harness_query_int(r, "SELECT max(id) FROM accounts");
    long long new_id = harness_query_int(
        r, "INSERT INTO accounts (owner) VALUES ('after the switch') RETURNING id");
    EXPECT_TRUE(new_id > max_id);
    EXPECT_TRUE(harness_query_int(r, "SELECT nextval('invoice_no')") >
                harness_query_int(s, "SELECT last_value FROM invoice_no"));
}

static void test_replica_init_refuses_a_source_newer_than_its_pg_dump(void)
{
    /* A source newer than the local pg_dump: the replicas' server when the matrix runs a
     * newer major there. */
    char newer[512], target[512];
    harness_replica_db_create(false, newer, sizeof newer);
    harness_replica_db_create(false, target, sizeof target);
    FILE *p = popen("pg_dump --version", "r");
    char line[128] = "";
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
    }
    const char *digits = strpbrk(line, "0123456789");
    int local = digits ? atoi(digits) : 0, server = harness_server_major(newer);
    if (server <= local)
        unit_skip("needs a server newer than the local pg_dump %d (the matrix runs one)", local);
    char name[64], log[512], want[700];
    harness_unique_name(name, sizeof name);
    const char *dir = getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/init-refused-%s.log", dir, name);
    const char *init[] = {"replica", "init",   "--source", newer, "--replica",
                          target,    "--name", name,       NULL};
    EXPECT_EQ_INT(1, harness_wait_exit(harness_spawn(log, init), 60000));
    snprintf(want, sizeof want, "grep -q 'it needs pg_dump %d or newer' '%s'", server, log);
    if (system(want) != 0) {
        harness_print_log_tail(log, 10);
        unit_fail(__FILE__, __LINE__, "the refusal does not name pg_dump %d", server);
    }
    /* Refused before creating anything: no slot, no publication. */
    PGconn *c = harness_connect(newer);
    EXPECT_EQ_INT(0, harness_query_int(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                          "database = current_database()"));
    EXPECT_EQ_INT(0, harness_query_int(c, "SELECT count(*) FROM pg_publication"));
}

UNIT_MAIN(UNIT_CASE(test_live_source_upgrades_to_a_newer_replica_with_a_short_write_stop),
          UNIT_CASE(test_replica_init_refuses_a_source_newer_than_its_pg_dump))
