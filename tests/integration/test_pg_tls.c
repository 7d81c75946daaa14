/* PostgreSQL over TLS: a throwaway server of its own with ssl=on, a certificate made by
 * openssl (tests/harness/make-certs) and a pg_hba.conf that refuses every connection
 * without TLS. libpq's sslmode=verify-full must connect (the server's certificate names
 * localhost and 127.0.0.1, signed by the test CA), refuse a server its CA did not sign,
 * and the agent must stream from such a source. */
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/pgbox.h"
#include "harness/runner.h"
#include "harness/streamread.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pgbox *server;

/* The TLS-only server of a case. */
static void server_start(void)
{
    static const char *const settings[] = {"ssl = on", "ssl_cert_file = '%F/server.pem'",
                                           "ssl_key_file = '%F/server.key'", NULL};
    server = pgbox_start("local all all trust\n"
                         "hostssl all all 127.0.0.1/32 trust\n"
                         "hostssl replication all 127.0.0.1/32 trust\n"
                         "hostnossl all all 0.0.0.0/0 reject\n"
                         "hostnossl replication all 0.0.0.0/0 reject\n",
                         settings, 1);
}

static void conninfo(char *out, size_t len, const char *host, const char *sslmode, const char *ca)
{
    snprintf(out, len, "host=%s port=%d user=postgres dbname=postgres sslmode=%s sslrootcert=%s",
             host, server->port, sslmode, ca);
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
