/* Rows as pgcapture shapes them (docs/protocol.md, "Rows and values"), against real
 * PostgreSQL, NATS, agent and gateway, on tables with REPLICA IDENTITY DEFAULT, FULL and
 * USING INDEX, each with a 100 kB value stored out of line and a NULL column:
 * - an UPDATE that leaves the TOAST value unchanged carries it in `new`, byte for byte,
 *   only on the FULL table (its old row has it); elsewhere the column is absent;
 * - NULL columns are left out of `old` on the Capture stream (per-change and batch mode),
 *   while the log keeps them for the replica applier. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/streamread.h"

#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 3200 md5 hex strings: 102,400 bytes that pglz cannot shrink, stored EXTERNAL (out of
 * line, uncompressed). id 1 has a NULL note and n = 1. */
static const char SHAPES_SQL[] =
    "CREATE TABLE r_default (id int PRIMARY KEY, n int, note text, body text);"
    "CREATE TABLE r_full (id int, n int, note text, body text);"
    "ALTER TABLE r_full REPLICA IDENTITY FULL;"
    "CREATE TABLE r_index (id int PRIMARY KEY, code int NOT NULL, n int, note text, body text);"
    "CREATE UNIQUE INDEX r_index_code ON r_index (code);"
    "ALTER TABLE r_index REPLICA IDENTITY USING INDEX r_index_code;"
    "ALTER TABLE r_default ALTER body SET STORAGE EXTERNAL;"
    "ALTER TABLE r_full ALTER body SET STORAGE EXTERNAL;"
    "ALTER TABLE r_index ALTER body SET STORAGE EXTERNAL;"
    "CREATE TABLE r_body AS SELECT string_agg(md5(i::text), '' ORDER BY i) AS body "
    "FROM generate_series(1, 3200) i;"
    "INSERT INTO r_default SELECT 1, 1, NULL, body FROM r_body;"
    "INSERT INTO r_full SELECT 1, 1, NULL, body FROM r_body;"
    "INSERT INTO r_index SELECT 1, 100, 1, NULL, body FROM r_body";

static const char *const TABLES[3] = {"r_default", "r_full", "r_index"};

/* The writes every case checks: per table (in TABLES order) an UPDATE of n that leaves body
 * unchanged, then per table a DELETE; six transactions. */
static void write_changes(PGconn *c)
{
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE %s SET n = 2", TABLES[i]);
        harness_exec(c, sql);
    }
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM %s", TABLES[i]);
        harness_exec(c, sql);
    }
}

/* The body really lives in each table's TOAST relation. */
static void expect_bodies_out_of_line(PGconn *c)
{
    for (int i = 0; i < 3; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid "
                 "WHERE c.relname = '%s' AND pg_relation_size(t.oid) >= 102400",
                 TABLES[i]);
        EXPECT_EQ_INT(1, harness_query_int(c, sql));
    }
}

/* The field names of a row, comma-separated, in order. */
static const char *names(Pgcapture__Field *const *row, size_t n, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strncat(buf, ",", len - strlen(buf) - 1);
        strncat(buf, row[i]->name, len - strlen(buf) - 1);
    }
    return buf;
}

static const Pgcapture__Field *field(Pgcapture__Field *const *row, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(row[i]->name, name) == 0)
            return row[i];
    unit_fail(__FILE__, __LINE__, "no field %s in the row", name);
}

static void expect_int4(const Pgcapture__Field *f, int32_t want)
{
    uint8_t be[4] = {(uint8_t)((uint32_t)want >> 24), (uint8_t)((uint32_t)want >> 16),
                     (uint8_t)((uint32_t)want >> 8), (uint8_t)want};
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_BINARY, f->value_case);
    EXPECT_EQ_MEM(be, 4, f->binary.data, f->binary.len);
}

static void expect_body(const Pgcapture__Field *f, const char *body)
{
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_BINARY, f->value_case);
    EXPECT_EQ_UINT(25, f->oid);
    EXPECT_EQ_MEM(body, strlen(body), f->binary.data, f->binary.len);
}

/* The six changes of write_changes as a consumer gets them, exactly. */
static void expect_capture_shapes(Pgcapture__Change *const *ch, const char *body)
{
    char buf[256];
    for (int i = 0; i < 6; i++) {
        EXPECT_EQ_STR(TABLES[i % 3], ch[i]->table);
        EXPECT_EQ_INT(i < 3 ? PGCAPTURE__CHANGE__OPERATION__UPDATE
                            : PGCAPTURE__CHANGE__OPERATION__DELETE,
                      ch[i]->op);
    }
    /* DEFAULT: the unchanged body is absent from new; no old row (the key did not change). */
    const Pgcapture__Change *u = ch[0];
    EXPECT_EQ_STR("id,n,note", names(u->new_, u->n_new_, buf, sizeof buf));
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, field(u->new_, u->n_new_, "note")->value_case);
    EXPECT_EQ_UINT(0, u->n_old);
    /* FULL: the whole new row, body filled from the old row; old without its NULL note. */
    u = ch[1];
    EXPECT_EQ_STR("id,n,note,body", names(u->new_, u->n_new_, buf, sizeof buf));
    expect_int4(field(u->new_, u->n_new_, "n"), 2);
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, field(u->new_, u->n_new_, "note")->value_case);
    expect_body(field(u->new_, u->n_new_, "body"), body);
    EXPECT_EQ_STR("id,n,body", names(u->old, u->n_old, buf, sizeof buf));
    expect_int4(field(u->old, u->n_old, "n"), 1);
    expect_body(field(u->old, u->n_old, "body"), body);
    /* USING INDEX: as DEFAULT. */
    u = ch[2];
    EXPECT_EQ_STR("id,code,n,note", names(u->new_, u->n_new_, buf, sizeof buf));
    EXPECT_EQ_UINT(0, u->n_old);
    /* DELETEs: the key for DEFAULT and INDEX; for FULL the old row without its NULL. */
    EXPECT_EQ_STR("id", names(ch[3]->old, ch[3]->n_old, buf, sizeof buf));
    EXPECT_EQ_STR("id,n,body", names(ch[4]->old, ch[4]->n_old, buf, sizeof buf));
    expect_int4(field(ch[4]->old, ch[4]->n_old, "n"), 2);
    expect_body(field(ch[4]->old, ch[4]->n_old, "body"), body);
    EXPECT_EQ_STR("code", names(ch[5]->old, ch[5]->n_old, buf, sizeof buf));
    expect_int4(field(ch[5]->old, ch[5]->n_old, "code"), 100);
    for (int i = 3; i < 6; i++)
        EXPECT_EQ_UINT(0, ch[i]->n_new_);
}

static int has_six_changes(const stream_log *log, void *arg)
{
    (void)arg;
    int n = 0;
    for (size_t i = 0; i < log->n; i++)
        n += log->entries[i].msg->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE &&
             strncmp(log->entries[i].msg->change->table, "r_", 2) == 0;
    return n >= 6;
}

/* The log keeps what the Capture stream leaves out of old: the FULL table's NULL note. */
static void expect_log_keeps_null_old_fields(const char *name, const char *body)
{
    const stream_log *log = stream_wait_for(name, 30000, has_six_changes, NULL);
    const Pgcapture__Change *ch[6];
    int n = 0;
    for (size_t i = 0; i < log->n && n < 6; i++)
        if (log->entries[i].msg->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE &&
            strncmp(log->entries[i].msg->change->table, "r_", 2) == 0)
            ch[n++] = log->entries[i].msg->change;
    char buf[256];
    EXPECT_EQ_STR("r_full", ch[1]->table);
    EXPECT_EQ_STR("id,n,note,body", names(ch[1]->new_, ch[1]->n_new_, buf, sizeof buf));
    expect_body(field(ch[1]->new_, ch[1]->n_new_, "body"), body);
    EXPECT_EQ_STR("id,n,note,body", names(ch[1]->old, ch[1]->n_old, buf, sizeof buf));
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET,
                  field(ch[1]->old, ch[1]->n_old, "note")->value_case);
    EXPECT_EQ_STR("id,n,note,body", names(ch[4]->old, ch[4]->n_old, buf, sizeof buf));
    /* DEFAULT and INDEX: absent in the log too. */
    EXPECT_EQ_STR("id,n,note", names(ch[0]->new_, ch[0]->n_new_, buf, sizeof buf));
    EXPECT_EQ_STR("id,code,n,note", names(ch[2]->new_, ch[2]->n_new_, buf, sizeof buf));
}

static void test_row_shapes_per_change_and_batch_mode_under_each_replica_identity(void)
{
    cap_env e;
    cap_setup(&e, SHAPES_SQL);
    expect_bodies_out_of_line(e.conn);
    char *body = harness_query_value(e.conn, "SELECT body FROM r_body");
    EXPECT_EQ_UINT(102400, strlen(body));
    /* Two URIs of the source, two durables: each consumer gets every change. */
    cap_client *per = cap_open(e.addr, e.uri, "^r_");
    char other[128];
    snprintf(other, sizeof other, "%s-other", e.name);
    cap_client *bat = cap_open_raw(e.addr);
    cap_send_init_batch(bat, other, "^r_", 100);
    write_changes(e.conn);

    Pgcapture__CaptureMessage *m[6];
    cap_recv_n(per, m, 6, 30000);
    Pgcapture__Change *ch[6];
    for (int i = 0; i < 6; i++)
        ch[i] = m[i]->change;
    expect_capture_shapes(ch, body);
    cap_expect_quiet(per, 500);

    int got = 0;
    long long until = harness_now_ms() + 30000;
    while (got < 6) {
        if (harness_now_ms() > until) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "batch mode: got %d changes of 6", got);
        }
        Pgcapture__CaptureMessage *b = cap_recv_batch(bat, 500);
        for (size_t i = 0; b && i < b->n_items; i++) {
            if (got == 6)
                unit_fail(__FILE__, __LINE__, "batch mode: more than 6 changes");
            ch[got++] = b->items[i]->change;
        }
    }
    expect_capture_shapes(ch, body);

    expect_log_keeps_null_old_fields(e.name, body);
}

UNIT_MAIN(UNIT_CASE(test_row_shapes_per_change_and_batch_mode_under_each_replica_identity))
