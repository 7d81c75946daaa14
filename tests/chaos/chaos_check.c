/* The chaos run's checker (tests/chaos/run): once the chaos has stopped, waits for every
 * role to catch up (each wait bounded by one deadline) and checks, against the source's
 * committed state, that
 *   - the log holds every committed transaction exactly once, whole, in commit order, and
 *     replaying it gives the source's rows;
 *   - the slot was never confirmed past what the log held (samples of chaos_watch);
 *   - the replica equals the source, table by table, schema included;
 *   - every consumer received every change meant for it, as the log has it, in order per
 *     row, duplicates only across a kill, dump rows never older than what it had.
 * Prints PASS/FAIL per check (tests/harness/runner.h); what a check saw goes to stdout.
 *
 *   chaos_check --name NAME --source CONNINFO --replica CONNINFO --samples FILE
 *               --deadline SECONDS [--consumer NAME,FILE,MARKS,TRUNCATE(0|1)[,REGEX]]...
 * NATS_URL (the cluster's URLs) is read from the environment, as the test harness does. */
#include "chaoslog.h"
#include "consumercheck.h"

#include "harness/fixtures.h"
#include "harness/runner.h"

#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONSUMERS 4
#define SHOW 5

static struct {
    const char *name, *source, *replica, *samples;
    long long deadline_ms;
    consumer_spec consumers[MAX_CONSUMERS];
    int n_consumers;
    chaos_log *log;
    /* The summary lines, -1 until the check that measures one has run. */
    long long lost_log, dup_in_log, replica_diff_rows;
    long long lost_consumers, went_back, dups_after_kill, state_diff_rows;
} g;

/* ---- the log ---------------------------------------------------------------------------- */

typedef struct src_txn {
    int w;
    int64_t k;
    int64_t items, scratch, truncs, ddl, keyless;
    int seen; /* times found in the log */
} src_txn;

static int cmp_src_txn(const void *a, const void *b)
{
    const src_txn *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

static src_txn *source_txns(PGconn *c, size_t *n)
{
    PGresult *r =
        PQexec(c, "SELECT w, k, items, scratch, truncs, ddl, keyless FROM txns ORDER BY w, k");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        unit_fail(__FILE__, __LINE__, "reading txns on the source: %s", PQresultErrorMessage(r));
    *n = (size_t)PQntuples(r);
    src_txn *t = calloc(*n ? *n : 1, sizeof *t);
    for (size_t i = 0; i < *n; i++) {
        t[i].w = atoi(PQgetvalue(r, (int)i, 0));
        t[i].k = atoll(PQgetvalue(r, (int)i, 1));
        t[i].items = atoll(PQgetvalue(r, (int)i, 2));
        t[i].scratch = atoll(PQgetvalue(r, (int)i, 3));
        t[i].truncs = atoll(PQgetvalue(r, (int)i, 4));
        t[i].ddl = atoll(PQgetvalue(r, (int)i, 5));
        t[i].keyless = atoll(PQgetvalue(r, (int)i, 6));
    }
    PQclear(r);
    unit_defer(free, t);
    return t;
}

/* Waits until the agent has confirmed everything written before the check began: with the
 * workload stopped, that is when the log can be complete. */
static void wait_for_agent(PGconn *c)
{
    char *end = harness_query_value(c, "SELECT pg_current_wal_lsn()::text");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s' AND "
             "confirmed_flush_lsn >= '%s'",
             g.name, end);
    long long start = harness_now_ms();
    while (harness_query_int(c, sql) == 0 && harness_now_ms() < g.deadline_ms)
        harness_sleep_ms(250);
    printf("  agent confirmed the source's WAL end %s %s after %lld ms\n", end,
           harness_query_int(c, sql) ? "" : "NOT", harness_now_ms() - start);
}

typedef struct txn_problems {
    size_t no_marker, bad_marker, bad_counts, bad_rows, dup, out_of_order, vers_twice;
} txn_problems;

static void note(size_t *count, const chaos_txn *t, const char *what)
{
    if ((*count)++ < SHOW) {
        char p[LOGPOS_TEXT_LEN];
        logpos_format(t->commit_pos, p);
        printf("    transaction committing at %s: %s\n", p, what);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* One log transaction against its txns row; returns the row's change, or NULL. */
static const chaos_change *check_txn(const chaos_txn *t, txn_problems *p)
{
    const chaos_change *marker = NULL;
    int64_t items = 0, scratch = 0, truncs = 0, ddl = 0, keyless = 0;
    bool rows_ok = true;
    for (size_t i = t->first; i < t->first + t->n; i++) {
        const chaos_change *c = &g.log->changes[i];
        switch (c->table) {
        case CT_TXNS:
            if (marker || c->op != PGCAPTURE__CHANGE__OPERATION__INSERT)
                rows_ok = false;
            marker = c;
            break;
        case CT_ITEMS:
            items++;
            break;
        case CT_SCRATCH:
            scratch++;
            truncs += c->op == PGCAPTURE__CHANGE__OPERATION__TRUNCATE;
            break;
        case CT_DDL:
            ddl += c->op == PGCAPTURE__CHANGE__OPERATION__INSERT;
            break;
        case CT_KEYLESS:
            keyless++;
            break;
        default:
            rows_ok = false;
        }
    }
    if (!marker) {
        note(&p->no_marker, t, "no txns row (not the workload's, or cut)");
        return NULL;
    }
    for (size_t i = t->first; i < t->first + t->n; i++) {
        const chaos_change *c = &g.log->changes[i];
        if (c->table != CT_ITEMS || c->op == PGCAPTURE__CHANGE__OPERATION__DELETE)
            continue;
        if (c->row.w != marker->row.w || c->row.txn != marker->row.txn || !c->row.payload_ok ||
            c->row.big == BIG_MALFORMED ||
            (c->op == PGCAPTURE__CHANGE__OPERATION__INSERT && c->row.big == BIG_ABSENT))
            rows_ok = false;
    }
    if (!rows_ok)
        note(&p->bad_rows, t, "a row that is not what its transaction wrote");
    if (items != marker->row.n_items || scratch != marker->row.n_scratch ||
        truncs != marker->row.n_truncs || ddl != marker->row.n_ddl ||
        keyless != marker->row.n_keyless)
        note(&p->bad_counts, t, "changes differ from what its txns row counts");
    return marker;
}

static void report_source_side(const src_txn *st, size_t n_st, size_t *missing)
{
    for (size_t i = 0; i < n_st; i++) {
        if (st[i].seen == 0 && (*missing)++ < SHOW)
            printf("    missing from the log: writer %d transaction %lld\n", st[i].w,
                   (long long)st[i].k);
        if (st[i].seen > 1)
            printf("    in the log %d times: writer %d transaction %lld\n", st[i].seen, st[i].w,
                   (long long)st[i].k);
    }
}

static void test_log_holds_every_committed_transaction_exactly_once_in_commit_order(void)
{
    PGconn *c = harness_connect(g.source);
    wait_for_agent(c);
    size_t n_st;
    src_txn *st = source_txns(c, &n_st);
    g.log = chaos_log_read(g.name);
    printf("  log: %zu transactions, %zu changes; source: %zu committed workload transactions\n",
           g.log->n_txns, g.log->n_changes, n_st);
    if (g.log->shape_errors)
        printf("    shape: %zu problems, first %s\n", g.log->shape_errors, g.log->shape_error);
    txn_problems p;
    memset(&p, 0, sizeof p);
    int64_t last_k[64];
    for (int i = 0; i < 64; i++)
        last_k[i] = 0;
    int64_t *vers = calloc(g.log->n_changes + 1, sizeof *vers);
    size_t n_vers = 0;
    unit_defer(free, vers);
    for (size_t i = 0; i < g.log->n_txns; i++) {
        const chaos_txn *t = &g.log->txns[i];
        const chaos_change *m = check_txn(t, &p);
        for (size_t j = t->first; j < t->first + t->n; j++) {
            const chaos_change *ch = &g.log->changes[j];
            if (ch->table == CT_ITEMS && ch->op != PGCAPTURE__CHANGE__OPERATION__DELETE)
                vers[n_vers++] = ch->row.ver;
        }
        if (!m)
            continue;
        src_txn key = {.w = m->row.w, .k = m->row.txn};
        src_txn *s = bsearch(&key, st, n_st, sizeof *st, cmp_src_txn);
        if (!s) {
            note(&p.bad_marker, t, "a transaction the source does not have");
            continue;
        }
        if (s->seen++)
            note(&p.dup, t, "a transaction the log already had");
        if (s->w >= 0 && s->w < 64) {
            if (s->k <= last_k[s->w])
                note(&p.out_of_order, t, "before an earlier transaction of its writer");
            last_k[s->w] = s->k;
        }
        if (s->items != m->row.n_items || s->scratch != m->row.n_scratch ||
            s->truncs != m->row.n_truncs || s->ddl != m->row.n_ddl ||
            s->keyless != m->row.n_keyless)
            note(&p.bad_counts, t, "txns row differs from the source's");
    }
    qsort(vers, n_vers, sizeof *vers, cmp_i64);
    for (size_t i = 1; i < n_vers; i++)
        p.vers_twice += vers[i] == vers[i - 1];
    size_t missing = 0;
    report_source_side(st, n_st, &missing);
    printf("  checked: %zu transactions matched one by one, %zu row versions unique\n",
           g.log->n_txns - p.no_marker - p.bad_marker, n_vers - p.vers_twice);
    EXPECT_EQ_UINT(0, g.log->shape_errors);
    g.lost_log = (long long)missing;
    g.dup_in_log = (long long)p.dup;
    EXPECT_EQ_UINT(0, missing);
    EXPECT_EQ_UINT(0, p.dup);
    EXPECT_EQ_UINT(0, p.no_marker);
    EXPECT_EQ_UINT(0, p.bad_marker);
    EXPECT_EQ_UINT(0, p.bad_counts);
    EXPECT_EQ_UINT(0, p.bad_rows);
    EXPECT_EQ_UINT(0, p.out_of_order);
    EXPECT_EQ_UINT(0, p.vers_twice);
    EXPECT_TRUE(n_st > 0);
}

/* ---- replaying the log ------------------------------------------------------------------ */

typedef struct item_state {
    bool present;
    chaos_row row;
} item_state;

static void replay(item_state *items, int64_t n_ids, int64_t **scratch, size_t *n_scratch,
                   size_t *bad)
{
    size_t cap = 0;
    for (size_t t = 0; t < g.log->n_txns; t++) {
        for (size_t i = g.log->txns[t].first; i < g.log->txns[t].first + g.log->txns[t].n; i++) {
            const chaos_change *c = &g.log->changes[i];
            if (c->table == CT_SCRATCH) {
                if (c->op == PGCAPTURE__CHANGE__OPERATION__TRUNCATE) {
                    *n_scratch = 0;
                } else if (c->op == PGCAPTURE__CHANGE__OPERATION__INSERT) {
                    if (*n_scratch == cap) {
                        cap = cap ? cap * 2 : 1024;
                        *scratch = realloc(*scratch, cap * sizeof **scratch);
                    }
                    (*scratch)[(*n_scratch)++] = c->row.id;
                }
                continue;
            }
            if (c->table != CT_ITEMS || c->row.id <= 0 || c->row.id >= n_ids) {
                *bad += c->table == CT_ITEMS;
                continue;
            }
            item_state *s = &items[c->row.id];
            if (c->op == PGCAPTURE__CHANGE__OPERATION__DELETE) {
                *bad += !s->present;
                s->present = false;
                continue;
            }
            *bad += (c->op == PGCAPTURE__CHANGE__OPERATION__INSERT) == s->present;
            big_state keep = s->row.big;
            uint32_t keep_len = s->row.big_len;
            int64_t keep_token = s->row.big_token;
            s->row = c->row;
            if (c->row.big == BIG_ABSENT) { /* unchanged TOAST value */
                s->row.big = keep, s->row.big_len = keep_len, s->row.big_token = keep_token;
            }
            s->present = true;
        }
    }
}

static void test_log_replayed_gives_the_source_rows(void)
{
    if (!g.log)
        unit_fail(__FILE__, __LINE__, "the log was not read");
    PGconn *c = harness_connect(g.source);
    int64_t n_ids = harness_query_int(c, "SELECT last_value + 1 FROM ids");
    item_state *items = calloc((size_t)n_ids, sizeof *items);
    int64_t *scratch = NULL;
    size_t n_scratch = 0, bad = 0, differ = 0;
    unit_defer(free, items);
    replay(items, n_ids, &scratch, &n_scratch, &bad);
    unit_defer(free, scratch);
    PGresult *r = PQexec(c, "SELECT id, ver, w, txn, big IS NULL, length(big), "
                            "split_part(big, '.', 1) FROM items ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        unit_fail(__FILE__, __LINE__, "reading items: %s", PQresultErrorMessage(r));
    size_t rows = (size_t)PQntuples(r), present = 0;
    for (int64_t id = 1; id < n_ids; id++)
        present += items[id].present;
    for (size_t i = 0; i < rows; i++) {
        int64_t id = atoll(PQgetvalue(r, (int)i, 0));
        const item_state *s = id > 0 && id < n_ids ? &items[id] : NULL;
        bool isnull = PQgetvalue(r, (int)i, 4)[0] == 't';
        bool same = s && s->present && s->row.ver == atoll(PQgetvalue(r, (int)i, 1)) &&
                    s->row.w == atoi(PQgetvalue(r, (int)i, 2)) &&
                    s->row.txn == atoll(PQgetvalue(r, (int)i, 3)) &&
                    (isnull ? s->row.big == BIG_NULL
                            : s->row.big == BIG_VALUE &&
                                  s->row.big_len == (uint32_t)atol(PQgetvalue(r, (int)i, 5)) &&
                                  s->row.big_token == atoll(PQgetvalue(r, (int)i, 6)));
        if (!same && differ++ < SHOW)
            printf("    items id %lld: the log replayed gives %s\n", (long long)id,
                   !s || !s->present ? "no row" : "another version");
    }
    PQclear(r);
    int64_t src_scratch = harness_query_int(c, "SELECT count(*) FROM scratch");
    printf("  replayed: %zu items rows (source %zu), %zu scratch rows (source %lld)\n", present,
           rows, n_scratch, (long long)src_scratch);
    EXPECT_EQ_UINT(0, bad);
    EXPECT_EQ_UINT(0, differ);
    EXPECT_EQ_UINT(rows, present);
    EXPECT_EQ_INT(src_scratch, (long long)n_scratch);
}

/* ---- confirmation ----------------------------------------------------------------------- */

static void test_slot_never_confirmed_past_what_the_log_held(void)
{
    if (!g.log)
        unit_fail(__FILE__, __LINE__, "the log was not read");
    FILE *f = fopen(g.samples, "r");
    if (!f)
        unit_fail(__FILE__, __LINE__, "no samples file %s", g.samples);
    unsigned long long confirmed, lsn;
    unsigned seq;
    size_t samples = 0, bad = 0;
    while (fscanf(f, "%llu %llu %u", &confirmed, &lsn, &seq) == 3) {
        samples++;
        log_pos held = {lsn, seq};
        /* PostgreSQL skips, on restart, every transaction whose commit record lies below
         * the confirmed position: each of those must have been in the log, whole. */
        size_t lo = 0, hi = g.log->n_txns;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (g.log->txns[mid].lsn < confirmed)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0)
            continue;
        const chaos_txn *t = &g.log->txns[lo - 1];
        if (logpos_cmp(t->commit_pos, held) > 0 && bad++ < SHOW) {
            char a[LOGPOS_LSN_LEN], b[LOGPOS_TEXT_LEN], h[LOGPOS_TEXT_LEN];
            logpos_format_lsn(confirmed, a);
            logpos_format(t->commit_pos, b);
            logpos_format(held, h);
            printf("    confirmed %s while the log held up to %s only (transaction at %s)\n", a, h,
                   b);
        }
    }
    fclose(f);
    printf("  %zu samples of (confirmed_flush_lsn, log end) checked\n", samples);
    EXPECT_EQ_UINT(0, bad);
    EXPECT_TRUE(samples > 0);
}

/* ---- the replica ------------------------------------------------------------------------ */

static const char *const replica_queries[][2] = {
    {"items", "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(md5(t::text), '' ORDER BY "
              "md5(t::text)), '')) FROM items t"},
    {"txns", "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(md5(t::text), '' ORDER BY "
             "md5(t::text)), '')) FROM txns t"},
    {"scratch", "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(md5(t::text), '' ORDER "
                "BY md5(t::text)), '')) FROM scratch t"},
    {"keyless", "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(md5(t::text), '' ORDER "
                "BY md5(t::text)), '')) FROM keyless t"},
    {"items columns", "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
                      "ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'items'::regclass "
                      "AND attnum > 0 AND NOT attisdropped"},
    {"items indexes", "SELECT string_agg(indexrelid::regclass::text, ', ' ORDER BY "
                      "indexrelid::regclass::text) FROM pg_index WHERE indrelid = "
                      "'items'::regclass"},
};
#define N_REPLICA_QUERIES (sizeof replica_queries / sizeof replica_queries[0])

/* Number of differences between source and replica now; prints them when `show`. */
static int replica_differences(PGconn *s, PGconn *r, bool show)
{
    int differ = 0;
    for (size_t i = 0; i < N_REPLICA_QUERIES; i++) {
        char *a = harness_query_value(s, replica_queries[i][1]);
        PGresult *res = PQexec(r, replica_queries[i][1]);
        const char *b = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                            ? PQgetvalue(res, 0, 0)
                            : "(cannot read)";
        if (!a || strcmp(a, b) != 0) {
            differ++;
            if (show)
                printf("    %s: source %s, replica %s\n", replica_queries[i][0], a ? a : "NULL", b);
        }
        PQclear(res);
    }
    return differ;
}

/* Rows of `table` in one database and not the other (each row by the md5 of its text). */
static long long table_row_diff(PGconn *s, PGconn *r, const char *table)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT md5(t::text) FROM %s t ORDER BY 1", table);
    PGresult *a = PQexec(s, sql), *b = PQexec(r, sql);
    long long diff = -1;
    if (PQresultStatus(a) == PGRES_TUPLES_OK && PQresultStatus(b) == PGRES_TUPLES_OK) {
        int i = 0, j = 0, na = PQntuples(a), nb = PQntuples(b);
        diff = 0;
        while (i < na || j < nb) {
            int c = i == na ? 1 : j == nb ? -1 : strcmp(PQgetvalue(a, i, 0), PQgetvalue(b, j, 0));
            diff += c != 0;
            i += c <= 0;
            j += c >= 0;
        }
    }
    PQclear(a);
    PQclear(b);
    return diff;
}

static void test_replica_equals_the_source(void)
{
    PGconn *s = harness_connect(g.source);
    PGconn *r = NULL;
    long long start = harness_now_ms();
    int differ = -1;
    while (differ != 0 && harness_now_ms() < g.deadline_ms) {
        if (!r) {
            r = PQconnectdb(g.replica);
            if (PQstatus(r) != CONNECTION_OK) {
                PQfinish(r);
                r = NULL;
                harness_sleep_ms(500);
                continue;
            }
            unit_defer((void (*)(void *))PQfinish, r);
        }
        differ = replica_differences(s, r, false);
        if (differ)
            harness_sleep_ms(500);
    }
    if (!r)
        unit_fail(__FILE__, __LINE__, "replica unreachable");
    if (differ)
        replica_differences(s, r, true);
    else
        printf("  replica equal to the source (%s; %s) after %lld ms\n",
               harness_query_value(s, replica_queries[0][1]),
               harness_query_value(s, replica_queries[4][1]), harness_now_ms() - start);
    g.replica_diff_rows = 0;
    static const char *const tables[] = {"items", "txns", "scratch", "keyless"};
    for (size_t i = 0; i < 4; i++) {
        long long d = table_row_diff(s, r, tables[i]);
        g.replica_diff_rows = d < 0 || g.replica_diff_rows < 0 ? -1 : g.replica_diff_rows + d;
    }
    EXPECT_EQ_INT(0, differ);
}

/* ---- consumers -------------------------------------------------------------------------- */

static void add(long long *sum, size_t v)
{
    *sum = *sum < 0 ? (long long)v : *sum + (long long)v;
}

static void check_consumer(int i)
{
    if (!g.log)
        unit_fail(__FILE__, __LINE__, "the log was not read");
    if (i < g.n_consumers) {
        consumer_result res;
        memset(&res, 0, sizeof res);
        consumer_check(&g.consumers[i], g.log, g.source, g.deadline_ms, &res);
        add(&g.lost_consumers, res.lost);
        add(&g.went_back, res.went_back);
        add(&g.dups_after_kill, res.dups_after_kill);
        add(&g.state_diff_rows, res.state_diff_rows);
    }
}
static void test_consumer_1_received_every_change_in_order(void)
{
    check_consumer(0);
}
static void test_consumer_2_received_every_change_in_order(void)
{
    check_consumer(1);
}
static void test_consumer_3_received_every_change_in_order(void)
{
    check_consumer(2);
}
static void test_consumer_4_received_every_change_in_order(void)
{
    check_consumer(3);
}

/* ---- main ------------------------------------------------------------------------------- */

static bool parse_consumer(char *arg, consumer_spec *c)
{
    char *fields[5] = {0};
    int n = 0;
    for (char *tok = strtok(arg, ","); tok && n < 5; tok = strtok(NULL, ","))
        fields[n++] = tok;
    if (n < 4)
        return false;
    snprintf(c->name, sizeof c->name, "%s", fields[0]);
    snprintf(c->file, sizeof c->file, "%s", fields[1]);
    snprintf(c->marks, sizeof c->marks, "%s", fields[2]);
    c->truncate = strcmp(fields[3], "1") == 0;
    snprintf(c->regex, sizeof c->regex, "%s", n == 5 ? fields[4] : "");
    return true;
}

int main(int argc, char **argv)
{
    long long deadline_s = 180;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--name") == 0)
            g.name = v;
        else if (strcmp(k, "--source") == 0)
            g.source = v;
        else if (strcmp(k, "--replica") == 0)
            g.replica = v;
        else if (strcmp(k, "--samples") == 0)
            g.samples = v;
        else if (strcmp(k, "--deadline") == 0)
            deadline_s = atoll(v);
        else if (strcmp(k, "--consumer") == 0 && g.n_consumers < MAX_CONSUMERS &&
                 parse_consumer(argv[i + 1], &g.consumers[g.n_consumers]))
            g.n_consumers++;
        else {
            fprintf(stderr, "chaos_check: bad argument %s\n", k);
            return 2;
        }
    }
    if (!g.name || !g.source || !g.replica || !g.samples) {
        fprintf(stderr, "chaos_check: --name, --source, --replica and --samples are required\n");
        return 2;
    }
    g.deadline_ms = harness_now_ms() + deadline_s * 1000;
    static const unit_case cases[] = {
        UNIT_CASE(test_log_holds_every_committed_transaction_exactly_once_in_commit_order),
        UNIT_CASE(test_log_replayed_gives_the_source_rows),
        UNIT_CASE(test_slot_never_confirmed_past_what_the_log_held),
        UNIT_CASE(test_replica_equals_the_source),
        UNIT_CASE(test_consumer_1_received_every_change_in_order),
        UNIT_CASE(test_consumer_2_received_every_change_in_order),
        UNIT_CASE(test_consumer_3_received_every_change_in_order),
        UNIT_CASE(test_consumer_4_received_every_change_in_order),
    };
    size_t n = 4 + (size_t)g.n_consumers;
    char *no_filter[] = {argv[0], NULL};
    g.lost_log = g.dup_in_log = g.replica_diff_rows = -1;
    g.lost_consumers = g.went_back = g.dups_after_kill = g.state_diff_rows = -1;
    int rc = unit_run("chaos", cases, n, 1, no_filter);
    /* The summary, one `name: value` line each (-1: its check did not get that far). */
    printf("lost: %lld\n",
           g.lost_log < 0 || g.lost_consumers < 0 ? -1 : g.lost_log + g.lost_consumers);
    printf("duplicated_in_log: %lld\n", g.dup_in_log);
    printf("replica_diff_rows: %lld\n", g.replica_diff_rows);
    printf("consumer_state_diff_rows: %lld\n", g.state_diff_rows);
    printf("version_went_back: %lld\n", g.went_back);
    printf("duplicates_after_a_kill: %lld\n", g.dups_after_kill);
    chaos_log_free(g.log);
    return rc;
}
