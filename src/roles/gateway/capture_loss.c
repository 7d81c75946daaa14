/* Changes the log no longer holds (see capture_stream.h): a URI's durable consumer that fell
 * behind retention (messages removed before it delivered them, or delivered and never
 * acked), and requeued changes that expired unread in the retry stream. The stream ends
 * with DATA_LOSS and a log line naming the URI, what is missing and what to do; nothing is
 * delivered around the hole, on this stream or the next (the durable still shows it). */
#include "roles/gateway/capture_stream.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>

/* How often an idle stream checks that its log stream is still the one it opened. */
#define IDENTITY_CHECK_MS 1000

#define WHAT_TO_DO                                                                                 \
    "schedule dumps of the consumer's tables (pgcapture schedule --uri ... --table ...) after "    \
    "moving the URI to a new durable (its resolver entry's durable, then restart the gateway) "    \
    "or deleting the durable with NATS's tools: its streams then start at the oldest change "      \
    "the log holds"

void capture_loss_report(capture_stream *s, const char *what, const char *durable, uint64_t from,
                         uint64_t to)
{
    char msg[CAPTURE_STREAM_LOSS_LEN];
    snprintf(msg, sizeof msg,
             "changes of uri \"%.200s\" are gone before they were delivered: %s (stream "
             "sequences %llu to %llu, durable %s); what to do: %s",
             s->uri, what, (unsigned long long)from, (unsigned long long)to, durable, WHAT_TO_DO);
    pthread_mutex_lock(&s->mu);
    bool first = !s->loss[0];
    if (first) {
        snprintf(s->loss, sizeof s->loss, "%s", msg);
        s->loss_code = GRPC_STATUS_DATA_LOSS;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!first)
        return;
    metric_inc(s->m.data_loss);
    log_error("changes lost: the stream ends with DATA_LOSS",
              "peer=%s uri=\"%s\" durable=%s lost=\"%s\" first_seq=%llu last_seq=%llu "
              "what_to_do=\"%s\"",
              s->tag, s->uri, durable, what, (unsigned long long)from, (unsigned long long)to,
              WHAT_TO_DO);
}

#define WHAT_TO_DO_RECREATED                                                                       \
    "the next stream of the URI reads the new log stream from its first message; changes the "     \
    "old one held that the URI had not acked are in it only if the agent published them again: "   \
    "schedule dumps of the consumer's tables (pgcapture schedule --uri ... --table ...) when "     \
    "the old stream was deleted with changes the consumer had not read"

/* The log stream is not the one this stream opened (deleted, or now `created`): ends the
 * stream with ABORTED, whichever of the two it saw (a recreation is a deletion first). */
static void report_stream_changed(capture_stream *s, bool deleted, int64_t created)
{
    char msg[CAPTURE_STREAM_LOSS_LEN];
    grpc_status_code code = GRPC_STATUS_ABORTED;
    if (deleted)
        snprintf(msg, sizeof msg,
                 "the log stream of uri \"%.200s\" was deleted under this stream (its durable %s "
                 "went with it); what to do: %s",
                 s->uri, s->target.durable, WHAT_TO_DO_RECREATED);
    else
        snprintf(msg, sizeof msg,
                 "the log stream of uri \"%.200s\" was recreated under this stream (created at "
                 "%lld ns, now at %lld ns; its durable %s went with the old one): its sequences "
                 "are not this stream's; what to do: %s",
                 s->uri, (long long)s->log_created, (long long)created, s->target.durable,
                 WHAT_TO_DO_RECREATED);
    pthread_mutex_lock(&s->mu);
    bool first = !s->loss[0];
    if (first) {
        snprintf(s->loss, sizeof s->loss, "%s", msg);
        s->loss_code = code;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (first)
        log_error("the log stream changed under a stream: it ends",
                  "peer=%s uri=\"%s\" durable=%s status=%d stream_created=%lld "
                  "now_created=%lld what_to_do=\"%s\"",
                  s->tag, s->uri, s->target.durable, (int)code, (long long)s->log_created,
                  (long long)created, WHAT_TO_DO_RECREATED);
}

bool capture_loss_check_identity(capture_stream *s)
{
    int64_t now = clock_mono_ms();
    if (now < s->next_identity_ms)
        return false;
    s->next_identity_ms = now + IDENTITY_CHECK_MS;
    int64_t created = 0;
    char err[300];
    int rc = jssub_stream_created(s->sub, &created, err, sizeof err);
    bool missing = rc == PGC_ERR_NOT_FOUND, was_missing = s->log_missing;
    s->log_missing = missing;
    if (rc == PGC_ERR_CONN || (rc == PGC_OK && (created == s->log_created || created <= 0)))
        return false; /* the same stream, or NATS cannot say now (the fetches will) */
    /* Gone twice in a row, a second apart: not a cluster between two leaders. */
    if (missing && !was_missing)
        return false;
    report_stream_changed(s, missing, created);
    return true;
}

bool capture_loss_check_log(capture_stream *s)
{
    jssub_position p;
    char err[300];
    uint64_t from, to;
    if (jssub_read_position(s->sub, &p, err, sizeof err) != PGC_OK) {
        /* Unknown now; the next suspicious fetch asks again, before anything is sent. */
        log_warn("cannot tell whether the log still holds the URI's next changes",
                 "peer=%s uri=\"%s\" error=\"%s\"", s->tag, s->uri, err);
        s->last_new_seq = 0;
        return false;
    }
    if (s->log_created && p.stream_created > 0 && p.stream_created != s->log_created) {
        report_stream_changed(s, false, p.stream_created);
        return true;
    }
    if (!jssub_position_gap(&p, &from, &to)) {
        s->last_new_seq = p.delivered;
        return false;
    }
    capture_loss_report(s, "the log's retention removed them", s->target.durable, from, to);
    return true;
}

bool capture_loss_log_suspect(capture_stream *s, jssub_msg **msgs, int n)
{
    bool suspect = false;
    for (int i = 0; i < n; i++) {
        uint64_t seq = jssub_msg_stream_seq(msgs[i]);
        /* The log's messages are numbered without holes (the agent's subject alone), so a
         * message new to this stream that does not follow the last one is another stream's
         * share of the URI, a delivery lost on its way (even a redelivery: one given back
         * and lost again), or a hole. What is not past it was placed before. */
        if (s->last_new_seq != 0 && seq <= s->last_new_seq)
            continue;
        if (s->last_new_seq == 0 || seq != s->last_new_seq + 1)
            suspect = true;
        if (seq > s->last_new_seq)
            s->last_new_seq = seq;
    }
    return suspect;
}

bool capture_loss_check_retry(capture_stream *s, jssub_msg **msgs, int n)
{
    uint64_t prev_lost = 0;
    jssub_position p;
    bool have = false;
    char err[300];
    for (int i = 0; i < n && !prev_lost; i++) {
        const char *h = jssub_msg_header(msgs[i], "Pgc-Prev");
        uint64_t prev = h ? strtoull(h, NULL, 10) : 0;
        if (prev == 0)
            continue;
        if (!have && jssub_read_position(retry_stream_sub(s->retry), &p, err, sizeof err) != PGC_OK)
            return false; /* unknown now: asked again with the next fetch */
        have = true;
        /* The previous requeued change of this URI is gone and was never acked. */
        if (prev < p.stream_first && (!p.acked_any || prev > p.ack_floor))
            prev_lost = prev;
    }
    if (!prev_lost)
        return false;
    char durable[NAMES_BUF_LEN];
    names_retry_durable(s->target.durable, durable, sizeof durable);
    capture_loss_report(s, "a requeued change expired unread in the retry stream", durable,
                        prev_lost, prev_lost);
    return true;
}
