/* A plain JetStream connection (see jsconn.h). */
#include "jetstream/jsconn.h"

#include "core/status.h"
#include "jetstream/jserror.h"
#include "jetstream/jsauth.h"

#include <limits.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL

struct jsconn {
    natsConnection *nc;
    jsCtx *js;
};

int jsconn_open(const char *nats_url, jsconn **out, char *err, size_t err_len)
{
    jsconn *c = calloc(1, sizeof *c);
    natsOptions *opts = NULL;
    natsStatus ns;
    int rc = PGC_OK;
    if (!c)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream: out of memory");
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONFIG, "bad NATS options", ns, 0);
    } else if ((ns = jsauth_connect(&c->nc, opts, nats_url)) != NATS_OK) {
        rc = jsauth_error(err, err_len, nats_url, ns);
    } else if ((ns = natsConnection_JetStream(&c->js, c->nc, NULL)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONN, "no JetStream context", ns, 0);
    }
    natsOptions_Destroy(opts);
    if (rc != PGC_OK) {
        jsconn_destroy(c);
        return rc;
    }
    *out = c;
    return PGC_OK;
}

void jsconn_destroy(jsconn *c)
{
    if (!c)
        return;
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
    free(c);
}

/* The stream's info (caller destroys it): PGC_ERR_NOT_FOUND without such a stream. */
static int read_stream_info(jsconn *c, const char *stream, jsStreamInfo **si, char *err,
                            size_t err_len)
{
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(si, c->js, stream, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len,
                           ns == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr ? PGC_ERR_NOT_FOUND
                                                                               : PGC_ERR_CONN,
                           "cannot read the stream", ns, jerr);
    return PGC_OK;
}

int jsconn_stream_bounds(jsconn *c, const char *stream, uint64_t *first_seq, uint64_t *last_seq,
                         char *err, size_t err_len)
{
    jsStreamInfo *si = NULL;
    int rc = read_stream_info(c, stream, &si, err, err_len);
    if (rc != PGC_OK)
        return rc;
    *first_seq = si->State.FirstSeq;
    *last_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jsconn_stream_read_state(jsconn *c, const char *stream, jsconn_stream_state *out, char *err,
                             size_t err_len)
{
    jsStreamInfo *si = NULL;
    int rc = read_stream_info(c, stream, &si, err, err_len);
    if (rc != PGC_OK)
        return rc;
    out->created_ns = si->Created;
    out->first_seq = si->State.FirstSeq;
    out->last_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jsconn_stream_limits(jsconn *c, const char *stream, jsconn_limits *out, char *err,
                         size_t err_len)
{
    jsStreamInfo *si = NULL;
    int rc = read_stream_info(c, stream, &si, err, err_len);
    if (rc != PGC_OK)
        return rc;
    out->max_age_ms = si->Config->MaxAge / NS_PER_MS;
    out->max_bytes = si->Config->MaxBytes > 0 ? si->Config->MaxBytes : 0;
    out->replicas = si->Config->Replicas > 0 ? (int)si->Config->Replicas : 1;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

/* Gives an existing stream the age and size limits, keeping the rest of its configuration. */
static int update_limits(jsconn *c, jsStreamInfo *si, const jsconn_limits *limits, char *err,
                         size_t err_len)
{
    jsStreamConfig sc = *si->Config;
    int64_t age = limits->max_age_ms * NS_PER_MS,
            bytes = limits->max_bytes > 0 ? limits->max_bytes : -1;
    if (sc.MaxAge == age && sc.MaxBytes == bytes)
        return PGC_OK;
    sc.MaxAge = age;
    sc.MaxBytes = bytes;
    jsStreamInfo *upd = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_UpdateStream(&upd, c->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(upd);
    return ns == NATS_OK ? PGC_OK
                         : jserror_set(err, err_len, PGC_ERR_CONN,
                                       "cannot update the stream limits", ns, jerr);
}

int jsconn_ensure_stream(jsconn *c, const char *stream, const char *subject,
                         const jsconn_limits *limits, char *err, size_t err_len)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, c->js, stream, NULL, &jerr);
    if (ns == NATS_OK) {
        int rc = limits ? update_limits(c, si, limits, err, err_len) : PGC_OK;
        jsStreamInfo_Destroy(si);
        return rc;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    sc.Subjects = (const char *[]){subject};
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    if (limits) {
        sc.MaxAge = limits->max_age_ms * NS_PER_MS;
        sc.MaxBytes = limits->max_bytes > 0 ? limits->max_bytes : -1;
        sc.Replicas = limits->replicas > 0 ? limits->replicas : 1;
    }
    ns = js_AddStream(&si, c->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    si = NULL;
    /* Another process may have created it meanwhile. */
    if (ns != NATS_OK && js_GetStreamInfo(&si, c->js, stream, NULL, &jerr) != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot create the stream", ns, jerr);
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jsconn_subject_last_seq(jsconn *c, const char *stream, const char *subject, uint64_t *seq,
                            char *err, size_t err_len)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetLastMsg(&m, c->js, stream, subject, NULL, &jerr);
    *seq = 0;
    if (ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return PGC_OK;
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the last message", ns, jerr);
    *seq = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    return PGC_OK;
}

int jsconn_msg_header(jsconn *c, const char *stream, uint64_t seq, const char *key, char *out,
                      size_t out_len, char *err, size_t err_len)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    const char *v = NULL;
    natsStatus ns = js_GetMsg(&m, c->js, stream, seq, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read a message", ns, jerr);
    int found = natsMsgHeader_Get(m, key, &v) == NATS_OK && v;
    if (found)
        snprintf(out, out_len, "%s", v);
    natsMsg_Destroy(m);
    return found;
}

int jsconn_delete_consumer(jsconn *c, const char *stream, const char *durable, char *err,
                           size_t err_len)
{
    jsErrCode jerr = 0;
    natsStatus ns = js_DeleteConsumer(c->js, stream, durable, NULL, &jerr);
    if (ns != NATS_OK && ns != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot delete the consumer", ns, jerr);
    return PGC_OK;
}

int jsconn_add_consumer(jsconn *c, const char *stream, const jsconn_consumer *cfg, char *err,
                        size_t err_len)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cfg->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = cfg->ack_wait_ms * NS_PER_MS;
    cc.MaxAckPending = cfg->max_ack_pending;
    cc.FilterSubject = cfg->subject;
    cc.MaxWaiting = 512;
    if (cfg->start_seq) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = cfg->start_seq;
    } else {
        cc.DeliverPolicy = js_DeliverAll;
    }
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_AddConsumer(&ci, c->js, stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot create the consumer", ns, jerr);
    return PGC_OK;
}

int jsconn_publish(jsconn *c, const char *subject, const uint8_t *data, size_t len,
                   const jsconn_header *headers, size_t n_headers, char *err, size_t err_len)
{
    if (len > INT_MAX)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "jetstream: message too large");
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = natsMsg_Create(&m, subject, NULL, (const char *)data, (int)len);
    for (size_t i = 0; ns == NATS_OK && i < n_headers; i++)
        ns = natsMsgHeader_Set(m, headers[i].key, headers[i].value);
    if (ns == NATS_OK)
        ns = js_PublishMsg(&pa, c->js, m, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot publish", ns, jerr);
    return PGC_OK;
}

/* What a message's headers may take of the server's max_payload. */
#define HEADER_ROOM 4096
#define PARTS_MAX_HEADERS 8

int jsconn_publish_parts(jsconn *c, const char *subject, const uint8_t *data, size_t len,
                         const jsconn_header *headers, size_t n_headers, char *err, size_t err_len)
{
    int64_t max_payload = natsConnection_GetMaxPayload(c->nc);
    size_t part_max =
        max_payload > 2 * HEADER_ROOM ? (size_t)max_payload - HEADER_ROOM : HEADER_ROOM;
    if (len <= part_max)
        return jsconn_publish(c, subject, data, len, headers, n_headers, err, err_len);
    size_t parts = (len + part_max - 1) / part_max;
    if (parts > UINT32_MAX || n_headers >= PARTS_MAX_HEADERS)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "jetstream: message of %zu bytes", len);
    jsconn_header h[PARTS_MAX_HEADERS];
    char part_s[48]; /* "i/parts": two size_t in decimal, as the compiler counts them */
    memcpy(h, headers, n_headers * sizeof *h);
    h[n_headers] = (jsconn_header){"Pgc-Part", part_s};
    for (size_t i = 1; i <= parts; i++) {
        size_t off = (i - 1) * part_max, n = len - off < part_max ? len - off : part_max;
        snprintf(part_s, sizeof part_s, "%zu/%zu", i, parts);
        int rc = jsconn_publish(c, subject, data + off, n, h, n_headers + 1, err, err_len);
        if (rc != PGC_OK)
            return rc;
    }
    return PGC_OK;
}

int jsconn_delete_msg(jsconn *c, const char *stream, uint64_t seq, char *err, size_t err_len)
{
    jsErrCode jerr = 0;
    natsStatus ns = js_DeleteMsg(c->js, stream, seq, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSSequenceNotFoundErr || jerr == JSNoMessageFoundErr ||
        jerr == JSStreamNotFoundErr)
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND, "jetstream: no message %llu in %s",
                          (unsigned long long)seq, stream);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot delete a message", ns, jerr);
    return PGC_OK;
}
