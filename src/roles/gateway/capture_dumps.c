/* The dumper's view of one Capture stream (see capture_stream.h and dumper.h): the hooks
 * through which the dumper thread freezes the live delivery, reads the log's end, holds
 * the delivery at a position, releases it and sends dump rows on the stream's call. */
#include "roles/gateway/capture_stream.h"

#include "codec/logpos.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <string.h>
#include <time.h>

static int hook_freeze(void *arg, uint64_t *lsn, uint32_t *seq)
{
    capture_stream *s = arg;
    if (capture_stream_stopped(s))
        return PGC_ERR_CONN;
    /* Frozen first, then the end read: whatever the stream is sending now is in the log,
     * so at or below the end. */
    stream_hold_freeze(s->hold);
    s->hold_since_ns = clock_mono_ns();
    char v[64], err[300];
    int rc = jssub_last_header(s->sub, s->log_subject, "Pgc-Last", v, sizeof v, err, sizeof err);
    log_pos end = {0, 0};
    if (rc < 0 || (rc == 1 && !logpos_parse(v, &end))) {
        stream_hold_release(s->hold);
        s->hold_since_ns = 0;
        log_warn("cannot read the log's end for a dump", "peer=%s uri=\"%s\" error=\"%s\"", s->tag,
                 s->uri, rc < 0 ? err : "bad Pgc-Last header");
        return PGC_ERR_IO;
    }
    *lsn = end.lsn;
    *seq = end.seq;
    return PGC_OK;
}

static int hook_hold_at(void *arg, uint64_t lsn, uint32_t seq, int timeout_ms)
{
    capture_stream *s = arg;
    return stream_hold_hold_at(s->hold, (log_pos){lsn, seq}, timeout_ms);
}

static void hook_release(void *arg)
{
    capture_stream *s = arg;
    stream_hold_release(s->hold);
    if (s->hold_since_ns) {
        metric_observe(s->m.hold, (double)(clock_mono_ns() - s->hold_since_ns) / 1e9);
        s->hold_since_ns = 0;
    }
}

static int hook_send(void *arg, const uint8_t *msg, size_t len)
{
    capture_stream *s = arg;
    for (;;) {
        int rc = rpc_call_wait_writable(s->call, CAPTURE_STREAM_MAX_QUEUED_SENDS, 200);
        if (rc == PGC_OK)
            break;
        if (rc != PGC_ERR_TIMEOUT || capture_stream_stopped(s))
            return -1;
    }
    if (rpc_call_send(s->call, msg, len) != PGC_OK)
        return -1;
    metric_inc(s->m.dump_rows);
    return 0;
}

/* Batch mode: waits until the consumer has answered enough earlier dump batches, records
 * this one and sends it. */
static int hook_send_batch(void *arg, capbatch *batch, uint32_t dump_id, bool last)
{
    capture_stream *s = arg;
    batch_record *rec = batch_record_new(true);
    if (!rec)
        return -1;
    rec->dump_id = dump_id;
    rec->dump_last = last;
    uint64_t number;
    if (capture_delivery_register_batch(s, rec, &number) != PGC_OK)
        return -1;
    if (capbatch_finish(batch, number) != PGC_OK)
        return -1;
    if (capture_delivery_send_batch(s, batch) != PGC_OK)
        return -1;
    metric_add(s->m.dump_rows, batch->count);
    return 0;
}

static bool hook_table_wanted(void *arg, const char *table)
{
    capture_stream *s = arg;
    return !s->re || saferegex_search(s->re, table, strlen(table));
}

/* Dumps need a controller and a replica for the URI; without either the stream serves
 * changes only. */
int capture_dumps_start(capture_stream *s, char *err, size_t err_len)
{
    pgc_gateway *gw = s->gw;
    if (!gw->opts.controller || !*gw->opts.controller || !s->target.replica[0])
        return PGC_OK;
    dumper_config dc = {.controller_addr = gw->opts.controller,
                        .uri = s->uri,
                        .replica_conninfo = s->target.replica,
                        .source_id = s->target.source,
                        .batch_limit = s->batch_limit,
                        .controller_channel = &gw->controller_channel,
                        .dump_schemas = s->target.dump_schemas};
    dumper_hooks hooks = {s,         hook_freeze,       hook_hold_at,   hook_release,
                          hook_send, hook_table_wanted, hook_send_batch};
    dumper *d;
    int rc = dumper_start(&dc, &hooks, &d, err, err_len);
    if (rc != PGC_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->dumper = d;
    pthread_mutex_unlock(&s->mu);
    return PGC_OK;
}

void capture_dumps_stop(capture_stream *s)
{
    pthread_mutex_lock(&s->mu);
    dumper *d = s->dumper;
    s->dumper = NULL;
    pthread_mutex_unlock(&s->mu);
    if (s->hold)
        stream_hold_wake(s->hold);
    dumper_destroy(d);
}
