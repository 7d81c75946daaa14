/* `pgcapture agent`: flags to agent_config, signals to agent_request_stop. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/status.h"
#include "roles/agent/agent.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define AGENT_OPT(n, t, d, h, field)                                                               \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(agent_config, field)         \
    }
#define AGENT_SECRET(n, d, h, field)                                                               \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(agent_config, field), .secret = true                                    \
    }

static const opt_spec agent_opts[] = {
    AGENT_SECRET("source", NULL, "source database, as libpq takes it (URI or key=value); required",
                 source),
    AGENT_OPT("nats-url", OPT_STRING, "nats://127.0.0.1:4222",
              "NATS server URL(s), comma-separated", nats_url),
    AGENT_OPT("name", OPT_STRING, "main",
              "source name (letters, digits, '_', '-'): stream PGCAPTURE_<name>, subject "
              "pgcapture.<name>.log, slot and publication pgcapture_<name> (slot lower-cased) "
              "unless given",
              name),
    AGENT_OPT("slot", OPT_STRING, "", "replication slot (created with pgoutput when missing)",
              slot),
    AGENT_OPT("publication", OPT_STRING, "",
              "publication (created when missing; altered to match --tables)", publication),
    AGENT_OPT("stream", OPT_STRING, "", "JetStream stream (created when missing)", stream),
    AGENT_OPT("tables", OPT_STRING, "",
              "comma-separated tables to publish (schema.table); empty: all tables", tables),
    AGENT_OPT("batch-size", OPT_BYTES, "64kB", "largest NATS message the agent sends", batch_bytes),
    AGENT_OPT("linger", OPT_DURATION_MS, "1ms", "longest wait before a partial batch is sent",
              linger_ms),
    AGENT_OPT("confirm-delay", OPT_STRING, "auto",
              "confirm an LSN to PostgreSQL only this long after NATS acked it; auto: 2min on a "
              "one-replica stream (a lone NATS server fsyncs on a timer), 0 on three replicas",
              confirm_delay),
    AGENT_OPT("status-interval", OPT_DURATION_MS, "10s",
              "longest time between standby status updates", status_interval_ms),
    AGENT_OPT("max-age", OPT_DURATION_MS, "7d", "stream retention by age (0: unlimited)",
              max_age_ms),
    AGENT_OPT("max-bytes", OPT_BYTES, "0", "stream retention by size (0: unlimited)", max_bytes),
    AGENT_OPT("duplicate-window", OPT_DURATION_MS, "2min", "stream de-duplication window",
              duplicate_window_ms),
    AGENT_OPT("replicas", OPT_INT, "1", "stream replicas when creating it (1 or 3)", replicas),
    AGENT_OPT("max-in-flight", OPT_INT, "128", "publishes awaiting a NATS ack at most",
              max_in_flight),
    AGENT_OPT("ack-timeout", OPT_DURATION_MS, "10s",
              "a publish not acked within this fails the session (which then resumes)",
              ack_timeout_ms),
    AGENT_OPT("retry-max", OPT_DURATION_MS, "30s", "longest back-off between reconnects",
              retry_max_ms),
    AGENT_OPT("busy-timeout", OPT_DURATION_MS, "30s",
              "at start, keep retrying this long while another process holds the slot",
              busy_timeout_ms),
    AGENT_OPT("proto-version", OPT_INT, "1", "pgoutput protocol version (1 or 2)", proto_version),
    AGENT_OPT("messages", OPT_BOOL, "false",
              "ask pgoutput for logical decoding messages (decoded, not published)", messages),
    AGENT_OPT("accept-slot-recreate", OPT_BOOL, "false",
              "create the slot again although the stream holds changes, recording the gap in the "
              "log as a pgcapture.gaps marker (only after recovering from a lost slot: replicas "
              "re-initialised, consumers re-dumped)",
              accept_slot_recreate),
    AGENT_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
    AGENT_OPT("log-format", OPT_STRING, "text", "text (key=value) or json (one object per line)",
              log_format),
    AGENT_OPT("metrics-listen", OPT_STRING, "",
              "serve /metrics, /healthz and /readyz on host:port (empty: off)", metrics_listen),
    CLI_NATS_OPTS(agent_config, nats_auth),
};

/* "auto" (the default) leaves the delay to the stream's replica count. */
static int parse_confirm_delay(agent_config *cfg, char *err, size_t err_len)
{
    const char *v = cfg->confirm_delay ? cfg->confirm_delay : "auto";
    if (strcmp(v, "auto") == 0) {
        cfg->confirm_delay_ms = -1;
        return 0;
    }
    if (opts_parse_duration_ms(v, &cfg->confirm_delay_ms) != 0) {
        snprintf(err, err_len, "--confirm-delay must be auto or a duration like 2min or 0");
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    agent_request_stop();
}

static const cli_spec agent_cmd = {
    "agent",
    agent_opts,
    sizeof agent_opts / sizeof agent_opts[0],
    "pgcapture agent --source CONNINFO [options]",
    "Reads a logical replication slot of the source (pgoutput, binary) and publishes every "
    "change\nto NATS JetStream in batches; confirms an LSN to PostgreSQL only once the log "
    "holds it durably.",
};

int cmd_agent(int argc, char **argv)
{
    agent_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&agent_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!cfg.source || !*cfg.source)) {
        snprintf(err, sizeof err, "--source is required (or PGCAPTURE_SOURCE)");
        rc = -1;
    } else if (rc == 0 && cli_logging(cfg.log_level, cfg.log_format, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && parse_confirm_delay(&cfg, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && (cfg.replicas != 1 && cfg.replicas != 3)) {
        snprintf(err, sizeof err, "--replicas must be 1 or 3");
        rc = -1;
    } else if (rc == 0 && (cfg.proto_version != 1 && cfg.proto_version != 2)) {
        snprintf(err, sizeof err, "--proto-version must be 1 or 2");
        rc = -1;
    } else if (rc == 0 && (cfg.batch_bytes < 1024 || cfg.batch_bytes > 1024 * 1024)) {
        snprintf(err, sizeof err, "--batch-size must be between 1kB and 1MB (NATS max payload)");
        rc = -1;
    } else if (rc == 0 && cli_source_name(cfg.name, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cfg.max_in_flight < 1) {
        snprintf(err, sizeof err, "--max-in-flight must be at least 1");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&cfg.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&agent_cmd, &cfg, err);
    log_set_component("agent");
    cli_on_stop_signals(on_signal);
    metrics_http *http = NULL;
    rc = cli_metrics_start("agent", cfg.metrics_listen, &http) == 0 ? agent_run(&cfg) : 1;
    metrics_http_stop(http);
    opts_free(agent_opts, agent_cmd.n_opts, &cfg);
    return rc;
}
