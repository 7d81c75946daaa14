/* libpgcapture end to end: source PostgreSQL -> agent -> JetStream -> gateway (embedded
 * here through the public API) -> pgc_consumer. Rows arrive with the server's own values
 * (compared with row_to_json), unchanged TOAST columns are absent, requeue brings a change
 * back, TableRegex filters, refusals map to statuses, and `pgcapture consume` and
 * examples/consumer print JSON lines and exit cleanly. */
#include "harness/runner.h"
#include "harness/gwfixture.h"
#include "harness/fixtures.h"

#include "core/log.h"
#include "pgcapture.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- an embedded gateway whose resolver maps every URI "u_<source>" ---------------- */

static void destroy_gateway(void *g)
{
    pgc_gateway_destroy(g);
}

static void gateway_start(gwfixture *t)
{
    if (getenv("PGC_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_DEBUG);
    t->port = 0;
    gwfixture_start(t);
    unit_defer(destroy_gateway, t->gw);
}

/* ---- a consumer run that collects changes until a predicate holds ------------------- */

#define MAX_SEEN 64

typedef struct collector {
    pgc_consumer *consumer;
    char *json[MAX_SEEN];
    int n;
    int want;                  /* stop after this many changes */
    const char *requeue_table; /* requeue the first change of this table once */
    int requeued;
    bool bio_present[MAX_SEEN];
    atomic_int done;
} collector;

static pgc_verdict collect(void *arg, const pgc_change *c, const char **reason)
{
    collector *k = arg;
    if (k->requeue_table && !k->requeued &&
        strcmp(pgc_change_get_table(c), k->requeue_table) == 0) {
        k->requeued = 1;
        *reason = "test requeue";
        return PGC_VERDICT_REQUEUE;
    }
    if (k->n < MAX_SEEN) {
        char err[256];
        if (pgc_change_render_json(c, &k->json[k->n], NULL, err, sizeof err) != PGC_OK)
            k->json[k->n] = strdup(err);
        k->bio_present[k->n] = pgc_change_find_field(c, PGC_ROW_NEW, "bio") != NULL;
        k->n++;
    }
    if (k->n >= k->want)
        pgc_consumer_stop(k->consumer);
    return PGC_VERDICT_ACK;
}

static void *watchdog(void *arg)
{
    collector *k = arg;
    for (int i = 0; i < 300 && !atomic_load(&k->done); i++)
        harness_sleep_ms(100);
    pgc_consumer_stop(k->consumer);
    return NULL;
}

static void free_collector(void *arg)
{
    collector *k = arg;
    for (int i = 0; i < k->n; i++)
        free(k->json[i]);
    pgc_consumer_destroy(k->consumer);
    free(k);
}

/* A consumer in batch mode (batch_limit 0, libpgcapture's default) or per-change mode
 * (-1). */
static collector *collector_new_mode(const char *gw, const char *uri, const char *regex,
                                     int batch_limit)
{
    collector *k = calloc(1, sizeof *k);
    EXPECT_TRUE(k != NULL);
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = gw;
    o.uri = uri;
    o.table_regex = regex;
    o.batch_limit = batch_limit;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, pgc_consumer_create(&o, &k->consumer, err, sizeof err));
    unit_defer(free_collector, k);
    return k;
}

static collector *collector_new(const char *gw, const char *uri, const char *regex)
{
    return collector_new_mode(gw, uri, regex, 0);
}

/* Runs until `want` changes were handled (or 30 s); returns the run's status. */
static int collect_run(collector *k, int want, char *err, size_t err_len)
{
    k->want = want;
    atomic_store(&k->done, 0);
    pthread_t t;
    pthread_create(&t, NULL, watchdog, k);
    int rc = pgc_consumer_run(k->consumer, &(pgc_change_handler){k, collect}, err, err_len);
    atomic_store(&k->done, 1);
    pthread_join(t, NULL);
    return rc;
}

static void start_pipeline(char *db, size_t db_len, char *name, size_t name_len, const char *ddl,
                           gwfixture *g, char *uri, size_t uri_len)
{
    char log[512];
    harness_db_create(false, db, db_len);
    harness_unique_name(name, name_len);
    PGconn *c = harness_connect(db);
    harness_exec(c, ddl);
    harness_agent_start(db, name, NULL, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    gateway_start(g);
    snprintf(uri, uri_len, "u_%s", name);
}

/* ---- cases --------------------------------------------------------------------------- */

static void test_rows_arrive_with_the_servers_values_and_toast_absent(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name,
                   "CREATE TABLE users (id int8 PRIMARY KEY, name text, bio text, n numeric, "
                   "ts timestamptz, tags text[], raw bytea); "
                   "ALTER TABLE users ALTER bio SET STORAGE EXTERNAL",
                   &g, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "SET TimeZone = 'UTC'");
    harness_exec(c, "INSERT INTO users VALUES (1, 'ann', repeat('x', 5000), -12.3400, "
                    "'2024-05-06 07:08:09.5+00', ARRAY['a', NULL], '\\x'), "
                    "(2, E'b\"o\\nb', NULL, 'NaN', 'infinity', '{}', '\\x00ff')");
    harness_exec(c, "UPDATE users SET name = 'anna' WHERE id = 1"); /* bio: unchanged TOAST */
    harness_exec(c, "DELETE FROM users WHERE id = 2");
    collector *k = collector_new(g.addr, uri, NULL);
    char err[512] = "";
    int rc = collect_run(k, 4, err, sizeof err);
    if (rc != PGC_OK || k->n != 4)
        unit_fail(__FILE__, __LINE__, "run: status %d (%s), %d of 4 changes", rc, err, k->n);
    /* The inserts, value for value as the server renders them. */
    harness_exec(c, "CREATE TEMP TABLE expect AS SELECT 1::int8 AS id, 'ann'::text AS name, "
                    "repeat('x', 5000) AS bio, -12.3400::numeric AS n, "
                    "'2024-05-06 07:08:09.5+00'::timestamptz AS ts, ARRAY['a', NULL]::text[] AS "
                    "tags, '\\x'::bytea AS raw UNION ALL SELECT 2, E'b\"o\\nb', NULL, 'NaN', "
                    "'infinity', '{}', '\\x00ff'");
    for (int i = 0; i < 2; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT row_to_json(e)::text FROM expect e WHERE id = %d", i + 1);
        char *row = harness_query_value(c, sql);
        char want[8192];
        snprintf(want, sizeof want, "\"op\":\"INSERT\"");
        EXPECT_TRUE(strstr(k->json[i], want) != NULL);
        snprintf(want, sizeof want, "\"new\":%s}", row);
        if (!strstr(k->json[i], want))
            unit_fail(__FILE__, __LINE__, "change %d: expected it to end with %s, got %s", i, want,
                      k->json[i]);
    }
    /* The update: bio left out (unchanged TOAST), not null. */
    EXPECT_TRUE(strstr(k->json[2], "\"op\":\"UPDATE\"") != NULL);
    EXPECT_TRUE(strstr(k->json[2], "\"name\":\"anna\"") != NULL);
    EXPECT_TRUE(strstr(k->json[2], "\"bio\"") == NULL);
    EXPECT_TRUE(k->bio_present[0] && !k->bio_present[2]);
    EXPECT_TRUE(strstr(k->json[3], "\"op\":\"DELETE\"") != NULL);
    EXPECT_TRUE(strstr(k->json[3], "\"old\":{\"id\":2}") != NULL);
}

static void requeued_change_comes_back(int batch_limit)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name, "CREATE TABLE t (id int PRIMARY KEY)", &g, uri,
                   sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    harness_exec(c, "INSERT INTO t VALUES (2)");
    collector *k = collector_new_mode(g.addr, uri, NULL, batch_limit);
    k->requeue_table = "t";
    char err[512] = "";
    int rc = collect_run(k, 2, err, sizeof err);
    if (rc != PGC_OK || k->n != 2)
        unit_fail(__FILE__, __LINE__, "run: status %d (%s), %d of 2 changes", rc, err, k->n);
    EXPECT_EQ_INT(1, k->requeued);
    /* Both rows were acked once, whatever the order the requeued one came back in. */
    int has1 = strstr(k->json[0], "\"id\":1}") || strstr(k->json[1], "\"id\":1}");
    int has2 = strstr(k->json[0], "\"id\":2}") || strstr(k->json[1], "\"id\":2}");
    EXPECT_TRUE(has1 && has2);
    /* A new run gets nothing more: everything was acked. */
    harness_exec(c, "INSERT INTO t VALUES (3)");
    collector *k2 = collector_new_mode(g.addr, uri, NULL, batch_limit);
    rc = collect_run(k2, 1, err, sizeof err);
    EXPECT_EQ_INT(PGC_OK, rc);
    EXPECT_EQ_INT(1, k2->n);
    EXPECT_TRUE(strstr(k2->json[0], "\"id\":3}") != NULL);
}

static void test_requeued_change_comes_back_and_acked_ones_do_not(void)
{
    requeued_change_comes_back(0);
}

static void test_per_change_mode_requeues_and_acks_the_same_way(void)
{
    requeued_change_comes_back(-1);
}

static void test_table_regex_filters_and_refusals_map_to_statuses(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name,
                   "CREATE TABLE keep (id int PRIMARY KEY); CREATE TABLE skip (id int PRIMARY KEY)",
                   &g, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO skip VALUES (1); INSERT INTO keep VALUES (2); "
                    "INSERT INTO skip VALUES (3); INSERT INTO keep VALUES (4)");
    collector *k = collector_new(g.addr, uri, "^keep$");
    char err[512] = "";
    EXPECT_EQ_INT(PGC_OK, collect_run(k, 2, err, sizeof err));
    EXPECT_EQ_INT(2, k->n);
    EXPECT_TRUE(strstr(k->json[0], "\"table\":\"keep\"") && strstr(k->json[0], "\"id\":2}"));
    EXPECT_TRUE(strstr(k->json[1], "\"table\":\"keep\"") && strstr(k->json[1], "\"id\":4}"));
    collector *bad = collector_new(g.addr, uri, "([");
    EXPECT_EQ_INT(PGC_ERR_INVALID, collect_run(bad, 1, err, sizeof err));
    collector *unknown = collector_new(g.addr, "nobody", NULL);
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND, collect_run(unknown, 1, err, sizeof err));
}

/* Waits until `path` holds at least `lines` newline characters. */
static int wait_lines(const char *path, int lines, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        FILE *f = fopen(path, "r");
        int n = 0, ch;
        if (f) {
            while ((ch = fgetc(f)) != EOF)
                n += ch == '\n';
            fclose(f);
        }
        if (n >= lines || harness_now_ms() > until)
            return n;
        harness_sleep_ms(50);
    }
}

/* Two consumers on one URI, each run on its own thread: together they receive every
 * change once (the gateway spreads the URI's log over its streams). */
typedef struct shared_run {
    collector *k;
    atomic_int *total;
    int want;
    pgc_consumer *peer;
    int rc;
} shared_run;

static pgc_verdict collect_shared(void *arg, const pgc_change *c, const char **reason)
{
    shared_run *r = arg;
    pgc_verdict v = collect(r->k, c, reason);
    if (atomic_fetch_add(r->total, 1) + 1 >= r->want) {
        pgc_consumer_stop(r->k->consumer);
        pgc_consumer_stop(r->peer);
    }
    return v;
}

static void *run_shared(void *arg)
{
    shared_run *r = arg;
    char err[256];
    r->rc =
        pgc_consumer_run(r->k->consumer, &(pgc_change_handler){r, collect_shared}, err, sizeof err);
    return NULL;
}

static void test_two_consumers_on_one_uri_together_receive_every_change(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name, "CREATE TABLE t (id int PRIMARY KEY)", &g, uri,
                   sizeof uri);
    PGconn *c = harness_connect(db);
    enum { ROWS = 40 };
    for (int i = 1; i <= ROWS; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d)", i);
        harness_exec(c, sql);
    }
    collector *a = collector_new(g.addr, uri, NULL), *b = collector_new(g.addr, uri, NULL);
    a->want = b->want = MAX_SEEN + 1; /* collect() must not stop them on its own */
    atomic_int total;
    atomic_init(&total, 0);
    shared_run ra = {a, &total, ROWS, b->consumer, -99}, rb = {b, &total, ROWS, a->consumer, -99};
    pthread_t ta, tb, wa, wb;
    pthread_create(&ta, NULL, run_shared, &ra);
    pthread_create(&tb, NULL, run_shared, &rb);
    pthread_create(&wa, NULL, watchdog, a);
    pthread_create(&wb, NULL, watchdog, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    atomic_store(&a->done, 1);
    atomic_store(&b->done, 1);
    pthread_join(wa, NULL);
    pthread_join(wb, NULL);
    EXPECT_EQ_INT(PGC_OK, ra.rc);
    EXPECT_EQ_INT(PGC_OK, rb.rc);
    if (a->n + b->n != ROWS)
        unit_fail(__FILE__, __LINE__, "received %d + %d changes, expected %d together", a->n, b->n,
                  ROWS);
    for (int i = 1; i <= ROWS; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"new\":{\"id\":%d}", i);
        int seen = 0;
        for (int k = 0; k < a->n; k++)
            seen += strstr(a->json[k], want) != NULL;
        for (int k = 0; k < b->n; k++)
            seen += strstr(b->json[k], want) != NULL;
        if (seen != 1)
            unit_fail(__FILE__, __LINE__, "row %d received %d times, expected once", i, seen);
    }
}

/* A consumer process frozen then killed mid-stream: what it received but never acked
 * comes back to the next consumer of the URI. */
static void test_changes_unacked_by_a_killed_consumer_come_back(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name, "CREATE TABLE t (id int PRIMARY KEY)", &g, uri,
                   sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    char out[512];
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, sizeof out, "%s/consume-killed-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[] = {"consume", "--gateway", g.addr, "--uri", uri, NULL};
    pid_t pid = harness_spawn(out, args);
    if (wait_lines(out, 1, 30000) < 1) {
        harness_print_log_tail(out, 20);
        unit_fail(__FILE__, __LINE__, "consume printed nothing");
    }
    kill(pid, SIGSTOP); /* it still holds its stream but handles nothing */
    harness_exec(c, "INSERT INTO t VALUES (2)");
    harness_exec(c, "INSERT INTO t VALUES (3)");
    harness_sleep_ms(500); /* let the gateway send them to the frozen consumer */
    kill(pid, SIGKILL);
    harness_wait_exit(pid, 10000);
    collector *k = collector_new(g.addr, uri, NULL);
    char err[256] = "";
    int rc = collect_run(k, 2, err, sizeof err);
    int got2 = 0, got3 = 0;
    for (int i = 0; i < k->n; i++) {
        got2 += strstr(k->json[i], "\"new\":{\"id\":2}") != NULL;
        got3 += strstr(k->json[i], "\"new\":{\"id\":3}") != NULL;
    }
    /* Row 1 may come back too if the kill beat its ack (at-least-once); 2 and 3 must. */
    if (rc != PGC_OK || got2 != 1 || got3 != 1)
        unit_fail(__FILE__, __LINE__, "status %d (%s): row 2 seen %d times, row 3 %d times", rc,
                  err, got2, got3);
}

/* The agent recreated a lost slot knowingly (--accept-slot-recreate): `pgcapture consume`
 * prints row 1, then the pgcapture.gaps marker saying what is missing, then row 3 (row 2,
 * written while the slot was gone, is not in the log), although its TableRegex matches only
 * t: a gap concerns every table. */
static void test_consume_prints_the_gap_marker_in_order_whatever_the_table_regex(void)
{
    char db[256], name[64], uri[80], log[512], sql[256];
    gwfixture g;
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    pid_t agent = harness_agent_start(db, name, NULL, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    gateway_start(&g);
    snprintf(uri, sizeof uri, "u_%s", name);
    char out[512];
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, sizeof out, "%s/consume-gap-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[] = {"consume", "--gateway",     g.addr, "--uri",
                          uri,       "--table-regex", "^t$",  NULL};
    pid_t pid = harness_spawn(out, args);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    if (wait_lines(out, 1, 30000) < 1) {
        harness_print_log_tail(out, 20);
        unit_fail(__FILE__, __LINE__, "consume printed nothing");
    }
    kill(agent, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(agent, 30000));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s' AND "
             "active",
             name);
    long long deadline = harness_now_ms() + 30000;
    while (harness_query_int(c, sql) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    snprintf(sql, sizeof sql, "SELECT pg_drop_replication_slot('pgcapture_%s')", name);
    harness_exec(c, sql);
    harness_exec(c, "INSERT INTO t VALUES (2)");
    const char *recreate[] = {"--accept-slot-recreate", NULL};
    harness_agent_start(db, name, recreate, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO t VALUES (3)");
    int n = wait_lines(out, 3, 30000);
    kill(pid, SIGINT);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 10000));
    FILE *f = fopen(out, "r");
    EXPECT_TRUE(f != NULL);
    char line[4096], order[8] = "";
    size_t o = 0;
    while (fgets(line, sizeof line, f) && o < sizeof order - 1) {
        if (strstr(line, "\"table\":\"t\"") && strstr(line, "\"new\":{\"id\":1}"))
            order[o++] = '1';
        else if (strstr(line, "\"table\":\"t\"") && strstr(line, "\"new\":{\"id\":3}"))
            order[o++] = '3';
        else if (strstr(line, "\"schema\":\"pgcapture\",\"table\":\"gaps\"") &&
                 strstr(line, "\"op\":\"INSERT\"") && strstr(line, "\"reason\":\"slot lost\"") &&
                 strstr(line, "\"after\":") && strstr(line, "\"resume_lsn\":") &&
                 strstr(line, "\"detected_at\":"))
            order[o++] = 'G';
    }
    fclose(f);
    if (n < 3 || strcmp(order, "1G3") != 0)
        harness_print_log_tail(out, 20);
    EXPECT_EQ_STR("1G3", order);
}

static void test_consume_prints_json_lines_and_exits_cleanly_on_sigint(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name, "CREATE TABLE t (id int PRIMARY KEY, p point)",
                   &g, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO t VALUES (1, NULL), (2, '(1,2)')");
    char out[512];
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, sizeof out, "%s/consume-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[] = {"consume", "--gateway", g.addr, "--uri", uri, NULL};
    pid_t pid = harness_spawn(out, args);
    /* Row 1 prints; row 2 has a point (no decoder): requeued with the reason on stderr
     * (same log). */
    int n = wait_lines(out, 2, 30000);
    if (n < 2) {
        harness_print_log_tail(out, 20);
        unit_fail(__FILE__, __LINE__, "expected a JSON line and requeue messages, got %d lines", n);
    }
    kill(pid, SIGINT);
    int st = harness_wait_exit(pid, 10000);
    FILE *f = fopen(out, "r");
    EXPECT_TRUE(f != NULL);
    char line[4096];
    int json_lines = 0, requeues = 0;
    while (fgets(line, sizeof line, f)) {
        static const char head[] = "{\"schema\":\"public\",\"table\":\"t\",\"op\":\"INSERT\"";
        if (strncmp(line, head, sizeof head - 1) == 0 &&
            strstr(line, "\"new\":{\"id\":1,\"p\":null}}"))
            json_lines++;
        if (strstr(line, "requeued") && strstr(line, "600"))
            requeues++;
    }
    fclose(f);
    if (json_lines != 1 || requeues < 1 || st != 0) {
        harness_print_log_tail(out, 20);
        unit_fail(__FILE__, __LINE__, "json lines %d (want 1), requeues %d (want >= 1), exit %d",
                  json_lines, requeues, st);
    }
}

/* `pgcapture consume | head -1`: once the reader is gone the next write fails, that change
 * is given back (not acked), and consume exits 0. */
static void test_consume_exits_cleanly_when_its_reader_goes_away(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name, "CREATE TABLE t (id int PRIMARY KEY)", &g, uri,
                   sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    int fds[2];
    EXPECT_EQ_INT(0, pipe(fds));
    const char *bin = getenv("PGC_TEST_BIN");
    EXPECT_TRUE(bin != NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "consume", "--gateway", g.addr, "--uri", uri, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[1024];
    FILE *in = fdopen(fds[0], "r");
    EXPECT_TRUE(in != NULL);
    char *got = fgets(line, sizeof line, in);
    fclose(in); /* the reader goes away, like head -1 */
    if (!got || !strstr(line, "\"new\":{\"id\":1}")) {
        kill(pid, SIGKILL);
        harness_wait_exit(pid, 5000);
        unit_fail(__FILE__, __LINE__, "expected the first change as JSON, got %s",
                  got ? line : "EOF");
    }
    harness_exec(c, "INSERT INTO t VALUES (2)");
    int st = harness_wait_exit(pid, 30000);
    if (st < 0) {
        kill(pid, SIGKILL);
        harness_wait_exit(pid, 5000);
    }
    EXPECT_EQ_INT(0, st);
}

static void test_example_consumer_binds_and_prints(void)
{
    char db[256], name[64], uri[80];
    gwfixture g;
    start_pipeline(db, sizeof db, name, sizeof name,
                   "CREATE TABLE users (id int8 PRIMARY KEY, name text, bio text); "
                   "ALTER TABLE users ALTER bio SET STORAGE EXTERNAL",
                   &g, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO users VALUES (7, 'ann', repeat('y', 4000))");
    harness_exec(c, "UPDATE users SET name = 'anna' WHERE id = 7");
    char bin[1024], out[512];
    const char *pgc = getenv("PGC_TEST_BIN");
    EXPECT_TRUE(pgc != NULL);
    snprintf(bin, sizeof bin, "%.*s/examples/consumer", (int)(strrchr(pgc, '/') - pgc), pgc);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, sizeof out, "%s/example-%s.log", dir && *dir ? dir : "/tmp", name);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *o = freopen(out, "w", stdout);
        (void)o;
        execl(bin, bin, g.addr, uri, "2", (char *)NULL);
        _exit(127);
    }
    int st = harness_wait_exit(pid, 30000);
    if (st != 0) {
        kill(pid, SIGKILL);
        harness_wait_exit(pid, 5000);
        harness_print_log_tail(out, 20);
        unit_fail(__FILE__, __LINE__, "examples/consumer exited with %d", st);
    }
    FILE *f = fopen(out, "r");
    EXPECT_TRUE(f != NULL);
    char line[16384];
    int inserted = 0, unchanged = 0;
    while (fgets(line, sizeof line, f)) {
        inserted += strncmp(line, "user 7 name=ann bio=yyyy", 24) == 0;
        unchanged += strcmp(line, "user 7 name=anna bio=(unchanged TOAST)\n") == 0;
    }
    fclose(f);
    EXPECT_EQ_INT(1, inserted);
    EXPECT_EQ_INT(1, unchanged);
}

UNIT_MAIN(UNIT_CASE(test_rows_arrive_with_the_servers_values_and_toast_absent),
          UNIT_CASE(test_requeued_change_comes_back_and_acked_ones_do_not),
          UNIT_CASE(test_per_change_mode_requeues_and_acks_the_same_way),
          UNIT_CASE(test_table_regex_filters_and_refusals_map_to_statuses),
          UNIT_CASE(test_consume_prints_the_gap_marker_in_order_whatever_the_table_regex),
          UNIT_CASE(test_consume_prints_json_lines_and_exits_cleanly_on_sigint),
          UNIT_CASE(test_consume_exits_cleanly_when_its_reader_goes_away),
          UNIT_CASE(test_two_consumers_on_one_uri_together_receive_every_change),
          UNIT_CASE(test_changes_unacked_by_a_killed_consumer_come_back),
          UNIT_CASE(test_example_consumer_binds_and_prints))
