/* The agent's confirmation rule: an LSN is confirmed only after every publish holding
 * its transaction is acked (in any order), and after the delay on single-replica streams. */
#include "harness/runner.h"

#include "roles/agent/confirm.h"
#include "core/status.h"

static confirm_tracker *make(int64_t delay_ms, uint64_t start)
{
    confirm_tracker *t;
    EXPECT_EQ_INT(PGC_OK, confirm_tracker_create(delay_ms, start, &t));
    unit_defer((void (*)(void *))confirm_tracker_destroy, t);
    return t;
}

static void test_agent_confirms_lsn_only_after_pub_ack(void)
{
    confirm_tracker *t = make(0, 100);
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 1));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 1, 500, 0));
    EXPECT_EQ_UINT(100, confirm_lsn(t, 0));
    confirm_acked(t, 1, 1);
    EXPECT_EQ_UINT(500, confirm_lsn(t, 1));
}

static void test_out_of_order_acks_wait_for_the_gap(void)
{
    confirm_tracker *t = make(0, 0);
    for (uint64_t i = 1; i <= 3; i++)
        EXPECT_EQ_INT(PGC_OK, confirm_published(t, i));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 1, 10, 0));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 2, 20, 0));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 3, 30, 0));
    confirm_acked(t, 3, 0);
    confirm_acked(t, 2, 0);
    EXPECT_EQ_UINT(0, confirm_lsn(t, 0));
    EXPECT_EQ_UINT(0, confirm_acked_through(t));
    confirm_acked(t, 1, 0);
    EXPECT_EQ_UINT(3, confirm_acked_through(t));
    EXPECT_EQ_UINT(30, confirm_lsn(t, 0));
}

static void test_a_transaction_spanning_batches_needs_its_last_batch(void)
{
    confirm_tracker *t = make(0, 0);
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 1));
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 2));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 3, 40, 0)); /* its Commit is in batch 3 */
    confirm_acked(t, 1, 0);
    confirm_acked(t, 2, 0);
    EXPECT_EQ_UINT(0, confirm_lsn(t, 0));
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 3));
    confirm_acked(t, 3, 0);
    EXPECT_EQ_UINT(40, confirm_lsn(t, 0));
}

static void test_delay_holds_confirmation_back_on_single_replica_streams(void)
{
    confirm_tracker *t = make(120000, 0);
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 1));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 1, 70, 1000));
    confirm_acked(t, 1, 2000);
    EXPECT_EQ_UINT(0, confirm_lsn(t, 2000));
    EXPECT_EQ_UINT(0, confirm_lsn(t, 121999));
    EXPECT_EQ_UINT(70, confirm_lsn(t, 122000));
}

static void test_steady_traffic_still_confirms_after_the_delay(void)
{
    confirm_tracker *t = make(1000, 0);
    /* One transaction acked every millisecond for 5 seconds. */
    for (uint64_t i = 1; i <= 5000; i++) {
        EXPECT_EQ_INT(PGC_OK, confirm_published(t, i));
        EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, i, i * 10, (int64_t)i));
        confirm_acked(t, i, (int64_t)i);
        uint64_t c = confirm_lsn(t, (int64_t)i);
        /* Never anything acked less than the delay ago. */
        EXPECT_TRUE(c == 0 || c <= (i - 1000) * 10);
    }
    uint64_t c = confirm_lsn(t, 5000);
    EXPECT_TRUE(c >= (5000 - 1100) * 10);
    EXPECT_TRUE(confirm_waiting(t) <= 12);
}

static void test_idle_wal_end_is_confirmed_only_with_nothing_in_flight(void)
{
    confirm_tracker *t = make(0, 5);
    EXPECT_TRUE(confirm_idle(t, 50, 0));
    EXPECT_EQ_UINT(50, confirm_lsn(t, 0));
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 1));
    EXPECT_TRUE(!confirm_idle(t, 90, 0));
    EXPECT_EQ_UINT(50, confirm_lsn(t, 0));
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 1, 60, 0));
    confirm_acked(t, 1, 0);
    EXPECT_EQ_UINT(60, confirm_lsn(t, 0));
    EXPECT_TRUE(confirm_idle(t, 90, 0));
    EXPECT_EQ_UINT(90, confirm_lsn(t, 0));
    /* Never backwards. */
    EXPECT_TRUE(confirm_idle(t, 10, 0));
    EXPECT_EQ_UINT(90, confirm_lsn(t, 0));
}

static void test_idle_is_refused_while_a_delay_is_running(void)
{
    confirm_tracker *t = make(1000, 0);
    EXPECT_EQ_INT(PGC_OK, confirm_txn_done(t, 0, 30, 0));
    EXPECT_TRUE(!confirm_idle(t, 99, 10));
    EXPECT_EQ_UINT(30, confirm_lsn(t, 1000));
    EXPECT_TRUE(confirm_idle(t, 99, 1000));
}

static void test_publish_numbers_must_follow_each_other(void)
{
    confirm_tracker *t = make(0, 0);
    EXPECT_EQ_INT(PGC_ERR_STATE, confirm_published(t, 2));
    EXPECT_EQ_INT(PGC_OK, confirm_published(t, 1));
    EXPECT_EQ_INT(PGC_ERR_STATE, confirm_txn_done(t, 3, 1, 0));
    confirm_acked(t, 7, 0); /* unknown: ignored */
    EXPECT_EQ_UINT(0, confirm_acked_through(t));
}

static void test_delay_follows_replicas_unless_given(void)
{
    EXPECT_EQ_INT(CONFIRM_DELAY_SINGLE_MS, confirm_delay_for(-1, 1));
    EXPECT_EQ_INT(120000, confirm_delay_for(-1, 1));
    EXPECT_EQ_INT(0, confirm_delay_for(-1, 3));
    EXPECT_EQ_INT(0, confirm_delay_for(-1, 2));
    EXPECT_EQ_INT(5000, confirm_delay_for(5000, 3)); /* a given value wins */
    EXPECT_EQ_INT(0, confirm_delay_for(0, 1));
}

UNIT_MAIN(UNIT_CASE(test_delay_follows_replicas_unless_given),
          UNIT_CASE(test_agent_confirms_lsn_only_after_pub_ack),
          UNIT_CASE(test_out_of_order_acks_wait_for_the_gap),
          UNIT_CASE(test_a_transaction_spanning_batches_needs_its_last_batch),
          UNIT_CASE(test_delay_holds_confirmation_back_on_single_replica_streams),
          UNIT_CASE(test_steady_traffic_still_confirms_after_the_delay),
          UNIT_CASE(test_idle_wal_end_is_confirmed_only_with_nothing_in_flight),
          UNIT_CASE(test_idle_is_refused_while_a_delay_is_running),
          UNIT_CASE(test_publish_numbers_must_follow_each_other))
