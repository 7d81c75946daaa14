/* The gateway's dumper against a real controller and a real replica database. The
 * Capture stream's side is played by the test through the dumper's hooks (its position in
 * the log, and the rows it receives), so each case can put the stream behind, at or past
 * the replica's applied position. */
#include "harness/runner.h"
#include "codec/bigendian.h"
#include "core/status.h"
#include "harness/fixtures.h"
#include "roles/gateway/dumper.h"
#include "harness/services.h"

#include "pgcapture.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t end_lsn; /* the log's end, what a frozen stream reports */
    uint32_t end_seq;
    uint64_t pos_lsn; /* what the stream has delivered */
    uint32_t pos_seq;
    bool frozen, held;
    int holds, freezes;
    bool hold_below_end; /* a hold asked below the frozen end: time travel */
    Pgcapture__CaptureMessage **rows;
    size_t n_rows, cap;
    const char *unwanted_table;
    /* batch mode: each batch's number, dump id, size and last flag */
    uint64_t batches;
    struct {
        uint32_t id, rows;
        bool last;
    } batch[64];
} fake_stream;

static int cmp_pos(uint64_t al, uint32_t as, uint64_t bl, uint32_t bs)
{
    if (al != bl)
        return al < bl ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

static int fs_freeze(void *arg, uint64_t *lsn, uint32_t *seq)
{
    fake_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    s->frozen = true;
    s->freezes++;
    *lsn = s->end_lsn;
    *seq = s->end_seq;
    pthread_mutex_unlock(&s->mu);
    return PGC_OK;
}

/* The stream runs on from the end to the target at once (the log holds it, since the
 * replica applied it from there) and holds. */
static int fs_hold_at(void *arg, uint64_t lsn, uint32_t seq, int timeout_ms)
{
    (void)timeout_ms;
    fake_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    if (!s->frozen || cmp_pos(lsn, seq, s->end_lsn, s->end_seq) < 0)
        s->hold_below_end = true;
    s->pos_lsn = lsn;
    s->pos_seq = seq;
    s->frozen = false;
    s->held = true;
    s->holds++;
    pthread_mutex_unlock(&s->mu);
    return PGC_OK;
}

static void fs_release(void *arg)
{
    fake_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    s->held = false;
    s->frozen = false;
    pthread_mutex_unlock(&s->mu);
}

/* Stores one row; caller holds mu. */
static int fs_store_locked(fake_stream *s, const uint8_t *msg, size_t len)
{
    Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, msg);
    if (!m)
        return -1;
    if (!s->held) {
        /* A dump row outside a hold would be time travel: make it visible. */
        m->checkpoint->seq = 0xDEADBEEF;
    }
    if (s->n_rows == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->rows = realloc(s->rows, s->cap * sizeof *s->rows);
    }
    s->rows[s->n_rows++] = m;
    pthread_cond_broadcast(&s->cv);
    return 0;
}

static int fs_send(void *arg, const uint8_t *msg, size_t len)
{
    fake_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    int rc = fs_store_locked(s, msg, len);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A batch of rows: each item (a CaptureMessage on the wire) is stored as a row. */
static int fs_send_batch(void *arg, capbatch *b, uint32_t dump_id, bool last)
{
    fake_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    uint64_t number = ++s->batches;
    int rc = capbatch_finish(b, number);
    Pgcapture__CaptureMessage *m =
        rc == PGC_OK ? pgcapture__capture_message__unpack(NULL, b->len, b->buf) : NULL;
    if (!m || m->batch != number || number > 64) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    s->batch[number - 1].id = dump_id;
    s->batch[number - 1].rows = (uint32_t)m->n_items;
    s->batch[number - 1].last = last;
    for (size_t i = 0; i < m->n_items && rc == PGC_OK; i++) {
        uint8_t buf[512];
        size_t n = pgcapture__capture_item__pack(m->items[i], buf);
        rc = fs_store_locked(s, buf, n);
    }
    pthread_mutex_unlock(&s->mu);
    pgcapture__capture_message__free_unpacked(m, NULL);
    return rc;
}

static bool fs_table_wanted(void *arg, const char *table)
{
    fake_stream *s = arg;
    return !s->unwanted_table || strcmp(table, s->unwanted_table) != 0;
}

static void fs_free(void *arg)
{
    fake_stream *s = arg;
    for (size_t i = 0; i < s->n_rows; i++)
        pgcapture__capture_message__free_unpacked(s->rows[i], NULL);
    free(s->rows);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static fake_stream *fs_new(uint64_t end_lsn, uint32_t end_seq)
{
    fake_stream *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->end_lsn = end_lsn;
    s->end_seq = end_seq;
    unit_defer(fs_free, s);
    return s;
}

/* Waits until the stream holds at least `n` rows. */
static void fs_wait_rows(fake_stream *s, size_t n, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    while (s->n_rows < n && harness_now_ms() < deadline) {
        pthread_mutex_unlock(&s->mu);
        harness_sleep_ms(20);
        pthread_mutex_lock(&s->mu);
    }
    size_t got = s->n_rows;
    pthread_mutex_unlock(&s->mu);
    if (got < n)
        unit_fail(__FILE__, __LINE__, "expected %zu dump rows, got %zu", n, got);
}

/* Row i, read under the lock: the dumper thread may be growing the array. */
static const Pgcapture__CaptureMessage *fs_row(fake_stream *s, size_t i)
{
    pthread_mutex_lock(&s->mu);
    const Pgcapture__CaptureMessage *m = i < s->n_rows ? s->rows[i] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!m)
        unit_fail(__FILE__, __LINE__, "no dump row %zu", i);
    return m;
}

static void stop_dumper(void *arg)
{
    dumper_destroy(arg);
}

typedef struct setup {
    harness_controller ctl;
    char replica[256];
    PGconn *conn;
    char uri[64];
} setup;

/* A replica whose applier has applied up to 0/1000 seq 5, with table t of `rows` rows. */
static setup *setup_new(int rows)
{
    setup *s = calloc(1, sizeof *s);
    unit_defer(free, s);
    harness_replica_db_create(true, s->replica, sizeof s->replica);
    s->conn = harness_connect(s->replica);
    harness_exec(s->conn,
                 "INSERT INTO pgcapture.sources (id, commit, seq) VALUES ('src', '0/1000', 5)");
    harness_exec(s->conn, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, %d) i",
             rows);
    harness_exec(s->conn, sql);
    harness_controller_start(&s->ctl, (const char *const[]){"--requeue-backoff", "100ms", NULL});
    harness_unique_name(s->uri, sizeof s->uri);
    return s;
}

static dumper *start_dumper_batches(setup *s, fake_stream *fs, int replica_wait_ms,
                                    uint32_t batch_limit)
{
    dumper_config cfg = {s->ctl.addr, s->uri,          s->replica, "src", batch_limit,
                         2000,        replica_wait_ms, NULL,       NULL};
    dumper_hooks hooks = {fs,      fs_freeze,       fs_hold_at,   fs_release,
                          fs_send, fs_table_wanted, fs_send_batch};
    dumper *d;
    char err[256];
    if (dumper_start(&cfg, &hooks, &d, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "dumper_start: %s", err);
    unit_defer(stop_dumper, d);
    return d;
}

static dumper *start_dumper(setup *s, fake_stream *fs, int replica_wait_ms)
{
    return start_dumper_batches(s, fs, replica_wait_ms, 0);
}

static void ack_row(dumper *d, const Pgcapture__CaptureMessage *m, const char *reason)
{
    EXPECT_EQ_INT(PGC_OK, dumper_on_ack(d, m->checkpoint->seq, m->checkpoint->data.data,
                                        m->checkpoint->data.len, reason));
}

static int32_t row_id(const Pgcapture__CaptureMessage *m)
{
    const Pgcapture__Field *f = m->change->new_[0];
    EXPECT_EQ_STR("id", f->name);
    EXPECT_EQ_UINT(4, f->binary.len);
    const uint8_t *p = f->binary.data;
    return (int32_t)bigendian_get32(p);
}

static void wait_items_done(dumper *d, uint64_t n)
{
    dumper_stats st;
    long long deadline = harness_now_ms() + 15000;
    do {
        dumper_get_stats(d, &st);
        if (st.items_done >= n)
            return;
        harness_sleep_ms(20);
    } while (harness_now_ms() < deadline);
    unit_fail(__FILE__, __LINE__, "expected %llu items done, got %llu", (unsigned long long)n,
              (unsigned long long)st.items_done);
}

static void test_scheduled_items_arrive_whole_inside_a_hold_at_the_replica_position(void)
{
    setup *s = setup_new(3000);
    long long pages = harness_query_int(
        s->conn, "SELECT pg_relation_size('t') / current_setting('block_size')::int");
    uint32_t mid = (uint32_t)pages / 2;
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", 0, mid);
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", mid + 1, (uint32_t)pages + 10);
    fake_stream *fs = fs_new(0x1000, 5);
    dumper *d = start_dumper(s, fs, 2000);
    char *seen = calloc(3001, 1);
    unit_defer(free, seen);
    size_t acked = 0;
    for (int item = 0; item < 2; item++) {
        /* Each item's rows come in one go; ack them all, the last one completes it. */
        size_t lasts = 0;
        while (lasts == 0) {
            fs_wait_rows(fs, acked + 1, 15000);
            pthread_mutex_lock(&fs->mu);
            size_t n = fs->n_rows;
            pthread_mutex_unlock(&fs->mu);
            for (; acked < n; acked++) {
                const Pgcapture__CaptureMessage *m = fs_row(fs, acked);
                EXPECT_EQ_UINT(0, m->checkpoint->lsn);
                EXPECT_TRUE(m->checkpoint->seq != 0xDEADBEEF);
                EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, m->change->op);
                int32_t id = row_id(m);
                EXPECT_TRUE(id >= 1 && id <= 3000);
                EXPECT_EQ_INT(0, seen[id]);
                seen[id] = 1;
                lasts += m->checkpoint->data.len == 1;
                ack_row(d, m, "");
            }
        }
        EXPECT_EQ_UINT(1, lasts);
        wait_items_done(d, (uint64_t)item + 1);
    }
    EXPECT_EQ_UINT(3000, acked);
    EXPECT_EQ_INT(2, fs->holds);
    EXPECT_EQ_INT(2, fs->freezes);
    EXPECT_TRUE(!fs->hold_below_end);
    dumper_stats st;
    dumper_get_stats(d, &st);
    EXPECT_EQ_UINT(3000, st.rows_sent);
    EXPECT_EQ_UINT(0, st.items_requeued);
}

static void test_a_requeued_row_brings_the_whole_item_back(void)
{
    setup *s = setup_new(500);
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", 0, 1000);
    fake_stream *fs = fs_new(0x1000, 5);
    dumper *d = start_dumper(s, fs, 2000);
    fs_wait_rows(fs, 500, 15000);
    ack_row(d, fs_row(fs, 0), "");
    ack_row(d, fs_row(fs, 7), "consumer could not store it");
    /* The item comes back later, every row again. */
    fs_wait_rows(fs, 1000, 15000);
    for (size_t i = 500; i < 1000; i++)
        ack_row(d, fs_row(fs, i), "");
    wait_items_done(d, 1);
    dumper_stats st;
    dumper_get_stats(d, &st);
    EXPECT_EQ_UINT(1, st.items_requeued);
    EXPECT_EQ_INT(row_id(fs_row(fs, 0)), row_id(fs_row(fs, 500)));
    EXPECT_EQ_INT(row_id(fs_row(fs, 499)), row_id(fs_row(fs, 999)));
}

static void test_a_replica_behind_the_log_end_waits_then_requeues_as_lagging(void)
{
    setup *s = setup_new(100);
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", 0, 100);
    /* The log ends at 0/2000 (the consumer may have all of it): the replica (0/1000) is
     * behind it, so no snapshot of it may be delivered yet. */
    fake_stream *fs = fs_new(0x2000, 1);
    dumper *d = start_dumper(s, fs, 300);
    dumper_stats st;
    long long deadline = harness_now_ms() + 15000;
    do {
        harness_sleep_ms(50);
        dumper_get_stats(d, &st);
    } while (st.items_requeued == 0 && harness_now_ms() < deadline);
    EXPECT_TRUE(st.items_requeued >= 1);
    EXPECT_EQ_UINT(0, fs->n_rows);
    EXPECT_EQ_INT(0, fs->holds);
    /* Once the replica has caught up with the log's end the item goes through, held at
     * the replica's position. */
    harness_exec(s->conn, "UPDATE pgcapture.sources SET commit = '0/2000', seq = 3");
    fs_wait_rows(fs, 100, 15000);
    ack_row(d, fs_row(fs, 99), "");
    wait_items_done(d, 1);
    EXPECT_EQ_UINT(0x2000, fs->pos_lsn);
    EXPECT_EQ_UINT(3, fs->pos_seq);
    EXPECT_TRUE(!fs->hold_below_end);
}

static void test_missing_or_unwanted_tables_are_acked_empty(void)
{
    setup *s = setup_new(10);
    harness_controller_schedule(&s->ctl, s->uri, "public", "gone", 0, 10);
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", 0, 10);
    fake_stream *fs = fs_new(0x1000, 5);
    fs->unwanted_table = "t";
    dumper *d = start_dumper(s, fs, 2000);
    wait_items_done(d, 2);
    EXPECT_EQ_UINT(0, fs->n_rows);
    EXPECT_EQ_INT(0, fs->holds);
}

/* Batch mode: an item's rows come in batches of at most the limit, the last row in the
 * last batch (flagged so); one batch ack per batch completes the item, and a batch
 * requeue brings the whole item back. */
static void test_batch_mode_packs_rows_and_batch_acks_answer_the_item(void)
{
    setup *s = setup_new(1000);
    harness_controller_schedule(&s->ctl, s->uri, "public", "t", 0, 1000);
    fake_stream *fs = fs_new(0x1000, 5);
    dumper *d = start_dumper_batches(s, fs, 2000, 300);
    fs_wait_rows(fs, 1000, 15000);
    pthread_mutex_lock(&fs->mu);
    uint64_t batches = fs->batches;
    pthread_mutex_unlock(&fs->mu);
    EXPECT_EQ_UINT(4, batches); /* 300 + 300 + 300 + 100 */
    char *seen = calloc(1001, 1);
    unit_defer(free, seen);
    size_t row = 0;
    for (uint64_t b = 0; b < batches; b++) {
        EXPECT_EQ_UINT(b + 1 < batches ? 300 : 100, fs->batch[b].rows);
        EXPECT_EQ_INT(b + 1 == batches, fs->batch[b].last);
        for (uint32_t i = 0; i < fs->batch[b].rows; i++, row++) {
            const Pgcapture__CaptureMessage *m = fs_row(fs, row);
            EXPECT_EQ_UINT(fs->batch[b].id, m->checkpoint->seq);
            EXPECT_EQ_UINT(b + 1 == batches && i + 1 == fs->batch[b].rows ? 1 : 0,
                           m->checkpoint->data.len);
            int32_t id = row_id(m);
            EXPECT_TRUE(id >= 1 && id <= 1000 && !seen[id]);
            seen[id] = 1;
        }
    }
    /* A requeue of the second batch brings the item back whole. */
    dumper_on_batch_ack(d, fs->batch[0].id, false, "");
    dumper_on_batch_ack(d, fs->batch[1].id, false, "consumer full");
    fs_wait_rows(fs, 2000, 15000);
    pthread_mutex_lock(&fs->mu);
    uint64_t all = fs->batches;
    pthread_mutex_unlock(&fs->mu);
    EXPECT_EQ_UINT(8, all);
    for (uint64_t b = 4; b < 8; b++)
        dumper_on_batch_ack(d, fs->batch[b].id, fs->batch[b].last, "");
    wait_items_done(d, 1);
    dumper_stats st;
    dumper_get_stats(d, &st);
    EXPECT_EQ_UINT(1, st.items_requeued);
    EXPECT_EQ_UINT(2000, st.rows_sent);
}

static void test_acks_for_dumps_never_sent_are_refused(void)
{
    setup *s = setup_new(10);
    fake_stream *fs = fs_new(0x1000, 5);
    dumper *d = start_dumper(s, fs, 2000);
    static const uint8_t one[1] = {1}, two[1] = {2};
    EXPECT_EQ_INT(PGC_ERR_INVALID, dumper_on_ack(d, 12345, one, 1, ""));
    EXPECT_EQ_INT(PGC_ERR_INVALID, dumper_on_ack(d, 12345, two, 1, ""));
}

UNIT_MAIN(UNIT_CASE(test_scheduled_items_arrive_whole_inside_a_hold_at_the_replica_position),
          UNIT_CASE(test_a_requeued_row_brings_the_whole_item_back),
          UNIT_CASE(test_a_replica_behind_the_log_end_waits_then_requeues_as_lagging),
          UNIT_CASE(test_missing_or_unwanted_tables_are_acked_empty),
          UNIT_CASE(test_batch_mode_packs_rows_and_batch_acks_answer_the_item),
          UNIT_CASE(test_acks_for_dumps_never_sent_are_refused))
