/* The metrics endpoint: /metrics serves the registry, /healthz answers while the process
 * runs, /readyz follows the dependencies' health, anything else is 404. Plain HTTP/1.0
 * requests on a loopback socket. */
#include "harness/runner.h"

#include "core/health.h"
#include "core/metrics.h"
#include "core/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const metric_def defs[] = {
    {"t_requests_total", METRIC_COUNTER, "uri", METRIC_BUCKETS_NONE, "Requests"},
};

/* GETs `path`; returns the status code and copies the body into body. */
static int http_get(int port, const char *method, const char *path, char *body, size_t body_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_TRUE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ_INT(0, connect(fd, (struct sockaddr *)&sa, sizeof sa));
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
    EXPECT_EQ_INT(n, (int)write(fd, req, (size_t)n));
    char resp[16384];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int code = 0;
    EXPECT_EQ_INT(1, sscanf(resp, "HTTP/1.%*d %d", &code));
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, body_len, "%s", b ? b + 4 : "");
    return code;
}

static void stop_server(void *h)
{
    metrics_http_stop(h);
}

static void destroy_registry(void *r)
{
    metrics_registry_destroy(r);
}

static void reset_health(void *unused)
{
    (void)unused;
    health_reset();
}

static int start(metrics_registry **reg)
{
    *reg = metrics_registry_create(defs, 1);
    EXPECT_TRUE(*reg != NULL);
    unit_defer(destroy_registry, *reg);
    metrics_http *h = NULL;
    int port = 0;
    char err[256] = "";
    if (metrics_http_start("127.0.0.1:0", *reg, &h, &port, err, sizeof err) != 0)
        unit_fail(__FILE__, __LINE__, "metrics_http_start: %s", err);
    unit_defer(stop_server, h);
    unit_defer(reset_health, NULL);
    EXPECT_TRUE(port > 0);
    return port;
}

static void test_metrics_path_serves_the_registry(void)
{
    metrics_registry *r;
    int port = start(&r);
    const char *l[] = {"app"};
    metric_add(metrics_series(r, 0, l), 7);
    char body[8192];
    EXPECT_EQ_INT(200, http_get(port, "GET", "/metrics", body, sizeof body));
    EXPECT_TRUE(strstr(body, "# TYPE t_requests_total counter\nt_requests_total{uri=\"app\"} 7\n"));
    metric_inc(metrics_series(r, 0, l));
    EXPECT_EQ_INT(200, http_get(port, "GET", "/metrics", body, sizeof body));
    EXPECT_TRUE(strstr(body, "t_requests_total{uri=\"app\"} 8\n") != NULL);
}

static void test_readyz_follows_dependencies_and_healthz_always_answers(void)
{
    metrics_registry *r;
    int port = start(&r);
    char body[512];
    EXPECT_EQ_INT(200, http_get(port, "GET", "/healthz", body, sizeof body));
    EXPECT_EQ_STR("ok\n", body);
    EXPECT_EQ_INT(503, http_get(port, "GET", "/readyz", body, sizeof body));
    EXPECT_EQ_STR("starting\n", body);
    health_set("nats", false, "connection refused");
    health_set("postgres", true, NULL);
    EXPECT_EQ_INT(503, http_get(port, "GET", "/readyz", body, sizeof body));
    EXPECT_EQ_STR("nats: connection refused\n", body);
    health_set("nats", true, NULL);
    EXPECT_EQ_INT(200, http_get(port, "GET", "/readyz", body, sizeof body));
    EXPECT_EQ_STR("ready\n", body);
    EXPECT_EQ_INT(200, http_get(port, "GET", "/healthz", body, sizeof body));
}

static void test_unknown_paths_and_methods_are_refused(void)
{
    metrics_registry *r;
    int port = start(&r);
    char body[512];
    EXPECT_EQ_INT(404, http_get(port, "GET", "/nope", body, sizeof body));
    EXPECT_EQ_INT(405, http_get(port, "DELETE", "/metrics", body, sizeof body));
}

static void test_bad_listen_addresses_are_refused(void)
{
    metrics_registry *r = metrics_registry_create(defs, 1);
    unit_defer(destroy_registry, r);
    metrics_http *h = NULL;
    char err[256];
    EXPECT_TRUE(metrics_http_start("nonsense", r, &h, NULL, err, sizeof err) < 0);
    EXPECT_TRUE(strstr(err, "host:port") != NULL);
    EXPECT_TRUE(metrics_http_start("host.invalid:80", r, &h, NULL, err, sizeof err) < 0);
    EXPECT_TRUE(metrics_http_start("127.0.0.1:99999", r, &h, NULL, err, sizeof err) < 0);
}

UNIT_MAIN(UNIT_CASE(test_metrics_path_serves_the_registry),
          UNIT_CASE(test_readyz_follows_dependencies_and_healthz_always_answers),
          UNIT_CASE(test_unknown_paths_and_methods_are_refused),
          UNIT_CASE(test_bad_listen_addresses_are_refused))
