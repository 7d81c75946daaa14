/* Implementation of the scrape and health-check helpers (see scrape.h). */
#include "scrape.h"

#include "fixtures.h"
#include "runner.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int harness_http_get(int port, const char *path, char *body, size_t body_len)
{
    body[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    size_t cap = 1 << 20, got = 0;
    char *resp = malloc(cap);
    ssize_t r;
    while (resp && got < cap - 1 && (r = read(fd, resp + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    if (!resp)
        return 0;
    resp[got] = '\0';
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
        code = 0;
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, body_len, "%s", b ? b + 4 : "");
    free(resp);
    return code;
}

double harness_metric(const char *exposition, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = exposition; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NAN;
}

double harness_metric_wait(int port, const char *series, double min, int timeout_ms)
{
    static char body[1 << 18];
    long long deadline = harness_now_ms() + timeout_ms;
    double v = NAN;
    for (;;) {
        if (harness_http_get(port, "/metrics", body, sizeof body) == 200 &&
            (v = harness_metric(body, series)) >= min)
            return v;
        if (harness_now_ms() > deadline) {
            printf("    | last scrape of port %d:\n%s\n", port, body);
            unit_fail(__FILE__, __LINE__, "%s: expected at least %g, got %g", series, min, v);
        }
        harness_sleep_ms(100);
    }
}

static char stub_dir[64];

static void remove_stubs(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", stub_dir);
    if (system(cmd) != 0) {
        /* Only a temp dir left behind. */
    }
}

static const char *stubs(void)
{
    if (stub_dir[0])
        return stub_dir;
    snprintf(stub_dir, sizeof stub_dir, "/tmp/pgc-health-stubs.%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && protoc -Iproto --python_out=%s proto/health.proto",
             stub_dir, stub_dir);
    if (system(cmd) != 0) {
        stub_dir[0] = '\0';
        unit_fail(__FILE__, __LINE__, "protoc --python_out proto/health.proto failed");
    }
    atexit(remove_stubs);
    return stub_dir;
}

void harness_health_check(const char *addr, const char *service, char *out, size_t out_len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "PYTHONPATH=%s /usr/bin/python3 tests/integration/health_client.py %s check '%s' "
             "2>&1",
             stubs(), addr, service);
    FILE *p = popen(cmd, "r");
    if (!p)
        unit_fail(__FILE__, __LINE__, "cannot run the health client");
    out[0] = '\0';
    if (!fgets(out, (int)out_len, p))
        out[0] = '\0';
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

void harness_health_wait(const char *addr, const char *service, const char *want, int timeout_ms)
{
    char got[256];
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        harness_health_check(addr, service, got, sizeof got);
        if (strcmp(got, want) == 0)
            return;
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "health of \"%s\" at %s: expected %s, got \"%s\"",
                      service, addr, want, got);
        harness_sleep_ms(200);
    }
}
