/* The gateway's raw protobuf path and checkpoint handles: what capmsg writes, protobuf-c
 * reads back identically; what it peeks at matches a full decode; garbage is refused. */
#include "codec/capmsg.h"
#include "codec/cphandle.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"
#include "harness/runner.h"

#include <stdlib.h>
#include <string.h>

static size_t pack_change_msg(uint8_t *buf, const char *table)
{
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    Pgcapture__Field *fields[1] = {&f};
    f.name = "id";
    f.oid = 23;
    f.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f.binary.data = (uint8_t *)"\0\0\0\x2a";
    f.binary.len = 4;
    c.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    c.schema = "public";
    c.table = (char *)table;
    c.n_new_ = 1;
    c.new_ = fields;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    m.change = &c;
    return pgcapture__message__pack(&m, buf);
}

static void test_capmsg_wraps_a_change_with_its_checkpoint(void)
{
    uint8_t msg[256], out[512];
    char err[128];
    size_t n = pack_change_msg(msg, "orders");
    capmsg_kind kind;
    const uint8_t *ch;
    size_t ch_len;
    EXPECT_EQ_INT(PGC_OK, capmsg_peek(msg, n, &kind, &ch, &ch_len, err, sizeof err));
    EXPECT_EQ_INT(CAPMSG_CHANGE, kind);
    const uint8_t *t;
    size_t tl;
    EXPECT_EQ_INT(PGC_OK, capmsg_change_table(ch, ch_len, &t, &tl, err, sizeof err));
    EXPECT_EQ_MEM("orders", 6, t, tl);
    int op = -1;
    EXPECT_EQ_INT(PGC_OK, capmsg_change_op(ch, ch_len, &op, err, sizeof err));
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, op);
    /* op 0 (INSERT) is not on the wire at all; TRUNCATE is 3. */
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    uint8_t cb[64];
    c.table = "t";
    size_t cn = pgcapture__change__pack(&c, cb);
    EXPECT_EQ_INT(PGC_OK, capmsg_change_op(cb, cn, &op, err, sizeof err));
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, op);
    c.op = PGCAPTURE__CHANGE__OPERATION__TRUNCATE;
    cn = pgcapture__change__pack(&c, cb);
    EXPECT_EQ_INT(PGC_OK, capmsg_change_op(cb, cn, &op, err, sizeof err));
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__TRUNCATE, op);
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, capmsg_change_op(cb, cn - 1, &op, err, sizeof err));
    uint8_t handle[CPHANDLE_LEN];
    cphandle h = {0x0102030405060708ULL, 9, CPHANDLE_RETRY}, back;
    cphandle_encode(&h, handle);
    EXPECT_TRUE(capmsg_build_size(ch_len, CPHANDLE_LEN) <= sizeof out);
    size_t len = capmsg_build(out, 0xFFFFFFFFFFULL, 3, handle, CPHANDLE_LEN, ch, ch_len);
    Pgcapture__CaptureMessage *cm = pgcapture__capture_message__unpack(NULL, len, out);
    EXPECT_TRUE(cm && cm->checkpoint && cm->change);
    EXPECT_EQ_UINT(0xFFFFFFFFFFULL, cm->checkpoint->lsn);
    EXPECT_EQ_UINT(3, cm->checkpoint->seq);
    EXPECT_EQ_STR("orders", cm->change->table);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, cm->change->op);
    EXPECT_EQ_UINT(1, cm->change->n_new_);
    EXPECT_EQ_UINT(23, cm->change->new_[0]->oid);
    EXPECT_EQ_INT(PGC_OK, cphandle_decode(cm->checkpoint->data.data, cm->checkpoint->data.len,
                                          &back, err, sizeof err));
    EXPECT_EQ_UINT(h.stream_seq, back.stream_seq);
    EXPECT_EQ_UINT(9, back.index);
    EXPECT_EQ_INT(CPHANDLE_RETRY, back.origin);
    pgcapture__capture_message__free_unpacked(cm, NULL);
}

static void test_capmsg_reads_begin_lsn_and_other_kinds(void)
{
    Pgcapture__Message m = PGCAPTURE__MESSAGE__INIT;
    Pgcapture__Begin b = PGCAPTURE__BEGIN__INIT;
    Pgcapture__Commit c = PGCAPTURE__COMMIT__INIT;
    uint8_t buf[128];
    char err[128];
    b.final_lsn = 0x16B3748;
    b.remote_xid = 77;
    b.commit_time = 817234567890123ULL;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_BEGIN;
    m.begin = &b;
    size_t n = pgcapture__message__pack(&m, buf);
    capmsg_kind kind;
    const uint8_t *sub;
    size_t sub_len;
    uint64_t lsn, commit_time;
    EXPECT_EQ_INT(PGC_OK, capmsg_peek(buf, n, &kind, &sub, &sub_len, err, sizeof err));
    EXPECT_EQ_INT(CAPMSG_BEGIN, kind);
    EXPECT_EQ_INT(PGC_OK, capmsg_begin_lsn(sub, sub_len, &lsn, &commit_time, err, sizeof err));
    EXPECT_EQ_UINT(0x16B3748, lsn);
    EXPECT_EQ_UINT(817234567890123ULL, commit_time);
    c.commit_lsn = 5;
    m.type_case = PGCAPTURE__MESSAGE__TYPE_COMMIT;
    m.commit = &c;
    n = pgcapture__message__pack(&m, buf);
    EXPECT_EQ_INT(PGC_OK, capmsg_peek(buf, n, &kind, &sub, &sub_len, err, sizeof err));
    EXPECT_EQ_INT(CAPMSG_OTHER, kind);
}

static void test_capmsg_and_cphandle_refuse_garbage(void)
{
    char err[128];
    capmsg_kind kind;
    const uint8_t *sub;
    size_t sub_len;
    const uint8_t bad_len[] = {0x1a, 0x05, 0x01};    /* change of 5 bytes, 1 present */
    const uint8_t bad_wire[] = {0x18, 0x01};         /* field 3 as a varint */
    const uint8_t bad_varint[] = {0x08, 0xff, 0xff}; /* unterminated */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, capmsg_peek(bad_len, 3, &kind, &sub, &sub_len, err, 128));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, capmsg_peek(bad_wire, 2, &kind, &sub, &sub_len, err, 128));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, capmsg_peek(bad_varint, 3, &kind, &sub, &sub_len, err, 128));
    cphandle h;
    uint8_t d[CPHANDLE_LEN] = {0};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, cphandle_decode(d, CPHANDLE_LEN, &h, err, 128)); /* seq 0 */
    d[7] = 1;
    EXPECT_EQ_INT(PGC_OK, cphandle_decode(d, CPHANDLE_LEN, &h, err, 128));
    d[12] = 2;
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, cphandle_decode(d, CPHANDLE_LEN, &h, err, 128));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, cphandle_decode(d, CPHANDLE_LEN - 1, &h, err, 128));
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, cphandle_decode(NULL, 0, &h, err, 128));
    /* Random bytes: a status, never a crash (ASan checks the reads). */
    uint8_t buf[200];
    srand(7);
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(rand() % sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rand();
        int rc = capmsg_peek(buf, n, &kind, &sub, &sub_len, NULL, 0);
        EXPECT_TRUE(rc == PGC_OK || rc == PGC_ERR_MALFORMED);
        if (rc == PGC_OK && sub) {
            EXPECT_TRUE(sub >= buf && sub + sub_len <= buf + n);
            const uint8_t *t;
            size_t tl;
            capmsg_change_table(sub, sub_len, &t, &tl, NULL, 0);
        }
    }
}

static Pgcapture__Field field(const char *name, int value_case, const char *value)
{
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    f.name = (char *)name;
    f.oid = 25;
    f.value_case = value_case;
    if (value_case == PGCAPTURE__FIELD__VALUE_BINARY) {
        f.binary.data = (uint8_t *)value;
        f.binary.len = strlen(value);
    } else if (value_case == PGCAPTURE__FIELD__VALUE_TEXT) {
        f.text = (char *)value;
    }
    return f;
}

static void test_capmsg_drops_only_the_null_fields_of_old(void)
{
    /* new keeps its NULL; old loses its two NULLs and keeps an empty binary value and an
     * empty text value, which are values, not NULL. */
    Pgcapture__Field nf[3] = {field("id", PGCAPTURE__FIELD__VALUE_BINARY, "\x01"),
                              field("note", PGCAPTURE__FIELD__VALUE__NOT_SET, NULL),
                              field("body", PGCAPTURE__FIELD__VALUE_TEXT, "b")};
    Pgcapture__Field of[5] = {field("a", PGCAPTURE__FIELD__VALUE__NOT_SET, NULL),
                              field("id", PGCAPTURE__FIELD__VALUE_BINARY, "\x01"),
                              field("note", PGCAPTURE__FIELD__VALUE__NOT_SET, NULL),
                              field("empty", PGCAPTURE__FIELD__VALUE_BINARY, ""),
                              field("body", PGCAPTURE__FIELD__VALUE_TEXT, "")};
    Pgcapture__Field *np[3] = {&nf[0], &nf[1], &nf[2]};
    Pgcapture__Field *op[5] = {&of[0], &of[1], &of[2], &of[3], &of[4]};
    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    c.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    c.schema = "public";
    c.table = "doc";
    c.n_new_ = 3;
    c.new_ = np;
    c.n_old = 5;
    c.old = op;
    uint8_t in[512], out[512];
    size_t n = pgcapture__change__pack(&c, in);
    char err[128];
    bool has = false;
    EXPECT_EQ_INT(PGC_OK, capmsg_change_old_has_null(in, n, &has, err, sizeof err));
    EXPECT_TRUE(has);
    size_t m = capmsg_change_drop_old_nulls(in, n, out);
    Pgcapture__Change *got = pgcapture__change__unpack(NULL, m, out);
    EXPECT_TRUE(got != NULL);
    EXPECT_EQ_STR("doc", got->table);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, got->op);
    EXPECT_EQ_UINT(3, got->n_new_);
    EXPECT_EQ_STR("note", got->new_[1]->name);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, got->new_[1]->value_case);
    EXPECT_EQ_UINT(3, got->n_old);
    EXPECT_EQ_STR("id", got->old[0]->name);
    EXPECT_EQ_STR("empty", got->old[1]->name);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_BINARY, got->old[1]->value_case);
    EXPECT_EQ_UINT(0, got->old[1]->binary.len);
    EXPECT_EQ_STR("body", got->old[2]->name);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_TEXT, got->old[2]->value_case);
    EXPECT_EQ_STR("", got->old[2]->text);
    pgcapture__change__free_unpacked(got, NULL);
    /* Without NULLs in old (an INSERT, or none at all) nothing needs dropping. */
    c.n_old = 0;
    n = pgcapture__change__pack(&c, in);
    EXPECT_EQ_INT(PGC_OK, capmsg_change_old_has_null(in, n, &has, err, sizeof err));
    EXPECT_TRUE(!has);
    c.n_old = 2;
    c.old = op + 3;
    n = pgcapture__change__pack(&c, in);
    EXPECT_EQ_INT(PGC_OK, capmsg_change_old_has_null(in, n, &has, err, sizeof err));
    EXPECT_TRUE(!has);
    EXPECT_EQ_UINT(n, capmsg_change_drop_old_nulls(in, n, out));
    EXPECT_EQ_MEM(in, n, out, n);
    /* Garbage: a status, never a crash; what passes the check shrinks, never grows. */
    uint8_t buf[200];
    srand(11);
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand() % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(rand() % 4 ? rand() : 0x2a);
        int rc = capmsg_change_old_has_null(buf, len, &has, NULL, 0);
        EXPECT_TRUE(rc == PGC_OK || rc == PGC_ERR_MALFORMED);
        if (rc == PGC_OK && has)
            EXPECT_TRUE(capmsg_change_drop_old_nulls(buf, len, out) < len);
    }
    buf[0] = (5 << 3) | 0; /* old with a varint wire type */
    buf[1] = 1;
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, capmsg_change_old_has_null(buf, 2, &has, err, sizeof err));
}

UNIT_MAIN(UNIT_CASE(test_capmsg_wraps_a_change_with_its_checkpoint),
          UNIT_CASE(test_capmsg_reads_begin_lsn_and_other_kinds),
          UNIT_CASE(test_capmsg_and_cphandle_refuse_garbage),
          UNIT_CASE(test_capmsg_drops_only_the_null_fields_of_old))
