/* pgcapture on a three-node NATS JetStream cluster (scripts/nats-tmp start --cluster):
 * the agent's --confirm-delay follows the stream's replica count unless given, the
 * controller's bucket and the gateway's retry stream take three replicas, and under a
 * steady write load a kill -9 of the stream's leader, then of a follower, loses nothing:
 * every row reaches a Capture consumer and a replica, no log position is stored twice,
 * and the slot is never confirmed past what the cluster held. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/natscluster.h"
#include "harness/services.h"
#include "harness/streamread.h"
#include "codec/logpos.h"
#include "core/status.h"
#include "rpc/client.h"
#include <grpc/status.h>
#include "core/names.h"
#include "jetstream/jsurl.h"

#include <libpq-fe.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Waits until the log file holds `needle`; fails the case after timeout_ms. */
static void log_wait_for(const char *path, const char *needle, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    char line[2048];
    for (;;) {
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, needle)) {
                fclose(f);
                return;
            }
        if (f)
            fclose(f);
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(path, 20);
            unit_fail(__FILE__, __LINE__, "%s never logged \"%s\"", path, needle);
        }
        harness_sleep_ms(100);
    }
}

/* An agent of its own name on `db` with the cluster's URL and no --confirm-delay unless
 * `delay` is given; returns once it logged its "streaming" line, which it must match. */
static void agent_reports(const char *db, const char *replicas, const char *delay,
                          const char *expect)
{
    char name[64], log[512];
    harness_unique_name(name, sizeof name);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(log, sizeof log, "%s/agent-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[20] = {"agent",  "--source", db,           "--nats-url", harness_nats_url(),
                            "--name", name,       "--replicas", replicas,     "--log-level",
                            "info",   NULL};
    int n = 11;
    if (delay) {
        args[n++] = "--confirm-delay";
        args[n++] = delay;
        args[n] = NULL;
    }
    pid_t pid = harness_spawn(log, args);
    log_wait_for(log, expect, 60000);
    kill(pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 30000));
}

static void test_confirm_delay_follows_the_stream_replicas_unless_given(void)
{
    natscluster_start();
    char db[512];
    harness_db_create(false, db, sizeof db);
    agent_reports(db, "3", NULL,
                  "stream_replicas=3 confirm_delay_ms=0 confirm_delay_from=replicas");
    agent_reports(db, "1", NULL,
                  "stream_replicas=1 confirm_delay_ms=120000 confirm_delay_from=replicas");
    agent_reports(db, "3", "5s", "stream_replicas=3 confirm_delay_ms=5000 confirm_delay_from=flag");
    agent_reports(db, "1", "0", "stream_replicas=1 confirm_delay_ms=0 confirm_delay_from=flag");
}

static void test_controller_bucket_takes_the_replica_count(void)
{
    natscluster *nc = natscluster_start();
    harness_controller c3, c1;
    const char *three[] = {"--replicas", "3", NULL};
    harness_controller_start(&c3, three);
    harness_controller_start(&c1, NULL);
    char stream[128];
    snprintf(stream, sizeof stream, "KV_%s", c3.bucket);
    EXPECT_EQ_INT(3, natscluster_stream_replicas(nc, stream));
    snprintf(stream, sizeof stream, "KV_%s", c1.bucket);
    EXPECT_EQ_INT(1, natscluster_stream_replicas(nc, stream));
}

/* ---- a node killed under load ------------------------------------------------------------ */

typedef struct writer {
    char db[512];
    pthread_t thread;
    atomic_bool stop;
    atomic_int committed; /* rows 1..committed are in */
    char error[256];
} writer;

/* One row per transaction, as fast as the source takes them (with a breath between). */
static void *writer_main(void *arg)
{
    writer *w = arg;
    PGconn *c = PQconnectdb(w->db);
    char sql[128];
    for (int id = 1; PQstatus(c) == CONNECTION_OK && !atomic_load(&w->stop); id++) {
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, 'row %d', %d)", id, id, id * 7);
        PGresult *r = PQexec(c, sql);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(w->error, sizeof w->error, "insert %d: %s", id, PQerrorMessage(c));
        PQclear(r);
        if (!ok)
            break;
        atomic_store(&w->committed, id);
        harness_sleep_ms(2);
    }
    if (PQstatus(c) != CONNECTION_OK && !w->error[0])
        snprintf(w->error, sizeof w->error, "%s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
}

#define MAX_SAMPLES 20000

/* The slot's confirmed_flush_lsn, read first, then the log's last position (Pgc-Last of
 * its last message): what PostgreSQL had been told before the first read must be in the
 * log read second (the chaos run's sampler, in a thread). */
typedef struct sampler {
    char db[512], slot[96], stream[96], subject[96], url[256];
    pthread_t thread;
    atomic_bool stop;
    uint64_t confirmed[MAX_SAMPLES];
    log_pos held[MAX_SAMPLES];
    int n, skipped;
} sampler;

static bool read_last(jsCtx *js, const sampler *s, log_pos *out)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetLastMsg(&m, js, s->stream, s->subject, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        *out = (log_pos){0, 0};
        return true;
    }
    if (ns != NATS_OK)
        return false;
    const char *last = NULL;
    bool ok = natsMsgHeader_Get(m, "Pgc-Last", &last) == NATS_OK && last && logpos_parse(last, out);
    natsMsg_Destroy(m);
    return ok;
}

static bool read_confirmed(PGconn *c, const char *slot, uint64_t *out)
{
    const char *params[1] = {slot};
    PGresult *r = PQexecParams(c,
                               "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                               "WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL",
                               1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              logpos_parse_lsn(PQgetvalue(r, 0, 0), out);
    PQclear(r);
    return ok;
}

static void *sampler_main(void *arg)
{
    sampler *s = arg;
    PGconn *pg = PQconnectdb(s->db);
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (natsOptions_Create(&opts) == NATS_OK && jsurl_set_servers(opts, s->url) == NATS_OK &&
        natsOptions_SetMaxReconnect(opts, -1) == NATS_OK &&
        natsOptions_SetReconnectWait(opts, 100) == NATS_OK &&
        natsConnection_Connect(&nc, opts) == NATS_OK)
        natsConnection_JetStream(&js, nc, &jo);
    while (!atomic_load(&s->stop) && s->n < MAX_SAMPLES) {
        uint64_t confirmed;
        log_pos held;
        if (js && PQstatus(pg) == CONNECTION_OK && read_confirmed(pg, s->slot, &confirmed) &&
            read_last(js, s, &held)) {
            s->confirmed[s->n] = confirmed;
            s->held[s->n] = held;
            s->n++;
        } else {
            s->skipped++;
        }
        harness_sleep_ms(100);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    PQfinish(pg);
    return NULL;
}

/* Stops the writer and the sampler if a failure left them running (before they are freed):
 * registered after their memory, so it runs first. */
typedef struct threads {
    writer *w;
    sampler *s;
    bool w_running, s_running;
} threads;

static void threads_stop(void *arg)
{
    threads *t = arg;
    if (t->w_running) {
        atomic_store(&t->w->stop, true);
        pthread_join(t->w->thread, NULL);
    }
    if (t->s_running) {
        atomic_store(&t->s->stop, true);
        pthread_join(t->s->thread, NULL);
    }
    free(t);
}

typedef struct run {
    cap_env e;
    cap_client *c;
    writer *w;
    unsigned char *seen; /* per row id, from the consumer */
    int max_id, received, reopened;
} run;

/* The next change, or NULL after timeout_ms. A stream the gateway ends as UNAVAILABLE
 * (NATS unreachable for a moment: a node of the cluster died) is opened again, as a
 * consumer would; any other end fails the case. */
static Pgcapture__CaptureMessage *next_change(run *r, int timeout_ms)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256];
    int rc = rpc_stream_recv(r->c->st, timeout_ms, &data, &len, err, sizeof err);
    if (rc == PGC_ERR_TIMEOUT)
        return NULL;
    if (rc == 0) {
        const char *m = NULL;
        int code = rpc_stream_status(r->c->st, &m);
        if (code != GRPC_STATUS_UNAVAILABLE) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "stream ended: status %d %s", code, m ? m : "");
        }
        printf("  the stream ended UNAVAILABLE (%s): opened again\n", m ? m : "");
        r->reopened++;
        harness_sleep_ms(500);
        r->c = cap_open(r->e.addr, r->e.uri, NULL);
        return NULL;
    }
    if (rc != 1)
        unit_fail(__FILE__, __LINE__, "recv failed: %s", err);
    Pgcapture__CaptureMessage *msg = pgcapture__capture_message__unpack(NULL, len, data);
    free(data);
    if (!msg || !msg->change || !msg->checkpoint)
        unit_fail(__FILE__, __LINE__, "not a per-change CaptureMessage");
    return msg;
}

/* Takes what the consumer has for up to ms, acking each change. */
static void consume_for(run *r, int ms)
{
    long long until = harness_now_ms() + ms;
    while (harness_now_ms() < until) {
        Pgcapture__CaptureMessage *m = next_change(r, 100);
        if (!m)
            continue;
        int id = strcmp(m->change->table, "t") == 0 ? cap_id_of(m->change) : 0;
        if (id >= 1 && id <= r->max_id && !r->seen[id]) {
            r->seen[id] = 1;
            r->received++;
        }
        cap_ack(r->c, m->checkpoint, NULL);
        pgcapture__capture_message__free_unpacked(m, NULL);
    }
}

/* Consumes while the writer commits `rows` more rows (generous deadline). */
static void consume_rows(run *r, int rows)
{
    int target = atomic_load(&r->w->committed) + rows;
    long long deadline = harness_now_ms() + 120000;
    while (atomic_load(&r->w->committed) < target) {
        if (r->w->error[0] || harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "the writer stalled at row %d: %s",
                      atomic_load(&r->w->committed), r->w->error);
        consume_for(r, 200);
    }
}

static void leader_of(const natscluster *nc, const char *stream, char *out, size_t len)
{
    long long deadline = harness_now_ms() + 60000;
    while (!natscluster_stream_leader(nc, stream, out, len)) {
        if (harness_now_ms() > deadline)
            unit_fail(__FILE__, __LINE__, "stream %s has no leader after 60 s", stream);
        harness_sleep_ms(100);
    }
}

/* Positions stored twice, and samples where the slot was confirmed past the log. */
static int cmp_pos(const void *a, const void *b)
{
    return logpos_cmp(*(const log_pos *)a, *(const log_pos *)b);
}

static void check_log(const run *r, const sampler *s)
{
    const stream_log *log = stream_read_all(r->e.name);
    log_pos *pos = malloc((log->n ? log->n : 1) * sizeof *pos);
    uint64_t *commit_lsn = malloc((log->n ? log->n : 1) * sizeof *commit_lsn);
    log_pos *commit_pos = malloc((log->n ? log->n : 1) * sizeof *commit_pos);
    size_t n_commits = 0, rows = 0;
    for (size_t i = 0; i < log->n; i++) {
        pos[i] = log->entries[i].pos;
        const Pgcapture__Message *m = log->entries[i].msg;
        if (m->type_case == PGCAPTURE__MESSAGE__TYPE_COMMIT) {
            commit_lsn[n_commits] = m->commit->commit_lsn;
            commit_pos[n_commits++] = log->entries[i].pos;
        } else if (m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE) {
            rows++;
        }
    }
    qsort(pos, log->n, sizeof *pos, cmp_pos);
    size_t twice = 0;
    for (size_t i = 1; i < log->n; i++)
        twice += logpos_cmp(pos[i - 1], pos[i]) == 0;
    printf("  log: %zu messages, %zu changes, %zu commits, %zu positions twice\n", log->n, rows,
           n_commits, twice);
    EXPECT_EQ_UINT(0, twice);
    EXPECT_EQ_UINT((unsigned long long)r->max_id, rows);
    /* PostgreSQL skips, on a restart, every transaction whose commit record lies below the
     * confirmed position: each must have been in the log when the slot said so. */
    size_t bad = 0;
    for (int i = 0; i < s->n; i++) {
        size_t lo = 0, hi = n_commits;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (commit_lsn[mid] < s->confirmed[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && logpos_cmp(commit_pos[lo - 1], s->held[i]) > 0 && bad++ < 5) {
            char a[LOGPOS_LSN_LEN], h[LOGPOS_TEXT_LEN];
            logpos_format_lsn(s->confirmed[i], a);
            logpos_format(s->held[i], h);
            printf("    confirmed %s while the log held up to %s only\n", a, h);
        }
    }
    printf("  %d samples of (confirmed_flush_lsn, log end), %d skipped\n", s->n, s->skipped);
    EXPECT_EQ_UINT(0, bad);
    EXPECT_TRUE(s->n > 0);
    free(pos);
    free(commit_lsn);
    free(commit_pos);
}

static void wait_replica_equal(PGconn *src, PGconn *rep, const char *replica_log)
{
    const char *sql = "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' "
                      "ORDER BY x::text), '')) FROM t x";
    char *want = harness_query_value(src, sql);
    long long deadline = harness_now_ms() + 120000;
    for (;;) {
        PGresult *res = PQexec(rep, sql);
        bool eq =
            PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), want) == 0;
        PQclear(res);
        if (eq)
            return;
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(replica_log, 30);
            unit_fail(__FILE__, __LINE__, "the replica's t never matched the source's (%s)", want);
        }
        harness_sleep_ms(200);
    }
}

static void test_leader_then_follower_killed_under_load_loses_nothing(void)
{
    natscluster *nc = natscluster_start();
    run r;
    memset(&r, 0, sizeof r);
    const char *agent_extra[] = {"--replicas", "3", NULL};
    cap_setup_with(&r.e, NULL, agent_extra);
    char stream[96], retry[112];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s", r.e.name);
    snprintf(retry, sizeof retry, "PGCAPTURE_%s_RETRY", r.e.name);
    EXPECT_EQ_INT(3, natscluster_stream_replicas(nc, stream));

    /* The replica: t made by hand (it predates the slot), then the applier. */
    char rep[512], rep_log[512];
    harness_replica_db_create(true, rep, sizeof rep);
    PGconn *rc = harness_connect(rep);
    harness_exec(rc, "CREATE TABLE t (id int PRIMARY KEY, v text, n int8)");
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(rep_log, sizeof rep_log, "%s/replica-%s.log", dir && *dir ? dir : "/tmp", r.e.name);
    const char *rargs[] = {"replica", "--replica", rep,           "--nats-url", harness_nats_url(),
                           "--name",  r.e.name,    "--log-level", "debug",      "--retry-max",
                           "500ms",   NULL};
    harness_spawn(rep_log, rargs);

    r.c = cap_open(r.e.addr, r.e.uri, NULL);
    /* The retry stream follows the log stream's replicas (made when the stream began). */
    long long deadline = harness_now_ms() + 30000;
    while (natscluster_stream_replicas(nc, retry) == 0 && harness_now_ms() < deadline)
        harness_sleep_ms(100);
    EXPECT_EQ_INT(3, natscluster_stream_replicas(nc, retry));

    r.max_id = 1 << 20;
    r.seen = calloc((size_t)r.max_id + 1, 1);
    unit_defer(free, r.seen);
    writer *w = calloc(1, sizeof *w);
    unit_defer(free, w);
    r.w = w;
    snprintf(w->db, sizeof w->db, "%s", r.e.db);
    sampler *s = calloc(1, sizeof *s);
    unit_defer(free, s);
    snprintf(s->db, sizeof s->db, "%s", r.e.db);
    EXPECT_EQ_INT(0, names_slot(r.e.name, s->slot, sizeof s->slot));
    EXPECT_EQ_INT(0, names_stream(r.e.name, s->stream, sizeof s->stream));
    EXPECT_EQ_INT(0, names_log_subject(r.e.name, s->subject, sizeof s->subject));
    snprintf(s->url, sizeof s->url, "%s", nc->url);
    threads *th = calloc(1, sizeof *th);
    th->w = w;
    th->s = s;
    unit_defer(threads_stop, th);
    EXPECT_EQ_INT(0, pthread_create(&s->thread, NULL, sampler_main, s));
    th->s_running = true;
    EXPECT_EQ_INT(0, pthread_create(&w->thread, NULL, writer_main, w));
    th->w_running = true;

    char leader[32], follower[32] = "";
    consume_rows(&r, 300);
    leader_of(nc, stream, leader, sizeof leader);
    printf("  kill -9 %s (the leader) at row %d\n", leader, atomic_load(&w->committed));
    natscluster_kill(nc, leader);
    consume_rows(&r, 300);
    natscluster_restart(nc, leader);
    consume_rows(&r, 300);
    char now[32];
    leader_of(nc, stream, now, sizeof now);
    static const char *const nodes[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3 && !follower[0]; i++)
        if (strcmp(nodes[i], now) != 0)
            snprintf(follower, sizeof follower, "%s", nodes[i]);
    printf("  kill -9 %s (a follower; %s leads) at row %d\n", follower, now,
           atomic_load(&w->committed));
    natscluster_kill(nc, follower);
    consume_rows(&r, 300);
    natscluster_restart(nc, follower);
    consume_rows(&r, 300);
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    th->w_running = false;
    EXPECT_EQ_STR("", w->error);
    r.max_id = atomic_load(&w->committed);
    printf("  %d rows written\n", r.max_id);

    deadline = harness_now_ms() + 120000;
    while (r.received < r.max_id && harness_now_ms() < deadline)
        consume_for(&r, 500);
    if (r.received < r.max_id)
        cap_show_gateway_log();
    EXPECT_EQ_INT(r.max_id, r.received);
    wait_replica_equal(r.e.conn, rc, rep_log);
    /* The agent has confirmed everything written, so the last samples cover it all. */
    char sql[256];
    char *end = harness_query_value(r.e.conn, "SELECT pg_current_wal_lsn()::text");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND "
             "confirmed_flush_lsn >= '%s'",
             s->slot, end);
    deadline = harness_now_ms() + 60000;
    while (harness_query_int(r.e.conn, sql) == 0 && harness_now_ms() < deadline)
        harness_sleep_ms(200);
    harness_sleep_ms(300);
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    th->s_running = false;
    printf("  the consumer's stream was opened again %d times\n", r.reopened);
    check_log(&r, s);
}

UNIT_MAIN(UNIT_CASE(test_confirm_delay_follows_the_stream_replicas_unless_given),
          UNIT_CASE(test_controller_bucket_takes_the_replica_count),
          UNIT_CASE(test_leader_then_follower_killed_under_load_loses_nothing))
