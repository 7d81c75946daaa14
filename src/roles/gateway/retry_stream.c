/* The retry subject of a URI (see retry_stream.h). */
#include "roles/gateway/retry_stream.h"

#include "core/names.h"
#include "core/status.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL

struct retry_stream {
    natsConnection *nc;
    jsCtx *js;
    jssub *sub;
    char subject[NAMES_BUF_LEN];
    uint8_t *buf;
    size_t cap;
};

static int fail(char *err, size_t err_len, int status, const char *what, natsStatus s,
                jsErrCode jerr)
{
    return errbuf_set(err, err_len, status, "retry: %s: %s (error code %d)", what,
                      natsStatus_GetText(s), (int)jerr);
}

static int ensure_stream(retry_stream *r, const char *source, char *err, size_t err_len)
{
    char name[NAMES_BUF_LEN], subjects[NAMES_BUF_LEN];
    if (names_retry_stream(source, name, sizeof name) != PGC_OK ||
        names_retry_stream_subjects(source, subjects, sizeof subjects) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source name too long");
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, r->js, name, NULL, &jerr);
    if (ns == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return PGC_OK;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = (const char *[]){subjects};
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    ns = js_AddStream(&si, r->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    si = NULL;
    /* Another stream of the same source may have created it meanwhile. */
    if (ns != NATS_OK && js_GetStreamInfo(&si, r->js, name, NULL, &jerr) != NATS_OK)
        return fail(err, err_len, PGC_ERR_CONN, "cannot create the retry stream", ns, jerr);
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int retry_stream_create(const retry_stream_config *cfg, retry_stream **out, char *err,
                        size_t err_len)
{
    retry_stream *r = calloc(1, sizeof *r);
    natsOptions *opts = NULL;
    natsStatus ns;
    int rc;
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "retry: out of memory");
    if (names_retry_subject(cfg->source, cfg->durable, r->subject, sizeof r->subject) != PGC_OK) {
        free(r);
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source or durable name too long");
    }
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetServers(opts, (const char *[]){cfg->nats_url}, 1)) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK) {
        rc = fail(err, err_len, PGC_ERR_CONFIG, "bad NATS options", ns, 0);
        goto fail;
    }
    if ((ns = natsConnection_Connect(&r->nc, opts)) != NATS_OK) {
        rc = fail(err, err_len, PGC_ERR_CONN, "cannot connect to NATS", ns, 0);
        goto fail;
    }
    if ((ns = natsConnection_JetStream(&r->js, r->nc, NULL)) != NATS_OK) {
        rc = fail(err, err_len, PGC_ERR_CONN, "no JetStream context", ns, 0);
        goto fail;
    }
    if ((rc = ensure_stream(r, cfg->source, err, err_len)) != PGC_OK)
        goto fail;
    char stream[NAMES_BUF_LEN], durable[NAMES_BUF_LEN];
    if (names_retry_stream(cfg->source, stream, sizeof stream) != PGC_OK ||
        names_retry_durable(cfg->durable, durable, sizeof durable) != PGC_OK) {
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "retry: source or durable name too long");
        goto fail;
    }
    jssub_config sc = {cfg->nats_url, stream,           r->subject,
                       durable,       cfg->ack_wait_ms, cfg->max_ack_pending};
    if ((rc = jssub_create(&sc, &r->sub, err, err_len)) != PGC_OK)
        goto fail;
    natsOptions_Destroy(opts);
    *out = r;
    return PGC_OK;
fail:
    natsOptions_Destroy(opts);
    retry_stream_destroy(r);
    return rc;
}

void retry_stream_destroy(retry_stream *r)
{
    if (!r)
        return;
    jssub_destroy(r->sub);
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
    free(r->buf);
    free(r);
}

jssub *retry_stream_sub(retry_stream *r)
{
    return r->sub;
}

int retry_stream_publish(retry_stream *r, const uint8_t *msg, size_t len, log_pos pos, char *err,
                         size_t err_len)
{
    size_t need = len + 10;
    if (need > r->cap) {
        uint8_t *b = realloc(r->buf, need);
        if (!b)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "retry: out of memory");
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
    char pos_s[LOGPOS_TEXT_LEN];
    logpos_format(pos, pos_s);
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = natsMsg_Create(&m, r->subject, NULL, (const char *)r->buf, (int)(p - r->buf));
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-First", pos_s);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-Last", pos_s);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-Count", "1");
    if (ns == NATS_OK)
        ns = js_PublishMsg(&pa, r->js, m, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (ns != NATS_OK)
        return fail(err, err_len, PGC_ERR_CONN, "cannot publish a requeued change", ns, jerr);
    return PGC_OK;
}
