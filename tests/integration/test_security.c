/* The security cases, each against real servers (PostgreSQL, NATS, the agent and a
 * `pgcapture gateway` process) with certificates made by openssl for the test: refused
 * TLS handshakes, the limits a peer cannot push past, and authorization. Each case expects
 * its exact gRPC status, and afterwards the data path still delivers every change once. */
#include "core/acl.h"
#include "core/status.h"
#include "harness/capture.h"
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/proxy.h"
#include "harness/runner.h"
#include "harness/services.h"
#include "jetstream/jskv.h"

#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A source with table t (id int primary key), its agent streaming, and a resolver file
 * with the URI "<name>-uri" on that source plus `extra_conf` (appended as is). */
typedef struct sec_env {
    char db[512], name[64], uri[80], conf[512], agent_log[512];
    PGconn *conn;
    harness_gateway gw;
    int next_id;
} sec_env;

static void setup(sec_env *e, const char *uri_keys, const char *extra_conf)
{
    memset(e, 0, sizeof *e);
    harness_db_create(false, e->db, sizeof e->db);
    e->conn = harness_connect(e->db);
    harness_exec(e->conn, "CREATE TABLE t (id int PRIMARY KEY)");
    harness_unique_name(e->name, sizeof e->name);
    snprintf(e->uri, sizeof e->uri, "%s-uri", e->name);
    harness_agent_start(e->db, e->name, NULL, e->agent_log, sizeof e->agent_log);
    harness_agent_wait_streaming(e->db, e->name, e->agent_log, 60000);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(e->conf, sizeof e->conf, "%s/gateway-%s.conf", dir && *dir ? dir : "/tmp", e->name);
    FILE *f = fopen(e->conf, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", e->conf);
    fprintf(f, "[%s]\nsource = %s\n%s\n%s", e->uri, e->name, uri_keys ? uri_keys : "",
            extra_conf ? extra_conf : "");
    fclose(f);
    e->next_id = 1;
}

/* The gateway with TLS (mutual when asked) plus extra flags. */
static void start_tls_gateway(sec_env *e, bool mutual, const char *const *extra)
{
    const char *args[40] = {"--tls-cert", harness_cert("server.pem"), "--tls-key",
                            harness_cert("server.key")};
    int n = 4;
    if (mutual) {
        args[n++] = "--tls-client-ca";
        args[n++] = harness_cert("ca.pem");
    }
    for (int i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    harness_gateway_start(&e->gw, e->name, e->conf, args);
}

static void fail_with_log(sec_env *e, const char *what)
{
    harness_print_log_tail(e->gw.log, 30);
    unit_fail(__FILE__, __LINE__, "%s", what);
}

static void insert_ids(sec_env *e, int n)
{
    for (int i = 0; i < n; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d)", e->next_id++);
        harness_exec(e->conn, sql);
    }
}

/* Writes `n` rows and checks that a client with options `o` receives each exactly once. */
static void expect_delivery(sec_env *e, const rpc_channel_options *o, int n)
{
    capclient *c = capclient_open(e->gw.addr, o, e->uri, NULL);
    int first = e->next_id;
    insert_ids(e, n);
    int32_t *ids = calloc((size_t)n + 1, sizeof *ids);
    unit_defer(free, ids);
    int got = capclient_take(c, ids, n, 30000, true);
    if (got != n) {
        char msg[200];
        snprintf(msg, sizeof msg, "got %d changes of %d (stream status %d %s)", got, n,
                 capclient_wait_end(c, 0), capclient_status_message(c));
        fail_with_log(e, msg);
    }
    /* Each once. A stream of the URI that is still going away may have taken some and
     * handed them back: they come later than the others, so order is not checked. */
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen += ids[k] == first + i;
        if (seen != 1)
            unit_fail(__FILE__, __LINE__, "row %d arrived %d times", first + i, seen);
    }
    /* Nothing comes twice. */
    EXPECT_EQ_INT(0, capclient_take(c, ids, 1, 1000, true));
    capclient_cancel(c);
}

static void expect_refused(sec_env *e, const rpc_channel_options *o, int code)
{
    capclient *c = capclient_open(e->gw.addr, o, e->uri, NULL);
    int got = capclient_wait_end(c, 20000);
    if (got != code) {
        char msg[700];
        snprintf(msg, sizeof msg, "stream ended with status %d (%s), expected %d", got,
                 capclient_status_message(c), code);
        fail_with_log(e, msg);
    }
}

static void test_plaintext_client_to_a_tls_gateway_is_unavailable(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, false, NULL);
    expect_refused(&e, NULL, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_options ok = harness_tls_client(NULL, NULL);
    expect_delivery(&e, &ok, 5);
}

static void test_client_without_certificate_is_unavailable_when_mutual_tls_is_on(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, true, NULL);
    rpc_channel_options none = harness_tls_client(NULL, NULL);
    expect_refused(&e, &none, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_options ok = harness_tls_client("alice", NULL);
    expect_delivery(&e, &ok, 5);
}

static void test_certificate_from_another_ca_is_unavailable(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, true, NULL);
    /* rogue.pem names CN=alice like the real one, but another CA signed it. */
    rpc_channel_options rogue = harness_tls_client("rogue", NULL);
    expect_refused(&e, &rogue, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_options ok = harness_tls_client("alice", NULL);
    expect_delivery(&e, &ok, 5);
}

static void test_expired_certificate_is_unavailable(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, true, NULL);
    rpc_channel_options expired = harness_tls_client("expired", NULL);
    expect_refused(&e, &expired, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_options ok = harness_tls_client("alice", NULL);
    expect_delivery(&e, &ok, 5);
}

enum { FLOOD = 1000 };

/* Opens FLOOD streams at once on a gateway started with `flags`: exactly FLOOD - open of
 * them end with RESOURCE_EXHAUSTED, the others stay open and together get every change
 * once. */
static void flood(const char *const *flags, int open)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, false, flags);
    rpc_channel_options o = harness_tls_client(NULL, NULL);
    capclient **c = calloc(FLOOD, sizeof *c);
    bool *ended = calloc(FLOOD, sizeof *ended);
    unit_defer(free, c);
    unit_defer(free, ended);
    for (int i = 0; i < FLOOD; i++)
        c[i] = capclient_open(e.gw.addr, &o, e.uri, NULL);
    /* The refusals come at once; the streams that got in stay open. */
    int exhausted = 0, other = 0;
    long long until = harness_now_ms() + 60000;
    while (exhausted + other < FLOOD - open && harness_now_ms() < until)
        for (int i = 0; i < FLOOD; i++) {
            if (ended[i])
                continue;
            int code = capclient_wait_end(c[i], 5);
            if (code < 0)
                continue;
            ended[i] = true;
            if (code == GRPC_STATUS_RESOURCE_EXHAUSTED)
                exhausted++;
            else
                other++;
        }
    EXPECT_EQ_INT(0, other);
    EXPECT_EQ_INT(FLOOD - open, exhausted);
    insert_ids(&e, 200);
    int seen[201] = {0}, total = 0;
    until = harness_now_ms() + 60000;
    while (total < 200 && harness_now_ms() < until)
        for (int i = 0; i < FLOOD; i++) {
            if (ended[i])
                continue;
            int32_t ids[200];
            int got = capclient_take(c[i], ids, 200, 2, true);
            for (int k = 0; k < got; k++) {
                EXPECT_TRUE(ids[k] >= 1 && ids[k] <= 200);
                seen[ids[k]]++;
                total++;
            }
            EXPECT_TRUE(capclient_wait_end(c[i], 0) < 0);
        }
    EXPECT_EQ_INT(200, total);
    for (int i = 1; i <= 200; i++)
        EXPECT_EQ_INT(1, seen[i]);
}

static void test_a_thousand_streams_at_once_get_resource_exhausted_past_the_limit(void)
{
    const char *limits[] = {
        "--max-streams", "50", "--max-streams-per-uri", "0", "--new-streams-per-sec", "0", NULL};
    flood(limits, 50);
}

static void test_a_thousand_streams_at_once_on_one_uri_with_the_default_limits(void)
{
    /* 100 streams per URI (and a burst of 100 new streams per peer host). */
    flood(NULL, 100);
}

static void test_a_half_open_client_is_dropped_and_its_unacked_changes_come_again(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    /* An ack wait far longer than the test: only the keepalive can bring them back. */
    const char *flags[] = {"--keepalive", "1s", "--keepalive-timeout", "1s", "--ack-wait",
                           "10min",       NULL};
    start_tls_gateway(&e, false, flags);
    harness_proxy *p = harness_proxy_start(atoi(strrchr(e.gw.addr, ':') + 1));
    char via[64];
    snprintf(via, sizeof via, "127.0.0.1:%d", harness_proxy_port(p));
    rpc_channel_options o = harness_tls_client(NULL, NULL);
    capclient *a = capclient_open(via, &o, e.uri, NULL);
    insert_ids(&e, 5);
    int32_t ids[8];
    EXPECT_EQ_INT(5, capclient_take(a, ids, 5, 30000, false));
    /* The client's network path dies: no FIN, no RST, nothing. */
    harness_proxy_freeze(p);
    capclient *b = capclient_open(e.gw.addr, &o, e.uri, NULL);
    int got = capclient_take(b, ids, 5, 30000, true);
    if (got != 5)
        fail_with_log(&e, "the half-open client's changes did not come again");
    for (int i = 0; i < 5; i++)
        EXPECT_EQ_INT(i + 1, ids[i]);
    EXPECT_EQ_INT(0, capclient_take(b, ids, 1, 1000, true));
    capclient_cancel(b);
    expect_delivery(&e, &o, 5);
}

#define GOOD_TOKEN "k7Vq2sYx9dRfT3mWpZ8bLcN4hJ6gE1uA"
#define WRONG_TOKEN "k7Vq2sYx9dRfT3mWpZ8bLcN4hJ6gE1uB"

/* Resolver keys: URI A (the env's uri) for alice and the good token; URI B ("<name>-b",
 * same source, its own durable) for bob only. */
static void setup_two_uris(sec_env *e)
{
    char hash[ACL_HASH_TEXT_LEN], keys[200];
    acl_hash_token(GOOD_TOKEN, strlen(GOOD_TOKEN), hash);
    snprintf(keys, sizeof keys, "capture = alice, %s", hash);
    setup(e, keys, NULL);
    FILE *f = fopen(e->conf, "a");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot append to %s", e->conf);
    fprintf(f, "[%s-b]\nsource = %s\ndurable = b_%s\ncapture = bob\n", e->name, e->name, e->name);
    fclose(f);
}

static void expect_refused_uri(sec_env *e, const rpc_channel_options *o, const char *uri, int code)
{
    capclient *c = capclient_open(e->gw.addr, o, uri, NULL);
    int got = capclient_wait_end(c, 20000);
    if (got != code) {
        char msg[700];
        snprintf(msg, sizeof msg, "uri %s: stream ended with status %d (%s), expected %d", uri, got,
                 capclient_status_message(c), code);
        fail_with_log(e, msg);
    }
}

static void test_wrong_token_is_unauthenticated_and_the_right_one_captures(void)
{
    sec_env e;
    setup_two_uris(&e);
    start_tls_gateway(&e, false, NULL);
    rpc_channel_options none = harness_tls_client(NULL, NULL);
    rpc_channel_options wrong = harness_tls_client(NULL, WRONG_TOKEN);
    rpc_channel_options good = harness_tls_client(NULL, GOOD_TOKEN);
    expect_refused_uri(&e, &none, e.uri, GRPC_STATUS_UNAUTHENTICATED);
    expect_refused_uri(&e, &wrong, e.uri, GRPC_STATUS_UNAUTHENTICATED);
    /* A URI that does not exist answers the same: the status says nothing about it. */
    expect_refused_uri(&e, &wrong, "no-such-uri", GRPC_STATUS_UNAUTHENTICATED);
    /* The right token on a URI it does not grant, existing or not. */
    char b[96];
    snprintf(b, sizeof b, "%s-b", e.name);
    expect_refused_uri(&e, &good, b, GRPC_STATUS_PERMISSION_DENIED);
    expect_refused_uri(&e, &good, "no-such-uri", GRPC_STATUS_PERMISSION_DENIED);
    expect_delivery(&e, &good, 5);
}

static void test_certificate_for_uri_a_asking_for_uri_b_is_permission_denied(void)
{
    sec_env e;
    setup_two_uris(&e);
    start_tls_gateway(&e, true, NULL);
    rpc_channel_options alice = harness_tls_client("alice", NULL);
    rpc_channel_options bob = harness_tls_client("bob", NULL);
    char b[96];
    snprintf(b, sizeof b, "%s-b", e.name);
    expect_refused_uri(&e, &alice, b, GRPC_STATUS_PERMISSION_DENIED);
    expect_refused_uri(&e, &alice, "no-such-uri", GRPC_STATUS_PERMISSION_DENIED);
    expect_refused_uri(&e, &bob, e.uri, GRPC_STATUS_PERMISSION_DENIED);
    expect_delivery(&e, &alice, 5);
}

/* Python stubs generated from proto/pgcapture.proto into a temp dir (removed at the end). */
static void rm_dir(void *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", (char *)dir);
    free(dir);
}

static int run_python(sec_env *e, const char *stubs, const char *token, int first, int count)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "PGC_TEST_TOKEN='%s' PYTHONPATH=%s /usr/bin/python3 tests/integration/compat_tls.py "
             "%s %s %s %d %d >>%s 2>&1",
             token, stubs, e->gw.addr, harness_cert("ca.pem"), e->uri, first, count, e->gw.log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_python_client_captures_over_tls_with_a_token(void)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        unit_fail(__FILE__, __LINE__, "/usr/bin/python3 missing (python3-grpcio needed)");
    sec_env e;
    setup_two_uris(&e);
    start_tls_gateway(&e, false, NULL);
    char *stubs = strdup("/tmp/pgc-pystubs.XXXXXX");
    if (!mkdtemp(stubs))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    unit_defer(rm_dir, stubs);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "protoc -Iproto -I/usr/include --python_out=%s proto/pgcapture.proto",
             stubs);
    EXPECT_EQ_INT(0, system(cmd));
    insert_ids(&e, 3);
    /* Exit 3: the gateway ended the stream, UNAUTHENTICATED printed in the log. */
    EXPECT_EQ_INT(3, run_python(&e, stubs, WRONG_TOKEN, 1, 3));
    if (run_python(&e, stubs, GOOD_TOKEN, 1, 3) != 0)
        fail_with_log(&e, "the Python client over TLS with the token failed");
    /* It acked all three: what comes next starts at 4, once. */
    rpc_channel_options good = harness_tls_client(NULL, GOOD_TOKEN);
    expect_delivery(&e, &good, 2);
}

static void test_regex_bomb_is_invalid_argument_and_the_gateway_goes_on(void)
{
    sec_env e;
    setup(&e, NULL, NULL);
    start_tls_gateway(&e, false, NULL);
    rpc_channel_options o = harness_tls_client(NULL, NULL);
    /* A stream opened before the bomb keeps receiving while and after it is refused. */
    capclient *before = capclient_open(e.gw.addr, &o, e.uri, NULL);
    capclient *bomb = capclient_open(e.gw.addr, &o, e.uri, "((a{1,255}){1,255}){1,255}");
    if (capclient_wait_end(bomb, 10000) != GRPC_STATUS_INVALID_ARGUMENT)
        fail_with_log(&e, "the regex bomb was not INVALID_ARGUMENT");
    EXPECT_TRUE(strstr(capclient_status_message(bomb), "TableRegex") != NULL);
    insert_ids(&e, 3);
    int32_t ids[3];
    EXPECT_EQ_INT(3, capclient_take(before, ids, 3, 30000, true));
    for (int i = 0; i < 3; i++)
        EXPECT_EQ_INT(i + 1, ids[i]);
    /* Each once. */
    EXPECT_EQ_INT(0, capclient_take(before, ids, 1, 1000, true));
    capclient_cancel(before);
}

/* ---- the controller: mutual TLS and an ACL ------------------------------------------- */

typedef struct tls_controller {
    char addr[64], log[512], acl[512], bucket[96];
} tls_controller;

static void drop_bucket_of(void *arg)
{
    char err[256];
    jskv_delete_bucket(harness_nats_url(), arg, err, sizeof err);
    free(arg);
}

/* `pgcapture controller` with mutual TLS (clients of ca.pem) and an ACL file holding
 * acl_text; waits for its "controller ready" line. */
static void start_tls_controller(tls_controller *c, const char *tag, const char *acl_text)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(c->log, sizeof c->log, "%s/controller-%s.log", dir && *dir ? dir : "/tmp", tag);
    snprintf(c->acl, sizeof c->acl, "%s/controller-%s.acl", dir && *dir ? dir : "/tmp", tag);
    snprintf(c->addr, sizeof c->addr, "127.0.0.1:%d", harness_free_port());
    snprintf(c->bucket, sizeof c->bucket, "CTL_%s", tag);
    unit_defer(drop_bucket_of, strdup(c->bucket));
    FILE *f = fopen(c->acl, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", c->acl);
    fputs(acl_text, f);
    fclose(f);
    const char *args[] = {"controller",
                          "--nats-url",
                          harness_nats_url(),
                          "--listen",
                          c->addr,
                          "--bucket",
                          c->bucket,
                          "--log-level",
                          "debug",
                          "--tls-cert",
                          harness_cert("server.pem"),
                          "--tls-key",
                          harness_cert("server.key"),
                          "--tls-client-ca",
                          harness_cert("ca.pem"),
                          "--acl",
                          c->acl,
                          NULL};
    harness_spawn(c->log, args);
    long long until = harness_now_ms() + 20000;
    while (harness_now_ms() < until) {
        char line[2048];
        FILE *lf = fopen(c->log, "r");
        bool ready = false;
        while (lf && fgets(line, sizeof line, lf))
            ready = ready || strstr(line, "controller ready");
        if (lf)
            fclose(lf);
        if (ready)
            return;
        harness_sleep_ms(20);
    }
    harness_print_log_tail(c->log, 30);
    unit_fail(__FILE__, __LINE__, "controller did not start");
}

/* Schedule(uri, schema.table pages 0-0) as `who` (a test certificate): the gRPC code. */
static int schedule_as(const tls_controller *c, const char *who, const char *uri,
                       const char *schema, const char *table, char *msg, size_t msg_len)
{
    rpc_channel_options o = harness_tls_client(who, NULL);
    rpc_channel *ch;
    char err[512];
    if (rpc_channel_create_opts(c->addr, &o, &ch, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "channel: %s", err);
    Pgcapture__DumpInfoResponse d = PGCAPTURE__DUMP_INFO_RESPONSE__INIT;
    Pgcapture__DumpInfoResponse *dumps[] = {&d};
    d.schema = (char *)schema;
    d.table = (char *)table;
    Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    req.n_dumps = 1;
    req.dumps = dumps;
    uint8_t buf[1024];
    size_t len = pgcapture__schedule_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int code = -1;
    rpc_unary(ch, RPC_METHOD_SCHEDULE, buf, len, 20000, &resp, &resp_len, &code, msg, msg_len);
    free(resp);
    rpc_channel_destroy(ch);
    return code;
}

/* A source and agent; a controller (mutual TLS, ACL: ops schedules and the gateway
 * certificate pulls every URI, the env's URI may dump public and pg_catalog); a gateway
 * (mutual TLS; carol may capture the URI; its replica is the source database) pulling from
 * the controller as "gateway". */
static void setup_dumps(sec_env *e, tls_controller *ctl)
{
    setup(e, "capture = carol", NULL);
    FILE *f = fopen(e->conf, "a");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot append to %s", e->conf);
    fprintf(f, "replica = %s\n", e->db);
    fclose(f);
    char acl_text[600];
    snprintf(acl_text, sizeof acl_text,
             "[*]\npull = gateway\nschedule = ops\nstatus = ops\n"
             "[%s]\ndump_schemas = public, pg_catalog\n",
             e->uri);
    start_tls_controller(ctl, e->name, acl_text);
    const char *flags[] = {"--controller",
                           ctl->addr,
                           "--controller-tls-ca",
                           harness_cert("ca.pem"),
                           "--controller-tls-cert",
                           harness_cert("gateway.pem"),
                           "--controller-tls-key",
                           harness_cert("gateway.key"),
                           NULL};
    start_tls_gateway(e, true, flags);
}

static void test_controller_schedule_by_an_identity_that_may_only_capture_is_permission_denied(void)
{
    sec_env e;
    tls_controller ctl;
    setup_dumps(&e, &ctl);
    char msg[512];
    EXPECT_EQ_INT(GRPC_STATUS_PERMISSION_DENIED,
                  schedule_as(&ctl, "carol", e.uri, "public", "t", msg, sizeof msg));
    /* The same answer for a URI the controller has never heard of. */
    EXPECT_EQ_INT(GRPC_STATUS_PERMISSION_DENIED,
                  schedule_as(&ctl, "carol", "no-such-uri", "public", "t", msg, sizeof msg));
    /* Through the CLI: exit status 1 and a message that says why. */
    char log[600];
    snprintf(log, sizeof log, "%s.schedule", ctl.log);
    const char *args[] = {"schedule",
                          "--controller",
                          ctl.addr,
                          "--uri",
                          e.uri,
                          "--table",
                          "public.t",
                          "--replica",
                          e.db,
                          "--tls-ca",
                          harness_cert("ca.pem"),
                          "--tls-cert",
                          harness_cert("carol.pem"),
                          "--tls-key",
                          harness_cert("carol.key"),
                          NULL};
    EXPECT_EQ_INT(1, harness_wait_exit(harness_spawn(log, args), 30000));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -q 'not allowed to schedule' '%s'", log);
    EXPECT_EQ_INT(0, system(cmd));
    /* ops may (on a URI no gateway stream pulls); the data path delivers every change once
     * to carol. */
    char other[96];
    snprintf(other, sizeof other, "%s-other", e.name);
    EXPECT_EQ_INT(GRPC_STATUS_OK, schedule_as(&ctl, "ops", other, "public", "t", msg, sizeof msg));
    rpc_channel_options carol = harness_tls_client("carol", NULL);
    expect_delivery(&e, &carol, 5);
}

static int count_line(const char *path, const char *text)
{
    char line[4096];
    int n = 0;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void test_dump_of_pg_authid_is_refused_by_controller_and_gateway(void)
{
    sec_env e;
    tls_controller ctl;
    setup_dumps(&e, &ctl);
    char msg[512], other[96];
    /* A URI whose dumps may not name pg_catalog (the default): the controller refuses. */
    snprintf(other, sizeof other, "%s-other", e.name);
    EXPECT_EQ_INT(GRPC_STATUS_PERMISSION_DENIED,
                  schedule_as(&ctl, "ops", other, "pg_catalog", "pg_authid", msg, sizeof msg));
    /* This URI's controller entry allows pg_catalog, its gateway entry does not: the
     * gateway refuses to read the item, acks it, and the consumer sees no row of it. */
    rpc_channel_options carol = harness_tls_client("carol", NULL);
    capclient *k = capclient_open(e.gw.addr, &carol, e.uri, NULL);
    EXPECT_EQ_INT(GRPC_STATUS_OK,
                  schedule_as(&ctl, "ops", e.uri, "pg_catalog", "pg_authid", msg, sizeof msg));
    long long until = harness_now_ms() + 30000;
    while (count_line(e.gw.log, "dump item refused") == 0 && harness_now_ms() < until)
        harness_sleep_ms(50);
    if (count_line(e.gw.log, "dump item refused") != 1)
        fail_with_log(&e, "the gateway did not refuse the pg_authid item");
    int32_t ids[4];
    EXPECT_EQ_INT(0, capclient_take(k, ids, 1, 1000, true));
    EXPECT_TRUE(capclient_wait_end(k, 0) < 0);
    capclient_cancel(k);
    expect_delivery(&e, &carol, 5);
}

UNIT_MAIN(
    UNIT_CASE(test_plaintext_client_to_a_tls_gateway_is_unavailable),
    UNIT_CASE(test_client_without_certificate_is_unavailable_when_mutual_tls_is_on),
    UNIT_CASE(test_certificate_from_another_ca_is_unavailable),
    UNIT_CASE(test_expired_certificate_is_unavailable),
    UNIT_CASE(test_a_thousand_streams_at_once_get_resource_exhausted_past_the_limit),
    UNIT_CASE(test_a_thousand_streams_at_once_on_one_uri_with_the_default_limits),
    UNIT_CASE(test_a_half_open_client_is_dropped_and_its_unacked_changes_come_again),
    UNIT_CASE(test_wrong_token_is_unauthenticated_and_the_right_one_captures),
    UNIT_CASE(test_certificate_for_uri_a_asking_for_uri_b_is_permission_denied),
    UNIT_CASE(test_python_client_captures_over_tls_with_a_token),
    UNIT_CASE(test_controller_schedule_by_an_identity_that_may_only_capture_is_permission_denied),
    UNIT_CASE(test_dump_of_pg_authid_is_refused_by_controller_and_gateway),
    UNIT_CASE(test_regex_bomb_is_invalid_argument_and_the_gateway_goes_on))
