/* The order guard of a stream's log delivery: while messages are away (given back, or asked
 * back by a take-back), a newer one gives way and an older one or the lowest away goes out;
 * it forgets when patience or room runs out. Each case replays deliveries as the server
 * makes them and checks what would go out is in log order. */
#include "roles/gateway/order_guard.h"
#include "harness/runner.h"

#include <stdint.h>

#define PATIENCE 2000

static void test_order_guard_lets_everything_pass_when_nothing_is_away(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    for (uint64_t seq = 1; seq <= 5; seq++)
        EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, seq, 0));
    EXPECT_TRUE(!order_guard_active(g));
    order_guard_destroy(g);
}

/* Messages 5 and 6 given back with a delay; the server delivers 7 before queueing them
 * again: 7 gives way, then 5, 6, 7 go out in order. */
static void test_order_guard_holds_newer_until_what_was_given_back_comes(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    EXPECT_TRUE(order_guard_given_back(g, 6, 0));
    EXPECT_TRUE(order_guard_given_back(g, 5, 0));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 7, 1));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 4, 2)); /* older: a copy */
    /* 6 back before 5 (queued apart): gives way again. */
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 6, 3));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 5, 4));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 6, 5));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 7, 6));
    EXPECT_TRUE(!order_guard_active(g));
    EXPECT_EQ_UINT(0, order_guard_forgotten(g));
    order_guard_destroy(g);
}

/* A take-back through 10: 12 and 11 delivered before the server queued 3..10 give way; the
 * first of the range ends the wait, and 11, 12 come after it. */
static void test_order_guard_waits_for_a_take_back_then_for_what_gave_way(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    order_guard_asked_back(g, 10, 0);
    EXPECT_TRUE(order_guard_active(g));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 12, 1));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 11, 1));
    for (uint64_t seq = 3; seq <= 10; seq++)
        EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, seq, 2));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 13, 3)); /* new, before 11 */
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 11, 4));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 12, 4));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 13, 5));
    EXPECT_TRUE(!order_guard_active(g));
    order_guard_destroy(g);
}

/* The range of a take-back is all copies of what the stream holds: the first copy ends the
 * wait as well. */
static void test_order_guard_ends_a_take_back_wait_on_a_copy(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    order_guard_asked_back(g, 10, 0);
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 11, 1));
    order_guard_copy(g, 12, 1); /* newer copy: not the range */
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 13, 1));
    order_guard_copy(g, 9, 2);
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 11, 3));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 13, 3));
    EXPECT_TRUE(!order_guard_active(g));
    order_guard_destroy(g);
}

/* What was away never comes (acked meanwhile): after the patience without progress the
 * guard forgets and lets newer messages pass. */
static void test_order_guard_forgets_after_its_patience(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    EXPECT_TRUE(order_guard_given_back(g, 5, 0));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 6, PATIENCE - 1));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 7, PATIENCE));
    EXPECT_TRUE(!order_guard_active(g));
    EXPECT_EQ_UINT(1, order_guard_forgotten(g));
    /* Progress renews the patience. */
    EXPECT_TRUE(order_guard_given_back(g, 8, 10000));
    EXPECT_TRUE(order_guard_given_back(g, 9, 10000));
    EXPECT_EQ_INT(ORDER_GUARD_PASS, order_guard_admit(g, 8, 10000 + PATIENCE - 1));
    EXPECT_EQ_INT(ORDER_GUARD_GIVE_BACK, order_guard_admit(g, 10, 10000 + PATIENCE + 1));
    EXPECT_EQ_UINT(1, order_guard_forgotten(g));
    order_guard_destroy(g);
}

static void test_order_guard_forgets_when_full(void)
{
    order_guard *g = order_guard_create(PATIENCE);
    for (uint64_t seq = 1; seq <= ORDER_GUARD_MAX; seq++)
        EXPECT_TRUE(order_guard_given_back(g, seq, 0));
    EXPECT_TRUE(order_guard_given_back(g, 1, 0)); /* already away */
    EXPECT_TRUE(!order_guard_given_back(g, ORDER_GUARD_MAX + 1, 0));
    EXPECT_TRUE(!order_guard_active(g));
    EXPECT_EQ_UINT(1, order_guard_forgotten(g));
    order_guard_destroy(g);
}

UNIT_MAIN(UNIT_CASE(test_order_guard_lets_everything_pass_when_nothing_is_away),
          UNIT_CASE(test_order_guard_holds_newer_until_what_was_given_back_comes),
          UNIT_CASE(test_order_guard_waits_for_a_take_back_then_for_what_gave_way),
          UNIT_CASE(test_order_guard_ends_a_take_back_wait_on_a_copy),
          UNIT_CASE(test_order_guard_forgets_after_its_patience),
          UNIT_CASE(test_order_guard_forgets_when_full))
