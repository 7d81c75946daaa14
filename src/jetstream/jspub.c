/* JetStream batch publisher (see jspub.h). In-flight publishes sit in a FIFO keyed by
 * their Nats-Msg-Id; the libnats ack callback marks its entry under the lock and wakes
 * the owner through an eventfd; jspub_poll hands completed entries out in publish order
 * and turns entries older than the ack timeout into failures (libnats never times out
 * an async publish by itself, e.g. when its ack was lost in a server restart). */
#include "jetstream/jspub.h"

#include "core/clock.h"
#include "core/status.h"
#include "jetstream/jserror.h"
#include "jetstream/jsauth.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000LL
#define MSGID_MAX 40

typedef struct inflight {
    char msgid[MSGID_MAX];
    uint64_t token;
    int64_t sent_ms;
    int state; /* 0 waiting, 1 acked, 2 failed */
    bool duplicate;
    uint64_t stream_seq;
    char error[200];
} inflight;

struct jspub {
    natsConnection *nc;
    jsCtx *js;
    char *stream, *subject;
    int replicas; /* of the stream, from its info */
    int64_t ack_timeout_ms;
    uint64_t expect_seq;
    bool published; /* libnats 3.4 crashes listing pending publishes before the first one */
    int wake_fd;
    pthread_mutex_t lock;
    inflight *ring; /* guarded by lock */
    size_t head, len, cap;
};

static inflight *at(jspub *p, size_t i)
{
    return &p->ring[(p->head + i) % p->cap];
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    jspub *p = closure;
    const char *id = NULL;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; id && i < p->len; i++) {
        inflight *e = at(p, i);
        if (e->state != 0 || strcmp(e->msgid, id) != 0)
            continue;
        if (pa) {
            e->state = 1;
            e->stream_seq = pa->Sequence;
            e->duplicate = pa->Duplicate;
        } else {
            e->state = 2;
            snprintf(e->error, sizeof e->error, "%s (error code %d)",
                     pae && pae->ErrText ? pae->ErrText
                                         : natsStatus_GetText(pae ? pae->Err : NATS_ERR),
                     pae ? (int)pae->ErrCode : 0);
        }
        break;
    }
    pthread_mutex_unlock(&p->lock);
    uint64_t one = 1;
    ssize_t w = write(p->wake_fd, &one, sizeof one);
    (void)w;
    natsMsg_Destroy(msg);
}

static int ensure_stream(jspub *p, const jspub_config *cfg, bool *created, char *err,
                         size_t err_len)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = cfg->stream;
    const char *subjects[1] = {cfg->subject};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.Discard = js_DiscardOld;
    sc.MaxAge = cfg->max_age_ms * NS_PER_MS;
    sc.MaxBytes = cfg->max_bytes > 0 ? cfg->max_bytes : -1;
    sc.Duplicates = cfg->duplicate_window_ms * NS_PER_MS;
    sc.Replicas = cfg->replicas > 0 ? cfg->replicas : 1;
    *created = false;
    natsStatus ns = js_GetStreamInfo(&si, p->js, cfg->stream, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jerr = 0;
        ns = js_AddStream(&si, p->js, &sc, NULL, &jerr);
        if (ns != NATS_OK)
            return jserror_set(err, err_len, PGC_ERR_CONN, "cannot create the stream", ns, jerr);
        *created = true;
    } else if (ns != NATS_OK) {
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the stream", ns, jerr);
    } else {
        jsStreamConfig *have = si->Config;
        if (have->SubjectsLen != 1 || strcmp(have->Subjects[0], cfg->subject) != 0) {
            int rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                                "jetstream: stream %s exists with other subjects than %s; it "
                                "belongs to something else: choose another --name or --stream",
                                cfg->stream, cfg->subject);
            jsStreamInfo_Destroy(si);
            return rc;
        }
        if (have->MaxAge != sc.MaxAge || have->MaxBytes != sc.MaxBytes ||
            have->Duplicates != sc.Duplicates) {
            jsStreamInfo *upd = NULL;
            sc.Replicas = have->Replicas;
            ns = js_UpdateStream(&upd, p->js, &sc, NULL, &jerr);
            jsStreamInfo_Destroy(upd);
            if (ns != NATS_OK) {
                jsStreamInfo_Destroy(si);
                return jserror_set(err, err_len, PGC_ERR_CONFIG, "cannot update the stream limits",
                                   ns, jerr);
            }
        }
    }
    p->replicas = si->Config->Replicas > 0 ? (int)si->Config->Replicas : 1;
    p->expect_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jspub_create(const jspub_config *cfg, jspub **out, bool *created, char *err, size_t err_len)
{
    jspub *p = calloc(1, sizeof *p);
    natsOptions *opts = NULL;
    jsOptions jo;
    natsStatus ns;
    int rc;
    if (!p)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream: out of memory");
    p->wake_fd = -1;
    pthread_mutex_init(&p->lock, NULL);
    p->ack_timeout_ms = cfg->ack_timeout_ms > 0 ? cfg->ack_timeout_ms : 10000;
    p->cap = 64;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->stream = strdup(cfg->stream);
    p->subject = strdup(cfg->subject);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!p->ring || !p->stream || !p->subject || p->wake_fd < 0) {
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream: cannot allocate the publisher");
        goto fail;
    }
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetName(opts, "pgcapture-agent")) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetReconnectWait(opts, 250)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONFIG, "bad NATS URL or options", ns, 0);
        goto fail;
    }
    if ((ns = jsauth_connect(&p->nc, opts, cfg->nats_url)) != NATS_OK) {
        rc = jsauth_error(err, err_len, cfg->nats_url, ns);
        goto fail;
    }
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = p;
    jo.PublishAsync.MaxPending = cfg->max_pending > 0 ? cfg->max_pending : 128;
    jo.PublishAsync.StallWait = 100;
    if ((ns = natsConnection_JetStream(&p->js, p->nc, &jo)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONN, "no JetStream context", ns, 0);
        goto fail;
    }
    if ((rc = ensure_stream(p, cfg, created, err, err_len)) != PGC_OK)
        goto fail;
    natsOptions_Destroy(opts);
    *out = p;
    return PGC_OK;
fail:
    natsOptions_Destroy(opts);
    jspub_destroy(p);
    return rc;
}

void jspub_destroy(jspub *p)
{
    if (!p)
        return;
    /* Drop what libnats still holds so its callbacks cannot reach a freed jspub. */
    if (p->js && p->published) {
        natsMsgList pending = {NULL, 0};
        if (js_PublishAsyncGetPendingList(&pending, p->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
    }
    jsCtx_Destroy(p->js);
    natsConnection_Destroy(p->nc);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    pthread_mutex_destroy(&p->lock);
    free(p->ring);
    free(p->stream);
    free(p->subject);
    free(p);
}

int jspub_read_last(jspub *p, jspub_last *out, char *err, size_t err_len)
{
    natsMsg *m = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    memset(out, 0, sizeof *out);
    natsStatus ns = js_GetStreamInfo(&si, p->js, p->stream, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the stream", ns, jerr);
    p->expect_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    ns = js_GetLastMsg(&m, p->js, p->stream, p->subject, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        out->empty = true;
        out->stream_seq = p->expect_seq;
        return PGC_OK;
    }
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the last message", ns, jerr);
    out->stream_seq = natsMsg_GetSequence(m);
    const char *last = NULL, *part = NULL;
    natsMsgHeader_Get(m, "Pgc-Last", &last);
    natsMsgHeader_Get(m, "Pgc-Part", &part);
    int rc = PGC_OK;
    if (!last || !logpos_parse(last, &out->last))
        rc = errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                        "jetstream: message %llu of %s has no valid Pgc-Last header: something "
                        "else writes to %s",
                        (unsigned long long)out->stream_seq, p->stream, p->subject);
    if (rc == PGC_OK && part) {
        unsigned i, n;
        char extra;
        if (sscanf(part, "%u/%u%c", &i, &n, &extra) != 2 || i == 0 || i > n)
            rc = errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                            "jetstream: message %llu of %s has a bad Pgc-Part \"%s\"",
                            (unsigned long long)out->stream_seq, p->stream, part);
        out->part = i;
        out->parts = n;
    }
    natsMsg_Destroy(m);
    return rc;
}

int jspub_publish(jspub *p, const uint8_t *data, size_t len, const jspub_headers *h, uint64_t token,
                  char *err, size_t err_len)
{
    char id[MSGID_MAX], first[LOGPOS_TEXT_LEN], last[LOGPOS_TEXT_LEN], num[32];
    natsMsg *m = NULL;
    logpos_format_msgid(h->last, id);
    if (h->parts > 1) {
        size_t n = strlen(id);
        snprintf(id + n, sizeof id - n, ".%u", h->part);
    }
    logpos_format(h->first, first);
    logpos_format(h->last, last);
    natsStatus ns = natsMsg_Create(&m, p->subject, NULL, (const char *)data, (int)len);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-First", first);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-Last", last);
    snprintf(num, sizeof num, "%u", h->count);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Pgc-Count", num);
    if (ns == NATS_OK && h->parts > 1) {
        snprintf(num, sizeof num, "%u/%u", h->part, h->parts);
        ns = natsMsgHeader_Set(m, "Pgc-Part", num);
    }
    if (ns != NATS_OK) {
        natsMsg_Destroy(m);
        return jserror_set(err, err_len, PGC_ERR_NOMEM, "cannot build the message", ns, 0);
    }

    /* The entry goes in before the publish: its ack may arrive before we return. */
    pthread_mutex_lock(&p->lock);
    if (p->len == p->cap) {
        size_t cap = p->cap * 2;
        inflight *ring = malloc(cap * sizeof *ring);
        if (!ring) {
            pthread_mutex_unlock(&p->lock);
            natsMsg_Destroy(m);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream: out of memory");
        }
        for (size_t i = 0; i < p->len; i++)
            ring[i] = *at(p, i);
        free(p->ring);
        p->ring = ring;
        p->cap = cap;
        p->head = 0;
    }
    inflight *e = at(p, p->len);
    memset(e, 0, sizeof *e);
    snprintf(e->msgid, sizeof e->msgid, "%s", id);
    e->token = token;
    e->sent_ms = clock_mono_ms();
    p->len++;
    pthread_mutex_unlock(&p->lock);

    jsPubOptions po;
    jsPubOptions_Init(&po);
    p->published = true;
    po.ExpectLastSeq = p->expect_seq;
    ns = js_PublishMsgAsync(p->js, &m, &po);
    if (ns != NATS_OK) {
        pthread_mutex_lock(&p->lock);
        p->len--; /* only this thread adds entries: the tail is ours */
        pthread_mutex_unlock(&p->lock);
        natsMsg_Destroy(m);
        if (ns == NATS_TIMEOUT)
            return errbuf_set(err, err_len, PGC_ERR_TIMEOUT,
                              "jetstream: too many publishes in flight");
        return jserror_set(err, err_len, PGC_ERR_CONN, "publish failed", ns, 0);
    }
    p->expect_seq++;
    return PGC_OK;
}

int jspub_poll(jspub *p, jspub_ack *out, int max)
{
    uint64_t junk;
    ssize_t r = read(p->wake_fd, &junk, sizeof junk);
    (void)r;
    int n = 0;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&p->lock);
    while (n < max && p->len > 0) {
        inflight *e = at(p, 0);
        if (e->state == 0 && now - e->sent_ms < p->ack_timeout_ms)
            break;
        jspub_ack *a = &out[n++];
        memset(a, 0, sizeof *a);
        a->token = e->token;
        a->ok = e->state == 1;
        a->duplicate = e->duplicate;
        a->stream_seq = e->stream_seq;
        if (e->state == 2)
            snprintf(a->error, sizeof a->error, "%s", e->error);
        else if (e->state == 0)
            snprintf(a->error, sizeof a->error, "no ack within %lld ms",
                     (long long)p->ack_timeout_ms);
        p->head = (p->head + 1) % p->cap;
        p->len--;
    }
    bool more = n == max && p->len > 0;
    pthread_mutex_unlock(&p->lock);
    if (more) {
        uint64_t one = 1;
        ssize_t w = write(p->wake_fd, &one, sizeof one);
        (void)w;
    }
    return n;
}

int jspub_wakeup_fd(const jspub *p)
{
    return p->wake_fd;
}

int64_t jspub_in_flight(const jspub *p)
{
    jspub *mp = (jspub *)p;
    pthread_mutex_lock(&mp->lock);
    int64_t n = (int64_t)mp->len;
    pthread_mutex_unlock(&mp->lock);
    return n;
}

void jspub_reset(jspub *p, uint64_t expect_last_seq)
{
    natsMsgList pending = {NULL, 0};
    if (p->published && js_PublishAsyncGetPendingList(&pending, p->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    pthread_mutex_lock(&p->lock);
    p->len = 0;
    p->head = 0;
    pthread_mutex_unlock(&p->lock);
    p->expect_seq = expect_last_seq;
}

int jspub_replicas(const jspub *p)
{
    return p->replicas;
}
