/* Each role's /metrics scraped during a live workload: the counters move exactly as the
 * data does (changes published and rows applied equal rows written), the lag gauges
 * return to 0 at rest, and `promtool check metrics` accepts what a running role serves. */
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/scrape.h"
#include "harness/services.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS_PER_TXN 100
#define TXNS 5

typedef struct pair {
    char src[512], rep[512], name[64];
    PGconn *s, *r;
    int agent_port, replica_port;
    char agent_log[512], replica_log[512];
} pair;

static void start_replica(pair *p)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(p->replica_log, sizeof p->replica_log, "%s/scrape-replica-%s.log",
             dir && *dir ? dir : "/tmp", p->name);
    char listen[64];
    p->replica_port = harness_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", p->replica_port);
    const char *args[] = {"replica",
                          "--replica",
                          p->rep,
                          "--nats-url",
                          harness_nats_url(),
                          "--name",
                          p->name,
                          "--metrics-listen",
                          listen,
                          "--retry-max",
                          "500ms",
                          NULL};
    harness_spawn(p->replica_log, args);
}

/* Source and replica with the same table (created before the agent: no DDL in the log),
 * the agent streaming with metrics on. */
static void setup(pair *p)
{
    memset(p, 0, sizeof *p);
    harness_db_create(true, p->src, sizeof p->src);
    harness_replica_db_create(true, p->rep, sizeof p->rep);
    harness_unique_name(p->name, sizeof p->name);
    p->s = harness_connect(p->src);
    p->r = harness_connect(p->rep);
    harness_exec(p->s, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    harness_exec(p->r, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    char listen[64];
    p->agent_port = harness_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", p->agent_port);
    const char *extra[] = {"--metrics-listen", listen, NULL};
    harness_agent_start(p->src, p->name, extra, p->agent_log, sizeof p->agent_log);
    harness_agent_wait_streaming(p->src, p->name, p->agent_log, 60000);
}

static void write_rows(pair *p)
{
    char sql[256];
    for (int t = 0; t < TXNS; t++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO t SELECT i, 'row ' || i FROM generate_series(%d, %d) i",
                 t * ROWS_PER_TXN + 1, (t + 1) * ROWS_PER_TXN);
        harness_exec(p->s, sql);
    }
}

static double scrape(int port, const char *series)
{
    static char body[1 << 18];
    EXPECT_EQ_INT(200, harness_http_get(port, "/metrics", body, sizeof body));
    return harness_metric(body, series);
}

/* Waits until `series` equals `want` (gauges that settle); fails after timeout_ms. */
static void wait_equal(int port, const char *series, double want, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    double v = NAN;
    while ((v = scrape(port, series)) != want) {
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "%s: expected %g, got %g", series, want, v);
        harness_sleep_ms(200);
    }
}

static void expect_promtool_accepts(int port)
{
    static char body[1 << 18];
    EXPECT_EQ_INT(200, harness_http_get(port, "/metrics", body, sizeof body));
    char path[] = "/tmp/pgc-scrape-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    size_t len = strlen(body);
    EXPECT_EQ_INT((long long)len, (long long)write(fd, body, len));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics <%s >%s.out 2>&1", path, path);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "%s.out", path);
        harness_print_log_tail(cmd, 20);
    }
    snprintf(cmd, sizeof cmd, "rm -f %s %s.out", path, path);
    if (system(cmd) != 0) {
        /* Only a temp file left behind. */
    }
    EXPECT_EQ_INT(0, rc);
}

static void test_agent_and_replica_count_exactly_what_was_written(void)
{
    pair p;
    setup(&p);
    start_replica(&p);
    char s[256];
    snprintf(s, sizeof s, "pgcapture_build_info{version=\"%s\",role=\"agent\"}", "0.1.0");
    EXPECT_TRUE(scrape(p.agent_port, s) == 1);

    write_rows(&p);
    const int rows = TXNS * ROWS_PER_TXN;
    snprintf(s, sizeof s, "pgcapture_agent_changes_published_total{source=\"%s\"}", p.name);
    harness_metric_wait(p.agent_port, s, rows, 60000);
    EXPECT_EQ_INT(rows, (long long)scrape(p.agent_port, s));
    snprintf(s, sizeof s, "pgcapture_agent_changes_read_total{source=\"%s\"}", p.name);
    EXPECT_EQ_INT(rows, (long long)scrape(p.agent_port, s));
    snprintf(s, sizeof s, "pgcapture_agent_transactions_published_total{source=\"%s\"}", p.name);
    EXPECT_EQ_INT(TXNS, (long long)scrape(p.agent_port, s));
    snprintf(s, sizeof s, "pgcapture_agent_publish_latency_seconds_count{source=\"%s\"}", p.name);
    EXPECT_TRUE(scrape(p.agent_port, s) >= 1);
    snprintf(s, sizeof s, "pgcapture_agent_slot_confirmed_lsn{source=\"%s\"}", p.name);
    EXPECT_TRUE(scrape(p.agent_port, s) > 0);
    snprintf(s, sizeof s, "pgcapture_agent_last_commit_timestamp_seconds{source=\"%s\"}", p.name);
    EXPECT_TRUE(scrape(p.agent_port, s) > 1.7e9);
    snprintf(s, sizeof s, "pgcapture_agent_in_flight_bytes{source=\"%s\"}", p.name);
    wait_equal(p.agent_port, s, 0, 30000);
    snprintf(s, sizeof s, "pgcapture_agent_slot_wal_status{source=\"%s\",status=\"reserved\"}",
             p.name);
    wait_equal(p.agent_port, s, 1, 30000);
    /* At rest the slot catches up with the server's WAL (--confirm-delay 0 in tests): what
     * is left is the few records written since the last confirmation. */
    snprintf(s, sizeof s, "pgcapture_agent_slot_wal_behind_bytes{source=\"%s\"}", p.name);
    long long deadline = harness_now_ms() + 60000;
    double behind;
    while (!((behind = scrape(p.agent_port, s)) < 65536)) {
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "%s stayed at %g", s, behind);
        harness_sleep_ms(300);
    }

    snprintf(s, sizeof s, "pgcapture_replica_rows_applied_total{source=\"%s\"}", p.name);
    harness_metric_wait(p.replica_port, s, rows, 60000);
    EXPECT_EQ_INT(rows, (long long)scrape(p.replica_port, s));
    EXPECT_EQ_INT(rows, harness_query_int(p.r, "SELECT count(*) FROM t"));
    snprintf(s, sizeof s, "pgcapture_replica_transactions_applied_total{source=\"%s\"}", p.name);
    EXPECT_EQ_INT(TXNS, (long long)scrape(p.replica_port, s));
    snprintf(s, sizeof s, "pgcapture_replica_applied_lsn{source=\"%s\"}", p.name);
    EXPECT_TRUE(scrape(p.replica_port, s) > 0);
    snprintf(s, sizeof s, "pgcapture_replica_lag_seconds{source=\"%s\"}", p.name);
    wait_equal(p.replica_port, s, 0, 30000);
    snprintf(s, sizeof s, "pgcapture_replica_lag_bytes{source=\"%s\"}", p.name);
    wait_equal(p.replica_port, s, 0, 30000);

    /* More writes move both again, by exactly as much. */
    harness_exec(p.s, "UPDATE t SET v = 'again' WHERE id <= 10");
    snprintf(s, sizeof s, "pgcapture_agent_changes_published_total{source=\"%s\"}", p.name);
    harness_metric_wait(p.agent_port, s, rows + 10, 60000);
    EXPECT_EQ_INT(rows + 10, (long long)scrape(p.agent_port, s));
    snprintf(s, sizeof s, "pgcapture_replica_rows_applied_total{source=\"%s\"}", p.name);
    harness_metric_wait(p.replica_port, s, rows + 10, 60000);
    EXPECT_EQ_INT(rows + 10, (long long)scrape(p.replica_port, s));

    char body[256];
    EXPECT_EQ_INT(200, harness_http_get(p.agent_port, "/readyz", body, sizeof body));
    EXPECT_EQ_INT(200, harness_http_get(p.replica_port, "/readyz", body, sizeof body));
    expect_promtool_accepts(p.agent_port);
    expect_promtool_accepts(p.replica_port);
}

static long long count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    long long n = 0;
    char line[4096];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    if (f)
        fclose(f);
    return n;
}

/* The gateway counts what a consumer gets and acks, and its lag returns to 0 once the
 * consumer has acked everything; the controller counts a dump's item through to done. */
static void test_gateway_and_controller_count_a_consumers_changes_and_dump(void)
{
    pair p;
    setup(&p);
    start_replica(&p);
    write_rows(&p);
    const int rows = TXNS * ROWS_PER_TXN;
    char s[256];
    snprintf(s, sizeof s, "pgcapture_replica_rows_applied_total{source=\"%s\"}", p.name);
    harness_metric_wait(p.replica_port, s, rows, 60000);

    harness_controller ctl;
    char ctl_metrics[64];
    int ctl_port = harness_free_port();
    snprintf(ctl_metrics, sizeof ctl_metrics, "127.0.0.1:%d", ctl_port);
    const char *ctl_extra[] = {"--metrics-listen", ctl_metrics, NULL};
    harness_controller_start(&ctl, ctl_extra);

    const char *dir = getenv("PGC_TEST_LOGDIR");
    char conf[600], gw_log[600], consume_log[600], gw_addr[64], gw_metrics[64], uri[80];
    snprintf(uri, sizeof uri, "u_%s", p.name);
    snprintf(conf, sizeof conf, "%s/scrape-%s.uris", dir && *dir ? dir : "/tmp", p.name);
    snprintf(gw_log, sizeof gw_log, "%s/scrape-gateway-%s.log", dir && *dir ? dir : "/tmp", p.name);
    snprintf(consume_log, sizeof consume_log, "%s/scrape-consume-%s.out",
             dir && *dir ? dir : "/tmp", p.name);
    FILE *f = fopen(conf, "w");
    EXPECT_TRUE(f != NULL);
    fprintf(f, "[%s]\nsource = %s\nreplica = %s\n", uri, p.name, p.rep);
    fclose(f);
    snprintf(gw_addr, sizeof gw_addr, "127.0.0.1:%d", harness_free_port());
    int gw_port = harness_free_port();
    snprintf(gw_metrics, sizeof gw_metrics, "127.0.0.1:%d", gw_port);
    const char *gw_args[] = {
        "gateway",          "--uri-config", conf,     "--listen",         gw_addr,    "--nats-url",
        harness_nats_url(), "--controller", ctl.addr, "--metrics-listen", gw_metrics, NULL};
    harness_spawn(gw_log, gw_args);
    harness_health_wait(gw_addr, "", "SERVING", 30000);

    const char *consume_args[] = {"consume", "--gateway", gw_addr, "--uri", uri, NULL};
    harness_spawn(consume_log, consume_args);
    snprintf(s, sizeof s, "pgcapture_gateway_changes_acked_total{uri=\"%s\"}", uri);
    harness_metric_wait(gw_port, s, rows, 60000);
    EXPECT_EQ_INT(rows, (long long)scrape(gw_port, s));
    EXPECT_EQ_INT(rows, count_lines(consume_log, "\"table\":\"t\""));
    snprintf(s, sizeof s, "pgcapture_gateway_changes_sent_total{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(rows, (long long)scrape(gw_port, s));
    snprintf(s, sizeof s, "pgcapture_gateway_changes_requeued_total{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(0, (long long)scrape(gw_port, s));
    snprintf(s, sizeof s, "pgcapture_gateway_ack_latency_seconds_count{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(rows, (long long)scrape(gw_port, s));
    snprintf(s, sizeof s, "pgcapture_gateway_streams{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(1, (long long)scrape(gw_port, s));
    snprintf(s, sizeof s, "pgcapture_gateway_lag_seconds{uri=\"%s\"}", uri);
    wait_equal(gw_port, s, 0, 30000);
    snprintf(s, sizeof s, "pgcapture_gateway_pending_messages{uri=\"%s\"}", uri);
    wait_equal(gw_port, s, 0, 30000);

    /* A dump of the whole table: one item, every row sent, the item done. */
    harness_controller_schedule(&ctl, uri, "public", "t", 0, 1000);
    snprintf(s, sizeof s, "pgcapture_controller_items_done_total{uri=\"%s\"}", uri);
    harness_metric_wait(ctl_port, s, 1, 60000);
    snprintf(s, sizeof s, "pgcapture_controller_items_pending{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(0, (long long)scrape(ctl_port, s));
    snprintf(s, sizeof s, "pgcapture_controller_items_outstanding{uri=\"%s\"}", uri);
    wait_equal(ctl_port, s, 0, 10000);
    snprintf(s, sizeof s, "pgcapture_gateway_dump_rows_sent_total{uri=\"%s\"}", uri);
    EXPECT_EQ_INT(rows, (long long)scrape(gw_port, s));
    EXPECT_EQ_INT(rows, count_lines(consume_log, "\"lsn\":\"0/0\""));
    snprintf(s, sizeof s, "pgcapture_gateway_hold_duration_seconds_count{uri=\"%s\"}", uri);
    EXPECT_TRUE(scrape(gw_port, s) >= 1);
    expect_promtool_accepts(gw_port);
    expect_promtool_accepts(ctl_port);
}

UNIT_MAIN(UNIT_CASE(test_agent_and_replica_count_exactly_what_was_written),
          UNIT_CASE(test_gateway_and_controller_count_a_consumers_changes_and_dump))
