/* Durable JetStream pull consumer (see jssub.h). */
#include "jetstream/jssub.h"

#include "core/status.h"
#include "jetstream/jserror.h"
#include "jetstream/jsauth.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL

struct jssub {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    char *stream;
    char *durable;
    bool caught_up; /* the last message fetched had nothing pending behind it */
};

struct jssub_msg {
    natsMsg *msg;
    uint64_t stream_seq, consumer_seq, delivered;
    int64_t time_ns;
};

int jssub_create(const jssub_config *cfg, jssub **out, char *err, size_t err_len)
{
    jssub *s = calloc(1, sizeof *s);
    natsOptions *opts = NULL;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus ns;
    int rc = PGC_OK;
    if (!s || !(s->stream = strdup(cfg->stream)) || !(s->durable = strdup(cfg->durable))) {
        if (s)
            free(s->stream);
        free(s);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream: out of memory");
    }
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetReconnectWait(opts, 250)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONFIG, "bad NATS options", ns, 0);
        goto fail;
    }
    if ((ns = jsauth_connect(&s->nc, opts, cfg->nats_url)) != NATS_OK) {
        rc = jsauth_error(err, err_len, cfg->nats_url, ns);
        goto fail;
    }
    if ((ns = natsConnection_JetStream(&s->js, s->nc, NULL)) != NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONN, "no JetStream context", ns, 0);
        goto fail;
    }
    ns = js_GetConsumerInfo(&ci, s->js, cfg->stream, cfg->durable, NULL, &jerr);
    if (ns == NATS_OK) {
        if (!ci->Config || !ci->Config->FilterSubject ||
            strcmp(ci->Config->FilterSubject, cfg->subject) != 0) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                            "jetstream: consumer %s on %s filters another subject than %s",
                            cfg->durable, cfg->stream, cfg->subject);
            goto fail;
        }
    } else if (ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr ||
               jerr == JSStreamNotFoundErr) {
        if (jerr == JSStreamNotFoundErr) {
            rc =
                errbuf_set(err, err_len, PGC_ERR_NOT_FOUND, "jetstream: no stream %s", cfg->stream);
            goto fail;
        }
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = cfg->durable;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.AckWait = cfg->ack_wait_ms * NS_PER_MS;
        cc.MaxAckPending = cfg->max_ack_pending;
        cc.FilterSubject = cfg->subject;
        cc.MaxWaiting = 512;
        if ((ns = js_AddConsumer(&ci, s->js, cfg->stream, &cc, NULL, &jerr)) != NATS_OK) {
            rc = jserror_set(err, err_len,
                             jerr == JSStreamNotFoundErr ? PGC_ERR_NOT_FOUND : PGC_ERR_CONN,
                             "cannot create the durable consumer", ns, jerr);
            goto fail;
        }
    } else {
        rc = jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the consumer", ns, jerr);
        goto fail;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg->stream;
    so.Consumer = cfg->durable;
    if ((ns = js_PullSubscribe(&s->sub, s->js, cfg->subject, cfg->durable, NULL, &so, &jerr)) !=
        NATS_OK) {
        rc = jserror_set(err, err_len, PGC_ERR_CONN, "cannot subscribe", ns, jerr);
        goto fail;
    }
    jsConsumerInfo_Destroy(ci);
    natsOptions_Destroy(opts);
    *out = s;
    return PGC_OK;
fail:
    jsConsumerInfo_Destroy(ci);
    natsOptions_Destroy(opts);
    jssub_destroy(s);
    return rc;
}

void jssub_destroy(jssub *s)
{
    if (!s)
        return;
    /* Destroy, never Unsubscribe: unsubscribing would delete the durable consumer. */
    natsSubscription_Destroy(s->sub);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    free(s->stream);
    free(s->durable);
    free(s);
}

/* Moves the user messages of a fetched list into out (at most max in all); a message
 * without metadata, or one past max, is dropped unacked: the server redelivers it after the
 * ack wait. */
static void take_list(jssub *s, natsMsgList *list, jssub_msg **out, int *n, int max)
{
    bool caught_up = s->caught_up;
    for (int i = 0; i < list->Count; i++) {
        jssub_msg *m = *n < max ? calloc(1, sizeof *m) : NULL;
        jsMsgMetaData *meta = NULL;
        if (!m || natsMsg_GetMetaData(&meta, list->Msgs[i]) != NATS_OK) {
            free(m);
            natsMsg_Destroy(list->Msgs[i]);
            list->Msgs[i] = NULL; /* or natsMsgList_Destroy frees it again */
            continue;
        }
        m->msg = list->Msgs[i];
        m->stream_seq = meta->Sequence.Stream;
        m->consumer_seq = meta->Sequence.Consumer;
        m->delivered = meta->NumDelivered;
        m->time_ns = meta->Timestamp;
        caught_up = meta->NumPending == 0;
        jsMsgMetaData_Destroy(meta);
        list->Msgs[i] = NULL;
        out[(*n)++] = m;
    }
    s->caught_up = caught_up;
    natsMsgList_Destroy(list);
}

/* How long a reader that is behind waits for a full batch when what it saw pending is gone. */
#define BEHIND_WAIT_MS 10

static int queued(natsSubscription *sub)
{
    int msgs = 0, bytes = 0;
    return natsSubscription_GetPending(sub, &msgs, &bytes) == NATS_OK ? msgs : 0;
}

/* libnats before 3.10 (nats.c issue 749): a fetch that finds messages already queued on the
 * subscription (deliveries or status replies for an earlier pull request that came after it
 * returned) can read on past its batch and write past the array it allocated for it: heap
 * corruption, seen as gateway crashes under load. A fetch of one message cannot overrun, and
 * takes a queued message without a pull request; so what is queued is taken one at a time,
 * and only a fetch that starts with nothing queued asks for more.
 *
 * And natsSubscription_Fetch, once nothing is available, waits for `max` messages or the
 * time-out, holding back the first ones meanwhile: on a quiet log that is the whole time-out
 * of latency per change. So a reader that has caught up (the last message had nothing
 * pending behind it) asks for one message, which comes as soon as it is stored: one request
 * per message on a quiet log, and a message with more pending behind it switches back to
 * batches. */
int jssub_fetch(jssub *s, jssub_msg **out, int max, int timeout_ms, char *err, size_t err_len)
{
    natsMsgList list = {NULL, 0};
    jsErrCode jerr = 0;
    natsStatus ns = NATS_OK;
    int n = 0;
    while (n < max && queued(s->sub) > 0) {
        ns = natsSubscription_Fetch(&list, s->sub, 1, timeout_ms, &jerr);
        if (ns != NATS_OK)
            break;
        take_list(s, &list, out, &n, max);
    }
    if (n == 0 && ns == NATS_OK) {
        /* Behind: what is available comes at once (the fetch asks without waiting first),
         * and should it be gone (another reader of the durable took it) the wait for a
         * full batch is short. Caught up: one message, as soon as it comes. */
        int batch = s->caught_up ? 1 : max;
        int wait_ms = batch > 1 && timeout_ms > BEHIND_WAIT_MS ? BEHIND_WAIT_MS : timeout_ms;
        ns = natsSubscription_Fetch(&list, s->sub, batch, wait_ms, &jerr);
        if (ns == NATS_OK)
            take_list(s, &list, out, &n, max);
        else if (ns == NATS_TIMEOUT || ns == NATS_NOT_FOUND)
            s->caught_up = true; /* nothing there: wait for one message next time */
    }
    /* A late "no messages" reply to an earlier request reads as NATS_NOT_FOUND: none. */
    if (n > 0 || ns == NATS_TIMEOUT || ns == NATS_NOT_FOUND)
        return n;
    return jserror_set(err, err_len, PGC_ERR_CONN, "fetch failed", ns, jerr);
}

int jssub_drain(jssub *s, void (*take)(void *arg, jssub_msg *m), void *arg, int timeout_ms,
                char *err, size_t err_len)
{
    /* Not an unsubscribe: that would delete a consumer libnats created (ours are bound). */
    natsStatus ns = natsSubscription_DrainTimeout(s->sub, timeout_ms);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot drain the subscription", ns, 0);
    int64_t until = nats_Now() + timeout_ms;
    int taken = 0;
    /* Complete once the flush is confirmed and the queue is empty. A fetch of one takes a
     * queued message without a pull request; one that meets a status reply first sends a
     * request, which the server drops (no interest any more). */
    while (natsSubscription_DrainCompletionStatus(s->sub) == NATS_ILLEGAL_STATE) {
        if (nats_Now() > until)
            return errbuf_set(err, err_len, PGC_ERR_TIMEOUT,
                              "jetstream: the subscription did not drain in %d ms", timeout_ms);
        if (queued(s->sub) == 0) {
            nats_Sleep(1);
            continue;
        }
        natsMsgList list = {NULL, 0};
        jsErrCode jerr = 0;
        jssub_msg *out[1];
        int n = 0;
        if (natsSubscription_Fetch(&list, s->sub, 1, 1, &jerr) != NATS_OK) {
            nats_Sleep(1);
            continue;
        }
        take_list(s, &list, out, &n, 1);
        for (int i = 0; i < n; i++, taken++)
            take(arg, out[i]);
    }
    return taken;
}

const uint8_t *jssub_msg_data(const jssub_msg *m)
{
    return (const uint8_t *)natsMsg_GetData(m->msg);
}

size_t jssub_msg_len(const jssub_msg *m)
{
    int n = natsMsg_GetDataLength(m->msg);
    return n > 0 ? (size_t)n : 0;
}

const char *jssub_msg_header(jssub_msg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m->msg, key, &v) == NATS_OK ? v : NULL;
}

uint64_t jssub_msg_stream_seq(const jssub_msg *m)
{
    return m->stream_seq;
}

uint64_t jssub_msg_consumer_seq(const jssub_msg *m)
{
    return m->consumer_seq;
}

uint64_t jssub_msg_delivered(const jssub_msg *m)
{
    return m->delivered;
}

int64_t jssub_msg_time_ns(const jssub_msg *m)
{
    return m->time_ns;
}

int jssub_ack(jssub_msg *m, bool sync, char *err, size_t err_len)
{
    jsErrCode jerr = 0;
    natsStatus ns = sync ? natsMsg_AckSync(m->msg, NULL, &jerr) : natsMsg_Ack(m->msg, NULL);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "ack failed", ns, jerr);
    return PGC_OK;
}

int jssub_nak(jssub_msg *m, int64_t delay_ms, char *err, size_t err_len)
{
    natsStatus ns =
        delay_ms > 0 ? natsMsg_NakWithDelay(m->msg, delay_ms, NULL) : natsMsg_Nak(m->msg, NULL);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "nak failed", ns, 0);
    return PGC_OK;
}

void jssub_msg_destroy(jssub_msg *m)
{
    if (!m)
        return;
    natsMsg_Destroy(m->msg);
    free(m);
}

int jssub_stream_bounds(jssub *s, uint64_t *first_seq, uint64_t *last_seq, char *err,
                        size_t err_len)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, s->js, s->stream, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read stream info", ns, jerr);
    *first_seq = si->State.FirstSeq;
    *last_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jssub_stream_created(jssub *s, int64_t *created_ns, char *err, size_t err_len)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, s->js, s->stream, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len,
                           ns == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr ? PGC_ERR_NOT_FOUND
                                                                               : PGC_ERR_CONN,
                           "cannot read stream info", ns, jerr);
    *created_ns = si->Created;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jssub_last_header(jssub *s, const char *subject, const char *key, char *out, size_t out_len,
                      char *err, size_t err_len)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetLastMsg(&m, s->js, s->stream, subject, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read the last message", ns, jerr);
    const char *v = NULL;
    int found = natsMsgHeader_Get(m, key, &v) == NATS_OK && v;
    if (found)
        snprintf(out, out_len, "%s", v);
    natsMsg_Destroy(m);
    return found;
}

int jssub_read_position(jssub *s, jssub_position *p, char *err, size_t err_len)
{
    jsConsumerInfo *ci = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    /* The consumer first: the stream's first sequence read after it cannot be older. */
    natsStatus ns = js_GetConsumerInfo(&ci, s->js, s->stream, s->durable, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read consumer info", ns, jerr);
    p->delivered = ci->Delivered.Stream;
    p->ack_floor = ci->AckFloor.Stream;
    p->acked_any = ci->AckFloor.Consumer > 0;
    jsConsumerInfo_Destroy(ci);
    if ((ns = js_GetStreamInfo(&si, s->js, s->stream, NULL, &jerr)) != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read stream info", ns, jerr);
    p->stream_created = si->Created;
    p->stream_first = si->State.FirstSeq;
    p->stream_last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

bool jssub_position_gap(const jssub_position *p, uint64_t *from, uint64_t *to)
{
    uint64_t first_unhandled = p->delivered + 1;
    if (p->acked_any && p->ack_floor + 1 < first_unhandled)
        first_unhandled = p->ack_floor + 1;
    if (first_unhandled >= p->stream_first)
        return false;
    *from = first_unhandled;
    *to = p->stream_first - 1;
    return true;
}

int jssub_num_pending(jssub *s, uint64_t *pending, char *err, size_t err_len)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    /* By name: natsSubscription_GetConsumerInfo refuses pull subscriptions. */
    natsStatus ns = js_GetConsumerInfo(&ci, s->js, s->stream, s->durable, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read consumer info", ns, jerr);
    *pending = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    return PGC_OK;
}

/* The ack subject JetStream gives a delivery: $JS.ACK.<stream>.<consumer>.<delivered count>.
 * <stream seq>.<consumer seq>.<time>.<pending>; the server reads the stream sequence, and
 * the consumer sequence only to check it lies between the ack floor and the last delivery. */
static int ack_subject(const jssub *s, uint64_t stream_seq, uint64_t consumer_seq, char *out,
                       size_t out_len)
{
    int n = snprintf(out, out_len, "$JS.ACK.%s.%s.1.%llu.%llu.0.0", s->stream, s->durable,
                     (unsigned long long)stream_seq, (unsigned long long)consumer_seq);
    return n > 0 && (size_t)n < out_len ? PGC_OK : PGC_ERR_CONFIG;
}

int jssub_redeliver_unacked(jssub *s, uint64_t max, int64_t max_waiting, uint64_t *through,
                            bool *others_pulling, char *err, size_t err_len)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    *through = 0;
    if (others_pulling)
        *others_pulling = false;
    natsStatus ns = js_GetConsumerInfo(&ci, s->js, s->stream, s->durable, NULL, &jerr);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "cannot read consumer info", ns, jerr);
    uint64_t from = ci->AckFloor.Stream + 1, to = ci->Delivered.Stream;
    uint64_t consumer_seq = ci->Delivered.Consumer;
    bool others = max_waiting >= 0 && ci->NumWaiting > max_waiting;
    bool ask = ci->NumAckPending > 0 && !others;
    jsConsumerInfo_Destroy(ci);
    if (others_pulling)
        *others_pulling = others;
    if (!ask || to < from || max == 0)
        return PGC_OK;
    if (to - from >= max)
        to = from + max - 1;
    /* A nak with a delay takes the message off the server's redelivery queue, and the
     * server puts every message whose delay is over back on it sorted by stream sequence. A
     * plain nak would append it to the queue, behind later messages already waiting there
     * (given back by a stream that ended, or asked back before and lost again). */
    static const char nak[] = "-NAK {\"delay\":1000000}";
    const int nak_len = (int)sizeof nak - 1;
    char subject[512];
    for (uint64_t seq = from; seq <= to; seq++) {
        if (ack_subject(s, seq, consumer_seq, subject, sizeof subject) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "jetstream: names too long");
        if (seq < to) {
            ns = natsConnection_Publish(s->nc, subject, nak, nak_len);
        } else {
            natsMsg *reply = NULL;
            ns = natsConnection_Request(&reply, s->nc, subject, nak, nak_len, 5000);
            natsMsg_Destroy(reply);
        }
        if (ns != NATS_OK)
            return jserror_set(err, err_len, PGC_ERR_CONN, "cannot ask for redelivery", ns, 0);
    }
    *through = to;
    return PGC_OK;
}

int jssub_sweep_requests(jssub *s, char *err, size_t err_len)
{
    uint64_t pending;
    return jssub_num_pending(s, &pending, err, err_len);
}

int jssub_flush(jssub *s, char *err, size_t err_len)
{
    natsStatus ns = natsConnection_FlushTimeout(s->nc, 5000);
    if (ns != NATS_OK)
        return jserror_set(err, err_len, PGC_ERR_CONN, "flush failed", ns, 0);
    return PGC_OK;
}
