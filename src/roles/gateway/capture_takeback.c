/* Deliveries of the log lost on their way to a Capture stream (see capture_stream.h): how a
 * stream that alone reads its durable sees them, asks them back in log order, and keeps
 * newer messages back until they come (order_guard.h). Stream thread. */
#include "roles/gateway/capture_stream.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

/* How long a skip in the log's sequences is asked back before the stream gives up for one
 * fetch, and how long a stream that met another reader at the server leaves skips alone. */
#define TAKE_BACK_TRY_MS 5000
#define SHARED_BACKOFF_MS 5000
/* The delay of a nak that gives a message back in order (the server queues such messages
 * again sorted once it is over). */
#define GIVE_BACK_DELAY_MS 1

/* Gives back (a nak with a short delay, after which the server queues them again sorted)
 * the fetched messages past `after`; the order guard makes newer ones wait for them. */
static void give_back_fetched(capture_stream *s, jssub_msg **msgs, int n, uint64_t after)
{
    char err[200];
    for (int i = 0; i < n; i++) {
        uint64_t seq = jssub_msg_stream_seq(msgs[i]);
        if (seq <= after)
            continue;
        order_guard_given_back(s->guard, seq, clock_mono_ms());
        jssub_nak(msgs[i], GIVE_BACK_DELAY_MS, err, sizeof err);
    }
}

/* A message of the log, copy or not, that this stream holds already (not sent again). */
static bool held_here(capture_stream *s, jssub_msg *m)
{
    pthread_mutex_lock(&s->mu);
    ack_lookup seen = ack_tracker_lookup(s->acks, CPHANDLE_LOG, jssub_msg_stream_seq(m));
    pthread_mutex_unlock(&s->mu);
    return seen != ACK_LOOKUP_NEW;
}

/* Log order while messages are away (order_guard.h): a message newer than one given or
 * asked back is given back too. A copy of one this stream holds is never sent, so it goes
 * on (capture_delivery_take drops it): given back, it might be acked meanwhile and never
 * come. Returns how many of msgs are left (moved to the front). */
int capture_takeback_keep_order(capture_stream *s, jssub_msg **msgs, int n)
{
    if (!order_guard_active(s->guard))
        return n;
    char err[200];
    int k = 0, gave_back = 0;
    uint64_t forgotten = order_guard_forgotten(s->guard);
    for (int i = 0; i < n; i++) {
        uint64_t seq = jssub_msg_stream_seq(msgs[i]);
        if (held_here(s, msgs[i])) {
            order_guard_copy(s->guard, seq, clock_mono_ms());
        } else if (order_guard_admit(s->guard, seq, clock_mono_ms()) == ORDER_GUARD_GIVE_BACK) {
            jssub_nak(msgs[i], GIVE_BACK_DELAY_MS, err, sizeof err);
            jssub_msg_destroy(msgs[i]);
            gave_back++;
            continue;
        }
        msgs[k++] = msgs[i];
    }
    if (order_guard_forgotten(s->guard) != forgotten)
        log_warn("changes given or asked back did not come again in time; newer ones go on",
                 "peer=%s uri=\"%s\" waited_ms=%d", s->tag, s->uri, TAKE_BACK_PATIENCE_MS);
    if (gave_back) {
        log_debug("newer changes give way to ones given or asked back", "peer=%s uri=\"%s\" n=%d",
                  s->tag, s->uri, gave_back);
        if (!k)
            clock_sleep_ms(GIVE_BACK_DELAY_MS * 10);
    }
    return k;
}

/* Whether deliveries to this stream skipped some of the durable's: a reader that alone
 * pulls from it sees its consumer sequence grow by one per message, redeliveries included
 * (a new consumer leader may start lower again: not a loss). */
bool capture_takeback_consumer_skip(capture_stream *s, jssub_msg **msgs, int n)
{
    bool skipped = false;
    for (int i = 0; i < n; i++) {
        uint64_t c = jssub_msg_consumer_seq(msgs[i]);
        if (s->last_consumer_seq && c > s->last_consumer_seq + 1)
            skipped = true;
        s->last_consumer_seq = c;
    }
    return skipped;
}

/* Deliveries that skipped some while no other stream here reads the durable: the
 * messages in between were delivered to a reader that is gone, as when JetStream sent them
 * into a connection to a NATS node that died, or to a gateway that crashed. They show as a
 * log sequence past the next one, or, for redeliveries (given back, then lost again), as a
 * skip in the durable's consumer sequence. Unacked, they would come back after the ack wait
 * behind newer changes, so they are asked back in log order (capture_stream_take_back), and
 * what was just fetched is given back after them rather than sent: nothing newer goes out
 * first, however often it happens. Copies of what this stream holds are recognised and not
 * sent twice (capture_delivery_take). When NATS cannot be asked now (between two leaders),
 * it is asked again for up to TAKE_BACK_TRY_MS; after that, what was fetched is given back
 * and the next fetch tries again. True when the fetched messages were given back (the
 * caller drops them).
 *
 * Another reader pulling at the server (a gateway elsewhere on the same URI) makes such
 * skips all the time: then what was fetched goes out, and skips are not asked back for
 * SHARED_BACKOFF_MS (its in-flight changes would be delivered twice). */
bool capture_takeback_skipped(capture_stream *s, uint64_t before, bool consumer_skip,
                              jssub_msg **msgs, int n)
{
    uint64_t first = 0;
    for (int i = 0; i < n; i++) {
        uint64_t seq = jssub_msg_stream_seq(msgs[i]);
        if (seq > before && (!first || seq < first))
            first = seq;
    }
    bool log_skip = before && first > before + 1;
    if ((!log_skip && !consumer_skip && !s->take_back_due) ||
        clock_mono_ms() < s->next_gap_take_back_ms || !capture_stream_sole_reader(s))
        return false;
    if (log_skip)
        log_info("log sequences skipped: delivered to a reader that is gone?",
                 "peer=%s uri=\"%s\" expected_stream_seq=%llu got=%llu", s->tag, s->uri,
                 (unsigned long long)(before + 1), (unsigned long long)first);
    else if (consumer_skip)
        log_info("deliveries skipped: delivered to a reader that is gone?",
                 "peer=%s uri=\"%s\" consumer_seq=%llu", s->tag, s->uri,
                 (unsigned long long)s->last_consumer_seq);
    int64_t until = clock_mono_ms() + TAKE_BACK_TRY_MS;
    uint64_t through = 0;
    bool others = false;
    int rc;
    /* One pull request waits at most: this stream's own, from the fetch that timed out. */
    while ((rc = capture_stream_take_back(s, 1, &through, &others)) != PGC_OK &&
           clock_mono_ms() < until && !capture_stream_stopped(s))
        clock_sleep_ms(200);
    s->take_back_due = rc != PGC_OK;
    if (rc == PGC_OK && others) {
        s->next_gap_take_back_ms = clock_mono_ms() + SHARED_BACKOFF_MS;
        log_info("another reader pulls the URI's durable: skips not asked back for a while",
                 "peer=%s uri=\"%s\" for_ms=%d", s->tag, s->uri, SHARED_BACKOFF_MS);
        return false;
    }
    if (rc != PGC_OK) {
        /* Not sent; the next fetch asks again (take_back_due). */
        log_warn("lost deliveries not asked back yet; what was fetched is given back",
                 "peer=%s uri=\"%s\"", s->tag, s->uri);
        give_back_fetched(s, msgs, n, 0);
        return true;
    }
    order_guard_asked_back(s->guard, through, clock_mono_ms());
    give_back_fetched(s, msgs, n, through);
    return true;
}
