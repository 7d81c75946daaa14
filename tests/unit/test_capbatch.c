/* Batch-mode CaptureMessages written as bytes: protobuf-c reads back every item with its
 * checkpoint and change; the reader walks batches and per-change messages alike and refuses
 * garbage. */
#include "codec/capbatch.h"
#include "codec/capmsg.h"
#include "core/status.h"
#include "harness/runner.h"
#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t pack_change(uint8_t *buf, const char *table, const char *value)
{
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    Pgcapture__Field *fields[1] = {&f};
    f.name = "v";
    f.oid = 25;
    f.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f.binary.data = (uint8_t *)value;
    f.binary.len = strlen(value);
    c.op = PGCAPTURE__CHANGE__OPERATION__INSERT;
    c.schema = "public";
    c.table = (char *)table;
    c.n_new_ = 1;
    c.new_ = fields;
    return pgcapture__change__pack(&c, buf);
}

static void test_capbatch_items_read_back_with_protobuf_c(void)
{
    capbatch b;
    capbatch_init(&b);
    capbatch_reset(&b);
    uint8_t change[256];
    char value[64];
    for (int i = 0; i < 500; i++) {
        snprintf(value, sizeof value, "value %d", i);
        size_t n = pack_change(change, i % 2 ? "odd" : "even", value);
        uint8_t handle[3] = {1, 2, (uint8_t)i};
        EXPECT_EQ_INT(PGC_OK, capbatch_add(&b, 0x1000000000ULL + (uint64_t)i, (uint32_t)i, handle,
                                           i % 3 ? sizeof handle : 0, change, n));
    }
    EXPECT_EQ_UINT(500, b.count);
    EXPECT_EQ_INT(PGC_OK, capbatch_finish(&b, 300));
    Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, b.len, b.buf);
    EXPECT_TRUE(m != NULL);
    EXPECT_EQ_UINT(300, m->batch);
    EXPECT_TRUE(m->checkpoint == NULL && m->change == NULL);
    EXPECT_EQ_UINT(500, m->n_items);
    for (int i = 0; i < 500; i++) {
        const Pgcapture__CaptureItem *it = m->items[i];
        EXPECT_TRUE(it->checkpoint && it->change);
        EXPECT_EQ_UINT(0x1000000000ULL + (uint64_t)i, it->checkpoint->lsn);
        EXPECT_EQ_UINT((uint32_t)i, it->checkpoint->seq);
        EXPECT_EQ_UINT(i % 3 ? 3 : 0, it->checkpoint->data.len);
        EXPECT_EQ_STR(i % 2 ? "odd" : "even", it->change->table);
        snprintf(value, sizeof value, "value %d", i);
        EXPECT_EQ_MEM(value, strlen(value), it->change->new_[0]->binary.data,
                      it->change->new_[0]->binary.len);
    }
    pgcapture__capture_message__free_unpacked(m, NULL);

    /* Start over: the buffer is reused, the old items are gone. */
    capbatch_reset(&b);
    size_t n = pack_change(change, "t", "x");
    uint8_t *at = capbatch_add_item(&b, 5, 6, NULL, 0, n);
    EXPECT_TRUE(at != NULL);
    memcpy(at, change, n);
    EXPECT_EQ_UINT(b.len, capbatch_item_size(5, 6, 0, n));
    EXPECT_EQ_INT(PGC_OK, capbatch_finish(&b, 1));
    EXPECT_EQ_UINT(b.len, capbatch_item_size(5, 6, 0, n) + 2);
    m = pgcapture__capture_message__unpack(NULL, b.len, b.buf);
    EXPECT_TRUE(m && m->batch == 1 && m->n_items == 1 && m->items[0]->checkpoint->lsn == 5);
    pgcapture__capture_message__free_unpacked(m, NULL);
    capbatch_free(&b);
}

static void test_capbatch_reader_walks_batches_and_single_changes(void)
{
    capbatch b;
    capbatch_init(&b);
    capbatch_reset(&b);
    uint8_t change[256];
    size_t n = pack_change(change, "t", "hello");
    uint8_t handle[2] = {9, 9};
    EXPECT_EQ_INT(PGC_OK, capbatch_add(&b, 10, 1, handle, 2, change, n));
    EXPECT_EQ_INT(PGC_OK, capbatch_add(&b, 0, 42, NULL, 0, change, n));
    EXPECT_EQ_INT(PGC_OK, capbatch_finish(&b, 7));
    char err[200];
    capbatch_reader r;
    uint64_t batch;
    uint32_t items;
    EXPECT_EQ_INT(PGC_OK, capbatch_reader_init(&r, b.buf, b.len, &batch, &items, err, sizeof err));
    EXPECT_EQ_UINT(7, batch);
    EXPECT_EQ_UINT(2, items);
    capbatch_item it;
    EXPECT_EQ_INT(1, capbatch_reader_next(&r, &it, err, sizeof err));
    EXPECT_TRUE(it.has_checkpoint && it.has_change);
    EXPECT_EQ_UINT(10, it.lsn);
    EXPECT_EQ_UINT(1, it.seq);
    EXPECT_EQ_MEM(handle, 2, it.data, it.data_len);
    EXPECT_EQ_MEM(change, n, it.change, it.change_len);
    EXPECT_EQ_INT(1, capbatch_reader_next(&r, &it, err, sizeof err));
    EXPECT_EQ_UINT(0, it.lsn);
    EXPECT_EQ_UINT(42, it.seq);
    EXPECT_EQ_UINT(0, it.data_len);
    EXPECT_EQ_INT(0, capbatch_reader_next(&r, &it, err, sizeof err));

    /* A per-change message: batch 0, no items, read as one item. */
    uint8_t single[512];
    size_t sl = capmsg_build(single, 77, 3, handle, 2, change, n);
    EXPECT_EQ_INT(PGC_OK, capbatch_reader_init(&r, single, sl, &batch, &items, err, sizeof err));
    EXPECT_EQ_UINT(0, batch);
    EXPECT_EQ_UINT(0, items);
    EXPECT_EQ_INT(PGC_OK, capbatch_read_item(single, sl, &it, err, sizeof err));
    EXPECT_EQ_UINT(77, it.lsn);
    EXPECT_EQ_MEM(change, n, it.change, it.change_len);

    /* Garbage: cut short, or an item that is a varint. */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  capbatch_reader_init(&r, b.buf, b.len - 1, &batch, &items, err, sizeof err));
    uint8_t bad[] = {0x20, 0x01};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  capbatch_reader_init(&r, bad, sizeof bad, &batch, &items, err, sizeof err));
    uint8_t bad_cp[] = {0x0a, 0x02, 0x0a, 0x05};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  capbatch_read_item(bad_cp, sizeof bad_cp, &it, err, sizeof err));
    capbatch_free(&b);
}

UNIT_MAIN(UNIT_CASE(test_capbatch_items_read_back_with_protobuf_c),
          UNIT_CASE(test_capbatch_reader_walks_batches_and_single_changes))
