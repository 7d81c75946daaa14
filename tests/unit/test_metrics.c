/* Metrics registry: exact Prometheus text, label escaping, lock-free updates that add up
 * across threads, and `promtool check metrics` accepting the exposition of every metric
 * in the table. */
#include "harness/runner.h"

#include "core/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const metric_def defs[] = {
    {"t_events_total", METRIC_COUNTER, "uri", METRIC_BUCKETS_NONE, "Events seen"},
    {"t_level", METRIC_GAUGE, "", METRIC_BUCKETS_NONE, "A level\nwith \\ and a newline"},
    {"t_wait_seconds", METRIC_HISTOGRAM, "source,role", METRIC_BUCKETS_SECONDS, "Waits"},
};

static void destroy_registry(void *r)
{
    metrics_registry_destroy(r);
}

static metrics_registry *new_registry(void)
{
    metrics_registry *r = metrics_registry_create(defs, sizeof defs / sizeof defs[0]);
    EXPECT_TRUE(r != NULL);
    unit_defer(destroy_registry, r);
    return r;
}

static char *render(metrics_registry *r)
{
    size_t len = 0;
    char *text = metrics_render(r, &len);
    EXPECT_TRUE(text != NULL);
    unit_defer(free, text);
    EXPECT_EQ_UINT(strlen(text), len);
    return text;
}

static void test_counter_and_gauge_render_in_text_format(void)
{
    metrics_registry *r = new_registry();
    const char *a[] = {"app"};
    metric *m = metrics_series(r, 0, a);
    metric_inc(m);
    metric_add(m, 41);
    EXPECT_TRUE(metrics_series(r, 0, a) == m);
    metric *level = metrics_series(r, 1, NULL);
    metric_set(level, 2.5);
    metric_gauge_add(level, -1);
    char *text = render(r);
    EXPECT_TRUE(strstr(text, "# HELP t_events_total Events seen\n"
                             "# TYPE t_events_total counter\n"
                             "t_events_total{uri=\"app\"} 42\n") != NULL);
    EXPECT_TRUE(strstr(text, "# HELP t_level A level\\nwith \\\\ and a newline\n"
                             "# TYPE t_level gauge\nt_level 1.5\n") != NULL);
    EXPECT_TRUE(strstr(text, "# TYPE t_wait_seconds histogram\n") != NULL);
}

static void test_label_values_are_escaped(void)
{
    metrics_registry *r = new_registry();
    const char *evil[] = {"a\"b\\c\nd"};
    metric_inc(metrics_series(r, 0, evil));
    char *text = render(r);
    EXPECT_TRUE(strstr(text, "t_events_total{uri=\"a\\\"b\\\\c\\nd\"} 1\n") != NULL);
}

static void test_histogram_buckets_are_cumulative_with_sum_and_count(void)
{
    metrics_registry *r = new_registry();
    const char *l[] = {"app", "agent"};
    metric *h = metrics_series(r, 2, l);
    metric_observe(h, 0.0004);
    metric_observe_n(h, 0.003, 2); /* as metric_observe twice */
    metric_observe(h, 60);
    metric_observe_n(h, 1, 0); /* nothing */
    EXPECT_EQ_INT(4, (long long)metric_value(h));
    char *text = render(r);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_bucket{source=\"app\",role=\"agent\",le=\"0.0005\"} "
                             "1\n") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_bucket{source=\"app\",role=\"agent\",le=\"0.0025\"} "
                             "1\n") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_bucket{source=\"app\",role=\"agent\",le=\"0.005\"} "
                             "3\n") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_bucket{source=\"app\",role=\"agent\",le=\"10\"} "
                             "3\n") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_bucket{source=\"app\",role=\"agent\",le=\"+Inf\"} "
                             "4\n") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_sum{source=\"app\",role=\"agent\"} 60.0064") != NULL);
    EXPECT_TRUE(strstr(text, "t_wait_seconds_count{source=\"app\",role=\"agent\"} 4\n") != NULL);
}

static void test_missing_label_value_gives_no_series_and_updates_ignore_null(void)
{
    metrics_registry *r = new_registry();
    const char *none[] = {NULL};
    EXPECT_TRUE(metrics_series(r, 0, none) == NULL);
    EXPECT_TRUE(metrics_series(r, 0, NULL) == NULL);
    EXPECT_TRUE(metrics_series(r, 99, none) == NULL);
    metric_inc(NULL);
    metric_set(NULL, 1);
    metric_observe(NULL, 1);
    EXPECT_TRUE(metric_value(NULL) == 0);
}

static void test_nan_and_infinite_gauges_render_as_prometheus_spells_them(void)
{
    metrics_registry *r = new_registry();
    metric *level = metrics_series(r, 1, NULL);
    metric_set(level, NAN);
    EXPECT_TRUE(strstr(render(r), "\nt_level NaN\n") != NULL);
    metric_set(level, -INFINITY);
    EXPECT_TRUE(strstr(render(r), "\nt_level -Inf\n") != NULL);
}

typedef struct hammer_arg {
    metrics_registry *r;
    int n;
} hammer_arg;

static void *hammer(void *p)
{
    hammer_arg *a = p;
    const char *l[] = {"shared"};
    const char *hl[] = {"s", "r"};
    metric *c = metrics_series(a->r, 0, l);
    metric *g = metrics_series(a->r, 1, NULL);
    metric *h = metrics_series(a->r, 2, hl);
    for (int i = 0; i < a->n; i++) {
        metric_inc(c);
        metric_gauge_add(g, 0.5);
        metric_observe(h, 0.001);
    }
    return NULL;
}

static void test_concurrent_updates_add_up(void)
{
    metrics_registry *r = new_registry();
    enum { THREADS = 4, N = 50000 };
    pthread_t t[THREADS];
    hammer_arg a = {r, N};
    for (int i = 0; i < THREADS; i++)
        EXPECT_EQ_INT(0, pthread_create(&t[i], NULL, hammer, &a));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    const char *l[] = {"shared"};
    const char *hl[] = {"s", "r"};
    EXPECT_EQ_INT(THREADS * N, (long long)metric_value(metrics_series(r, 0, l)));
    EXPECT_EQ_INT(THREADS * N / 2, (long long)metric_value(metrics_series(r, 1, NULL)));
    EXPECT_EQ_INT(THREADS * N, (long long)metric_value(metrics_series(r, 2, hl)));
}

static void test_default_registry_has_every_table_metric(void)
{
    metrics_registry *r = metrics_default();
    EXPECT_TRUE(r != NULL);
    EXPECT_TRUE(metrics_get(METRIC_AGENT_RECONNECTS, "app") ==
                metrics_get(METRIC_AGENT_RECONNECTS, "app"));
    size_t len;
    char *text = metrics_render(r, &len);
    EXPECT_TRUE(text != NULL);
    unit_defer(free, text);
#define PGC_METRIC_CHECK(id, type, name, labels, buckets, help)                                    \
    EXPECT_TRUE(strstr(text, "# TYPE " name " ") != NULL);
    PGC_METRICS_TABLE(PGC_METRIC_CHECK)
#undef PGC_METRIC_CHECK
}

/* Every family of the table with a series, labels that need escaping included, through
 * promtool (CI installs it: scripts/install-deps). */
static void test_promtool_accepts_the_exposition(void)
{
    metrics_registry *r = metrics_default();
    metric_set(metrics_get(METRIC_BUILD_INFO, "0.1", "agent"), 1);
    metric_observe(metrics_get(METRIC_AGENT_PUBLISH_LATENCY, "app \"x\"\\y"), 0.01);
    metric_observe(metrics_get(METRIC_AGENT_BATCH_BYTES, "app"), 3000);
    metric_set(metrics_get(METRIC_AGENT_SAFE_WAL_SIZE, "app"), NAN);
    metric_inc(metrics_get(METRIC_GATEWAY_CHANGES_SENT, "uri\nwith newline"));
    metric_set(metrics_get(METRIC_AGENT_WAL_STATUS, "app", "reserved"), 1);
    size_t len;
    char *text = metrics_render(r, &len);
    EXPECT_TRUE(text != NULL);
    unit_defer(free, text);
    char path[] = "/tmp/pgc-metrics-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    EXPECT_EQ_INT((long long)len, (long long)write(fd, text, len));
    close(fd);
    char cmd[300], out[4096] = "";
    snprintf(cmd, sizeof cmd, "promtool check metrics <%s 2>&1; echo \"exit=$?\"", path);
    FILE *p = popen(cmd, "r");
    EXPECT_TRUE(p != NULL);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    unlink(path);
    if (!strstr(out, "exit=0"))
        unit_fail(__FILE__, __LINE__, "promtool check metrics refused the exposition:\n%s", out);
}

/* Every pgcapture_ metric the alert rules and the dashboard use is one the table defines
 * (a histogram's _bucket, _sum and _count series included). */
static void check_names_in_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot open %s (tests run from the repository root)", path);
    static const char *const names[] = {
#define PGC_METRIC_NAME(id, type, name, labels, buckets, help) name,
        PGC_METRICS_TABLE(PGC_METRIC_NAME)
#undef PGC_METRIC_NAME
    };
    char line[4096];
    int used = 0;
    while (fgets(line, sizeof line, f)) {
        for (char *p = strstr(line, "pgcapture_"); p; p = strstr(p + 1, "pgcapture_")) {
            if (p > line && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
                continue;
            char name[128];
            size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            if (n >= sizeof name)
                continue;
            memcpy(name, p, n);
            name[n] = '\0';
            bool known = false;
            for (size_t i = 0; i < sizeof names / sizeof names[0] && !known; i++) {
                size_t l = strlen(names[i]);
                known = strcmp(name, names[i]) == 0 ||
                        (strncmp(name, names[i], l) == 0 &&
                         (!strcmp(name + l, "_bucket") || !strcmp(name + l, "_sum") ||
                          !strcmp(name + l, "_count")));
            }
            if (!known) {
                fclose(f);
                unit_fail(__FILE__, __LINE__, "%s uses %s, which no metric defines", path, name);
            }
            used++;
        }
    }
    fclose(f);
    EXPECT_TRUE(used > 5);
}

static void test_alerts_and_dashboard_use_only_defined_metrics(void)
{
    check_names_in_file("deploy/prometheus/alerts.yml");
    check_names_in_file("deploy/grafana/pgcapture.json");
}

UNIT_MAIN(UNIT_CASE(test_counter_and_gauge_render_in_text_format),
          UNIT_CASE(test_label_values_are_escaped),
          UNIT_CASE(test_histogram_buckets_are_cumulative_with_sum_and_count),
          UNIT_CASE(test_missing_label_value_gives_no_series_and_updates_ignore_null),
          UNIT_CASE(test_nan_and_infinite_gauges_render_as_prometheus_spells_them),
          UNIT_CASE(test_concurrent_updates_add_up),
          UNIT_CASE(test_default_registry_has_every_table_metric),
          UNIT_CASE(test_promtool_accepts_the_exposition),
          UNIT_CASE(test_alerts_and_dashboard_use_only_defined_metrics))
