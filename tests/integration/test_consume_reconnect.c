/* `pgcapture consume` survives a gateway restart: the lost stream is reopened with capped
 * back-off (each attempt said on stderr) and the changes committed meanwhile arrive; with
 * --reconnect=false it exits with an error instead; with --ack-window its acks still all
 * land before it exits. The gateway is embedded here through
 * the public API and restarted on the same port. */
#include "harness/runner.h"
#include "harness/gwfixture.h"
#include "harness/fixtures.h"

#include "pgcapture.h"
#include "pgcapture/gateway.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void gateway_free(void *arg)
{
    gwfixture *g = arg;
    pgc_gateway_destroy(g->gw);
    free(g);
}

static gwfixture *start_pipeline(char *db, size_t db_len, char *uri, size_t uri_len)
{
    char name[64], log[512];
    harness_db_create(false, db, db_len);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    harness_agent_start(db, name, NULL, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    gwfixture *g = calloc(1, sizeof *g);
    if (!g)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(gateway_free, g);
    gwfixture_start(g);
    snprintf(uri, uri_len, "u_%s", name);
    return g;
}

/* How many lines of `path` contain `needle`. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Waits until at least `want` lines of `path` contain `needle`; fails the case otherwise. */
static void wait_for_lines(const char *path, const char *needle, int want, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    int n;
    while ((n = count_lines(path, needle)) < want && harness_now_ms() < until)
        harness_sleep_ms(50);
    if (n < want) {
        harness_print_log_tail(path, 30);
        unit_fail(__FILE__, __LINE__, "expected %d lines with %s in %s within %d ms, got %d", want,
                  needle, path, timeout_ms, n);
    }
}

static void log_path(char *out, size_t len, const char *uri, const char *what)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, len, "%s/consume-%s-%s.log", dir && *dir ? dir : "/tmp", what, uri);
}

static void test_consume_reconnects_after_a_gateway_restart_and_gets_later_changes(void)
{
    char db[256], uri[80], out[512];
    gwfixture *g = start_pipeline(db, sizeof db, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    log_path(out, sizeof out, uri, "reconnect");
    const char *args[] = {"consume", "--gateway", g->addr, "--uri", uri, "--reconnect-max-delay",
                          "400ms",   NULL};
    pid_t pid = harness_spawn(out, args);

    harness_exec(c, "INSERT INTO t VALUES (1)");
    wait_for_lines(out, "\"new\":{\"id\":1}", 1, 30000);

    gwfixture_stop(g, 1000);
    /* Committed while no gateway runs: it waits in JetStream. */
    harness_exec(c, "INSERT INTO t VALUES (2)");
    wait_for_lines(out, "reconnecting in", 2, 15000);
    EXPECT_EQ_INT(-1, harness_wait_exit(pid, 0)); /* still running */

    gwfixture_start(g);
    wait_for_lines(out, "\"new\":{\"id\":2}", 1, 30000);
    harness_exec(c, "INSERT INTO t VALUES (3)");
    wait_for_lines(out, "\"new\":{\"id\":3}", 1, 30000);

    kill(pid, SIGINT);
    int st = harness_wait_exit(pid, 10000);
    if (st != 0) {
        harness_print_log_tail(out, 30);
        unit_fail(__FILE__, __LINE__, "consume exited with %d after SIGINT, expected 0", st);
    }
    /* Row 1 was acked before the restart: it does not come again. */
    EXPECT_EQ_INT(1, count_lines(out, "\"new\":{\"id\":1}"));
    /* The back-off is capped: 100, 200, then 400 ms at most. */
    EXPECT_EQ_INT(0, count_lines(out, "reconnecting in 800 ms"));
}

static void test_consume_without_reconnect_exits_when_the_gateway_goes_away(void)
{
    char db[256], uri[80], out[512];
    gwfixture *g = start_pipeline(db, sizeof db, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    log_path(out, sizeof out, uri, "noreconnect");
    const char *args[] = {"consume", "--gateway", g->addr, "--uri", uri, "--reconnect=false", NULL};
    pid_t pid = harness_spawn(out, args);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    wait_for_lines(out, "\"new\":{\"id\":1}", 1, 30000);
    gwfixture_stop(g, 1000);
    int st = harness_wait_exit(pid, 10000);
    if (st != 1) {
        harness_print_log_tail(out, 30);
        unit_fail(__FILE__, __LINE__, "consume --reconnect=false exited with %d, expected 1", st);
    }
    EXPECT_EQ_INT(0, count_lines(out, "reconnecting in"));
    /* A stopping gateway ends its streams with UNAVAILABLE: that is what consume says. */
    char what[160];
    snprintf(what, sizeof what, "the gateway at %s is unavailable (UNAVAILABLE: ", g->addr);
    if (count_lines(out, what) != 1) {
        harness_print_log_tail(out, 30);
        unit_fail(__FILE__, __LINE__, "expected one line with \"%s\"", what);
    }
}

/* With --ack-window the acks go out on the consumer's sender thread; those decided before
 * a SIGINT still reach the gateway: the next consumer of the URI gets only newer rows. */
static void test_consume_with_an_ack_window_acks_every_line_before_it_exits(void)
{
    char db[256], uri[80], out1[512], out2[512];
    gwfixture *g = start_pipeline(db, sizeof db, uri, sizeof uri);
    PGconn *c = harness_connect(db);
    log_path(out1, sizeof out1, uri, "window1");
    log_path(out2, sizeof out2, uri, "window2");
    const char *args1[] = {"consume", "--gateway",    g->addr, "--uri",
                           uri,       "--ack-window", "16",    NULL};
    pid_t pid = harness_spawn(out1, args1);
    harness_exec(c, "INSERT INTO t SELECT g FROM generate_series(1, 50) g");
    wait_for_lines(out1, "\"op\":\"INSERT\"", 50, 30000);
    kill(pid, SIGINT);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 10000));

    harness_exec(c, "INSERT INTO t VALUES (51)");
    const char *args2[] = {"consume", "--gateway", g->addr, "--uri", uri, NULL};
    pid = harness_spawn(out2, args2);
    wait_for_lines(out2, "\"new\":{\"id\":51}", 1, 30000);
    harness_sleep_ms(1000); /* room for a wrong redelivery (the retry delay is 200 ms) */
    kill(pid, SIGINT);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 10000));
    int n = count_lines(out2, "\"op\":\"INSERT\"");
    if (n != 1) {
        harness_print_log_tail(out2, 30);
        unit_fail(__FILE__, __LINE__, "the second consumer got %d changes, expected only row 51",
                  n);
    }
}

UNIT_MAIN(UNIT_CASE(test_consume_reconnects_after_a_gateway_restart_and_gets_later_changes),
          UNIT_CASE(test_consume_without_reconnect_exits_when_the_gateway_goes_away),
          UNIT_CASE(test_consume_with_an_ack_window_acks_every_line_before_it_exits))
