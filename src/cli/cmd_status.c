/* `pgcapture status`: the controller's queues per URI (pgcapture.DBLogControllerAdmin/
 * Status, a method of our own): pending, backing-off and outstanding items, items done,
 * requeues, pulling streams, cool-down, done rate and an estimate of the time left. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/opts.h"
#include "core/status.h"
#include "roles/controller/controller_client.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct status_config {
    char *controller;
    char *uri;
    int64_t timeout_ms;
    cli_rpc_flags rpc;
} status_config;

#define STATUS_OPT(n, t, d, h, field)                                                              \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(status_config, field)        \
    }

static const opt_spec status_opts[] = {
    STATUS_OPT("controller", OPT_STRING, "127.0.0.1:10001", "controller address (host:port)",
               controller),
    STATUS_OPT("uri", OPT_STRING, "", "only this consumer URI (default: every URI)", uri),
    STATUS_OPT("timeout", OPT_DURATION_MS, "10s", "deadline of the call", timeout_ms),
    CLI_RPC_OPTS("", "PGCAPTURE_TOKEN", status_config, rpc),
};

static void format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "unknown");
    else if (ms < 1000)
        snprintf(buf, len, "%lldms", (long long)ms);
    else if (ms < 120000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 7200000)
        snprintf(buf, len, "%.1fmin", (double)ms / 60000.0);
    else
        snprintf(buf, len, "%.1fh", (double)ms / 3600000.0);
}

static const cli_spec status_cmd = {
    "status",
    status_opts,
    sizeof status_opts / sizeof status_opts[0],
    "pgcapture status [--controller ADDR] [--uri URI]",
    "Shows the controller's dump queues per consumer URI and an estimate of "
    "the time left.",
};

int cmd_status(int argc, char **argv)
{
    status_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = status_cmd.n_opts;
    int rc = cli_parse(&status_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && cfg.timeout_ms < 1) {
        snprintf(err, sizeof err, "--timeout must be positive");
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&status_cmd, &cfg, err);
    controller_client *cc = NULL;
    if (cli_controller_client(&cfg.rpc, cfg.controller, (int)cfg.timeout_ms, &cc, err,
                              sizeof err) != PGC_OK) {
        fprintf(stderr, "pgcapture status: controller %s: %s\n", cfg.controller, err);
        opts_free(status_opts, n, &cfg);
        return 2;
    }
    controller_client_uri_status *st = NULL;
    size_t n_uris = 0;
    int status = controller_client_status(cc, cfg.uri, &st, &n_uris, err, sizeof err);
    if (status != PGC_OK) {
        fprintf(stderr, "pgcapture status: %s\n", err);
        rc = status == PGC_ERR_TOO_LARGE ? 2 : 1;
        goto out;
    }
    printf("%-40s %9s %9s %11s %9s %8s %7s %9s %8s %9s %12s\n", "URI", "PENDING", "BACKOFF",
           "OUTSTANDING", "DONE", "REQUEUED", "STREAMS", "COOL-DOWN", "ITEMS/S", "ETA",
           "ROWS SENT");
    for (size_t i = 0; i < n_uris; i++) {
        const controller_client_uri_status *u = &st[i];
        char cd[32], eta[32];
        format_ms(u->cool_down_ms, cd, sizeof cd);
        format_ms(u->eta_ms, eta, sizeof eta);
        printf("%-40s %9llu %9llu %11llu %9llu %8llu %7u %9s %8.2f %9s %12llu\n", u->uri,
               (unsigned long long)u->pending, (unsigned long long)u->backing_off,
               (unsigned long long)u->outstanding, (unsigned long long)u->done,
               (unsigned long long)u->requeued, u->streams, cd, u->done_per_second, eta,
               (unsigned long long)u->rows_sent);
    }
    if (n_uris == 0)
        printf("(no schedules%s%s)\n", *cfg.uri ? " for " : "", cfg.uri);
    controller_client_status_free(st, n_uris);
    rc = 0;
out:
    controller_client_destroy(cc);
    opts_free(status_opts, n, &cfg);
    return rc;
}
