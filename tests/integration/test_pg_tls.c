/* PostgreSQL over TLS: a throwaway server of its own with ssl=on, a certificate made by
 * openssl (tests/harness/make-certs) and a pg_hba.conf that refuses every connection
 * without TLS. libpq's sslmode=verify-full must connect (the server's certificate names
 * localhost and 127.0.0.1, signed by the test CA), refuse a server its CA did not sign,
 * and the agent must stream from such a source. */
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/streamread.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ssl_server {
    char dir[256];     /* pg-tmp's directory */
    char certdir[256]; /* the server's certificate and key, owned by its OS user */
    int port;
} ssl_server;

static ssl_server server;

static void server_stop(void *arg)
{
    (void)arg;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "scripts/pg-tmp stop '%s'; rm -rf '%s'", server.dir, server.certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot stop %s\n", server.dir);
    memset(&server, 0, sizeof server);
}

/* Starts the TLS-only server once per case. */
static void server_start(void)
{
    snprintf(server.certdir, sizeof server.certdir, "/tmp/pgc-pgssl.XXXXXX");
    if (!mkdtemp(server.certdir))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    char cmd[2000];
    const char *owner = getuid() == 0 ? "-o postgres" : "";
    snprintf(cmd, sizeof cmd,
             "chmod 755 '%1$s' && install %2$s -m 644 '%3$s' '%1$s/server.pem' && "
             "install %2$s -m 600 '%4$s' '%1$s/server.key' && "
             "printf 'local all all trust\\n"
             "hostssl all all 127.0.0.1/32 trust\\nhostssl replication all 127.0.0.1/32 trust\\n"
             "hostnossl all all 0.0.0.0/0 reject\\nhostnossl replication all 0.0.0.0/0 reject\\n'"
             " >'%1$s/hba.conf' && chmod 644 '%1$s/hba.conf'",
             server.certdir, owner, harness_cert("server.pem"), harness_cert("server.key"));
    if (system(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "cannot install the server certificate");
    snprintf(cmd, sizeof cmd,
             "scripts/pg-tmp start -c \"ssl = on\" -c \"ssl_cert_file = '%1$s/server.pem'\" "
             "-c \"ssl_key_file = '%1$s/server.key'\" -c \"hba_file = '%1$s/hba.conf'\"",
             server.certdir);
    FILE *p = popen(cmd, "r");
    char line[1024] = "";
    if (!p || !fgets(line, sizeof line, p)) {
        if (p)
            pclose(p);
        unit_fail(__FILE__, __LINE__, "scripts/pg-tmp start with ssl=on failed");
    }
    pclose(p);
    const char *port = strstr(line, "PGPORT="), *dir = strstr(line, "PGTMP_DIR=");
    if (!port || !dir || sscanf(dir, "PGTMP_DIR=%255s", server.dir) != 1)
        unit_fail(__FILE__, __LINE__, "unexpected pg-tmp output: %s", line);
    server.port = atoi(port + 7);
    unit_defer(server_stop, NULL);
}

static void conninfo(char *out, size_t len, const char *host, const char *sslmode, const char *ca)
{
    snprintf(out, len, "host=%s port=%d user=postgres dbname=postgres sslmode=%s sslrootcert=%s",
             host, server.port, sslmode, ca);
}

static void test_verify_full_connects_over_tls_by_name_and_by_address(void)
{
    server_start();
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        char ci[1024];
        conninfo(ci, sizeof ci, hosts[i], "verify-full", harness_cert("ca.pem"));
        PGconn *c = harness_connect(ci);
        EXPECT_EQ_STR("t", harness_query_value(
                               c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"));
    }
}

static void test_verify_full_refuses_a_server_another_ca_would_sign(void)
{
    server_start();
    char ci[1024];
    conninfo(ci, sizeof ci, "localhost", "verify-full", harness_cert("other-ca.pem"));
    PGconn *c = PQconnectdb(ci);
    EXPECT_TRUE(PQstatus(c) != CONNECTION_OK);
    EXPECT_TRUE(strstr(PQerrorMessage(c), "certificate verify failed") != NULL);
    PQfinish(c);
}

static void test_the_server_refuses_connections_without_tls(void)
{
    server_start();
    char ci[1024];
    conninfo(ci, sizeof ci, "localhost", "disable", harness_cert("ca.pem"));
    PGconn *c = PQconnectdb(ci);
    EXPECT_TRUE(PQstatus(c) != CONNECTION_OK);
    EXPECT_TRUE(strstr(PQerrorMessage(c), "no encryption") != NULL);
    PQfinish(c);
}

static size_t changes_of_t(const stream_log *log)
{
    size_t n = 0;
    for (size_t i = 0; i < log->n; i++) {
        const Pgcapture__Message *m = log->entries[i].msg;
        if (m->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE && strcmp(m->change->table, "t") == 0)
            n++;
    }
    return n;
}

static int has_three_inserts(const stream_log *log, void *arg)
{
    (void)arg;
    return changes_of_t(log) >= 3;
}

static void test_agent_streams_from_a_verify_full_source(void)
{
    server_start();
    char ci[1024], name[64], log[512];
    conninfo(ci, sizeof ci, "localhost", "verify-full", harness_cert("ca.pem"));
    PGconn *c = harness_connect(ci);
    harness_exec(c, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    harness_unique_name(name, sizeof name);
    harness_agent_start(ci, name, NULL, log, sizeof log);
    harness_agent_wait_streaming(ci, name, log, 60000);
    harness_exec(c, "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    const stream_log *sl = stream_wait_for(name, 60000, has_three_inserts, NULL);
    EXPECT_EQ_UINT(3, changes_of_t(sl));
}

UNIT_MAIN(UNIT_CASE(test_verify_full_connects_over_tls_by_name_and_by_address),
          UNIT_CASE(test_verify_full_refuses_a_server_another_ca_would_sign),
          UNIT_CASE(test_the_server_refuses_connections_without_tls),
          UNIT_CASE(test_agent_streams_from_a_verify_full_source))
