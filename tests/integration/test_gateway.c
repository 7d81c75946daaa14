/* The gateway against real PostgreSQL, NATS and agent: rows committed on the source reach
 * a Capture client with identical values; acks remove them, a requeue brings back exactly
 * that change, a consumer that dies gets its unacked changes again, two consumers of one
 * URI share the work, TableRegex filters, bad input gets the status docs/protocol.md names, and
 * pgcapture's Python client works unchanged. The client is the harness's (harness/capclient.h),
 * so that every ack and requeue is under the test's control. */
#include "harness/runner.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/scrape.h"
#include "core/names.h"
#include "core/status.h"
#include "roles/gateway/retry_stream.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- cases -------------------------------------------------------------------------------- */

static void test_gateway_delivers_rows_with_identical_values(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    harness_exec(e.conn, "INSERT INTO t VALUES (1, 'héllo', -5), (2, NULL, 9000000000)");
    harness_exec(e.conn, "UPDATE t SET v = 'changed' WHERE id = 1");
    harness_exec(e.conn, "DELETE FROM t WHERE id = 2");
    Pgcapture__CaptureMessage *m[4];
    cap_recv_n(c, m, 4, 20000);
    EXPECT_EQ_STR("public", m[0]->change->schema);
    EXPECT_EQ_STR("t", m[0]->change->table);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, m[0]->change->op);
    EXPECT_EQ_INT(1, cap_id_of(m[0]->change));
    const Pgcapture__Field *v = cap_field(m[0]->change, "v");
    EXPECT_TRUE(v && v->value_case == PGCAPTURE__FIELD__VALUE_BINARY);
    EXPECT_EQ_MEM("h\xc3\xa9llo", 6, v->binary.data, v->binary.len);
    EXPECT_EQ_UINT(25, v->oid);
    const Pgcapture__Field *n = cap_field(m[0]->change, "n");
    EXPECT_TRUE(n && n->binary.len == 8);
    EXPECT_EQ_MEM("\xff\xff\xff\xff\xff\xff\xff\xfb", 8, n->binary.data, n->binary.len);
    EXPECT_EQ_INT(2, cap_id_of(m[1]->change));
    v = cap_field(m[1]->change, "v");
    EXPECT_TRUE(v && v->value_case == PGCAPTURE__FIELD__VALUE__NOT_SET); /* SQL NULL */
    n = cap_field(m[1]->change, "n");
    EXPECT_EQ_MEM("\x00\x00\x00\x02\x18\x71\x1a\x00", 8, n->binary.data, n->binary.len);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__UPDATE, m[2]->change->op);
    v = cap_field(m[2]->change, "v");
    EXPECT_EQ_MEM("changed", 7, v->binary.data, v->binary.len);
    EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__DELETE, m[3]->change->op);
    EXPECT_TRUE(m[3]->change->n_old >= 1);
    /* Checkpoints: the transaction's commit LSN, seq 1.. within it, a 13-byte handle. */
    EXPECT_TRUE(m[0]->checkpoint->lsn != 0);
    EXPECT_EQ_UINT(m[0]->checkpoint->lsn, m[1]->checkpoint->lsn);
    EXPECT_EQ_UINT(1, m[0]->checkpoint->seq);
    EXPECT_EQ_UINT(2, m[1]->checkpoint->seq);
    EXPECT_TRUE(m[2]->checkpoint->lsn > m[1]->checkpoint->lsn);
    EXPECT_EQ_UINT(13, m[0]->checkpoint->data.len);
    /* Only changes: no Begin/Commit reached us, so nothing else is pending. */
    cap_expect_quiet(c, 500);
}

/* A change larger than a batch travels as parts (Pgc-Part); the gateway joins them. */
static void test_gateway_joins_a_change_split_into_parts(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    harness_exec(e.conn, "INSERT INTO t SELECT 1, string_agg(md5(i::text), ''), 1 "
                         "FROM generate_series(1, 8000) i");
    cap_insert_rows(&e, 2, 2, false);
    char *want = harness_query_value(e.conn, "SELECT v FROM t WHERE id = 1");
    Pgcapture__CaptureMessage *m[2];
    cap_recv_n(c, m, 2, 20000);
    EXPECT_EQ_INT(1, cap_id_of(m[0]->change));
    const Pgcapture__Field *v = cap_field(m[0]->change, "v");
    EXPECT_TRUE(v != NULL);
    EXPECT_EQ_UINT(256000, v->binary.len);
    EXPECT_EQ_MEM(want, strlen(want), v->binary.data, v->binary.len);
    EXPECT_EQ_INT(2, cap_id_of(m[1]->change));
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, NULL);
    cap_wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c2, 1000);
}

static void test_gateway_acked_changes_never_come_back(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 5, false);
    Pgcapture__CaptureMessage *m[5];
    cap_recv_n(c, m, 5, 20000);
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ_INT(i + 1, cap_id_of(m[i]->change));
        cap_ack(c, m[i]->checkpoint, NULL);
    }
    cap_wait_acked(&e, e.uri, 5);
    rpc_stream_cancel(c->st);
    cap_insert_rows(&e, 6, 6, false);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    Pgcapture__CaptureMessage *m2[1];
    cap_recv_n(c2, m2, 1, 20000);
    EXPECT_EQ_INT(6, cap_id_of(m2[0]->change));
    cap_expect_quiet(c2, 1000);
}

static void test_gateway_requeue_brings_back_exactly_that_change(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 3, true); /* one transaction: one batch */
    Pgcapture__CaptureMessage *m[3];
    cap_recv_n(c, m, 3, 20000);
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, "not now");
    cap_ack(c, m[2]->checkpoint, NULL);
    Pgcapture__CaptureMessage *again[1];
    cap_recv_n(c, again, 1, 10000);
    EXPECT_EQ_INT(2, cap_id_of(again[0]->change));
    EXPECT_EQ_UINT(m[1]->checkpoint->lsn, again[0]->checkpoint->lsn);
    EXPECT_EQ_UINT(m[1]->checkpoint->seq, again[0]->checkpoint->seq);
    EXPECT_EQ_STR("row 2", cap_field(again[0]->change, "v") ? "row 2" : NULL);
    EXPECT_EQ_MEM("row 2", 5, cap_field(again[0]->change, "v")->binary.data,
                  cap_field(again[0]->change, "v")->binary.len);
    cap_expect_quiet(c, 1000); /* rows 1 and 3 never come back */
    /* Requeued twice: it comes back twice. Then acked: gone for good. */
    cap_ack(c, again[0]->checkpoint, "still not");
    cap_recv_n(c, again, 1, 10000);
    EXPECT_EQ_INT(2, cap_id_of(again[0]->change));
    cap_ack(c, again[0]->checkpoint, NULL);
    cap_wait_acked(&e, e.uri, 3);
    rpc_stream_cancel(c->st);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c2, 1500);
}

static void test_gateway_consumer_killed_midstream_gets_unacked_again(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 4, true);
    cap_insert_rows(&e, 5, 6, true);
    Pgcapture__CaptureMessage *m[6];
    cap_recv_n(c, m, 6, 20000);
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, NULL);
    cap_wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st); /* the consumer dies with 3..6 unacked */
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    int seen[7] = {0};
    Pgcapture__CaptureMessage *r[4];
    cap_recv_n(c2, r, 4, 20000);
    for (int i = 0; i < 4; i++) {
        int id = cap_id_of(r[i]->change);
        EXPECT_TRUE(id >= 3 && id <= 6);
        seen[id]++;
        cap_ack(c2, r[i]->checkpoint, NULL);
    }
    for (int id = 3; id <= 6; id++)
        if (seen[id] != 1) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "row %d received %d times (got %d %d %d %d)", id,
                      seen[id], cap_id_of(r[0]->change), cap_id_of(r[1]->change),
                      cap_id_of(r[2]->change), cap_id_of(r[3]->change));
        }
    cap_expect_quiet(c2, 1000);
}

/* Consumers of one URI die one after another, each next one joining at once while the last
 * one's stream still hands back: in every round the next consumer gets each change nobody
 * acked exactly once, and never one that was acked. Each round leaves log batches partly
 * acked and untouched and retried changes unacked. (A hand-back by nak failed a round in a
 * few dozen: nats-server before 2.11 may drop a nak'ed message's redelivery for the whole
 * ack wait and send the consumer's newest message, acked or not, again instead.) */
static void test_gateway_consumers_dying_in_turn_lose_and_repeat_nothing(void)
{
    enum { ROUNDS = 30, PER_ROUND = 5, N = ROUNDS * PER_ROUND };
    cap_env e;
    cap_setup(&e, NULL);
    /* 0: not received yet, 1: received, not acked (it must come again), 2: acked */
    int state[N + 1] = {0}, acked = 0;
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    for (int round = 0; round <= ROUNDS; round++) {
        int first = round * PER_ROUND + 1, want = 0, got = 0;
        if (round < ROUNDS) {
            /* Three transactions: two of two rows, one of one row. */
            cap_insert_rows(&e, first, first + 1, true);
            cap_insert_rows(&e, first + 2, first + 3, true);
            cap_insert_rows(&e, first + 4, first + 4, true);
        }
        bool here[N + 1] = {false};
        for (int id = 1; id <= N; id++)
            want += (id >= first && id < first + PER_ROUND && round < ROUNDS) || state[id] == 1;
        Pgcapture__CaptureMessage *m[N];
        long long until = harness_now_ms() + 20000;
        while (got < want) {
            if (harness_now_ms() > until) {
                cap_show_gateway_log();
                unit_fail(__FILE__, __LINE__, "round %d: got %d changes of %d", round, got, want);
            }
            Pgcapture__CaptureMessage *msg = cap_recv(c, 500);
            if (!msg)
                continue;
            int id = cap_id_of(msg->change);
            if (id < 1 || id > N || state[id] == 2 || here[id]) {
                cap_show_gateway_log();
                unit_fail(__FILE__, __LINE__, "round %d: row %d again (%s)", round, id,
                          id < 1 || id > N ? "unknown"
                          : here[id]       ? "twice"
                                           : "it was acked");
            }
            here[id] = true;
            m[got++] = msg;
        }
        /* Ack the rows received a second time and the even ones: the rest must come again. */
        for (int i = 0; i < got; i++) {
            int id = cap_id_of(m[i]->change);
            if (round == ROUNDS || state[id] == 1 || id % 2 == 0) {
                cap_ack(c, m[i]->checkpoint, NULL);
                state[id] = 2;
                acked++;
            } else {
                state[id] = 1;
            }
        }
        cap_wait_acked(&e, e.uri, acked);
        if (round < ROUNDS) {
            rpc_stream_cancel(c->st);
            c = cap_open(e.addr, e.uri, NULL);
        }
    }
    cap_expect_quiet(c, 1000);
    for (int id = 1; id <= N; id++)
        EXPECT_EQ_INT(2, state[id]);
}

/* TRUNCATE (op 3, an addition to pgcapture's protocol) goes only to a consumer that asks
 * with Truncate: true; another gets everything else, and the gateway acks the TRUNCATE for it
 * (nothing comes back on its next stream). */
static void test_gateway_sends_truncate_only_to_consumers_that_ask(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    char other[96];
    snprintf(other, sizeof other, "%s-other", e.name);
    cap_client *plain = cap_open(e.addr, e.uri, NULL);
    cap_client *asks = cap_open_raw(e.addr);
    cap_send_init_with(asks, other, NULL, 0, true);
    cap_insert_rows(&e, 1, 2, false);
    harness_exec(e.conn, "TRUNCATE t");
    cap_insert_rows(&e, 3, 3, false);
    Pgcapture__CaptureMessage *m[4];
    cap_recv_n(asks, m, 4, 20000);
    static const int ops[4] = {
        PGCAPTURE__CHANGE__OPERATION__INSERT, PGCAPTURE__CHANGE__OPERATION__INSERT,
        PGCAPTURE__CHANGE__OPERATION__TRUNCATE, PGCAPTURE__CHANGE__OPERATION__INSERT};
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ_INT(ops[i], m[i]->change->op);
        EXPECT_EQ_STR("t", m[i]->change->table);
        cap_ack(asks, m[i]->checkpoint, NULL);
    }
    Pgcapture__CaptureMessage *p[3];
    cap_recv_n(plain, p, 3, 20000);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(PGCAPTURE__CHANGE__OPERATION__INSERT, p[i]->change->op);
        EXPECT_EQ_INT(i + 1, cap_id_of(p[i]->change));
        cap_ack(plain, p[i]->checkpoint, NULL);
    }
    cap_expect_quiet(plain, 1000);
    harness_sleep_ms(300); /* the acks land */
    rpc_stream_cancel(plain->st);
    cap_client *again = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(again, 2000);
}

/* ---- changes the log no longer holds ---------------------------------------------------- */

/* Keeps the last `keep` messages of a stream, as its retention would. */
static void stream_keep_last(const char *stream, int64_t keep)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL, *upd = NULL;
    jsErrCode jerr = 0;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot read stream %s", stream);
    jsStreamConfig sc = *si->Config;
    sc.MaxMsgs = keep;
    natsStatus ns = js_UpdateStream(&upd, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(upd);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (ns != NATS_OK)
        unit_fail(__FILE__, __LINE__, "cannot limit stream %s: %d %d", stream, ns, (int)jerr);
}

static uint64_t stream_last_seq(const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    uint64_t last = 0;
    if (natsConnection_ConnectTo(&nc, harness_nats_url()) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK)
        last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return last;
}

/* The stream ends with DATA_LOSS, naming the URI and what to do; so does the gateway log. */
static void expect_data_loss(cap_env *e, cap_client *c, const char *uri)
{
    int code = cap_wait_end(c, 20000);
    const char *m = NULL;
    rpc_stream_status(c->st, &m);
    if (code != GRPC_STATUS_DATA_LOSS)
        cap_show_gateway_log();
    EXPECT_EQ_INT(GRPC_STATUS_DATA_LOSS, code);
    EXPECT_TRUE(m && strstr(m, uri) && strstr(m, "schedule dumps"));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -q 'changes lost: the stream ends with DATA_LOSS.*%s' '%s'",
             uri, e->gw_log);
    EXPECT_EQ_INT(0, system(cmd));
}

static void test_gateway_ends_with_data_loss_when_retention_removed_undelivered_changes(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    char stream[NAMES_BUF_LEN], other[96];
    names_stream(e.name, stream, sizeof stream);
    snprintf(other, sizeof other, "%s-other", e.name);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 2, false);
    Pgcapture__CaptureMessage *m[2];
    cap_recv_n(c, m, 2, 20000);
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, NULL);
    harness_sleep_ms(300);
    uint64_t held = stream_last_seq(stream);
    rpc_stream_cancel(c->st);
    /* Written while the consumer is away, then removed by retention before delivery. */
    for (int id = 3; id <= 6; id++) {
        cap_insert_rows(&e, id, id, false);
        long long until = harness_now_ms() + 20000; /* one NATS message each */
        while (stream_last_seq(stream) < held + (uint64_t)(id - 2) && harness_now_ms() < until)
            harness_sleep_ms(50);
    }
    EXPECT_EQ_UINT(held + 4, stream_last_seq(stream));
    stream_keep_last(stream, 1);
    expect_data_loss(&e, cap_open(e.addr, e.uri, NULL), e.uri);
    /* Not delivered around the hole on the next stream either. */
    expect_data_loss(&e, cap_open(e.addr, e.uri, NULL), e.uri);
    char series[256];
    snprintf(series, sizeof series, "pgcapture_gateway_data_loss_total{uri=\"%s\"}", e.uri);
    EXPECT_TRUE(harness_metric_wait(e.metrics_port, series, 2, 10000) == 2);
    /* A new durable (another URI here) starts at the oldest change the log holds. */
    cap_client *fresh = cap_open(e.addr, other, NULL);
    Pgcapture__CaptureMessage *f = cap_recv(fresh, 20000);
    EXPECT_TRUE(f && cap_id_of(f->change) > 2);
}

/* Requeued changes are kept as long as the log keeps changes, not forever. */
static void test_gateway_retry_stream_has_the_logs_retention_limits(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 1, false);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 20000); /* the stream is open: so is the retry stream */
    char stream[NAMES_BUF_LEN], retry[NAMES_BUF_LEN];
    names_stream(e.name, stream, sizeof stream);
    names_retry_stream(e.name, retry, sizeof retry);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *log = NULL, *rs = NULL;
    EXPECT_EQ_INT(NATS_OK, natsConnection_ConnectTo(&nc, harness_nats_url()));
    EXPECT_EQ_INT(NATS_OK, natsConnection_JetStream(&js, nc, NULL));
    EXPECT_EQ_INT(NATS_OK, js_GetStreamInfo(&log, js, stream, NULL, NULL));
    EXPECT_EQ_INT(NATS_OK, js_GetStreamInfo(&rs, js, retry, NULL, NULL));
    int64_t log_age = log->Config->MaxAge, retry_age = rs->Config->MaxAge;
    int64_t log_bytes = log->Config->MaxBytes, retry_bytes = rs->Config->MaxBytes;
    jsStreamInfo_Destroy(log);
    jsStreamInfo_Destroy(rs);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    EXPECT_TRUE(log_age > 0); /* the agent's --max-age, 7 days by default */
    EXPECT_EQ_INT(log_age, retry_age);
    EXPECT_EQ_INT(log_bytes, retry_bytes);
}

/* A requeued change that expired in the retry stream before any stream of the URI read it:
 * the next requeued change names it (Pgc-Prev), and the stream that finds it gone ends. */
static void test_gateway_ends_with_data_loss_when_a_requeued_change_expired_unread(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    char durable[NAMES_BUF_LEN], retry[NAMES_BUF_LEN], err[512];
    names_durable_from_uri(e.uri, durable, sizeof durable);
    names_retry_stream(e.name, retry, sizeof retry);
    /* Requeued by a gateway whose consumer then went away for good. */
    retry_stream_config rc = {harness_nats_url(), e.name, durable, 30000, 1000, 0, 0};
    retry_stream *r = NULL;
    EXPECT_EQ_INT(PGC_OK, retry_stream_create(&rc, &r, err, sizeof err));
    Pgcapture__Message msg = PGCAPTURE__MESSAGE__INIT;
    Pgcapture__Change ch = PGCAPTURE__CHANGE__INIT;
    ch.schema = "public";
    ch.table = "t";
    msg.type_case = PGCAPTURE__MESSAGE__TYPE_CHANGE;
    msg.change = &ch;
    uint8_t buf[64];
    size_t n = pgcapture__message__pack(&msg, buf);
    EXPECT_EQ_INT(PGC_OK, retry_stream_publish(r, buf, n, (log_pos){100, 1}, 1, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, retry_stream_publish(r, buf, n, (log_pos){200, 1}, 1, err, sizeof err));
    retry_stream_destroy(r);
    stream_keep_last(retry, 1); /* the first one expires unread */
    expect_data_loss(&e, cap_open(e.addr, e.uri, NULL), e.uri);
}

static void test_gateway_two_consumers_on_one_uri_share_every_message(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *a = cap_open(e.addr, e.uri, NULL);
    cap_client *b = cap_open(e.addr, e.uri, NULL);
    harness_sleep_ms(500); /* both streams pulling */
    enum { N = 120 };
    for (int i = 1; i <= N; i += 6) {
        cap_insert_rows(&e, i, i + 5, false);
        harness_sleep_ms(15);
    }
    int seen[N + 1] = {0}, got_a = 0, got_b = 0, total = 0;
    long long until = harness_now_ms() + 30000;
    while (total < N && harness_now_ms() < until) {
        for (int k = 0; k < 2; k++) {
            cap_client *c = k ? b : a;
            Pgcapture__CaptureMessage *m = cap_recv(c, 30);
            if (!m)
                continue;
            int id = cap_id_of(m->change);
            EXPECT_TRUE(id >= 1 && id <= N);
            seen[id]++;
            total++;
            if (k)
                got_b++;
            else
                got_a++;
            cap_ack(c, m->checkpoint, NULL);
        }
    }
    for (int id = 1; id <= N; id++)
        if (seen[id] != 1)
            unit_fail(__FILE__, __LINE__, "row %d received %d times", id, seen[id]);
    EXPECT_TRUE(got_a > 0);
    EXPECT_TRUE(got_b > 0);
}

/* A consumer that stops acking holds at most --window changes and slows nobody else. */
static void test_gateway_slow_consumer_is_bounded_by_its_window_alone(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    kill(e.gw_pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(e.gw_pid, 15000));
    const char *extra[] = {"--window", "5", NULL};
    cap_start_gateway(&e, extra);
    char other[128];
    snprintf(other, sizeof other, "%s-other", e.name);
    cap_client *slow = cap_open(e.addr, e.uri, NULL);
    cap_client *fast = cap_open(e.addr, other, NULL);
    for (int i = 1; i <= 40; i += 4) /* separate transactions, so several batches */
        cap_insert_rows(&e, i, i + 3, true);
    for (int i = 0; i < 40; i++) {
        Pgcapture__CaptureMessage *m[1];
        cap_recv_n(fast, m, 1, 20000);
        EXPECT_EQ_INT(i + 1, cap_id_of(m[0]->change));
        cap_ack(fast, m[0]->checkpoint, NULL);
    }
    /* The slow one got exactly what its window allows (even inside a batch), then nothing
     * while it acks nothing. */
    int got = 0;
    while (cap_recv(slow, 1000))
        got++;
    if (got != 5)
        unit_fail(__FILE__, __LINE__, "slow consumer got %d changes, window 5", got);
}

static void test_gateway_table_regex_filters_and_acks_the_rest(void)
{
    cap_env e;
    cap_setup(
        &e, "CREATE TABLE keep_me (id int PRIMARY KEY); CREATE TABLE drop_me (id int PRIMARY KEY)");
    cap_client *c = cap_open(e.addr, e.uri, "^keep_");
    harness_exec(e.conn, "INSERT INTO drop_me VALUES (1)");
    harness_exec(e.conn, "INSERT INTO keep_me VALUES (2)");
    harness_exec(e.conn, "INSERT INTO drop_me VALUES (3)");
    harness_exec(e.conn, "INSERT INTO keep_me VALUES (4)");
    Pgcapture__CaptureMessage *m[2];
    cap_recv_n(c, m, 2, 20000);
    EXPECT_EQ_STR("keep_me", m[0]->change->table);
    EXPECT_EQ_INT(2, cap_id_of(m[0]->change));
    EXPECT_EQ_INT(4, cap_id_of(m[1]->change));
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, NULL);
    cap_expect_quiet(c, 500);
    cap_wait_acked(&e, e.uri, 2);
    rpc_stream_cancel(c->st);
    /* The filtered changes were acked by the gateway: a consumer without a regex on the
     * same URI sees nothing of them. */
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c2, 1500);
}

static void test_gateway_refuses_bad_input_with_the_right_status(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    /* First request not init. */
    cap_client *c = cap_open_raw(e.addr);
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    ack.checkpoint = &cp;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    cap_send_request(c, &req);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    /* Garbage bytes. */
    c = cap_open_raw(e.addr);
    char err[128];
    EXPECT_EQ_INT(0,
                  rpc_stream_send(c->st, (const uint8_t *)"\xff\xff\xff\x0f", 4, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    /* Unknown URI. */
    c = cap_open(e.addr, "no-such-uri", NULL);
    EXPECT_EQ_INT(GRPC_STATUS_NOT_FOUND, cap_wait_end(c, 10000));
    /* Bad regex. */
    c = cap_open(e.addr, e.uri, "([a-z");
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    /* A regex bomb (11.6 s and 3.9 GB to compile with POSIX regcomp): refused, and the
     * gateway goes on serving (the cases below). */
    c = cap_open(e.addr, e.uri, "((a{1,255}){1,255}){1,255}");
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    /* An ack for a checkpoint never sent: refused, and nothing acked because of it. */
    c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 1, false);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 20000);
    Pgcapture__Checkpoint forged = *m[0]->checkpoint;
    uint8_t data[13];
    memcpy(data, forged.data.data, 13);
    data[7] ^= 0x40; /* a stream sequence far past anything sent */
    forged.data.data = data;
    cap_ack(c, &forged, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c, 10000));
    /* Also a real handle with a wrong position. */
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_recv_n(c2, m, 1, 20000);
    EXPECT_EQ_INT(1, cap_id_of(m[0]->change));
    Pgcapture__Checkpoint wrong = *m[0]->checkpoint;
    wrong.seq += 7;
    cap_ack(c2, &wrong, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c2, 10000));
    /* Init twice. */
    cap_client *c3 = cap_open(e.addr, e.uri, NULL);
    cap_recv_n(c3, m, 1, 20000);
    EXPECT_EQ_INT(1, cap_id_of(m[0]->change)); /* still there: nothing was acked */
    cap_send_init(c3, e.uri, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, cap_wait_end(c3, 10000));
}

static void test_gateway_sigterm_ends_streams_unavailable(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 2, true);
    Pgcapture__CaptureMessage *m[2];
    cap_recv_n(c, m, 2, 20000);
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_wait_acked(&e, e.uri, 1);
    kill(e.gw_pid, SIGTERM);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, cap_wait_end(c, 15000));
    EXPECT_EQ_INT(0, harness_wait_exit(e.gw_pid, 15000));
    /* The unacked row 2 comes back through a new gateway; row 1 does not. */
    cap_start_gateway(&e, NULL);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_recv_n(c2, m, 1, 20000);
    EXPECT_EQ_INT(2, cap_id_of(m[0]->change));
    cap_expect_quiet(c2, 1000);
}

static void test_gateway_python_client_compat(void)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        unit_fail(__FILE__, __LINE__, "/usr/bin/python3 missing (python3-grpcio needed)");
    cap_env e;
    /* A REPLICA IDENTITY FULL table whose body (100 kB, out of line) an UPDATE leaves
     * unchanged and whose note is NULL: the shape compat_capture.py checks. */
    cap_setup(&e, "CREATE TABLE tf (id int, n int, note text, body text);"
                  "ALTER TABLE tf REPLICA IDENTITY FULL;"
                  "ALTER TABLE tf ALTER body SET STORAGE EXTERNAL;"
                  "INSERT INTO tf SELECT 1, 1, NULL, string_agg(md5(i::text), '' ORDER BY i) "
                  "FROM generate_series(1, 3200) i");
    char tmp[] = "/tmp/pgc-pystubs.XXXXXX";
    if (!mkdtemp(tmp))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "protoc -Iproto -I/usr/include --python_out=%s proto/pgcapture.proto >%s.protoc 2>&1",
             tmp, e.gw_log);
    if (system(cmd) != 0) {
        harness_print_log_tail(e.gw_log, 5);
        unit_fail(__FILE__, __LINE__, "protoc --python_out failed");
    }
    cap_insert_rows(&e, 1, 3, true);
    harness_exec(e.conn, "UPDATE t SET v = 'py' WHERE id = 2");
    harness_exec(e.conn, "UPDATE tf SET n = 2");
    snprintf(cmd, sizeof cmd,
             "PYTHONPATH=%s /usr/bin/python3 tests/integration/compat_capture.py %s %s "
             ">>%s 2>&1",
             tmp, e.addr, e.uri, e.gw_log);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) {
        /* Only a temp dir left behind. */
    }
    if (rc != 0) {
        harness_print_log_tail(e.gw_log, 30);
        unit_fail(__FILE__, __LINE__, "the Python client failed (status %d)", rc);
    }
    /* The Python client acked everything: nothing comes back. */
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c, 1500);
}

static void kill_pid(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    if (kill(pid, 0) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* examples/custom_resolver.c: a complete gateway with its own resolver. */
static void test_gateway_custom_resolver_example_serves_source_slash_consumer(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    char bin[600], out[600], line[256], url[256];
    snprintf(bin, sizeof bin, "%s", getenv("PGC_TEST_BIN"));
    char *slash = strrchr(bin, '/');
    if (!slash)
        unit_fail(__FILE__, __LINE__, "PGC_TEST_BIN has no directory");
    strcpy(slash, "/examples/custom_resolver");
    snprintf(out, sizeof out, "%s.example", e.gw_log);
    snprintf(url, sizeof url, "%s", harness_nats_url());
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(out, "w", stdout);
        (void)f;
        execl(bin, bin, "127.0.0.1:0", url, (char *)NULL);
        _exit(127);
    }
    unit_defer(kill_pid, (void *)(intptr_t)pid);
    int port = 0;
    long long until = harness_now_ms() + 10000;
    while (!port && harness_now_ms() < until) {
        FILE *f = fopen(out, "r");
        if (f && fgets(line, sizeof line, f) && strncmp(line, "listening on ", 13) == 0)
            port = atoi(line + 13);
        if (f)
            fclose(f);
        harness_sleep_ms(20);
    }
    if (!port)
        unit_fail(__FILE__, __LINE__, "the example did not start (%s)", bin);
    char addr[64], uri[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    snprintf(uri, sizeof uri, "%s/example_consumer", e.name);
    cap_client *c = cap_open(addr, uri, NULL);
    cap_insert_rows(&e, 7, 7, false);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 20000);
    EXPECT_EQ_INT(7, cap_id_of(m[0]->change));
    cap_client *bad = cap_open(addr, "no-slash-here", NULL);
    EXPECT_EQ_INT(GRPC_STATUS_NOT_FOUND, cap_wait_end(bad, 10000));
    kill(pid, SIGTERM);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, cap_wait_end(c, 15000));
    int status = 0;
    EXPECT_EQ_INT(pid, waitpid(pid, &status, 0));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

UNIT_MAIN(UNIT_CASE(test_gateway_delivers_rows_with_identical_values),
          UNIT_CASE(test_gateway_joins_a_change_split_into_parts),
          UNIT_CASE(test_gateway_acked_changes_never_come_back),
          UNIT_CASE(test_gateway_requeue_brings_back_exactly_that_change),
          UNIT_CASE(test_gateway_consumer_killed_midstream_gets_unacked_again),
          UNIT_CASE(test_gateway_consumers_dying_in_turn_lose_and_repeat_nothing),
          UNIT_CASE(test_gateway_sends_truncate_only_to_consumers_that_ask),
          UNIT_CASE(test_gateway_ends_with_data_loss_when_retention_removed_undelivered_changes),
          UNIT_CASE(test_gateway_retry_stream_has_the_logs_retention_limits),
          UNIT_CASE(test_gateway_ends_with_data_loss_when_a_requeued_change_expired_unread),
          UNIT_CASE(test_gateway_two_consumers_on_one_uri_share_every_message),
          UNIT_CASE(test_gateway_slow_consumer_is_bounded_by_its_window_alone),
          UNIT_CASE(test_gateway_table_regex_filters_and_acks_the_rest),
          UNIT_CASE(test_gateway_refuses_bad_input_with_the_right_status),
          UNIT_CASE(test_gateway_sigterm_ends_streams_unavailable),
          UNIT_CASE(test_gateway_python_client_compat),
          UNIT_CASE(test_gateway_custom_resolver_example_serves_source_slash_consumer))
