/* Dumps end to end: source -> agent -> JetStream -> replica applier -> replica; controller;
 * gateway (embedded) with a resolver naming the replica; a libpgcapture consumer reading
 * live changes and dump rows together. Checks every row once with the replica's bytes, and
 * that dumps never go back in time while writers update the rows being dumped. */
#include "harness/runner.h"
#include "core/log.h"
#include "harness/fixtures.h"
#include "harness/services.h"

#include "pgcapture.h"
#include "pgcapture/gateway.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pipeline {
    char src[256], rep[256], name[64], uri[80];
    char agent_log[512], replica_log[512];
    PGconn *s, *r;
    harness_controller ctl;
    pgc_gateway *gw;
    char gw_addr[64];
} pipeline;

static pgc_status resolve(void *arg, const char *uri, const pgc_peer *peer, pgc_uri_target *out,
                          char *err, size_t err_len)
{
    (void)peer;
    pipeline *p = arg;
    if (strcmp(uri, p->uri) != 0) {
        snprintf(err, err_len, "unknown uri %s", uri);
        return PGC_ERR_NOT_FOUND;
    }
    char durable[80];
    snprintf(durable, sizeof durable, "d_%s", p->name);
    pgc_status rc = pgc_uri_target_set_source(out, p->name, err, err_len);
    if (rc == PGC_OK)
        rc = pgc_uri_target_set_durable(out, durable, err, err_len);
    if (rc == PGC_OK)
        rc = pgc_uri_target_set_replica(out, p->rep, err, err_len);
    return rc;
}

static void destroy_gateway(void *g)
{
    pgc_gateway_destroy(g);
}

static void start_gateway(pipeline *p)
{
    if (getenv("PGC_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_DEBUG);
    pgc_gateway_options o;
    pgc_gateway_options_init(&o);
    o.nats_url = harness_nats_url();
    o.controller = p->ctl.addr;
    o.retry_delay_ms = 200;
    pgc_resolver r = {p, resolve};
    char err[512];
    if (pgc_gateway_create(&o, &r, &p->gw, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "pgc_gateway_create: %s", err);
    unit_defer(destroy_gateway, p->gw);
    int port = 0;
    if (pgc_gateway_serve(p->gw, "127.0.0.1:0", &port, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "pgc_gateway_serve: %s", err);
    snprintf(p->gw_addr, sizeof p->gw_addr, "127.0.0.1:%d", port);
}

/* Source with `ddl` run before the replica is initialised from it (so the data travels by
 * pg_dump, not by the log), then agent, applier, controller and gateway. */
static pipeline *pipeline_start(const char *ddl)
{
    pipeline *p = calloc(1, sizeof *p);
    unit_defer(free, p);
    harness_db_create(true, p->src, sizeof p->src);
    harness_replica_db_create(false, p->rep, sizeof p->rep);
    harness_require_pg_dump_for(p->src);
    harness_unique_name(p->name, sizeof p->name);
    snprintf(p->uri, sizeof p->uri, "u_%s", p->name);
    p->s = harness_connect(p->src);
    harness_exec(p->s, ddl);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    char init_log[512];
    snprintf(init_log, sizeof init_log, "%s/replica-init-%s.log", dir ? dir : "/tmp", p->name);
    const char *init[] = {"replica", "init",   "--source", p->src, "--replica",
                          p->rep,    "--name", p->name,    NULL};
    pid_t pid = harness_spawn(init_log, init);
    if (harness_wait_exit(pid, 120000) != 0) {
        harness_print_log_tail(init_log, 30);
        unit_fail(__FILE__, __LINE__, "replica init failed");
    }
    p->r = harness_connect(p->rep);
    harness_agent_start(p->src, p->name, NULL, p->agent_log, sizeof p->agent_log);
    harness_agent_wait_streaming(p->src, p->name, p->agent_log, 60000);
    snprintf(p->replica_log, sizeof p->replica_log, "%s/replica-%s.log", dir ? dir : "/tmp",
             p->name);
    const char *rep[] = {"replica", "--replica", p->rep,        "--nats-url", harness_nats_url(),
                         "--name",  p->name,     "--log-level", "debug",      NULL};
    harness_spawn(p->replica_log, rep);
    harness_controller_start(&p->ctl, (const char *const[]){"--requeue-backoff", "200ms", NULL});
    start_gateway(p);
    return p;
}

static void schedule_table(pipeline *p, const char *table, int pages_per_item)
{
    char ppi[16], log[512];
    snprintf(ppi, sizeof ppi, "%d", pages_per_item);
    snprintf(log, sizeof log, "%s/schedule-%s.log",
             getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp", p->name);
    const char *args[] = {"schedule", "--controller",     p->ctl.addr, "--uri",
                          p->uri,     "--table",          table,       "--replica",
                          p->rep,     "--pages-per-item", ppi,         NULL};
    pid_t pid = harness_spawn(log, args);
    if (harness_wait_exit(pid, 60000) != 0) {
        harness_print_log_tail(log, 20);
        unit_fail(__FILE__, __LINE__, "pgcapture schedule %s failed", table);
    }
}

/* ---- a row as text: "name=hex;..." of its binary values, for byte-for-byte compare ---- */

static char *key_of_change(const pgc_change *c)
{
    size_t n = 0;
    while (pgc_change_get_field_at(c, PGC_ROW_NEW, n))
        n++;
    size_t cap = 64;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const pgc_field *f = pgc_change_get_field_at(c, PGC_ROW_NEW, i);
        pgc_field_get_data(f, &len);
        cap += strlen(pgc_field_get_name(f)) + 8 + 2 * len;
    }
    char *s = malloc(cap);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const pgc_field *f = pgc_change_get_field_at(c, PGC_ROW_NEW, i);
        size_t len = 0;
        const uint8_t *d = pgc_field_get_data(f, &len);
        off += (size_t)snprintf(s + off, cap - off, "%s=", pgc_field_get_name(f));
        if (pgc_field_get_kind(f) == PGC_VALUE_KIND_NULL)
            off += (size_t)snprintf(s + off, cap - off, "NULL");
        else
            for (size_t k = 0; k < len; k++)
                off += (size_t)snprintf(s + off, cap - off, "%02x", d[k]);
        off += (size_t)snprintf(s + off, cap - off, ";");
    }
    return s;
}

typedef struct strset {
    char **v;
    size_t n, cap;
} strset;

static void strset_add(strset *s, char *x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = x;
}

static void strset_free(void *arg)
{
    strset *s = arg;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s);
}

static strset *strset_new(void)
{
    strset *s = calloc(1, sizeof *s);
    unit_defer(strset_free, s);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static strset *replica_keys(PGconn *c, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
    EXPECT_EQ_INT(PGRES_TUPLES_OK, PQresultStatus(r));
    strset *s = strset_new();
    for (int row = 0; row < PQntuples(r); row++) {
        size_t cap = 64;
        for (int i = 0; i < PQnfields(r); i++)
            cap += strlen(PQfname(r, i)) + 8 + 2 * (size_t)PQgetlength(r, row, i);
        char *k = malloc(cap);
        size_t off = 0;
        for (int i = 0; i < PQnfields(r); i++) {
            off += (size_t)snprintf(k + off, cap - off, "%s=", PQfname(r, i));
            if (PQgetisnull(r, row, i))
                off += (size_t)snprintf(k + off, cap - off, "NULL");
            else
                for (int b = 0; b < PQgetlength(r, row, i); b++)
                    off += (size_t)snprintf(k + off, cap - off, "%02x",
                                            (uint8_t)PQgetvalue(r, row, i)[b]);
            off += (size_t)snprintf(k + off, cap - off, ";");
        }
        strset_add(s, k);
    }
    PQclear(r);
    return s;
}

/* ---- the consumer ---------------------------------------------------------------------- */

typedef struct dump_collector {
    pgc_consumer *consumer;
    strset *rows[2]; /* dump rows of tables[0] and tables[1] */
    const char *tables[2];
    size_t want; /* stop once this many dump rows were received */
    size_t got, items_done;
    const char *requeue_once_table; /* requeue the 10th dump row of this table once */
    int batch_limit;                /* the consumer's (0: libpgcapture's batch mode) */
    bool requeued;
    atomic_int done;
} dump_collector;

static pgc_verdict on_dump_change(void *arg, const pgc_change *c, const char **reason)
{
    dump_collector *k = arg;
    if (pgc_change_get_lsn(c) != 0)
        return PGC_VERDICT_ACK; /* live changes: not what this case counts */
    for (int t = 0; t < 2; t++) {
        if (!k->tables[t] || strcmp(pgc_change_get_table(c), k->tables[t]) != 0)
            continue;
        if (k->requeue_once_table && !k->requeued && k->rows[t]->n == 9 &&
            strcmp(k->tables[t], k->requeue_once_table) == 0) {
            k->requeued = true;
            *reason = "test: requeue one dump row";
            /* The rows of the item received so far come again with the whole item. */
            return PGC_VERDICT_REQUEUE;
        }
        strset_add(k->rows[t], key_of_change(c));
    }
    size_t dlen = 0;
    const uint8_t *d = pgc_change_get_checkpoint_data(c, &dlen);
    if (dlen == 1 && d[0] == 1)
        k->items_done++;
    if (++k->got >= k->want)
        pgc_consumer_stop(k->consumer);
    return PGC_VERDICT_ACK;
}

static void *stop_after(void *arg)
{
    dump_collector *k = arg;
    for (int i = 0; i < 1800 && !atomic_load(&k->done); i++)
        harness_sleep_ms(100);
    pgc_consumer_stop(k->consumer);
    return NULL;
}

static void free_consumer(void *arg)
{
    pgc_consumer_destroy(arg);
}

static void run_consumer(pipeline *p, dump_collector *k)
{
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = p->gw_addr;
    o.uri = p->uri;
    o.batch_limit = k->batch_limit;
    char err[512];
    EXPECT_EQ_INT(PGC_OK, pgc_consumer_create(&o, &k->consumer, err, sizeof err));
    unit_defer(free_consumer, k->consumer);
    pthread_t t;
    pthread_create(&t, NULL, stop_after, k);
    int rc =
        pgc_consumer_run(k->consumer, &(pgc_change_handler){k, on_dump_change}, err, sizeof err);
    atomic_store(&k->done, 1);
    pthread_join(t, NULL);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "consumer run: %s", err);
}

static void expect_same_rows(strset *got, strset *want, const char *table)
{
    qsort(got->v, got->n, sizeof(char *), cmp_str);
    qsort(want->v, want->n, sizeof(char *), cmp_str);
    if (got->n != want->n)
        unit_fail(__FILE__, __LINE__, "%s: %zu dump rows, the replica has %zu", table, got->n,
                  want->n);
    for (size_t i = 0; i < got->n; i++)
        if (strcmp(got->v[i], want->v[i]) != 0)
            unit_fail(__FILE__, __LINE__, "%s: row %zu differs: dump %.200s, replica %.200s", table,
                      i, got->v[i], want->v[i]);
}

/* In batch mode (libpgcapture's default): rows packed into batches, one ack per batch. */
static void test_full_dumps_deliver_every_row_once_with_the_replicas_bytes(void)
{
    pipeline *p = pipeline_start(
        "CREATE TABLE comp (a int, b text, v numeric, t timestamptz, PRIMARY KEY (a, b));"
        "INSERT INTO comp SELECT i / 4, 'k' || (i % 4), i * 0.5, "
        "  '2020-01-01'::timestamptz + i * interval '1 s' FROM generate_series(1, 200000) i;"
        "CREATE TABLE nokey (x int, y text);"
        "INSERT INTO nokey SELECT i % 100, CASE WHEN i % 7 = 0 THEN NULL ELSE 'same' END "
        "  FROM generate_series(1, 200000) i;"
        "ANALYZE comp; ANALYZE nokey");
    schedule_table(p, "public.comp", 300);
    schedule_table(p, "public.nokey", 300);
    dump_collector *k = calloc(1, sizeof *k);
    unit_defer(free, k);
    k->tables[0] = "comp";
    k->tables[1] = "nokey";
    k->rows[0] = strset_new();
    k->rows[1] = strset_new();
    k->want = 400000;
    run_consumer(p, k);
    expect_same_rows(k->rows[0], replica_keys(p->r, "comp"), "comp");
    expect_same_rows(k->rows[1], replica_keys(p->r, "nokey"), "nokey");
    /* The gateway reported its rows with each answer: `pgcapture status` shows them. */
    char log[512], line[1024], want[64];
    snprintf(log, sizeof log, "%s/status-%s.log",
             getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp", p->name);
    const char *args[] = {"status", "--controller", p->ctl.addr, "--uri", p->uri, NULL};
    EXPECT_EQ_INT(0, harness_wait_exit(harness_spawn(log, args), 30000));
    FILE *f = fopen(log, "r");
    bool found = false;
    snprintf(want, sizeof want, " %d\n", 400000);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, p->uri, strlen(p->uri)) == 0 && strlen(line) > strlen(want) &&
            strcmp(line + strlen(line) - strlen(want), want) == 0)
            found = true;
    if (f)
        fclose(f);
    if (!found)
        harness_print_log_tail(log, 5);
    EXPECT_TRUE(found);
}

static void test_a_requeued_dump_row_brings_its_whole_item_back(void)
{
    pipeline *p =
        pipeline_start("CREATE TABLE t (id int PRIMARY KEY, v text);"
                       "INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 3000) i");
    schedule_table(p, "public.t", 1000); /* one item */
    dump_collector *k = calloc(1, sizeof *k);
    unit_defer(free, k);
    k->tables[0] = "t";
    k->rows[0] = strset_new();
    k->rows[1] = strset_new();
    k->requeue_once_table = "t";
    k->batch_limit = -1; /* per-change mode; the full dumps above run in batch mode */
    /* The 9 rows acked before the requeue, then the whole item again. */
    k->want = 9 + 3000;
    run_consumer(p, k);
    EXPECT_TRUE(k->requeued);
    EXPECT_EQ_UINT(1, k->items_done);
    strset *want = replica_keys(p->r, "t");
    /* The second delivery alone is the whole table. */
    strset *second = strset_new();
    for (size_t i = 9; i < k->rows[0]->n; i++)
        strset_add(second, strdup(k->rows[0]->v[i]));
    expect_same_rows(second, want, "t");
}

static void test_a_consumer_leaving_mid_item_gets_the_item_again_on_reconnect(void)
{
    pipeline *p =
        pipeline_start("CREATE TABLE t (id int PRIMARY KEY, v text);"
                       "INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 2000) i");
    schedule_table(p, "public.t", 1000); /* one item */
    dump_collector *first = calloc(1, sizeof *first);
    unit_defer(free, first);
    first->tables[0] = "t";
    first->rows[0] = strset_new();
    first->rows[1] = strset_new();
    first->want = 500; /* leaves after 500 rows: the item's last row is never acked */
    run_consumer(p, first);
    EXPECT_EQ_UINT(500, first->rows[0]->n);
    EXPECT_EQ_UINT(0, first->items_done);
    /* The item was outstanding when the stream ended: it comes again, whole. */
    dump_collector *second = calloc(1, sizeof *second);
    unit_defer(free, second);
    second->tables[0] = "t";
    second->rows[0] = strset_new();
    second->rows[1] = strset_new();
    second->want = 2000;
    run_consumer(p, second);
    EXPECT_EQ_UINT(1, second->items_done);
    expect_same_rows(second->rows[0], replica_keys(p->r, "t"), "t");
}

/* ---- no time travel ---------------------------------------------------------------------- */

#define VROWS 2000

typedef struct version_view {
    pgc_consumer *consumer;
    int32_t version[VROWS + 1]; /* last version seen per id, -1 before any */
    int decreases;
    char first_decrease[256];
    size_t dump_rows, items_done, live;
    size_t want_items;
    const pipeline *p; /* for the controller's count of finished items */
    atomic_int writers_done;
    atomic_int done;
} version_view;

/* Items of the URI the controller counts as done (acked), or -1 when it cannot tell. An
 * item whose pages hold no row when it is dumped sends no row (so no end marker reaches
 * the consumer) and is done all the same: the replica's table can have trailing pages
 * emptied by its own updates. */
static long controller_items_done(const pipeline *p)
{
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "%s status --controller %s --uri %s 2>/dev/null",
             getenv("PGC_TEST_BIN"), p->ctl.addr, p->uri);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    long done = -1;
    size_t ul = strlen(p->uri);
    while (fgets(line, sizeof line, f)) {
        long pending, backoff, outstanding, d;
        if (strncmp(line, p->uri, ul) == 0 && line[ul] == ' ' &&
            sscanf(line + ul, "%ld %ld %ld %ld", &pending, &backoff, &outstanding, &d) == 4)
            done = pending == 0 && outstanding == 0 ? d : -1;
    }
    pclose(f);
    return done;
}

static int32_t field_int4(const pgc_change *c, const char *name)
{
    const pgc_field *f = pgc_change_find_field(c, PGC_ROW_NEW, name);
    int32_t v = -1;
    size_t len = 0;
    char err[128];
    if (!f)
        return -1;
    const uint8_t *d = pgc_field_get_data(f, &len);
    if (pgc_value_decode_int4(d, len, &v, err, sizeof err) == PGC_OK)
        return v;
    return -1;
}

static pgc_verdict on_version_change(void *arg, const pgc_change *c, const char **reason)
{
    (void)reason;
    version_view *v = arg;
    if (strcmp(pgc_change_get_table(c), "v") != 0)
        return PGC_VERDICT_ACK;
    int32_t id = field_int4(c, "id"), ver = field_int4(c, "version");
    if (id < 1 || id > VROWS || ver < 0)
        return PGC_VERDICT_ACK;
    bool dump = pgc_change_get_lsn(c) == 0;
    if (ver < v->version[id]) {
        if (v->decreases++ == 0)
            snprintf(v->first_decrease, sizeof v->first_decrease,
                     "row %d went from version %d to %d (by a %s)", id, v->version[id], ver,
                     dump ? "dump row" : "change");
    }
    v->version[id] = ver;
    if (dump) {
        v->dump_rows++;
        size_t dlen = 0;
        const uint8_t *d = pgc_change_get_checkpoint_data(c, &dlen);
        if (dlen == 1 && d[0] == 1)
            v->items_done++;
    } else {
        v->live++;
    }
    return PGC_VERDICT_ACK;
}

static void *version_stopper(void *arg)
{
    version_view *v = arg;
    /* Stops once the writers are done and every item came, after a pause for the live
     * changes that follow the last write. */
    for (int i = 0; i < 1800 && !atomic_load(&v->done); i++) {
        harness_sleep_ms(100);
        if (atomic_load(&v->writers_done) && i % 10 == 0 &&
            controller_items_done(v->p) >= (long)v->want_items)
            break;
    }
    harness_sleep_ms(3000);
    pgc_consumer_stop(v->consumer);
    return NULL;
}

typedef struct consumer_run {
    version_view *v;
    int rc;
    char err[512];
} consumer_run;

static void *run_version_consumer(void *arg)
{
    consumer_run *r = arg;
    r->rc = pgc_consumer_run(r->v->consumer, &(pgc_change_handler){r->v, on_version_change}, r->err,
                             sizeof r->err);
    atomic_store(&r->v->done, 1);
    return NULL;
}

typedef struct writer_arg {
    const char *conninfo;
    int updates;
    atomic_int *done;
} writer_arg;

static void *writer(void *arg)
{
    writer_arg *w = arg;
    PGconn *c = PQconnectdb(w->conninfo);
    unsigned seed = (unsigned)(uintptr_t)w;
    for (int i = 0; i < w->updates && PQstatus(c) == CONNECTION_OK; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE v SET version = version + 1 WHERE id = %d",
                 1 + (int)(rand_r(&seed) % VROWS));
        PQclear(PQexec(c, sql));
        if (i % 50 == 0)
            harness_sleep_ms(5);
    }
    PQfinish(c);
    atomic_fetch_add(w->done, 1);
    return NULL;
}

static void test_dumps_never_go_back_in_time_while_rows_are_updated(void)
{
    pipeline *p = pipeline_start(
        "CREATE TABLE v (id int PRIMARY KEY, version int NOT NULL, pad text);"
        "INSERT INTO v SELECT i, 0, repeat('p', 200) FROM generate_series(1, 2000) i;"
        "ANALYZE v");
    version_view *v = calloc(1, sizeof *v);
    unit_defer(free, v);
    for (int i = 0; i <= VROWS; i++)
        v->version[i] = -1;
    v->p = p;
    long long pages = harness_query_int(
        p->r, "SELECT pg_relation_size('v') / current_setting('block_size')::int");
    /* Items of 5 pages: several items, each dumped at its own snapshot while writes go on. */
    schedule_table(p, "public.v", 5);
    v->want_items = (size_t)(pages + 4) / 5;
    atomic_int writers_done = 0;
    writer_arg wa[2] = {{p->src, 1500, &writers_done}, {p->src, 1500, &writers_done}};
    pthread_t wt[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&wt[i], NULL, writer, &wa[i]);

    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = p->gw_addr;
    o.uri = p->uri;
    char err[512];
    EXPECT_EQ_INT(PGC_OK, pgc_consumer_create(&o, &v->consumer, err, sizeof err));
    unit_defer(free_consumer, v->consumer);
    /* Consumer, writers and the stopper run together: the items are dumped while the
     * rows they hold are being updated. */
    consumer_run cr = {v, 0, ""};
    pthread_t ct, st;
    pthread_create(&ct, NULL, run_version_consumer, &cr);
    pthread_create(&st, NULL, version_stopper, v);
    for (int i = 0; i < 2; i++)
        pthread_join(wt[i], NULL);
    atomic_store(&v->writers_done, 1);
    pthread_join(ct, NULL);
    pthread_join(st, NULL);
    if (cr.rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "consumer run: %s", cr.err);
    printf("  live changes %zu, dump rows %zu, items %zu of %zu\n", v->live, v->dump_rows,
           v->items_done, v->want_items);
    if (v->decreases)
        unit_fail(__FILE__, __LINE__, "%d version decreases; first: %s", v->decreases,
                  v->first_decrease);
    long done = controller_items_done(p);
    printf("  the controller counts %ld items done of %zu scheduled\n", done, v->want_items);
    EXPECT_EQ_INT((long long)v->want_items, (long long)done);
    EXPECT_TRUE(v->items_done > 0 && v->items_done <= v->want_items);
    EXPECT_TRUE(v->live >= 3000);
    /* The consumer's final view equals the source. */
    PGresult *r = PQexec(p->s, "SELECT id, version FROM v ORDER BY id");
    EXPECT_EQ_INT(VROWS, PQntuples(r));
    int mismatches = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int id = atoi(PQgetvalue(r, i, 0)), ver = atoi(PQgetvalue(r, i, 1));
        if (v->version[id] != ver && mismatches++ == 0)
            printf("  row %d: consumer has version %d, source %d\n", id, v->version[id], ver);
    }
    PQclear(r);
    EXPECT_EQ_INT(0, mismatches);
}

UNIT_MAIN(UNIT_CASE(test_full_dumps_deliver_every_row_once_with_the_replicas_bytes),
          UNIT_CASE(test_a_requeued_dump_row_brings_its_whole_item_back),
          UNIT_CASE(test_a_consumer_leaving_mid_item_gets_the_item_again_on_reconnect),
          UNIT_CASE(test_dumps_never_go_back_in_time_while_rows_are_updated))
