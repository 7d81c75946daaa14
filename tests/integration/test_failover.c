/* Failover of the source with a failover slot (PostgreSQL 17 and later): a primary of the
 * run's source major and a physical standby made from a file copy of it (scripts/pg-tmp
 * standby: standby.signal, primary_conninfo, primary_slot_name, hot_standby_feedback,
 * sync_replication_slots; synchronized_standby_slots on the primary). The agent's slot is
 * created with FAILOVER and the standby keeps a copy. Under live writes the primary is
 * killed, the standby promoted and the agent pointed at it: the log then holds exactly the
 * new primary's rows, each once and in order. */
#include "codec/bigendian.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/streamread.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct server {
    char dir[256], port[16];
} server;

/* Stops and removes the server (again: a no-op). */
static void stop_server(void *arg)
{
    server *s = arg;
    if (s->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "scripts/pg-tmp stop '%s' >/dev/null 2>&1", s->dir);
        fflush(stdout);
        int rc = system(cmd);
        (void)rc;
        s->dir[0] = '\0';
    }
}

/* Runs a scripts/pg-tmp command that prints exports and reads PGPORT and PGTMP_DIR. */
static server *pg_tmp(const char *args)
{
    char cmd[512], line[1024] = "";
    snprintf(cmd, sizeof cmd, "scripts/pg-tmp %s", args);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
    }
    const char *port = strstr(line, "PGPORT="), *dir = strstr(line, "PGTMP_DIR=");
    if (!port || !dir)
        unit_fail(__FILE__, __LINE__, "scripts/pg-tmp %s failed: %s", args, line);
    server *s = calloc(1, sizeof *s);
    if (!s)
        unit_fail(__FILE__, __LINE__, "out of memory");
    sscanf(port + 7, "%15[0-9]", s->port);
    sscanf(dir + 10, "%255[^ \n]", s->dir);
    unit_defer(free, s);
    unit_defer(stop_server, s);
    return s;
}

static void conninfo_of(const server *s, const char *db, char *out, size_t len)
{
    snprintf(out, len, "host=127.0.0.1 port=%s user=postgres dbname=%s", s->port, db);
}

static void wait_for(PGconn *c, const char *sql, int timeout_ms, const char *what)
{
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        PGresult *r = PQexec(c, sql);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                  strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (ok)
            return;
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "%s: not after %d ms", what, timeout_ms);
        harness_sleep_ms(100);
    }
}

/* Inserts ids from `first` on, one transaction of 5 rows every few milliseconds, until its
 * connection breaks (the primary goes away) or it reaches `last`. */
static pid_t start_writer(const char *conninfo, int first, int last)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    PGconn *w = PQconnectdb(conninfo);
    for (int id = first; id <= last && PQstatus(w) == CONNECTION_OK; id += 5) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO ft SELECT g, 'row ' || g FROM generate_series(%d, %d) g", id, id + 4);
        PQclear(PQexec(w, sql));
        usleep(3000);
    }
    PQfinish(w);
    _exit(0);
}

typedef struct ids {
    int *v;
    size_t n, cap;
} ids;

static void collect_ids(log_pos pos, const Pgcapture__Message *m, void *arg)
{
    (void)pos;
    ids *out = arg;
    if (m->type_case != PGCAPTURE__MESSAGE__TYPE_CHANGE || strcmp(m->change->table, "ft") != 0 ||
        m->change->op != PGCAPTURE__CHANGE__OPERATION__INSERT)
        return;
    const Pgcapture__Field *f = stream_field(m->change, "id", 0);
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 4)
        return;
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 1024;
        out->v = realloc(out->v, out->cap * sizeof *out->v);
    }
    const uint8_t *b = f->binary.data;
    out->v[out->n++] = (int)bigendian_get32(b);
}

static void test_a_promoted_standby_keeps_the_slot_and_the_log_loses_and_repeats_nothing(void)
{
    char probe[512];
    harness_db_create(false, probe, sizeof probe);
    int major = harness_server_major(probe);
    if (major < 17)
        unit_skip("failover slots need PostgreSQL 17 or later (this run's source is %d)", major);
    char args[300];
    snprintf(args, sizeof args, "start --version %d", major);
    server *primary = pg_tmp(args);
    char admin[256], src[256], name[64], agent_log[512];
    conninfo_of(primary, "postgres", admin, sizeof admin);
    harness_exec(harness_connect(admin), "CREATE DATABASE app");
    conninfo_of(primary, "app", src, sizeof src);
    harness_exec(harness_connect(src), "CREATE TABLE ft (id int PRIMARY KEY, v text)");
    snprintf(args, sizeof args, "standby '%s'", primary->dir);
    server *standby = pg_tmp(args);
    char standby_src[256];
    conninfo_of(standby, "app", standby_src, sizeof standby_src);

    harness_unique_name(name, sizeof name);
    pid_t agent = harness_agent_start(src, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(src, name, agent_log, 60000);
    PGconn *p = harness_connect(src);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT failover FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s'", name);
    EXPECT_EQ_STR("t", harness_query_value(p, sql));

    /* Writes; the standby's copy of the slot follows the agent's confirmations. */
    pid_t writer = start_writer(src, 1, 100000);
    PGconn *sb = harness_connect(standby_src);
    snprintf(sql, sizeof sql,
             "SELECT synced AND NOT temporary AND confirmed_flush_lsn IS NOT NULL FROM "
             "pg_replication_slots WHERE slot_name = 'pgcapture_%s'",
             name);
    wait_for(sb, sql, 60000, "the standby has no synchronized copy of the slot");
    harness_sleep_ms(1500);

    /* The primary dies mid-write; the standby takes over; the agent follows. */
    stop_server(primary);
    EXPECT_EQ_INT(0, harness_wait_exit(writer, 30000));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "scripts/pg-tmp promote '%s'", standby->dir);
    fflush(stdout);
    EXPECT_EQ_INT(0, system(cmd));
    wait_for(sb, "SELECT NOT pg_is_in_recovery()", 30000, "the standby is not promoted");
    kill(agent, SIGTERM);
    harness_wait_exit(agent, 10000);
    /* The same source name, so the same stream and slot; its log goes on in the same file. */
    harness_agent_start(standby_src, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(standby_src, name, agent_log, 60000);
    long long kept = harness_query_int(sb, "SELECT count(*) FROM ft");
    EXPECT_TRUE(kept > 0);
    writer = start_writer(standby_src, 200001, 201000);
    EXPECT_EQ_INT(0, harness_wait_exit(writer, 60000));

    /* The log against the new primary: every row once, in commit (= id) order. */
    long long want = harness_query_int(sb, "SELECT count(*) FROM ft");
    ids got = {0};
    long long deadline = harness_now_ms() + 60000;
    do {
        free(got.v);
        memset(&got, 0, sizeof got);
        stream_scan(name, collect_ids, &got);
        if ((long long)got.n >= want)
            break;
        harness_sleep_ms(200);
    } while (harness_now_ms() < deadline);
    unit_defer(free, got.v);
    char *rows = harness_query_value(sb, "SELECT string_agg(id::text, ',' ORDER BY id) FROM ft");
    size_t cap = got.n * 12 + 1, len = 0;
    char *logged = calloc(1, cap);
    unit_defer(free, logged);
    for (size_t i = 0; i < got.n; i++)
        len += (size_t)snprintf(logged + len, cap - len, i ? ",%d" : "%d", got.v[i]);
    printf("MEASURE failover: PostgreSQL %d, %lld rows kept by the promoted standby, %lld in "
           "all; the log holds %zu inserts\n",
           major, kept, want, got.n);
    if (strcmp(rows, logged) != 0)
        unit_fail(__FILE__, __LINE__,
                  "the log differs from the new primary (%zu logged, %lld rows): log %.200s... "
                  "table %.200s...",
                  got.n, want, logged, rows);
}

UNIT_MAIN(UNIT_CASE(test_a_promoted_standby_keeps_the_slot_and_the_log_loses_and_repeats_nothing))
