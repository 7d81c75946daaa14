/* `pgcapture controller`: flags to controller_config, signals to controller_request_stop. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/names.h"
#include "core/opts.h"
#include "core/status.h"
#include "roles/controller/controller.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define CONTROLLER_OPT(n, t, d, h, field)                                                          \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(controller_config, field)    \
    }

static const opt_spec controller_opts[] = {
    CONTROLLER_OPT("nats-url", OPT_STRING, "nats://127.0.0.1:4222",
                   "NATS server URL(s), comma-separated", nats_url),
    CONTROLLER_OPT("listen", OPT_STRING, "127.0.0.1:10001", "gRPC listen address (host:port)",
                   listen),
    CONTROLLER_OPT("bucket", OPT_STRING, NAMES_CONTROLLER_BUCKET,
                   "JetStream key-value bucket holding the queues (created when missing)", bucket),
    CONTROLLER_OPT("replicas", OPT_INT, "1",
                   "replicas of the bucket when creating it (1 or 3; 3 on a NATS cluster, like "
                   "the agent's --replicas)",
                   replicas),
    CONTROLLER_OPT("requeue-backoff", OPT_DURATION_MS, "2s",
                   "wait before a requeued item is handed out again; doubles per requeue",
                   backoff_base_ms),
    CONTROLLER_OPT("requeue-backoff-max", OPT_DURATION_MS, "5min", "cap of the requeue back-off",
                   backoff_max_ms),
    CONTROLLER_OPT("shutdown-grace", OPT_DURATION_MS, "5s",
                   "on stop, how long running calls may take to end", shutdown_grace_ms),
    CONTROLLER_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
    CONTROLLER_OPT("log-format", OPT_STRING, "text",
                   "text (key=value) or json (one object per line)", log_format),
    CONTROLLER_OPT("metrics-listen", OPT_STRING, "",
                   "serve /metrics, /healthz and /readyz on host:port (empty: off)",
                   metrics_listen),
    CONTROLLER_OPT("tls-cert", OPT_STRING, "",
                   "PEM certificate (chain) of the controller: serve with TLS (re-read when it "
                   "changes)",
                   tls_cert),
    CONTROLLER_OPT("tls-key", OPT_STRING, "", "PEM private key of --tls-cert", tls_key),
    CONTROLLER_OPT("tls-client-ca", OPT_STRING, "",
                   "PEM CA(s) of client certificates: every client must present one (mutual "
                   "TLS)",
                   tls_client_ca),
    CONTROLLER_OPT("acl", OPT_STRING, "",
                   "ACL file: per URI ([uri], [*] for all) who may schedule, read status and "
                   "pull dumps, and dump_schemas (empty: anyone may do anything)",
                   acl_file),
    CONTROLLER_OPT("max-calls", OPT_INT, "1000",
                   "gRPC calls open at once; more get RESOURCE_EXHAUSTED (0: no limit)", max_calls),
    CONTROLLER_OPT("max-queued", OPT_INT, "10000",
                   "requests waiting for the controller thread; more get RESOURCE_EXHAUSTED",
                   max_queued),
    CONTROLLER_OPT("max-items-per-uri", OPT_INT, "1000000",
                   "items pending or outstanding per URI; a Schedule past it gets "
                   "RESOURCE_EXHAUSTED (0: no limit)",
                   max_items_per_uri),
    CONTROLLER_OPT("new-calls-per-sec", OPT_INT, "200",
                   "new calls a peer host may open per second, in bursts of five times that "
                   "(0: no limit)",
                   new_calls_per_sec),
    CONTROLLER_OPT("keepalive", OPT_DURATION_MS, "30s",
                   "ping quiet client connections this often; a gateway that does not answer "
                   "within 10s is gone and its item requeued (0: never)",
                   keepalive_ms),
    CLI_NATS_OPTS(controller_config, nats_auth),
};

static void on_signal(int sig)
{
    (void)sig;
    controller_request_stop();
}

static bool valid_bucket(const char *b)
{
    if (!b || !*b)
        return false;
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static const cli_spec controller_cmd = {
    "controller",
    controller_opts,
    sizeof controller_opts / sizeof controller_opts[0],
    "pgcapture controller [options]",
    "Holds per-URI queues of dump work (pgcapture.DBLogController: Schedule, "
    "StopSchedule,\nSetScheduleCoolDown, PullDumpInfo) in a JetStream "
    "key-value bucket, and hands them to gateways.",
};

int cmd_controller(int argc, char **argv)
{
    controller_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = controller_cmd.n_opts;
    int rc = cli_parse(&controller_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && cli_logging(cfg.log_level, cfg.log_format, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cfg.replicas != 1 && cfg.replicas != 3) {
        snprintf(err, sizeof err, "--replicas must be 1 or 3");
        rc = -1;
    } else if (rc == 0 && !valid_bucket(cfg.bucket)) {
        snprintf(err, sizeof err, "--bucket must be non-empty letters, digits, '_' or '-'");
        rc = -1;
    } else if (rc == 0 && (!cfg.listen || !strchr(cfg.listen, ':'))) {
        snprintf(err, sizeof err, "--listen must be host:port");
        rc = -1;
    } else if (rc == 0 && (cfg.backoff_base_ms < 1 || cfg.backoff_max_ms < cfg.backoff_base_ms)) {
        snprintf(err, sizeof err,
                 "--requeue-backoff must be at least 1ms and --requeue-backoff-max at least that");
        rc = -1;
    } else if (rc == 0 && (cfg.shutdown_grace_ms < 0 || cfg.shutdown_grace_ms > 3600000)) {
        snprintf(err, sizeof err, "--shutdown-grace must be between 0 and 1h");
        rc = -1;
    } else if (rc == 0 && (cfg.max_calls < 0 || cfg.max_calls > 1000000 || cfg.max_queued < 1 ||
                           cfg.max_items_per_uri < 0 || cfg.new_calls_per_sec < 0 ||
                           cfg.keepalive_ms < 0 || cfg.keepalive_ms > 86400000)) {
        snprintf(err, sizeof err,
                 "--max-calls 0..1000000, --max-queued at least 1, --max-items-per-uri, "
                 "--new-calls-per-sec and --keepalive not negative");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&cfg.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&controller_cmd, &cfg, err);
    log_set_component("controller");
    cli_on_stop_signals(on_signal);
    metrics_http *http = NULL;
    rc = cli_metrics_start("controller", cfg.metrics_listen, &http) == 0 ? controller_run(&cfg) : 1;
    metrics_http_stop(http);
    opts_free(controller_opts, n, &cfg);
    return rc;
}
