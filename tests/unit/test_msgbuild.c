/* The protocol Message builder's row shapes (docs/protocol.md, "Rows and values"): an
 * unchanged TOAST value of a REPLICA IDENTITY FULL table is filled from the old row when it
 * has one, and left out otherwise and under every other identity; NULLs stay fields without
 * a value in both rows; a key tuple keeps only the key columns. */
#include "harness/runner.h"

#include "codec/msgbuild.h"
#include "codec/relcache.h"
#include "core/status.h"

#include <string.h>

static const pgoutput_column COLS[4] = {
    {1, "id", 23, -1}, {0, "n", 23, -1}, {0, "body", 25, -1}, {0, "note", 25, -1}};

static const relcache_entry *entry(relcache **c, char replident)
{
    EXPECT_EQ_INT(PGC_OK, relcache_create(c));
    unit_defer((void (*)(void *))relcache_destroy, *c);
    pgoutput_msg m;
    memset(&m, 0, sizeof m);
    m.kind = 'R';
    m.u.relation.oid = 16400;
    m.u.relation.nspname = "public";
    m.u.relation.relname = "doc";
    m.u.relation.replident = replident;
    m.u.relation.ncols = 4;
    m.u.relation.cols = COLS;
    const relcache_entry *e;
    char err[128];
    EXPECT_EQ_INT(PGC_OK, relcache_put(*c, &m, &e, err, sizeof err));
    return e;
}

static msgbuild *builder(void)
{
    msgbuild *b;
    EXPECT_EQ_INT(PGC_OK, msgbuild_create(&b));
    unit_defer((void (*)(void *))msgbuild_destroy, b);
    return b;
}

static const Pgcapture__Field *find(Pgcapture__Field *const *row, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(row[i]->name, name) == 0)
            return row[i];
    unit_fail(__FILE__, __LINE__, "no field %s in the row", name);
}

/* The names of a row's fields, comma-separated, in order. */
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

#define ID                                                                                         \
    {                                                                                              \
        'b', 4, (const uint8_t *)"\0\0\0\x01"                                                      \
    }
#define N1                                                                                         \
    {                                                                                              \
        'b', 4, (const uint8_t *)"\0\0\0\x01"                                                      \
    }
#define N2                                                                                         \
    {                                                                                              \
        'b', 4, (const uint8_t *)"\0\0\0\x02"                                                      \
    }
#define BODY                                                                                       \
    {                                                                                              \
        'b', 9, (const uint8_t *)"long body"                                                       \
    }
#define UNCHANGED                                                                                  \
    {                                                                                              \
        'u', 0, NULL                                                                               \
    }
#define NUL                                                                                        \
    {                                                                                              \
        'n', 0, NULL                                                                               \
    }

static pgoutput_msg update(char old_kind, const pgoutput_value *old, const pgoutput_value *new_)
{
    pgoutput_msg m;
    memset(&m, 0, sizeof m);
    m.kind = 'U';
    m.u.update.relid = 16400;
    m.u.update.old_kind = old_kind;
    m.u.update.old_tuple = (pgoutput_tuple){old ? 4 : 0, old};
    m.u.update.new_tuple = (pgoutput_tuple){4, new_};
    return m;
}

static void test_msgbuild_fills_unchanged_toast_from_the_old_row_with_identity_full(void)
{
    relcache *c;
    const relcache_entry *rel = entry(&c, 'f');
    msgbuild *b = builder();
    const pgoutput_value old[4] = {ID, N1, BODY, NUL};
    const pgoutput_value new_[4] = {ID, N2, UNCHANGED, NUL};
    pgoutput_msg m = update('O', old, new_);
    const Pgcapture__Message *out;
    char err[128], buf[128];
    EXPECT_EQ_INT(PGC_OK, msgbuild_change(b, rel, &m, &out, err, sizeof err));
    const Pgcapture__Change *ch = out->change;
    EXPECT_EQ_STR("id,n,body,note", names(ch->new_, ch->n_new_, buf, sizeof buf));
    const Pgcapture__Field *body = find(ch->new_, ch->n_new_, "body");
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_BINARY, body->value_case);
    EXPECT_EQ_MEM("long body", 9, body->binary.data, body->binary.len);
    EXPECT_EQ_UINT(25, body->oid);
    EXPECT_EQ_MEM("\0\0\0\x02", 4, find(ch->new_, ch->n_new_, "n")->binary.data, 4);
    /* NULLs are fields without a value, in new and in old: the log keeps them. */
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, find(ch->new_, ch->n_new_, "note")->value_case);
    EXPECT_EQ_STR("id,n,body,note", names(ch->old, ch->n_old, buf, sizeof buf));
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, find(ch->old, ch->n_old, "note")->value_case);
}

static void test_msgbuild_fills_text_values_and_leaves_out_what_the_old_row_lacks(void)
{
    relcache *c;
    const relcache_entry *rel = entry(&c, 'f');
    msgbuild *b = builder();
    /* A text-format value is copied (protobuf-c needs its NUL); an old row whose value is
     * unchanged TOAST too has nothing to give: the column is left out of both rows. */
    const pgoutput_value old[4] = {ID, N1, {'t', 5, (const uint8_t *)"texty"}, UNCHANGED};
    const pgoutput_value new_[4] = {ID, N2, UNCHANGED, UNCHANGED};
    pgoutput_msg m = update('O', old, new_);
    const Pgcapture__Message *out;
    char err[128], buf[128];
    EXPECT_EQ_INT(PGC_OK, msgbuild_change(b, rel, &m, &out, err, sizeof err));
    const Pgcapture__Change *ch = out->change;
    EXPECT_EQ_STR("id,n,body", names(ch->new_, ch->n_new_, buf, sizeof buf));
    const Pgcapture__Field *body = find(ch->new_, ch->n_new_, "body");
    EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_TEXT, body->value_case);
    EXPECT_EQ_STR("texty", body->text);
    EXPECT_EQ_STR("id,n,body", names(ch->old, ch->n_old, buf, sizeof buf));
    EXPECT_EQ_STR("texty", find(ch->old, ch->n_old, "body")->text);
}

static void test_msgbuild_leaves_unchanged_toast_out_under_other_identities(void)
{
    char err[128], buf[128];
    const Pgcapture__Message *out;
    /* DEFAULT and USING INDEX: no old row, or a key tuple whose other columns are NULL. */
    const char idents[2] = {'d', 'i'};
    for (int k = 0; k < 2; k++) {
        relcache *c;
        const relcache_entry *rel = entry(&c, idents[k]);
        msgbuild *b = builder();
        const pgoutput_value new_[4] = {ID, N2, UNCHANGED, NUL};
        pgoutput_msg m = update(0, NULL, new_);
        EXPECT_EQ_INT(PGC_OK, msgbuild_change(b, rel, &m, &out, err, sizeof err));
        EXPECT_EQ_STR("id,n,note", names(out->change->new_, out->change->n_new_, buf, sizeof buf));
        EXPECT_EQ_UINT(0, out->change->n_old);
        const pgoutput_value key[4] = {ID, NUL, NUL, NUL};
        m = update('K', key, new_);
        EXPECT_EQ_INT(PGC_OK, msgbuild_change(b, rel, &m, &out, err, sizeof err));
        EXPECT_EQ_STR("id,n,note", names(out->change->new_, out->change->n_new_, buf, sizeof buf));
        EXPECT_EQ_STR("id", names(out->change->old, out->change->n_old, buf, sizeof buf));
    }
}

UNIT_MAIN(UNIT_CASE(test_msgbuild_fills_unchanged_toast_from_the_old_row_with_identity_full),
          UNIT_CASE(test_msgbuild_fills_text_values_and_leaves_out_what_the_old_row_lacks),
          UNIT_CASE(test_msgbuild_leaves_unchanged_toast_out_under_other_identities))
