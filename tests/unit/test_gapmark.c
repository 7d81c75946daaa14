/* The gap marker: its three Messages sit strictly between the log's last position and the
 * WAL position a new slot starts from, carry what is missing as text fields, and survive a
 * protobuf round trip; the gateway's raw path recognises its Change by schema and table. */
#include "codec/capmsg.h"
#include "codec/gapmark.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"
#include "harness/runner.h"

#include <string.h>

static const char *text_of(const Pgcapture__Change *c, const char *name, uint32_t oid)
{
    for (size_t i = 0; i < c->n_new_; i++)
        if (!strcmp(c->new_[i]->name, name) && c->new_[i]->oid == oid &&
            c->new_[i]->value_case == PGCAPTURE__FIELD__VALUE_TEXT)
            return c->new_[i]->text;
    return "(missing)";
}

static void test_gapmark_sits_between_the_log_and_the_new_slot_and_says_what_is_missing(void)
{
    gapmark g;
    char err[256];
    log_pos last = {0x1945000, 7};
    /* 2026-11-28 00:19:57.026 UTC */
    int64_t us = 1795825197026000LL;
    EXPECT_EQ_INT(PGC_OK, gapmark_build(&g, last, 0x1945190, true, us, err, sizeof err));
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_UINT(0x194518F, g.pos[i].lsn);
        EXPECT_EQ_UINT((uint64_t)i, g.pos[i].seq);
    }
    EXPECT_TRUE(logpos_cmp(last, g.pos[0]) < 0);
    EXPECT_TRUE(logpos_cmp(g.pos[2], (log_pos){0x1945190, 0}) < 0);
    uint8_t buf[1024];
    size_t n = pgcapture__message__pack(&g.msg[1], buf);
    Pgcapture__Message *m = pgcapture__message__unpack(NULL, n, buf);
    EXPECT_TRUE(m != NULL && m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE);
    const Pgcapture__Change *c = m->change;
    EXPECT_EQ_STR("pgcapture", c->schema);
    EXPECT_EQ_STR("gaps", c->table);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, c->op);
    EXPECT_EQ_STR("1945000/7", text_of(c, "after", 25));
    EXPECT_EQ_STR("0/1945190", text_of(c, "resume_lsn", 3220));
    EXPECT_EQ_STR("slot invalidated", text_of(c, "reason", 25));
    EXPECT_EQ_STR("2026-11-28 00:19:57.026000+00", text_of(c, "detected_at", 1184));
    pgcapture__message__free_unpacked(m, NULL);
    EXPECT_EQ_UINT(0x194518F, g.msg[0].begin->final_lsn);
    EXPECT_EQ_UINT(0x194518F, g.msg[2].commit->commit_lsn);
    EXPECT_EQ_UINT(0x1945190, g.msg[2].commit->end_lsn);
    EXPECT_EQ_INT(PGC_OK, gapmark_build(&g, last, 0x1945190, false, us, err, sizeof err));
    EXPECT_EQ_STR("slot lost", g.change.new_[2]->text);
}

static void test_gapmark_refuses_a_wal_position_not_after_the_log(void)
{
    gapmark g;
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  gapmark_build(&g, (log_pos){0x2000, 3}, 0x2001, false, 0, err, sizeof err));
    EXPECT_TRUE(strstr(err, "2000/3") != NULL);
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  gapmark_build(&g, (log_pos){0, 0}, 0, false, 0, err, sizeof err));
}

static void test_gapmark_is_recognised_by_schema_and_table_from_raw_bytes(void)
{
    gapmark g;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, gapmark_build(&g, (log_pos){16, 2}, 4096, false, 0, err, sizeof err));
    uint8_t buf[1024];
    size_t n = pgcapture__change__pack(&g.change, buf);
    const uint8_t *sc, *t;
    size_t sl, tl;
    EXPECT_EQ_INT(PGC_OK, capmsg_change_schema(buf, n, &sc, &sl, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, capmsg_change_table(buf, n, &t, &tl, err, sizeof err));
    EXPECT_TRUE(gapmark_is_marker((const char *)sc, sl, (const char *)t, tl));
    EXPECT_TRUE(!gapmark_is_marker("pgcapture", 9, "ddl_logs", 8));
    EXPECT_TRUE(!gapmark_is_marker("public", 6, "gaps", 4));
    EXPECT_TRUE(!gapmark_is_marker("pgcapture", 9, "gap", 3));
}

UNIT_MAIN(UNIT_CASE(test_gapmark_sits_between_the_log_and_the_new_slot_and_says_what_is_missing),
          UNIT_CASE(test_gapmark_refuses_a_wal_position_not_after_the_log),
          UNIT_CASE(test_gapmark_is_recognised_by_schema_and_table_from_raw_bytes))
