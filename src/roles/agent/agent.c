/* The agent role (see agent.h).
 *
 * Threading: one thread owns everything here: the replication connection, the pgoutput
 * decoder, the relation cache, the open batch and the confirmation tracker. libnats
 * delivers publish acks on its own threads into jspub's queue; this thread drains them
 * when jspub's wake-up fd is readable. A session is one connect-stream cycle; any
 * transient failure ends it, and the next session resumes from the slot's confirmed LSN
 * and skips what the stream already holds, so nothing is lost or published twice. */
#include "roles/agent/agent.h"

#include "codec/batch.h"
#include "codec/logpos.h"
#include "codec/msgbuild.h"
#include "codec/pgoutput.h"
#include "codec/relcache.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "roles/agent/confirm.h"
#include "roles/agent/slot_loss.h"
#include "core/health.h"
#include "core/log.h"
#include "core/names.h"
#include "core/metrics.h"
#include "core/status.h"
#include "roles/agent/slot_monitor.h"
#include "jetstream/jspub.h"
#include "pg/replconn.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_LEN 1024
#define MAX_EVENTS_PER_ROUND 4096
#define STATUS_MIN_INTERVAL_MS 100
#define STATS_INTERVAL_MS 30000
#define STOP_DRAIN_MS 5000
#define SLOT_METRICS_INTERVAL_MS 2000
/* Seconds between the Unix epoch and PostgreSQL's (2000-01-01). */

static volatile sig_atomic_t stop_requested;

void agent_request_stop(void)
{
    stop_requested = 1;
}

typedef struct agent_names {
    char slot[NAMES_BUF_LEN], publication[NAMES_BUF_LEN], stream[NAMES_BUF_LEN],
        subject[NAMES_BUF_LEN];
} agent_names;

typedef struct agent_stats {
    uint64_t txns, changes, messages, batches, bytes, skipped, filtered;
} agent_stats;

/* This process's series of the agent metrics (metrics_table.h) for its source. */
typedef struct agent_metrics {
    metric *changes_read, *txns_read, *changes_published, *txns_published;
    metric *publish_latency, *batch_bytes, *in_flight_bytes, *reconnects;
    metric *last_commit_time, *confirmed_lsn;
} agent_metrics;

/* What one publish carries, kept until its ack counts it as published. */
typedef struct pub_record {
    uint64_t token;
    uint32_t changes, commits;
    size_t bytes;
    int64_t sent_ns;
} pub_record;

typedef struct session {
    const agent_config *cfg;
    const agent_names *names;
    agent_stats *stats;
    const agent_metrics *m;
    pub_record *pubs; /* ring of max_in_flight + 1, indexed by token */
    size_t n_pubs;
    uint32_t batch_changes, batch_commits; /* in the open batch */
    replconn *repl;
    jspub *pub;
    pgoutput_decoder *dec;
    relcache *rels;
    msgbuild *mb;
    batch_writer *bw;
    confirm_tracker *ct;

    /* What the stream already holds: everything at or below skip_to is not published
     * again; if its last message is part i/n, parts after i are still owed. */
    bool skipping;
    log_pos skip_to;
    uint32_t skip_part, skip_parts;

    bool in_txn, begin_emitted;
    uint64_t txn_lsn;
    int64_t txn_time;
    uint32_t txn_xid, seq;

    uint64_t next_pubno;
    int64_t batch_opened_ms;
    uint64_t received_lsn, server_wal_end, sent_flush;
    int64_t last_status_ms, last_stats_ms;
    char err[ERR_LEN];
} session;

static bool is_sources_table(const relcache_entry *rel)
{
    return strcmp(rel->relname, "sources") == 0 && strcmp(rel->nspname, "pgcapture") == 0;
}

static void count_published(session *s, uint64_t token)
{
    pub_record *p = &s->pubs[token % s->n_pubs];
    if (p->token != token)
        return;
    metric_add(s->m->changes_published, p->changes);
    metric_add(s->m->txns_published, p->commits);
    metric_gauge_add(s->m->in_flight_bytes, -(double)p->bytes);
    metric_observe(s->m->publish_latency, (double)(clock_mono_ns() - p->sent_ns) / 1e9);
    p->token = 0;
}

/* Drains queued publish acks into the confirmation tracker. A failed publish ends the
 * session: every later in-flight publish fails too (expected sequence), so the next
 * session resumes exactly after the last message the stream holds. */
static int drain_acks(session *s)
{
    jspub_ack acks[256];
    int n;
    while ((n = jspub_poll(s->pub, acks, 256)) > 0) {
        int64_t now = clock_mono_ms();
        for (int i = 0; i < n; i++) {
            if (!acks[i].ok)
                return errbuf_set(
                    s->err, sizeof s->err, PGC_ERR_IO, "publish %llu to %s failed: %s",
                    (unsigned long long)acks[i].token, s->names->stream, acks[i].error);
            confirm_acked(s->ct, acks[i].token, now);
            count_published(s, acks[i].token);
        }
    }
    return PGC_OK;
}

static int publish(session *s, const uint8_t *data, size_t len, const jspub_headers *h)
{
    for (;;) {
        int rc = jspub_publish(s->pub, data, len, h, s->next_pubno, s->err, sizeof s->err);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT)
            return rc;
        /* max in-flight reached: let acks land, then try again. */
        if ((rc = drain_acks(s)) != PGC_OK)
            return rc;
        if (stop_requested)
            return PGC_ERR_STATE;
    }
    int rc = confirm_published(s->ct, s->next_pubno);
    if (rc != PGC_OK)
        return errbuf_set(s->err, sizeof s->err, rc, "confirm tracker: publish %llu out of order",
                          (unsigned long long)s->next_pubno);
    /* Parts of an oversized message count their changes with the last part. */
    bool last_part = h->parts == 0 || h->part == h->parts;
    s->pubs[s->next_pubno % s->n_pubs] =
        (pub_record){s->next_pubno, last_part ? s->batch_changes : 0,
                     last_part ? s->batch_commits : 0, len, clock_mono_ns()};
    if (last_part)
        s->batch_changes = s->batch_commits = 0;
    metric_gauge_add(s->m->in_flight_bytes, (double)len);
    metric_observe(s->m->batch_bytes, (double)len);
    s->next_pubno++;
    s->stats->batches++;
    s->stats->bytes += len;
    return PGC_OK;
}

static int flush_batch(session *s)
{
    if (batch_writer_count(s->bw) == 0)
        return PGC_OK;
    jspub_headers h = {batch_writer_first(s->bw), batch_writer_last(s->bw),
                       batch_writer_count(s->bw), 0, 0};
    int rc = publish(s, batch_writer_data(s->bw), batch_writer_len(s->bw), &h);
    batch_writer_clear(s->bw);
    return rc;
}

/* Publishes the writer's single oversized message as parts from part `from` on. */
static int publish_parts(session *s, uint32_t from)
{
    size_t len = batch_writer_len(s->bw), max = batch_writer_max(s->bw);
    uint32_t parts = (uint32_t)((len + max - 1) / max);
    log_pos pos = batch_writer_last(s->bw);
    int rc = PGC_OK;
    for (uint32_t i = from; i <= parts && rc == PGC_OK; i++) {
        size_t off = (size_t)(i - 1) * max, n = len - off < max ? len - off : max;
        jspub_headers h = {pos, pos, 1, i, parts};
        rc = publish(s, batch_writer_data(s->bw) + off, n, &h);
    }
    batch_writer_clear(s->bw);
    return rc;
}

/* Counts what emit is about to add to the batch, for the published counters. */
static void count_emitted(session *s, const Pgcapture__Message *msg)
{
    if (msg->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE)
        s->batch_changes++;
    else if (msg->type_case == PGCAPTURE__MESSAGE__TYPE_COMMIT)
        s->batch_commits++;
}

static int emit(session *s, const Pgcapture__Message *msg, log_pos pos)
{
    int rc;
    s->stats->messages++;
    if (s->skipping) {
        int c = logpos_cmp(pos, s->skip_to);
        if (c < 0 || (c == 0 && s->skip_parts == 0)) {
            s->stats->skipped++;
            return PGC_OK;
        }
        s->skipping = false;
        if (c == 0) {
            /* The stream holds parts 1..skip_part of this message: send the rest. */
            if ((rc = flush_batch(s)) != PGC_OK)
                return rc;
            if ((rc = batch_writer_add_oversized(s->bw, &msg->base, pos)) != PGC_OK)
                return errbuf_set(s->err, sizeof s->err, rc, "batch: cannot pack message");
            count_emitted(s, msg);
            return publish_parts(s, s->skip_part + 1);
        }
    }
    if (batch_writer_count(s->bw) == 0)
        s->batch_opened_ms = clock_mono_ms();
    rc = batch_writer_add(s->bw, &msg->base, pos);
    if (rc == PGC_OK)
        count_emitted(s, msg);
    if (rc == PGC_ERR_TOO_LARGE && batch_writer_count(s->bw) > 0) {
        if ((rc = flush_batch(s)) != PGC_OK)
            return rc;
        s->batch_opened_ms = clock_mono_ms();
        rc = batch_writer_add(s->bw, &msg->base, pos);
        if (rc == PGC_OK)
            count_emitted(s, msg);
    }
    if (rc == PGC_ERR_TOO_LARGE) {
        if ((rc = batch_writer_add_oversized(s->bw, &msg->base, pos)) != PGC_OK)
            return errbuf_set(s->err, sizeof s->err, rc, "batch: cannot pack message");
        count_emitted(s, msg);
        return publish_parts(s, 1);
    }
    if (rc != PGC_OK)
        return errbuf_set(s->err, sizeof s->err, rc, "batch: cannot pack message");
    return PGC_OK;
}

static int ensure_begin(session *s)
{
    if (s->begin_emitted)
        return PGC_OK;
    s->begin_emitted = true;
    return emit(s, msgbuild_begin(s->mb, s->txn_lsn, s->txn_time, s->txn_xid),
                (log_pos){s->txn_lsn, 0});
}

static int next_seq(session *s, uint32_t *seq)
{
    if (s->seq == UINT32_MAX)
        return errbuf_set(s->err, sizeof s->err, PGC_ERR_UNSUPPORTED,
                          "transaction at %llX has more than 2^32 changes",
                          (unsigned long long)s->txn_lsn);
    *seq = ++s->seq;
    return PGC_OK;
}

static const relcache_entry *lookup_rel(session *s, uint32_t relid, const char *what)
{
    const relcache_entry *rel = relcache_lookup(s->rels, relid);
    if (!rel) {
        char lsn[LOGPOS_LSN_LEN];
        logpos_format_lsn(s->received_lsn, lsn);
        errbuf_set(s->err, sizeof s->err, PGC_ERR_MALFORMED,
                   "pgoutput: relation %u unknown in %s at %s", relid, what, lsn);
    }
    return rel;
}

static int handle_change(session *s, const pgoutput_msg *m)
{
    uint32_t relid = m->kind == 'I'   ? m->u.insert.relid
                     : m->kind == 'U' ? m->u.update.relid
                                      : m->u.del.relid;
    const char *what = m->kind == 'I' ? "Insert" : m->kind == 'U' ? "Update" : "Delete";
    const relcache_entry *rel = lookup_rel(s, relid, what);
    if (!rel)
        return PGC_ERR_MALFORMED;
    if (!s->in_txn)
        return errbuf_set(s->err, sizeof s->err, PGC_ERR_MALFORMED,
                          "pgoutput: %s outside a transaction", what);
    if (is_sources_table(rel)) {
        s->stats->filtered++;
        return PGC_OK;
    }
    int rc;
    uint32_t seq = 0;
    const Pgcapture__Message *msg;
    if ((rc = ensure_begin(s)) != PGC_OK || (rc = next_seq(s, &seq)) != PGC_OK)
        return rc;
    if ((rc = msgbuild_change(s->mb, rel, m, &msg, s->err, sizeof s->err)) != PGC_OK)
        return rc;
    s->stats->changes++;
    metric_inc(s->m->changes_read);
    return emit(s, msg, (log_pos){s->txn_lsn, seq});
}

static int handle_truncate(session *s, const pgoutput_msg *m)
{
    if (!s->in_txn)
        return errbuf_set(s->err, sizeof s->err, PGC_ERR_MALFORMED,
                          "pgoutput: Truncate outside a transaction");
    for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
        const relcache_entry *rel = lookup_rel(s, m->u.truncate.relids[i], "Truncate");
        if (!rel)
            return PGC_ERR_MALFORMED;
        if (is_sources_table(rel))
            continue;
        int rc;
        uint32_t seq = 0;
        if ((rc = ensure_begin(s)) != PGC_OK || (rc = next_seq(s, &seq)) != PGC_OK)
            return rc;
        s->stats->changes++;
        metric_inc(s->m->changes_read);
        if ((rc = emit(s, msgbuild_truncate(s->mb, rel), (log_pos){s->txn_lsn, seq})) != PGC_OK)
            return rc;
    }
    return PGC_OK;
}

static int handle_commit(session *s, const pgoutput_msg *m)
{
    int rc;
    if (!s->in_txn)
        return errbuf_set(s->err, sizeof s->err, PGC_ERR_MALFORMED,
                          "pgoutput: Commit without Begin");
    if (s->begin_emitted) {
        uint32_t seq = 0;
        if ((rc = next_seq(s, &seq)) != PGC_OK)
            return rc;
        rc = emit(s,
                  msgbuild_commit(s->mb, m->u.commit.commit_lsn, m->u.commit.end_lsn,
                                  m->u.commit.commit_time),
                  (log_pos){s->txn_lsn, seq});
        if (rc != PGC_OK)
            return rc;
    }
    /* Durable once the publish that will carry the Commit (the open batch) is acked, or,
     * with nothing open, once everything published so far is. */
    uint64_t needed = batch_writer_count(s->bw) > 0 ? s->next_pubno : s->next_pubno - 1;
    if ((rc = confirm_txn_done(s->ct, needed, m->u.commit.end_lsn, clock_mono_ms())) != PGC_OK)
        return errbuf_set(s->err, sizeof s->err, rc, "confirm tracker: out of memory");
    s->in_txn = false;
    s->stats->txns++;
    metric_inc(s->m->txns_read);
    metric_set(s->m->last_commit_time,
               (double)m->u.commit.commit_time / 1e6 + (double)CLOCK_PG_EPOCH_UNIX_S);
    return PGC_OK;
}

static int handle_xlogdata(session *s, const replconn_event *ev)
{
    pgoutput_msg m;
    char lsn[LOGPOS_LSN_LEN];
    int rc = pgoutput_decode(s->dec, ev->data, ev->len, &m, s->err, sizeof s->err);
    if (rc != PGC_OK) {
        size_t n = strlen(s->err);
        logpos_format_lsn(ev->wal_start, lsn);
        snprintf(s->err + n, sizeof s->err - n, " (WAL %s)", lsn);
        return rc;
    }
    switch (m.kind) {
    case 'B':
        s->in_txn = true;
        s->begin_emitted = false;
        s->txn_lsn = m.u.begin.final_lsn;
        s->txn_time = m.u.begin.commit_time;
        s->txn_xid = m.u.begin.xid;
        s->seq = 0;
        return PGC_OK;
    case 'C':
        return handle_commit(s, &m);
    case 'R': {
        const relcache_entry *e;
        return relcache_put(s->rels, &m, &e, s->err, sizeof s->err);
    }
    case 'I':
    case 'U':
    case 'D':
        return handle_change(s, &m);
    case 'T':
        return handle_truncate(s, &m);
    case 'Y': /* type names: the Field carries the type OID, nothing to publish */
    case 'O': /* origin of a replicated transaction: not part of the protocol */
        return PGC_OK;
    case 'M':
        /* Logical decoding messages have no place in the protocol's Message. */
        log_debug("logical decoding message not published", "prefix=%s len=%u", m.u.message.prefix,
                  m.u.message.len);
        return PGC_OK;
    default:
        logpos_format_lsn(ev->wal_start, lsn);
        return errbuf_set(s->err, sizeof s->err, PGC_ERR_UNSUPPORTED,
                          "pgoutput: message kind '%c' (0x%02x) not expected at %s: streaming "
                          "of in-progress transactions is not requested",
                          m.kind, (unsigned)(unsigned char)m.kind, lsn);
    }
}

static int send_status(session *s, bool force, bool reply_requested)
{
    int64_t now = clock_mono_ms();
    uint64_t flush = confirm_lsn(s->ct, now);
    bool due = now - s->last_status_ms >= s->cfg->status_interval_ms;
    bool moved = flush > s->sent_flush && now - s->last_status_ms >= STATUS_MIN_INTERVAL_MS;
    if (!force && !due && !moved && !reply_requested)
        return PGC_OK;
    uint64_t write = s->received_lsn > flush ? s->received_lsn : flush;
    int rc = replconn_send_status(s->repl, write, flush, flush, false, s->err, sizeof s->err);
    if (rc != PGC_OK)
        return rc;
    if (flush > s->sent_flush) {
        char l[LOGPOS_LSN_LEN];
        logpos_format_lsn(flush, l);
        log_debug("confirmed", "flush_lsn=%s", l);
    }
    s->sent_flush = flush;
    s->last_status_ms = now;
    metric_set(s->m->confirmed_lsn, (double)flush);
    return PGC_OK;
}

static void log_stats(session *s)
{
    char c[LOGPOS_LSN_LEN], w[LOGPOS_LSN_LEN];
    logpos_format_lsn(s->sent_flush, c);
    logpos_format_lsn(s->server_wal_end, w);
    uint64_t lag = s->server_wal_end > s->sent_flush ? s->server_wal_end - s->sent_flush : 0;
    log_info("progress",
             "txns=%llu changes=%llu messages=%llu batches=%llu bytes=%llu skipped=%llu "
             "confirmed_lsn=%s wal_end=%s lag_bytes=%llu in_flight=%lld",
             (unsigned long long)s->stats->txns, (unsigned long long)s->stats->changes,
             (unsigned long long)s->stats->messages, (unsigned long long)s->stats->batches,
             (unsigned long long)s->stats->bytes, (unsigned long long)s->stats->skipped, c, w,
             (unsigned long long)lag, (long long)jspub_in_flight(s->pub));
}

static int stream_loop(session *s)
{
    int rc;
    struct pollfd fds[2];
    while (!stop_requested) {
        int64_t now = clock_mono_ms();
        int timeout = (int)(s->cfg->status_interval_ms - (now - s->last_status_ms));
        if (batch_writer_count(s->bw) > 0) {
            int linger = (int)(s->cfg->linger_ms - (now - s->batch_opened_ms));
            if (linger < timeout)
                timeout = linger;
        }
        if (confirm_waiting(s->ct) > 0 && timeout > STATUS_MIN_INTERVAL_MS)
            timeout = STATUS_MIN_INTERVAL_MS;
        if (timeout < 0)
            timeout = 0;
        fds[0] = (struct pollfd){.fd = replconn_socket(s->repl), .events = POLLIN};
        fds[1] = (struct pollfd){.fd = jspub_wakeup_fd(s->pub), .events = POLLIN};
        if (poll(fds, 2, timeout) < 0 && errno != EINTR)
            return errbuf_set(s->err, sizeof s->err, PGC_ERR_IO, "poll: %s", strerror(errno));
        if ((rc = drain_acks(s)) != PGC_OK)
            return rc;

        bool reply = false;
        for (int i = 0; i < MAX_EVENTS_PER_ROUND; i++) {
            replconn_event ev;
            if ((rc = replconn_read(s->repl, 0, &ev, s->err, sizeof s->err)) != PGC_OK)
                return rc;
            if (ev.kind == REPLCONN_NONE)
                break;
            if (ev.wal_end > s->server_wal_end)
                s->server_wal_end = ev.wal_end;
            if (ev.kind == REPLCONN_KEEPALIVE) {
                reply = reply || ev.reply_requested;
                /* Nothing open here: a quiet or fully filtered database must not keep
                 * WAL, so the server's position may be confirmed. */
                if (!s->in_txn && batch_writer_count(s->bw) == 0)
                    confirm_idle(s->ct, ev.wal_end, clock_mono_ms());
                continue;
            }
            if (ev.wal_start > s->received_lsn)
                s->received_lsn = ev.wal_start;
            if ((rc = handle_xlogdata(s, &ev)) != PGC_OK)
                return rc;
        }
        now = clock_mono_ms();
        if (batch_writer_count(s->bw) > 0 && now - s->batch_opened_ms >= s->cfg->linger_ms &&
            (rc = flush_batch(s)) != PGC_OK)
            return rc;
        if ((rc = send_status(s, false, reply)) != PGC_OK)
            return rc;
        if (now - s->last_stats_ms >= STATS_INTERVAL_MS) {
            log_stats(s);
            s->last_stats_ms = now;
        }
    }
    /* Stop: publish what is open, let in-flight acks land, confirm what is durable. */
    if ((rc = flush_batch(s)) != PGC_OK)
        return rc;
    int64_t deadline = clock_mono_ms() + STOP_DRAIN_MS;
    while (jspub_in_flight(s->pub) > 0 && clock_mono_ms() < deadline) {
        struct pollfd pfd = {.fd = jspub_wakeup_fd(s->pub), .events = POLLIN};
        poll(&pfd, 1, 50);
        if ((rc = drain_acks(s)) != PGC_OK)
            return rc;
    }
    rc = send_status(s, true, false);
    log_stats(s);
    return rc;
}

static void split_tables(char *list, const char **out, int max, int *n)
{
    *n = 0;
    for (char *tok = strtok(list, ","); tok && *n < max; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && e[-1] == ' ')
            *--e = '\0';
        if (*tok)
            out[(*n)++] = tok;
    }
}

static int run_session(const agent_config *cfg, const agent_names *names, agent_stats *stats,
                       const agent_metrics *am, char *err, size_t err_len)
{
    session s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.names = names;
    s.stats = stats;
    s.m = am;
    s.next_pubno = 1;
    s.n_pubs = (size_t)cfg->max_in_flight + 1;
    int rc;
    bool created;
    char lsn[LOGPOS_LSN_LEN], pos[LOGPOS_TEXT_LEN];

    jspub_config jc = {
        .nats_url = cfg->nats_url,
        .stream = names->stream,
        .subject = names->subject,
        .max_age_ms = cfg->max_age_ms,
        .max_bytes = cfg->max_bytes,
        .duplicate_window_ms = cfg->duplicate_window_ms,
        .replicas = (int)cfg->replicas,
        .max_pending = cfg->max_in_flight,
        .ack_timeout_ms = cfg->ack_timeout_ms,
    };
    if ((rc = jspub_create(&jc, &s.pub, &created, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    if (created)
        log_info("stream created", "stream=%s subject=%s replicas=%lld", names->stream,
                 names->subject, (long long)cfg->replicas);
    jspub_last last;
    if ((rc = jspub_read_last(s.pub, &last, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    if (!last.empty) {
        s.skipping = true;
        s.skip_to = last.last;
        s.skip_part = last.part;
        s.skip_parts = last.parts;
        logpos_format(last.last, pos);
        log_info("resuming after the stream's last message", "stream=%s stream_seq=%llu last=%s%s",
                 names->stream, (unsigned long long)last.stream_seq, pos,
                 last.parts && last.part < last.parts ? " (incomplete parts)" : "");
        if (last.parts && last.part >= last.parts)
            s.skip_parts = 0;
    }

    if ((rc = replconn_open(cfg->source, &s.repl, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    {
        const char *tables[256];
        int n_tables = 0;
        char *list = strdup(cfg->tables ? cfg->tables : "");
        if (!list) {
            rc = errbuf_set(s.err, sizeof s.err, PGC_ERR_NOMEM, "out of memory");
            goto out;
        }
        split_tables(list, tables, 256, &n_tables);
        replconn_pub_change pc = {0, 0, 0};
        rc = replconn_ensure_publication(s.repl, names->publication, tables, n_tables, &pc, s.err,
                                         sizeof s.err);
        free(list);
        if (rc != PGC_OK)
            goto out;
        if (pc.created)
            log_info("publication created", "publication=%s tables=%s", names->publication,
                     n_tables ? cfg->tables : "all");
        else if (pc.added || pc.removed)
            log_info("publication changed to match --tables", "publication=%s added=%d removed=%d",
                     names->publication, pc.added, pc.removed);
    }
    slot_loss_gap gap;
    if ((rc = slot_loss_check(s.repl, names->slot, names->stream, cfg->accept_slot_recreate, &last,
                              &gap, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    if (gap.gap) {
        /* Before the slot exists: what the new slot decodes sorts after the marker. */
        if ((rc = slot_loss_record(s.pub, &last, &gap, (size_t)cfg->batch_bytes, &s.skip_to, s.err,
                                   sizeof s.err)) != PGC_OK)
            goto out;
        s.skipping = true;
        s.skip_part = s.skip_parts = 0;
    }
    replconn_slot_info si;
    if ((rc = replconn_ensure_slot(s.repl, names->slot, &si, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    logpos_format_lsn(si.confirmed_lsn, lsn);
    if (!si.existed)
        log_info("replication slot created",
                 "slot=%s plugin=pgoutput consistent_lsn=%s failover=%s", names->slot, lsn,
                 si.failover ? "true" : "false");

    int replicas = jspub_replicas(s.pub);
    int64_t delay = confirm_delay_for(cfg->confirm_delay_ms, replicas);
    if (!(s.pubs = calloc(s.n_pubs, sizeof *s.pubs))) {
        rc = errbuf_set(s.err, sizeof s.err, PGC_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = confirm_tracker_create(delay, si.confirmed_lsn, &s.ct)) != PGC_OK ||
        (rc = pgoutput_decoder_create((int)cfg->proto_version, &s.dec)) != PGC_OK ||
        (rc = relcache_create(&s.rels)) != PGC_OK || (rc = msgbuild_create(&s.mb)) != PGC_OK ||
        (rc = batch_writer_create((size_t)cfg->batch_bytes, &s.bw)) != PGC_OK) {
        errbuf_set(s.err, sizeof s.err, rc, "cannot set up the session: %s", status_str(rc));
        goto out;
    }
    if ((rc = replconn_start(s.repl, names->slot, names->publication, 0, (int)cfg->proto_version,
                             cfg->messages, s.err, sizeof s.err)) != PGC_OK)
        goto out;
    s.sent_flush = si.confirmed_lsn;
    metric_set(am->confirmed_lsn, (double)si.confirmed_lsn);
    s.last_status_ms = s.last_stats_ms = clock_mono_ms();
    health_set("replication", true, NULL);
    log_info(
        "streaming",
        "slot=%s publication=%s stream=%s from_lsn=%s stream_replicas=%d confirm_delay_ms=%lld "
        "confirm_delay_from=%s",
        names->slot, names->publication, names->stream, lsn, replicas, (long long)delay,
        cfg->confirm_delay_ms >= 0 ? "flag" : "replicas");
    rc = stream_loop(&s);

out:
    if (rc != PGC_OK)
        snprintf(err, err_len, "%s", s.err[0] ? s.err : status_str(rc));
    batch_writer_destroy(s.bw);
    msgbuild_destroy(s.mb);
    relcache_destroy(s.rels);
    pgoutput_decoder_destroy(s.dec);
    confirm_tracker_destroy(s.ct);
    replconn_destroy(s.repl);
    jspub_destroy(s.pub);
    /* What was in flight is published again by the next session, not counted here. */
    free(s.pubs);
    metric_set(am->in_flight_bytes, 0);
    return rc;
}

static void sleep_ms(int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (!stop_requested && clock_mono_ms() < end) {
        clock_sleep_ms(20);
    }
}

/* `given` when a flag names it, else the name the contract derives from the source name. */
static int name_or_derived(const char *given, int (*derive)(const char *, char *, size_t),
                           const char *source, char *out, size_t out_len)
{
    if (!given || !*given)
        return derive(source, out, out_len);
    return snprintf(out, out_len, "%s", given) < (int)out_len ? PGC_OK : PGC_ERR_TOO_LARGE;
}

static int derive_names(const agent_config *cfg, agent_names *n)
{
    int rc = name_or_derived(cfg->slot, names_slot, cfg->name, n->slot, sizeof n->slot);
    if (rc == PGC_OK)
        rc = name_or_derived(cfg->publication, names_publication, cfg->name, n->publication,
                             sizeof n->publication);
    if (rc == PGC_OK)
        rc = name_or_derived(cfg->stream, names_stream, cfg->name, n->stream, sizeof n->stream);
    if (rc == PGC_OK)
        rc = names_log_subject(cfg->name, n->subject, sizeof n->subject);
    return rc;
}

int agent_run(const agent_config *cfg)
{
    agent_names names;
    agent_stats stats;
    memset(&stats, 0, sizeof stats);
    if (derive_names(cfg, &names) != PGC_OK) {
        log_error("agent stopped: a slot, publication or stream name is too long", "source_name=%s",
                  cfg->name);
        return 1;
    }
    int64_t started = clock_mono_ms();
    backoff retry;
    backoff_init(&retry, cfg->retry_max_ms);
    char err[ERR_LEN];

    log_info("agent starting", "source_name=%s slot=%s publication=%s stream=%s nats=%s", cfg->name,
             names.slot, names.publication, names.stream, cfg->nats_url);
    const char *src = cfg->name;
    agent_metrics am = {
        metrics_get(METRIC_AGENT_CHANGES_READ, src),
        metrics_get(METRIC_AGENT_TXNS_READ, src),
        metrics_get(METRIC_AGENT_CHANGES_PUBLISHED, src),
        metrics_get(METRIC_AGENT_TXNS_PUBLISHED, src),
        metrics_get(METRIC_AGENT_PUBLISH_LATENCY, src),
        metrics_get(METRIC_AGENT_BATCH_BYTES, src),
        metrics_get(METRIC_AGENT_IN_FLIGHT_BYTES, src),
        metrics_get(METRIC_AGENT_RECONNECTS, src),
        metrics_get(METRIC_AGENT_LAST_COMMIT_TIME, src),
        metrics_get(METRIC_AGENT_CONFIRMED_LSN, src),
    };
    health_set("replication", false, "starting");
    slot_monitor *mon = NULL;
    if (cfg->metrics_listen && *cfg->metrics_listen)
        mon = slot_monitor_start(cfg->source, names.slot, src, SLOT_METRICS_INTERVAL_MS);
    int exit_code = 0;
    while (!stop_requested) {
        int64_t session_start = clock_mono_ms();
        err[0] = '\0';
        int rc = run_session(cfg, &names, &stats, &am, err, sizeof err);
        if (rc == PGC_OK || stop_requested)
            break;
        health_set("replication", false, err);
        bool busy_in_grace = rc == PGC_ERR_BUSY && clock_mono_ms() - started < cfg->busy_timeout_ms;
        if (!status_is_transient(rc) && rc != PGC_ERR_IO && !busy_in_grace && rc != PGC_ERR_STATE) {
            log_error("agent stopped: this needs fixing before a retry can help",
                      "error=\"%s\" status=%s", err, status_str(rc));
            exit_code = 1;
            break;
        }
        metric_inc(am.reconnects);
        int64_t wait = backoff_failed(&retry, session_start);
        log_warn("session failed, retrying",
                 "error=\"%s\" attempt=%d retry_in_ms=%lld failing_for_ms=%lld", err,
                 retry.failures, (long long)wait,
                 (long long)(clock_mono_ms() - retry.failing_since_ms));
        sleep_ms(wait);
    }
    slot_monitor_stop(mon);
    if (exit_code != 0)
        return exit_code;
    log_info("agent stopped", "txns=%llu changes=%llu batches=%llu", (unsigned long long)stats.txns,
             (unsigned long long)stats.changes, (unsigned long long)stats.batches);
    return 0;
}
