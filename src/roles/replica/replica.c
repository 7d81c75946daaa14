/* The replica role (see replica.h).
 *
 * Threading: one thread owns everything: the replica connection (apply.h), the JetStream
 * pull subscription and the list of NATS messages not yet acked. A session is one
 * connect-apply cycle. Each session starts from the position stored in the replica
 * (pgcapture.sources): it recreates its durable consumer at the stream sequence stored
 * with that position, so the log is read again in order from there and everything at or
 * below the position is skipped. NATS messages are acked only once the replica committed
 * past their last Message, so acks never run ahead of the replica; and since the start
 * point comes from the replica, a lost ack costs only a re-read. */
#include "roles/replica/replica.h"

#include "codec/batch.h"
#include "codec/part.h"
#include "codec/gapmark.h"
#include "codec/logpos.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "core/health.h"
#include "core/log.h"
#include "core/names.h"
#include "core/metrics.h"
#include "core/status.h"
#include "jetstream/jsconn.h"
#include "jetstream/jssub.h"
#include "roles/replica/apply.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_LEN 1024
#define FETCH_MAX 256
#define IDLE_FETCH_MS 500
/* With a replica transaction open, how long a fetch waits before the applier commits what
 * it has. It was 20 ms while heap corruption inside libnats 3.4.1, seen at 1 ms in
 * bench/replica, was unexplained; jssub_fetch has since lost a double free and no longer
 * asks libnats for fewer messages than its subscription queues (nats.c issue 749). Back at
 * 1 ms on 2026-11-28, no report: test_replica 50 times and test_gateway 50 times under
 * ASan+UBSan, bench/replica 4 times under ASan, test_replica 5 times and test_gateway 2
 * times with every role under valgrind ("0 errors", which covers libnats itself). */
#define OPEN_FETCH_MS 1
/* With metrics on: how often the lag gauges are refreshed (one NATS request each). */
#define LAG_METRICS_MS 1000
/* While idle: how often the applier checks that its stream was not deleted or recreated. */
#define IDENTITY_CHECK_MS 1000

static volatile sig_atomic_t stop_requested;

void replica_request_stop(void)
{
    stop_requested = 1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && !stop_requested)
        ;
}

typedef struct replica_names {
    char stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], consumer[NAMES_BUF_LEN];
} replica_names;

/* A fetched NATS message, kept until the replica committed past its last Message. */
typedef struct held_msg {
    jssub_msg *msg;
    log_pos last;
} held_msg;

typedef struct session {
    const replica_config *cfg;
    const replica_names *names;
    apply_conn *ac;
    jssub *sub;
    part_joiner *joiner;
    held_msg *held;
    size_t n_held, cap_held;
    apply_position committed; /* stored in the replica */
    log_pos seen;             /* last Message applied or skipped */
    uint64_t seen_stream_seq; /* NATS message holding `seen` */
    uint64_t last_sseq;       /* last NATS message taken (0: none yet this session) */
    int64_t seen_commit_time;
    bool in_src_tx;    /* between a Begin and its Commit */
    int64_t txns_open; /* source transactions in the open replica transaction */
    int64_t opened_ms; /* when the open replica transaction got its first change */
    uint64_t applied_txns, applied_changes, skipped;
    uint64_t uncommitted_txns, uncommitted_changes; /* counted in metrics at commit */
    int64_t last_stats_ms, last_lag_ms;
    int64_t stream_created;   /* identity of the stream read, stored with each position */
    int64_t last_identity_ms; /* when the stream's identity was last checked */
} session;

/* This process's series of the replica metrics (metrics_table.h) for its source. */
static struct {
    metric *applied_lsn, *lag_bytes, *lag_seconds, *txns, *rows, *conflicts;
} rm;

static int hold(session *s, jssub_msg *m, log_pos last)
{
    if (s->n_held == s->cap_held) {
        size_t cap = s->cap_held ? s->cap_held * 2 : 64;
        held_msg *h = realloc(s->held, cap * sizeof *h);
        if (!h)
            return PGC_ERR_NOMEM;
        s->held = h;
        s->cap_held = cap;
    }
    s->held[s->n_held++] = (held_msg){m, last};
    return PGC_OK;
}

/* Acks, in order, every held message the replica has committed past. */
static void ack_committed(session *s)
{
    size_t i = 0;
    char err[256];
    for (; i < s->n_held && logpos_cmp(s->held[i].last, s->committed.pos) <= 0; i++) {
        if (jssub_ack(s->held[i].msg, false, err, sizeof err) != PGC_OK)
            log_warn("ack failed; the message will be re-read and skipped", "error=\"%s\"", err);
        jssub_msg_destroy(s->held[i].msg);
    }
    if (i == 0)
        return; /* held may still be NULL: memmove must not be given it */
    memmove(s->held, s->held + i, (s->n_held - i) * sizeof *s->held);
    s->n_held -= i;
}

static int commit(session *s, char *err, size_t err_len)
{
    if (!apply_in_transaction(s->ac))
        return PGC_OK;
    apply_position p = {s->seen, s->seen_stream_seq, s->seen_commit_time, true, s->stream_created};
    int rc = apply_commit(s->ac, &p, err, err_len);
    if (rc != PGC_OK)
        return rc;
    s->committed = p;
    s->txns_open = 0;
    metric_add(rm.txns, s->uncommitted_txns);
    metric_add(rm.rows, s->uncommitted_changes);
    metric_set(rm.applied_lsn, (double)p.pos.lsn);
    s->uncommitted_txns = s->uncommitted_changes = 0;
    /* Acks wait for the caller: the message being read may be one of those committed. */
    return PGC_OK;
}

static bool commit_due(const session *s)
{
    return s->txns_open >= s->cfg->batch_txns ||
           clock_mono_ms() - s->opened_ms >= s->cfg->commit_interval_ms;
}

static const char *marker_text(const Pgcapture__Change *c, const char *name)
{
    for (size_t i = 0; i < c->n_new_; i++)
        if (c->new_[i]->name && !strcmp(c->new_[i]->name, name) && c->new_[i]->text)
            return c->new_[i]->text;
    return "?";
}

/* The log has a gap here (codec/gapmark.h): applying on across it would leave the replica
 * silently different from the source, so the applier stops unless told --accept-gap, after
 * committing what it applied before the marker. Accepted, the marker's transaction commits
 * empty, which moves the stored position past it. */
static int on_gap_marker(session *s, const Pgcapture__Change *c, log_pos pos, char *err,
                         size_t err_len)
{
    const char *a = marker_text(c, "after"), *r = marker_text(c, "resume_lsn"),
               *why = marker_text(c, "reason");
    char at[LOGPOS_TEXT_LEN];
    logpos_format(pos, at);
    if (!s->cfg->accept_gap) {
        int rc = commit(s, err, err_len);
        if (rc != PGC_OK)
            return rc;
        return errbuf_set(err, err_len, PGC_ERR_DATA_LOSS,
                          "gap in the log at %s (%s): changes committed on the source after "
                          "log position %s and before WAL %s are missing, so the replica "
                          "cannot stay equal to the source. Re-initialise it (pgcapture "
                          "replica init into a new database), or start the applier with "
                          "--accept-gap to go on knowingly; see docs/operations.md, \"The "
                          "slot was lost or invalidated\"",
                          at, why, a, r);
    }
    log_warn("gap in the log accepted (--accept-gap): the replica may differ from the source",
             "marker=%s reason=\"%s\" after=%s resume_lsn=%s", at, why, a, r);
    return PGC_OK;
}

/* Applies one protocol Message at `pos` from NATS message `stream_seq`. */
static int apply_message(session *s, const Pgcapture__Message *m, log_pos pos, uint64_t stream_seq,
                         char *err, size_t err_len)
{
    char lsn[LOGPOS_LSN_LEN];
    if (logpos_cmp(pos, s->seen) <= 0) {
        s->skipped++;
        return PGC_OK;
    }
    int rc = PGC_OK;
    switch (m->type_case) {
    case PGCAPTURE__MESSAGE__TYPE_BEGIN:
        if (s->in_src_tx) {
            logpos_format_lsn(pos.lsn, lsn);
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "replica: Begin at %s inside an open transaction: the log is "
                              "out of order",
                              lsn);
        }
        s->in_src_tx = true;
        s->seen_commit_time = (int64_t)m->begin->commit_time;
        break;
    case PGCAPTURE__MESSAGE__TYPE_CHANGE:
        if (m->change->schema && m->change->table &&
            gapmark_is_marker(m->change->schema, strlen(m->change->schema), m->change->table,
                              strlen(m->change->table)))
            return on_gap_marker(s, m->change, pos, err, err_len);
        if (!apply_in_transaction(s->ac))
            s->opened_ms = clock_mono_ms();
        rc = apply_change(s->ac, m->change, pos, err, err_len);
        s->applied_changes++;
        s->uncommitted_changes++;
        break;
    case PGCAPTURE__MESSAGE__TYPE_COMMIT:
        s->in_src_tx = false;
        s->seen_commit_time = (int64_t)m->commit->commit_time;
        s->txns_open++;
        s->applied_txns++;
        s->uncommitted_txns++;
        if (!apply_in_transaction(s->ac)) {
            /* An empty source transaction: nothing to write yet, but move on. */
            if ((rc = apply_begin(s->ac, err, err_len)) != PGC_OK)
                return rc;
            s->opened_ms = clock_mono_ms();
        }
        break;
    default:
        break;
    }
    if (rc != PGC_OK)
        return rc;
    s->seen = pos;
    s->seen_stream_seq = stream_seq;
    /* Commit only between source transactions, so the replica never shows half of one,
     * except when a huge transaction holds too many NATS messages unacked. */
    if ((!s->in_src_tx && commit_due(s)) ||
        (s->in_src_tx && (int64_t)s->n_held >= s->cfg->max_pending))
        rc = commit(s, err, err_len);
    return rc;
}

static int process(session *s, jssub_msg *m, char *err, size_t err_len)
{
    uint64_t sseq = jssub_msg_stream_seq(m);
    /* The applier is its durable's only reader and the log's messages are numbered without
     * holes: a message past the next one means retention removed what lies between while
     * this session was behind (JetStream moves a durable on to the oldest message held).
     * Never apply around it. */
    if (s->last_sseq && jssub_msg_delivered(m) == 1 && sseq > s->last_sseq + 1) {
        uint64_t from = s->last_sseq + 1, first = 0, last = 0;
        jssub_msg_destroy(m);
        char why[256];
        int rc = jssub_stream_bounds(s->sub, &first, &last, why, sizeof why);
        /* Still held: JetStream delivered them into a connection that died with its NATS
         * node (they are pending, and would come back after the ack wait, behind these).
         * Nothing is lost: the session starts again from the stored position. */
        if (rc != PGC_OK || first <= from)
            return errbuf_set(err, err_len, PGC_ERR_CONN,
                              "replica: stream %s skipped from sequence %llu to %llu while "
                              "still holding them (delivered into a connection that died?): "
                              "reading again from the stored position",
                              s->names->stream, (unsigned long long)from, (unsigned long long)sseq);
        return errbuf_set(
            err, err_len, PGC_ERR_DATA_LOSS,
            "replica: the stream %s no longer holds sequences %llu to %llu, which "
            "this replica had not applied: what lies between is gone "
            "(retention, or a purge); initialise the replica again with `pgcapture replica "
            "init`",
            s->names->stream, (unsigned long long)from, (unsigned long long)(sseq - 1));
    }
    if (sseq > s->last_sseq)
        s->last_sseq = sseq;
    const char *first_s = jssub_msg_header(m, "Pgc-First");
    const char *last_s = jssub_msg_header(m, "Pgc-Last");
    const char *part_s = jssub_msg_header(m, "Pgc-Part");
    log_pos first, last;
    if (!first_s || !last_s || !logpos_parse(first_s, &first) || !logpos_parse(last_s, &last)) {
        jssub_msg_destroy(m);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "replica: stream message %llu lacks valid Pgc-First/Pgc-Last headers",
                          (unsigned long long)sseq);
    }
    int rc = hold(s, m, last);
    if (rc != PGC_OK) {
        jssub_msg_destroy(m);
        return errbuf_set(err, err_len, rc, "replica: out of memory");
    }
    if (logpos_cmp(last, s->seen) <= 0) {
        s->skipped++;
        return PGC_OK; /* all of it applied before: acked with the next commit */
    }
    const uint8_t *data = jssub_msg_data(m);
    size_t len = jssub_msg_len(m);
    if (part_s) {
        uint32_t pi, pn;
        if (!part_header_parse(part_s, &pi, &pn))
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "replica: stream message %llu has a bad Pgc-Part header",
                              (unsigned long long)sseq);
        rc = part_joiner_feed(s->joiner, last, pi, pn, data, len, &data, &len, err, err_len);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return PGC_OK;
    }
    batch_reader r;
    batch_reader_init(&r, data, len);
    const uint8_t *p;
    size_t n;
    uint32_t count = 0;
    log_pos pos = first, prev = {0, 0};
    while ((rc = batch_reader_next(&r, &p, &n, err, err_len)) == 1) {
        Pgcapture__Message *msg = pgcapture__message__unpack(NULL, n, p);
        if (!msg)
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "replica: stream message %llu: Message %u does not decode",
                              (unsigned long long)sseq, count);
        /* A Message's position follows from its content and its neighbours. */
        if (msg->type_case == PGCAPTURE__MESSAGE__TYPE_BEGIN)
            pos = (log_pos){msg->begin->final_lsn, 0};
        else if (count > 0)
            pos = (log_pos){prev.lsn, prev.seq + 1};
        rc = apply_message(s, msg, pos, sseq, err, err_len);
        protobuf_c_message_free_unpacked(&msg->base, NULL);
        if (rc != PGC_OK)
            return rc;
        prev = pos;
        count++;
    }
    if (rc < 0)
        return rc;
    if (count == 0 || logpos_cmp(prev, last) != 0) {
        char a[LOGPOS_TEXT_LEN];
        logpos_format(prev, a);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "replica: stream message %llu ends at %s, its Pgc-Last says %s",
                          (unsigned long long)sseq, a, last_s);
    }
    return PGC_OK;
}

/* A stream's created time as text, UTC: "2026-11-27T23:18:38.123456789Z". */
static void format_created(int64_t ns, char out[40])
{
    if (ns <= 0) {
        snprintf(out, 40, "unknown");
        return;
    }
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09lldZ", (long long)(ns % 1000000000));
}

#define WHAT_TO_DO_RECREATED                                                                       \
    "initialise the replica again with `pgcapture replica init`, or, when the stream holds "       \
    "every change after this replica's position, restart the applier once with "                   \
    "--accept-new-stream (it then reads the stream from its first message and skips what the "     \
    "replica has applied)"

/* Whether `st` is the stream the stored position was read from (docs/design.md, guarantee
 * 8): the created time stored with the position is the stream's, and the message at the
 * stored sequence holds the stored position. A position without a stored identity (written
 * before identities were) adopts the stream's once its message agrees. PGC_OK with
 * *accepted when it is another stream and --accept-new-stream says to read it anyway. */
static int check_identity(jsconn *js, const replica_config *cfg, const replica_names *n,
                          const apply_position *pos, const jsconn_stream_state *st, bool *accepted,
                          char *err, size_t err_len)
{
    char stored[40], current[40], at[LOGPOS_TEXT_LEN], why[512];
    *accepted = false;
    if (!pos->found || !pos->stream_seq)
        return PGC_OK; /* no stream sequence to trust: read from the first message */
    if (st->created_ns <= 0)
        return errbuf_set(err, err_len, PGC_ERR_CONN,
                          "replica: the stream %s reports no created time (yet)", n->stream);
    format_created(pos->stream_created, stored);
    format_created(st->created_ns, current);
    logpos_format(pos->pos, at);
    char other[400] = "";
    if (pos->stream_created && pos->stream_created != st->created_ns) {
        snprintf(other, sizeof other,
                 "it was created at %s, this replica read the one created at %s", current, stored);
    } else if (pos->stream_seq > st->last_seq) {
        /* A stream's sequences never go back, not even through a purge. */
        snprintf(other, sizeof other,
                 "it ends at sequence %llu, before the message this replica read (stored "
                 "identity: created %s; the stream's: created %s)",
                 (unsigned long long)st->last_seq, stored, current);
    } else if (pos->stream_seq >= st->first_seq) {
        char f[LOGPOS_TEXT_LEN + 8], l[LOGPOS_TEXT_LEN + 8];
        log_pos fp, lp;
        int hf = jsconn_msg_header(js, n->stream, pos->stream_seq, "Pgc-First", f, sizeof f, why,
                                   sizeof why);
        int hl = hf == 1 ? jsconn_msg_header(js, n->stream, pos->stream_seq, "Pgc-Last", l,
                                             sizeof l, why, sizeof why)
                         : 0;
        if (hf < 0 || hl < 0)
            return errbuf_set(err, err_len, PGC_ERR_CONN, "replica: %s", why);
        if (hf == 1 && hl == 1 && logpos_parse(f, &fp) && logpos_parse(l, &lp) &&
            (logpos_cmp(pos->pos, fp) < 0 || logpos_cmp(pos->pos, lp) > 0))
            snprintf(other, sizeof other,
                     "its message at sequence %llu holds positions %s to %s, not this "
                     "replica's (stored identity: created %s; the stream's: created %s)",
                     (unsigned long long)pos->stream_seq, f, l, stored, current);
    }
    if (!other[0]) {
        if (!pos->stream_created)
            log_info("the stored position has no stream identity yet: adopting the stream's",
                     "stream=%s created=%s stream_seq=%llu", n->stream, current,
                     (unsigned long long)pos->stream_seq);
        return PGC_OK;
    }
    if (cfg->accept_new_stream) {
        log_warn("the stream is not the one this replica was reading: reading it from its first "
                 "message, as asked (--accept-new-stream)",
                 "stream=%s position=%s stored_stream_seq=%llu stored_created=%s created=%s "
                 "first_seq=%llu",
                 n->stream, at, (unsigned long long)pos->stream_seq, stored, current,
                 (unsigned long long)st->first_seq);
        *accepted = true;
        return PGC_OK;
    }
    return errbuf_set(err, err_len, PGC_ERR_DATA_LOSS,
                      "replica: the stream %s is not the one this replica was reading (position "
                      "%s at stream sequence %llu): %s; its sequences are not this replica's and "
                      "changes may be missing from it; what to do: %s",
                      n->stream, at, (unsigned long long)pos->stream_seq, other,
                      WHAT_TO_DO_RECREATED);
}

/* Recreates the durable consumer so that it delivers from `start_seq` (0: from the
 * beginning): the replica's stored position, not the consumer's ack state, says where to
 * resume, and a consumer left with unacked messages would deliver newer ones first. First
 * checks that the stream is the one the position was read from; *created is its identity,
 * *accepted says a new stream was accepted (read from its first message). */
static int reset_consumer(const replica_config *cfg, const replica_names *n,
                          const apply_position *pos, int64_t *created, bool *accepted, char *err,
                          size_t err_len)
{
    char why[512];
    jsconn *js = NULL;
    jsconn_stream_state st;
    int rc = jsconn_open(cfg->nats_url, &js, why, sizeof why);
    if (rc != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: %s", why);
        goto done;
    }
    if (jsconn_stream_read_state(js, n->stream, &st, why, sizeof why) != PGC_OK) {
        /* A missing stream is worth waiting for: the agent creates it. */
        rc = errbuf_set(err, err_len, PGC_ERR_CONN,
                        "replica: no stream %s yet (is the agent running?): %s", n->stream, why);
        goto done;
    }
    if ((rc = check_identity(js, cfg, n, pos, &st, accepted, err, err_len)) != PGC_OK)
        goto done;
    *created = st.created_ns;
    uint64_t first = st.first_seq, last = st.last_seq;
    uint64_t stored_seq = *accepted ? 0 : pos->stream_seq;
    /* The log must still hold everything after the stored position: never skip silently. */
    if (pos->found && stored_seq && first > stored_seq + 1 && last > 0) {
        rc = errbuf_set(err, err_len, PGC_ERR_STATE,
                        "replica: the stream %s starts at sequence %llu but this replica "
                        "stopped at %llu: what lies between is gone (retention, or a purge); "
                        "initialise the replica again with `pgcapture replica init`",
                        n->stream, (unsigned long long)first, (unsigned long long)stored_seq);
        goto done;
    }
    if (first > 1 && !stored_seq && last >= first && !*accepted) {
        char h[LOGPOS_TEXT_LEN + 16];
        log_pos fpos;
        if (jsconn_msg_header(js, n->stream, first, "Pgc-First", h, sizeof h, why, sizeof why) ==
                1 &&
            logpos_parse(h, &fpos) && (!pos->found || logpos_cmp(fpos, pos->pos) > 0) &&
            fpos.seq == 0) {
            char a[LOGPOS_TEXT_LEN];
            logpos_format(fpos, a);
            rc = errbuf_set(err, err_len, PGC_ERR_STATE,
                            "replica: the stream %s no longer holds the start of the log "
                            "(it begins at %s) and this replica's position is %s: initialise "
                            "it with `pgcapture replica init`",
                            n->stream, a, pos->found ? "older" : "unknown");
            goto done;
        }
    }
    if (jsconn_delete_consumer(js, n->stream, n->consumer, why, sizeof why) != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: cannot reset consumer %s: %s",
                        n->consumer, why);
        goto done;
    }
    jsconn_consumer cc = {n->consumer, n->subject, cfg->ack_wait_ms,
                          cfg->max_pending * 2 + FETCH_MAX,
                          stored_seq && stored_seq >= first ? stored_seq : 0};
    if (jsconn_add_consumer(js, n->stream, &cc, why, sizeof why) != PGC_OK)
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: cannot create consumer %s: %s",
                        n->consumer, why);
done:
    jsconn_destroy(js);
    return rc;
}

/* While idle: the stream is still the one this session reads. A deleted stream takes the
 * durable consumer with it, and fetches then find nothing, forever: the session ends, and
 * the next one waits for the stream and checks what it is. */
static int check_stream_unchanged(session *s, char *err, size_t err_len)
{
    if (clock_mono_ms() - s->last_identity_ms < IDENTITY_CHECK_MS)
        return PGC_OK;
    s->last_identity_ms = clock_mono_ms();
    int64_t created = 0;
    char why[256];
    int rc = jssub_stream_created(s->sub, &created, why, sizeof why);
    if (rc == PGC_ERR_CONN || (rc == PGC_OK && (created == s->stream_created || created <= 0)))
        return PGC_OK; /* the same stream, or NATS cannot say now (the fetches will) */
    return errbuf_set(err, err_len, PGC_ERR_CONN,
                      "replica: the stream %s was %s under this session; checking it again",
                      s->names->stream, rc == PGC_ERR_NOT_FOUND ? "deleted" : "recreated");
}

static void log_stats(session *s)
{
    uint64_t first = 0, last = 0;
    char err[256], lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(s->committed.pos.lsn, lsn);
    /* Lag: NATS messages the stream holds past the applied one, and seconds since the
     * applied commit happened on the source (2000-01-01 epoch, microseconds). */
    int64_t lag_s = -1;
    if (s->committed.commit_time > 0) {
        int64_t now_us = clock_real_ns() / 1000 - 946684800LL * 1000000LL;
        lag_s = (now_us - s->committed.commit_time) / 1000000;
    }
    const apply_stats *st = apply_get_stats(s->ac);
    if (jssub_stream_bounds(s->sub, &first, &last, err, sizeof err) == PGC_OK)
        log_info("replica progress",
                 "applied_lsn=%s applied_seq=%u txns=%llu changes=%llu skipped=%llu "
                 "statements=%llu ddl=%llu truncates=%llu commits=%llu lag_messages=%lld "
                 "lag_seconds=%lld",
                 lsn, s->committed.pos.seq, (unsigned long long)s->applied_txns,
                 (unsigned long long)s->applied_changes, (unsigned long long)s->skipped,
                 (unsigned long long)st->statements, (unsigned long long)st->ddl,
                 (unsigned long long)st->truncates, (unsigned long long)st->commits,
                 (long long)(last > s->committed.stream_seq ? last - s->committed.stream_seq : 0),
                 (long long)lag_s);
}

/* Lag gauges: 0 when every message of the log is applied; otherwise the WAL between the
 * applied LSN and the log's last one, and the age of the applied source commit. */
static void update_lag(session *s)
{
    uint64_t pending = 0;
    char err[256], last_s[LOGPOS_TEXT_LEN];
    log_pos last;
    if (jssub_num_pending(s->sub, &pending, err, sizeof err) != PGC_OK)
        return;
    int found = jssub_last_header(s->sub, s->names->subject, "Pgc-Last", last_s, sizeof last_s, err,
                                  sizeof err);
    if (found < 0)
        return;
    bool caught_up =
        pending == 0 && s->n_held == 0 && !apply_in_transaction(s->ac) &&
        (found == 0 || (logpos_parse(last_s, &last) && logpos_cmp(last, s->committed.pos) <= 0));
    if (caught_up) {
        metric_set(rm.lag_bytes, 0);
        metric_set(rm.lag_seconds, 0);
        return;
    }
    if (found == 1 && logpos_parse(last_s, &last) && last.lsn > s->committed.pos.lsn)
        metric_set(rm.lag_bytes, (double)(last.lsn - s->committed.pos.lsn));
    if (s->committed.commit_time > 0) {
        int64_t now_us = clock_real_ns() / 1000 - CLOCK_PG_EPOCH_UNIX_S * 1000000;
        double age = (double)(now_us - s->committed.commit_time) / 1e6;
        metric_set(rm.lag_seconds, age > 0 ? age : 0);
    }
}

static int run_session(const replica_config *cfg, const replica_names *names, char *err,
                       size_t err_len)
{
    session s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.names = names;
    int rc = apply_open(cfg->replica, cfg->name, &s.ac, &s.committed, err, err_len);
    if (rc != PGC_OK)
        return rc;
    apply_set_skip_ddl(s.ac, cfg->skip_ddl);
    s.seen = s.committed.pos;
    s.seen_stream_seq = s.committed.stream_seq;
    s.last_sseq = s.committed.stream_seq;
    s.seen_commit_time = s.committed.commit_time;
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(s.committed.pos.lsn, lsn);
    log_info("replica connected", "position_found=%s applied_lsn=%s applied_seq=%u stream_seq=%llu",
             s.committed.found ? "true" : "false", lsn, s.committed.pos.seq,
             (unsigned long long)s.committed.stream_seq);
    bool accepted = false;
    if ((rc = reset_consumer(cfg, names, &s.committed, &s.stream_created, &accepted, err,
                             err_len)) != PGC_OK)
        goto done;
    /* The identity is stored at once: a row that had none adopts the stream's, and an
     * accepted new stream is read from its first message (no sequence of it known yet). */
    if (accepted) {
        s.seen_stream_seq = s.last_sseq = 0;
        s.committed.stream_seq = 0;
    }
    if (s.committed.found &&
        (accepted || (s.committed.stream_seq && !s.committed.stream_created))) {
        apply_position p = s.committed;
        p.stream_created = s.stream_created;
        if ((rc = apply_store_stream(s.ac, &p, err, err_len)) != PGC_OK)
            goto done;
        s.committed = p;
    }
    s.last_identity_ms = clock_mono_ms();
    jssub_config jc = {cfg->nats_url,   names->stream,    names->subject,
                       names->consumer, cfg->ack_wait_ms, cfg->max_pending * 2 + FETCH_MAX};
    if ((rc = jssub_create(&jc, &s.sub, err, err_len)) != PGC_OK)
        goto done;
    if ((rc = part_joiner_create(PART_MAX_MESSAGE_BYTES, &s.joiner)) != PGC_OK) {
        errbuf_set(err, err_len, rc, "replica: out of memory");
        goto done;
    }
    s.last_stats_ms = clock_mono_ms();
    health_set("replication", true, NULL);
    jssub_msg *msgs[FETCH_MAX];
    while (!stop_requested) {
        bool open = apply_in_transaction(s.ac);
        int n =
            jssub_fetch(s.sub, msgs, FETCH_MAX, open ? OPEN_FETCH_MS : IDLE_FETCH_MS, err, err_len);
        if (n < 0) {
            rc = n;
            goto done;
        }
        for (int i = 0; i < n; i++) {
            if (rc != PGC_OK) {
                jssub_msg_destroy(msgs[i]); /* not acked: read again by the next session */
                continue;
            }
            rc = process(&s, msgs[i], err, err_len);
            if (rc == PGC_OK)
                ack_committed(&s);
        }
        if (rc != PGC_OK)
            goto done;
        /* Nothing more to read right now: commit what is applied, for low latency. */
        if (n == 0 && !s.in_src_tx && (rc = commit(&s, err, err_len)) != PGC_OK)
            goto done;
        if (n == 0 && (rc = check_stream_unchanged(&s, err, err_len)) != PGC_OK)
            goto done;
        if (n == 0 && s.in_src_tx && (int64_t)s.n_held >= cfg->max_pending &&
            (rc = commit(&s, err, err_len)) != PGC_OK)
            goto done;
        ack_committed(&s);
        if (cfg->metrics_listen && *cfg->metrics_listen &&
            clock_mono_ms() - s.last_lag_ms >= LAG_METRICS_MS) {
            update_lag(&s);
            s.last_lag_ms = clock_mono_ms();
        }
        if (clock_mono_ms() - s.last_stats_ms >= cfg->stats_interval_ms) {
            log_stats(&s);
            s.last_stats_ms = clock_mono_ms();
        }
    }
    if (!s.in_src_tx && (rc = commit(&s, err, err_len)) == PGC_OK)
        ack_committed(&s);
done:
    if (rc == PGC_OK)
        log_stats(&s);
    for (size_t i = 0; i < s.n_held; i++)
        jssub_msg_destroy(s.held[i].msg); /* unacked: re-read and skipped next time */
    free(s.held);
    part_joiner_destroy(s.joiner);
    jssub_destroy(s.sub);
    apply_destroy(s.ac);
    return rc;
}

/* A consumer name unique to the replica database when none is given: its cluster's
 * system identifier and its database name. */
static int derive_names(const replica_config *cfg, replica_names *n, char *err, size_t err_len)
{
    bool fits = cfg->stream && *cfg->stream
                    ? snprintf(n->stream, sizeof n->stream, "%s", cfg->stream) < NAMES_BUF_LEN
                    : names_stream(cfg->name, n->stream, sizeof n->stream) == PGC_OK;
    if (!fits || names_log_subject(cfg->name, n->subject, sizeof n->subject) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "replica: stream name too long");
    if (cfg->consumer && *cfg->consumer) {
        if (snprintf(n->consumer, sizeof n->consumer, "%s", cfg->consumer) >= NAMES_BUF_LEN)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "replica: consumer name too long");
        return PGC_OK;
    }
    PGconn *c = PQconnectdb(cfg->replica);
    PGresult *r = NULL;
    int rc = PGC_OK;
    if (PQstatus(c) != CONNECTION_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: cannot connect to the replica: %s",
                        PQerrorMessage(c));
        goto done;
    }
    r = PQexec(c, "SELECT system_identifier::text || '_' || current_database() "
                  "FROM pg_control_system()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: cannot identify the replica: %s",
                        PQresultErrorMessage(r));
        goto done;
    }
    if (names_replica_consumer(cfg->name, PQgetvalue(r, 0, 0), n->consumer, sizeof n->consumer) !=
        PGC_OK)
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "replica: consumer name too long");
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int replica_run(const replica_config *cfg)
{
    replica_names names;
    char err[ERR_LEN];
    backoff retry;
    backoff_init(&retry, cfg->retry_max_ms);
    err[0] = '\0';
    while (!stop_requested) {
        int64_t attempt_start = clock_mono_ms();
        int rc = derive_names(cfg, &names, err, sizeof err);
        if (rc == PGC_OK)
            break;
        if (rc == PGC_ERR_CONFIG) {
            log_error("replica stopped: this needs fixing before a retry can help", "error=\"%s\"",
                      err);
            return 1;
        }
        log_warn("replica unreachable, retrying", "error=\"%s\"", err);
        sleep_ms(backoff_failed(&retry, attempt_start));
    }
    if (stop_requested)
        return 0;
    log_info("replica starting", "source_name=%s stream=%s consumer=%s nats=%s", cfg->name,
             names.stream, names.consumer, cfg->nats_url);
    if (cfg->skip_ddl.lsn) {
        char skip[LOGPOS_LSN_LEN];
        logpos_format_lsn(cfg->skip_ddl.lsn, skip);
        log_warn("will skip the inexact DDL row at this position, as asked (--skip-ddl)",
                 "lsn=%s seq=%u", skip, cfg->skip_ddl.seq);
    }
    rm.applied_lsn = metrics_get(METRIC_REPLICA_APPLIED_LSN, cfg->name);
    rm.lag_bytes = metrics_get(METRIC_REPLICA_LAG_BYTES, cfg->name);
    rm.lag_seconds = metrics_get(METRIC_REPLICA_LAG_SECONDS, cfg->name);
    rm.txns = metrics_get(METRIC_REPLICA_TXNS_APPLIED, cfg->name);
    rm.rows = metrics_get(METRIC_REPLICA_ROWS_APPLIED, cfg->name);
    rm.conflicts = metrics_get(METRIC_REPLICA_CONFLICTS, cfg->name);
    health_set("replication", false, "starting");
    backoff_init(&retry, cfg->retry_max_ms);
    int64_t started = clock_mono_ms();
    while (!stop_requested) {
        int64_t session_start = clock_mono_ms();
        err[0] = '\0';
        int rc = run_session(cfg, &names, err, sizeof err);
        if (rc == PGC_OK || stop_requested)
            break;
        health_set("replication", false, err);
        bool busy_in_grace = rc == PGC_ERR_BUSY && clock_mono_ms() - started < cfg->busy_timeout_ms;
        if (!status_is_transient(rc) && rc != PGC_ERR_IO && !busy_in_grace) {
            log_error("replica stopped: this needs fixing before a retry can help",
                      "error=\"%s\" status=%s", err, status_str(rc));
            /* A change the replica refused (no row to update, a constraint). */
            if (rc == PGC_ERR_STATE)
                metric_inc(rm.conflicts);
            return 1;
        }
        int64_t wait = backoff_failed(&retry, session_start);
        if (retry.failures == 1 || retry.failures % 10 == 0)
            log_warn("session failed, retrying",
                     "error=\"%s\" attempt=%d retry_in_ms=%lld failing_for_ms=%lld", err,
                     retry.failures, (long long)wait,
                     (long long)(clock_mono_ms() - retry.failing_since_ms));
        sleep_ms(wait);
    }
    log_info("replica stopped", "source_name=%s", cfg->name);
    return 0;
}
