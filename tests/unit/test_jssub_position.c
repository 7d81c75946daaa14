/* Changes lost to retention, from where a durable stands (JetStream's consumer and stream
 * state as nats-server 2.9 reports them, taken from experiments against a real server). */
#include "harness/runner.h"
#include "jetstream/jssub.h"

static void test_a_new_durable_starts_at_the_first_message_held(void)
{
    /* Created on a stream whose messages 1-5 retention had removed already. */
    jssub_position p = {.stream_first = 6, .stream_last = 10, .delivered = 5};
    uint64_t from, to;
    EXPECT_TRUE(!jssub_position_gap(&p, &from, &to));
    /* Two delivered, not acked yet: no ack floor set. */
    p.delivered = 7;
    EXPECT_TRUE(!jssub_position_gap(&p, &from, &to));
    /* An empty stream and a durable that has seen everything. */
    jssub_position e = {
        .stream_first = 11, .stream_last = 10, .delivered = 10, .ack_floor = 10, .acked_any = true};
    EXPECT_TRUE(!jssub_position_gap(&e, &from, &to));
}

static void test_undelivered_messages_removed_are_a_gap(void)
{
    /* Delivered and acked up to 7; retention removed 8-17 before delivery. */
    jssub_position p = {
        .stream_first = 18, .stream_last = 20, .delivered = 7, .ack_floor = 7, .acked_any = true};
    uint64_t from, to;
    EXPECT_TRUE(jssub_position_gap(&p, &from, &to));
    EXPECT_EQ_UINT(8, from);
    EXPECT_EQ_UINT(17, to);
    /* The next fetch jumps to 18 (delivered moves on), but the ack floor still shows the
     * hole until 18 is acked. */
    p.delivered = 18;
    EXPECT_TRUE(jssub_position_gap(&p, &from, &to));
    EXPECT_EQ_UINT(8, from);
    EXPECT_EQ_UINT(17, to);
    /* The same for a durable that never acked anything. */
    jssub_position q = {.stream_first = 30, .stream_last = 40, .delivered = 12};
    EXPECT_TRUE(jssub_position_gap(&q, &from, &to));
    EXPECT_EQ_UINT(13, from);
    EXPECT_EQ_UINT(29, to);
}

static void test_a_durable_within_retention_has_no_gap(void)
{
    /* Slow, with delivered messages pending: everything it lacks is still held. */
    jssub_position p = {.stream_first = 100,
                        .stream_last = 500,
                        .delivered = 300,
                        .ack_floor = 99,
                        .acked_any = true};
    uint64_t from, to;
    EXPECT_TRUE(!jssub_position_gap(&p, &from, &to));
    /* Pending ones removed: the server moves the ack floor to what it delivered (22); the
     * undelivered 23-28 are reported. */
    jssub_position c = {
        .stream_first = 29, .stream_last = 30, .delivered = 22, .ack_floor = 22, .acked_any = true};
    EXPECT_TRUE(jssub_position_gap(&c, &from, &to));
    EXPECT_EQ_UINT(23, from);
    EXPECT_EQ_UINT(28, to);
}

UNIT_MAIN(UNIT_CASE(test_a_new_durable_starts_at_the_first_message_held),
          UNIT_CASE(test_undelivered_messages_removed_are_a_gap),
          UNIT_CASE(test_a_durable_within_retention_has_no_gap))
