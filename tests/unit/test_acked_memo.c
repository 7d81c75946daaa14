/* The acked-changes memo of batches handed back whole: what is put comes out once, for the
 * same batch only; the oldest is forgotten past the bound; bad keys are refused. */
#include "core/status.h"
#include "roles/gateway/acked_memo.h"
#include "harness/runner.h"

#include <stdio.h>
#include <string.h>

static void test_acked_memo_gives_back_what_was_put_once(void)
{
    acked_memo *m = acked_memo_create();
    bool in[10] = {true, false, true, true, false, false, false, false, true, false}, out[10];
    EXPECT_EQ_INT(PGC_OK, acked_memo_put(m, "durable_a", 42, 10, in));
    EXPECT_EQ_UINT(1, acked_memo_count(m));
    EXPECT_TRUE(!acked_memo_take(m, "durable_b", 42, 10, out)); /* another durable */
    EXPECT_TRUE(!acked_memo_take(m, "durable_a", 43, 10, out)); /* another batch */
    memset(out, 0, sizeof out);
    EXPECT_TRUE(acked_memo_take(m, "durable_a", 42, 10, out));
    EXPECT_EQ_MEM(in, sizeof in, out, sizeof out);
    EXPECT_TRUE(!acked_memo_take(m, "durable_a", 42, 10, out)); /* taken */
    EXPECT_EQ_UINT(0, acked_memo_count(m));
    acked_memo_destroy(m);
}

static void test_acked_memo_refuses_a_batch_of_another_size_and_forgets_it(void)
{
    acked_memo *m = acked_memo_create();
    bool in[3] = {true, true, false}, out[4];
    EXPECT_EQ_INT(PGC_OK, acked_memo_put(m, "d", 7, 3, in));
    EXPECT_TRUE(!acked_memo_take(m, "d", 7, 4, out));
    EXPECT_EQ_UINT(0, acked_memo_count(m));
    acked_memo_destroy(m);
}

static void test_acked_memo_forgets_the_oldest_past_its_bound(void)
{
    acked_memo *m = acked_memo_create();
    bool in[1] = {true}, out[1];
    for (uint64_t seq = 1; seq <= ACKED_MEMO_MAX + 2; seq++)
        EXPECT_EQ_INT(PGC_OK, acked_memo_put(m, "d", seq, 1, in));
    EXPECT_EQ_UINT(ACKED_MEMO_MAX, acked_memo_count(m));
    EXPECT_TRUE(!acked_memo_take(m, "d", 1, 1, out));
    EXPECT_TRUE(!acked_memo_take(m, "d", 2, 1, out));
    EXPECT_TRUE(acked_memo_take(m, "d", 3, 1, out));
    EXPECT_TRUE(acked_memo_take(m, "d", ACKED_MEMO_MAX + 2, 1, out));
    /* Put again: replaces, does not add. */
    EXPECT_EQ_INT(PGC_OK, acked_memo_put(m, "d", 10, 1, in));
    EXPECT_EQ_INT(PGC_OK, acked_memo_put(m, "d", 10, 1, in));
    EXPECT_EQ_UINT(ACKED_MEMO_MAX - 2, acked_memo_count(m));
    acked_memo_destroy(m);
}

static void test_acked_memo_refuses_a_key_too_long(void)
{
    acked_memo *m = acked_memo_create();
    char key[400];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    bool in[1] = {true};
    EXPECT_EQ_INT(PGC_ERR_INVALID, acked_memo_put(m, key, 1, 1, in));
    EXPECT_EQ_UINT(0, acked_memo_count(m));
    acked_memo_destroy(m);
}

UNIT_MAIN(UNIT_CASE(test_acked_memo_gives_back_what_was_put_once),
          UNIT_CASE(test_acked_memo_refuses_a_batch_of_another_size_and_forgets_it),
          UNIT_CASE(test_acked_memo_forgets_the_oldest_past_its_bound),
          UNIT_CASE(test_acked_memo_refuses_a_key_too_long))
