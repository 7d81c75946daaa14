/* `pgcapture dead-letters list|show|replay|purge|take`: a URI's dead letters (changes the
 * gateway set aside: requeued --max-requeues times, or too large for the client; see
 * docs/operations.md) listed, shown whole, sent back to the URI's retry subject, removed, or
 * taken out as JSON lines. Nothing is removed before what replaces it is safe: a replayed
 * letter once JetStream acked its publish, a taken one once its line is written and
 * flushed. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "client/change.h"
#include "codec/batch.h"
#include "core/names.h"
#include "core/opts.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "jetstream/deadletters.h"
#include "jetstream/jsauth.h"
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
    int64_t position;
    bool all;
    bool json;
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
    DL_OPT("position", OPT_INT, "0", "show, replay, purge: the letter at this position (from list)",
           position),
    DL_OPT("all", OPT_BOOL, "false", "replay, purge: every letter", all),
    DL_OPT("json", OPT_BOOL, "false", "list: one JSON line per letter, as show prints it", json),
    DL_OPT("wait", OPT_DURATION_MS, "1s",
           "no effect (every verb reads what the stream holds when it starts)", wait_ms),
    CLI_NATS_OPTS(dead_letters_config, nats_auth),
};

static const cli_spec dead_letters_cmd = {
    "dead-letters",
    dead_letters_opts,
    sizeof dead_letters_opts / sizeof dead_letters_opts[0],
    "pgcapture dead-letters VERB --source NAME (--uri URI | --durable NAME) [options]",
    "The dead letters of a consumer URI: changes the gateway set aside (requeued\n"
    "--max-requeues times, or larger than the client takes). VERB is\n"
    "  list     one line per letter: position, requeues, bytes, table, reason (--json: as show)\n"
    "  show     --position N: the letter as one JSON line (the change as `pgcapture consume`\n"
    "           prints it)\n"
    "  replay   --position N | --all: back to the URI's retry subject, with a requeue count\n"
    "           of 0; removed once JetStream has stored the copy\n"
    "  purge    --position N | --all: removed, and counted\n"
    "  take     each as one JSON line, removed once its line is written (the default verb)",
};

/* The letter's one Message, a Change (free with pgcapture__message__free_unpacked). */
static int unpack_letter(const deadletter *l, Pgcapture__Message **out, char *err, size_t err_len)
{
    batch_reader r;
    const uint8_t *bytes = NULL, *extra = NULL;
    size_t mlen = 0, extra_len = 0;
    batch_reader_init(&r, l->data, l->len);
    int rc = batch_reader_next(&r, &bytes, &mlen, err, err_len);
    if (rc != 1 || batch_reader_next(&r, &extra, &extra_len, err, err_len) != 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "not a one-Message batch");
    Pgcapture__Message *msg = pgcapture__message__unpack(NULL, mlen, bytes);
    if (!msg || msg->type_case != PGCAPTURE__MESSAGE__TYPE_CHANGE) {
        if (msg)
            pgcapture__message__free_unpacked(msg, NULL);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "not a Change");
    }
    *out = msg;
    return PGC_OK;
}

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* One line: {"requeues":N,"reason":"...","position":"LSN/SEQ","change":{...},"letter":N}. */
static int render_letter(const deadletter *l, strbuf *out, char *err, size_t err_len)
{
    Pgcapture__Message *msg = NULL;
    int rc = unpack_letter(l, &msg, err, err_len);
    if (rc != PGC_OK)
        return rc;
    const char *first = l->first, *requeues = l->requeues, *reason = l->reason;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    pgc_change c;
    rc = change_view(&c, &cp, msg->change, err, err_len);
    char *json = NULL;
    size_t json_len = 0;
    if (rc == PGC_OK)
        rc = pgc_change_render_json(&c, &json, &json_len, err, err_len);
    if (rc == PGC_OK) {
        strbuf_reset(out);
        strbuf_printf(out,
                      "{\"requeues\":%s,\"reason\":", all_digits(requeues) ? requeues : "null");
        strbuf_json_string(out, reason, strlen(reason));
        strbuf_puts(out, ",\"position\":");
        strbuf_json_string(out, first, strlen(first));
        strbuf_puts(out, ",\"change\":");
        strbuf_append(out, json, json_len);
        strbuf_printf(out, ",\"letter\":%llu}\n", (unsigned long long)l->position);
        rc = strbuf_status(out);
    }
    pgc_memory_free(json);
    pgcapture__message__free_unpacked(msg, NULL);
    return rc;
}

typedef enum verb { VERB_LIST, VERB_SHOW, VERB_REPLAY, VERB_PURGE, VERB_TAKE } verb;

typedef struct run_ctx {
    verb v;
    const dead_letters_config *cfg;
    deadletters *d;
    strbuf line;
    unsigned long done, unreadable;
    bool found;
    char err[512];
} run_ctx;

static int write_line(run_ctx *c)
{
    if (fwrite(c->line.data, 1, c->line.len, stdout) != c->line.len || fflush(stdout) != 0)
        return errbuf_set(c->err, sizeof c->err, PGC_ERR_STATE, "output closed");
    return PGC_OK;
}

/* list: position, requeues, bytes, table, reason (a JSON string: it may hold anything). */
static int list_one(run_ctx *c, const deadletter *l)
{
    char why[300];
    Pgcapture__Message *msg = NULL;
    int rc = unpack_letter(l, &msg, why, sizeof why);
    strbuf_reset(&c->line);
    strbuf_printf(&c->line, "%llu\t%s\t%zu\t", (unsigned long long)l->position,
                  all_digits(l->requeues) ? l->requeues : "-", l->len);
    if (rc == PGC_OK) {
        strbuf_printf(&c->line, "%s.%s\t", msg->change->schema ? msg->change->schema : "",
                      msg->change->table ? msg->change->table : "");
        pgcapture__message__free_unpacked(msg, NULL);
    } else {
        strbuf_printf(&c->line, "(unreadable: %s)\t", why);
    }
    strbuf_json_string(&c->line, l->reason, strlen(l->reason));
    strbuf_puts(&c->line, "\n");
    if ((rc = strbuf_status(&c->line)) != PGC_OK)
        return errbuf_set(c->err, sizeof c->err, rc, "out of memory");
    return write_line(c);
}

/* One letter for the verb: 0 to go on, 1 to stop, or a negative status. */
static int on_letter(void *arg, const deadletter *l)
{
    run_ctx *c = arg;
    const dead_letters_config *cfg = c->cfg;
    bool picked = cfg->all || (uint64_t)cfg->position == l->position;
    char why[300];
    int rc = PGC_OK;
    if (c->v == VERB_LIST && !cfg->json)
        return list_one(c, l) == PGC_OK ? 0 : -1;
    switch (c->v) {
    case VERB_LIST: /* --json: what show prints */
    case VERB_SHOW:
    case VERB_TAKE:
        if (c->v == VERB_SHOW && !picked)
            return 0;
        if (render_letter(l, &c->line, why, sizeof why) != PGC_OK) {
            fprintf(stderr, "pgcapture dead-letters: letter %llu unreadable (left alone): %s\n",
                    (unsigned long long)l->position, why);
            c->unreadable++;
            return c->v == VERB_SHOW ? 1 : 0;
        }
        if ((rc = write_line(c)) != PGC_OK)
            return rc;
        c->found = true;
        if (c->v == VERB_TAKE && (rc = deadletters_delete(c->d, l, c->err, sizeof c->err)) != 0)
            return rc;
        c->done++;
        return c->v == VERB_SHOW ? 1 : 0;
    case VERB_REPLAY:
    case VERB_PURGE:
        if (!picked)
            return 0;
        c->found = true;
        rc = c->v == VERB_REPLAY ? deadletters_replay(c->d, l, c->err, sizeof c->err)
                                 : deadletters_delete(c->d, l, c->err, sizeof c->err);
        if (rc != PGC_OK)
            return rc;
        c->done++;
        return cfg->all ? 0 : 1;
    }
    return 0;
}

static void on_skipped(void *arg, uint64_t seq, const char *why)
{
    run_ctx *c = arg;
    c->unreadable++;
    fprintf(stderr, "pgcapture dead-letters: message %llu is no whole letter (left alone): %s\n",
            (unsigned long long)seq, why);
}

static const char *const VERB_NAMES[] = {"list", "show", "replay", "purge", "take"};

/* Runs the verb; the exit code. */
static int run_verb(verb v, const dead_letters_config *cfg, const char *durable)
{
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.v = v;
    c.cfg = cfg;
    strbuf_init(&c.line);
    int rc = deadletters_open(cfg->nats_url, cfg->source, durable, &c.d, c.err, sizeof c.err);
    if (rc == PGC_ERR_NOT_FOUND) {
        /* No retry stream: no stream of this source ever set a change aside. */
        fprintf(stderr, "pgcapture dead-letters: none (%s)\n", c.err);
        rc = PGC_OK;
    } else if (rc == PGC_OK) {
        if (v == VERB_LIST && !cfg->json)
            printf("position\trequeues\tbytes\ttable\treason\n");
        rc = deadletters_scan(c.d, on_letter, &c, on_skipped, c.err, sizeof c.err);
        deadletters_close(c.d);
    }
    strbuf_free(&c.line);
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture dead-letters: %s (%s)\n", c.err, pgc_status_describe(rc));
        if (c.done)
            fprintf(stderr, "pgcapture dead-letters: %lu %s before that\n", c.done,
                    v == VERB_REPLAY  ? "replayed"
                    : v == VERB_PURGE ? "purged"
                                      : "taken");
        return 1;
    }
    if ((v == VERB_SHOW || ((v == VERB_REPLAY || v == VERB_PURGE) && !cfg->all)) && !c.found) {
        fprintf(stderr, "pgcapture dead-letters: no letter at position %lld\n",
                (long long)cfg->position);
        return 1;
    }
    if (v == VERB_REPLAY || v == VERB_PURGE || v == VERB_TAKE)
        fprintf(stderr, "pgcapture dead-letters: %lu %s\n", c.done,
                v == VERB_REPLAY  ? "replayed"
                : v == VERB_PURGE ? "purged"
                                  : "taken");
    return 0;
}

int cmd_dead_letters(int argc, char **argv)
{
    /* The verb comes first; none (flags straight away) is take, as before verbs existed. */
    verb v = VERB_TAKE;
    if (argc > 1 && argv[1][0] != '-') {
        size_t i = 0;
        while (i < sizeof VERB_NAMES / sizeof VERB_NAMES[0] && strcmp(argv[1], VERB_NAMES[i]))
            i++;
        if (i == sizeof VERB_NAMES / sizeof VERB_NAMES[0]) {
            fprintf(stderr,
                    "pgcapture dead-letters: unknown verb \"%s\" (list, show, replay, purge or "
                    "take; --help)\n",
                    argv[1]);
            return 2;
        }
        v = (verb)i;
        argc--, argv++;
    }
    dead_letters_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&dead_letters_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    char durable[NAMES_BUF_LEN];
    bool has_durable = cfg.durable && *cfg.durable, has_uri = cfg.uri && *cfg.uri;
    bool by_position = v == VERB_SHOW || v == VERB_REPLAY || v == VERB_PURGE;
    if (rc == 0 && (!cfg.source || !names_token_valid(cfg.source))) {
        snprintf(err, sizeof err, "--source is required and must be a NATS token");
        rc = -1;
    } else if (rc == 0 && has_durable == has_uri) {
        snprintf(err, sizeof err, "give one of --uri and --durable");
        rc = -1;
    } else if (rc == 0 && has_durable && !names_token_valid(cfg.durable)) {
        snprintf(err, sizeof err, "--durable must be a NATS token");
        rc = -1;
    } else if (rc == 0 && cfg.position < 0) {
        snprintf(err, sizeof err, "--position must be a position that list printed");
        rc = -1;
    } else if (rc == 0 && by_position &&
               (cfg.all ? cfg.position != 0 || v == VERB_SHOW : cfg.position == 0)) {
        snprintf(err, sizeof err, "%s takes %s", VERB_NAMES[v],
                 v == VERB_SHOW ? "--position N" : "one of --position N and --all");
        rc = -1;
    } else if (rc == 0 && !by_position && (cfg.position || cfg.all)) {
        snprintf(err, sizeof err, "%s takes neither --position nor --all", VERB_NAMES[v]);
        rc = -1;
    } else if (rc == 0 && cfg.json && v != VERB_LIST) {
        snprintf(err, sizeof err, "--json is for list");
        rc = -1;
    } else if (rc == 0 && jsauth_configure(&cfg.nats_auth, err, sizeof err) != PGC_OK) {
        rc = -1;
    }
    if (rc == 0) {
        if (has_durable)
            snprintf(durable, sizeof durable, "%s", cfg.durable);
        else
            names_durable_from_uri(cfg.uri, durable, sizeof durable);
    }
    if (rc != 0)
        return cli_usage_error(&dead_letters_cmd, &cfg, err);
    rc = run_verb(v, &cfg, durable);
    opts_free(dead_letters_opts, dead_letters_cmd.n_opts, &cfg);
    return rc;
}
