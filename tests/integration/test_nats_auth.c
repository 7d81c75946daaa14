/* NATS with TLS and accounts: a nats-server of the case's own, its config written here
 * (TLS with the test certificates, client certificates required, an account with
 * JetStream whose users log in with a password or an NKey; a token; or an operator whose
 * account's user presents a JWT .creds file), and the agent and
 * the gateway connecting with --nats-tls-* and the credential flags, through a server
 * list whose first entry is dead; and a gateway embedded through the public API with the
 * same settings in its options. Every change arrives once; wrong credentials make the
 * agent exit 1 saying so, before it creates or confirms anything. */
#include "core/status.h"
#include "pgcapture/gateway.h"
#include "harness/capture.h"
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/natsbox.h"
#include "harness/runner.h"
#include "harness/services.h"

#include <grpc/status.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PASSWORD "Zq8-nats-pw-4f1c"
#define TOKEN "nats-token-7d2e9a"
/* An account with JetStream whose user logs in with PASSWORD. */
#define PASSWORD_ACCOUNT                                                                           \
    "accounts {\n  APP {\n    jetstream: enabled\n"                                                \
    "    users: [ {user: pgc, password: \"" PASSWORD "\"} ]\n  }\n}"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

typedef struct env {
    char db[512], name[64], uri[80], conf[512], agent_log[512];
    PGconn *conn;
    harness_gateway gw;
} env;

/* A source with table t and its agent streaming, the agent with `flags`. */
static void start_source(env *e, const char *const *flags)
{
    memset(e, 0, sizeof e[0]);
    harness_db_create(false, e->db, sizeof e->db);
    e->conn = harness_connect(e->db);
    harness_exec(e->conn, "CREATE TABLE t (id int PRIMARY KEY)");
    harness_unique_name(e->name, sizeof e->name);
    snprintf(e->uri, sizeof e->uri, "%s-uri", e->name);
    harness_agent_start(e->db, e->name, flags, e->agent_log, sizeof e->agent_log);
    harness_agent_wait_streaming(e->db, e->name, e->agent_log, 60000);
}

/* start_source, then the gateway with the same `flags`. */
static void start_pipeline(env *e, const char *const *flags)
{
    start_source(e, flags);
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(e->conf, sizeof e->conf, "%s/gateway-%s.conf", dir && *dir ? dir : "/tmp", e->name);
    char text[300];
    snprintf(text, sizeof text, "[%s]\nsource = %s\n", e->uri, e->name);
    write_file(e->conf, text);
    harness_gateway_start(&e->gw, e->name, e->conf, flags);
}

static void expect_every_change_once(env *e)
{
    capclient *c = capclient_open(e->gw.addr, NULL, e->uri, NULL);
    for (int i = 1; i <= 5; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d)", i);
        harness_exec(e->conn, sql);
    }
    int32_t ids[6];
    int got = capclient_take(c, ids, 5, 30000, true);
    if (got != 5) {
        harness_print_log_tail(e->gw.log, 20);
        harness_print_log_tail(e->agent_log, 20);
        unit_fail(__FILE__, __LINE__, "got %d changes of 5", got);
    }
    for (int i = 0; i < 5; i++)
        EXPECT_EQ_INT(i + 1, ids[i]);
    EXPECT_EQ_INT(0, capclient_take(c, ids, 1, 1000, true));
    capclient_cancel(c);
}

static const char *file_with(const char *name, const char *text)
{
    char *path = malloc(600);
    snprintf(path, 600, "%s/%s", harness_certs_dir(), name);
    unit_defer(free, path);
    write_file(path, text);
    chmod(path, 0600);
    return path;
}

/* A NATS server whose account's user pgc logs in with PASSWORD, and the flags that reach
 * it presenting `password` from a file (flags: room for 24); returns that file's path. */
static const char *password_nats(const char *password, const char **flags)
{
    natsbox *b = natsbox_start(PASSWORD_ACCOUNT);
    char text[128];
    snprintf(text, sizeof text, "%s\n", password);
    const char *pw = file_with("nats.password", text);
    const char *creds[] = {"--nats-user", "pgc", "--nats-password-file", pw, NULL};
    natsbox_flags(b, "alice", creds, flags, 24);
    return pw;
}

static void test_agent_and_gateway_over_nats_tls_with_a_user_and_password(void)
{
    const char *flags[24];
    password_nats(PASSWORD, flags);
    env e;
    start_pipeline(&e, flags);
    expect_every_change_once(&e);
}

static void test_agent_and_gateway_over_nats_tls_with_an_nkey(void)
{
    char seed[600], cmd[900], pub[128] = "";
    snprintf(seed, sizeof seed, "%s/nkey.seed", harness_certs_dir());
    snprintf(cmd, sizeof cmd, "tests/harness/make-nkey '%s'", seed);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(pub, sizeof pub, p))
        unit_fail(__FILE__, __LINE__, "tests/harness/make-nkey failed");
    pclose(p);
    pub[strcspn(pub, "\n")] = '\0';
    char auth[600];
    snprintf(auth, sizeof auth,
             "accounts {\n  APP {\n    jetstream: enabled\n    users: [ {nkey: %s} ]\n  }\n}", pub);
    natsbox *b = natsbox_start(auth);
    const char *creds[] = {"--nats-nkey", pub, "--nats-nkey-seed", seed, NULL};
    const char *flags[24];
    natsbox_flags(b, "alice", creds, flags, 24);
    env e;
    start_pipeline(&e, flags);
    expect_every_change_once(&e);
}

static void test_agent_and_gateway_over_nats_tls_with_a_token(void)
{
    natsbox *b = natsbox_start("authorization { token: \"" TOKEN "\" }");
    const char *tok = file_with("nats.token", TOKEN "\n");
    const char *creds[] = {"--nats-token-file", tok, NULL};
    const char *flags[24];
    natsbox_flags(b, "alice", creds, flags, 24);
    env e;
    start_pipeline(&e, flags);
    expect_every_change_once(&e);
}

static void test_agent_and_gateway_over_nats_tls_with_a_creds_file(void)
{
    /* An operator, an account with JetStream and its user, made by the test; the server
     * trusts the operator and knows the account, the roles present the user's JWT. */
    char creds[600], cmd[900], auth[12288];
    snprintf(creds, sizeof creds, "%s/user.creds", harness_certs_dir());
    snprintf(cmd, sizeof cmd, "tests/harness/make-creds '%s'", creds);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(auth, 1, sizeof auth - 1, p) : 0;
    auth[n] = '\0';
    if (!p || pclose(p) != 0 || n == 0 || n == sizeof auth - 1)
        unit_fail(__FILE__, __LINE__, "tests/harness/make-creds failed");
    natsbox *b = natsbox_start(auth);
    const char *cred_flags[] = {"--nats-creds", creds, NULL};
    const char *flags[24];
    natsbox_flags(b, "alice", cred_flags, flags, 24);
    env e;
    start_pipeline(&e, flags);
    expect_every_change_once(&e);
}

static void test_agent_with_wrong_nats_credentials_exits_1_and_confirms_nothing(void)
{
    const char *flags[24];
    password_nats("not-the-password", flags);
    char db[512], name[64], log[512];
    harness_db_create(false, db, sizeof db);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    harness_unique_name(name, sizeof name);
    pid_t pid = harness_agent_start(db, name, flags, log, sizeof log);
    int rc = harness_wait_exit(pid, 30000);
    if (rc != 1)
        harness_print_log_tail(log, 20);
    EXPECT_EQ_INT(1, rc);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "grep -q \"refused this process's credentials\" '%s'", log);
    EXPECT_EQ_INT(0, system(cmd));
    /* The password appears nowhere in what it said. */
    snprintf(cmd, sizeof cmd, "grep -q 'not-the-password' '%s'", log);
    EXPECT_TRUE(system(cmd) != 0);
    /* Nothing created, so nothing confirmed: no slot. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s'", name);
    EXPECT_EQ_INT(0, harness_query_int(c, sql));
}

static pgc_status resolve_to_source(void *arg, const char *uri, const pgc_peer *peer,
                                    pgc_uri_target *out, char *err, size_t err_len)
{
    (void)uri;
    (void)peer;
    return pgc_uri_target_set_source(out, arg, err, err_len);
}

/* The flag's value in a natsbox_flags list, or NULL. */
static const char *flag_value(const char *const *flags, const char *name)
{
    for (int i = 0; flags[i] && flags[i + 1]; i += 2)
        if (strcmp(flags[i], name) == 0)
            return flags[i + 1];
    return NULL;
}

/* An embedder's gateway (pgc_gateway_options.nats_*) reaches NATS over TLS with a client
 * certificate and a password as the CLI's flags do. Runs last: NATS settings are
 * process-wide. */
static void test_an_embedded_gateway_reaches_nats_with_its_tls_and_credential_options(void)
{
    const char *flags[24];
    const char *pw = password_nats(PASSWORD, flags);
    env e;
    start_source(&e, flags);

    pgc_gateway_options o;
    pgc_gateway_options_init(&o);
    o.nats_url = flag_value(flags, "--nats-url");
    o.nats_tls_ca_file = flag_value(flags, "--nats-tls-ca");
    o.nats_tls_cert_file = flag_value(flags, "--nats-tls-cert");
    o.nats_tls_key_file = flag_value(flags, "--nats-tls-key");
    o.nats_user = "pgc";
    o.nats_password_file = pw;
    EXPECT_TRUE(o.nats_url && o.nats_tls_ca_file && o.nats_tls_cert_file && o.nats_tls_key_file);
    pgc_resolver r = {e.name, resolve_to_source};
    pgc_gateway *gw = NULL;
    char err[512];
    int port = 0;
    if (pgc_gateway_create(&o, &r, &gw, err, sizeof err) != PGC_OK ||
        pgc_gateway_serve(gw, "127.0.0.1:0", &port, err, sizeof err) != PGC_OK) {
        pgc_gateway_destroy(gw);
        unit_fail(__FILE__, __LINE__, "embedded gateway: %s", err);
    }
    snprintf(e.gw.addr, sizeof e.gw.addr, "127.0.0.1:%d", port);
    snprintf(e.gw.log, sizeof e.gw.log, "%s", e.agent_log); /* the gateway logs to stderr */
    expect_every_change_once(&e);
    pgc_gateway_stop(gw, 1000);
    pgc_gateway_destroy(gw);

    /* A credential option naming a missing file is refused at create, saying which. */
    o.nats_password_file = "/nonexistent/nats.password";
    EXPECT_EQ_INT(PGC_ERR_CONFIG, pgc_gateway_create(&o, &r, &gw, err, sizeof err));
    EXPECT_TRUE(strstr(err, "nats.password") != NULL);
}

UNIT_MAIN(UNIT_CASE(test_agent_and_gateway_over_nats_tls_with_a_user_and_password),
          UNIT_CASE(test_agent_and_gateway_over_nats_tls_with_an_nkey),
          UNIT_CASE(test_agent_and_gateway_over_nats_tls_with_a_token),
          UNIT_CASE(test_agent_and_gateway_over_nats_tls_with_a_creds_file),
          UNIT_CASE(test_agent_with_wrong_nats_credentials_exits_1_and_confirms_nothing),
          UNIT_CASE(test_an_embedded_gateway_reaches_nats_with_its_tls_and_credential_options))
