/* `pgcapture gateway`: flags to pgc_gateway_options and the config-file resolver;
 * SIGTERM/SIGINT to a graceful stop (the signal handler only writes a pipe). */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/status.h"
#include "core/textfile.h"
#include "pgcapture/gateway.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct gateway_flags {
    char *listen;
    char *uri_config;
    char *nats_url;
    char *controller;
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
    int64_t window;
    int64_t retry_delay_ms;
    int64_t max_requeues;
    int64_t retry_max_age_ms, retry_max_bytes, max_message_bytes;
    int64_t grace_ms;
    char *log_level;
    char *log_format;
    char *metrics_listen;
    char *tls_cert, *tls_key, *tls_client_ca;
    int64_t max_streams, max_streams_per_uri, new_streams_per_sec, new_streams_burst;
    int64_t keepalive_ms, keepalive_timeout_ms;
    cli_rpc_flags controller_rpc;
    jsauth_config nats_auth;
} gateway_flags;

#define GW_OPT(n, t, d, h, field)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(gateway_flags, field)        \
    }

static const opt_spec gateway_opts[] = {
    GW_OPT("listen", OPT_STRING, "127.0.0.1:10000", "gRPC address to serve (port 0: any)", listen),
    GW_OPT("uri-config", OPT_STRING, NULL,
           "resolver file: one [uri] section per consumer URI with source, nats_url, durable, "
           "replica; required",
           uri_config),
    GW_OPT("nats-url", OPT_STRING, "nats://127.0.0.1:4222",
           "NATS URL(s) for URIs whose section gives none", nats_url),
    GW_OPT("controller", OPT_STRING, "",
           "controller host:port: this gateway serves the dumps scheduled there (empty: no dumps)",
           controller),
    GW_OPT("ack-wait", OPT_DURATION_MS, "30s",
           "JetStream ack wait of a URI's consumer (a batch unacked this long is redelivered)",
           ack_wait_ms),
    GW_OPT("max-ack-pending", OPT_INT, "1000",
           "JetStream max-ack-pending of a URI's consumer, in batches", max_ack_pending),
    GW_OPT("window", OPT_INT, "4096", "changes sent and not acked per stream at most", window),
    GW_OPT("retry-delay", OPT_DURATION_MS, "1s", "a requeued change comes back after this",
           retry_delay_ms),
    GW_OPT("max-requeues", OPT_INT, "0",
           "a change requeued this many times goes to the URI's dead-letter subject (0: never)",
           max_requeues),
    GW_OPT("retry-max-age", OPT_DURATION_MS, "0",
           "retention by age of the retry stream and its dead letters (0: the log stream's)",
           retry_max_age_ms),
    GW_OPT("retry-max-bytes", OPT_BYTES, "0",
           "retention by size of the retry stream and its dead letters (0: the log stream's)",
           retry_max_bytes),
    GW_OPT("max-message-size", OPT_BYTES, "4MiB",
           "largest Capture message a client takes unless it says (MaxMessageSize); a larger "
           "change is dead-lettered",
           max_message_bytes),
    GW_OPT("shutdown-grace", OPT_DURATION_MS, "2s",
           "on SIGTERM, how long acks in flight may still land", grace_ms),
    GW_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
    GW_OPT("log-format", OPT_STRING, "text", "text (key=value) or json (one object per line)",
           log_format),
    GW_OPT("metrics-listen", OPT_STRING, "",
           "serve /metrics, /healthz and /readyz on host:port (empty: off)", metrics_listen),
    GW_OPT("tls-cert", OPT_STRING, "",
           "PEM certificate (chain) of the gateway: serve with TLS (re-read when it changes)",
           tls_cert),
    GW_OPT("tls-key", OPT_STRING, "", "PEM private key of --tls-cert", tls_key),
    GW_OPT("tls-client-ca", OPT_STRING, "",
           "PEM CA(s) of client certificates: every client must present one (mutual TLS)",
           tls_client_ca),
    GW_OPT("max-streams", OPT_INT, "1000",
           "Capture streams open at once; more get RESOURCE_EXHAUSTED (0: no limit)", max_streams),
    GW_OPT("max-streams-per-uri", OPT_INT, "100", "Capture streams open at once on one URI",
           max_streams_per_uri),
    GW_OPT("new-streams-per-sec", OPT_INT, "20",
           "new streams a peer host may open per second (0: no limit)", new_streams_per_sec),
    GW_OPT("new-streams-burst", OPT_INT, "100", "...and at once after a quiet time",
           new_streams_burst),
    GW_OPT("keepalive", OPT_DURATION_MS, "30s",
           "ping a quiet client connection this often (0: never)", keepalive_ms),
    GW_OPT("keepalive-timeout", OPT_DURATION_MS, "10s",
           "a client that does not answer a ping this long is gone: its unacked changes go back",
           keepalive_timeout_ms),
    CLI_RPC_OPTS("controller-", "PGCAPTURE_CONTROLLER_TOKEN", gateway_flags, controller_rpc),
    CLI_NATS_OPTS(gateway_flags, nats_auth),
};

static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (write(stop_pipe[1], "x", 1) < 0) {
        /* Nothing to do in a handler: a full pipe already holds a stop request. */
    }
    errno = saved;
}

static const cli_spec gateway_cmd = {
    "gateway",
    gateway_opts,
    sizeof gateway_opts / sizeof gateway_opts[0],
    "pgcapture gateway --uri-config FILE [options]",
    "Serves DBLogGateway.Capture: each consumer URI's changes from NATS "
    "JetStream, with per-change\nack and requeue.",
};

int cmd_gateway(int argc, char **argv)
{
    gateway_flags f;
    char err[512];
    memset(&f, 0, sizeof f);
    const size_t n = gateway_cmd.n_opts;
    int rc = cli_parse(&gateway_cmd, &f, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!f.uri_config || !*f.uri_config)) {
        snprintf(err, sizeof err, "--uri-config is required (or PGCAPTURE_URI_CONFIG)");
        rc = -1;
    } else if (rc == 0 && cli_logging(f.log_level, f.log_format, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && (f.window < 1 || f.window > 1000000 || f.max_ack_pending < 1 ||
                           f.max_requeues < 0 || f.max_requeues > 1000000)) {
        snprintf(err, sizeof err,
                 "--window must be 1..1000000, --max-ack-pending at least 1 and --max-requeues "
                 "0..1000000");
        rc = -1;
    } else if (rc == 0 && (f.max_message_bytes < PGC_GATEWAY_MIN_MAX_MESSAGE_BYTES ||
                           f.max_message_bytes > INT32_MAX || f.retry_max_age_ms < 0 ||
                           f.retry_max_bytes < 0)) {
        snprintf(err, sizeof err,
                 "--max-message-size must be 64KiB..2GiB, --retry-max-age and --retry-max-bytes "
                 "not negative");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&f.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    pgc_resolver resolver = {0};
    if (rc == 0 && (rc = pgc_resolver_file_load(f.uri_config, &resolver, err, sizeof err)) != 0)
        rc = -1;
    if (rc != 0)
        return cli_usage_error(&gateway_cmd, &f, err);
    log_set_component("gateway");
    pgc_gateway_options o;
    pgc_gateway_options_init(&o);
    o.nats_url = f.nats_url;
    o.controller = f.controller && *f.controller ? f.controller : NULL;
    o.ack_wait_ms = f.ack_wait_ms;
    o.max_ack_pending = f.max_ack_pending;
    o.window = (int)f.window;
    o.retry_delay_ms = f.retry_delay_ms;
    o.max_requeues = (int)f.max_requeues;
    o.retry_max_age_ms = f.retry_max_age_ms;
    o.retry_max_bytes = f.retry_max_bytes;
    o.max_message_bytes = f.max_message_bytes;
    o.tls_cert_file = f.tls_cert;
    o.tls_key_file = f.tls_key;
    o.tls_client_ca_file = f.tls_client_ca;
    o.max_streams = (int)f.max_streams;
    o.max_streams_per_uri = (int)f.max_streams_per_uri;
    o.new_streams_per_sec = (double)f.new_streams_per_sec;
    o.new_streams_burst = (int)f.new_streams_burst;
    o.keepalive_ms = f.keepalive_ms;
    o.keepalive_timeout_ms = f.keepalive_timeout_ms;
    rpc_channel_options cc;
    char *controller_token = NULL;
    if (cli_rpc_options(&f.controller_rpc, "PGCAPTURE_CONTROLLER_TOKEN", &cc, &controller_token,
                        err, sizeof err) != 0) {
        fprintf(stderr, "pgcapture gateway: %s\n", err);
        pgc_resolver_file_free(&resolver);
        opts_free(gateway_opts, n, &f);
        return 2;
    }
    o.controller_tls_ca_file = cc.tls_ca_file;
    o.controller_tls_cert_file = cc.tls_cert_file;
    o.controller_tls_key_file = cc.tls_key_file;
    o.controller_tls_server_name = cc.tls_server_name;
    o.controller_token = controller_token;
    pgc_gateway *gw = NULL;
    metrics_http *http = NULL;
    int port = 0, exit_code = 0;
    if (pipe(stop_pipe) != 0) {
        fprintf(stderr, "pgcapture gateway: pipe: %s\n", strerror(errno));
        exit_code = 1;
        goto out;
    }
    cli_on_stop_signals(on_signal);
    if (cli_metrics_start("gateway", f.metrics_listen, &http) != 0) {
        exit_code = 1;
        goto out;
    }
    rc = pgc_gateway_create(&o, &resolver, &gw, err, sizeof err);
    textfile_free_secret(controller_token);
    controller_token = NULL;
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture gateway: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (pgc_gateway_serve(gw, f.listen, &port, err, sizeof err) != PGC_OK) {
        log_error("cannot serve", "listen=%s error=\"%s\"", f.listen, err);
        exit_code = 1;
        goto out;
    }
    log_info("gateway listening", "listen=%s port=%d tls=%s", f.listen, port,
             !*f.tls_cert       ? "off"
             : *f.tls_client_ca ? "mutual"
                                : "on");
    char c;
    while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    log_info("stopping", "grace_ms=%lld", (long long)f.grace_ms);
    pgc_gateway_stop(gw, (int)f.grace_ms);
    log_info("gateway stopped", "port=%d", port);
out:
    textfile_free_secret(controller_token);
    pgc_gateway_destroy(gw);
    metrics_http_stop(http);
    pgc_resolver_file_free(&resolver);
    opts_free(gateway_opts, n, &f);
    return exit_code;
}
