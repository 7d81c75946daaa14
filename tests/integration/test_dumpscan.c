/* Dump items read from a real PostgreSQL by TID range: every row once across items, values
 * byte for byte as the server sends them, the applied position from the same snapshot,
 * and the errors a dumper must tell apart. */
#include "core/status.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "pg/dumpscan.h"
#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A row as "col=hex;col=NULL;..." so rows from the dump and from a plain binary SELECT
 * compare as strings. */
static char *row_key(int n, const char *const *names, const uint8_t *const *vals,
                     const size_t *lens, const bool *nulls)
{
    size_t cap = 64;
    for (int i = 0; i < n; i++)
        cap += strlen(names[i]) + 8 + lens[i] * 2;
    char *s = malloc(cap);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        off += (size_t)snprintf(s + off, cap - off, "%s=", names[i]);
        if (nulls[i]) {
            off += (size_t)snprintf(s + off, cap - off, "NULL");
        } else {
            for (size_t k = 0; k < lens[i]; k++)
                off += (size_t)snprintf(s + off, cap - off, "%02x", vals[i][k]);
        }
        off += (size_t)snprintf(s + off, cap - off, ";");
    }
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct key_set {
    char **keys;
    size_t n, cap;
} key_set;

static void key_set_add(key_set *k, char *key)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 1024;
        k->keys = realloc(k->keys, k->cap * sizeof *k->keys);
    }
    k->keys[k->n++] = key;
}

static void key_set_free(void *arg)
{
    key_set *k = arg;
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k);
}

static key_set *key_set_new(void)
{
    key_set *k = calloc(1, sizeof *k);
    unit_defer(key_set_free, k);
    return k;
}

static key_set *table_keys(PGconn *c, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
    EXPECT_EQ_INT(PGRES_TUPLES_OK, PQresultStatus(r));
    key_set *k = key_set_new();
    int n = PQnfields(r);
    const char *names[16];
    const uint8_t *vals[16];
    size_t lens[16];
    bool nulls[16];
    for (int row = 0; row < PQntuples(r); row++) {
        for (int i = 0; i < n; i++) {
            names[i] = PQfname(r, i);
            vals[i] = (const uint8_t *)PQgetvalue(r, row, i);
            lens[i] = (size_t)PQgetlength(r, row, i);
            nulls[i] = PQgetisnull(r, row, i);
        }
        key_set_add(k, row_key(n, names, vals, lens, nulls));
    }
    PQclear(r);
    return k;
}

/* Dumps [begin, end] and adds its rows to k; returns the rows and checks the last flag. */
static size_t dump_range(PGconn *c, const char *table, uint32_t begin, uint32_t end, key_set *k,
                         uint64_t *lsn)
{
    dumpscan_item item = {"public", table, begin, end};
    dumpscan *d;
    char err[512];
    int rc = dumpscan_create(c, "src", &item, &d, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "dumpscan_create: %s", err);
    *lsn = dumpscan_applied_lsn(d);
    size_t rows = 0;
    int lasts = 0;
    bool last = false;
    const uint8_t *bytes;
    size_t len;
    while ((rc = dumpscan_next(d, &bytes, &len, &last, err, sizeof err)) == 1) {
        EXPECT_EQ_INT(lasts, 0); /* nothing after the row marked last */
        Pgcapture__Change *ch = pgcapture__change__unpack(NULL, len, bytes);
        EXPECT_TRUE(ch != NULL);
        EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, ch->op);
        EXPECT_EQ_UINT(0, ch->n_old);
        EXPECT_EQ_STR(table, ch->table);
        const char *names[16];
        const uint8_t *vals[16];
        size_t lens[16];
        bool nulls[16];
        for (size_t i = 0; i < ch->n_new_; i++) {
            names[i] = ch->new_[i]->name;
            nulls[i] = ch->new_[i]->value_case != PGCAPTURE__FIELD__VALUE_BINARY;
            vals[i] = ch->new_[i]->binary.data;
            lens[i] = nulls[i] ? 0 : ch->new_[i]->binary.len;
        }
        key_set_add(k, row_key((int)ch->n_new_, names, vals, lens, nulls));
        pgcapture__change__free_unpacked(ch, NULL);
        lasts += last;
        rows++;
    }
    if (rc < 0)
        unit_fail(__FILE__, __LINE__, "dumpscan_next: %s", err);
    EXPECT_EQ_INT(rows ? 1 : 0, lasts);
    EXPECT_EQ_UINT(rows, dumpscan_rows(d));
    dumpscan_destroy(d);
    return rows;
}

static PGconn *replica_with_position(void)
{
    char db[256];
    harness_replica_db_create(true, db, sizeof db);
    PGconn *c = harness_connect(db);
    harness_exec(c, "INSERT INTO pgcapture.sources (id, commit, seq) VALUES ('src', '1/A0', 7)");
    return c;
}

static void test_item_ranges_cover_every_row_exactly_once_byte_for_byte(void)
{
    PGconn *c = replica_with_position();
    harness_exec(c, "CREATE TABLE comp (a int, b text, v numeric, t timestamptz, n text, "
                    "PRIMARY KEY (a, b))");
    harness_exec(c, "INSERT INTO comp SELECT i, 'k' || (i % 7), i * 1.5, "
                    "'2020-01-01'::timestamptz + i * interval '1 min', "
                    "CASE WHEN i % 3 = 0 THEN NULL ELSE repeat('x', i % 50) END "
                    "FROM generate_series(1, 20000) i");
    harness_exec(c, "CREATE TABLE nokey (x int, y text)");
    harness_exec(c, "INSERT INTO nokey SELECT i % 10, 'dup' FROM generate_series(1, 5000) i");
    const char *tables[] = {"comp", "nokey"};
    for (int t = 0; t < 2; t++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT pg_relation_size('%s') / current_setting('block_size')::int", tables[t]);
        long long pages = harness_query_int(c, sql);
        EXPECT_TRUE(pages > 3);
        key_set *dumped = key_set_new();
        size_t total = 0;
        uint64_t lsn = 0;
        /* Items of 3 pages, the last one open-ended past the end of the table. */
        for (uint32_t p = 0; p < (uint32_t)pages; p += 3) {
            uint32_t end = p + 2 >= (uint32_t)pages ? 0xFFFFFFFEu : p + 2;
            total += dump_range(c, tables[t], p, end, dumped, &lsn);
        }
        EXPECT_EQ_UINT(0x1000000A0ULL, lsn);
        key_set *want = table_keys(c, tables[t]);
        EXPECT_EQ_UINT(want->n, total);
        qsort(dumped->keys, dumped->n, sizeof(char *), cmp_str);
        qsort(want->keys, want->n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < want->n && i < dumped->n; i++)
            EXPECT_EQ_STR(want->keys[i], dumped->keys[i]);
    }
}

static void test_snapshot_position_and_rows_come_from_the_same_moment(void)
{
    PGconn *c = replica_with_position();
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s dbname=%s", PQhost(c), PQport(c), PQdb(c));
    PGconn *writer = harness_connect(conninfo);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY, v int)");
    harness_exec(c, "INSERT INTO t SELECT i, 0 FROM generate_series(1, 3000) i");
    dumpscan_item item = {"public", "t", 0, 0xFFFFFFFEu};
    dumpscan *d;
    char err[512];
    EXPECT_EQ_INT(PGC_OK, dumpscan_create(c, "src", &item, &d, err, sizeof err));
    /* What an applier commits after the snapshot is not seen: neither rows nor position. */
    harness_exec(writer, "BEGIN; UPDATE t SET v = 1; INSERT INTO t VALUES (5000, 1); "
                         "UPDATE pgcapture.sources SET commit = '2/0', seq = 1 WHERE id = 'src'; "
                         "COMMIT");
    EXPECT_EQ_UINT(0x1000000A0ULL, dumpscan_applied_lsn(d));
    EXPECT_EQ_UINT(7, dumpscan_applied_seq(d));
    const uint8_t *bytes;
    size_t len;
    bool last;
    size_t rows = 0, changed = 0;
    int rc;
    while ((rc = dumpscan_next(d, &bytes, &len, &last, err, sizeof err)) == 1) {
        rows++;
        Pgcapture__Change *ch = pgcapture__change__unpack(NULL, len, bytes);
        EXPECT_TRUE(ch != NULL && ch->n_new_ == 2);
        const Pgcapture__Field *v = ch->new_[1];
        EXPECT_EQ_UINT(4, v->binary.len);
        if (v->binary.data[3] != 0)
            changed++;
        pgcapture__change__free_unpacked(ch, NULL);
    }
    EXPECT_EQ_INT(0, rc);
    EXPECT_EQ_UINT(3000, rows);
    EXPECT_EQ_UINT(0, changed);
    dumpscan_destroy(d);
}

static void test_missing_table_missing_position_and_bad_range_are_told_apart(void)
{
    PGconn *c = replica_with_position();
    dumpscan *d = NULL;
    char err[512];
    dumpscan_item missing = {"public", "nope", 0, 10};
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND, dumpscan_create(c, "src", &missing, &d, err, sizeof err));
    EXPECT_TRUE(strstr(err, "nope") != NULL);
    harness_exec(c, "CREATE TABLE t (id int)");
    dumpscan_item bad = {"public", "t", 5, 4};
    EXPECT_EQ_INT(PGC_ERR_INVALID, dumpscan_create(c, "src", &bad, &d, err, sizeof err));
    dumpscan_item ok = {"public", "t", 0, 0};
    EXPECT_EQ_INT(PGC_ERR_STATE, dumpscan_create(c, "other", &ok, &d, err, sizeof err));
    /* Each failure left the connection idle, outside any transaction. */
    EXPECT_EQ_INT(PQTRANS_IDLE, PQtransactionStatus(c));
    /* An empty range has no rows and no last row. */
    EXPECT_EQ_INT(PGC_OK, dumpscan_create(c, "src", &ok, &d, err, sizeof err));
    const uint8_t *bytes;
    size_t len;
    bool last = false;
    EXPECT_EQ_INT(0, dumpscan_next(d, &bytes, &len, &last, err, sizeof err));
    dumpscan_destroy(d);
    EXPECT_EQ_INT(PQTRANS_IDLE, PQtransactionStatus(c));
}

/* A dumper that stops in the middle of an item (its stream ended) leaves the connection
 * ready for the next item: the COPY is cancelled and the snapshot rolled back. */
static void test_an_item_left_half_read_leaves_the_connection_usable(void)
{
    PGconn *c = replica_with_position();
    harness_exec(c, "CREATE TABLE big (id int PRIMARY KEY, pad text)");
    harness_exec(c, "INSERT INTO big SELECT i, repeat('p', 200) FROM generate_series(1, 50000) i");
    dumpscan_item item = {"public", "big", 0, 0xFFFFFFFEu};
    dumpscan *d;
    char err[512];
    const uint8_t *bytes;
    size_t len;
    bool last;
    EXPECT_EQ_INT(PGC_OK, dumpscan_create(c, "src", &item, &d, err, sizeof err));
    for (int i = 0; i < 10; i++)
        EXPECT_EQ_INT(1, dumpscan_next(d, &bytes, &len, &last, err, sizeof err));
    dumpscan_destroy(d);
    EXPECT_EQ_INT(CONNECTION_OK, PQstatus(c));
    EXPECT_EQ_INT(PQTRANS_IDLE, PQtransactionStatus(c));
    EXPECT_EQ_INT(PGC_OK, dumpscan_create(c, "src", &item, &d, err, sizeof err));
    size_t rows = 0;
    int rc;
    while ((rc = dumpscan_next(d, &bytes, &len, &last, err, sizeof err)) == 1)
        rows++;
    EXPECT_EQ_INT(0, rc);
    EXPECT_EQ_UINT(50000, rows);
    dumpscan_destroy(d);
    EXPECT_EQ_INT(PQTRANS_IDLE, PQtransactionStatus(c));
}

static void test_the_range_query_is_a_tid_range_scan(void)
{
    PGconn *c = replica_with_position();
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    harness_exec(c, "INSERT INTO t SELECT generate_series(1, 1000)");
    char *plan = harness_query_value(
        c, "EXPLAIN SELECT id FROM public.t WHERE ctid >= '(0,0)'::tid AND ctid < '(3,0)'::tid");
    EXPECT_TRUE(strstr(plan, "Tid Range Scan") != NULL);
}

UNIT_MAIN(UNIT_CASE(test_item_ranges_cover_every_row_exactly_once_byte_for_byte),
          UNIT_CASE(test_snapshot_position_and_rows_come_from_the_same_moment),
          UNIT_CASE(test_missing_table_missing_position_and_bad_range_are_told_apart),
          UNIT_CASE(test_an_item_left_half_read_leaves_the_connection_usable),
          UNIT_CASE(test_the_range_query_is_a_tid_range_scan))
