/* Whole-stream reader for tests (see streamread.h). */
#include "streamread.h"

#include "runner.h"
#include "codec/batch.h"
#include "codec/part.h"
#include "fixtures.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_log(void *arg)
{
    stream_log *log = arg;
    for (size_t i = 0; log->entries && i < log->n; i++)
        protobuf_c_message_free_unpacked(&log->entries[i].msg->base, NULL);
    free(log->entries);
    free(log);
}

typedef void (*scan_fn)(log_pos pos, const Pgcapture__Message *m, void *arg);

static void append(stream_log *log, size_t *cap, log_pos pos, Pgcapture__Message *m, scan_fn fn,
                   void *arg)
{
    if (fn) {
        fn(pos, m, arg);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        log->n++;
        return;
    }
    if (log->n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        log->entries = realloc(log->entries, *cap * sizeof *log->entries);
        if (!log->entries)
            abort();
    }
    log->entries[log->n].pos = pos;
    log->entries[log->n].msg = m;
    log->n++;
}

/* Reads without failing the case: returns NULL with a message in err. */
static stream_log *read_all(const char *name, char *err, size_t err_len, scan_fn fn, void *arg)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    part_joiner *pj = NULL;
    stream_log *log = calloc(1, sizeof *log);
    size_t cap = 0;
    char stream[160], subject[200];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s", name);
    snprintf(subject, sizeof subject, "pgcapture.%s.log", name);
    err[0] = '\0';
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        snprintf(err, err_len, "cannot connect to NATS");
        goto done;
    }
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) != NATS_OK) {
        snprintf(err, err_len, "no stream %s", stream);
        goto done;
    }
    part_joiner_create(64u << 20, &pj);
    for (uint64_t seq = si->State.FirstSeq; seq && seq <= si->State.LastSeq; seq++) {
        natsMsg *m = NULL;
        if (js_GetMsg(&m, js, stream, seq, NULL, NULL) != NATS_OK) {
            snprintf(err, err_len, "cannot get message %llu of %s", (unsigned long long)seq,
                     stream);
            goto done;
        }
        log->nats_messages++;
        const char *first_s = NULL, *last_s = NULL, *count_s = NULL, *part_s = NULL;
        natsMsgHeader_Get(m, "Pgc-First", &first_s);
        natsMsgHeader_Get(m, "Pgc-Last", &last_s);
        natsMsgHeader_Get(m, "Pgc-Count", &count_s);
        natsMsgHeader_Get(m, "Pgc-Part", &part_s);
        log_pos first, last;
        if (strcmp(natsMsg_GetSubject(m), subject) != 0 || !first_s || !last_s || !count_s ||
            !logpos_parse(first_s, &first) || !logpos_parse(last_s, &last)) {
            snprintf(err, err_len, "message %llu: bad subject or headers", (unsigned long long)seq);
            natsMsg_Destroy(m);
            goto done;
        }
        const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
        size_t len = (size_t)natsMsg_GetDataLength(m);
        if (part_s) {
            uint32_t pi, pn;
            char perr[200];
            if (!part_header_parse(part_s, &pi, &pn)) {
                snprintf(err, err_len, "message %llu: bad Pgc-Part %s", (unsigned long long)seq,
                         part_s);
                natsMsg_Destroy(m);
                goto done;
            }
            int rc = part_joiner_feed(pj, last, pi, pn, data, len, &data, &len, perr, sizeof perr);
            if (rc < 0) {
                snprintf(err, err_len, "message %llu: %s", (unsigned long long)seq, perr);
                natsMsg_Destroy(m);
                goto done;
            }
            if (rc == 0) {
                natsMsg_Destroy(m);
                continue;
            }
        }
        batch_reader r;
        batch_reader_init(&r, data, len);
        const uint8_t *p;
        size_t n;
        char berr[200];
        int rc;
        uint32_t count = 0;
        log_pos prev = {0, 0};
        while ((rc = batch_reader_next(&r, &p, &n, berr, sizeof berr)) == 1) {
            Pgcapture__Message *msg = pgcapture__message__unpack(NULL, n, p);
            if (!msg) {
                snprintf(err, err_len, "message %llu: undecodable Message %u",
                         (unsigned long long)seq, count);
                natsMsg_Destroy(m);
                goto done;
            }
            /* A Message's position follows from its content and its neighbours. */
            log_pos pos;
            if (msg->type_case == PGCAPTURE__MESSAGE__TYPE_BEGIN)
                pos = (log_pos){msg->begin->final_lsn, 0};
            else if (count == 0)
                pos = first;
            else
                pos = (log_pos){prev.lsn, prev.seq + 1};
            append(log, &cap, pos, msg, fn, arg);
            prev = pos;
            count++;
        }
        if (rc < 0 || count != (uint32_t)atoi(count_s) || logpos_cmp(prev, last) != 0) {
            snprintf(err, err_len,
                     "message %llu: batch content does not match headers "
                     "(count %u vs %s, last %s)",
                     (unsigned long long)seq, count, count_s, last_s);
            natsMsg_Destroy(m);
            goto done;
        }
        natsMsg_Destroy(m);
    }
done:
    part_joiner_destroy(pj);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (err[0]) {
        free_log(log);
        return NULL;
    }
    return log;
}

stream_log *stream_read_all(const char *name)
{
    char err[512];
    stream_log *log = read_all(name, err, sizeof err, NULL, NULL);
    if (!log)
        unit_fail(__FILE__, __LINE__, "reading stream of %s: %s", name, err);
    unit_defer(free_log, log);
    return log;
}

stream_log *stream_wait_for(const char *name, int timeout_ms,
                            int (*done)(const stream_log *log, void *arg), void *arg)
{
    long long deadline = harness_now_ms() + timeout_ms;
    char err[512] = "";
    for (;;) {
        stream_log *log = read_all(name, err, sizeof err, NULL, NULL);
        if (log && done(log, arg)) {
            unit_defer(free_log, log);
            return log;
        }
        if (log)
            free_log(log);
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__,
                      "stream %s did not reach the expected state within %d ms%s%s", name,
                      timeout_ms, err[0] ? ": " : "", err);
        harness_sleep_ms(100);
    }
}

size_t stream_scan(const char *name, scan_fn fn, void *arg)
{
    char err[512];
    stream_log *log = read_all(name, err, sizeof err, fn, arg);
    if (!log)
        unit_fail(__FILE__, __LINE__, "reading stream of %s: %s", name, err);
    size_t n = log->n;
    free_log(log);
    return n;
}

const Pgcapture__Field *stream_field(const Pgcapture__Change *c, const char *name, int old)
{
    size_t n = old ? c->n_old : c->n_new_;
    Pgcapture__Field **f = old ? c->old : c->new_;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i]->name, name) == 0)
            return f[i];
    return NULL;
}
