/* How `pgcapture consume` and libpgcapture take the end of a Capture stream, against real
 * servers: a status that retrying cannot fix (the controller's port: UNIMPLEMENTED; a
 * token the gateway does not know: UNAUTHENTICATED; a URI it does not grant:
 * PERMISSION_DENIED; an unknown URI: NOT_FOUND; a bad TableRegex: INVALID_ARGUMENT) ends
 * consume with exit 1 and a message saying what to check, at once; a port nothing listens
 * on is UNAVAILABLE with the address, retried until a gateway listens there. The library
 * returns the same distinction (pgc_status_is_transient) with the gRPC status. */
#include "core/acl.h"
#include "harness/capture.h"
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/gwfixture.h"
#include "harness/runner.h"
#include "harness/services.h"

#include "pgcapture.h"
#include "pgcapture/gateway.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GOOD_TOKEN "Vb3nQ8wLx2mZr7Tk9pYc4hFd6sJg1aEu"
#define WRONG_TOKEN "Vb3nQ8wLx2mZr7Tk9pYc4hFd6sJg1aEv"

/* A source with table t (id int primary key) and its agent streaming: the embedded
 * gateway's URI for it is "u_<name>". */
typedef struct env {
    char db[256], name[64], uri[80];
    PGconn *conn;
} env;

static void env_start(env *e)
{
    char log[512];
    harness_db_create(false, e->db, sizeof e->db);
    harness_unique_name(e->name, sizeof e->name);
    e->conn = harness_connect(e->db);
    harness_exec(e->conn, "CREATE TABLE t (id int PRIMARY KEY)");
    harness_agent_start(e->db, e->name, NULL, log, sizeof log);
    harness_agent_wait_streaming(e->db, e->name, log, 60000);
    snprintf(e->uri, sizeof e->uri, "u_%s", e->name);
}

static void gateway_free(void *arg)
{
    gwfixture *g = arg;
    if (g->gw)
        pgc_gateway_destroy(g->gw);
    free(g);
}

/* The embedded gateway on `port` (0: any free port). */
static gwfixture *gateway_start(int port)
{
    gwfixture *g = calloc(1, sizeof *g);
    if (!g)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(gateway_free, g);
    g->port = port;
    gwfixture_start(g);
    return g;
}

static void log_path(char *out, size_t len, const char *tag, const char *what)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(out, len, "%s/consume-%s-%s.log", dir && *dir ? dir : "/tmp", what, tag);
}

/* How many lines of `path` contain `needle`. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void wait_for_lines(const char *path, const char *needle, int want, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    int n;
    while ((n = count_lines(path, needle)) < want && harness_now_ms() < until)
        harness_sleep_ms(50);
    if (n < want) {
        harness_print_log_tail(path, 30);
        unit_fail(__FILE__, __LINE__, "expected %d lines with %s in %s within %d ms, got %d", want,
                  needle, path, timeout_ms, n);
    }
}

static void expect_in_log(const char *path, const char *needle)
{
    if (count_lines(path, needle) == 0) {
        harness_print_log_tail(path, 30);
        unit_fail(__FILE__, __LINE__, "expected \"%s\" in %s", needle, path);
    }
}

/* Runs `pgcapture consume ARGS` and expects it to exit 1 on its own, at its first answer
 * (no retry), printing each of `needles` (NULL-terminated). */
static void expect_consume_fails(const char *log, const char *const *args,
                                 const char *const *needles)
{
    int st = harness_wait_exit(harness_spawn(log, args), 60000);
    if (st != 1) {
        harness_print_log_tail(log, 30);
        unit_fail(__FILE__, __LINE__, "consume exited with %d, expected 1 (see %s)", st, log);
    }
    for (int i = 0; needles[i]; i++)
        expect_in_log(log, needles[i]);
    if (count_lines(log, "reconnecting")) {
        harness_print_log_tail(log, 30);
        unit_fail(__FILE__, __LINE__, "consume retried (see %s)", log);
    }
}

/* A file under the test's log directory holding `text`, mode 0600. */
static const char *token_file(const char *tag, const char *text)
{
    char *path = malloc(600);
    if (!path)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(free, path);
    log_path(path, 600, tag, "token");
    FILE *f = fopen(path, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", path);
    fprintf(f, "%s\n", text);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void test_consume_at_the_controllers_port_exits_1_with_unimplemented(void)
{
    harness_controller ctl;
    harness_controller_start(&ctl, NULL);
    char log[512];
    log_path(log, sizeof log, ctl.bucket, "controller-port");
    const char *args[] = {"consume", "--gateway", ctl.addr, "--uri", "app", NULL};
    char what[160];
    snprintf(what, sizeof what, "the server at %s does not serve DBLogGateway.Capture", ctl.addr);
    const char *needles[] = {what, "(UNIMPLEMENTED: ", "gateway's address", NULL};
    expect_consume_fails(log, args, needles);
}

/* Nothing listens on the port: each attempt says UNAVAILABLE with the address and is
 * retried; once a gateway listens there, the changes arrive. */
static void test_consume_at_a_closed_port_retries_unavailable_until_a_gateway_listens(void)
{
    env e;
    env_start(&e);
    int port = harness_free_port();
    char addr[64], log[512], what[160];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    log_path(log, sizeof log, e.uri, "closed-port");
    const char *args[] = {"consume", "--gateway", addr, "--uri", e.uri, "--reconnect-max-delay",
                          "400ms",   NULL};
    pid_t pid = harness_spawn(log, args);
    snprintf(what, sizeof what, "the gateway at %s is unavailable (UNAVAILABLE: ", addr);
    wait_for_lines(log, what, 3, 30000);
    EXPECT_EQ_INT(-1, harness_wait_exit(pid, 0)); /* still running */
    /* Every attempt's line names the status, and it is UNAVAILABLE. */
    EXPECT_EQ_INT(count_lines(log, "reconnecting in"), count_lines(log, "(UNAVAILABLE: "));
    EXPECT_TRUE(count_lines(log, "reconnecting in") >= 3);

    harness_exec(e.conn, "INSERT INTO t VALUES (1)");
    gateway_start(port);
    wait_for_lines(log, "\"new\":{\"id\":1}", 1, 30000);
    kill(pid, SIGINT);
    int st = harness_wait_exit(pid, 10000);
    if (st != 0) {
        harness_print_log_tail(log, 30);
        unit_fail(__FILE__, __LINE__, "consume exited with %d after SIGINT, expected 0", st);
    }
}

static void test_consume_of_an_unknown_uri_or_a_bad_regex_exits_1_at_once(void)
{
    env e;
    env_start(&e);
    gwfixture *g = gateway_start(0);
    char log[512];
    log_path(log, sizeof log, e.uri, "unknown-uri");
    const char *args[] = {"consume", "--gateway", g->addr, "--uri", "nobody", NULL};
    const char *needles[] = {"has no uri \"nobody\" (NOT_FOUND: ", "resolver file", NULL};
    expect_consume_fails(log, args, needles);

    log_path(log, sizeof log, e.uri, "bad-regex");
    const char *args2[] = {"consume", "--gateway",     g->addr, "--uri",
                           e.uri,     "--table-regex", "([",    NULL};
    const char *needles2[] = {"(INVALID_ARGUMENT: bad TableRegex", NULL};
    expect_consume_fails(log, args2, needles2);
}

/* A TLS gateway whose resolver file gives URI "<name>-uri" to GOOD_TOKEN only and URI
 * "<name>-b" to nobody. */
static void start_token_gateway(env *e, harness_gateway *gw, char *uri_a, char *uri_b,
                                size_t uri_len)
{
    char hash[ACL_HASH_TEXT_LEN], conf[512];
    acl_hash_token(GOOD_TOKEN, strlen(GOOD_TOKEN), hash);
    snprintf(uri_a, uri_len, "%s-uri", e->name);
    snprintf(uri_b, uri_len, "%s-b", e->name);
    log_path(conf, sizeof conf, e->name, "gateway.conf");
    FILE *f = fopen(conf, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", conf);
    fprintf(f,
            "[%s]\nsource = %s\ncapture = %s\n[%s]\nsource = %s\ndurable = b_%s\ncapture = bob\n",
            uri_a, e->name, hash, uri_b, e->name, e->name);
    fclose(f);
    const char *flags[] = {"--tls-cert", harness_cert("server.pem"), "--tls-key",
                           harness_cert("server.key"), NULL};
    harness_gateway_start(gw, e->name, conf, flags);
}

static void test_consume_with_an_unknown_token_or_an_ungranted_uri_exits_1(void)
{
    env e;
    env_start(&e);
    harness_gateway gw;
    char uri_a[96], uri_b[96], log[512];
    start_token_gateway(&e, &gw, uri_a, uri_b, sizeof uri_a);
    const char *ca = harness_cert("ca.pem");
    const char *wrong = token_file("wrong", WRONG_TOKEN);
    char good[600];
    snprintf(good, sizeof good, "%s", token_file("good", GOOD_TOKEN));

    log_path(log, sizeof log, e.name, "wrong-token");
    const char *args[] = {"consume",  "--gateway", gw.addr,        "--uri", uri_a,
                          "--tls-ca", ca,          "--token-file", wrong,   NULL};
    const char *needles[] = {"does not know this client (UNAUTHENTICATED: ", "token", NULL};
    expect_consume_fails(log, args, needles);

    log_path(log, sizeof log, e.name, "ungranted-uri");
    const char *args2[] = {"consume",  "--gateway", gw.addr,        "--uri", uri_b,
                           "--tls-ca", ca,          "--token-file", good,    NULL};
    char what[200];
    snprintf(what, sizeof what,
             "does not let this client capture uri \"%s\" (PERMISSION_DENIED: ", uri_b);
    const char *needles2[] = {what, NULL};
    expect_consume_fails(log, args2, needles2);

    /* The same token on its own URI captures: the refusals were about the credentials. */
    log_path(log, sizeof log, e.name, "granted-uri");
    const char *args3[] = {"consume",  "--gateway", gw.addr,        "--uri", uri_a,
                           "--tls-ca", ca,          "--token-file", good,    NULL};
    pid_t pid = harness_spawn(log, args3);
    harness_exec(e.conn, "INSERT INTO t VALUES (7)");
    wait_for_lines(log, "\"new\":{\"id\":7}", 1, 30000);
    kill(pid, SIGINT);
    EXPECT_EQ_INT(0, harness_wait_exit(pid, 10000));
}

/* ---- the library --------------------------------------------------------------------- */

typedef struct one_change {
    pgc_consumer *c;
    atomic_int got, done;
} one_change;

static pgc_verdict ack_and_stop(void *arg, const pgc_change *c, const char **reason)
{
    one_change *o = arg;
    (void)c;
    (void)reason;
    atomic_store(&o->got, 1);
    pgc_consumer_stop(o->c);
    return PGC_VERDICT_ACK;
}

/* Stops the run after 60 s, so that a change that never comes fails the case instead of
 * hanging it. */
static void *watchdog(void *arg)
{
    one_change *o = arg;
    for (int i = 0; i < 600 && !atomic_load(&o->done); i++)
        harness_sleep_ms(100);
    if (!atomic_load(&o->done))
        pgc_consumer_stop(o->c);
    return NULL;
}

/* Runs c until one change arrived (or 60 s). */
static pgc_status run_for_one_change(pgc_consumer *c, bool *got, char *err, size_t err_len)
{
    one_change o = {.c = c};
    atomic_init(&o.got, 0);
    atomic_init(&o.done, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, &o) != 0)
        unit_fail(__FILE__, __LINE__, "pthread_create failed");
    pgc_status rc = pgc_consumer_run(c, &(pgc_change_handler){&o, ack_and_stop}, err, err_len);
    atomic_store(&o.done, 1);
    pthread_join(t, NULL);
    *got = atomic_load(&o.got);
    return rc;
}

static void destroy_consumer(void *c)
{
    pgc_consumer_destroy(c);
}

/* One run of a new consumer of `uri` at `gateway` that is expected to fail: its status,
 * and err. */
static pgc_status run_once(const char *gateway, const char *uri, pgc_consumer **out, char *err,
                           size_t err_len)
{
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = gateway;
    o.uri = uri;
    pgc_consumer *c;
    EXPECT_EQ_INT(PGC_OK, pgc_consumer_create(&o, &c, err, err_len));
    unit_defer(destroy_consumer, c);
    *out = c;
    EXPECT_EQ_INT(PGC_GRPC_CODE_NONE, pgc_consumer_get_grpc_status(c, NULL));
    bool got;
    pgc_status rc = run_for_one_change(c, &got, err, err_len);
    EXPECT_TRUE(!got);
    return rc;
}

static void expect_contains(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle))
        unit_fail(__FILE__, __LINE__, "%s: expected \"%s\" in \"%s\"", what, needle, text);
}

static void test_library_returns_permanent_and_transient_statuses_with_the_grpc_status(void)
{
    env e;
    env_start(&e);
    harness_controller ctl;
    harness_controller_start(&ctl, NULL);
    gwfixture *g = gateway_start(0);
    char err[1024], closed[64];
    const char *msg;
    pgc_consumer *c;

    /* The controller's port: permanent. */
    pgc_status rc = run_once(ctl.addr, e.uri, &c, err, sizeof err);
    EXPECT_EQ_INT(PGC_ERR_UNIMPLEMENTED, rc);
    EXPECT_TRUE(!pgc_status_is_transient(rc));
    EXPECT_EQ_INT(PGC_GRPC_CODE_UNIMPLEMENTED, pgc_consumer_get_grpc_status(c, &msg));
    EXPECT_EQ_STR("UNIMPLEMENTED", pgc_grpc_code_get_name(PGC_GRPC_CODE_UNIMPLEMENTED));
    expect_contains("grpc message", msg, "/pgcapture.DBLogGateway/Capture");
    expect_contains("err", err, "does not serve DBLogGateway.Capture (UNIMPLEMENTED: ");

    /* An unknown URI: permanent. */
    rc = run_once(g->addr, "nobody", &c, err, sizeof err);
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND, rc);
    EXPECT_TRUE(!pgc_status_is_transient(rc));
    EXPECT_EQ_INT(PGC_GRPC_CODE_NOT_FOUND, pgc_consumer_get_grpc_status(c, &msg));
    expect_contains("grpc message", msg, "nobody");

    /* Nothing listening: transient, with the address. */
    int port = harness_free_port();
    snprintf(closed, sizeof closed, "127.0.0.1:%d", port);
    rc = run_once(closed, e.uri, &c, err, sizeof err);
    EXPECT_EQ_INT(PGC_ERR_CONN, rc);
    EXPECT_TRUE(pgc_status_is_transient(rc));
    EXPECT_EQ_INT(PGC_GRPC_CODE_UNAVAILABLE, pgc_consumer_get_grpc_status(c, &msg));
    expect_contains("grpc message", msg, closed);
    expect_contains("err", err, "is unavailable (UNAVAILABLE: ");

    /* Run again once a gateway listens there: the change arrives, and a run that ends by a
     * stop has no gRPC status. */
    harness_exec(e.conn, "INSERT INTO t VALUES (1)");
    gateway_start(port);
    bool got;
    rc = run_for_one_change(c, &got, err, sizeof err);
    if (rc != PGC_OK || !got)
        unit_fail(__FILE__, __LINE__, "the run after the gateway came: status %d, %s change: %s",
                  rc, got ? "a" : "no", err);
    EXPECT_EQ_INT(PGC_GRPC_CODE_NONE, pgc_consumer_get_grpc_status(c, &msg));
    EXPECT_EQ_STR("", msg);
}

UNIT_MAIN(UNIT_CASE(test_consume_at_the_controllers_port_exits_1_with_unimplemented),
          UNIT_CASE(test_consume_at_a_closed_port_retries_unavailable_until_a_gateway_listens),
          UNIT_CASE(test_consume_of_an_unknown_uri_or_a_bad_regex_exits_1_at_once),
          UNIT_CASE(test_consume_with_an_unknown_token_or_an_ungranted_uri_exits_1),
          UNIT_CASE(test_library_returns_permanent_and_transient_statuses_with_the_grpc_status))
