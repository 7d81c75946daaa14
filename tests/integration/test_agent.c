/* The agent against real PostgreSQL and NATS: what lands in the stream is exactly what
 * was committed, value for value in binary, in commit order, with protocol checkpoints;
 * restarts and crashes of the agent, NATS and PostgreSQL lose and duplicate nothing. */
#include "harness/runner.h"
#include "codec/bigendian.h"
#include "harness/fixtures.h"
#include "harness/streamread.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct wait_changes {
    const char *table;
    size_t want;
} wait_changes;

static size_t count_changes(const stream_log *log, const char *table)
{
    size_t n = 0;
    for (size_t i = 0; i < log->n; i++) {
        const Pgcapture__Message *m = log->entries[i].msg;
        if (m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE &&
            (!table || strcmp(m->change->table, table) == 0))
            n++;
    }
    return n;
}

static int has_changes(const stream_log *log, void *arg)
{
    const wait_changes *w = arg;
    return count_changes(log, w->table) >= w->want;
}

static const stream_log *wait_for_changes(const char *name, const char *table, size_t want)
{
    wait_changes w = {table, want};
    return stream_wait_for(name, 30000, has_changes, &w);
}

/* The i-th change (0-based) of `table` in the log. */
static const Pgcapture__Change *nth_change(const stream_log *log, const char *table, size_t i)
{
    for (size_t k = 0; k < log->n; k++) {
        const Pgcapture__Message *m = log->entries[k].msg;
        if (m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE &&
            strcmp(m->change->table, table) == 0 && i-- == 0)
            return m->change;
    }
    unit_fail(__FILE__, __LINE__, "no change %zu of %s in the stream", i, table);
}

static int32_t field_int4(const Pgcapture__Change *c, const char *name, int old)
{
    const Pgcapture__Field *f = stream_field(c, name, old);
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 4)
        unit_fail(__FILE__, __LINE__, "field %s is not a binary int4", name);
    const uint8_t *p = f->binary.data;
    return (int32_t)bigendian_get32(p);
}

static void start_agent(const char *conninfo, const char *name, char *log, size_t log_len)
{
    harness_agent_start(conninfo, name, NULL, log, log_len);
    harness_agent_wait_streaming(conninfo, name, log, 60000);
}

/* Checks the protocol shape: Begin seq 0, then 1, 2, ... up to the Commit, positions
 * strictly increasing across the log, the Commit's LSN equal to the Begin's. */
static void check_transaction_shape(const stream_log *log)
{
    log_pos prev = {0, 0};
    int in_txn = 0;
    uint64_t lsn = 0;
    uint32_t expect = 0;
    for (size_t i = 0; i < log->n; i++) {
        const stream_entry *e = &log->entries[i];
        if (i > 0 && logpos_cmp(e->pos, prev) <= 0)
            unit_fail(__FILE__, __LINE__, "position %zu does not increase", i);
        prev = e->pos;
        switch (e->msg->type_case) {
        case PGCAPTURE__MESSAGE__TYPE_BEGIN:
            EXPECT_TRUE(!in_txn);
            in_txn = 1;
            lsn = e->msg->begin->final_lsn;
            EXPECT_EQ_UINT(0, e->pos.seq);
            expect = 1;
            break;
        case PGCAPTURE__MESSAGE__TYPE_CHANGE:
            EXPECT_TRUE(in_txn);
            EXPECT_EQ_UINT(lsn, e->pos.lsn);
            EXPECT_EQ_UINT(expect, e->pos.seq);
            expect++;
            break;
        case PGCAPTURE__MESSAGE__TYPE_COMMIT:
            EXPECT_TRUE(in_txn);
            EXPECT_EQ_UINT(lsn, e->msg->commit->commit_lsn);
            EXPECT_EQ_UINT(expect, e->pos.seq);
            EXPECT_TRUE(e->msg->commit->end_lsn > lsn);
            in_txn = 0;
            break;
        default:
            unit_fail(__FILE__, __LINE__, "unexpected message type %d", e->msg->type_case);
        }
    }
}

/* ---- cases ---------------------------------------------------------------------------- */

static void test_insert_update_delete_arrive_in_order_with_checkpoints(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    start_agent(db, name, log, sizeof log);
    harness_exec(c, "BEGIN; INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL); COMMIT");
    harness_exec(c, "UPDATE t SET v = 'bb' WHERE id = 2");
    harness_exec(c, "DELETE FROM t WHERE id = 1");
    const stream_log *s = wait_for_changes(name, "t", 5);
    check_transaction_shape(s);
    EXPECT_EQ_UINT(5 + 3 + 3, s->n); /* B,3 changes,C + B,U,C + B,D,C */
    const Pgcapture__Change *c0 = nth_change(s, "t", 0);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, c0->op);
    EXPECT_EQ_STR("public", c0->schema);
    EXPECT_EQ_INT(1, field_int4(c0, "id", 0));
    const Pgcapture__Field *v = stream_field(c0, "v", 0);
    EXPECT_TRUE(v && v->value_case == PGCAPTURE__FIELD__VALUE_BINARY);
    EXPECT_EQ_MEM("a", 1, v->binary.data, v->binary.len);
    EXPECT_EQ_UINT(25, v->oid);
    const Pgcapture__Field *null_v = stream_field(nth_change(s, "t", 2), "v", 0);
    EXPECT_TRUE(null_v && null_v->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET);
    const Pgcapture__Change *u = nth_change(s, "t", 3);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, u->op);
    EXPECT_EQ_INT(2, field_int4(u, "id", 0));
    EXPECT_EQ_UINT(0, u->n_old); /* key unchanged: pgoutput sends no old tuple */
    const Pgcapture__Change *d = nth_change(s, "t", 4);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__DELETE, d->op);
    EXPECT_EQ_UINT(0, d->n_new_);
    EXPECT_EQ_UINT(1, d->n_old); /* key columns only */
    EXPECT_EQ_INT(1, field_int4(d, "id", 1));
}

/* Every column of every row must equal, byte for byte, what the server itself sends for
 * that value (binary result format), or its text output where pgoutput sends text. */
static void compare_row_with_server(PGconn *c, const Pgcapture__Change *ch, const char *table,
                                    int id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM %s WHERE id = %d", table, id);
    PGresult *bin = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
    PGresult *txt = PQexec(c, sql);
    EXPECT_TRUE(PQresultStatus(bin) == PGRES_TUPLES_OK && PQntuples(bin) == 1);
    EXPECT_TRUE(PQresultStatus(txt) == PGRES_TUPLES_OK && PQntuples(txt) == 1);
    unit_defer((void (*)(void *))PQclear, bin);
    unit_defer((void (*)(void *))PQclear, txt);
    EXPECT_EQ_UINT((size_t)PQnfields(bin), ch->n_new_);
    for (int col = 0; col < PQnfields(bin); col++) {
        const char *cname = PQfname(bin, col);
        const Pgcapture__Field *f = stream_field(ch, cname, 0);
        if (!f)
            unit_fail(__FILE__, __LINE__, "column %s missing in row %d", cname, id);
        /* The column's own type: a domain keeps its OID (PQftype would give the base). */
        char q[256];
        snprintf(q, sizeof q,
                 "SELECT atttypid FROM pg_attribute WHERE attrelid = '%s'::regclass AND "
                 "attname = '%s'",
                 table, cname);
        EXPECT_EQ_UINT(harness_query_int(c, q), f->oid);
        if (PQgetisnull(bin, 0, col)) {
            EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE__NOT_SET, f->value_case);
        } else if (f->value_case == PGCAPTURE__FIELD__VALUE_BINARY) {
            EXPECT_EQ_MEM(PQgetvalue(bin, 0, col), (size_t)PQgetlength(bin, 0, col), f->binary.data,
                          f->binary.len);
        } else {
            EXPECT_EQ_INT(PGCAPTURE__FIELD__VALUE_TEXT, f->value_case);
            EXPECT_EQ_STR(PQgetvalue(txt, 0, col), f->text);
        }
    }
}

static void test_every_common_type_round_trips_bit_for_bit(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
                    "CREATE DOMAIN posint AS int CHECK (VALUE > 0);"
                    "CREATE TYPE pair AS (a int, b text);"
                    "CREATE TABLE types (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8,"
                    " f4 float4, f8 float8, n numeric, t text, vc varchar(20), bp char(5),"
                    " by bytea, u uuid, d date, tm time, ttz timetz, ts timestamp,"
                    " tstz timestamptz, iv interval, j json, jb jsonb, ip inet, net cidr,"
                    " mac macaddr, ai int4[], at text[], an numeric[], e mood, dom posint,"
                    " comp pair)");
    start_agent(db, name, log, sizeof log);
    harness_exec(c,
                 "INSERT INTO types VALUES (1, true, -32768, 2147483647, -9223372036854775808,"
                 " 1.5, -2.25e-300, 123456789012345678901234567890.123456789,"
                 " 'héllo wörld', 'varchar', 'ab', '\\x00ff0000aa', "
                 " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999999',"
                 " '12:00:00+05:30', '2000-01-01 00:00:00', '1999-12-31 23:59:59.5+00',"
                 " '1 year 2 mons 3 days 04:05:06.7', '{\"a\": [1, 2]}', '{\"b\": {\"c\": null}}',"
                 " '192.168.1.5/24', '10.0.0.0/8', '08:00:2b:01:02:03', '{1,NULL,3}',"
                 " '{\"x\",\"y z\",NULL}', '{1.5,NaN}', 'happy', 42, ROW(7, 'seven'))");
    harness_exec(c, "INSERT INTO types VALUES (2, false, 0, 0, 0, 'NaN', 'Infinity', 'NaN',"
                    " '', '', '', '\\x', '00000000-0000-0000-0000-000000000000', '-infinity',"
                    " '00:00', '00:00-14', 'infinity', '-infinity', '-178000000 years', 'null',"
                    " '[]', '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '{}', '{}', '{}',"
                    " 'sad', 1, ROW(NULL, NULL))");
    harness_exec(c, "INSERT INTO types VALUES (3, NULL, NULL, NULL, NULL, '-Infinity', '-0', "
                    " 0.000000000000000000000000000001, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                    " NULL, NULL)");
    const stream_log *s = wait_for_changes(name, "types", 3);
    for (int id = 1; id <= 3; id++)
        compare_row_with_server(c, nth_change(s, "types", (size_t)id - 1), "types", id);
}

static void test_replica_identities_and_key_changes_shape_the_old_row(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE pk (id int PRIMARY KEY, v int);"
                    "CREATE TABLE full_id (a int, b int);"
                    "ALTER TABLE full_id REPLICA IDENTITY FULL;"
                    "CREATE TABLE idx_id (id int PRIMARY KEY, code int NOT NULL, v int);"
                    "CREATE UNIQUE INDEX idx_id_code ON idx_id (code);"
                    "ALTER TABLE idx_id REPLICA IDENTITY USING INDEX idx_id_code;"
                    "INSERT INTO pk VALUES (1, 10); INSERT INTO full_id VALUES (1, 2);"
                    "INSERT INTO idx_id VALUES (1, 100, 5)");
    start_agent(db, name, log, sizeof log);
    harness_exec(c, "UPDATE pk SET id = 2 WHERE id = 1"); /* key change */
    harness_exec(c, "UPDATE full_id SET b = 3");          /* table without a key */
    harness_exec(c, "DELETE FROM full_id");
    harness_exec(c, "UPDATE idx_id SET code = 101, v = 6"); /* replica identity index */
    harness_exec(c, "DELETE FROM idx_id");
    wait_for_changes(name, NULL, 5);
    const stream_log *s = stream_read_all(name);
    const Pgcapture__Change *u = nth_change(s, "pk", 0);
    EXPECT_EQ_INT(2, field_int4(u, "id", 0));
    EXPECT_EQ_UINT(1, u->n_old);
    EXPECT_EQ_INT(1, field_int4(u, "id", 1));
    const Pgcapture__Change *fu = nth_change(s, "full_id", 0);
    EXPECT_EQ_UINT(2, fu->n_old);
    EXPECT_EQ_INT(2, field_int4(fu, "b", 1));
    EXPECT_EQ_INT(3, field_int4(fu, "b", 0));
    const Pgcapture__Change *fd = nth_change(s, "full_id", 1);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__DELETE, fd->op);
    EXPECT_EQ_UINT(2, fd->n_old);
    EXPECT_EQ_INT(3, field_int4(fd, "b", 1));
    const Pgcapture__Change *iu = nth_change(s, "idx_id", 0);
    EXPECT_EQ_UINT(1, iu->n_old);
    EXPECT_EQ_INT(100, field_int4(iu, "code", 1));
    EXPECT_EQ_INT(101, field_int4(iu, "code", 0));
    const Pgcapture__Change *id = nth_change(s, "idx_id", 1);
    EXPECT_EQ_UINT(1, id->n_old);
    EXPECT_EQ_INT(101, field_int4(id, "code", 1));
}

static void test_unchanged_toast_column_is_absent_and_changed_one_present(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    /* md5 chains do not compress: 200 kB really goes to TOAST. */
    harness_exec(c, "CREATE TABLE doc (id int PRIMARY KEY, n int, body text);"
                    "ALTER TABLE doc ALTER body SET STORAGE EXTERNAL;"
                    "INSERT INTO doc SELECT 1, 0, string_agg(md5(i::text), '') "
                    "FROM generate_series(1, 6000) i");
    start_agent(db, name, log, sizeof log);
    harness_exec(c, "UPDATE doc SET n = 1");
    harness_exec(c, "UPDATE doc SET body = body || 'x', n = 2");
    const stream_log *s = wait_for_changes(name, "doc", 2);
    const Pgcapture__Change *u1 = nth_change(s, "doc", 0);
    EXPECT_EQ_INT(1, field_int4(u1, "n", 0));
    EXPECT_TRUE(stream_field(u1, "body", 0) == NULL); /* absent, not NULL */
    EXPECT_EQ_UINT(2, u1->n_new_);
    const Pgcapture__Change *u2 = nth_change(s, "doc", 1);
    const Pgcapture__Field *body = stream_field(u2, "body", 0);
    EXPECT_TRUE(body != NULL && body->value_case == PGCAPTURE__FIELD__VALUE_BINARY);
    EXPECT_EQ_UINT(6000 * 32 + 1, body->binary.len);
    char *server = harness_query_value(c, "SELECT body FROM doc");
    EXPECT_EQ_MEM(server, strlen(server), body->binary.data, body->binary.len);
}

static void test_truncate_of_one_and_two_tables_is_published(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);"
                    "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)");
    start_agent(db, name, log, sizeof log);
    harness_exec(c, "TRUNCATE a");
    harness_exec(c, "INSERT INTO a VALUES (2)");
    harness_exec(c, "TRUNCATE a, b");
    const stream_log *s = wait_for_changes(name, NULL, 4);
    check_transaction_shape(s);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__TRUNCATE, nth_change(s, "a", 0)->op);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, nth_change(s, "a", 1)->op);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__TRUNCATE, nth_change(s, "a", 2)->op);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__TRUNCATE, nth_change(s, "b", 0)->op);
    /* The two-table TRUNCATE is one transaction with two changes. */
    EXPECT_EQ_UINT(3 + 3 + 4, s->n);
}

static void test_large_rows_are_split_into_parts_and_joined(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE blob (id int PRIMARY KEY, data bytea)");
    start_agent(db, name, log, sizeof log);
    /* 3 MB of incompressible bytes: about 47 parts of 64 kB. */
    harness_exec(c, "INSERT INTO blob SELECT 1, string_agg(decode(md5(i::text), 'hex'), '') "
                    "FROM generate_series(1, 196608) i");
    harness_exec(c, "INSERT INTO blob VALUES (2, '\\x01')");
    const stream_log *s = wait_for_changes(name, "blob", 2);
    check_transaction_shape(s);
    const Pgcapture__Field *f = stream_field(nth_change(s, "blob", 0), "data", 0);
    EXPECT_EQ_UINT(196608 * 16, f->binary.len);
    PGresult *r =
        PQexecParams(c, "SELECT data FROM blob WHERE id = 1", 0, NULL, NULL, NULL, NULL, 1);
    unit_defer((void (*)(void *))PQclear, r);
    EXPECT_EQ_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), f->binary.data, f->binary.len);
    EXPECT_TRUE(s->nats_messages > 40);
}

static void test_missing_source_is_a_usage_error_and_missing_privilege_is_fatal(void)
{
    char log[512];
    snprintf(log, sizeof log, "%s/agent-usage.log",
             getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp");
    const char *no_source[] = {"agent", "--nats-url", harness_nats_url(), NULL};
    EXPECT_EQ_INT(2, harness_wait_exit(harness_spawn(log, no_source), 10000));
    const char *bad_flag[] = {"agent", "--source", "dbname=x", "--linger", "soon", NULL};
    EXPECT_EQ_INT(2, harness_wait_exit(harness_spawn(log, bad_flag), 10000));

    char db[256], name[64];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "DROP ROLE IF EXISTS pgct_norepl; CREATE ROLE pgct_norepl LOGIN");
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s user=pgct_norepl", db);
    const char *no_priv[] = {"agent",  "--source", conninfo, "--nats-url", harness_nats_url(),
                             "--name", name,       NULL};
    int rc = harness_wait_exit(harness_spawn(log, no_priv), 20000);
    if (rc != 1)
        harness_print_log_tail(log, 20);
    EXPECT_EQ_INT(1, rc);
}

static void test_a_second_agent_on_the_same_slot_exits_with_a_message(void)
{
    char db[256], name[64], log1[512], log2[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    start_agent(db, name, log1, sizeof log1);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    wait_for_changes(name, "t", 1);
    const char *extra[] = {"--busy-timeout", "1s", NULL};
    pid_t second = harness_agent_start(db, name, extra, log2, sizeof log2);
    int rc = harness_wait_exit(second, 20000);
    if (rc != 1)
        harness_print_log_tail(log2, 20);
    EXPECT_EQ_INT(1, rc);
}

static int slot_confirmed_at_least(PGconn *c, const char *slot, const char *lsn)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT confirmed_flush_lsn >= '%s'::pg_lsn FROM pg_replication_slots "
             "WHERE slot_name = '%s'",
             lsn, slot);
    char *v = harness_query_value(c, sql);
    return v && v[0] == 't';
}

static void test_idle_and_filtered_traffic_does_not_retain_wal(void)
{
    char db[256], name[64], log[512], slot[128];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    snprintf(slot, sizeof slot, "pgcapture_%s", name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int)");
    const char *extra[] = {"--tables", "public.published", "--status-interval", "500ms", NULL};
    harness_agent_start(db, name, extra, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO published VALUES (1)");
    wait_for_changes(name, "published", 1);
    harness_exec(c, "INSERT INTO other SELECT generate_series(1, 20000)");
    char *wal = harness_query_value(c, "SELECT pg_current_wal_lsn()::text");
    long long deadline = harness_now_ms() + 30000;
    while (!slot_confirmed_at_least(c, slot, wal) && harness_now_ms() < deadline)
        harness_sleep_ms(200);
    if (!slot_confirmed_at_least(c, slot, wal))
        harness_print_log_tail(log, 20);
    EXPECT_TRUE(slot_confirmed_at_least(c, slot, wal));
    /* Only the published table reached the stream. */
    const stream_log *s = stream_read_all(name);
    EXPECT_EQ_UINT(1, count_changes(s, NULL));
}

static void test_restart_with_a_table_list_keeps_its_publication(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE kept (id int PRIMARY KEY); CREATE TABLE left_out (id int)");
    const char *extra[] = {"--tables", "public.kept", NULL};
    pid_t agent = harness_agent_start(db, name, extra, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO kept VALUES (1)");
    wait_for_changes(name, "kept", 1);
    kill(agent, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(agent, 10000));
    /* The publication now exists with exactly the wanted table: nothing to alter. */
    agent = harness_agent_start(db, name, extra, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO left_out VALUES (7); INSERT INTO kept VALUES (2)");
    const stream_log *s = wait_for_changes(name, "kept", 2);
    EXPECT_EQ_UINT(2, count_changes(s, NULL));
    EXPECT_TRUE(harness_wait_exit(agent, 100) == -1); /* still running */
}

/* ---- the big transaction and crash safety ------------------------------------------ */

typedef struct scan_state {
    size_t changes, begins, commits;
    int64_t next_id; /* ids must arrive as 1, 2, 3, ... exactly once */
    int bad_order;
    log_pos prev;
    int in_txn;
    uint32_t expect_seq;
    uint64_t lsn;
} scan_state;

static void scan_check(log_pos pos, const Pgcapture__Message *m, void *arg)
{
    scan_state *st = arg;
    if (st->begins + st->commits + st->changes > 0 && logpos_cmp(pos, st->prev) <= 0)
        st->bad_order++;
    st->prev = pos;
    switch (m->type_case) {
    case PGCAPTURE__MESSAGE__TYPE_BEGIN:
        if (st->in_txn)
            st->bad_order++;
        st->in_txn = 1;
        st->lsn = pos.lsn;
        st->expect_seq = 1;
        st->begins++;
        break;
    case PGCAPTURE__MESSAGE__TYPE_CHANGE: {
        if (!st->in_txn || pos.lsn != st->lsn || pos.seq != st->expect_seq)
            st->bad_order++;
        st->expect_seq++;
        st->changes++;
        const Pgcapture__Field *f = stream_field(m->change, "id", 0);
        if (f && f->value_case == PGCAPTURE__FIELD__VALUE_BINARY && f->binary.len == 8) {
            int64_t v = (int64_t)bigendian_get64(f->binary.data);
            if (v != st->next_id)
                st->bad_order++;
            st->next_id = v + 1;
        }
        break;
    }
    case PGCAPTURE__MESSAGE__TYPE_COMMIT:
        if (!st->in_txn || pos.seq != st->expect_seq)
            st->bad_order++;
        st->in_txn = 0;
        st->commits++;
        break;
    default:
        st->bad_order++;
    }
}

static long rss_peak_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int stream_has_commits(const char *name, size_t want)
{
    scan_state st;
    memset(&st, 0, sizeof st);
    st.next_id = 1;
    stream_scan(name, scan_check, &st);
    return st.commits >= want;
}

static void test_two_million_row_transaction_arrives_in_bounded_memory(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE big (id bigint PRIMARY KEY, pad text)");
    pid_t agent = harness_agent_start(db, name, NULL, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO big SELECT i, 'row ' || i FROM generate_series(1, 2000000) i");
    long long deadline = harness_now_ms() + 240000;
    while (!stream_has_commits(name, 1) && harness_now_ms() < deadline)
        harness_sleep_ms(1000);
    long peak = rss_peak_kb(agent);
    scan_state st;
    memset(&st, 0, sizeof st);
    st.next_id = 1;
    stream_scan(name, scan_check, &st);
    EXPECT_EQ_UINT(2000000, st.changes);
    EXPECT_EQ_UINT(1, st.commits);
    EXPECT_EQ_INT(0, st.bad_order);
    printf("  agent peak RSS: %ld kB\n", peak);
    EXPECT_TRUE(peak > 0 && peak < 64 * 1024);
}

static void write_transactions(const char *db, int first, int last)
{
    PGconn *w = harness_connect(db);
    char sql[128];
    for (int i = first; i <= last; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO crash VALUES (%d)", i);
        harness_exec(w, sql);
    }
}

static void test_kill_agent_nats_and_postgres_restarts_lose_and_duplicate_nothing(void)
{
    char db[256], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE crash (id bigint PRIMARY KEY)");
    /* A short duplicate window: no reliance on NATS de-duplication after a restart. */
    const char *extra[] = {"--duplicate-window", "100ms", NULL};
    pid_t agent = harness_agent_start(db, name, extra, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    srand((unsigned)getpid());
    const int total = 50000, chunk = total / 10;
    int written = 0;
    for (int round = 0; round < 10; round++) {
        write_transactions(db, written + 1, written + chunk);
        written += chunk;
        if (round == 1 || round == 3 || round == 5) {
            harness_sleep_ms(rand() % 300);
            kill(agent, SIGKILL);
            harness_wait_exit(agent, 5000);
            agent = harness_agent_start(db, name, extra, log, sizeof log);
        } else if (round == 6) {
            harness_nats_stop();
            harness_sleep_ms(500);
            harness_nats_start();
        } else if (round == 8) {
            harness_pg_restart("fast");
            c = harness_connect(db);
        }
    }
    long long deadline = harness_now_ms() + 120000;
    while (!stream_has_commits(name, (size_t)total) && harness_now_ms() < deadline)
        harness_sleep_ms(500);
    scan_state st;
    memset(&st, 0, sizeof st);
    st.next_id = 1;
    stream_scan(name, scan_check, &st);
    if (st.changes != (size_t)total || st.bad_order)
        harness_print_log_tail(log, 40);
    EXPECT_EQ_UINT((size_t)total, st.changes);
    EXPECT_EQ_UINT((size_t)total, st.commits);
    EXPECT_EQ_UINT((size_t)total, st.begins);
    EXPECT_EQ_INT(0, st.bad_order);
    EXPECT_EQ_INT(total + 1, st.next_id);
}

/* --nats-url takes a comma-separated list: a dead first server must not stop the agent
 * (libnats splits a list only in one of its connect calls). */
static void test_agent_connects_through_a_list_of_nats_urls(void)
{
    char db[256], name[64], log[512], urls[512];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    snprintf(urls, sizeof urls, "nats://127.0.0.1:1, %s", harness_nats_url());
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(log, sizeof log, "%s/agent-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[] = {"agent", "--source",        db,  "--nats-url",  urls, "--name",
                          name,    "--confirm-delay", "0", "--retry-max", "1s", NULL};
    harness_spawn(log, args);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    EXPECT_EQ_UINT(1, count_changes(wait_for_changes(name, "t", 1), "t"));
}

static void test_agent_holds_confirmation_while_nats_is_down(void)
{
    char db[256], name[64], log[512], slot[128];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    snprintf(slot, sizeof slot, "pgcapture_%s", name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY)");
    const char *extra[] = {"--status-interval", "200ms", NULL};
    harness_agent_start(db, name, extra, log, sizeof log);
    harness_agent_wait_streaming(db, name, log, 60000);
    harness_exec(c, "INSERT INTO t VALUES (1)");
    wait_for_changes(name, "t", 1);
    harness_nats_stop();
    harness_exec(c, "INSERT INTO t VALUES (2)");
    char *after = harness_query_value(c, "SELECT pg_current_wal_lsn()::text");
    harness_sleep_ms(2000);
    /* The commit of row 2 lies between before and after: it must not be confirmed. */
    int confirmed_past = slot_confirmed_at_least(c, slot, after);
    harness_nats_start();
    EXPECT_TRUE(!confirmed_past);
    wait_for_changes(name, "t", 2);
    long long deadline = harness_now_ms() + 20000;
    while (!slot_confirmed_at_least(c, slot, after) && harness_now_ms() < deadline)
        harness_sleep_ms(200);
    EXPECT_TRUE(slot_confirmed_at_least(c, slot, after));
}

UNIT_MAIN(UNIT_CASE(test_insert_update_delete_arrive_in_order_with_checkpoints),
          UNIT_CASE(test_every_common_type_round_trips_bit_for_bit),
          UNIT_CASE(test_replica_identities_and_key_changes_shape_the_old_row),
          UNIT_CASE(test_unchanged_toast_column_is_absent_and_changed_one_present),
          UNIT_CASE(test_truncate_of_one_and_two_tables_is_published),
          UNIT_CASE(test_large_rows_are_split_into_parts_and_joined),
          UNIT_CASE(test_missing_source_is_a_usage_error_and_missing_privilege_is_fatal),
          UNIT_CASE(test_a_second_agent_on_the_same_slot_exits_with_a_message),
          UNIT_CASE(test_idle_and_filtered_traffic_does_not_retain_wal),
          UNIT_CASE(test_restart_with_a_table_list_keeps_its_publication),
          UNIT_CASE(test_agent_holds_confirmation_while_nats_is_down),
          UNIT_CASE(test_agent_connects_through_a_list_of_nats_urls),
          UNIT_CASE(test_two_million_row_transaction_arrives_in_bounded_memory),
          UNIT_CASE(test_kill_agent_nats_and_postgres_restarts_lose_and_duplicate_nothing))
