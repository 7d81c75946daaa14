/* Batch mode of the Capture stream (docs/protocol.md "Batch mode") against real PostgreSQL,
 * NATS, agent and gateway: batch and per-change consumers share one URI, a change requeued
 * inside a batch comes back alone, a consumer that dies inside a batch gets exactly its
 * unanswered changes again, and malformed batch acks end the stream with INVALID_ARGUMENT
 * while nothing is lost. */
#include "codec/cphandle.h"
#include "core/status.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/runner.h"

#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cap_client *open_batch(cap_env *e, int limit)
{
    cap_client *c = cap_open_raw(e->addr);
    cap_send_init_batch(c, e->uri, NULL, limit);
    return c;
}

/* Receives batches until they hold n changes in all; their ids go to ids[] in order.
 * Returns the number of batches (their numbers in nums[], at most 64). */
static int recv_items(cap_client *c, int n, int32_t *ids, Pgcapture__CaptureItem **items,
                      uint64_t *nums, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    int got = 0, batches = 0;
    while (got < n) {
        if (harness_now_ms() > until) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "got %d changes of %d", got, n);
        }
        Pgcapture__CaptureMessage *m = cap_recv_batch(c, 500);
        if (!m)
            continue;
        if (batches == 64)
            unit_fail(__FILE__, __LINE__, "more than 64 batches");
        nums[batches++] = m->batch;
        for (size_t i = 0; i < m->n_items; i++, got++) {
            if (got == n)
                unit_fail(__FILE__, __LINE__, "more than %d changes", n);
            ids[got] = cap_id_of(m->items[i]->change);
            if (items)
                items[got] = m->items[i];
        }
    }
    return batches;
}

/* Nothing more arrives within ms, in batch mode. */
static void expect_no_batch(cap_client *c, int ms)
{
    Pgcapture__CaptureMessage *m = cap_recv_batch(c, ms);
    if (m) {
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "unexpected batch %llu of %zu changes, first id %d",
                  (unsigned long long)m->batch, m->n_items, cap_id_of(m->items[0]->change));
    }
}

static void test_batch_and_per_change_consumers_share_one_uri(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *b = open_batch(&e, 50);
    cap_client *p = cap_open(e.addr, e.uri, NULL);
    harness_sleep_ms(500); /* both streams pulling */
    enum { N = 200 };
    for (int i = 1; i <= N; i += 10) {
        cap_insert_rows(&e, i, i + 9, true);
        harness_sleep_ms(15);
    }
    int seen[N + 1] = {0}, got_b = 0, got_p = 0;
    long long until = harness_now_ms() + 30000;
    while (got_b + got_p < N && harness_now_ms() < until) {
        Pgcapture__CaptureMessage *m = cap_recv_batch(b, 30);
        if (m) {
            EXPECT_TRUE(m->n_items >= 1 && m->n_items <= 50);
            for (size_t i = 0; i < m->n_items; i++, got_b++)
                seen[cap_id_of(m->items[i]->change)]++;
            cap_ack_batch(b, m->batch, NULL);
        }
        m = cap_recv(p, 30);
        if (m) {
            seen[cap_id_of(m->change)]++;
            got_p++;
            cap_ack(p, m->checkpoint, NULL);
        }
    }
    for (int id = 1; id <= N; id++)
        if (seen[id] != 1)
            unit_fail(__FILE__, __LINE__, "row %d received %d times (batch %d, per-change %d)", id,
                      seen[id], got_b, got_p);
    EXPECT_TRUE(got_b > 0);
    EXPECT_TRUE(got_p > 0);
}

static void test_a_change_requeued_inside_a_batch_comes_back_alone(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = open_batch(&e, 100);
    cap_insert_rows(&e, 1, 3, true);
    int32_t ids[3];
    Pgcapture__CaptureItem *it[3];
    uint64_t nums[64];
    int batches = recv_items(c, 3, ids, it, nums, 20000);
    EXPECT_EQ_INT(2, ids[1]);
    /* The requeue first, on its own; then the batch ack answers the rest. */
    cap_ack(c, it[1]->checkpoint, "not now");
    for (int k = 0; k < batches; k++)
        cap_ack_batch(c, nums[k], NULL);
    int32_t again[1];
    Pgcapture__CaptureItem *ai[1];
    uint64_t an[64];
    EXPECT_EQ_INT(1, recv_items(c, 1, again, ai, an, 10000));
    EXPECT_EQ_INT(2, again[0]);
    EXPECT_EQ_UINT(it[1]->checkpoint->lsn, ai[0]->checkpoint->lsn);
    EXPECT_EQ_UINT(it[1]->checkpoint->seq, ai[0]->checkpoint->seq);
    const Pgcapture__Field *v = cap_field(ai[0]->change, "v");
    EXPECT_TRUE(v != NULL);
    EXPECT_EQ_MEM("row 2", 5, v->binary.data, v->binary.len);
    expect_no_batch(c, 1000); /* rows 1 and 3 never come back */
    cap_ack_batch(c, an[0], NULL);
    harness_sleep_ms(300);
    rpc_stream_cancel(c->st);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c2, 1500);
}

static void test_a_consumer_dying_inside_a_batch_gets_its_unanswered_changes_once(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = open_batch(&e, 100);
    cap_insert_rows(&e, 1, 3, true);
    int32_t ids[4];
    Pgcapture__CaptureItem *it[4];
    uint64_t nums[64];
    int batches = recv_items(c, 3, ids, it, nums, 20000);
    for (int k = 0; k < batches; k++)
        cap_ack_batch(c, nums[k], NULL); /* rows 1..3 done */
    cap_insert_rows(&e, 4, 7, true);
    recv_items(c, 4, ids, it, nums, 20000);
    EXPECT_EQ_INT(4, ids[0]);
    cap_ack(c, it[0]->checkpoint, NULL); /* row 4 answered on its own, no batch ack */
    harness_sleep_ms(300);
    rpc_stream_cancel(c->st); /* dies with 5, 6, 7 unanswered */
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    int seen[8] = {0};
    Pgcapture__CaptureMessage *r[3];
    cap_recv_n(c2, r, 3, 20000);
    for (int i = 0; i < 3; i++) {
        int id = cap_id_of(r[i]->change);
        EXPECT_TRUE(id >= 5 && id <= 7);
        seen[id]++;
        cap_ack(c2, r[i]->checkpoint, NULL);
    }
    for (int id = 5; id <= 7; id++)
        if (seen[id] != 1) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "row %d received %d times (got %d %d %d)", id, seen[id],
                      cap_id_of(r[0]->change), cap_id_of(r[1]->change), cap_id_of(r[2]->change));
        }
    cap_expect_quiet(c2, 1000);
}

/* Sends `req`, expects INVALID_ARGUMENT, then checks that rows from..to come back to a new
 * stream (nothing was acked by the refused request), leaving them unacked. */
static void expect_refused_and_kept(cap_env *e, cap_client *c, const Pgcapture__CaptureRequest *req,
                                    int from, int to)
{
    cap_send_request(c, req);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    cap_client *again = open_batch(e, 100);
    int n = to - from + 1;
    int32_t ids[8];
    uint64_t nums[64];
    recv_items(again, n, ids, NULL, nums, 20000);
    for (int i = 0; i < n; i++)
        EXPECT_EQ_INT(from + i, ids[i]);
    rpc_stream_cancel(again->st);
    EXPECT_EQ_INT(GRPC_STATUS_CANCELLED, cap_wait_end(again, 10000));
}

static void test_malformed_batch_acks_are_refused_and_lose_nothing(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = open_batch(&e, 100);
    cap_insert_rows(&e, 1, 2, true);
    int32_t ids[2];
    Pgcapture__CaptureItem *it[2];
    uint64_t nums[64];
    int batches = recv_items(c, 2, ids, it, nums, 20000);
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    /* A batch never sent (past the last one). */
    ack.batch = nums[batches - 1] + 5;
    expect_refused_and_kept(&e, c, &req, 1, 2);
    /* A batch ack with a checkpoint too. */
    c = open_batch(&e, 100);
    batches = recv_items(c, 2, ids, it, nums, 20000);
    ack.batch = nums[0];
    ack.checkpoint = it[0]->checkpoint;
    expect_refused_and_kept(&e, c, &req, 1, 2);
    /* A change of a batch acked with an index past the end of its log batch (out of range). */
    c = open_batch(&e, 100);
    batches = recv_items(c, 2, ids, it, nums, 20000);
    Pgcapture__Checkpoint forged = *it[1]->checkpoint;
    uint8_t data[CPHANDLE_LEN];
    cphandle h;
    EXPECT_EQ_INT(PGC_OK, cphandle_decode(forged.data.data, forged.data.len, &h, NULL, 0));
    h.index += 1000;
    cphandle_encode(&h, data);
    forged.data.data = data;
    ack.batch = 0;
    ack.checkpoint = &forged;
    expect_refused_and_kept(&e, c, &req, 1, 2);
    /* The same batch acked twice: the first ack counts, the second is refused. */
    c = open_batch(&e, 100);
    batches = recv_items(c, 2, ids, it, nums, 20000);
    for (int k = 0; k < batches; k++)
        cap_ack_batch(c, nums[k], NULL);
    cap_ack_batch(c, nums[0], NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    cap_insert_rows(&e, 3, 3, false);
    cap_client *last = open_batch(&e, 100);
    recv_items(last, 1, ids, it, nums, 20000);
    EXPECT_EQ_INT(3, ids[0]); /* 1 and 2 were acked by the first batch ack */
    expect_no_batch(last, 1000);
}

/* A batch-mode consumer that half-closes after its acks gets OK, and its acks stand. */
static void test_a_half_close_ends_the_stream_with_ok_after_the_acks(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = open_batch(&e, 100);
    cap_insert_rows(&e, 1, 4, true);
    int32_t ids[4];
    uint64_t nums[64];
    int batches = recv_items(c, 4, ids, NULL, nums, 20000);
    for (int k = 0; k < batches; k++)
        cap_ack_batch(c, nums[k], NULL);
    char err[200];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_close_send(c->st, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_OK, cap_wait_end(c, 10000));
    cap_client *c2 = open_batch(&e, 100);
    expect_no_batch(c2, 1500);
}

UNIT_MAIN(UNIT_CASE(test_batch_and_per_change_consumers_share_one_uri),
          UNIT_CASE(test_a_change_requeued_inside_a_batch_comes_back_alone),
          UNIT_CASE(test_a_consumer_dying_inside_a_batch_gets_its_unanswered_changes_once),
          UNIT_CASE(test_malformed_batch_acks_are_refused_and_lose_nothing),
          UNIT_CASE(test_a_half_close_ends_the_stream_with_ok_after_the_acks))
