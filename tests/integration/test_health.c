/* grpc.health.v1 on the gateway and the controller, checked with a client generated from
 * the standard health proto (Python): SERVING while their dependencies are up,
 * NOT_SERVING while NATS or the controller cannot be reached, and back; Watch streams the
 * changes. /readyz and /healthz of --metrics-listen say the same. */
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/scrape.h"
#include "harness/services.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct gateway_proc {
    char addr[64];
    int metrics_port;
    char log[512];
} gateway_proc;

/* Starts `pgcapture gateway` with one URI and --controller `controller` (NULL: none). */
static void gateway_start(gateway_proc *g, const char *controller)
{
    char name[48];
    harness_unique_name(name, sizeof name);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    char conf[600];
    snprintf(g->log, sizeof g->log, "%s/health-gateway-%s.log", dir ? dir : "/tmp", name);
    snprintf(conf, sizeof conf, "%s/health-gateway-%s.conf", dir ? dir : "/tmp", name);
    FILE *f = fopen(conf, "w");
    EXPECT_TRUE(f != NULL);
    fprintf(f, "[app]\nsource = %s\n", name);
    fclose(f);
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", harness_free_port());
    g->metrics_port = harness_free_port();
    char metrics[64];
    snprintf(metrics, sizeof metrics, "127.0.0.1:%d", g->metrics_port);
    const char *args[20] = {
        "gateway",          "--uri-config",     conf,    "--listen",    g->addr, "--nats-url",
        harness_nats_url(), "--metrics-listen", metrics, "--log-level", "debug"};
    int n = 11;
    if (controller) {
        args[n++] = "--controller";
        args[n++] = controller;
    }
    args[n] = NULL;
    harness_spawn(g->log, args);
}

/* A case that failed with NATS stopped must not leave it stopped for the next one. */
static void restart_nats(void *unused)
{
    (void)unused;
    if (system("kill -0 $(cat \"$NATSTMP_DIR/nats.pid\") 2>/dev/null") != 0)
        harness_nats_start();
}

static void test_gateway_is_not_serving_while_nats_is_down(void)
{
    gateway_proc g;
    gateway_start(&g, NULL);
    harness_health_wait(g.addr, "", "SERVING", 20000);
    harness_health_wait(g.addr, "pgcapture.DBLogGateway", "SERVING", 5000);
    char got[128];
    harness_health_check(g.addr, "no.such.Service", got, sizeof got);
    EXPECT_EQ_STR("code=NOT_FOUND", got);
    char body[512];
    EXPECT_EQ_INT(200, harness_http_get(g.metrics_port, "/readyz", body, sizeof body));

    harness_nats_stop();
    unit_defer(restart_nats, NULL);
    harness_health_wait(g.addr, "", "NOT_SERVING", 20000);
    EXPECT_EQ_INT(503, harness_http_get(g.metrics_port, "/readyz", body, sizeof body));
    EXPECT_TRUE(strstr(body, "nats") != NULL);
    EXPECT_EQ_INT(200, harness_http_get(g.metrics_port, "/healthz", body, sizeof body));
    harness_nats_start();
    harness_health_wait(g.addr, "", "SERVING", 20000);
    EXPECT_EQ_INT(200, harness_http_get(g.metrics_port, "/readyz", body, sizeof body));
}

static void test_gateway_is_not_serving_until_its_controller_answers(void)
{
    char controller[64];
    int port = harness_free_port();
    snprintf(controller, sizeof controller, "127.0.0.1:%d", port);
    gateway_proc g;
    gateway_start(&g, controller);
    harness_sleep_ms(1500);
    char got[128], body[512];
    harness_health_check(g.addr, "", got, sizeof got);
    EXPECT_EQ_STR("NOT_SERVING", got);
    EXPECT_EQ_INT(503, harness_http_get(g.metrics_port, "/readyz", body, sizeof body));
    EXPECT_TRUE(strstr(body, "controller") != NULL);

    harness_controller ctl;
    const char *extra[] = {"--listen", controller, NULL};
    harness_controller_start(&ctl, extra);
    harness_health_wait(g.addr, "", "SERVING", 20000);
}

/* Watch: the first answer at once, then one per change of status. */
static void test_controller_watch_streams_status_changes(void)
{
    harness_controller ctl;
    harness_controller_start(&ctl, NULL);
    harness_health_wait(ctl.addr, "", "SERVING", 20000);
    harness_health_wait(ctl.addr, "pgcapture.DBLogController", "SERVING", 5000);

    const char *dir = getenv("PGC_TEST_LOGDIR");
    char out[600], cmd[1400], got[128];
    snprintf(out, sizeof out, "%s/health-watch-%d.out", dir ? dir : "/tmp", (int)getpid());
    harness_health_check(ctl.addr, "", got, sizeof got); /* generates the stubs */
    snprintf(cmd, sizeof cmd,
             "PYTHONPATH=/tmp/pgc-health-stubs.%d exec /usr/bin/python3 "
             "tests/integration/health_client.py %s watch pgcapture.DBLogController 60 >%s 2>&1",
             (int)getpid(), ctl.addr, out);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    EXPECT_TRUE(pid > 0);
    long long deadline = harness_now_ms() + 20000;
    char text[512] = "";
    const char *want[] = {"SERVING\n", "SERVING\nNOT_SERVING\n", "SERVING\nNOT_SERVING\nSERVING\n"};
    for (int step = 0; step < 3; step++) {
        for (;;) {
            FILE *f = fopen(out, "r");
            size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
            if (f)
                fclose(f);
            text[n] = '\0';
            if (strcmp(text, want[step]) == 0)
                break;
            if (harness_now_ms() > deadline) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                unit_fail(__FILE__, __LINE__, "watch output: expected \"%s\", got \"%s\"",
                          want[step], text);
            }
            harness_sleep_ms(100);
        }
        if (step == 0) {
            harness_nats_stop();
            unit_defer(restart_nats, NULL);
        } else if (step == 1) {
            harness_nats_start();
        }
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    harness_health_check(ctl.addr, "", got, sizeof got);
    EXPECT_EQ_STR("SERVING", got);
}

UNIT_MAIN(UNIT_CASE(test_gateway_is_not_serving_while_nats_is_down),
          UNIT_CASE(test_gateway_is_not_serving_until_its_controller_answers),
          UNIT_CASE(test_controller_watch_streams_status_changes))
