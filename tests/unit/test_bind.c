/* Binding a change's row to a C struct: each C type from its column types, NULL flags,
 * absent (unchanged TOAST) columns marked not present and left untouched, and refusals
 * for a type that cannot go into the member or a string that does not fit. */
#include "harness/runner.h"

#include "pgcapture.h"
#include "pgcapture.pb-c.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct user_row {
    int64_t id;
    char name[8];
    char *bio;
    bool bio_null;
    double score;
    int64_t created;
    pgc_bytes avatar;
    int16_t small;
    char amount[32];
} user_row;

static const pgc_bind_column user_cols[] = {
    {"id", PGC_CTYPE_INT64, offsetof(user_row, id), 0, PGC_BIND_NO_NULL},
    {"name", PGC_CTYPE_STRING, offsetof(user_row, name), sizeof(((user_row *)0)->name),
     PGC_BIND_NO_NULL},
    {"bio", PGC_CTYPE_STRING_DUP, offsetof(user_row, bio), 0, offsetof(user_row, bio_null)},
    {"score", PGC_CTYPE_DOUBLE, offsetof(user_row, score), 0, PGC_BIND_NO_NULL},
    {"created", PGC_CTYPE_TIMESTAMP, offsetof(user_row, created), 0, PGC_BIND_NO_NULL},
    {"avatar", PGC_CTYPE_BYTES, offsetof(user_row, avatar), 0, PGC_BIND_NO_NULL},
    {"small", PGC_CTYPE_INT16, offsetof(user_row, small), 0, PGC_BIND_NO_NULL},
    {"amount", PGC_CTYPE_STRING, offsetof(user_row, amount), 32, PGC_BIND_NO_NULL},
};
#define N_COLS (sizeof user_cols / sizeof user_cols[0])

static Pgcapture__Field field(const char *name, uint32_t oid, const void *data, size_t len)
{
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    f.name = (char *)name;
    f.oid = oid;
    if (data) {
        f.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
        f.binary.data = (uint8_t *)data;
        f.binary.len = len;
    }
    return f;
}

static void destroy_change(void *c)
{
    pgc_change_destroy(c);
}

static pgc_change *make_change(Pgcapture__Field *fields, size_t n)
{
    Pgcapture__Field *ptrs[16];
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &fields[i];
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.schema = "public";
    ch.table = "users";
    ch.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    ch.n_new_ = n;
    ch.new_ = ptrs;
    Pgcapture__CaptureMessage m = PGCAPTURE__CAPTURE_MESSAGE__INIT;
    m.change = &ch;
    uint8_t buf[1024];
    size_t len = pgcapture__capture_message__pack(&m, buf);
    pgc_change *c;
    EXPECT_EQ_INT(PGC_OK, pgc_change_parse(buf, len, &c, NULL, 0));
    unit_defer(destroy_change, c);
    return c;
}

static void free_row(void *p)
{
    user_row *r = p;
    pgc_memory_free(r->bio);
    pgc_memory_free(r->avatar.data);
    free(r);
}

/* A zeroed row on the heap (its cleanup runs after the case's stack is gone). */
static user_row *new_row(void)
{
    user_row *r = calloc(1, sizeof *r);
    EXPECT_TRUE(r != NULL);
    unit_defer(free_row, r);
    return r;
}

static const uint8_t id8[8] = {0, 0, 0, 0, 0, 0, 0x01, 0x00};          /* 256 */
static const uint8_t score4[4] = {0x3f, 0xc0, 0, 0};                   /* float4 1.5 */
static const uint8_t ts8[8] = {0, 0, 0, 0, 0, 0x0f, 0x42, 0x40};       /* 1 s after 2000 */
static const uint8_t small2[2] = {0xff, 0xfe};                         /* -2 */
static const uint8_t amount_num[] = {0, 1, 0, 0, 0x40, 0, 0, 2, 0, 7}; /* -7.00 */

static void test_bind_fills_members_and_marks_absent_columns(void)
{
    Pgcapture__Field f[] = {
        field("id", PGC_OID_INT8, id8, 8),
        field("name", PGC_OID_TEXT, "ann", 3),
        field("bio", PGC_OID_TEXT, NULL, 0),
        field("score", PGC_OID_FLOAT4, score4, 4),
        field("created", PGC_OID_TIMESTAMPTZ, ts8, 8),
        field("small", PGC_OID_INT2, small2, 2),
        field("amount", PGC_OID_NUMERIC, amount_num, sizeof amount_num),
    };
    /* "avatar" is absent: an unchanged TOAST value. */
    pgc_change *c = make_change(f, sizeof f / sizeof f[0]);
    user_row *r = new_row();
    r->avatar.len = 12345; /* must stay untouched */
    bool present[N_COLS];
    char err[256] = "";
    int rc = pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, present, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "pgc_change_bind: %d %s", rc, err);
    EXPECT_EQ_INT(256, r->id);
    EXPECT_EQ_STR("ann", r->name);
    EXPECT_TRUE(r->bio == NULL && r->bio_null);
    EXPECT_TRUE(r->score == 1.5);
    EXPECT_EQ_INT(1000000, r->created);
    EXPECT_EQ_INT(-2, r->small);
    EXPECT_EQ_STR("-7.00", r->amount);
    EXPECT_EQ_UINT(12345, r->avatar.len);
    EXPECT_TRUE(present[0] && present[1] && present[2] && present[3] && present[4]);
    EXPECT_TRUE(!present[5]);
    EXPECT_TRUE(present[6] && present[7]);
}

static void test_bind_refuses_wrong_types_and_overlong_strings(void)
{
    Pgcapture__Field f1[] = {field("id", PGC_OID_TEXT, "x", 1)};
    pgc_change *c = make_change(f1, 1);
    user_row *r = new_row();
    char err[256] = "";
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "column id") != NULL);
    Pgcapture__Field f2[] = {field("name", PGC_OID_TEXT, "longer than 8", 13)};
    c = make_change(f2, 1);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE,
                  pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, err, sizeof err));
    Pgcapture__Field f3[] = {field("small", PGC_OID_INT4, "\0\0\0\1", 4)};
    c = make_change(f3, 1);
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, err, sizeof err));
    Pgcapture__Field f4[] = {field("id", PGC_OID_INT8, id8, 7)};
    c = make_change(f4, 1);
    EXPECT_EQ_INT(PGC_ERR_TRUNCATED,
                  pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, err, sizeof err));
}

static void test_bind_replaces_and_frees_previous_heap_values(void)
{
    Pgcapture__Field f[] = {field("bio", PGC_OID_TEXT, "one", 3),
                            field("avatar", PGC_OID_BYTEA, "\x00\x01", 2)};
    pgc_change *c = make_change(f, 2);
    user_row *r = new_row();
    EXPECT_EQ_INT(PGC_OK, pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, NULL, 0));
    EXPECT_EQ_STR("one", r->bio);
    EXPECT_TRUE(!r->bio_null);
    EXPECT_EQ_MEM("\x00\x01", 2, r->avatar.data, r->avatar.len);
    Pgcapture__Field g[] = {field("bio", PGC_OID_TEXT, "two", 3),
                            field("avatar", PGC_OID_BYTEA, "", 0)};
    c = make_change(g, 2);
    EXPECT_EQ_INT(PGC_OK, pgc_change_bind(c, PGC_ROW_NEW, user_cols, N_COLS, r, NULL, NULL, 0));
    EXPECT_EQ_STR("two", r->bio);
    EXPECT_EQ_UINT(0, r->avatar.len);
    EXPECT_TRUE(r->avatar.data != NULL);
}

UNIT_MAIN(UNIT_CASE(test_bind_fills_members_and_marks_absent_columns),
          UNIT_CASE(test_bind_refuses_wrong_types_and_overlong_strings),
          UNIT_CASE(test_bind_replaces_and_frees_previous_heap_values))
