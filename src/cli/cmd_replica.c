/* `pgcapture replica` and `pgcapture replica init`: flags to the replica role. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/status.h"
#include "roles/replica/replica.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLICA_OPT(n, t, d, h, field)                                                             \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(replica_config, field)       \
    }
#define REPLICA_SECRET(n, d, h, field)                                                             \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(replica_config, field), .secret = true                                  \
    }
#define INIT_OPT(n, t, d, h, field)                                                                \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(replica_init_config, field)  \
    }
#define INIT_SECRET(n, d, h, field)                                                                \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(replica_init_config, field), .secret = true                             \
    }

static const opt_spec replica_opts[] = {
    REPLICA_SECRET("replica", NULL,
                   "replica database, as libpq takes it (URI or key=value); required", replica),
    REPLICA_OPT("nats-url", OPT_STRING, "nats://127.0.0.1:4222",
                "NATS server URL(s), comma-separated", nats_url),
    REPLICA_OPT("name", OPT_STRING, "main",
                "source name, as given to the agent: stream PGCAPTURE_<name>; also the row of "
                "pgcapture.sources that holds this replica's position",
                name),
    REPLICA_OPT("stream", OPT_STRING, "", "JetStream stream (default PGCAPTURE_<name>)", stream),
    REPLICA_OPT("consumer", OPT_STRING, "",
                "durable consumer (default replica_<name>_<replica system id>_<database>)",
                consumer),
    REPLICA_OPT("batch-txns", OPT_INT, "5000",
                "source transactions applied in one replica transaction at most", batch_txns),
    REPLICA_OPT("commit-interval", OPT_DURATION_MS, "200ms",
                "longest time a replica transaction stays open while changes keep coming",
                commit_interval_ms),
    REPLICA_OPT("max-pending", OPT_INT, "256",
                "NATS messages held unacked before a huge source transaction is committed in "
                "parts",
                max_pending),
    REPLICA_OPT("ack-wait", OPT_DURATION_MS, "60s",
                "JetStream redelivers a message not acked within this", ack_wait_ms),
    REPLICA_OPT("retry-max", OPT_DURATION_MS, "30s", "longest back-off between reconnects",
                retry_max_ms),
    REPLICA_OPT("busy-timeout", OPT_DURATION_MS, "15s",
                "at start, keep retrying this long while another applier holds the replica "
                "(a killed one's session may linger briefly)",
                busy_timeout_ms),
    REPLICA_OPT("stats-interval", OPT_DURATION_MS, "30s", "how often progress and lag are logged",
                stats_interval_ms),
    REPLICA_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
    REPLICA_OPT("skip-ddl", OPT_STRING, "",
                "LSN:SEQ of a DDL row logged as a whole query string (the applier names it when "
                "it stops there) that you applied to the replica by hand",
                skip_ddl_text),
    REPLICA_OPT("accept-new-stream", OPT_BOOL, "false",
                "the stream is not the one the replica's position was read from (recreated): "
                "read it from its first message, skipping what the replica has applied",
                accept_new_stream),
    REPLICA_OPT("accept-gap", OPT_BOOL, "false",
                "go on past a gap marker (pgcapture.gaps) in the log instead of stopping: the "
                "replica may then differ from the source",
                accept_gap),
    REPLICA_OPT("log-format", OPT_STRING, "text", "text (key=value) or json (one object per line)",
                log_format),
    REPLICA_OPT("metrics-listen", OPT_STRING, "",
                "serve /metrics, /healthz and /readyz on host:port (empty: off)", metrics_listen),
    CLI_NATS_OPTS(replica_config, nats_auth),
};

static const opt_spec init_opts[] = {
    INIT_SECRET("source", NULL,
                "source database (or, with --from-replica, an existing replica); required", source),
    INIT_SECRET("replica", NULL, "the new replica database: it must exist and be empty; required",
                replica),
    INIT_OPT("name", OPT_STRING, "main", "source name, as given to the agent", name),
    INIT_OPT("slot", OPT_STRING, "", "slot to create (default pgcapture_<name>, lower-cased)",
             slot),
    INIT_OPT("publication", OPT_STRING, "",
             "publication (default pgcapture_<name>; created FOR ALL TABLES when missing)",
             publication),
    INIT_OPT("from-replica", OPT_BOOL, "false",
             "copy from an existing replica (--source) instead of the source", from_replica),
    INIT_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
    INIT_OPT("log-format", OPT_STRING, "text", "text (key=value) or json (one object per line)",
             log_format),
};

/* "0/16B3748:2" */
static bool parse_skip_ddl(const char *s, log_pos *out)
{
    char lsn[LOGPOS_LSN_LEN + 1];
    const char *colon = strchr(s, ':');
    char *end = NULL;
    if (!colon || (size_t)(colon - s) >= sizeof lsn)
        return false;
    memcpy(lsn, s, (size_t)(colon - s));
    lsn[colon - s] = '\0';
    unsigned long seq = strtoul(colon + 1, &end, 10);
    if (!logpos_parse_lsn(lsn, &out->lsn) || out->lsn == 0 || end == colon + 1 || *end ||
        seq > UINT32_MAX)
        return false;
    out->seq = (uint32_t)seq;
    return true;
}

#define CUTOVER_OPT(n, t, d, h, field)                                                             \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h,                                                 \
        .offset = offsetof(replica_cutover_config, field)                                          \
    }
#define CUTOVER_SECRET(n, d, h, field)                                                             \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(replica_cutover_config, field), .secret = true                          \
    }

static const opt_spec cutover_opts[] = {
    CUTOVER_SECRET("source", NULL, "the source database; required", source),
    CUTOVER_SECRET("replica", NULL, "the replica database; required", replica),
    CUTOVER_OPT("name", OPT_STRING, "main", "source name, as given to the agent", name),
    CUTOVER_OPT("timeout", OPT_DURATION_MS, "60s", "give up (exit 1) after this long", timeout_ms),
    CUTOVER_OPT("sequences", OPT_BOOL, "true",
                "once caught up, set the replica's sequences to the source's values", sequences),
    CUTOVER_OPT("log-level", OPT_STRING, "info", "error, warn, info, debug or trace", log_level),
};

static const cli_spec cutover_cmd = {
    "replica wait-caught-up",
    cutover_opts,
    sizeof cutover_opts / sizeof cutover_opts[0],
    "pgcapture replica wait-caught-up --source CONNINFO --replica CONNINFO --name NAME",
    "For a cut-over, once writes to the source have stopped: commits a marker DDL statement "
    "on the\nsource, waits until the replica has applied it (its position is then the "
    "source's last\ncommit), and sets the replica's sequences to the source's values. Exit 0 "
    "caught up, 1 not\nwithin --timeout.",
};

static int cmd_replica_wait_caught_up(int argc, char **argv)
{
    replica_cutover_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&cutover_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!cfg.source || !*cfg.source || !cfg.replica || !*cfg.replica)) {
        snprintf(err, sizeof err, "--source and --replica are required");
        rc = -1;
    } else if (rc == 0 && cli_logging(cfg.log_level, NULL, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cli_source_name(cfg.name, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cfg.timeout_ms < 1) {
        snprintf(err, sizeof err, "--timeout must be positive");
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&cutover_cmd, &cfg, err);
    log_set_component("replica-cutover");
    rc = replica_wait_caught_up(&cfg);
    opts_free(cutover_opts, cutover_cmd.n_opts, &cfg);
    return rc;
}

static void on_signal(int sig)
{
    (void)sig;
    replica_request_stop();
}

static const cli_spec init_cmd = {
    "replica init",
    init_opts,
    sizeof init_opts / sizeof init_opts[0],
    "pgcapture replica init --source CONNINFO --replica CONNINFO",
    "Creates a replica consistently with the log: a new slot's exported "
    "snapshot (or an existing\nreplica's snapshot with --from-replica) is "
    "copied with pg_dump | pg_restore and its position\nrecorded in "
    "pgcapture.sources, so `pgcapture replica` starts where the copy ends.",
};

static int cmd_replica_init(int argc, char **argv)
{
    replica_init_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = init_cmd.n_opts;
    int rc = cli_parse(&init_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!cfg.source || !*cfg.source || !cfg.replica || !*cfg.replica)) {
        snprintf(err, sizeof err, "--source and --replica are required");
        rc = -1;
    } else if (rc == 0 && cli_logging(cfg.log_level, cfg.log_format, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cli_source_name(cfg.name, err, sizeof err) != 0) {
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&init_cmd, &cfg, err);
    log_set_component("replica-init");
    rc = replica_init(&cfg);
    opts_free(init_opts, n, &cfg);
    return rc;
}

static const cli_spec replica_cmd = {
    "replica",
    replica_opts,
    sizeof replica_opts / sizeof replica_opts[0],
    "pgcapture replica --replica CONNINFO [options]\n"
    "       pgcapture replica init --help\n"
    "       pgcapture replica wait-caught-up --help",
    "Applies a source's log to a logical replica exactly once: DML, DDL and "
    "TRUNCATE, with the\napplied position stored in the replica's "
    "pgcapture.sources in the same transaction.",
};

int cmd_replica(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "init"))
        return cmd_replica_init(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "wait-caught-up"))
        return cmd_replica_wait_caught_up(argc - 1, argv + 1);
    replica_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = replica_cmd.n_opts;
    int rc = cli_parse(&replica_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!cfg.replica || !*cfg.replica)) {
        snprintf(err, sizeof err, "--replica is required (or PGCAPTURE_REPLICA)");
        rc = -1;
    } else if (rc == 0 && cli_logging(cfg.log_level, cfg.log_format, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && cli_source_name(cfg.name, err, sizeof err) != 0) {
        rc = -1;
    } else if (rc == 0 && *cfg.skip_ddl_text && !parse_skip_ddl(cfg.skip_ddl_text, &cfg.skip_ddl)) {
        snprintf(err, sizeof err, "--skip-ddl takes LSN:SEQ, as in 0/16B3748:2");
        rc = -1;
    } else if (rc == 0 && (cfg.batch_txns < 1 || cfg.max_pending < 1 || cfg.ack_wait_ms < 1000 ||
                           cfg.commit_interval_ms < 0 || cfg.stats_interval_ms < 1)) {
        snprintf(err, sizeof err,
                 "--batch-txns and --max-pending must be at least 1, --ack-wait at least 1s");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&cfg.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&replica_cmd, &cfg, err);
    log_set_component("replica");
    cli_on_stop_signals(on_signal);
    metrics_http *http = NULL;
    rc = cli_metrics_start("replica", cfg.metrics_listen, &http) == 0 ? replica_run(&cfg) : 1;
    metrics_http_stop(http);
    opts_free(replica_opts, n, &cfg);
    return rc;
}
