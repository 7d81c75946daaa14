/* `pgcapture consume`: a URI's changes as JSON lines on stdout, each acked only after its
 * line was written and flushed; a change it cannot render is requeued with the reason. A
 * stream lost for a transient reason (gateway restart, nothing listening yet) is reopened
 * with capped exponential back-off; changes whose ack did not reach the gateway come again
 * (at-least-once). A status retrying cannot fix (wrong port, credentials, URI) ends it with
 * exit 1 and the library's message, which says what to check. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "codec/logpos.h"
#include "core/clock.h"
#include "core/opts.h"
#include "core/textfile.h"
#include "pgcapture.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct consume_config {
    char *gateway;
    char *uri;
    char *table_regex;
    bool truncate;
    bool reconnect;
    int64_t reconnect_max_delay_ms;
    int64_t ack_window;
    cli_rpc_flags rpc;
    bool per_change;
    int64_t batch_limit;
} consume_config;

#define CONSUME_OPT(n, t, d, h, field)                                                             \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(consume_config, field)       \
    }

static const opt_spec consume_opts[] = {
    CONSUME_OPT("gateway", OPT_STRING, "127.0.0.1:10000", "gateway address (host:port)", gateway),
    CONSUME_OPT("uri", OPT_STRING, NULL, "the consumer's URI, as the gateway resolves it; required",
                uri),
    CONSUME_OPT("table-regex", OPT_STRING, "",
                "only changes of tables whose name matches this regular expression", table_regex),
    CONSUME_OPT("truncate", OPT_BOOL, "false",
                "also receive TRUNCATE changes (op TRUNCATE); without it they are acked unseen",
                truncate),
    CONSUME_OPT("reconnect", OPT_BOOL, "true",
                "reopen a lost stream with back-off instead of exiting", reconnect),
    CONSUME_OPT("reconnect-max-delay", OPT_DURATION_MS, "10s",
                "longest wait between reconnection attempts (doubling from 100ms)",
                reconnect_max_delay_ms),
    CONSUME_OPT("ack-window", OPT_INT, "0",
                "0: send each ack when its line is written; N: a sender thread sends them, up "
                "to N waiting (at most 1048576)",
                ack_window),
    CLI_RPC_OPTS("", "PGCAPTURE_TOKEN", consume_config, rpc),
    CONSUME_OPT("per-change", OPT_BOOL, "false",
                "one change per message and one ack per change, as pgcapture's clients (default: "
                "batches, one ack per batch)",
                per_change),
    CONSUME_OPT("batch-limit", OPT_INT, "1024", "most changes per batch (1 to 65536)", batch_limit),
};

#define RECONNECT_FIRST_DELAY_MS 100

static pgc_consumer *running;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
    pgc_consumer_stop(running);
}

/* Sleeps `ms`, cut short by SIGINT/SIGTERM. */
static void sleep_unless_stopping(int64_t ms)
{
    int64_t until = clock_mono_ms() + ms;
    while (!stopping) {
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            break;
        clock_sleep_ms(left < 50 ? left : 50);
    }
}

typedef struct consume_state {
    pgc_consumer *consumer;
    char reason[512];
    bool output_closed;
    unsigned long long lines;
} consume_state;

static pgc_verdict on_change(void *arg, const pgc_change *c, const char **reason)
{
    consume_state *s = arg;
    char *json = NULL;
    size_t len = 0;
    char err[400];
    int rc = pgc_change_render_json(c, &json, &len, err, sizeof err);
    if (rc != PGC_OK) {
        char lsn[LOGPOS_LSN_LEN];
        logpos_format_lsn(pgc_change_get_lsn(c), lsn);
        snprintf(s->reason, sizeof s->reason, "pgcapture consume: cannot render: %s", err);
        fprintf(stderr, "pgcapture consume: requeued the change at %s seq %u of %s.%s: %s\n", lsn,
                pgc_change_get_seq(c), pgc_change_get_schema(c), pgc_change_get_table(c), err);
        *reason = s->reason;
        return PGC_VERDICT_REQUEUE;
    }
    json[len] = '\n';
    /* json holds len + 1 bytes: the NUL becomes the newline. */
    size_t w = fwrite(json, 1, len + 1, stdout);
    pgc_memory_free(json);
    if (w != len + 1 || fflush(stdout) != 0) {
        /* The reader went away (SIGPIPE is ignored, so this is EPIPE): the line did not
         * reach it, so give the change back and stop. */
        s->output_closed = true;
        pgc_consumer_stop(s->consumer);
        *reason = "pgcapture consume: output closed";
        return PGC_VERDICT_REQUEUE;
    }
    s->lines++;
    return PGC_VERDICT_ACK;
}

static const cli_spec consume_cmd = {
    "consume",
    consume_opts,
    sizeof consume_opts / sizeof consume_opts[0],
    "pgcapture consume --uri URI [--gateway HOST:PORT] [options]",
    "Prints the changes of a consumer URI as JSON lines (one object per change: schema, table, "
    "op,\n"
    "checkpoint, new, old), acking each after its line is written. Stops cleanly on "
    "SIGINT/SIGTERM.\n"
    "A stream lost for a transient reason (UNAVAILABLE: a gateway restart, nothing listening yet)\n"
    "is reopened with back-off unless --reconnect=false; a status retrying cannot fix\n"
    "(UNIMPLEMENTED: not a gateway's port; UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,\n"
    "INVALID_ARGUMENT, DATA_LOSS) exits 1 at once, saying what to check. Without --truncate no\n"
    "TRUNCATE is ever printed (the gateway acks them for this consumer).",
};

int cmd_consume(int argc, char **argv)
{
    consume_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = consume_cmd.n_opts;
    int rc = cli_parse(&consume_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && (!cfg.uri || !*cfg.uri)) {
        snprintf(err, sizeof err, "--uri is required (or PGCAPTURE_URI)");
        rc = -1;
    } else if (rc == 0 && (!cfg.gateway || !*cfg.gateway)) {
        snprintf(err, sizeof err, "--gateway must not be empty");
        rc = -1;
    } else if (rc == 0 && (cfg.ack_window < 0 || cfg.ack_window > 1048576)) {
        snprintf(err, sizeof err, "--ack-window must be between 0 and 1048576");
        rc = -1;
    } else if (rc == 0 && (cfg.batch_limit < 1 || cfg.batch_limit > 65536)) {
        snprintf(err, sizeof err, "--batch-limit must be between 1 and 65536");
        rc = -1;
    } else if (rc == 0 && cfg.reconnect_max_delay_ms < RECONNECT_FIRST_DELAY_MS) {
        snprintf(err, sizeof err, "--reconnect-max-delay must be at least %dms",
                 RECONNECT_FIRST_DELAY_MS);
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&consume_cmd, &cfg, err);
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = cfg.gateway;
    o.uri = cfg.uri;
    o.table_regex = cfg.table_regex && *cfg.table_regex ? cfg.table_regex : NULL;
    o.ack_window = (int)cfg.ack_window;
    o.batch_limit = cfg.per_change ? -1 : (int)cfg.batch_limit;
    bool reconnect = cfg.reconnect;
    int64_t max_delay_ms = cfg.reconnect_max_delay_ms;
    const char *names[] = {"Truncate"}, *values[] = {"true"};
    if (cfg.truncate) {
        o.param_names = names;
        o.param_values = values;
        o.n_params = 1;
    }
    rpc_channel_options ro;
    char *token = NULL;
    if (cli_rpc_options(&cfg.rpc, "PGCAPTURE_TOKEN", &ro, &token, err, sizeof err) != 0) {
        fprintf(stderr, "pgcapture consume: %s\n", err);
        opts_free(consume_opts, n, &cfg);
        return 2;
    }
    o.tls_ca_file = ro.tls_ca_file;
    o.tls_cert_file = ro.tls_cert_file;
    o.tls_key_file = ro.tls_key_file;
    o.tls_server_name = ro.tls_server_name;
    o.token = token;
    consume_state st;
    memset(&st, 0, sizeof st);
    rc = pgc_consumer_create(&o, &st.consumer, err, sizeof err);
    textfile_free_secret(token);
    opts_free(consume_opts, n, &cfg);
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture consume: %s\n", err);
        return 2;
    }
    running = st.consumer;
    cli_on_stop_signals(on_signal);
    int64_t delay_ms = RECONNECT_FIRST_DELAY_MS;
    unsigned attempt = 0;
    for (;;) {
        unsigned long long lines_before = st.lines;
        int64_t started_ms = clock_mono_ms();
        rc = pgc_consumer_run(st.consumer, &(pgc_change_handler){&st, on_change}, err, sizeof err);
        if (rc == PGC_OK || stopping || st.output_closed || !reconnect ||
            !pgc_status_is_transient(rc))
            break;
        /* A stream that delivered or lasted was a success: start the back-off again. */
        if (st.lines != lines_before || clock_mono_ms() - started_ms >= max_delay_ms) {
            delay_ms = RECONNECT_FIRST_DELAY_MS;
            attempt = 0;
        }
        attempt++;
        fprintf(stderr, "pgcapture consume: %s; reconnecting in %lld ms (attempt %u)\n", err,
                (long long)delay_ms, attempt);
        sleep_unless_stopping(delay_ms);
        delay_ms = delay_ms * 2 > max_delay_ms ? max_delay_ms : delay_ms * 2;
        if (stopping) {
            rc = PGC_OK;
            break;
        }
    }
    running = NULL;
    /* A gRPC status is named in err already; other errors get the status's words. */
    bool grpc = pgc_consumer_get_grpc_status(st.consumer, NULL) != PGC_GRPC_CODE_NONE;
    pgc_consumer_destroy(st.consumer);
    if (rc != PGC_OK) {
        if (grpc)
            fprintf(stderr, "pgcapture consume: %s\n", err);
        else
            fprintf(stderr, "pgcapture consume: %s (%s)\n", err, pgc_status_describe(rc));
        return 1;
    }
    return 0;
}
