/* The chaos run's writer: transactions on the source that the checker can account for
 * exactly. Every row version of `items` carries a unique `ver` (from one sequence) and the
 * writer and transaction that wrote it, with a payload derived from them; each transaction
 * ends by inserting one `txns` row that says what it did (items changes, scratch changes,
 * truncates, DDL statements), so the committed set is whatever `txns` holds at the end,
 * whatever the connection saw when PostgreSQL restarted under it.
 *
 *   chaos_workload CONNINFO WRITER WRITERS SEED SECONDS
 *
 * Each writer updates and deletes only the rows it inserted (column w), so no two write the
 * same row and a row's versions follow its writer's order: ver increases along a row's
 * history, and ids (from their own sequence) are never used again. */
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIVE 4000
#define SQL_LEN 8192
#define BIG_REPEAT "40000"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

typedef struct writer {
    const char *conninfo;
    PGconn *conn;
    int w, writers;
    uint64_t rng;
    int64_t k;
    int64_t live[MAX_LIVE];
    int n_live;
    int ddl_done;
    unsigned long committed, failed;
} writer;

static uint32_t rnd(writer *wr, uint32_t n)
{
    /* xorshift64*: the same seed gives the same choices. */
    wr->rng ^= wr->rng >> 12;
    wr->rng ^= wr->rng << 25;
    wr->rng ^= wr->rng >> 27;
    return (uint32_t)((wr->rng * 2685821657736338717ULL) >> 33) % n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* (Re)connects and reloads the ids this writer owns: after a failure the writer cannot know
 * whether its last COMMIT took effect, so it asks. */
static int resync(writer *wr)
{
    if (wr->conn && PQstatus(wr->conn) != CONNECTION_OK) {
        PQfinish(wr->conn);
        wr->conn = NULL;
    }
    if (!wr->conn) {
        wr->conn = PQconnectdb(wr->conninfo);
        if (PQstatus(wr->conn) != CONNECTION_OK) {
            PQfinish(wr->conn);
            wr->conn = NULL;
            return -1;
        }
    }
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM items WHERE w = %d ORDER BY id DESC LIMIT %d", wr->w,
             MAX_LIVE);
    PGresult *r = PQexec(wr->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return -1;
    }
    wr->n_live = PQntuples(r);
    for (int i = 0; i < wr->n_live; i++)
        wr->live[i] = atoll(PQgetvalue(r, i, 0));
    PQclear(r);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(k), 0), count(*) FILTER (WHERE ddl > 0) FROM txns WHERE w = %d",
             wr->w);
    r = PQexec(wr->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return -1;
    }
    int64_t k = atoll(PQgetvalue(r, 0, 0));
    wr->ddl_done = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (k > wr->k)
        wr->k = k;
    return 0;
}

/* Runs one statement; returns the rows it affected, or -1. With `res`, the result is kept
 * there (caller clears). */
static long run_res(writer *wr, const char *sql, PGresult **res)
{
    PGresult *r = PQexec(wr->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    long n = -1;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        n = atol(PQcmdTuples(r));
    else if (getenv("CHAOS_VERBOSE"))
        fprintf(stderr, "writer %d: %.120s: %s", wr->w, sql, PQresultErrorMessage(r));
    if (res && n >= 0)
        *res = r;
    else
        PQclear(r);
    return n;
}

static long run(writer *wr, const char *sql)
{
    return run_res(wr, sql, NULL);
}

/* Appends "ARRAY[...]::bigint[]" of n ids taken from the live set (removed when `take`). */
static void pick_ids(writer *wr, int n, int take, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "ARRAY[");
    for (int i = 0; i < n && wr->n_live > 0; i++) {
        int j = (int)rnd(wr, (uint32_t)wr->n_live);
        o += (size_t)snprintf(out + o, len - o, "%s%lld", i ? "," : "", (long long)wr->live[j]);
        if (take)
            wr->live[j] = wr->live[--wr->n_live];
    }
    snprintf(out + o, len - o, "]::bigint[]");
}

/* Now and then a value far larger than a log batch (split into parts), stored out of line
 * so that later updates leave it unchanged (absent from their change). */
static bool want_big(writer *wr)
{
    return rnd(wr, 100) < 3;
}

/* The statements of one transaction; returns 0 when every one succeeded. */
static int write_txn(writer *wr, int64_t k, int elapsed_pct)
{
    char sql[SQL_LEN], ids[2048];
    long items = 0, scratch = 0, truncs = 0, ddl = 0, keyless = 0, n;
    if (run(wr, "BEGIN") < 0)
        return -1;
    /* DDL twice a run, from writer 0, inside a transaction with DML. */
    if (wr->w == 0 &&
        ((wr->ddl_done == 0 && elapsed_pct >= 30) || (wr->ddl_done == 1 && elapsed_pct >= 60))) {
        const char *stmt = wr->ddl_done == 0 ? "ALTER TABLE items ADD COLUMN note text"
                                             : "CREATE INDEX items_w_txn ON items (w, txn)";
        if (run(wr, stmt) < 0)
            return -1;
        ddl++;
    }
    int n_ins = (int)rnd(wr, 5), n_upd = (int)rnd(wr, 5), n_del = (int)rnd(wr, 3);
    if (wr->n_live < 50)
        n_del = 0;
    if (n_ins > 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO items (id, ver, w, txn, payload, big) "
                 "SELECT nextval('ids'), s.v, %d, %lld, 'v' || s.v || '-%d-%lld', %s "
                 "FROM (SELECT nextval('vers') AS v FROM generate_series(1, %d)) s RETURNING id",
                 wr->w, (long long)k, wr->w, (long long)k,
                 want_big(wr) ? "repeat(s.v || '.', " BIG_REPEAT ")" : "NULL", n_ins);
        PGresult *r = NULL;
        if ((n = run_res(wr, sql, &r)) < 0)
            return -1;
        for (int i = 0; i < PQntuples(r) && wr->n_live < MAX_LIVE; i++)
            wr->live[wr->n_live++] = atoll(PQgetvalue(r, i, 0));
        PQclear(r);
        items += n;
    }
    if (n_upd > 0 && wr->n_live > 0) {
        pick_ids(wr, n_upd, 0, ids, sizeof ids);
        snprintf(sql, sizeof sql,
                 "UPDATE items SET ver = s.v, txn = %lld, payload = 'v' || s.v || '-%d-%lld'%s "
                 "FROM (SELECT x, nextval('vers') AS v FROM (SELECT DISTINCT unnest(%s) x) d) s "
                 "WHERE items.id = s.x",
                 (long long)k, wr->w, (long long)k,
                 want_big(wr) ? ", big = repeat(s.v || '.', " BIG_REPEAT ")" : "", ids);
        if ((n = run(wr, sql)) < 0)
            return -1;
        items += n;
    }
    if (n_del > 0) {
        pick_ids(wr, n_del, 1, ids, sizeof ids);
        snprintf(sql, sizeof sql, "DELETE FROM items WHERE id = ANY(%s)", ids);
        if ((n = run(wr, sql)) < 0)
            return -1;
        items += n;
    }
    uint32_t s = rnd(wr, 100);
    if (s < 2) {
        if (run(wr, "TRUNCATE scratch") < 0)
            return -1;
        truncs++, scratch++;
    } else if (s < 15) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO scratch (w, k) SELECT %d, %lld FROM generate_series(1, %u)", wr->w,
                 (long long)k, 1 + rnd(wr, 3));
        if ((n = run(wr, sql)) < 0)
            return -1;
        scratch += n;
    }
    /* The keyless table (REPLICA IDENTITY FULL): rows unique by n, some with a NULL note,
     * found by every column; each writer touches only its own. */
    uint32_t kl = rnd(wr, 100);
    if (kl < 10) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO keyless (w, k, n, note) SELECT %d, %lld, nextval('vers'), "
                 "CASE WHEN i %% 2 = %u THEN NULL ELSE 'n' || i END "
                 "FROM generate_series(1, %u) i",
                 wr->w, (long long)k, rnd(wr, 2), 1 + rnd(wr, 2));
        if ((n = run(wr, sql)) < 0)
            return -1;
        keyless += n;
    } else if (kl < 16) {
        snprintf(sql, sizeof sql,
                 "UPDATE keyless SET k = %lld, note = CASE WHEN note IS NULL THEN 'u' END "
                 "WHERE n = (SELECT min(n) FROM keyless WHERE w = %d AND k <> %lld)",
                 (long long)k, wr->w, (long long)k);
        if ((n = run(wr, sql)) < 0)
            return -1;
        keyless += n;
    } else if (kl < 20) {
        snprintf(sql, sizeof sql,
                 "DELETE FROM keyless WHERE n = (SELECT min(n) FROM keyless WHERE w = %d)", wr->w);
        if ((n = run(wr, sql)) < 0)
            return -1;
        keyless += n;
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO txns (w, k, items, scratch, truncs, ddl, keyless) VALUES (%d, %lld, "
             "%ld, %ld, %ld, %ld, %ld)",
             wr->w, (long long)k, items, scratch, truncs, ddl, keyless);
    if (run(wr, sql) < 0 || run(wr, "COMMIT") < 0)
        return -1;
    wr->ddl_done += ddl > 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: chaos_workload CONNINFO WRITER WRITERS SEED SECONDS\n");
        return 2;
    }
    writer wr;
    memset(&wr, 0, sizeof wr);
    wr.conninfo = argv[1];
    wr.w = atoi(argv[2]);
    wr.writers = atoi(argv[3]);
    wr.rng = (uint64_t)strtoull(argv[4], NULL, 10) * 7919 + (uint64_t)wr.w * 104729 + 1;
    int64_t seconds = atoll(argv[5]);
    if (wr.writers < 1 || wr.w < 0 || wr.w >= wr.writers || seconds < 1) {
        fprintf(stderr, "chaos_workload: bad arguments\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int64_t start = now_ms(), end = start + seconds * 1000;
    int synced = 0;
    while (!stopping && now_ms() < end) {
        if (!synced) {
            if (resync(&wr) != 0) {
                sleep_ms(200);
                continue;
            }
            synced = 1;
        }
        int pct = (int)((now_ms() - start) * 100 / (end - start));
        if (write_txn(&wr, ++wr.k, pct) == 0) {
            wr.committed++;
        } else {
            /* Unknown outcome: reconnect and reread what this writer owns. */
            wr.failed++;
            if (wr.conn && PQstatus(wr.conn) == CONNECTION_OK)
                PQclear(PQexec(wr.conn, "ROLLBACK"));
            synced = 0;
        }
        sleep_ms(5 + (int)rnd(&wr, 25));
    }
    PQfinish(wr.conn);
    printf("writer %d: %lu transactions committed, %lu failed or unknown\n", wr.w, wr.committed,
           wr.failed);
    return 0;
}
