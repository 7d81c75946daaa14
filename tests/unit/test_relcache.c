/* The relation cache: Relation messages are deep-copied, found by OID, replaced when
 * pgoutput re-sends them, and survive the input buffer being reused. */
#include "harness/runner.h"

#include "codec/relcache.h"
#include "core/status.h"

#include <stdio.h>
#include <string.h>

static relcache *cache(void)
{
    relcache *c;
    EXPECT_EQ_INT(PGC_OK, relcache_create(&c));
    unit_defer((void (*)(void *))relcache_destroy, c);
    return c;
}

static pgoutput_msg relation(uint32_t oid, const char *nsp, const char *rel,
                             const pgoutput_column *cols, uint16_t n)
{
    pgoutput_msg m;
    memset(&m, 0, sizeof m);
    m.kind = 'R';
    m.u.relation.oid = oid;
    m.u.relation.nspname = nsp;
    m.u.relation.relname = rel;
    m.u.relation.replident = 'd';
    m.u.relation.ncols = n;
    m.u.relation.cols = cols;
    return m;
}

static void test_entries_are_deep_copies_found_by_oid(void)
{
    relcache *c = cache();
    char nsp[16] = "public", rel[16] = "orders", col[16] = "id";
    pgoutput_column cols[1] = {{1, col, 23, -1}};
    pgoutput_msg m = relation(16390, nsp, rel, cols, 1);
    char err[128];
    const relcache_entry *e;
    EXPECT_EQ_INT(PGC_OK, relcache_put(c, &m, &e, err, sizeof err));
    /* The decoder's buffer is reused for the next message. */
    strcpy(nsp, "xxxxxx");
    strcpy(rel, "yyyyyy");
    strcpy(col, "zz");
    const relcache_entry *got = relcache_lookup(c, 16390);
    EXPECT_TRUE(got == e);
    EXPECT_EQ_STR("public", got->nspname);
    EXPECT_EQ_STR("orders", got->relname);
    EXPECT_EQ_STR("id", got->cols[0].name);
    EXPECT_EQ_UINT(23, got->cols[0].type_oid);
    EXPECT_TRUE(relcache_lookup(c, 16391) == NULL);
}

static void test_a_resent_relation_replaces_the_old_one(void)
{
    relcache *c = cache();
    pgoutput_column one[1] = {{1, "id", 23, -1}};
    pgoutput_column two[2] = {{1, "id", 23, -1}, {0, "added", 25, -1}};
    pgoutput_msg a = relation(7, "public", "t", one, 1), b = relation(7, "public", "t", two, 2);
    char err[128];
    const relcache_entry *e1, *e2;
    EXPECT_EQ_INT(PGC_OK, relcache_put(c, &a, &e1, err, sizeof err));
    uint64_t gen = e1->generation;
    EXPECT_EQ_INT(PGC_OK, relcache_put(c, &b, &e2, err, sizeof err));
    EXPECT_EQ_UINT(1, relcache_count(c));
    EXPECT_EQ_UINT(2, relcache_lookup(c, 7)->ncols);
    EXPECT_EQ_STR("added", relcache_lookup(c, 7)->cols[1].name);
    EXPECT_TRUE(relcache_lookup(c, 7)->generation > gen);
}

static void test_many_relations_stay_reachable_after_growth(void)
{
    relcache *c = cache();
    char err[128], name[32];
    for (uint32_t oid = 1; oid <= 5000; oid++) {
        snprintf(name, sizeof name, "t%u", oid);
        pgoutput_msg m = relation(oid * 7919u, "s", name, NULL, 0);
        EXPECT_EQ_INT(PGC_OK, relcache_put(c, &m, NULL, err, sizeof err));
    }
    EXPECT_EQ_UINT(5000, relcache_count(c));
    for (uint32_t oid = 1; oid <= 5000; oid++) {
        snprintf(name, sizeof name, "t%u", oid);
        const relcache_entry *e = relcache_lookup(c, oid * 7919u);
        EXPECT_TRUE(e != NULL);
        EXPECT_EQ_STR(name, e->relname);
    }
    pgoutput_msg not_rel;
    memset(&not_rel, 0, sizeof not_rel);
    not_rel.kind = 'I';
    EXPECT_EQ_INT(PGC_ERR_INVALID, relcache_put(c, &not_rel, NULL, err, sizeof err));
}

UNIT_MAIN(UNIT_CASE(test_entries_are_deep_copies_found_by_oid),
          UNIT_CASE(test_a_resent_relation_replaces_the_old_one),
          UNIT_CASE(test_many_relations_stay_reachable_after_growth))
