/* Per-change ack tracking over batches: a batch completes once every change is acked or
 * requeued-and-republished (Begin/Commit/filtered need nothing); acks for anything never
 * sent are refused without changing state; repeated acks are harmless; the window counts
 * exactly the changes awaiting the consumer. */
#include "core/status.h"
#include "roles/gateway/ack_tracker.h"
#include "harness/runner.h"

#include <string.h>

/* A batch Begin, change x3, Commit at LSN lsn (states as the stream sets them). */
static tracked_batch *txn_batch(uint64_t seq, uint64_t lsn)
{
    tracked_batch *b = ack_tracker_batch_new(CPHANDLE_LOG, seq, 5);
    for (uint32_t i = 0; i < 5; i++) {
        b->pos[i] = (log_pos){lsn, i};
        ack_tracker_batch_set(b, i, i == 0 || i == 4 ? ACK_NOACK : ACK_SENT);
    }
    return b;
}

static void test_gwacks_batch_completes_when_every_change_is_acked(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(10, 100);
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    EXPECT_EQ_UINT(3, ack_tracker_in_flight(t));
    ack_result res;
    char err[256];
    for (uint32_t i = 1; i <= 3; i++) {
        cphandle h = {10, i, CPHANDLE_LOG};
        EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){100, i}, false, &res, err, 256));
        EXPECT_TRUE(!res.requeue && !res.duplicate);
        EXPECT_TRUE(i < 3 ? res.completed == NULL : res.completed == b);
    }
    EXPECT_EQ_UINT(0, ack_tracker_in_flight(t));
    EXPECT_EQ_UINT(0, ack_tracker_batches(t));
    ack_tracker_batch_free(b);
    /* Acked again after the batch is gone: a harmless duplicate. */
    cphandle h = {10, 1, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){100, 1}, false, &res, err, 256));
    EXPECT_TRUE(res.duplicate);
    ack_tracker_destroy(t);
}

/* The consumer may ack a batch's last change before the stream thread has finished going
 * through the batch: the batch must stay valid (tracked) until the thread lets go of it. */
static void test_gwacks_batch_completed_while_sending_is_handed_over_when_sending_ends(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(12, 300);
    b->sending = true;
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    ack_result res;
    char err[256];
    for (uint32_t i = 1; i <= 3; i++) {
        cphandle h = {12, i, CPHANDLE_LOG};
        EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){300, i}, false, &res, err, 256));
        EXPECT_TRUE(res.completed == NULL);
    }
    EXPECT_EQ_UINT(1, ack_tracker_batches(t));
    EXPECT_TRUE(ack_tracker_sending_done(t, b) == b);
    EXPECT_EQ_UINT(0, ack_tracker_batches(t));
    ack_tracker_batch_free(b);
    /* Not complete when sending ends: the last ack hands it over as usual. */
    tracked_batch *c = txn_batch(13, 400);
    c->sending = true;
    EXPECT_EQ_INT(0, ack_tracker_add(t, c));
    EXPECT_TRUE(ack_tracker_sending_done(t, c) == NULL);
    for (uint32_t i = 1; i <= 3; i++) {
        cphandle h = {13, i, CPHANDLE_LOG};
        EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){400, i}, false, &res, err, 256));
    }
    EXPECT_TRUE(res.completed == c);
    ack_tracker_batch_free(c);
    ack_tracker_destroy(t);
}

/* JetStream now and then delivers a message twice: a copy of a batch in flight or acked
 * lately is recognised, anything newer is not. */
static void test_gwacks_lookup_tells_copies_of_batches_in_flight_or_done(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(20, 500);
    EXPECT_EQ_INT(ACK_LOOKUP_NEW, ack_tracker_lookup(t, CPHANDLE_LOG, 20));
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    EXPECT_EQ_INT(ACK_LOOKUP_TRACKED, ack_tracker_lookup(t, CPHANDLE_LOG, 20));
    EXPECT_EQ_INT(ACK_LOOKUP_NEW, ack_tracker_lookup(t, CPHANDLE_RETRY, 20));
    EXPECT_EQ_INT(ACK_LOOKUP_NEW, ack_tracker_lookup(t, CPHANDLE_LOG, 21));
    ack_result res;
    char err[256];
    for (uint32_t i = 1; i <= 3; i++) {
        cphandle h = {20, i, CPHANDLE_LOG};
        EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){500, i}, false, &res, err, 256));
    }
    EXPECT_TRUE(res.completed == b);
    ack_tracker_batch_free(b);
    EXPECT_EQ_INT(ACK_LOOKUP_DONE, ack_tracker_lookup(t, CPHANDLE_LOG, 20));
    /* An earlier sequence this stream never had (another stream's share): new. */
    tracked_batch *c = txn_batch(9000, 600);
    EXPECT_EQ_INT(0, ack_tracker_add(t, c));
    EXPECT_EQ_INT(ACK_LOOKUP_NEW, ack_tracker_lookup(t, CPHANDLE_LOG, 19));
    for (uint32_t i = 1; i <= 3; i++) {
        cphandle h = {9000, i, CPHANDLE_LOG};
        EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){600, i}, false, &res, err, 256));
    }
    ack_tracker_batch_free(c);
    EXPECT_EQ_INT(ACK_LOOKUP_DONE, ack_tracker_lookup(t, CPHANDLE_LOG, 9000));
    /* Far behind what was done lately (8192 sequences): no longer remembered, taken as new. */
    EXPECT_EQ_INT(ACK_LOOKUP_NEW, ack_tracker_lookup(t, CPHANDLE_LOG, 20));
    ack_tracker_destroy(t);
}

/* Batch mode answers by batch message, not by handle: a log batch completed that way is
 * remembered as done too, so a later JetStream copy of it (a new consumer leader after a NATS
 * node died redelivers what it did not know acked) is not sent again. Chaos seed 973184 got
 * one transaction twice, back to back, when it was not. */
static void test_gwacks_batch_completed_by_batch_answers_is_remembered_done(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(30, 700);
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    ack_result res;
    for (uint32_t i = 1; i <= 3; i++) {
        ack_tracker_answer(t, b, i, false, &res);
        EXPECT_TRUE(i < 3 ? res.completed == NULL : res.completed == b);
    }
    EXPECT_EQ_UINT(0, ack_tracker_batches(t));
    ack_tracker_batch_free(b);
    EXPECT_EQ_INT(ACK_LOOKUP_DONE, ack_tracker_lookup(t, CPHANDLE_LOG, 30));
    /* Completed by the stream thread after the answers (sending): remembered as well. */
    tracked_batch *c = txn_batch(31, 800);
    c->sending = true;
    EXPECT_EQ_INT(0, ack_tracker_add(t, c));
    for (uint32_t i = 1; i <= 3; i++)
        ack_tracker_answer(t, c, i, false, &res);
    EXPECT_TRUE(res.completed == NULL);
    EXPECT_TRUE(ack_tracker_sending_done(t, c) == c);
    ack_tracker_batch_free(c);
    EXPECT_EQ_INT(ACK_LOOKUP_DONE, ack_tracker_lookup(t, CPHANDLE_LOG, 31));
    ack_tracker_destroy(t);
}

static void test_gwacks_requeue_counts_done_once_republished(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(11, 200);
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    ack_result res;
    char err[256];
    cphandle h1 = {11, 1, CPHANDLE_LOG}, h2 = {11, 2, CPHANDLE_LOG}, h3 = {11, 3, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h2, (log_pos){200, 2}, true, &res, err, 256));
    EXPECT_TRUE(res.requeue == b && res.requeue_index == 2 && !res.completed);
    EXPECT_EQ_UINT(2, ack_tracker_in_flight(t));
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h1, (log_pos){200, 1}, false, &res, err, 256));
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h3, (log_pos){200, 3}, false, &res, err, 256));
    EXPECT_TRUE(res.completed == NULL); /* the requeued change is not republished yet */
    EXPECT_TRUE(ack_tracker_requeued(t, b, 2) == b);
    EXPECT_EQ_UINT(0, ack_tracker_batches(t));
    ack_tracker_batch_free(b);
    ack_tracker_destroy(t);
}

static void test_gwacks_refuses_acks_for_changes_never_sent(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = txn_batch(20, 300);
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    ack_result res;
    char err[256];
    cphandle past = {21, 1, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &past, (log_pos){300, 1}, false, &res, err, 256));
    cphandle other_origin = {20, 1, CPHANDLE_RETRY};
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &other_origin, (log_pos){300, 1}, false, &res, err, 256));
    cphandle index = {20, 9, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &index, (log_pos){300, 9}, false, &res, err, 256));
    cphandle begin = {20, 0, CPHANDLE_LOG}; /* the Begin was never sent */
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &begin, (log_pos){300, 0}, false, &res, err, 256));
    cphandle ok = {20, 1, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &ok, (log_pos){301, 1}, false, &res, err, 256));
    EXPECT_TRUE(strstr(err, "does not match") != NULL);
    /* Nothing changed. */
    EXPECT_EQ_UINT(3, ack_tracker_in_flight(t));
    EXPECT_EQ_UINT(1, ack_tracker_batches(t));
    ack_tracker_destroy(t);
}

static void test_gwacks_untracked_when_nothing_to_ack_and_pop_for_hand_back(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *none = ack_tracker_batch_new(CPHANDLE_LOG, 30, 2);
    ack_tracker_batch_set(none, 0, ACK_NOACK);
    ack_tracker_batch_set(none, 1, ACK_NOACK);
    EXPECT_EQ_INT(1, ack_tracker_add(t, none)); /* caller acks it at once */
    ack_tracker_batch_free(none);
    tracked_batch *a = txn_batch(31, 400), *b = txn_batch(32, 500);
    EXPECT_EQ_INT(0, ack_tracker_add(t, a));
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    ack_result res;
    char err[256];
    cphandle h = {32, 1, CPHANDLE_LOG};
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){500, 1}, false, &res, err, 256));
    EXPECT_EQ_UINT(5, ack_tracker_in_flight(t));
    tracked_batch *p = ack_tracker_pop(t);
    EXPECT_TRUE(p == a && p->consumer_done == 0);
    ack_tracker_batch_free(p);
    p = ack_tracker_pop(t);
    EXPECT_TRUE(p == b && p->consumer_done == 1 && p->undone == 2);
    ack_tracker_batch_free(p);
    EXPECT_TRUE(ack_tracker_pop(t) == NULL);
    EXPECT_EQ_UINT(0, ack_tracker_in_flight(t));
    ack_tracker_destroy(t);
}

static void test_gwacks_many_batches_acked_out_of_order(void)
{
    ack_tracker *t = ack_tracker_create();
    enum { N = 500 };
    tracked_batch *bs[N];
    for (int i = 0; i < N; i++) {
        bs[i] = txn_batch((uint64_t)i + 1, (uint64_t)i * 10 + 10);
        EXPECT_EQ_INT(0, ack_tracker_add(t, bs[i]));
    }
    EXPECT_EQ_UINT(3 * N, ack_tracker_in_flight(t));
    ack_result res;
    char err[256];
    int completed = 0;
    for (uint32_t idx = 1; idx <= 3; idx++)
        for (int k = 0; k < N; k++) {
            int i = (k * 7919) % N; /* a permutation: 7919 is prime, N is not a multiple */
            cphandle h = {(uint64_t)i + 1, idx, CPHANDLE_LOG};
            EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h, (log_pos){(uint64_t)i * 10 + 10, idx},
                                                     false, &res, err, 256));
            if (res.completed) {
                completed++;
                ack_tracker_batch_free(res.completed);
            }
        }
    EXPECT_EQ_INT(N, completed);
    EXPECT_EQ_UINT(0, ack_tracker_batches(t));
    ack_tracker_destroy(t);
}

static void test_gwacks_unsent_changes_count_once_sent(void)
{
    ack_tracker *t = ack_tracker_create();
    tracked_batch *b = ack_tracker_batch_new(CPHANDLE_LOG, 40, 3);
    for (uint32_t i = 0; i < 3; i++)
        b->pos[i] = (log_pos){600, i + 1};
    EXPECT_EQ_INT(0, ack_tracker_add(t, b));
    EXPECT_EQ_UINT(0, ack_tracker_in_flight(t));
    ack_result res;
    char err[256];
    cphandle h0 = {40, 0, CPHANDLE_LOG};
    /* Not sent yet: an ack for it is refused. */
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  ack_tracker_on_ack(t, &h0, (log_pos){600, 1}, false, &res, err, 256));
    ack_tracker_sent(t, b, 0);
    ack_tracker_sent(t, b, 0); /* idempotent */
    EXPECT_EQ_UINT(1, ack_tracker_in_flight(t));
    EXPECT_EQ_INT(PGC_OK, ack_tracker_on_ack(t, &h0, (log_pos){600, 1}, false, &res, err, 256));
    EXPECT_TRUE(res.completed == NULL);
    EXPECT_EQ_UINT(0, ack_tracker_in_flight(t));
    tracked_batch *p = ack_tracker_pop(t);
    EXPECT_TRUE(p == b && p->undone == 2 && p->consumer_done == 1);
    ack_tracker_batch_free(p);
    ack_tracker_destroy(t);
}

UNIT_MAIN(UNIT_CASE(test_gwacks_batch_completes_when_every_change_is_acked),
          UNIT_CASE(test_gwacks_batch_completed_while_sending_is_handed_over_when_sending_ends),
          UNIT_CASE(test_gwacks_lookup_tells_copies_of_batches_in_flight_or_done),
          UNIT_CASE(test_gwacks_requeue_counts_done_once_republished),
          UNIT_CASE(test_gwacks_refuses_acks_for_changes_never_sent),
          UNIT_CASE(test_gwacks_untracked_when_nothing_to_ack_and_pop_for_hand_back),
          UNIT_CASE(test_gwacks_many_batches_acked_out_of_order),
          UNIT_CASE(test_gwacks_unsent_changes_count_once_sent),
          UNIT_CASE(test_gwacks_batch_completed_by_batch_answers_is_remembered_done))
