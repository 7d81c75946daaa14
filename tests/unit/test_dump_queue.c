/* The controller's dump queue: order, one outstanding item per stream, requeue with a
 * capped exponential back-off, cool-down spacing, StopSchedule, restore after a restart,
 * validation; the persisted encodings; and the dump id pgcapture computes. */
#include "harness/runner.h"

#include "codec/dumpid.h"
#include "core/status.h"
#include "roles/controller/dump_queue.h"
#include "roles/controller/queue_kv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URI "app/orders"

typedef struct handed {
    int n;
    char uri[8][64];
    uint64_t stream[8];
    uint64_t id[8];
    uint32_t begin[8];
} handed;

static void on_item(void *arg, const char *uri, uint64_t stream_id, const dump_queue_item *item)
{
    handed *h = arg;
    if (h->n >= 8)
        unit_fail(__FILE__, __LINE__, "more than 8 items handed out");
    snprintf(h->uri[h->n], sizeof h->uri[h->n], "%s", uri);
    h->stream[h->n] = stream_id;
    h->id[h->n] = item->id;
    h->begin[h->n] = item->page_begin;
    h->n++;
}

static dump_queue *make(int64_t base_ms, int64_t max_ms)
{
    dump_queue_config cfg = {base_ms, max_ms};
    dump_queue *q = dump_queue_create(&cfg);
    EXPECT_TRUE(q != NULL);
    unit_defer((void (*)(void *))dump_queue_destroy, q);
    return q;
}

static void schedule_pages(dump_queue *q, const char *uri, uint32_t n_items)
{
    dump_queue_spec specs[16];
    EXPECT_TRUE(n_items <= 16);
    for (uint32_t i = 0; i < n_items; i++)
        specs[i] = (dump_queue_spec){"public", "orders", i * 10, i * 10 + 9};
    char err[256];
    uint64_t first = 0;
    EXPECT_EQ_INT(PGC_OK, dump_queue_schedule(q, uri, specs, n_items, &first, err, sizeof err));
}

static handed dispatch(dump_queue *q, int64_t now_ms, int64_t *wake)
{
    handed h;
    memset(&h, 0, sizeof h);
    int64_t w = dump_queue_dispatch(q, now_ms, on_item, &h);
    if (wake)
        *wake = w;
    return h;
}

static void test_items_go_out_in_order_one_per_stream_until_acked(void)
{
    dump_queue *q = make(1000, 8000);
    schedule_pages(q, URI, 3);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 7));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(0, h.begin[0]);
    EXPECT_EQ_UINT(7, h.stream[0]);
    h = dispatch(q, 1, NULL); /* outstanding: nothing more for this stream */
    EXPECT_EQ_INT(0, h.n);
    dump_queue_completion c = dump_queue_complete(q, 7, "", 2);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, c.outcome);
    h = dispatch(q, 2, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(10, h.begin[0]);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, dump_queue_complete(q, 7, NULL, 3).outcome);
    h = dispatch(q, 3, NULL);
    EXPECT_EQ_UINT(20, h.begin[0]);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, dump_queue_complete(q, 7, NULL, 4).outcome);
    int64_t wake = 0;
    h = dispatch(q, 4, &wake);
    EXPECT_EQ_INT(0, h.n);
    EXPECT_EQ_INT(INT64_MAX, wake);
    dump_queue_uri_stats st;
    dump_queue_uri_stats_at(q, 0, &st);
    EXPECT_EQ_UINT(3, st.done);
    EXPECT_EQ_UINT(0, st.pending);
    EXPECT_EQ_UINT(0, st.outstanding);
    EXPECT_EQ_INT(DUMP_QUEUE_NOTHING, dump_queue_complete(q, 7, NULL, 5).outcome);
}

static void test_two_streams_of_one_uri_get_disjoint_items(void)
{
    dump_queue *q = make(1000, 8000);
    schedule_pages(q, URI, 4);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 2));
    EXPECT_EQ_INT(PGC_ERR_STATE, dump_queue_stream_open(q, URI, 2));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_INT(2, h.n);
    EXPECT_TRUE(h.stream[0] != h.stream[1]);
    EXPECT_TRUE(h.id[0] != h.id[1]);
    dump_queue_uri_stats st;
    dump_queue_uri_stats_at(q, 0, &st);
    EXPECT_EQ_UINT(2, st.outstanding);
    EXPECT_EQ_UINT(2, st.pending);
    EXPECT_EQ_UINT(2, st.streams);
}

static void test_streams_of_another_uri_never_get_its_items(void)
{
    dump_queue *q = make(1000, 8000);
    schedule_pages(q, URI, 2);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, "other", 1));
    EXPECT_EQ_INT(0, dispatch(q, 0, NULL).n);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 2));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(2, h.stream[0]);
    EXPECT_EQ_STR(URI, h.uri[0]);
}

static void test_requeue_comes_back_after_an_exponential_capped_backoff(void)
{
    dump_queue *q = make(100, 350);
    schedule_pages(q, URI, 1);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    int64_t now = 1000, wake;
    int64_t expect_backoff[] = {100, 200, 350, 350};
    for (int round = 0; round < 4; round++) {
        handed h = dispatch(q, now, NULL);
        EXPECT_EQ_INT(1, h.n);
        dump_queue_completion c = dump_queue_complete(q, 1, "replica lags", now);
        EXPECT_EQ_INT(DUMP_QUEUE_REQUEUED, c.outcome);
        EXPECT_EQ_UINT((uint64_t)round + 1, c.item->attempts);
        h = dispatch(q, now + expect_backoff[round] - 1, &wake);
        EXPECT_EQ_INT(0, h.n);
        EXPECT_EQ_INT(now + expect_backoff[round], wake);
        now += expect_backoff[round];
    }
    handed h = dispatch(q, now, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, dump_queue_complete(q, 1, "", now).outcome);
    dump_queue_uri_stats st;
    dump_queue_uri_stats_at(q, 0, &st);
    EXPECT_EQ_UINT(4, st.requeued);
    EXPECT_EQ_UINT(1, st.done);
}

static void test_a_backing_off_item_lets_later_items_go_first(void)
{
    dump_queue *q = make(1000, 8000);
    schedule_pages(q, URI, 2);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_UINT(0, h.begin[0]);
    EXPECT_EQ_INT(DUMP_QUEUE_REQUEUED, dump_queue_complete(q, 1, "boom", 0).outcome);
    h = dispatch(q, 1, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(10, h.begin[0]);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, dump_queue_complete(q, 1, "", 2).outcome);
    h = dispatch(q, 1000, NULL);
    EXPECT_EQ_UINT(0, h.begin[0]);
}

static void test_stream_ending_with_an_item_outstanding_requeues_it(void)
{
    dump_queue *q = make(50, 1000);
    schedule_pages(q, URI, 1);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_INT(1, h.n);
    dump_queue_completion c = dump_queue_stream_close(q, 1, 10);
    EXPECT_EQ_INT(DUMP_QUEUE_REQUEUED, c.outcome);
    EXPECT_EQ_UINT(h.id[0], c.id);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 2));
    EXPECT_EQ_INT(0, dispatch(q, 59, NULL).n);
    h = dispatch(q, 60, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(2, h.stream[0]);
    EXPECT_EQ_UINT(c.id, h.id[0]);
}

static void test_cooldown_spaces_items_of_a_uri(void)
{
    dump_queue *q = make(1000, 8000);
    schedule_pages(q, URI, 3);
    EXPECT_EQ_INT(PGC_OK, dump_queue_set_cooldown(q, URI, 500));
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 2));
    int64_t wake;
    handed h = dispatch(q, 0, &wake);
    EXPECT_EQ_INT(1, h.n); /* the second stream waits for the cool-down */
    EXPECT_EQ_INT(500, wake);
    h = dispatch(q, 500, NULL);
    EXPECT_EQ_INT(1, h.n);
    /* The first stream acks at 600: it waits until 1100 whatever the last handout. */
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED,
                  dump_queue_complete(q, h.stream[0] == 1 ? 2 : 1, "", 600).outcome);
    EXPECT_EQ_INT(0, dispatch(q, 1099, &wake).n);
    EXPECT_EQ_INT(1100, wake);
    EXPECT_EQ_INT(1, dispatch(q, 1100, NULL).n);
    EXPECT_EQ_INT(500, dump_queue_cooldown(q, URI));
}

static void test_stop_drops_pending_and_the_outstanding_item_on_completion(void)
{
    dump_queue *q = make(10, 100);
    schedule_pages(q, URI, 4);
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_INT(1, h.n);
    uint64_t *ids = NULL;
    long n = dump_queue_stop(q, URI, &ids);
    EXPECT_EQ_INT(4, n);
    EXPECT_TRUE(ids != NULL);
    EXPECT_EQ_UINT(h.id[0], ids[0]);
    free(ids);
    dump_queue_completion c = dump_queue_complete(q, 1, "requeue me", 1);
    EXPECT_EQ_INT(DUMP_QUEUE_DROPPED, c.outcome);
    EXPECT_EQ_INT(0, dispatch(q, 1000, NULL).n);
    dump_queue_uri_stats st;
    dump_queue_uri_stats_at(q, 0, &st);
    EXPECT_EQ_UINT(0, st.pending);
    EXPECT_EQ_UINT(0, st.outstanding);
    /* A later schedule works again, with new ids. */
    schedule_pages(q, URI, 1);
    h = dispatch(q, 1000, NULL);
    EXPECT_EQ_INT(1, h.n);
    EXPECT_EQ_UINT(5, h.id[0]);
    EXPECT_EQ_INT(0, dump_queue_stop(q, "never seen", &ids));
}

static void test_invalid_items_are_refused_and_nothing_is_appended(void)
{
    dump_queue *q = make(10, 100);
    char err[256];
    dump_queue_spec ok = {"public", "t", 0, 0};
    dump_queue_spec no_table = {"public", "", 0, 1};
    dump_queue_spec backwards = {"public", "t", 5, 4};
    dump_queue_spec two[2] = {ok, backwards};
    EXPECT_EQ_INT(PGC_ERR_INVALID, dump_queue_schedule(q, "", &ok, 1, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "uri") != NULL);
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  dump_queue_schedule(q, URI, &no_table, 1, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "table") != NULL);
    EXPECT_EQ_INT(PGC_ERR_INVALID, dump_queue_schedule(q, URI, two, 2, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "dumps[1]") != NULL);
    char long_uri[DUMP_QUEUE_MAX_URI_BYTES + 2];
    memset(long_uri, 'u', sizeof long_uri - 1);
    long_uri[sizeof long_uri - 1] = 0;
    EXPECT_EQ_INT(PGC_ERR_INVALID, dump_queue_schedule(q, long_uri, &ok, 1, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    EXPECT_EQ_INT(0, dispatch(q, 0, NULL).n);
}

static void test_restored_items_go_out_in_id_order_and_ids_continue(void)
{
    dump_queue *q = make(10, 100);
    char err[256];
    dump_queue_spec a = {"s", "t", 30, 39}, b = {"s", "t", 10, 19};
    EXPECT_EQ_INT(PGC_OK, dump_queue_restore_item(q, URI, 9, &a, 2, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, dump_queue_restore_item(q, URI, 4, &b, 0, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, dump_queue_restore_meta(q, URI, 250, 17, 12, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, dump_queue_restore_meta(q, "cool-down only", 100, 0, 1, err, sizeof err));
    dump_queue_restore_finish(q);
    EXPECT_EQ_INT(100, dump_queue_cooldown(q, "cool-down only"));
    EXPECT_EQ_INT(PGC_OK, dump_queue_schedule(q, "cool-down only", NULL, 0, NULL, err, sizeof err));
    EXPECT_EQ_INT(250, dump_queue_cooldown(q, URI));
    EXPECT_EQ_INT(PGC_OK, dump_queue_stream_open(q, URI, 1));
    handed h = dispatch(q, 0, NULL);
    EXPECT_EQ_UINT(4, h.id[0]);
    EXPECT_EQ_INT(DUMP_QUEUE_ACKED, dump_queue_complete(q, 1, "", 0).outcome);
    h = dispatch(q, 250, NULL);
    EXPECT_EQ_UINT(9, h.id[0]);
    uint64_t first = 0;
    EXPECT_EQ_INT(PGC_OK, dump_queue_schedule(q, URI, &a, 1, &first, err, sizeof err));
    EXPECT_EQ_UINT(12, first);
    dump_queue_uri_stats st;
    dump_queue_uri_stats_at(q, 0, &st);
    EXPECT_EQ_UINT(18, st.done);
    EXPECT_EQ_UINT(1, st.done_here);
}

static void test_eta_follows_the_done_rate(void)
{
    dump_queue_uri_stats st;
    memset(&st, 0, sizeof st);
    st.pending = 10;
    EXPECT_EQ_INT(-1, dump_queue_eta_ms(&st, 1000));
    st.done_here = 5;
    st.first_done_ms = 1000;
    EXPECT_EQ_INT(25000, dump_queue_eta_ms(&st, 11000)); /* 4 items in 10 s: 2.5 s each */
    st.pending = 0;
    EXPECT_EQ_INT(0, dump_queue_eta_ms(&st, 11000));
}

static void test_dump_id_matches_pgcapture_crc32(void)
{
    /* CRC-32 check value, and two ids computed with Python's zlib.crc32 over
     * schema + table + page_begin + page_end (big-endian uint32), as pgcapture hashes. */
    EXPECT_EQ_UINT(0xCBF43926u, dumpid_crc32(0, "123456789", 9));
    EXPECT_EQ_UINT(1006983997u, dumpid_compute("public", 6, "t1", 2, 0, 9));
    EXPECT_EQ_UINT(1376692525u, dumpid_compute("public", 6, "users", 5, 10, 19));
}

static void test_state_keys_and_values_round_trip(void)
{
    char key[QUEUE_KV_MAX_KEY_BYTES], uri[DUMP_QUEUE_MAX_URI_BYTES + 1];
    const char *weird = "postgres://h:5432/db?x=1 y.z*>";
    EXPECT_EQ_INT(PGC_OK, queue_kv_item_key(weird, 42, key, sizeof key));
    uint64_t id = 0;
    EXPECT_EQ_INT(QUEUE_KV_KEY_ITEM, queue_kv_parse_key(key, uri, sizeof uri, &id));
    EXPECT_EQ_STR(weird, uri);
    EXPECT_EQ_UINT(42, id);
    for (const char *p = key; *p; p++)
        EXPECT_TRUE(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./",
                           *p) != NULL);
    char filter[QUEUE_KV_MAX_KEY_BYTES];
    EXPECT_EQ_INT(PGC_OK, queue_kv_items_filter(weird, filter, sizeof filter));
    EXPECT_EQ_INT(0, strncmp(filter, key, strlen(filter) - 1)); /* all but the "*" */
    EXPECT_EQ_STR(".*", filter + strlen(filter) - 2);
    EXPECT_EQ_INT(PGC_OK, queue_kv_meta_key(weird, key, sizeof key));
    EXPECT_EQ_INT(QUEUE_KV_KEY_META, queue_kv_parse_key(key, uri, sizeof uri, &id));
    EXPECT_EQ_STR(weird, uri);
    EXPECT_EQ_INT(QUEUE_KV_KEY_UNKNOWN,
                  queue_kv_parse_key("q.zz.0000000000000001", uri, sizeof uri, &id));
    EXPECT_EQ_INT(QUEUE_KV_KEY_UNKNOWN, queue_kv_parse_key("other", uri, sizeof uri, &id));

    uint8_t buf[QUEUE_KV_MAX_VALUE_BYTES];
    dump_queue_item it = {7, "public", "orders", 100, 199, 3, 0, false};
    size_t n = queue_kv_encode_item(&it, buf, sizeof buf);
    EXPECT_TRUE(n > 0);
    queue_kv_item_value v;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, queue_kv_decode_item(buf, n, &v, err, sizeof err));
    EXPECT_EQ_STR("public", v.schema);
    EXPECT_EQ_STR("orders", v.table);
    EXPECT_EQ_UINT(100, v.page_begin);
    EXPECT_EQ_UINT(199, v.page_end);
    EXPECT_EQ_UINT(3, v.attempts);
    for (size_t cut = 0; cut < n; cut++)
        EXPECT_TRUE(queue_kv_decode_item(buf, cut, &v, err, sizeof err) < 0);
    buf[0] ^= 0xff;
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, queue_kv_decode_item(buf, n, &v, err, sizeof err));

    n = queue_kv_encode_meta(1500, 99, 123, buf, sizeof buf);
    int64_t cd;
    uint64_t done, next;
    EXPECT_EQ_INT(PGC_OK, queue_kv_decode_meta(buf, n, &cd, &done, &next, err, sizeof err));
    EXPECT_EQ_INT(1500, cd);
    EXPECT_EQ_UINT(99, done);
    EXPECT_EQ_UINT(123, next);
    EXPECT_TRUE(queue_kv_decode_meta(buf, n - 1, &cd, &done, &next, err, sizeof err) < 0);
}

UNIT_MAIN(UNIT_CASE(test_items_go_out_in_order_one_per_stream_until_acked),
          UNIT_CASE(test_two_streams_of_one_uri_get_disjoint_items),
          UNIT_CASE(test_streams_of_another_uri_never_get_its_items),
          UNIT_CASE(test_requeue_comes_back_after_an_exponential_capped_backoff),
          UNIT_CASE(test_a_backing_off_item_lets_later_items_go_first),
          UNIT_CASE(test_stream_ending_with_an_item_outstanding_requeues_it),
          UNIT_CASE(test_cooldown_spaces_items_of_a_uri),
          UNIT_CASE(test_stop_drops_pending_and_the_outstanding_item_on_completion),
          UNIT_CASE(test_invalid_items_are_refused_and_nothing_is_appended),
          UNIT_CASE(test_restored_items_go_out_in_id_order_and_ids_continue),
          UNIT_CASE(test_eta_follows_the_done_rate),
          UNIT_CASE(test_dump_id_matches_pgcapture_crc32),
          UNIT_CASE(test_state_keys_and_values_round_trip))
