/* Batches of the log: delimited Messages round-trip in order, the size limit holds,
 * oversized messages split into parts that join back, and malformed input is refused. */
#include "harness/runner.h"

#include "codec/batch.h"
#include "codec/part.h"
#include "codec/logpos.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"

#include <stdlib.h>
#include <string.h>

static void destroy_writer(void *w)
{
    batch_writer_destroy(w);
}

static void destroy_joiner(void *j)
{
    part_joiner_destroy(j);
}

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

static Pgcapture__Message *decode(const uint8_t *p, size_t n)
{
    Pgcapture__Message *m = pgcapture__message__unpack(NULL, n, p);
    EXPECT_TRUE(m != NULL);
    unit_defer(free_msg, m);
    return m;
}

static void test_messages_come_back_in_order_with_first_and_last_positions(void)
{
    batch_writer *w;
    EXPECT_EQ_INT(PGC_OK, batch_writer_create(65536, &w));
    unit_defer(destroy_writer, w);
    Pgcapture__Begin b = PGCAPTURE__BEGIN__INIT;
    b.final_lsn = 0x100;
    Pgcapture__Message mb = PGCAPTURE__MESSAGE__INIT;
    mb.type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    mb.begin = &b;
    EXPECT_EQ_INT(PGC_OK, batch_writer_add(w, &mb.base, (log_pos){0x100, 0}));
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    c.schema = "public";
    c.table = "t";
    Pgcapture__Message mc = PGCAPTURE__MESSAGE__INIT;
    mc.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    mc.change = &c;
    for (uint32_t s = 1; s <= 300; s++)
        EXPECT_EQ_INT(PGC_OK, batch_writer_add(w, &mc.base, (log_pos){0x100, s}));
    EXPECT_EQ_UINT(301, batch_writer_count(w));
    EXPECT_EQ_UINT(0, batch_writer_first(w).seq);
    EXPECT_EQ_UINT(300, batch_writer_last(w).seq);

    batch_reader r;
    batch_reader_init(&r, batch_writer_data(w), batch_writer_len(w));
    const uint8_t *p;
    size_t n;
    char err[128];
    int count = 0;
    while (batch_reader_next(&r, &p, &n, err, sizeof err) == 1) {
        Pgcapture__Message *m = pgcapture__message__unpack(NULL, n, p);
        EXPECT_TRUE(m != NULL);
        int type = m->type_case;
        protobuf_c_message_free_unpacked(&m->base, NULL);
        EXPECT_EQ_INT(count == 0 ? PGCAPTURE__MESSAGE__TYPE_BEGIN : PGCAPTURE__MESSAGE__TYPE_CHANGE,
                      type);
        count++;
    }
    EXPECT_EQ_INT(301, count);
}

static void test_a_message_that_does_not_fit_is_refused_and_nothing_written(void)
{
    batch_writer *w;
    EXPECT_EQ_INT(PGC_OK, batch_writer_create(100, &w));
    unit_defer(destroy_writer, w);
    char big[90];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    c.table = big;
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    m.change = &c;
    EXPECT_EQ_INT(PGC_OK, batch_writer_add(w, &m.base, (log_pos){1, 1}));
    size_t len = batch_writer_len(w);
    EXPECT_TRUE(len <= 100);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, batch_writer_add(w, &m.base, (log_pos){1, 2}));
    EXPECT_EQ_UINT(len, batch_writer_len(w));
    EXPECT_EQ_UINT(1, batch_writer_count(w));
}

static void test_oversized_message_splits_into_parts_that_join_back(void)
{
    batch_writer *w;
    EXPECT_EQ_INT(PGC_OK, batch_writer_create(1000, &w));
    unit_defer(destroy_writer, w);
    size_t big_len = 5000;
    uint8_t *big = malloc(big_len);
    unit_defer(free, big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 7);
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    f.name = "payload";
    f.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f.binary.data = big;
    f.binary.len = big_len;
    Pgcapture__Field *fs[] = {&f};
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    c.n_new_ = 1;
    c.new_ = fs;
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    m.change = &c;
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, batch_writer_add(w, &m.base, (log_pos){9, 1}));
    EXPECT_EQ_INT(PGC_OK, batch_writer_add_oversized(w, &m.base, (log_pos){9, 1}));
    size_t total = batch_writer_len(w);
    EXPECT_TRUE(total > 5000);
    uint32_t parts = (uint32_t)((total + 999) / 1000);

    part_joiner *j;
    EXPECT_EQ_INT(PGC_OK, part_joiner_create(1 << 20, &j));
    unit_defer(destroy_joiner, j);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    char err[128];
    /* A restarted agent resends from part 1: the joiner starts afresh. */
    EXPECT_EQ_INT(0, part_joiner_feed(j, (log_pos){9, 1}, 1, parts, batch_writer_data(w), 1000,
                                      &out, &out_len, err, sizeof err));
    for (uint32_t i = 1; i <= parts; i++) {
        size_t off = (size_t)(i - 1) * 1000, n = total - off < 1000 ? total - off : 1000;
        int rc = part_joiner_feed(j, (log_pos){9, 1}, i, parts, batch_writer_data(w) + off, n, &out,
                                  &out_len, err, sizeof err);
        EXPECT_EQ_INT(i == parts ? 1 : 0, rc);
    }
    EXPECT_EQ_MEM(batch_writer_data(w), total, out, out_len);
    batch_reader r;
    batch_reader_init(&r, out, out_len);
    const uint8_t *p;
    size_t n;
    EXPECT_EQ_INT(1, batch_reader_next(&r, &p, &n, err, sizeof err));
    Pgcapture__Message *g = decode(p, n);
    EXPECT_EQ_MEM(big, big_len, g->change->new_[0]->binary.data, g->change->new_[0]->binary.len);
    EXPECT_EQ_INT(0, batch_reader_next(&r, &p, &n, err, sizeof err));
    batch_writer_clear(w);
    EXPECT_EQ_UINT(0, batch_writer_len(w));
}

static const log_pos P = {7, 1};

/* A part 2 of another message of the same size must not continue a part 1: joined, the two
 * would decode as one change with the content of both and the position of one. */
/* A writer holding an oversized message wrote the next one past its buffer (max - len
 * wrapped; found by fuzz_logbatch): it must refuse it until cleared. */
static void test_nothing_is_added_after_an_oversized_message(void)
{
    batch_writer *w;
    EXPECT_EQ_INT(PGC_OK, batch_writer_create(64, &w));
    unit_defer(destroy_writer, w);
    char big[200], small[] = "t";
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    c.table = big;
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    m.change = &c;
    EXPECT_EQ_INT(PGC_OK, batch_writer_add_oversized(w, &m.base, (log_pos){5, 1}));
    size_t len = batch_writer_len(w);
    EXPECT_TRUE(len > 64);
    c.table = small;
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, batch_writer_add(w, &m.base, (log_pos){5, 2}));
    EXPECT_EQ_UINT(len, batch_writer_len(w));
    EXPECT_EQ_UINT(1, batch_writer_count(w));
    batch_writer_clear(w);
    EXPECT_EQ_INT(PGC_OK, batch_writer_add(w, &m.base, (log_pos){5, 2}));
    EXPECT_EQ_UINT(1, batch_writer_count(w));
}

static void test_parts_of_two_messages_never_join(void)
{
    part_joiner *j;
    EXPECT_EQ_INT(PGC_OK, part_joiner_create(100, &j));
    unit_defer(destroy_joiner, j);
    const uint8_t *out;
    size_t out_len;
    char err[128];
    static const uint8_t d[16] = {0};
    EXPECT_EQ_INT(
        0, part_joiner_feed(j, (log_pos){5, 1}, 1, 2, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, part_joiner_feed(j, (log_pos){6, 1}, 2, 2, d, 10, &out,
                                                      &out_len, err, sizeof err));
    EXPECT_TRUE(strstr(err, "follows parts of") != NULL);
    /* The message in progress was dropped: its own part 2 is out of order now. */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, part_joiner_feed(j, (log_pos){5, 1}, 2, 2, d, 10, &out,
                                                      &out_len, err, sizeof err));
    EXPECT_EQ_INT(
        0, part_joiner_feed(j, (log_pos){6, 1}, 1, 2, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(
        1, part_joiner_feed(j, (log_pos){6, 1}, 2, 2, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_UINT(20, out_len);
}

static void test_parts_out_of_order_are_refused(void)
{
    part_joiner *j;
    EXPECT_EQ_INT(PGC_OK, part_joiner_create(100, &j));
    unit_defer(destroy_joiner, j);
    const uint8_t *out;
    size_t out_len;
    char err[128];
    static const uint8_t d[64] = {0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  part_joiner_feed(j, P, 2, 3, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_TRUE(strstr(err, "2/3") != NULL);
    EXPECT_EQ_INT(0, part_joiner_feed(j, P, 1, 3, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  part_joiner_feed(j, P, 3, 3, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  part_joiner_feed(j, P, 0, 3, d, 10, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(0, part_joiner_feed(j, P, 1, 2, d, 60, &out, &out_len, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE,
                  part_joiner_feed(j, P, 2, 2, d, 60, &out, &out_len, err, sizeof err));
    uint32_t i, n;
    EXPECT_TRUE(part_header_parse("2/5", &i, &n));
    EXPECT_EQ_UINT(2, i);
    EXPECT_EQ_UINT(5, n);
    EXPECT_TRUE(!part_header_parse("6/5", &i, &n));
    EXPECT_TRUE(!part_header_parse("0/5", &i, &n));
    EXPECT_TRUE(!part_header_parse("1/", &i, &n));
    EXPECT_TRUE(!part_header_parse("-1/2", &i, &n));
    EXPECT_TRUE(!part_header_parse("1/2x", &i, &n));
}

static void test_truncated_and_malformed_batches_are_errors(void)
{
    char err[128];
    const uint8_t *p;
    size_t n;
    batch_reader r;
    static const uint8_t claims_more[] = {0x05, 0x01, 0x02};
    batch_reader_init(&r, claims_more, sizeof claims_more);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, batch_reader_next(&r, &p, &n, err, sizeof err));
    static const uint8_t cut_varint[] = {0x80};
    batch_reader_init(&r, cut_varint, sizeof cut_varint);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, batch_reader_next(&r, &p, &n, err, sizeof err));
    static const uint8_t long_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x01};
    batch_reader_init(&r, long_varint, sizeof long_varint);
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, batch_reader_next(&r, &p, &n, err, sizeof err));
    batch_reader_init(&r, NULL, 0);
    EXPECT_EQ_INT(0, batch_reader_next(&r, &p, &n, err, sizeof err));
}

static void test_log_positions_format_and_parse_strictly(void)
{
    char id[LOGPOS_MSGID_LEN], text[LOGPOS_TEXT_LEN], lsn[LOGPOS_LSN_LEN];
    logpos_format_msgid((log_pos){0x16B3748, 3}, id);
    EXPECT_EQ_STR("00000000016B3748-00000003", id);
    logpos_format((log_pos){0x16B3748, 4294967295u}, text);
    EXPECT_EQ_STR("16B3748/4294967295", text);
    log_pos p;
    EXPECT_TRUE(logpos_parse(text, &p));
    EXPECT_EQ_UINT(0x16B3748, p.lsn);
    EXPECT_EQ_UINT(4294967295u, p.seq);
    EXPECT_TRUE(!logpos_parse("16B3748/4294967296", &p));
    EXPECT_TRUE(!logpos_parse("/1", &p));
    EXPECT_TRUE(!logpos_parse("1/", &p));
    EXPECT_TRUE(!logpos_parse("xyz/1", &p));
    EXPECT_TRUE(!logpos_parse("11111111111111111/1", &p));
    logpos_format_lsn(0x100000016B3748ULL, lsn);
    EXPECT_EQ_STR("100000/16B3748", lsn);
    uint64_t v;
    EXPECT_TRUE(logpos_parse_lsn("100000/16B3748", &v));
    EXPECT_EQ_UINT(0x100000016B3748ULL, v);
    EXPECT_TRUE(!logpos_parse_lsn("100000000/0", &v));
    EXPECT_TRUE(logpos_cmp((log_pos){1, 5}, (log_pos){2, 0}) < 0);
    EXPECT_TRUE(logpos_cmp((log_pos){2, 1}, (log_pos){2, 0}) > 0);
    EXPECT_EQ_INT(0, logpos_cmp((log_pos){2, 1}, (log_pos){2, 1}));
}

UNIT_MAIN(UNIT_CASE(test_messages_come_back_in_order_with_first_and_last_positions),
          UNIT_CASE(test_a_message_that_does_not_fit_is_refused_and_nothing_written),
          UNIT_CASE(test_oversized_message_splits_into_parts_that_join_back),
          UNIT_CASE(test_nothing_is_added_after_an_oversized_message),
          UNIT_CASE(test_parts_of_two_messages_never_join),
          UNIT_CASE(test_parts_out_of_order_are_refused),
          UNIT_CASE(test_truncated_and_malformed_batches_are_errors),
          UNIT_CASE(test_log_positions_format_and_parse_strictly))
