/* The retry subject of a URI (see retry_stream.h). */
#include "roles/gateway/retry_stream.h"

#include "core/names.h"
#include "core/status.h"
#include "jetstream/jsconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct retry_stream {
    jsconn *js;
    jssub *sub;
    char stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], dead_subject[NAMES_BUF_LEN];
    uint8_t *buf;
    size_t cap;
};

int retry_stream_create(const retry_stream_config *cfg, retry_stream **out, char *err,
                        size_t err_len)
{
    char stream[NAMES_BUF_LEN], subjects[NAMES_BUF_LEN], durable[NAMES_BUF_LEN], why[512];
    if (names_retry_stream(cfg->source, stream, sizeof stream) != PGC_OK ||
        names_retry_stream_subjects(cfg->source, subjects, sizeof subjects) != PGC_OK ||
        names_retry_durable(cfg->durable, durable, sizeof durable) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source or durable name too long");
    retry_stream *r = calloc(1, sizeof *r);
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "retry: out of memory");
    int rc = names_retry_subject(cfg->source, cfg->durable, r->subject, sizeof r->subject);
    if (rc == PGC_OK)
        rc = names_dead_letter_subject(cfg->source, cfg->durable, r->dead_subject,
                                       sizeof r->dead_subject);
    if (rc != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source or durable name too long");
        goto fail;
    }
    char log_stream[NAMES_BUF_LEN];
    jsconn_limits limits = {0, 0, 1};
    if ((rc = names_stream(cfg->source, log_stream, sizeof log_stream)) != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source name too long");
        goto fail;
    }
    if ((rc = jsconn_open(cfg->nats_url, &r->js, why, sizeof why)) != PGC_OK ||
        (rc = jsconn_stream_limits(r->js, log_stream, &limits, why, sizeof why)) != PGC_OK) {
        rc = errbuf_set(err, err_len, rc, "retry: %s", why);
        goto fail;
    }
    /* The gateway's own limits, when set, replace the log's. */
    if (cfg->max_age_ms > 0)
        limits.max_age_ms = cfg->max_age_ms;
    if (cfg->max_bytes > 0)
        limits.max_bytes = cfg->max_bytes;
    if ((rc = jsconn_ensure_stream(r->js, stream, subjects, &limits, why, sizeof why)) != PGC_OK) {
        rc = errbuf_set(err, err_len, rc, "retry: %s", why);
        goto fail;
    }
    snprintf(r->stream, sizeof r->stream, "%s", stream);
    jssub_config sc = {cfg->nats_url, stream,           r->subject,
                       durable,       cfg->ack_wait_ms, cfg->max_ack_pending};
    if ((rc = jssub_create(&sc, &r->sub, err, err_len)) != PGC_OK)
        goto fail;
    *out = r;
    return PGC_OK;
fail:
    retry_stream_destroy(r);
    return rc;
}

void retry_stream_destroy(retry_stream *r)
{
    if (!r)
        return;
    jssub_destroy(r->sub);
    jsconn_destroy(r->js);
    free(r->buf);
    free(r);
}

jssub *retry_stream_sub(retry_stream *r)
{
    return r->sub;
}

/* Frames one Message as a one-Message batch in r->buf; returns its length, 0 when out of
 * memory. */
static size_t frame(retry_stream *r, const uint8_t *msg, size_t len)
{
    size_t need = len + 10;
    if (need > r->cap) {
        uint8_t *b = realloc(r->buf, need);
        if (!b)
            return 0;
        r->buf = b, r->cap = need;
    }
    /* One delimited Message: the batch format every reader of the log understands. */
    uint8_t *p = r->buf;
    size_t v = len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    memcpy(p, msg, len);
    p += len;
    return (size_t)(p - r->buf);
}

int retry_stream_publish(retry_stream *r, const uint8_t *msg, size_t len, log_pos pos,
                         uint32_t requeues, char *err, size_t err_len)
{
    size_t framed = frame(r, msg, len);
    if (!framed)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "retry: out of memory");
    char pos_s[LOGPOS_TEXT_LEN], why[512], prev_s[24], requeues_s[16];
    logpos_format(pos, pos_s);
    uint64_t prev = 0;
    int rc = jsconn_subject_last_seq(r->js, r->stream, r->subject, &prev, why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "retry: cannot publish a requeued change: %s", why);
    snprintf(prev_s, sizeof prev_s, "%llu", (unsigned long long)prev);
    snprintf(requeues_s, sizeof requeues_s, "%u", requeues);
    const jsconn_header headers[] = {{"Pgc-First", pos_s},
                                     {"Pgc-Last", pos_s},
                                     {"Pgc-Count", "1"},
                                     {"Pgc-Prev", prev_s},
                                     {"Pgc-Requeues", requeues_s}};
    rc = jsconn_publish_parts(r->js, r->subject, r->buf, framed, headers,
                              sizeof headers / sizeof headers[0], why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "retry: cannot publish a requeued change: %s", why);
    return PGC_OK;
}

int retry_stream_dead_letter(retry_stream *r, const uint8_t *msg, size_t len, log_pos pos,
                             uint32_t requeues, const char *reason, char *err, size_t err_len)
{
    size_t framed = frame(r, msg, len);
    if (!framed)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "retry: out of memory");
    char pos_s[LOGPOS_TEXT_LEN], why[512], requeues_s[16], reason_s[257];
    logpos_format(pos, pos_s);
    snprintf(requeues_s, sizeof requeues_s, "%u", requeues);
    /* A header value ends at a line break: the consumer's text may hold any bytes. */
    snprintf(reason_s, sizeof reason_s, "%s", reason ? reason : "");
    for (char *c = reason_s; *c; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    const jsconn_header headers[] = {{"Pgc-First", pos_s},
                                     {"Pgc-Last", pos_s},
                                     {"Pgc-Count", "1"},
                                     {"Pgc-Requeues", requeues_s},
                                     {"Pgc-Reason", reason_s}};
    int rc = jsconn_publish_parts(r->js, r->dead_subject, r->buf, framed, headers,
                                  sizeof headers / sizeof headers[0], why, sizeof why);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "retry: cannot dead-letter a change: %s", why);
    return PGC_OK;
}
