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
 * it has. libnats 3.4.1 corrupted its heap under fetches of 1 ms (seen in bench/replica);
 * 20 ms has not. */
#define OPEN_FETCH_MS 20
#define MAX_JOINED_BYTES (256u << 20)
/* With metrics on: how often the lag gauges are refreshed (one NATS request each). */
#define LAG_METRICS_MS 1000

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
    memmove(s->held, s->held + i, (s->n_held - i) * sizeof *s->held);
    s->n_held -= i;
}

static int commit(session *s, char *err, size_t err_len)
{
    if (!apply_in_transaction(s->ac))
        return PGC_OK;
    apply_position p = {s->seen, s->seen_stream_seq, s->seen_commit_time, true};
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
        uint64_t from = s->last_sseq + 1;
        jssub_msg_destroy(m);
        return errbuf_set(err, err_len, PGC_ERR_DATA_LOSS,
                          "replica: the stream %s no longer holds sequences %llu to %llu, which "
                          "this replica had not applied: what lies between is gone "
                          "(retention); initialise the replica again with `pgcapture replica "
                          "init`",
                          s->names->stream, (unsigned long long)from,
                          (unsigned long long)(sseq - 1));
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

/* Recreates the durable consumer so that it delivers from `start_seq` (0: from the
 * beginning): the replica's stored position, not the consumer's ack state, says where to
 * resume, and a consumer left with unacked messages would deliver newer ones first. */
static int reset_consumer(const replica_config *cfg, const replica_names *n,
                          const apply_position *pos, char *err, size_t err_len)
{
    char why[512];
    jsconn *js = NULL;
    uint64_t first = 0, last = 0;
    int rc = jsconn_open(cfg->nats_url, &js, why, sizeof why);
    if (rc != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: %s", why);
        goto done;
    }
    if (jsconn_stream_bounds(js, n->stream, &first, &last, why, sizeof why) != PGC_OK) {
        /* A missing stream is worth waiting for: the agent creates it. */
        rc = errbuf_set(err, err_len, PGC_ERR_CONN,
                        "replica: no stream %s yet (is the agent running?): %s", n->stream, why);
        goto done;
    }
    /* The log must still hold everything after the stored position: never skip silently. */
    if (pos->found && pos->stream_seq && first > pos->stream_seq + 1 && last > 0) {
        rc = errbuf_set(err, err_len, PGC_ERR_STATE,
                        "replica: the stream %s starts at sequence %llu but this replica "
                        "stopped at %llu: what lies between is gone (retention); initialise "
                        "the replica again with `pgcapture replica init`",
                        n->stream, (unsigned long long)first, (unsigned long long)pos->stream_seq);
        goto done;
    }
    if (first > 1 && !pos->stream_seq && last >= first) {
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
                          pos->stream_seq && pos->stream_seq >= first ? pos->stream_seq : 0};
    if (jsconn_add_consumer(js, n->stream, &cc, why, sizeof why) != PGC_OK)
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "replica: cannot create consumer %s: %s",
                        n->consumer, why);
done:
    jsconn_destroy(js);
    return rc;
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
    if ((rc = reset_consumer(cfg, names, &s.committed, err, err_len)) != PGC_OK)
        goto done;
    jssub_config jc = {cfg->nats_url,   names->stream,    names->subject,
                       names->consumer, cfg->ack_wait_ms, cfg->max_pending * 2 + FETCH_MAX};
    if ((rc = jssub_create(&jc, &s.sub, err, err_len)) != PGC_OK)
        goto done;
    if ((rc = part_joiner_create(MAX_JOINED_BYTES, &s.joiner)) != PGC_OK) {
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
