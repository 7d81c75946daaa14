/* The dumper of one Capture stream (see dumper.h).
 *
 * Threading: one thread per dumper runs the PullDumpInfo stream, the replica connection
 * and the sends; the stream's ack path calls dumper_on_ack, which only records the
 * outcome of the current item under the mutex and wakes the thread. */
#include "roles/gateway/dumper.h"

#include "codec/capbatch.h"
#include "codec/capmsg.h"
#include "codec/dumpid.h"
#include "codec/logpos.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/schemalist.h"
#include "core/status.h"
#include "pg/dumpscan.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECENT_IDS 16
/* A batch of dump rows goes out at this size at the latest (and at batch_limit rows). */
#define DUMPER_BATCH_BYTES (256 * 1024)

struct dumper {
    char *controller_addr, *uri, *replica_conninfo, *source_id, *dump_schemas;
    uint32_t batch_limit; /* 0: per-change mode */
    int hold_timeout_ms, replica_wait_ms;
    dumper_hooks hooks;
    capbatch batch; /* batch mode: the rows being packed */
    uint8_t *one;   /* per-change mode: the message being built */
    size_t one_cap;
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    /* The item whose rows are out: its id, whether its outcome is known, and the reason
     * of a requeue (empty for an ack). */
    bool item_open;
    uint32_t item_id;
    bool outcome_known;
    char outcome[256];
    uint32_t recent[RECENT_IDS]; /* ids of items done lately: their late acks are fine */
    int n_recent, next_recent;
    dumper_stats stats;
    uint64_t item_rows; /* rows sent for the item being answered (reported to the controller) */

    rpc_channel *channel;
    rpc_stream *pull;
    PGconn *replica;
};

static bool is_stopping(dumper *d)
{
    pthread_mutex_lock(&d->mu);
    bool s = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return s;
}

static void sleep_ms(dumper *d, int ms)
{
    struct timespec until;
    clock_deadline_ms(&until, ms);
    pthread_mutex_lock(&d->mu);
    while (!d->stopping && pthread_cond_timedwait(&d->cv, &d->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&d->mu);
}

/* Sends DumpInfoRequest{uri, reason}: the first opens the pull, later ones answer the
 * item handed out before. */
static int send_request(dumper *d, const char *reason, uint64_t rows_sent)
{
    Pgcapture__DumpInfoRequest req = PGCAPTURE__DUMP_INFO_REQUEST__INIT;
    req.uri = d->uri;
    req.requeue_reason = (char *)(reason ? reason : "");
    req.rows_sent = rows_sent;
    size_t len = pgcapture__dump_info_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return PGC_ERR_NOMEM;
    pgcapture__dump_info_request__pack(&req, buf);
    char err[256];
    int rc = rpc_stream_send(d->pull, buf, len, err, sizeof err);
    free(buf);
    return rc;
}

static int ensure_replica(dumper *d, char *err, size_t err_len)
{
    if (d->replica && PQstatus(d->replica) == CONNECTION_OK)
        return PGC_OK;
    PQfinish(d->replica);
    d->replica = PQconnectdb(d->replica_conninfo);
    if (PQstatus(d->replica) != CONNECTION_OK) {
        errbuf_set(err, err_len, PGC_ERR_CONN, "replica unreachable: %s",
                   PQerrorMessage(d->replica));
        PQfinish(d->replica);
        d->replica = NULL;
        return PGC_ERR_CONN;
    }
    return PGC_OK;
}

static void remember_done(dumper *d, uint32_t id)
{
    d->recent[d->next_recent] = id;
    d->next_recent = (d->next_recent + 1) % RECENT_IDS;
    if (d->n_recent < RECENT_IDS)
        d->n_recent++;
}

/* One row as its own CaptureMessage (per-change mode). */
static int send_one(dumper *d, uint32_t id, bool last, const uint8_t *change, size_t change_len)
{
    static const uint8_t last_marker[1] = {1};
    size_t len = capmsg_build_len(0, id, last ? 1 : 0, change_len);
    if (len > d->one_cap) {
        uint8_t *nb = realloc(d->one, len);
        if (!nb)
            return PGC_ERR_NOMEM;
        d->one = nb;
        d->one_cap = len;
    }
    uint8_t *at = capmsg_build_head(d->one, 0, id, last_marker, last ? 1 : 0, change_len);
    memcpy(at, change, change_len);
    return d->hooks.send(d->hooks.arg, d->one, len) == 0 ? PGC_OK : PGC_ERR_CONN;
}

/* One row into the batch (batch mode), which goes out when full or at the item's last
 * row. */
static int add_to_batch(dumper *d, uint32_t id, bool last, const uint8_t *change, size_t change_len)
{
    static const uint8_t last_marker[1] = {1};
    uint8_t *at = capbatch_add_item(&d->batch, 0, id, last_marker, last ? 1 : 0, change_len);
    if (!at)
        return PGC_ERR_NOMEM;
    memcpy(at, change, change_len);
    if (!last && d->batch.count < d->batch_limit && d->batch.len < DUMPER_BATCH_BYTES)
        return PGC_OK;
    int rc = d->hooks.send_batch(d->hooks.arg, &d->batch, id, last) == 0 ? PGC_OK : PGC_ERR_CONN;
    capbatch_reset(&d->batch);
    return rc;
}

/* Sends every row of the open scan; 0, or non-zero when the stream is over. The Change
 * bytes come from the scan as they are. */
static int send_rows(dumper *d, dumpscan *scan, uint32_t id, uint64_t *rows, char *err,
                     size_t err_len)
{
    const uint8_t *change;
    size_t change_len;
    bool last = false;
    int rc;
    capbatch_reset(&d->batch);
    while ((rc = dumpscan_next(scan, &change, &change_len, &last, err, err_len)) == 1) {
        int src = d->batch_limit ? add_to_batch(d, id, last, change, change_len)
                                 : send_one(d, id, last, change, change_len);
        if (src == PGC_ERR_NOMEM)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
        if (src != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_CONN, "the Capture stream ended");
        (*rows)++;
    }
    return rc;
}

/* What waiting for the replica's snapshot came to. */
typedef enum scan_wait { SCAN_READY, SCAN_STOPPED, SCAN_EMPTY, SCAN_FAILED } scan_wait;

/* Opens a scan of the item once the replica has applied the log up to its frozen end
 * (end_lsn, end_seq), trying for up to replica_wait_ms. SCAN_READY: *scan, with the
 * position it was taken at in *lsn and *seq; SCAN_EMPTY: the replica has no such table;
 * SCAN_FAILED: `reason` says why. The caller releases the freeze on anything but READY. */
static scan_wait open_scan_at_end(dumper *d, const Pgcapture__DumpInfoResponse *item,
                                  uint64_t end_lsn, uint32_t end_seq, dumpscan **scan,
                                  uint64_t *lsn, uint32_t *seq, char *reason, size_t reason_len)
{
    dumpscan_item di = {item->schema, item->table, item->page_begin, item->page_end};
    long long replica_deadline = clock_mono_ms() + d->replica_wait_ms;
    *scan = NULL;
    *lsn = 0;
    *seq = 0;
    for (;;) {
        if (is_stopping(d))
            return SCAN_STOPPED;
        int rc = ensure_replica(d, reason, reason_len);
        if (rc == PGC_OK)
            rc = dumpscan_create(d->replica, d->source_id, &di, scan, reason, reason_len);
        if (rc == PGC_ERR_NOT_FOUND) {
            /* As pgcapture does: a table the replica does not have dumps empty. */
            log_warn("dump item acked empty: table not on the replica", "uri=%s table=%s.%s",
                     d->uri, item->schema, item->table);
            return SCAN_EMPTY;
        }
        if (rc != PGC_OK && rc != PGC_ERR_STATE)
            return SCAN_FAILED;
        if (rc == PGC_OK) {
            *lsn = dumpscan_applied_lsn(*scan);
            *seq = dumpscan_applied_seq(*scan);
            if (*lsn > end_lsn || (*lsn == end_lsn && *seq >= end_seq))
                return SCAN_READY;
            dumpscan_destroy(*scan);
            *scan = NULL;
        }
        if (clock_mono_ms() > replica_deadline) {
            char at[LOGPOS_LSN_LEN], end[LOGPOS_LSN_LEN];
            logpos_format_lsn(*lsn, at);
            logpos_format_lsn(end_lsn, end);
            snprintf(
                reason, reason_len,
                "replica lags: applied %s seq %u is behind the log's end %s seq %u after %d ms", at,
                *seq, end, end_seq, d->replica_wait_ms);
            return SCAN_FAILED;
        }
        sleep_ms(d, 100);
    }
}

/* Sends the rows of the scan (held at its position), then waits for the consumer's answer
 * to the item's last row. Releases the hold and destroys the scan. Returns as run_item. */
static const char *deliver_item(dumper *d, const Pgcapture__DumpInfoResponse *item, uint32_t id,
                                dumpscan *scan, char *reason, size_t reason_len)
{
    pthread_mutex_lock(&d->mu);
    d->item_open = true;
    d->item_id = id;
    d->outcome_known = false;
    d->outcome[0] = '\0';
    pthread_mutex_unlock(&d->mu);

    uint64_t rows = 0;
    int rc = send_rows(d, scan, id, &rows, reason, reason_len);
    d->hooks.release(d->hooks.arg);
    dumpscan_destroy(scan);
    pthread_mutex_lock(&d->mu);
    d->stats.rows_sent += rows;
    d->item_rows = rows;
    pthread_mutex_unlock(&d->mu);
    log_info("dump item sent", "uri=%s table=%s.%s pages=%u-%u rows=%llu dump_id=%u", d->uri,
             item->schema, item->table, item->page_begin, item->page_end, (unsigned long long)rows,
             id);
    pthread_mutex_lock(&d->mu);
    /* The stream may end right after the consumer acked the item's last row: that ack
     * still counts (the rows reached it). */
    bool acked_anyway = rc == PGC_ERR_CONN && d->outcome_known;
    pthread_mutex_unlock(&d->mu);
    if (rc == PGC_ERR_CONN && !acked_anyway)
        return NULL;
    if (acked_anyway)
        rc = PGC_OK;
    if (rc < 0) {
        /* Rows already sent are harmless: the requeued item is sent again whole. */
        pthread_mutex_lock(&d->mu);
        d->item_open = false;
        remember_done(d, id);
        pthread_mutex_unlock(&d->mu);
        return reason;
    }
    pthread_mutex_lock(&d->mu);
    if (rows == 0)
        d->outcome_known = true;
    while (!d->outcome_known && !d->stopping)
        pthread_cond_wait(&d->cv, &d->mu);
    bool known = d->outcome_known;
    snprintf(reason, reason_len, "%s", d->outcome);
    d->item_open = false;
    remember_done(d, id);
    pthread_mutex_unlock(&d->mu);
    return known ? reason : NULL;
}

/* Runs one item; returns the reason to answer the controller with ("" acks it), or NULL
 * when the dumper stops before the item is complete (the controller requeues it). */
static const char *run_item(dumper *d, const Pgcapture__DumpInfoResponse *item, char *reason,
                            size_t reason_len)
{
    d->item_rows = 0;
    uint32_t id = dumpid_compute(item->schema, strlen(item->schema), item->table,
                                 strlen(item->table), item->page_begin, item->page_end);
    if (!schemalist_allows(d->dump_schemas, item->schema)) {
        /* Acked: a schedule of a table the URI may not read is done, not retried. */
        log_warn("dump item refused: its schema is not one this URI's dumps may read "
                 "(dump_schemas)",
                 "uri=%s table=%s.%s", d->uri, item->schema, item->table);
        return "";
    }
    if (d->hooks.table_wanted && !d->hooks.table_wanted(d->hooks.arg, item->table)) {
        log_info("dump item skipped: table not wanted by this stream", "uri=%s table=%s.%s", d->uri,
                 item->schema, item->table);
        return "";
    }
    /* Freeze first: the consumer then has nothing past the log's end E, and a snapshot
     * whose applied position L is at or past E can be delivered at exactly L. */
    uint64_t end_lsn = 0;
    uint32_t end_seq = 0;
    int frc = d->hooks.freeze(d->hooks.arg, &end_lsn, &end_seq);
    if (frc == PGC_ERR_CONN)
        return NULL;
    if (frc != PGC_OK) {
        snprintf(reason, reason_len, "cannot read the position of the log's end");
        return reason;
    }
    dumpscan *scan = NULL;
    uint64_t lsn = 0;
    uint32_t seq = 0;
    scan_wait w =
        open_scan_at_end(d, item, end_lsn, end_seq, &scan, &lsn, &seq, reason, reason_len);
    if (w != SCAN_READY) {
        d->hooks.release(d->hooks.arg);
        return w == SCAN_STOPPED ? NULL : w == SCAN_EMPTY ? "" : reason;
    }
    int rc = d->hooks.hold_at(d->hooks.arg, lsn, seq, d->hold_timeout_ms);
    if (rc != PGC_OK) {
        d->hooks.release(d->hooks.arg);
        dumpscan_destroy(scan);
        if (rc == PGC_ERR_CONN)
            return NULL;
        char at[LOGPOS_LSN_LEN];
        logpos_format_lsn(lsn, at);
        snprintf(reason, reason_len, "consumer is slow: the stream did not reach %s within %d ms",
                 at, d->hold_timeout_ms);
        return reason;
    }
    return deliver_item(d, item, id, scan, reason, reason_len);
}

static void close_pull(dumper *d)
{
    rpc_stream_destroy(d->pull);
    d->pull = NULL;
}

static void *dumper_main(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-dumper");
    dumper *d = arg;
    char err[512], reason[512];
    int failures = 0;
    while (!is_stopping(d)) {
        if (!d->pull) {
            if (rpc_stream_open(d->channel, RPC_METHOD_PULL_DUMP_INFO, &d->pull, err, sizeof err) !=
                    PGC_OK ||
                send_request(d, NULL, 0) != PGC_OK) {
                close_pull(d);
                if (failures++ == 0)
                    log_warn("controller unreachable; retrying",
                             "uri=%s controller=%s error=\"%s\"", d->uri, d->controller_addr, err);
                sleep_ms(d, failures < 10 ? 100 * failures : 1000);
                continue;
            }
        }
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = rpc_stream_recv(d->pull, 500, &data, &len, err, sizeof err);
        if (rc == PGC_ERR_TIMEOUT)
            continue;
        if (rc <= 0) {
            const char *msg = NULL;
            int code = rpc_stream_status(d->pull, &msg);
            char why[256]; /* the status message lives with the stream, closed next */
            snprintf(why, sizeof why, "%s", msg ? msg : "");
            close_pull(d);
            if (is_stopping(d))
                break;
            if (failures++ == 0)
                log_warn("PullDumpInfo ended; reopening", "uri=%s code=%d message=\"%s\"", d->uri,
                         code, why);
            sleep_ms(d, failures < 10 ? 100 * failures : 1000);
            continue;
        }
        failures = 0;
        Pgcapture__DumpInfoResponse *item = pgcapture__dump_info_response__unpack(NULL, len, data);
        free(data);
        if (!item || !item->schema || !item->table) {
            log_error("malformed DumpInfoResponse from the controller", "uri=%s", d->uri);
            pgcapture__dump_info_response__free_unpacked(item, NULL);
            send_request(d, "malformed item", 0);
            continue;
        }
        const char *outcome = run_item(d, item, reason, sizeof reason);
        if (outcome) {
            pthread_mutex_lock(&d->mu);
            if (*outcome)
                d->stats.items_requeued++;
            else
                d->stats.items_done++;
            pthread_mutex_unlock(&d->mu);
            if (*outcome)
                log_warn("dump item requeued", "uri=%s table=%s.%s reason=\"%s\"", d->uri,
                         item->schema, item->table, outcome);
            if (send_request(d, outcome, d->item_rows) != PGC_OK)
                close_pull(d); /* the controller requeues what it handed out */
        }
        pgcapture__dump_info_response__free_unpacked(item, NULL);
    }
    close_pull(d);
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* What dumper_start allocated; its thread is gone or never ran. */
static void free_dumper(dumper *d)
{
    PQfinish(d->replica);
    rpc_channel_destroy(d->channel);
    free(d->controller_addr);
    free(d->uri);
    free(d->replica_conninfo);
    free(d->source_id);
    free(d->dump_schemas);
    capbatch_free(&d->batch);
    free(d->one);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

int dumper_start(const dumper_config *cfg, const dumper_hooks *hooks, dumper **out, char *err,
                 size_t err_len)
{
    if (!cfg->controller_addr || !*cfg->controller_addr || !cfg->uri || !*cfg->uri ||
        !cfg->replica_conninfo || !*cfg->replica_conninfo)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "dumper: controller address, URI and replica conninfo are required");
    dumper *d = calloc(1, sizeof *d);
    if (!d)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dumper: out of memory");
    d->controller_addr = strdup(cfg->controller_addr);
    d->uri = strdup(cfg->uri);
    d->replica_conninfo = strdup(cfg->replica_conninfo);
    d->source_id = dup_or_null(cfg->source_id);
    d->dump_schemas = dup_or_null(cfg->dump_schemas);
    d->batch_limit = cfg->batch_limit;
    capbatch_init(&d->batch);
    d->hold_timeout_ms = cfg->hold_timeout_ms > 0 ? cfg->hold_timeout_ms : 30000;
    d->replica_wait_ms = cfg->replica_wait_ms > 0 ? cfg->replica_wait_ms : 30000;
    d->hooks = *hooks;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rc = PGC_OK;
    if (!d->controller_addr || !d->uri || !d->replica_conninfo)
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "dumper: out of memory");
    if (rc == PGC_OK)
        rc = rpc_channel_create_opts(d->controller_addr, cfg->controller_channel, &d->channel, err,
                                     err_len);
    if (rc == PGC_OK && pthread_create(&d->thread, NULL, dumper_main, d) != 0)
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "dumper: cannot start its thread");
    if (rc != PGC_OK) {
        free_dumper(d);
        return rc;
    }
    *out = d;
    return PGC_OK;
}

void dumper_destroy(dumper *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    /* A receive on the pull stream wakes within its poll interval; a send blocked on the
     * Capture stream returns once the stream is over, which is why the stream is ended
     * before its dumper is destroyed. */
    pthread_join(d->thread, NULL);
    free_dumper(d);
}

int dumper_on_ack(dumper *d, uint32_t seq, const uint8_t *data, size_t data_len,
                  const char *requeue_reason)
{
    if (data_len > 1 || (data_len == 1 && data[0] != 1))
        return PGC_ERR_INVALID;
    pthread_mutex_lock(&d->mu);
    int rc = PGC_OK;
    if (d->item_open && seq == d->item_id) {
        if (!d->outcome_known && requeue_reason && *requeue_reason) {
            snprintf(d->outcome, sizeof d->outcome, "%s", requeue_reason);
            d->outcome_known = true;
        } else if (!d->outcome_known && data_len == 1) {
            d->outcome[0] = '\0';
            d->outcome_known = true;
        }
        pthread_cond_broadcast(&d->cv);
    } else {
        bool recent = false;
        for (int i = 0; i < d->n_recent && !recent; i++)
            recent = d->recent[i] == seq;
        if (!recent)
            rc = PGC_ERR_INVALID;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void dumper_on_batch_ack(dumper *d, uint32_t dump_id, bool last, const char *requeue_reason)
{
    static const uint8_t last_marker[1] = {1};
    /* The number was checked against the stream's open batches: a batch of an item that is
     * over already (requeued by an earlier row) changes nothing. */
    (void)dumper_on_ack(d, dump_id, last_marker, last ? 1 : 0, requeue_reason);
}

void dumper_get_stats(dumper *d, dumper_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->stats;
    pthread_mutex_unlock(&d->mu);
}
