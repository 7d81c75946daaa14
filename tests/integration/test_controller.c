/* The controller against a real NATS server, driven over gRPC as a gateway and a user
 * would: every scheduled item is handed out until acked, requeues come back after a
 * back-off, a stream that ends gives its item back, StopSchedule and the cool-down hold,
 * pullers of one URI share the work, a kill -9 loses nothing, bad input is refused; and
 * `pgcapture schedule` / `pgcapture status` against a real PostgreSQL table. */
#include "harness/runner.h"
#include "harness/fixtures.h"
#include "harness/services.h"

#include "core/status.h"
#include "jetstream/jskv.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <errno.h>
#include <grpc/status.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_MS 300
#define RECV_MS 10000

/* ---- a controller process ------------------------------------------------------------- */

typedef struct ctl {
    char bucket[64];
    char addr[64];
    char log[512];
    pid_t pid;
    rpc_channel *ch;
} ctl;

static void drop_bucket(void *arg)
{
    char err[256];
    jskv_delete_bucket(harness_nats_url(), arg, err, sizeof err);
    free(arg);
}

static bool log_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static void close_ctl_channel(void *arg)
{
    ctl *c = arg;
    rpc_channel_destroy(c->ch);
    c->ch = NULL;
}

/* Starts the controller and, once it serves, a fresh channel to it (a channel that
 * failed to connect would sit in gRPC's reconnect back-off). The channel is closed
 * before the process is stopped. */
static void ctl_spawn(ctl *c)
{
    const char *args[] = {"controller",
                          "--nats-url",
                          harness_nats_url(),
                          "--listen",
                          c->addr,
                          "--bucket",
                          c->bucket,
                          "--requeue-backoff",
                          "300ms",
                          "--requeue-backoff-max",
                          "1s",
                          "--log-level",
                          "debug",
                          NULL};
    if (c->ch) {
        rpc_channel_destroy(c->ch);
        c->ch = NULL;
    }
    if (truncate(c->log, 0) != 0 && errno != ENOENT)
        unit_fail(__FILE__, __LINE__, "cannot truncate %s", c->log);
    c->pid = harness_spawn(c->log, args);
    long long deadline = harness_now_ms() + 15000;
    while (!log_has(c->log, "controller ready")) {
        if (harness_now_ms() > deadline || harness_wait_exit(c->pid, 0) >= 0) {
            harness_print_log_tail(c->log, 30);
            unit_fail(__FILE__, __LINE__, "controller not ready at %s", c->addr);
        }
        harness_sleep_ms(20);
    }
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(c->addr, &c->ch, err, sizeof err));
    unit_defer(close_ctl_channel, c);
}

static ctl *ctl_start(void)
{
    ctl *c = calloc(1, sizeof *c);
    char name[48];
    harness_unique_name(name, sizeof name);
    snprintf(c->bucket, sizeof c->bucket, "CTL_%s", name);
    snprintf(c->addr, sizeof c->addr, "127.0.0.1:%d", harness_free_port());
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(c->log, sizeof c->log, "%s/controller-%s.log", dir ? dir : "/tmp", name);
    unit_defer(free, c);
    unit_defer(drop_bucket, strdup(c->bucket));
    ctl_spawn(c);
    return c;
}

/* ---- unary calls ------------------------------------------------------------------------- */

static int unary(ctl *c, const char *method, const ProtobufCMessage *m, uint8_t **resp,
                 size_t *resp_len, char *err, size_t err_len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    int code = -1;
    uint8_t *r = NULL;
    size_t rl = 0;
    int rc = rpc_unary(c->ch, method, buf, n, 5000, &r, &rl, &code, err, err_len);
    free(buf);
    if (rc != PGC_OK)
        code = -1;
    if (resp) {
        *resp = r;
        *resp_len = rl;
    } else {
        free(r);
    }
    return code;
}

static int status_call(ctl *c, const char *uri, Pgcapture__ControllerStatusResponse **out)
{
    Pgcapture__ControllerStatusRequest req = PGCAPTURE__CONTROLLER_STATUS_REQUEST__INIT;
    req.uri = (char *)uri;
    uint8_t *resp = NULL;
    size_t len = 0;
    char err[256];
    int code = unary(c, RPC_METHOD_ADMIN_STATUS, &req.base, &resp, &len, err, sizeof err);
    if (code == GRPC_STATUS_OK) {
        *out = pgcapture__controller_status_response__unpack(NULL, len, resp);
        if (!*out)
            code = -2;
    }
    free(resp);
    return code;
}

/* The URI's status line; fails the case when missing. Freed at the end of the case. */
static void free_status(void *arg)
{
    pgcapture__controller_status_response__free_unpacked(arg, NULL);
}

static const Pgcapture__ControllerUriStatus *uri_status(ctl *c, const char *uri)
{
    Pgcapture__ControllerStatusResponse *st = NULL;
    EXPECT_EQ_INT(GRPC_STATUS_OK, status_call(c, uri, &st));
    unit_defer(free_status, st);
    for (size_t i = 0; i < st->n_uris; i++)
        if (strcmp(st->uris[i]->uri, uri) == 0)
            return st->uris[i];
    return NULL;
}

/* Schedules items begin = first*10 + i*10 ... of table `table`; returns the gRPC code. */
static int schedule(ctl *c, const char *uri, const char *table, int first, int n, char *err,
                    size_t err_len)
{
    Pgcapture__DumpInfoResponse items[32];
    Pgcapture__DumpInfoResponse *ptrs[32];
    if (n > 32)
        unit_fail(__FILE__, __LINE__, "at most 32 items");
    for (int i = 0; i < n; i++) {
        pgcapture__dump_info_response__init(&items[i]);
        items[i].schema = "public";
        items[i].table = (char *)table;
        items[i].page_begin = (uint32_t)((first + i) * 10);
        items[i].page_end = (uint32_t)((first + i) * 10 + 9);
        ptrs[i] = &items[i];
    }
    Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    req.n_dumps = (size_t)n;
    req.dumps = ptrs;
    return unary(c, RPC_METHOD_SCHEDULE, &req.base, NULL, NULL, err, err_len);
}

static void schedule_ok(ctl *c, const char *uri, int first, int n)
{
    char err[256] = "";
    int code = schedule(c, uri, "orders", first, n, err, sizeof err);
    if (code != GRPC_STATUS_OK)
        unit_fail(__FILE__, __LINE__, "Schedule: status %d: %s", code, err);
}

static int stop_schedule(ctl *c, const char *uri)
{
    Pgcapture__StopScheduleRequest req = PGCAPTURE__STOP_SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    char err[256];
    return unary(c, RPC_METHOD_STOP_SCHEDULE, &req.base, NULL, NULL, err, sizeof err);
}

static int set_cooldown(ctl *c, const char *uri, int64_t seconds, int32_t nanos)
{
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = seconds;
    d.nanos = nanos;
    Pgcapture__SetScheduleCoolDownRequest req = PGCAPTURE__SET_SCHEDULE_COOL_DOWN_REQUEST__INIT;
    req.uri = (char *)uri;
    req.duration = &d;
    char err[256];
    return unary(c, RPC_METHOD_SET_SCHEDULE_COOL_DOWN, &req.base, NULL, NULL, err, sizeof err);
}

/* ---- a puller (what a gateway does) -------------------------------------------------- */

typedef struct puller {
    rpc_stream *st;
} puller;

static void close_puller(void *arg)
{
    puller *p = arg;
    rpc_stream_destroy(p->st);
    free(p);
}

static void pull_send(puller *p, const char *uri, const char *reason)
{
    Pgcapture__DumpInfoRequest req = PGCAPTURE__DUMP_INFO_REQUEST__INIT;
    req.uri = (char *)uri;
    req.requeue_reason = (char *)reason;
    uint8_t buf[512];
    size_t n = pgcapture__dump_info_request__pack(&req, buf);
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(p->st, buf, n, err, sizeof err));
}

static puller *pull_open(ctl *c, const char *uri)
{
    puller *p = calloc(1, sizeof *p);
    char err[256];
    EXPECT_EQ_INT(PGC_OK,
                  rpc_stream_open(c->ch, RPC_METHOD_PULL_DUMP_INFO, &p->st, err, sizeof err));
    unit_defer(close_puller, p);
    pull_send(p, uri, "");
    return p;
}

/* Receives the next item's page_begin, or -1 after timeout_ms, or -2 when the stream ended. */
static long pull_recv(puller *p, int timeout_ms)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256];
    int rc = rpc_stream_recv(p->st, timeout_ms, &data, &len, err, sizeof err);
    if (rc == PGC_ERR_TIMEOUT)
        return -1;
    if (rc == 0)
        return -2;
    if (rc != 1)
        unit_fail(__FILE__, __LINE__, "PullDumpInfo recv: %s", err);
    Pgcapture__DumpInfoResponse *r = pgcapture__dump_info_response__unpack(NULL, len, data);
    free(data);
    if (!r)
        unit_fail(__FILE__, __LINE__, "malformed DumpInfoResponse");
    EXPECT_EQ_STR("public", r->schema);
    EXPECT_EQ_UINT(r->page_begin + 9, r->page_end);
    long begin = (long)r->page_begin;
    pgcapture__dump_info_response__free_unpacked(r, NULL);
    return begin;
}

static long pull_item(puller *p, ctl *c)
{
    long b = pull_recv(p, RECV_MS);
    if (b < 0) {
        harness_print_log_tail(c->log, 30);
        unit_fail(__FILE__, __LINE__, "no item within %d ms (%ld)", RECV_MS, b);
    }
    return b;
}

/* ---- cases ------------------------------------------------------------------------------ */

static int count_key(void *arg, const char *key, const uint8_t *data, size_t len)
{
    (void)key, (void)data, (void)len;
    (*(int *)arg)++;
    return 0;
}

static void test_controller_hands_out_every_item_once_when_acked(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 5);
    puller *p = pull_open(c, "app");
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ_INT(i * 10, pull_item(p, c));
        pull_send(p, "app", "");
    }
    EXPECT_EQ_INT(-1, pull_recv(p, 700));
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_TRUE(st != NULL);
    EXPECT_EQ_UINT(5, st->done);
    EXPECT_EQ_UINT(0, st->pending);
    EXPECT_EQ_UINT(0, st->outstanding);
    EXPECT_EQ_UINT(1, st->streams);

    /* The bucket keeps nothing of the acked items, not even delete markers: only the
     * URI's counters. */
    jskv *kv = NULL;
    char err[256];
    uint8_t *value = NULL;
    size_t len = 0;
    EXPECT_EQ_INT(PGC_OK, jskv_open(harness_nats_url(), c->bucket, 1, &kv, err, sizeof err));
    unit_defer((void (*)(void *))jskv_destroy, kv);
    int keys = 0;
    EXPECT_EQ_INT(PGC_OK, jskv_scan(kv, "q.>", count_key, &keys, err, sizeof err));
    EXPECT_EQ_INT(0, keys);
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND,
                  jskv_get(kv, "q.617070.0000000000000001", &value, &len, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jskv_scan(kv, "m.>", count_key, &keys, err, sizeof err));
    EXPECT_EQ_INT(1, keys);
    uint64_t stored = 0;
    EXPECT_EQ_INT(PGC_OK, jskv_stored(kv, &stored, err, sizeof err));
    EXPECT_EQ_UINT(1, stored);
}

static void test_controller_requeued_item_comes_back_after_backoff(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 2);
    puller *p = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p, c));
    long long requeued_at = harness_now_ms();
    pull_send(p, "app", "replica lags");
    /* The requeued item waits out its back-off: the next one goes first. */
    EXPECT_EQ_INT(10, pull_item(p, c));
    pull_send(p, "app", "");
    EXPECT_EQ_INT(0, pull_item(p, c));
    EXPECT_TRUE(harness_now_ms() - requeued_at >= BACKOFF_MS);
    pull_send(p, "app", "");
    EXPECT_EQ_INT(-1, pull_recv(p, 700));
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_EQ_UINT(2, st->done);
    EXPECT_EQ_UINT(1, st->requeued);
}

static void test_controller_requeues_the_item_of_a_stream_that_ends(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 1);
    puller *p1 = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p1, c));
    rpc_stream_cancel(p1->st);
    puller *p2 = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p2, c));
    pull_send(p2, "app", "");
    EXPECT_EQ_INT(-1, pull_recv(p2, 700));
    EXPECT_EQ_UINT(1, uri_status(c, "app")->done);
}

static void test_controller_stop_schedule_drops_pending_items(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 5);
    puller *p = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p, c));
    EXPECT_EQ_INT(GRPC_STATUS_OK, stop_schedule(c, "app"));
    pull_send(p, "app", "gateway wants it again"); /* stopped: not requeued */
    EXPECT_EQ_INT(-1, pull_recv(p, 1000));
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_EQ_UINT(0, st->pending);
    EXPECT_EQ_UINT(0, st->outstanding);
    /* A new schedule after the stop is served. */
    schedule_ok(c, "app", 7, 1);
    EXPECT_EQ_INT(70, pull_item(p, c));
}

static void test_controller_cooldown_spaces_items_of_a_uri(void)
{
    ctl *c = ctl_start();
    EXPECT_EQ_INT(GRPC_STATUS_OK, set_cooldown(c, "app", 1, 0));
    schedule_ok(c, "app", 0, 2);
    puller *p = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p, c));
    long long acked_at = harness_now_ms();
    pull_send(p, "app", "");
    EXPECT_EQ_INT(10, pull_item(p, c));
    /* Never before the ack plus the cool-down (a lower bound only: no upper timing). */
    EXPECT_TRUE(harness_now_ms() - acked_at >= 1000);
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_TRUE(st->cool_down != NULL);
    EXPECT_EQ_INT(1, st->cool_down->seconds);
}

static void test_controller_two_pullers_of_one_uri_get_disjoint_items(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 6);
    puller *p[2] = {pull_open(c, "app"), pull_open(c, "app")};
    int seen[6] = {0};
    long a = pull_item(p[0], c), b = pull_item(p[1], c);
    EXPECT_TRUE(a != b);
    EXPECT_EQ_UINT(2, uri_status(c, "app")->outstanding);
    seen[a / 10]++;
    seen[b / 10]++;
    for (int got = 2; got < 6;) {
        for (int k = 0; k < 2 && got < 6; k++) {
            pull_send(p[k], "app", "");
            long x = pull_item(p[k], c);
            seen[x / 10]++;
            got++;
        }
    }
    pull_send(p[0], "app", "");
    pull_send(p[1], "app", "");
    for (int i = 0; i < 6; i++)
        EXPECT_EQ_INT(1, seen[i]);
    EXPECT_EQ_INT(-1, pull_recv(p[0], 500));
    EXPECT_EQ_INT(-1, pull_recv(p[1], 10));
    EXPECT_EQ_UINT(6, uri_status(c, "app")->done);
}

static void test_controller_restart_mid_schedule_delivers_every_item(void)
{
    ctl *c = ctl_start();
    EXPECT_EQ_INT(GRPC_STATUS_OK, set_cooldown(c, "other", 0, 250000000));
    schedule_ok(c, "app", 0, 6);
    int seen[6] = {0};
    puller *p = pull_open(c, "app");
    for (int i = 0; i < 2; i++) {
        seen[pull_item(p, c) / 10]++;
        pull_send(p, "app", "");
    }
    long outstanding = pull_item(p, c); /* handed out, never acked */
    EXPECT_EQ_INT(0, kill(c->pid, SIGKILL));
    EXPECT_TRUE(harness_wait_exit(c->pid, 5000) >= 0);
    EXPECT_EQ_INT(-2, pull_recv(p, 5000));
    rpc_stream_destroy(p->st); /* before its channel goes */
    p->st = NULL;
    ctl_spawn(c);
    puller *q = pull_open(c, "app");
    for (int i = 0; i < 4; i++) {
        long x = pull_item(q, c);
        seen[x / 10]++;
        pull_send(q, "app", "");
    }
    EXPECT_EQ_INT(-1, pull_recv(q, 700));
    for (int i = 0; i < 6; i++)
        EXPECT_EQ_INT(1, seen[i]);
    EXPECT_TRUE(outstanding >= 0);
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_EQ_UINT(6, st->done);
    const Pgcapture__ControllerUriStatus *other = uri_status(c, "other");
    EXPECT_TRUE(other != NULL);
    EXPECT_EQ_INT(250000000, other->cool_down->nanos);

    /* Once everything is acked the bucket holds only markers for the items: a restart
     * reads it to the end and keeps the counters. */
    rpc_stream_destroy(q->st);
    q->st = NULL;
    EXPECT_EQ_INT(0, kill(c->pid, SIGKILL));
    EXPECT_TRUE(harness_wait_exit(c->pid, 5000) >= 0);
    ctl_spawn(c);
    EXPECT_EQ_UINT(6, uri_status(c, "app")->done);
    EXPECT_EQ_UINT(0, uri_status(c, "app")->pending);
}

static void test_controller_refuses_bad_input_with_invalid_argument(void)
{
    ctl *c = ctl_start();
    char err[256];
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, schedule(c, "", "orders", 0, 1, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, schedule(c, "app", "", 0, 1, err, sizeof err));
    EXPECT_TRUE(strstr(err, "table") != NULL);

    Pgcapture__DumpInfoResponse good = PGCAPTURE__DUMP_INFO_RESPONSE__INIT, bad = good;
    good.schema = bad.schema = "public";
    good.table = bad.table = "orders";
    bad.page_begin = 5;
    bad.page_end = 4;
    Pgcapture__DumpInfoResponse *two[2] = {&good, &bad};
    Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    req.uri = "app";
    req.n_dumps = 2;
    req.dumps = two;
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT,
                  unary(c, RPC_METHOD_SCHEDULE, &req.base, NULL, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "page_end") != NULL);
    /* An item without a schema could never be dumped (the gateway's scan refuses it, and the
     * item would be requeued forever): refused up front. */
    bad = good;
    bad.schema = "";
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT,
                  unary(c, RPC_METHOD_SCHEDULE, &req.base, NULL, NULL, err, sizeof err));
    EXPECT_TRUE(strstr(err, "schema") != NULL);

    uint8_t junk[] = {0x0a, 0x7f, 'x'}; /* field 1 claims 127 bytes, has 1 */
    int code = -1;
    uint8_t *resp = NULL;
    size_t len = 0;
    const char *methods[] = {RPC_METHOD_SCHEDULE, RPC_METHOD_STOP_SCHEDULE,
                             RPC_METHOD_SET_SCHEDULE_COOL_DOWN, RPC_METHOD_ADMIN_STATUS};
    for (size_t i = 0; i < 4; i++) {
        EXPECT_EQ_INT(PGC_OK, rpc_unary(c->ch, methods[i], junk, sizeof junk, 5000, &resp, &len,
                                        &code, err, sizeof err));
        free(resp);
        resp = NULL;
        EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, code);
    }
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, set_cooldown(c, "app", -1, 0));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, stop_schedule(c, ""));

    /* Nothing was appended by the refused requests. */
    const Pgcapture__ControllerUriStatus *st = uri_status(c, "app");
    EXPECT_TRUE(st == NULL || st->pending == 0);

    /* A pull stream must open with a uri, and must send well-formed requests. */
    puller *p = pull_open(c, "");
    EXPECT_EQ_INT(-2, pull_recv(p, 5000));
    const char *msg = NULL;
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, rpc_stream_status(p->st, &msg));
    puller *p2 = pull_open(c, "app");
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(p2->st, junk, sizeof junk, err, sizeof err));
    EXPECT_EQ_INT(-2, pull_recv(p2, 5000));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, rpc_stream_status(p2->st, &msg));

    /* An unknown method of the service is UNIMPLEMENTED, not a crash. */
    EXPECT_EQ_INT(PGC_OK, rpc_unary(c->ch, "/pgcapture.DBLogController/Nope", junk, 1, 5000, &resp,
                                    &len, &code, err, sizeof err));
    free(resp);
    EXPECT_EQ_INT(GRPC_STATUS_UNIMPLEMENTED, code);
}

static void test_controller_keeps_serving_across_a_nats_restart(void)
{
    ctl *c = ctl_start();
    schedule_ok(c, "app", 0, 2);
    puller *p = pull_open(c, "app");
    EXPECT_EQ_INT(0, pull_item(p, c));
    harness_nats_stop();
    harness_nats_start();
    pull_send(p, "app", "");
    EXPECT_EQ_INT(10, pull_item(p, c));
    pull_send(p, "app", "");
    /* Schedule answers UNAVAILABLE until the controller has reconnected, then OK. */
    long long deadline = harness_now_ms() + 20000;
    char err[256] = "";
    int code;
    while ((code = schedule(c, "app", "orders", 2, 1, err, sizeof err)) != GRPC_STATUS_OK) {
        if (code != GRPC_STATUS_UNAVAILABLE && code != GRPC_STATUS_DEADLINE_EXCEEDED)
            unit_fail(__FILE__, __LINE__, "Schedule after NATS restart: status %d: %s", code, err);
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(c->log, 20);
            unit_fail(__FILE__, __LINE__, "Schedule never succeeded after NATS restart: %s", err);
        }
        harness_sleep_ms(200);
    }
    EXPECT_EQ_INT(20, pull_item(p, c));
    pull_send(p, "app", "");
    EXPECT_EQ_INT(-1, pull_recv(p, 700));
}

/* ---- the CLI ------------------------------------------------------------------------------ */

static int run_cli(ctl *c, const char *const *args, int timeout_ms)
{
    pid_t pid = harness_spawn(c->log, args);
    int rc = harness_wait_exit(pid, timeout_ms);
    if (rc < 0)
        unit_fail(__FILE__, __LINE__, "pgcapture %s did not exit", args[0]);
    return rc;
}

static void test_schedule_cli_covers_every_page_of_the_table(void)
{
    ctl *c = ctl_start();
    char conninfo[512];
    harness_replica_db_create(false, conninfo, sizeof conninfo);
    PGconn *db = harness_connect(conninfo);
    harness_exec(db, "CREATE TABLE orders (id int, note text)");
    harness_exec(db,
                 "INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g");
    harness_exec(db, "ANALYZE orders");
    /* Grow it after ANALYZE: relpages is now short of the real size. */
    harness_exec(db,
                 "INSERT INTO orders SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g");
    long long relpages =
        harness_query_int(db, "SELECT relpages FROM pg_class WHERE relname = 'orders'");
    long long pages = harness_query_int(
        db, "SELECT pg_relation_size('orders') / current_setting('block_size')::int8");
    EXPECT_TRUE(pages > relpages);

    const char *args[] = {"schedule",
                          "--controller",
                          c->addr,
                          "--uri",
                          "cli",
                          "--table",
                          "public.orders",
                          "--replica",
                          conninfo,
                          "--pages-per-item",
                          "37",
                          NULL};
    EXPECT_EQ_INT(0, run_cli(c, args, 30000));
    puller *p = pull_open(c, "cli");
    long long next = 0;
    while (next < pages) {
        uint8_t *data = NULL;
        size_t len = 0;
        char err[256];
        EXPECT_EQ_INT(1, rpc_stream_recv(p->st, RECV_MS, &data, &len, err, sizeof err));
        Pgcapture__DumpInfoResponse *r = pgcapture__dump_info_response__unpack(NULL, len, data);
        free(data);
        EXPECT_TRUE(r != NULL);
        EXPECT_EQ_STR("public", r->schema);
        EXPECT_EQ_STR("orders", r->table);
        EXPECT_EQ_INT(next, r->page_begin);
        EXPECT_TRUE(r->page_end >= r->page_begin && r->page_end - r->page_begin < 37);
        next = (long long)r->page_end + 1;
        pgcapture__dump_info_response__free_unpacked(r, NULL);
        pull_send(p, "cli", "");
    }
    EXPECT_EQ_INT(pages, next);
    EXPECT_EQ_INT(-1, pull_recv(p, 700));

    /* --cool-down and --stop map to their calls. */
    const char *cd[] = {"schedule", "--controller", c->addr, "--uri",
                        "cli",      "--cool-down",  "2s",    NULL};
    EXPECT_EQ_INT(0, run_cli(c, cd, 15000));
    EXPECT_EQ_INT(2, uri_status(c, "cli")->cool_down->seconds);
    schedule_ok(c, "stopme", 0, 3);
    const char *stop[] = {"schedule", "--controller", c->addr, "--uri", "stopme", "--stop", NULL};
    EXPECT_EQ_INT(0, run_cli(c, stop, 15000));
    EXPECT_EQ_UINT(0, uri_status(c, "stopme")->pending);

    /* `pgcapture status` prints each URI. */
    char out[600];
    snprintf(out, sizeof out, "%s.status", c->log);
    const char *status[] = {"status", "--controller", c->addr, NULL};
    pid_t pid = harness_spawn(out, status);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 15000));
    FILE *f = fopen(out, "r");
    EXPECT_TRUE(f != NULL);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    EXPECT_TRUE(strstr(text, "cli") != NULL && strstr(text, "stopme") != NULL);
    EXPECT_TRUE(strstr(text, "DONE") != NULL);
}

static void test_schedule_cli_reports_bad_input(void)
{
    ctl *c = ctl_start();
    char conninfo[512];
    harness_replica_db_create(false, conninfo, sizeof conninfo);
    const char *missing[] = {"schedule", "--controller", c->addr,     "--uri",  "cli",
                             "--table",  "public.nope",  "--replica", conninfo, NULL};
    EXPECT_EQ_INT(2, run_cli(c, missing, 15000));
    const char *bad_duration[] = {"schedule", "--controller", c->addr, "--uri",
                                  "cli",      "--cool-down",  "soon",  NULL};
    EXPECT_EQ_INT(2, run_cli(c, bad_duration, 15000));
    const char *no_uri[] = {"schedule", "--controller", c->addr, "--stop", NULL};
    EXPECT_EQ_INT(2, run_cli(c, no_uri, 15000));
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", harness_free_port());
    const char *unreachable[] = {"schedule", "--controller", dead, "--uri", "cli",
                                 "--stop",   "--timeout",    "2s", NULL};
    EXPECT_EQ_INT(1, run_cli(c, unreachable, 15000));
    const char *status_dead[] = {"status", "--controller", dead, "--timeout", "2s", NULL};
    EXPECT_EQ_INT(1, run_cli(c, status_dead, 15000));
}

/* ---- a client of another language ---------------------------------------------------------- */

/* Python stubs generated from our proto at test time (protoc --python_out) with grpcio's
 * generic calls: what a pgcapture Python user would run. */
static const char python_client[] =
    "import queue, subprocess, sys\n"
    "proto_dir, out_dir, addr, uri = sys.argv[1:5]\n"
    "subprocess.check_call(['protoc', '-I' + proto_dir, '-I/usr/include',\n"
    "                       '--python_out=' + out_dir, 'pgcapture.proto'])\n"
    "sys.path.insert(0, out_dir)\n"
    "import grpc\n"
    "import pgcapture_pb2 as pb\n"
    "from google.protobuf import duration_pb2\n"
    "ch = grpc.insecure_channel(addr)\n"
    "def unary(name, req, resp):\n"
    "    return ch.unary_unary('/pgcapture.DBLogController/' + name,\n"
    "        request_serializer=req.SerializeToString, response_deserializer=resp.FromString)\n"
    "schedule = unary('Schedule', pb.ScheduleRequest, pb.ScheduleResponse)\n"
    "cool = unary('SetScheduleCoolDown', pb.SetScheduleCoolDownRequest,\n"
    "             pb.SetScheduleCoolDownResponse)\n"
    "schedule(pb.ScheduleRequest(uri=uri, dumps=[pb.DumpInfoResponse(schema='public',\n"
    "    table='py', page_begin=i * 10, page_end=i * 10 + 9) for i in range(3)]), timeout=10)\n"
    "cool(pb.SetScheduleCoolDownRequest(uri=uri, duration=duration_pb2.Duration(nanos=1000000)),\n"
    "     timeout=10)\n"
    "try:\n"
    "    schedule(pb.ScheduleRequest(uri=uri, dumps=[pb.DumpInfoResponse(schema='public')]),\n"
    "             timeout=10)\n"
    "    sys.exit('an empty table name was accepted')\n"
    "except grpc.RpcError as e:\n"
    "    if e.code() != grpc.StatusCode.INVALID_ARGUMENT:\n"
    "        sys.exit('empty table name: got %s' % e.code())\n"
    "pull = ch.stream_stream('/pgcapture.DBLogController/PullDumpInfo',\n"
    "    request_serializer=pb.DumpInfoRequest.SerializeToString,\n"
    "    response_deserializer=pb.DumpInfoResponse.FromString)\n"
    "q = queue.Queue()\n"
    "q.put(pb.DumpInfoRequest(uri=uri))\n"
    "def requests():\n"
    "    while True:\n"
    "        r = q.get()\n"
    "        if r is None:\n"
    "            return\n"
    "        yield r\n"
    "stream = pull(requests(), timeout=30)\n"
    "got = []\n"
    "for item in stream:\n"
    "    got.append((item.table, item.page_begin, item.page_end))\n"
    "    q.put(pb.DumpInfoRequest())\n"
    "    if len(got) == 3:\n"
    "        break\n"
    "q.put(None)  # half-close after the last ack: the controller ends the call\n"
    "for extra in stream:\n"
    "    sys.exit('unexpected item %r' % extra)\n"
    "if got != [('py', 0, 9), ('py', 10, 19), ('py', 20, 29)]:\n"
    "    sys.exit('got %r' % got)\n"
    "print('python client OK')\n";

static void test_controller_serves_a_python_grpc_client(void)
{
    ctl *c = ctl_start();
    const char *dir = getenv("PGC_TEST_LOGDIR");
    char script[600], out_dir[600], cwd[400], cmd[4096];
    snprintf(script, sizeof script, "%s/%s-client.py", dir ? dir : "/tmp", c->bucket);
    snprintf(out_dir, sizeof out_dir, "%s/%s-py", dir ? dir : "/tmp", c->bucket);
    EXPECT_TRUE(getcwd(cwd, sizeof cwd) != NULL);
    FILE *f = fopen(script, "w");
    EXPECT_TRUE(f != NULL);
    fputs(python_client, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && /usr/bin/python3 '%s' '%s/proto' '%s' '%s' py >>'%s' 2>&1", out_dir,
             script, cwd, out_dir, c->addr, c->log);
    int rc = system(cmd);
    if (rc != 0) {
        harness_print_log_tail(c->log, 30);
        unit_fail(__FILE__, __LINE__, "python client exited with %d", rc);
    }
    EXPECT_TRUE(log_has(c->log, "python client OK"));
    EXPECT_EQ_UINT(3, uri_status(c, "py")->done);
}

UNIT_MAIN(UNIT_CASE(test_controller_hands_out_every_item_once_when_acked),
          UNIT_CASE(test_controller_requeued_item_comes_back_after_backoff),
          UNIT_CASE(test_controller_requeues_the_item_of_a_stream_that_ends),
          UNIT_CASE(test_controller_stop_schedule_drops_pending_items),
          UNIT_CASE(test_controller_cooldown_spaces_items_of_a_uri),
          UNIT_CASE(test_controller_two_pullers_of_one_uri_get_disjoint_items),
          UNIT_CASE(test_controller_restart_mid_schedule_delivers_every_item),
          UNIT_CASE(test_controller_refuses_bad_input_with_invalid_argument),
          UNIT_CASE(test_controller_keeps_serving_across_a_nats_restart),
          UNIT_CASE(test_schedule_cli_covers_every_page_of_the_table),
          UNIT_CASE(test_schedule_cli_reports_bad_input),
          UNIT_CASE(test_controller_serves_a_python_grpc_client))
