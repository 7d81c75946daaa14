/* JSON of changes: shape, escaping, NULL versus absent (unchanged TOAST), text-format
 * fields, and a field of an unknown type failing with the column named. Values themselves
 * are compared with the server's to_json in tests/integration/test_typedecode_pg.c. */
#include "harness/runner.h"

#include "client/render.h"
#include "pgcapture.h"
#include "pgcapture.pb-c.h"

#include <stdlib.h>
#include <string.h>

static void free_ptr(void *p)
{
    pgc_memory_free(p);
}

static void destroy_change(void *c)
{
    pgc_change_destroy(c);
}

/* Packs a CaptureMessage and parses it back the way a consumer receives it. */
static pgc_change *parse(Pgcapture__Change *ch, uint64_t lsn, uint32_t seq)
{
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = lsn;
    cp.seq = seq;
    Pgcapture__CaptureMessage m = PGCAPTURE__CAPTURE_MESSAGE__INIT;
    m.checkpoint = &cp;
    m.change = ch;
    size_t n = pgcapture__capture_message__get_packed_size(&m);
    uint8_t *buf = malloc(n);
    EXPECT_TRUE(buf != NULL);
    pgcapture__capture_message__pack(&m, buf);
    pgc_change *c = NULL;
    char err[128];
    int rc = pgc_change_parse(buf, n, &c, err, sizeof err);
    free(buf);
    EXPECT_EQ_INT(PGC_OK, rc);
    unit_defer(destroy_change, c);
    return c;
}

static char *json_of(const pgc_change *c)
{
    char *out = NULL, err[256];
    int rc = pgc_change_render_json(c, &out, NULL, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "pgc_change_render_json: %d: %s", rc, err);
    unit_defer(free_ptr, out);
    return out;
}

static void test_change_json_has_every_part_and_escapes_strings(void)
{
    uint8_t id[4] = {0, 0, 0, 42};
    Pgcapture__Field f_id = PGCAPTURE__FIELD__INIT, f_name = PGCAPTURE__FIELD__INIT,
                     f_null = PGCAPTURE__FIELD__INIT, f_txt = PGCAPTURE__FIELD__INIT;
    f_id.name = "id";
    f_id.oid = PGC_OID_INT4;
    f_id.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f_id.binary.data = id;
    f_id.binary.len = 4;
    f_name.name = "na\"me";
    f_name.oid = PGC_OID_TEXT;
    f_name.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f_name.binary.data = (uint8_t *)"a\"b\\c\n\x01\xc3\xa9";
    f_name.binary.len = 9;
    f_null.name = "gone";
    f_null.oid = PGC_OID_TEXT;
    f_txt.name = "money";
    f_txt.oid = 790;
    f_txt.value_case = PGCAPTURE__FIELD__VALUE_TEXT;
    f_txt.text = "$1.50";
    Pgcapture__Field *new_fields[] = {&f_id, &f_name, &f_null, &f_txt};
    Pgcapture__Field *old_fields[] = {&f_id};
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    ch.schema = "public";
    ch.table = "t\tab";
    ch.n_new_ = 4;
    ch.new_ = new_fields;
    ch.n_old = 1;
    ch.old = old_fields;
    pgc_change *c = parse(&ch, UINT64_C(0x1000000AB), 7);
    EXPECT_EQ_STR("{\"schema\":\"public\",\"table\":\"t\\tab\",\"op\":\"UPDATE\",\"checkpoint\":"
                  "{\"lsn\":\"1/AB\",\"seq\":7,\"data\":\"\"},\"new\":{\"id\":42,\"na\\\"me\":"
                  "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"gone\":null,\"money\":\"$1.50\"},"
                  "\"old\":{\"id\":42}}",
                  json_of(c));
}

static void test_absent_column_is_not_null_and_rows_without_fields_are_left_out(void)
{
    Pgcapture__Field f_null = PGCAPTURE__FIELD__INIT;
    f_null.name = "n";
    f_null.oid = PGC_OID_INT4;
    Pgcapture__Field *fields[] = {&f_null};
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__DELETE;
    ch.schema = "s";
    ch.table = "t";
    ch.n_old = 1;
    ch.old = fields;
    pgc_change *c = parse(&ch, 1, 1);
    EXPECT_EQ_INT(PGC_OP_DELETE, pgc_change_get_op(c));
    EXPECT_EQ_UINT(0, pgc_change_get_field_count(c, PGC_ROW_NEW));
    const pgc_field *f = pgc_change_find_field(c, PGC_ROW_OLD, "n");
    EXPECT_TRUE(f != NULL);
    EXPECT_EQ_INT(PGC_VALUE_KIND_NULL, pgc_field_get_kind(f));
    size_t len = 99;
    EXPECT_TRUE(pgc_field_get_data(f, &len) == NULL && len == 0);
    EXPECT_TRUE(pgc_change_find_field(c, PGC_ROW_OLD, "toasted") == NULL);
    EXPECT_TRUE(pgc_change_find_field(c, PGC_ROW_NEW, "n") == NULL);
    EXPECT_EQ_STR("{\"schema\":\"s\",\"table\":\"t\",\"op\":\"DELETE\",\"checkpoint\":{\"lsn\":"
                  "\"0/1\",\"seq\":1,\"data\":\"\"},\"old\":{\"n\":null}}",
                  json_of(c));
}

static void test_unsupported_binary_field_fails_naming_the_column(void)
{
    uint8_t v[8] = {0};
    Pgcapture__Field f = PGCAPTURE__FIELD__INIT;
    f.name = "price";
    f.oid = 790;
    f.value_case = PGCAPTURE__FIELD__VALUE_BINARY;
    f.binary.data = v;
    f.binary.len = 8;
    Pgcapture__Field *fields[] = {&f};
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__INSERT;
    ch.schema = "s";
    ch.table = "t";
    ch.n_new_ = 1;
    ch.new_ = fields;
    pgc_change *c = parse(&ch, 1, 1);
    char *out = NULL, err[256] = "";
    EXPECT_EQ_INT(PGC_ERR_UNSUPPORTED, pgc_change_render_json(c, &out, NULL, err, sizeof err));
    EXPECT_TRUE(out == NULL);
    EXPECT_TRUE(strstr(err, "price") && strstr(err, "790"));
}

static void test_malformed_capture_messages_are_refused(void)
{
    pgc_change *c = NULL;
    char err[128];
    const uint8_t garbage[] = {0x0a, 0xff, 0xff};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  pgc_change_parse(garbage, sizeof garbage, &c, err, sizeof err));
    EXPECT_TRUE(c == NULL);
    /* A message with only a checkpoint has no change. */
    const uint8_t no_change[] = {0x0a, 0x02, 0x08, 0x01};
    EXPECT_EQ_INT(PGC_ERR_INVALID,
                  pgc_change_parse(no_change, sizeof no_change, &c, err, sizeof err));
    /* op 9 is no operation of the protocol (protobuf-c keeps unknown enum values). */
    const uint8_t bad_op[] = {0x12, 0x02, 0x08, 0x09};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgc_change_parse(bad_op, sizeof bad_op, &c, err, sizeof err));
    pgc_change_destroy(NULL);
}

static void test_checkpoint_data_is_rendered_as_base64(void)
{
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.op = PGCAPTURE__CHANGE__OPERATION__TRUNCATE;
    ch.schema = "s";
    ch.table = "t";
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = 5;
    uint8_t d[4] = {0xfb, 0xff, 0x00, 0x01};
    cp.data.data = d;
    cp.data.len = 4;
    Pgcapture__CaptureMessage m = PGCAPTURE__CAPTURE_MESSAGE__INIT;
    m.checkpoint = &cp;
    m.change = &ch;
    uint8_t buf[64];
    size_t n = pgcapture__capture_message__pack(&m, buf);
    pgc_change *c = NULL;
    EXPECT_EQ_INT(PGC_OK, pgc_change_parse(buf, n, &c, NULL, 0));
    unit_defer(destroy_change, c);
    size_t dl;
    const uint8_t *dp = pgc_change_get_checkpoint_data(c, &dl);
    EXPECT_EQ_MEM(d, 4, dp, dl);
    EXPECT_TRUE(strstr(json_of(c), "\"op\":\"TRUNCATE\",\"checkpoint\":{\"lsn\":\"0/5\",\"seq\":0,"
                                   "\"data\":\"+/8AAQ==\"}}") != NULL);
}

static void test_json_values_are_checked_before_they_are_embedded(void)
{
    static const char *const good[] = {
        "{}",
        "[]",
        " {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"]} ",
        "\"s\"",
        "0",
        "-0.5E-7",
        "{\"a\":{\"b\":[[],{}]}}",
    };
    static const char *const bad[] = {
        "",      " ",           "{",     "[1,]", "{\"a\"}",  "{\"a\":1,}", "01",
        "1.",    "\"\\x\"",     "[1] 2", "tru",  "\"a\tb\"", "{1:2}",      "]",
        "[1 2]", "\"\\u12g4\"", "nul",   "-",    "1e",       "{\"a\":}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (json_check(good[i], strlen(good[i]), NULL, 0) != PGC_OK)
            unit_fail(__FILE__, __LINE__, "valid JSON refused: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (json_check(bad[i], strlen(bad[i]), NULL, 0) != PGC_ERR_MALFORMED)
            unit_fail(__FILE__, __LINE__, "invalid JSON accepted: %s", bad[i]);
    /* Deep nesting costs heap, not stack. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth);
    EXPECT_TRUE(deep != NULL);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    int rc = json_check(deep, 2 * depth, NULL, 0);
    int rc_open = json_check(deep, 2 * depth - 1, NULL, 0);
    free(deep);
    EXPECT_EQ_INT(PGC_OK, rc);
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, rc_open);
    /* A json field holding garbage fails the rendering instead of breaking the line. */
    char *out = NULL;
    EXPECT_EQ_INT(PGC_ERR_MALFORMED, pgc_value_render_json(PGC_OID_JSON, (const uint8_t *)"{\"a\":",
                                                           5, &out, NULL, NULL, 0));
    EXPECT_TRUE(out == NULL);
}

UNIT_MAIN(UNIT_CASE(test_json_values_are_checked_before_they_are_embedded),
          UNIT_CASE(test_change_json_has_every_part_and_escapes_strings),
          UNIT_CASE(test_absent_column_is_not_null_and_rows_without_fields_are_left_out),
          UNIT_CASE(test_unsupported_binary_field_fails_naming_the_column),
          UNIT_CASE(test_malformed_capture_messages_are_refused),
          UNIT_CASE(test_checkpoint_data_is_rendered_as_base64))
