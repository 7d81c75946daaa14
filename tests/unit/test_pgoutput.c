/* The pgoutput decoder on messages built byte by byte as PostgreSQL's proto.c writes
 * them: every kind decodes, and every truncation or corruption is an error, not a crash. */
#include "harness/runner.h"

#include "codec/bigendian.h"
#include "codec/pgoutput.h"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

typedef struct msgbuf {
    uint8_t b[4096];
    size_t n;
} msgbuf;

static void u8(msgbuf *m, uint8_t v)
{
    m->b[m->n++] = v;
}

static void u16(msgbuf *m, uint16_t v)
{
    bigendian_put16(m->b + m->n, v);
    m->n += 2;
}

static void u32(msgbuf *m, uint32_t v)
{
    bigendian_put32(m->b + m->n, v);
    m->n += 4;
}

static void u64(msgbuf *m, uint64_t v)
{
    bigendian_put64(m->b + m->n, v);
    m->n += 8;
}

static void str(msgbuf *m, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(m->b + m->n, s, n);
    m->n += n;
}

static void bytes(msgbuf *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static pgoutput_decoder *decoder(int version)
{
    pgoutput_decoder *d;
    EXPECT_EQ_INT(PGC_OK, pgoutput_decoder_create(version, &d));
    unit_defer((void (*)(void *))pgoutput_decoder_destroy, d);
    return d;
}

/* Insert into relation 16390: (int4 42 binary, NULL, 'hi' text, unchanged TOAST). */
static msgbuf insert_msg(void)
{
    msgbuf m = {.n = 0};
    u8(&m, 'I');
    u32(&m, 16390);
    u8(&m, 'N');
    u16(&m, 4);
    u8(&m, 'b');
    u32(&m, 4);
    u32(&m, 42);
    u8(&m, 'n');
    u8(&m, 't');
    u32(&m, 2);
    bytes(&m, "hi", 2);
    u8(&m, 'u');
    return m;
}

static msgbuf relation_msg(uint32_t oid, const char *table)
{
    msgbuf m = {.n = 0};
    u8(&m, 'R');
    u32(&m, oid);
    str(&m, "public");
    str(&m, table);
    u8(&m, 'd');
    u16(&m, 2);
    u8(&m, 1);
    str(&m, "id");
    u32(&m, 23);
    u32(&m, 0xffffffff);
    u8(&m, 0);
    str(&m, "body");
    u32(&m, 25);
    u32(&m, 0xffffffff);
    return m;
}

static void test_decodes_begin_and_commit(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    msgbuf b = {.n = 0};
    u8(&b, 'B');
    u64(&b, 0x16B3748);
    u64(&b, 784111777123456ULL);
    u32(&b, 731);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, b.b, b.n, &out, err, sizeof err));
    EXPECT_EQ_INT('B', out.kind);
    EXPECT_EQ_UINT(0x16B3748, out.u.begin.final_lsn);
    EXPECT_EQ_INT(784111777123456LL, out.u.begin.commit_time);
    EXPECT_EQ_UINT(731, out.u.begin.xid);
    msgbuf c = {.n = 0};
    u8(&c, 'C');
    u8(&c, 0);
    u64(&c, 0x16B3748);
    u64(&c, 0x16B3780);
    u64(&c, 784111777123456ULL);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, c.b, c.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(0x16B3748, out.u.commit.commit_lsn);
    EXPECT_EQ_UINT(0x16B3780, out.u.commit.end_lsn);
}

static void test_decodes_relation_with_columns(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    msgbuf r = relation_msg(16390, "orders");
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, r.b, r.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(16390, out.u.relation.oid);
    EXPECT_EQ_STR("public", out.u.relation.nspname);
    EXPECT_EQ_STR("orders", out.u.relation.relname);
    EXPECT_EQ_INT('d', out.u.relation.replident);
    EXPECT_EQ_UINT(2, out.u.relation.ncols);
    EXPECT_EQ_STR("id", out.u.relation.cols[0].name);
    EXPECT_EQ_UINT(1, out.u.relation.cols[0].flags);
    EXPECT_EQ_UINT(23, out.u.relation.cols[0].type_oid);
    EXPECT_EQ_INT(-1, out.u.relation.cols[0].type_mod);
    EXPECT_EQ_STR("body", out.u.relation.cols[1].name);
}

static void test_decodes_insert_with_null_text_binary_and_unchanged_columns(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    msgbuf m = insert_msg();
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, m.b, m.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(16390, out.u.insert.relid);
    const pgoutput_tuple *t = &out.u.insert.new_tuple;
    EXPECT_EQ_UINT(4, t->ncols);
    EXPECT_EQ_INT('b', t->values[0].kind);
    static const uint8_t v42[] = {0, 0, 0, 42};
    EXPECT_EQ_MEM(v42, 4, t->values[0].data, t->values[0].len);
    EXPECT_EQ_INT('n', t->values[1].kind);
    EXPECT_EQ_INT('t', t->values[2].kind);
    EXPECT_EQ_MEM("hi", 2, t->values[2].data, t->values[2].len);
    EXPECT_EQ_INT('u', t->values[3].kind);
}

static void test_decodes_update_with_key_old_and_without_old_tuple(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    const char kinds[] = {'K', 'O', 0};
    for (int k = 0; k < 3; k++) {
        msgbuf m = {.n = 0};
        u8(&m, 'U');
        u32(&m, 7);
        if (kinds[k]) {
            u8(&m, (uint8_t)kinds[k]);
            u16(&m, 1);
            u8(&m, 'b');
            u32(&m, 3);
            bytes(&m, "\0a\0", 3); /* binary values may hold zero bytes */
        }
        u8(&m, 'N');
        u16(&m, 2);
        u8(&m, 'b');
        u32(&m, 1);
        u8(&m, 'z');
        u8(&m, 'n');
        EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, m.b, m.n, &out, err, sizeof err));
        EXPECT_EQ_INT(kinds[k], out.u.update.old_kind);
        EXPECT_EQ_UINT(2, out.u.update.new_tuple.ncols);
        EXPECT_EQ_MEM("z", 1, out.u.update.new_tuple.values[0].data,
                      out.u.update.new_tuple.values[0].len);
        if (kinds[k]) {
            EXPECT_EQ_UINT(1, out.u.update.old_tuple.ncols);
            EXPECT_EQ_MEM("\0a\0", 3, out.u.update.old_tuple.values[0].data,
                          out.u.update.old_tuple.values[0].len);
        }
    }
}

static void test_decodes_delete_truncate_origin_type_and_message(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    msgbuf del = {.n = 0};
    u8(&del, 'D');
    u32(&del, 9);
    u8(&del, 'O');
    u16(&del, 1);
    u8(&del, 'n');
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, del.b, del.n, &out, err, sizeof err));
    EXPECT_EQ_INT('O', out.u.del.old_kind);
    EXPECT_EQ_UINT(9, out.u.del.relid);

    msgbuf tr = {.n = 0};
    u8(&tr, 'T');
    u32(&tr, 2);
    u8(&tr, 3);
    u32(&tr, 100);
    u32(&tr, 200);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, tr.b, tr.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(2, out.u.truncate.nrels);
    EXPECT_EQ_UINT(3, out.u.truncate.options);
    EXPECT_EQ_UINT(200, out.u.truncate.relids[1]);

    msgbuf o = {.n = 0};
    u8(&o, 'O');
    u64(&o, 55);
    str(&o, "upstream");
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, o.b, o.n, &out, err, sizeof err));
    EXPECT_EQ_STR("upstream", out.u.origin.name);

    msgbuf y = {.n = 0};
    u8(&y, 'Y');
    u32(&y, 16400);
    str(&y, "public");
    str(&y, "mood");
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, y.b, y.n, &out, err, sizeof err));
    EXPECT_EQ_STR("mood", out.u.type.typname);

    for (int tx = 0; tx <= 1; tx++) {
        msgbuf mm = {.n = 0};
        u8(&mm, 'M');
        u8(&mm, (uint8_t)tx);
        u64(&mm, 77);
        str(&mm, "app");
        u32(&mm, 3);
        bytes(&mm, "x\0y", 3);
        EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, mm.b, mm.n, &out, err, sizeof err));
        EXPECT_EQ_INT(tx, out.u.message.transactional);
        EXPECT_EQ_STR("app", out.u.message.prefix);
        EXPECT_EQ_MEM("x\0y", 3, out.u.message.content, out.u.message.len);
    }
}

static void test_streamed_messages_carry_an_xid_in_version_2(void)
{
    pgoutput_decoder *d = decoder(2);
    pgoutput_msg out;
    char err[256];
    msgbuf s = {.n = 0};
    u8(&s, 'S');
    u32(&s, 900);
    u8(&s, 1);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, s.b, s.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(900, out.u.stream_start.xid);
    EXPECT_TRUE(out.u.stream_start.first_segment);
    msgbuf i = {.n = 0};
    u8(&i, 'I');
    u32(&i, 900); /* xid inside the stream block */
    u32(&i, 16390);
    u8(&i, 'N');
    u16(&i, 0);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, i.b, i.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(900, out.xid);
    EXPECT_EQ_UINT(16390, out.u.insert.relid);
    msgbuf e = {.n = 0};
    u8(&e, 'E');
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, e.b, e.n, &out, err, sizeof err));
    /* Outside the block the same Insert has no xid. */
    msgbuf plain = insert_msg();
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, plain.b, plain.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(0, out.xid);
    msgbuf c = {.n = 0};
    u8(&c, 'c');
    u32(&c, 900);
    u8(&c, 0);
    u64(&c, 1);
    u64(&c, 2);
    u64(&c, 3);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, c.b, c.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(2, out.u.stream_commit.end_lsn);
    msgbuf a = {.n = 0};
    u8(&a, 'A');
    u32(&a, 900);
    u32(&a, 901);
    EXPECT_EQ_INT(PGC_OK, pgoutput_decode(d, a.b, a.n, &out, err, sizeof err));
    EXPECT_EQ_UINT(901, out.u.stream_abort.subxid);
    /* A version 1 decoder refuses stream messages. */
    pgoutput_decoder *v1 = decoder(1);
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED, pgoutput_decode(v1, s.b, s.n, &out, err, sizeof err));
}

/* Copies into an exact-size allocation so ASan catches any read past the end. */
static int decode_exact(pgoutput_decoder *d, const uint8_t *b, size_t n, char *err, size_t len)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, b, n);
    pgoutput_msg out;
    int rc = pgoutput_decode(d, copy, n, &out, err, len);
    free(copy);
    return rc;
}

static void test_every_proper_prefix_of_every_message_is_truncated(void)
{
    pgoutput_decoder *d = decoder(1);
    char err[256];
    msgbuf msgs[3] = {insert_msg(), relation_msg(1, "t"), {.n = 0}};
    u8(&msgs[2], 'U');
    u32(&msgs[2], 7);
    u8(&msgs[2], 'K');
    u16(&msgs[2], 1);
    u8(&msgs[2], 't');
    u32(&msgs[2], 2);
    bytes(&msgs[2], "ab", 2);
    u8(&msgs[2], 'N');
    u16(&msgs[2], 1);
    u8(&msgs[2], 'u');
    for (int k = 0; k < 3; k++) {
        for (size_t n = 1; n < msgs[k].n; n++) {
            int rc = decode_exact(d, msgs[k].b, n, err, sizeof err);
            if (rc != PGC_ERR_TRUNCATED)
                unit_fail(__FILE__, __LINE__, "message %d cut at %zu: status %d (%s)", k, n, rc,
                          err);
        }
        EXPECT_EQ_INT(PGC_OK, decode_exact(d, msgs[k].b, msgs[k].n, err, sizeof err));
    }
}

static void test_trailing_bytes_bad_tags_and_unknown_kinds_are_refused(void)
{
    pgoutput_decoder *d = decoder(1);
    pgoutput_msg out;
    char err[256];
    msgbuf m = insert_msg();
    u8(&m, 0);
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgoutput_decode(d, m.b, m.n, &out, err, sizeof err));
    EXPECT_TRUE(strstr(err, "trailing") != NULL);
    msgbuf bad_col = insert_msg();
    bad_col.b[8] = 'x'; /* first column kind */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgoutput_decode(d, bad_col.b, bad_col.n, &out, err, sizeof err));
    EXPECT_TRUE(strstr(err, "0x78") != NULL);
    msgbuf bad_tag = insert_msg();
    bad_tag.b[5] = 'Q';
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgoutput_decode(d, bad_tag.b, bad_tag.n, &out, err, sizeof err));
    static const uint8_t unknown[] = {'Z', 1, 2};
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED,
                  pgoutput_decode(d, unknown, sizeof unknown, &out, err, sizeof err));
    EXPECT_TRUE(strstr(err, "0x5a") != NULL);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgoutput_decode(d, unknown, 0, &out, err, sizeof err));
    msgbuf neg = {.n = 0};
    u8(&neg, 'I');
    u32(&neg, 1);
    u8(&neg, 'N');
    u16(&neg, 1);
    u8(&neg, 'b');
    u32(&neg, 0xfffffffe);
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgoutput_decode(d, neg.b, neg.n, &out, err, sizeof err));
    msgbuf wide = {.n = 0};
    u8(&wide, 'I');
    u32(&wide, 1);
    u8(&wide, 'N');
    u16(&wide, 5000);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, pgoutput_decode(d, wide.b, wide.n, &out, err, sizeof err));
    msgbuf huge_truncate = {.n = 0};
    u8(&huge_truncate, 'T');
    u32(&huge_truncate, 0x7fffffff);
    u8(&huge_truncate, 0);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED,
                  pgoutput_decode(d, huge_truncate.b, huge_truncate.n, &out, err, sizeof err));
    msgbuf no_nul = {.n = 0};
    u8(&no_nul, 'O');
    u64(&no_nul, 1);
    bytes(&no_nul, "abc", 3);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED, pgoutput_decode(d, no_nul.b, no_nul.n, &out, err, sizeof err));
    pgoutput_decoder *none;
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgoutput_decoder_create(3, &none));
}

UNIT_MAIN(UNIT_CASE(test_decodes_begin_and_commit), UNIT_CASE(test_decodes_relation_with_columns),
          UNIT_CASE(test_decodes_insert_with_null_text_binary_and_unchanged_columns),
          UNIT_CASE(test_decodes_update_with_key_old_and_without_old_tuple),
          UNIT_CASE(test_decodes_delete_truncate_origin_type_and_message),
          UNIT_CASE(test_streamed_messages_carry_an_xid_in_version_2),
          UNIT_CASE(test_every_proper_prefix_of_every_message_is_truncated),
          UNIT_CASE(test_trailing_bytes_bad_tags_and_unknown_kinds_are_refused))
