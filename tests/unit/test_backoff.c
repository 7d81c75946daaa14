/* Back-off between sessions: doubling, the cap, and the start-over after a long session. */
#include "core/backoff.h"
#include "core/clock.h"
#include "harness/runner.h"

static void test_delay_doubles_up_to_the_cap(void)
{
    backoff b;
    backoff_init(&b, 1000);
    int64_t now = clock_mono_ms();
    EXPECT_EQ_INT(100, backoff_failed(&b, now));
    EXPECT_EQ_INT(200, backoff_failed(&b, now));
    EXPECT_EQ_INT(400, backoff_failed(&b, now));
    EXPECT_EQ_INT(800, backoff_failed(&b, now));
    EXPECT_EQ_INT(1000, backoff_failed(&b, now));
    EXPECT_EQ_INT(1000, backoff_failed(&b, now));
    EXPECT_EQ_INT(6, b.failures);
}

static void test_a_session_that_lasted_starts_the_delay_over(void)
{
    backoff b;
    backoff_init(&b, 30000);
    int64_t now = clock_mono_ms();
    backoff_failed(&b, now);
    backoff_failed(&b, now);
    EXPECT_EQ_INT(100, backoff_failed(&b, now - 31000));
    EXPECT_EQ_INT(1, b.failures);
    EXPECT_TRUE(b.failing_since_ms >= now);
}

UNIT_MAIN(UNIT_CASE(test_delay_doubles_up_to_the_cap),
          UNIT_CASE(test_a_session_that_lasted_starts_the_delay_over))
