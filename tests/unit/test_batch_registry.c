/* The open batches of a batch-mode stream: numbers in order, runs of changes merged, a
 * batch ack takes its record once; unknown, future and repeated numbers are refused and
 * change nothing. */
#include "core/status.h"
#include "harness/runner.h"
#include "roles/gateway/batch_registry.h"

#include <string.h>

static batch_record *open_one(batch_registry *r, bool dump)
{
    batch_record *rec = batch_record_new(dump);
    EXPECT_TRUE(rec != NULL);
    EXPECT_EQ_INT(PGC_OK, batch_registry_add(r, rec));
    return rec;
}

static void free_registry(void *arg)
{
    batch_registry_destroy(arg);
}

static void test_batch_registry_numbers_runs_and_takes(void)
{
    batch_registry *r = batch_registry_create();
    unit_defer(free_registry, r);
    batch_record *a = open_one(r, false);
    EXPECT_EQ_UINT(1, a->number);
    /* Changes 3, 4, 5 of batch 10, then 0 of batch 11, then 7 of batch 10: three runs. */
    EXPECT_EQ_INT(PGC_OK, batch_record_add(a, 10, 3));
    EXPECT_EQ_INT(PGC_OK, batch_record_add(a, 10, 4));
    EXPECT_EQ_INT(PGC_OK, batch_record_add(a, 10, 5));
    EXPECT_EQ_INT(PGC_OK, batch_record_add(a, 11, 0));
    EXPECT_EQ_INT(PGC_OK, batch_record_add(a, 10, 7));
    EXPECT_EQ_UINT(3, a->n_runs);
    EXPECT_EQ_UINT(3, a->runs[0].first);
    EXPECT_EQ_UINT(5, a->runs[0].last);
    EXPECT_EQ_UINT(11, a->runs[1].serial);
    EXPECT_EQ_UINT(7, a->runs[2].first);
    batch_record *d = open_one(r, true);
    d->dump_id = 42;
    d->dump_last = true;
    EXPECT_EQ_UINT(2, d->number);
    batch_record *c = open_one(r, false);
    EXPECT_EQ_UINT(3, c->number);
    EXPECT_EQ_UINT(3, batch_registry_open_count(r));
    EXPECT_EQ_UINT(1, batch_registry_open_dumps(r));
    EXPECT_EQ_UINT(3, batch_registry_last(r));

    char err[200];
    batch_record *got = NULL;
    /* Out of order is fine. */
    EXPECT_EQ_INT(PGC_OK, batch_registry_take(r, 2, &got, err, sizeof err));
    EXPECT_TRUE(got == d && got->dump && got->dump_id == 42 && got->dump_last);
    batch_record_free(got);
    EXPECT_EQ_UINT(0, batch_registry_open_dumps(r));
    EXPECT_EQ_INT(PGC_OK, batch_registry_take(r, 1, &got, err, sizeof err));
    EXPECT_TRUE(got == a);
    batch_record_free(got);
    EXPECT_EQ_UINT(1, batch_registry_open_count(r));
}

static void test_batch_registry_refuses_unknown_future_and_repeated_acks(void)
{
    batch_registry *r = batch_registry_create();
    unit_defer(free_registry, r);
    char err[200];
    batch_record *got = NULL;
    EXPECT_EQ_INT(PGC_ERR_INVALID, batch_registry_take(r, 1, &got, err, sizeof err));
    EXPECT_TRUE(strstr(err, "never sent") != NULL);
    open_one(r, false);
    open_one(r, false);
    EXPECT_EQ_INT(PGC_ERR_INVALID, batch_registry_take(r, 0, &got, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_INVALID, batch_registry_take(r, 3, &got, err, sizeof err));
    EXPECT_TRUE(strstr(err, "never sent") != NULL);
    EXPECT_EQ_INT(PGC_OK, batch_registry_take(r, 2, &got, err, sizeof err));
    batch_record_free(got);
    EXPECT_EQ_INT(PGC_ERR_INVALID, batch_registry_take(r, 2, &got, err, sizeof err));
    EXPECT_TRUE(strstr(err, "answered already") != NULL);
    /* The refusals changed nothing: batch 1 is still open. */
    EXPECT_EQ_UINT(1, batch_registry_open_count(r));
    EXPECT_EQ_INT(PGC_OK, batch_registry_take(r, 1, &got, err, sizeof err));
    batch_record_free(got);
    EXPECT_EQ_UINT(0, batch_registry_open_count(r));
}

static void test_batch_registry_holds_many_open_batches(void)
{
    batch_registry *r = batch_registry_create();
    unit_defer(free_registry, r);
    char err[200];
    for (int i = 0; i < 5000; i++) {
        batch_record *rec = open_one(r, i % 3 == 0);
        EXPECT_EQ_INT(PGC_OK, batch_record_add(rec, (uint64_t)i, 0));
    }
    /* Every other one answered, from the newest. */
    for (uint64_t n = 5000; n >= 1; n -= 2) {
        batch_record *got;
        EXPECT_EQ_INT(PGC_OK, batch_registry_take(r, n, &got, err, sizeof err));
        EXPECT_EQ_UINT(n - 1, got->runs[0].serial);
        batch_record_free(got);
        if (n < 2)
            break;
    }
    EXPECT_EQ_UINT(2500, batch_registry_open_count(r));
}

UNIT_MAIN(UNIT_CASE(test_batch_registry_numbers_runs_and_takes),
          UNIT_CASE(test_batch_registry_refuses_unknown_future_and_repeated_acks),
          UNIT_CASE(test_batch_registry_holds_many_open_batches))
