/* A URI's dead letters (see deadletters.h). */
#include "jetstream/deadletters.h"

#include "codec/part.h"
#include "core/names.h"
#include "core/status.h"
#include "jetstream/jsconn.h"
#include "jetstream/jssub.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCAN_FETCH_MAX 256
#define SCAN_FETCH_WAIT_MS 5000
#define SCAN_EMPTY_FETCHES_MAX 3
/* The scan never acks: its consumer must neither redeliver nor stop delivering meanwhile. */
#define SCAN_ACK_WAIT_MS (3600 * 1000)
#define SCAN_MAX_ACK_PENDING 10000000

struct deadletters {
    const char *nats_url;
    jsconn *js;
    char stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], retry_subject[NAMES_BUF_LEN];
    char scanner[NAMES_BUF_LEN];
};

int deadletters_open(const char *nats_url, const char *source, const char *durable,
                     deadletters **out, char *err, size_t err_len)
{
    deadletters *d = calloc(1, sizeof *d);
    if (!d)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dead letters: out of memory");
    d->nats_url = nats_url;
    char reader[NAMES_BUF_LEN];
    int n = -1;
    if (names_retry_stream(source, d->stream, sizeof d->stream) != PGC_OK ||
        names_dead_letter_subject(source, durable, d->subject, sizeof d->subject) != PGC_OK ||
        names_retry_subject(source, durable, d->retry_subject, sizeof d->retry_subject) != PGC_OK ||
        names_dead_letter_durable(durable, reader, sizeof reader) != PGC_OK ||
        (n = snprintf(d->scanner, sizeof d->scanner, "%s_scan_%ld", reader, (long)getpid())) < 0 ||
        (size_t)n >= sizeof d->scanner) {
        free(d);
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "dead letters: source or durable name too long");
    }
    char why[400];
    uint64_t first, last;
    int rc = jsconn_open(nats_url, &d->js, why, sizeof why);
    if (rc == PGC_OK)
        rc = jsconn_stream_bounds(d->js, d->stream, &first, &last, why, sizeof why);
    if (rc != PGC_OK) {
        deadletters_close(d);
        return errbuf_set(err, err_len, rc, "dead letters: %s", why);
    }
    *out = d;
    return PGC_OK;
}

void deadletters_close(deadletters *d)
{
    if (!d)
        return;
    jsconn_destroy(d->js);
    free(d);
}

/* The letter being put together from its messages. */
typedef struct letter_acc {
    deadletter l;
    part_joiner *pj;
    uint64_t *seqs;
    uint32_t n, cap;
} letter_acc;

static int acc_add_seq(letter_acc *a, uint64_t seq)
{
    if (a->n == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 16;
        uint64_t *s = realloc(a->seqs, cap * sizeof *s);
        if (!s)
            return PGC_ERR_NOMEM;
        a->seqs = s, a->cap = cap;
    }
    a->seqs[a->n++] = seq;
    return PGC_OK;
}

static void copy_header(jssub_msg *m, const char *key, char *out, size_t out_len)
{
    const char *v = jssub_msg_header(m, key);
    snprintf(out, out_len, "%s", v ? v : "");
}

/* Feeds one message; 1 with a whole letter in a->l, 0 while parts are missing, or a
 * negative status (PGC_ERR_MALFORMED: these parts make no letter). */
static int acc_feed(letter_acc *a, jssub_msg *m, char *why, size_t why_len)
{
    const char *part = jssub_msg_header(m, "Pgc-Part");
    uint32_t pi = 1, pn = 1;
    if (part && !part_header_parse(part, &pi, &pn))
        return errbuf_set(why, why_len, PGC_ERR_MALFORMED, "bad Pgc-Part \"%s\"", part);
    if (pi == 1) {
        a->n = 0;
        memset(&a->l, 0, sizeof a->l);
        a->l.position = jssub_msg_stream_seq(m);
        copy_header(m, "Pgc-First", a->l.first, sizeof a->l.first);
        copy_header(m, "Pgc-Requeues", a->l.requeues, sizeof a->l.requeues);
        copy_header(m, "Pgc-Reason", a->l.reason, sizeof a->l.reason);
    } else if (a->n == 0) {
        return errbuf_set(why, why_len, PGC_ERR_MALFORMED, "part %u/%u without its first part", pi,
                          pn);
    }
    int rc = acc_add_seq(a, jssub_msg_stream_seq(m));
    if (rc != PGC_OK)
        return rc;
    if (!part) {
        a->l.data = jssub_msg_data(m);
        a->l.len = jssub_msg_len(m);
    } else {
        /* Every part of a letter carries the same position (Pgc-First). */
        log_pos pos = {0, 0};
        rc = part_joiner_feed(a->pj, pos, pi, pn, jssub_msg_data(m), jssub_msg_len(m), &a->l.data,
                              &a->l.len, why, why_len);
        if (rc < 0) {
            a->n = 0;
            return rc;
        }
        if (rc == 0)
            return 0;
    }
    a->l.seqs = a->seqs;
    a->l.n_seqs = a->n;
    a->n = 0;
    return 1;
}

typedef struct scan_ctx {
    int (*fn)(void *arg, const deadletter *l);
    void (*skipped)(void *arg, uint64_t seq, const char *why);
    void *arg;
    letter_acc acc;
} scan_ctx;

/* Takes the fetched messages in order; 1 once fn asked to stop, or a negative status. */
static int scan_batch(scan_ctx *c, jssub_msg **msgs, int n, char *err, size_t err_len)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char why[300];
        const char *part = jssub_msg_header(msgs[i], "Pgc-Part");
        uint32_t pi = 0, pn = 0;
        bool starts = !part || (part_header_parse(part, &pi, &pn) && pi == 1);
        if (starts && c->acc.n && c->skipped)
            c->skipped(c->arg, c->acc.l.position, "its last parts are missing");
        int fed = acc_feed(&c->acc, msgs[i], why, sizeof why);
        if (fed == PGC_ERR_NOMEM)
            rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "dead letters: out of memory");
        else if (fed < 0 && c->skipped)
            c->skipped(c->arg, jssub_msg_stream_seq(msgs[i]), why);
        else if (fed == 1)
            rc = c->fn(c->arg, &c->acc.l);
    }
    for (int i = 0; i < n; i++)
        jssub_msg_destroy(msgs[i]);
    return rc;
}

int deadletters_scan(deadletters *d, int (*fn)(void *arg, const deadletter *l), void *arg,
                     void (*skipped)(void *arg, uint64_t seq, const char *why), char *err,
                     size_t err_len)
{
    scan_ctx c = {fn, skipped, arg, {{0}, NULL, NULL, 0, 0}};
    jssub_config sc = {d->nats_url, d->stream,        d->subject,
                       d->scanner,  SCAN_ACK_WAIT_MS, SCAN_MAX_ACK_PENDING};
    jssub *sub = NULL;
    char why[400];
    int rc = part_joiner_create(PART_MAX_MESSAGE_BYTES, &c.acc.pj);
    if (rc == PGC_OK && (rc = jssub_create(&sc, &sub, why, sizeof why)) != PGC_OK)
        rc = errbuf_set(err, err_len, rc, "dead letters: %s", why);
    /* Done once nothing is pending and everything delivered has been read (a fetch can
     * return before all that the server sent arrived). A new consumer's delivered position
     * starts where its subject starts, past other subjects' messages: what it had then was
     * never for this scan. */
    uint64_t last_read = 0;
    int empty = 0;
    jssub_position start;
    if (rc == PGC_OK && (rc = jssub_read_position(sub, &start, why, sizeof why)) != PGC_OK)
        rc = errbuf_set(err, err_len, rc, "dead letters: %s", why);
    else if (rc == PGC_OK)
        last_read = start.delivered;
    while (rc == PGC_OK) {
        uint64_t pending = 0;
        jssub_position p;
        jssub_msg *msgs[SCAN_FETCH_MAX];
        if ((rc = jssub_num_pending(sub, &pending, why, sizeof why)) != PGC_OK ||
            (rc = jssub_read_position(sub, &p, why, sizeof why)) != PGC_OK) {
            rc = errbuf_set(err, err_len, rc, "dead letters: %s", why);
            break;
        }
        if (pending == 0 && last_read >= p.delivered)
            break;
        if (empty >= SCAN_EMPTY_FETCHES_MAX) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONN,
                            "dead letters: messages up to %llu were delivered, read up to %llu",
                            (unsigned long long)p.delivered, (unsigned long long)last_read);
            break;
        }
        int max = pending && pending < SCAN_FETCH_MAX ? (int)pending : SCAN_FETCH_MAX;
        int n = jssub_fetch(sub, msgs, max, SCAN_FETCH_WAIT_MS, why, sizeof why);
        if (n < 0) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONN, "dead letters: %s", why);
            break;
        }
        empty = n == 0 ? empty + 1 : 0;
        for (int i = 0; i < n; i++)
            if (jssub_msg_stream_seq(msgs[i]) > last_read)
                last_read = jssub_msg_stream_seq(msgs[i]);
        rc = scan_batch(&c, msgs, n, err, err_len);
    }
    if (rc == PGC_OK && c.acc.n && skipped)
        skipped(arg, c.acc.l.position, "its last parts are missing");
    jssub_destroy(sub);
    /* The scan's consumer goes with it: what it read stays for the next. */
    if (sub && jsconn_delete_consumer(d->js, d->stream, d->scanner, why, sizeof why) != PGC_OK &&
        rc >= 0)
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "dead letters: %s", why);
    part_joiner_destroy(c.acc.pj);
    free(c.acc.seqs);
    return rc == 1 ? PGC_OK : rc;
}

int deadletters_delete(deadletters *d, const deadletter *l, char *err, size_t err_len)
{
    char why[400];
    for (uint32_t i = 0; i < l->n_seqs; i++) {
        int rc = jsconn_delete_msg(d->js, d->stream, l->seqs[i], why, sizeof why);
        /* Gone already (removed by another run, or by the stream's limits): fine. */
        if (rc != PGC_OK && rc != PGC_ERR_NOT_FOUND)
            return errbuf_set(err, err_len, rc, "dead letters: letter %llu: %s",
                              (unsigned long long)l->position, why);
    }
    return PGC_OK;
}

int deadletters_replay(deadletters *d, const deadletter *l, char *err, size_t err_len)
{
    char why[400], prev_s[24];
    uint64_t prev = 0;
    /* Pgc-Prev, as the gateway writes it: a reader can tell a requeued change that expired. */
    int rc = jsconn_subject_last_seq(d->js, d->stream, d->retry_subject, &prev, why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "dead letters: letter %llu: %s",
                          (unsigned long long)l->position, why);
    snprintf(prev_s, sizeof prev_s, "%llu", (unsigned long long)prev);
    const jsconn_header headers[] = {{"Pgc-First", l->first},
                                     {"Pgc-Last", l->first},
                                     {"Pgc-Count", "1"},
                                     {"Pgc-Prev", prev_s},
                                     {"Pgc-Requeues", "0"}};
    rc = jsconn_publish_parts(d->js, d->retry_subject, l->data, l->len, headers,
                              sizeof headers / sizeof headers[0], why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "dead letters: letter %llu not replayed: %s",
                          (unsigned long long)l->position, why);
    rc = deadletters_delete(d, l, why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc,
                          "%s (it was replayed: it is now both a dead letter and a retry)", why);
    return PGC_OK;
}
