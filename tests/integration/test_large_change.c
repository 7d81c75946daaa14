/* A change larger than a client takes (gRPC refuses a message over its receive limit, 4 MiB
 * by default) against real PostgreSQL, NATS, agent and gateway: for a client with the
 * default limit it goes to the URI's dead letters with the reason, and the stream goes on
 * with the next change; `pgcapture consume`, which raises its limit and says so
 * (MaxMessageSize), receives it whole; the gateway's limits on the retry stream are set. */
#include "codec/batch.h"
#include "codec/part.h"
#include "core/names.h"
#include "core/status.h"
#include "core/textfile.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/scrape.h"
#include "jetstream/jsconn.h"
#include "jetstream/jssub.h"

#include "pgcapture.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 5 MiB of incompressible bytes (md5 digests), then a small row. */
#define BIG_CHUNKS 327680
#define BLOB_SQL "CREATE TABLE blob (id int PRIMARY KEY, data bytea)"

static void insert_big_then_small(cap_env *e)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO blob SELECT 1, string_agg(decode(md5(i::text), 'hex'), '' ORDER BY i) "
             "FROM generate_series(1, %d) i",
             BIG_CHUNKS);
    harness_exec(e->conn, sql);
    harness_exec(e->conn, "INSERT INTO blob VALUES (2, '\\x01')");
}

/* The next dead letter of the URI (its parts joined), unpacked; its reason into `reason`.
 * NULL when none arrives in timeout_ms. */
static Pgcapture__Message *next_dead_letter(const cap_env *e, const char *uri, int timeout_ms,
                                            char *reason, size_t reason_len)
{
    char durable[NAMES_BUF_LEN], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], err[512];
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri(uri, durable, sizeof durable));
    EXPECT_EQ_INT(PGC_OK, names_retry_stream(e->name, stream, sizeof stream));
    EXPECT_EQ_INT(PGC_OK, names_dead_letter_subject(e->name, durable, subject, sizeof subject));
    jssub_config c = {harness_nats_url(), stream, subject, "large_reader", 30000, 1000};
    jssub *s = NULL;
    if (jssub_create(&c, &s, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "dead letters: %s", err);
    part_joiner *pj = NULL;
    EXPECT_EQ_INT(PGC_OK, part_joiner_create(PART_MAX_MESSAGE_BYTES, &pj));
    Pgcapture__Message *msg = NULL;
    long long until = harness_now_ms() + timeout_ms;
    while (!msg && harness_now_ms() < until) {
        jssub_msg *m = NULL;
        int n = jssub_fetch(s, &m, 1, 500, err, sizeof err);
        if (n < 0)
            unit_fail(__FILE__, __LINE__, "dead letters: %s", err);
        if (n == 0)
            continue;
        const char *h = jssub_msg_header(m, "Pgc-Reason");
        snprintf(reason, reason_len, "%s", h ? h : "");
        const uint8_t *data = jssub_msg_data(m);
        size_t len = jssub_msg_len(m);
        const char *part = jssub_msg_header(m, "Pgc-Part");
        uint32_t pi, pn;
        if (part) {
            EXPECT_TRUE(part_header_parse(part, &pi, &pn));
            log_pos pos = {0, 0};
            int rc = part_joiner_feed(pj, pos, pi, pn, data, len, &data, &len, err, sizeof err);
            EXPECT_TRUE(rc >= 0);
            if (rc == 0) {
                jssub_msg_destroy(m);
                continue;
            }
        }
        batch_reader r;
        const uint8_t *bytes = NULL;
        size_t mlen = 0;
        batch_reader_init(&r, data, len);
        EXPECT_EQ_INT(1, batch_reader_next(&r, &bytes, &mlen, err, sizeof err));
        msg = pgcapture__message__unpack(NULL, mlen, bytes);
        EXPECT_TRUE(msg != NULL && msg->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE);
        jssub_msg_destroy(m);
    }
    part_joiner_destroy(pj);
    jssub_destroy(s);
    return msg;
}

/* The source's big value, binary. */
static PGresult *big_value(cap_env *e)
{
    PGresult *r =
        PQexecParams(e->conn, "SELECT data FROM blob WHERE id = 1", 0, NULL, NULL, NULL, NULL, 1);
    unit_defer((void (*)(void *))PQclear, r);
    EXPECT_EQ_INT(PGRES_TUPLES_OK, PQresultStatus(r));
    EXPECT_EQ_INT(BIG_CHUNKS * 16, PQgetlength(r, 0, 0));
    return r;
}

/* The positions `pgcapture dead-letters list` prints for the URI (at most max); how many. */
static int list_letters(const cap_env *e, unsigned long long *pos, int max)
{
    char out[600], cmd[1600], err[300];
    snprintf(out, sizeof out, "%s.dl-list", e->gw_log);
    snprintf(cmd, sizeof cmd, "'%s' dead-letters list --source %s --uri '%s' --nats-url '%s' >'%s'",
             getenv("PGC_TEST_BIN"), e->name, e->uri, harness_nats_url(), out);
    EXPECT_EQ_INT(0, system(cmd));
    char *text = NULL;
    size_t len = 0;
    if (textfile_read(out, 1 << 20, &text, &len, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s", err);
    int n = 0;
    for (const char *l = strchr(text, '\n'); l && l[1] && n < max; l = strchr(l + 1, '\n'))
        if (sscanf(l + 1, "%llu\t", &pos[n]) == 1)
            n++;
    free(text);
    return n;
}

static void
test_a_change_too_large_for_a_default_client_is_dead_lettered_and_the_stream_goes_on(void)
{
    cap_env e;
    cap_setup(&e, BLOB_SQL);
    cap_client *c = cap_open(e.addr, e.uri, NULL); /* gRPC's default 4 MiB receive limit */
    insert_big_then_small(&e);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 30000);
    EXPECT_EQ_STR("blob", m[0]->change->table);
    EXPECT_EQ_INT(2, cap_id_of(m[0]->change));
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_expect_quiet(c, 1000);

    char reason[300];
    Pgcapture__Message *d = next_dead_letter(&e, e.uri, 20000, reason, sizeof reason);
    if (!d) {
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "no dead letter");
    }
    EXPECT_EQ_INT(1, cap_id_of(d->change));
    const Pgcapture__Field *f = cap_field(d->change, "data");
    EXPECT_TRUE(f != NULL);
    PGresult *r = big_value(&e);
    EXPECT_EQ_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), f->binary.data, f->binary.len);
    unsigned long long bytes = 0, limit = 0;
    if (sscanf(reason, "too large: %llu bytes > %llu", &bytes, &limit) != 2 || limit != 4194304 ||
        bytes <= limit || bytes > limit + 2 * 1024 * 1024)
        unit_fail(__FILE__, __LINE__, "reason \"%s\"", reason);
    pgcapture__message__free_unpacked(d, NULL);
    char series[256];
    snprintf(series, sizeof series, "pgcapture_gateway_dead_lettered_total{uri=\"%s\"}", e.uri);
    EXPECT_TRUE(harness_metric_wait(e.metrics_port, series, 1, 10000) == 1);

    /* Replayed (in parts, as it was stored), it comes back to the gateway through the retry
     * subject, whole, and is set aside again for this client: a new letter. */
    unsigned long long before[2], after[2];
    EXPECT_EQ_INT(1, list_letters(&e, before, 2));
    char cmd[1600];
    snprintf(cmd, sizeof cmd,
             "'%s' dead-letters replay --all --source %s --uri '%s' --nats-url '%s' 2>/dev/null",
             getenv("PGC_TEST_BIN"), e.name, e.uri, harness_nats_url());
    EXPECT_EQ_INT(0, system(cmd));
    if (harness_metric_wait(e.metrics_port, series, 2, 30000) != 2) {
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "the replayed letter was not set aside again");
    }
    EXPECT_EQ_INT(1, list_letters(&e, after, 2));
    EXPECT_TRUE(after[0] > before[0]);
    cap_expect_quiet(c, 500);
}

/* Waits until `path` holds `needle` (up to 64 MiB read); fails the case after timeout_ms. */
static void wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        char *text = NULL, err[300];
        size_t len = 0;
        bool found = textfile_read(path, 64 << 20, &text, &len, err, sizeof err) == PGC_OK &&
                     strstr(text, needle) != NULL;
        free(text);
        if (found)
            return;
        if (harness_now_ms() > until) {
            harness_print_log_tail(path, 5);
            unit_fail(__FILE__, __LINE__, "%s never printed %.80s...", path, needle);
        }
        harness_sleep_ms(200);
    }
}

static void test_consume_raises_its_limit_and_receives_the_large_change(void)
{
    cap_env e;
    cap_setup(&e, BLOB_SQL);
    insert_big_then_small(&e);
    char uri[96], out[600];
    snprintf(uri, sizeof uri, "%s-other", e.name);
    snprintf(out, sizeof out, "%s.consume-large", e.gw_log);
    unlink(out);
    const char *args[] = {"consume", "--gateway", e.addr, "--uri", uri, NULL};
    pid_t pid = harness_spawn(out, args);
    /* The whole value, as consume prints bytea (hex). */
    char *hex = harness_query_value(e.conn, "SELECT encode(data, 'hex') FROM blob WHERE id = 1");
    EXPECT_EQ_INT(BIG_CHUNKS * 32, (long long)strlen(hex));
    wait_for_text(out, hex, 60000);
    wait_for_text(out, "\"new\":{\"id\":2", 30000);
    kill(pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 15000));
    /* Nothing of that URI was dead-lettered. */
    char reason[300];
    Pgcapture__Message *d = next_dead_letter(&e, uri, 1500, reason, sizeof reason);
    if (d)
        unit_fail(__FILE__, __LINE__, "dead letter for consume: %s", reason);
}

static void test_the_retry_stream_takes_the_gateways_limits(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    kill(e.gw_pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(e.gw_pid, 15000));
    const char *extra[] = {"--retry-max-age", "36h", "--retry-max-bytes", "64MiB", NULL};
    cap_start_gateway(&e, extra);
    cap_client *c = cap_open(e.addr, e.uri, NULL); /* its start makes the retry stream */
    cap_insert_rows(&e, 1, 1, false);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 20000);
    char stream[NAMES_BUF_LEN], err[512];
    EXPECT_EQ_INT(PGC_OK, names_retry_stream(e.name, stream, sizeof stream));
    jsconn *js = NULL;
    EXPECT_EQ_INT(PGC_OK, jsconn_open(harness_nats_url(), &js, err, sizeof err));
    jsconn_limits l;
    EXPECT_EQ_INT(PGC_OK, jsconn_stream_limits(js, stream, &l, err, sizeof err));
    EXPECT_EQ_INT(36LL * 3600 * 1000, l.max_age_ms);
    EXPECT_EQ_INT(64LL * 1024 * 1024, l.max_bytes);
    jsconn_destroy(js);
}

UNIT_MAIN(
    UNIT_CASE(test_a_change_too_large_for_a_default_client_is_dead_lettered_and_the_stream_goes_on),
    UNIT_CASE(test_consume_raises_its_limit_and_receives_the_large_change),
    UNIT_CASE(test_the_retry_stream_takes_the_gateways_limits))
