/* `pgcapture dead-letters`: takes a URI's dead letters (changes its consumers requeued
 * --max-requeues times, docs/protocol.md "In the log") out of JetStream as JSON lines on
 * stdout, each acked only after its line was written and flushed, so an interrupted run
 * loses none. Exits once none arrives for --wait. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "client/change.h"
#include "codec/batch.h"
#include "core/names.h"
#include "core/opts.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "jetstream/jsauth.h"
#include "jetstream/jssub.h"
#include "pgcapture.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dead_letters_config {
    char *nats_url;
    char *source;
    char *uri;
    char *durable;
    int64_t wait_ms;
    jsauth_config nats_auth;
} dead_letters_config;

#define DL_OPT(n, t, d, h, field)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(dead_letters_config, field)  \
    }

static const opt_spec dead_letters_opts[] = {
    DL_OPT("nats-url", OPT_STRING, "nats://127.0.0.1:4222", "NATS URL(s)", nats_url),
    DL_OPT("source", OPT_STRING, NULL, "the source (the agent's --name); required", source),
    DL_OPT("uri", OPT_STRING, "", "the consumer URI, when its resolver section names no durable",
           uri),
    DL_OPT("durable", OPT_STRING, "", "the URI's durable, when its resolver section names one",
           durable),
    DL_OPT("wait", OPT_DURATION_MS, "1s", "exit once no dead letter arrives for this long",
           wait_ms),
    CLI_NATS_OPTS(dead_letters_config, nats_auth),
};

static const cli_spec dead_letters_cmd = {
    "dead-letters",
    dead_letters_opts,
    sizeof dead_letters_opts / sizeof dead_letters_opts[0],
    "pgcapture dead-letters --source NAME (--uri URI | --durable NAME) [options]",
    "Takes the dead letters of a consumer URI (changes requeued --max-requeues times; see the\n"
    "gateway) out of JetStream, one JSON line each: requeues, reason, position and the change\n"
    "as `pgcapture consume` prints it. Each is acked after its line is written; what is not\n"
    "printed stays. Exits 0 once none arrives for --wait.",
};

/* One line: {"requeues":N,"reason":"...","position":"LSN/SEQ","change":{...}}. */
static int render_letter(jssub_msg *m, strbuf *out, char *err, size_t err_len)
{
    batch_reader r;
    const uint8_t *bytes = NULL, *extra = NULL;
    size_t mlen = 0, extra_len = 0;
    batch_reader_init(&r, jssub_msg_data(m), jssub_msg_len(m));
    int rc = batch_reader_next(&r, &bytes, &mlen, err, err_len);
    if (rc != 1 || batch_reader_next(&r, &extra, &extra_len, err, err_len) != 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "not a one-Message batch");
    Pgcapture__Message *msg = pgcapture__message__unpack(NULL, mlen, bytes);
    if (!msg || msg->type_case != PGCAPTURE__MESSAGE__TYPE_CHANGE) {
        if (msg)
            pgcapture__message__free_unpacked(msg, NULL);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "not a Change");
    }
    const char *first = jssub_msg_header(m, "Pgc-First");
    const char *requeues = jssub_msg_header(m, "Pgc-Requeues");
    const char *reason = jssub_msg_header(m, "Pgc-Reason");
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    pgc_change c;
    rc = change_view(&c, &cp, msg->change, err, err_len);
    char *json = NULL;
    size_t json_len = 0;
    if (rc == PGC_OK)
        rc = pgc_change_render_json(&c, &json, &json_len, err, err_len);
    if (rc == PGC_OK) {
        strbuf_reset(out);
        strbuf_printf(out, "{\"requeues\":%s,\"reason\":",
                      requeues && *requeues && strspn(requeues, "0123456789") == strlen(requeues)
                          ? requeues
                          : "null");
        strbuf_json_string(out, reason ? reason : "", reason ? strlen(reason) : 0);
        strbuf_puts(out, ",\"position\":");
        strbuf_json_string(out, first ? first : "", first ? strlen(first) : 0);
        strbuf_puts(out, ",\"change\":");
        strbuf_append(out, json, json_len);
        strbuf_puts(out, "}\n");
        rc = strbuf_status(out);
    }
    pgc_memory_free(json);
    pgcapture__message__free_unpacked(msg, NULL);
    return rc;
}

static int take_letters(jssub *sub, int64_t wait_ms, unsigned long *taken, char *err,
                        size_t err_len)
{
    strbuf line;
    strbuf_init(&line);
    int rc = PGC_OK;
    for (;;) {
        jssub_msg *m = NULL;
        int n = jssub_fetch(sub, &m, 1, (int)wait_ms, err, err_len);
        if (n <= 0) {
            rc = n < 0 ? PGC_ERR_CONN : PGC_OK;
            break;
        }
        char why[300];
        if (render_letter(m, &line, why, sizeof why) != PGC_OK) {
            /* Left unacked: it stays for a newer version of this command to read. */
            fprintf(stderr, "pgcapture dead-letters: stream_seq %llu skipped: %s\n",
                    (unsigned long long)jssub_msg_stream_seq(m), why);
            jssub_msg_destroy(m);
            continue;
        }
        if (fwrite(line.data, 1, line.len, stdout) != line.len || fflush(stdout) != 0) {
            jssub_msg_destroy(m);
            rc = errbuf_set(err, err_len, PGC_ERR_STATE, "output closed");
            break;
        }
        rc = jssub_ack(m, true, err, err_len);
        jssub_msg_destroy(m);
        if (rc != PGC_OK)
            break;
        (*taken)++;
    }
    strbuf_free(&line);
    return rc;
}

int cmd_dead_letters(int argc, char **argv)
{
    dead_letters_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&dead_letters_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    char durable[NAMES_BUF_LEN], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN];
    char reader[NAMES_BUF_LEN];
    bool has_durable = cfg.durable && *cfg.durable, has_uri = cfg.uri && *cfg.uri;
    if (rc == 0 && (!cfg.source || !names_token_valid(cfg.source))) {
        snprintf(err, sizeof err, "--source is required and must be a NATS token");
        rc = -1;
    } else if (rc == 0 && has_durable == has_uri) {
        snprintf(err, sizeof err, "give one of --uri and --durable");
        rc = -1;
    } else if (rc == 0 && has_durable && !names_token_valid(cfg.durable)) {
        snprintf(err, sizeof err, "--durable must be a NATS token");
        rc = -1;
    } else if (rc == 0 && cfg.wait_ms < 1) {
        snprintf(err, sizeof err, "--wait must be positive");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&cfg.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    if (rc == 0) {
        if (has_durable)
            snprintf(durable, sizeof durable, "%s", cfg.durable);
        else
            names_durable_from_uri(cfg.uri, durable, sizeof durable);
        if (names_retry_stream(cfg.source, stream, sizeof stream) != PGC_OK ||
            names_dead_letter_subject(cfg.source, durable, subject, sizeof subject) != PGC_OK ||
            names_dead_letter_durable(durable, reader, sizeof reader) != PGC_OK) {
            snprintf(err, sizeof err, "source or durable name too long");
            rc = -1;
        }
    }
    if (rc != 0)
        return cli_usage_error(&dead_letters_cmd, &cfg, err);
    /* Room for letters left unacked (unreadable) without holding back the others. */
    jssub_config sc = {cfg.nats_url, stream, subject, reader, 30000, 1024};
    jssub *sub = NULL;
    unsigned long taken = 0;
    rc = jssub_create(&sc, &sub, err, sizeof err);
    if (rc == PGC_ERR_NOT_FOUND) {
        /* No retry stream: no stream of this source ever requeued anything. */
        fprintf(stderr, "pgcapture dead-letters: none (%s)\n", err);
        rc = PGC_OK;
    } else if (rc == PGC_OK) {
        rc = take_letters(sub, cfg.wait_ms, &taken, err, sizeof err);
        jssub_destroy(sub);
        fprintf(stderr, "pgcapture dead-letters: %lu taken from %s\n", taken, subject);
    }
    opts_free(dead_letters_opts, dead_letters_cmd.n_opts, &cfg);
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture dead-letters: %s (%s)\n", err, pgc_status_describe(rc));
        return 1;
    }
    return 0;
}
