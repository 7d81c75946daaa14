/* The gRPC plumbing with TLS and limits, over loopback with certificates made by openssl
 * (tests/harness/make-certs): server and mutual TLS, refused handshakes (plaintext client,
 * no client certificate, another CA, an expired certificate), the peer's identities and
 * bearer token as the server sees them, certificate rotation without dropping a stream,
 * and the limits a peer cannot push past (calls, rate, message size, half-open peers). */
#include "core/status.h"
#include "harness/certs.h"
#include "harness/proxy.h"
#include "harness/runner.h"
#include "rpc/client.h"
#include "rpc/server.h"

#include <grpc/status.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int done_calls, cancelled_calls;

/* Unary "/t.S/Who": answers "<identities joined by ,>|<token or ->". */
static void who_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    char out[1024] = "";
    for (size_t i = 0; i < rpc_call_identity_count(call); i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "",
                 rpc_call_identity(call, i));
    const char *tok = rpc_call_token(call);
    snprintf(out + strlen(out), sizeof out - strlen(out), "|%s", tok ? tok : "-");
    rpc_call_send(call, (const uint8_t *)out, strlen(out));
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Bidi "/t.S/Echo". */
static void echo_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    rpc_call_send(call, data, len);
}

static void count_done(rpc_call *call, bool cancelled)
{
    (void)call;
    atomic_fetch_add(&done_calls, 1);
    if (cancelled)
        atomic_fetch_add(&cancelled_calls, 1);
}

static const rpc_method methods[] = {
    {"/t.S/Who", NULL, NULL, who_on_message, NULL, count_done},
    {"/t.S/Echo", NULL, NULL, echo_on_message, NULL, count_done},
};

typedef struct server_fx {
    rpc_server *srv;
    char addr[64];
    int port;
} server_fx;

static void server_stop(void *arg)
{
    server_fx *f = arg;
    rpc_server_destroy(f->srv);
    free(f);
}

/* A server with these options (TLS files and limits), on a free loopback port. */
static server_fx *server_start(const rpc_server_options *o)
{
    server_fx *f = calloc(1, sizeof *f);
    char err[512];
    atomic_store(&done_calls, 0);
    atomic_store(&cancelled_calls, 0);
    int rc = rpc_server_create(methods, 2, o, &f->srv, err, sizeof err);
    if (rc != PGC_OK)
        unit_fail(__FILE__, __LINE__, "rpc_server_create: %s", err);
    EXPECT_EQ_INT(PGC_OK, rpc_server_listen(f->srv, "127.0.0.1:0", &f->port, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_server_start(f->srv, err, sizeof err));
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    unit_defer(server_stop, f);
    return f;
}

static void tls_server_options(rpc_server_options *o, bool mutual)
{
    rpc_server_options_init(o);
    o->tls_cert_file = harness_cert("server.pem");
    o->tls_key_file = harness_cert("server.key");
    if (mutual)
        o->tls_client_ca_file = harness_cert("ca.pem");
}

static void channel_destroy(void *ch)
{
    rpc_channel_destroy(ch);
}

/* A client with a certificate of the test set ("alice"), or none (NULL), trusting ca.pem. */
static rpc_channel *tls_client(const char *addr, const char *cert, const char *token)
{
    rpc_channel_options o;
    rpc_channel_options_init(&o);
    o.tls_ca_file = harness_cert("ca.pem");
    char pem[64], key[64];
    if (cert) {
        snprintf(pem, sizeof pem, "%s.pem", cert);
        snprintf(key, sizeof key, "%s.key", cert);
        o.tls_cert_file = harness_cert(pem);
        o.tls_key_file = harness_cert(key);
    }
    o.token = token;
    rpc_channel *ch;
    char err[512];
    if (rpc_channel_create_opts(addr, &o, &ch, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "rpc_channel_create_opts: %s", err);
    unit_defer(channel_destroy, ch);
    return ch;
}

/* Calls Who: the status code, and the answer in out. */
static int who(rpc_channel *ch, char *out, size_t out_len)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    char err[512];
    EXPECT_EQ_INT(PGC_OK, rpc_unary(ch, "/t.S/Who", (const uint8_t *)"x", 1, 10000, &resp, &len,
                                    &code, err, sizeof err));
    snprintf(out, out_len, "%.*s", code == GRPC_STATUS_OK ? (int)len : (int)strlen(err),
             code == GRPC_STATUS_OK ? (const char *)resp : err);
    free(resp);
    return code;
}

static void test_tls_call_verifies_the_server_and_has_no_identity_without_client_cert(void)
{
    rpc_server_options o;
    tls_server_options(&o, false);
    server_fx *f = server_start(&o);
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(tls_client(f->addr, NULL, NULL), out, sizeof out));
    EXPECT_EQ_STR("|-", out);
}

static void test_plaintext_client_to_a_tls_server_is_unavailable(void)
{
    rpc_server_options o;
    tls_server_options(&o, false);
    server_fx *f = server_start(&o);
    rpc_channel *ch;
    char err[256], out[1024];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, who(ch, out, sizeof out));
}

static void test_client_trusting_another_ca_refuses_the_server(void)
{
    rpc_server_options o;
    tls_server_options(&o, false);
    server_fx *f = server_start(&o);
    rpc_channel_options co;
    rpc_channel_options_init(&co);
    co.tls_ca_file = harness_cert("other-ca.pem");
    rpc_channel *ch;
    char err[256], out[1024];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create_opts(f->addr, &co, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, who(ch, out, sizeof out));
    EXPECT_EQ_INT(0, atomic_load(&done_calls));
}

static void test_mutual_tls_gives_the_server_the_client_cn_and_sans(void)
{
    rpc_server_options o;
    tls_server_options(&o, true);
    server_fx *f = server_start(&o);
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(tls_client(f->addr, "alice", NULL), out, sizeof out));
    EXPECT_EQ_STR("alice,alice.clients.test|-", out);
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(tls_client(f->addr, "bob", NULL), out, sizeof out));
    EXPECT_EQ_STR("bob|-", out);
}

static void test_mutual_tls_refuses_a_client_without_certificate(void)
{
    rpc_server_options o;
    tls_server_options(&o, true);
    server_fx *f = server_start(&o);
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, who(tls_client(f->addr, NULL, NULL), out, sizeof out));
    EXPECT_EQ_INT(0, atomic_load(&done_calls));
}

static void test_mutual_tls_refuses_a_certificate_from_another_ca(void)
{
    rpc_server_options o;
    tls_server_options(&o, true);
    server_fx *f = server_start(&o);
    char out[1024];
    /* rogue.pem says CN=alice, but another CA signed it. */
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE,
                  who(tls_client(f->addr, "rogue", NULL), out, sizeof out));
    EXPECT_EQ_INT(0, atomic_load(&done_calls));
}

static void test_mutual_tls_refuses_an_expired_certificate(void)
{
    rpc_server_options o;
    tls_server_options(&o, true);
    server_fx *f = server_start(&o);
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE,
                  who(tls_client(f->addr, "expired", NULL), out, sizeof out));
    EXPECT_EQ_INT(0, atomic_load(&done_calls));
}

static void test_bearer_token_reaches_the_server_over_tls(void)
{
    rpc_server_options o;
    tls_server_options(&o, false);
    server_fx *f = server_start(&o);
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(tls_client(f->addr, NULL, "s3cr3t-T0ken"), out, sizeof out));
    EXPECT_EQ_STR("|s3cr3t-T0ken", out);
}

static void test_token_without_tls_is_refused_before_any_connection(void)
{
    rpc_channel_options o;
    rpc_channel_options_init(&o);
    o.token = "s3cr3t";
    rpc_channel *ch = NULL;
    char err[256];
    EXPECT_EQ_INT(PGC_ERR_CONFIG, rpc_channel_create_opts("127.0.0.1:1", &o, &ch, err, sizeof err));
    EXPECT_TRUE(strstr(err, "TLS") != NULL);
    EXPECT_TRUE(strstr(err, "s3cr3t") == NULL);
}

static void test_server_key_not_matching_its_certificate_is_refused_by_name(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.tls_cert_file = harness_cert("server.pem");
    o.tls_key_file = harness_cert("alice.key");
    rpc_server *s = NULL;
    char err[512];
    EXPECT_EQ_INT(PGC_ERR_CONFIG, rpc_server_create(methods, 2, &o, &s, err, sizeof err));
    EXPECT_TRUE(strstr(err, "alice.key") != NULL && strstr(err, "does not belong") != NULL);
    o.tls_key_file = harness_cert("missing.key");
    EXPECT_EQ_INT(PGC_ERR_IO, rpc_server_create(methods, 2, &o, &s, err, sizeof err));
    EXPECT_TRUE(strstr(err, "missing.key") != NULL);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[800];
    /* A rename, as certificate managers do, so no handshake reads half a file. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", from, to, to, to);
    EXPECT_EQ_INT(0, system(cmd));
}

static void test_rotated_server_certificate_serves_new_connections_and_keeps_streams(void)
{
    char cert[400], key[400];
    snprintf(cert, sizeof cert, "%s/rot.pem", harness_certs_dir());
    snprintf(key, sizeof key, "%s/rot.key", harness_certs_dir());
    copy_file(harness_cert("server.pem"), cert);
    copy_file(harness_cert("server.key"), key);
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    server_fx *f = server_start(&o);
    rpc_channel *ch = tls_client(f->addr, NULL, NULL);
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch, "/t.S/Echo", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"a", 1, err, sizeof err));
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(1, rpc_stream_recv(st, 10000, &data, &len, err, sizeof err));
    free(data);

    copy_file(harness_cert("server2.key"), key);
    copy_file(harness_cert("server2.pem"), cert);
    /* A new connection (a new channel) is handshaken with the new pair. */
    char out[1024];
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(tls_client(f->addr, NULL, NULL), out, sizeof out));
    EXPECT_EQ_INT(1, rpc_server_tls_reloads(f->srv));
    /* The stream opened before the rotation still works. */
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"b", 1, err, sizeof err));
    EXPECT_EQ_INT(1, rpc_stream_recv(st, 10000, &data, &len, err, sizeof err));
    EXPECT_EQ_MEM("b", 1, data, len);
    free(data);
    rpc_stream_destroy(st);
}

static void test_calls_past_the_server_limit_are_resource_exhausted(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.max_calls = 3;
    server_fx *f = server_start(&o);
    rpc_channel *ch;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    rpc_stream *st[4];
    uint8_t *data;
    size_t len;
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch, "/t.S/Echo", &st[i], err, sizeof err));
        EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st[i], (const uint8_t *)"x", 1, err, sizeof err));
        EXPECT_EQ_INT(1, rpc_stream_recv(st[i], 10000, &data, &len, err, sizeof err));
        free(data);
    }
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch, "/t.S/Echo", &st[3], err, sizeof err));
    rpc_stream_send(st[3], (const uint8_t *)"x", 1, err, sizeof err);
    EXPECT_EQ_INT(0, rpc_stream_recv(st[3], 10000, &data, &len, err, sizeof err));
    const char *msg;
    EXPECT_EQ_INT(GRPC_STATUS_RESOURCE_EXHAUSTED, rpc_stream_status(st[3], &msg));
    EXPECT_TRUE(strstr(msg, "too many calls") != NULL);
    rpc_stream_destroy(st[3]);
    /* Once one ends, a new call gets in. */
    rpc_stream_destroy(st[0]);
    for (int i = 0; i < 1000 && atomic_load(&done_calls) < 1; i++)
        usleep(10000);
    char out[64];
    EXPECT_EQ_INT(GRPC_STATUS_OK, who(ch, out, sizeof out));
    rpc_stream_destroy(st[1]);
    rpc_stream_destroy(st[2]);
}

static void test_new_calls_past_the_peer_rate_are_resource_exhausted(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.new_calls_per_sec = 0.001; /* no refill within the test */
    o.new_calls_burst = 5;
    server_fx *f = server_start(&o);
    rpc_channel *ch;
    char err[256], out[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    for (int i = 0; i < 5; i++)
        EXPECT_EQ_INT(GRPC_STATUS_OK, who(ch, out, sizeof out));
    EXPECT_EQ_INT(GRPC_STATUS_RESOURCE_EXHAUSTED, who(ch, out, sizeof out));
    EXPECT_TRUE(strstr(out, "slow down") != NULL);
}

static void test_request_over_the_size_limit_is_refused(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.max_recv_bytes = 1000;
    server_fx *f = server_start(&o);
    rpc_channel *ch;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    uint8_t big[2000];
    memset(big, 'a', sizeof big);
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    EXPECT_EQ_INT(PGC_OK, rpc_unary(ch, "/t.S/Who", big, sizeof big, 10000, &resp, &len, &code, err,
                                    sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_RESOURCE_EXHAUSTED, code);
    free(resp);
}

static void test_keepalive_ends_the_calls_of_a_half_open_peer(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.keepalive_ms = 500;
    o.keepalive_timeout_ms = 1000;
    server_fx *f = server_start(&o);
    harness_proxy *p = harness_proxy_start(f->port);
    char addr[64], err[256];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", harness_proxy_port(p));
    rpc_channel *ch;
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(addr, &ch, err, sizeof err));
    unit_defer(channel_destroy, ch);
    rpc_stream *st;
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch, "/t.S/Echo", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"x", 1, err, sizeof err));
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(1, rpc_stream_recv(st, 10000, &data, &len, err, sizeof err));
    free(data);
    /* Several keepalive periods with the peer answering: the call stays. */
    usleep(2000000);
    EXPECT_EQ_INT(0, atomic_load(&done_calls));
    harness_proxy_freeze(p);
    for (int i = 0; i < 3000 && atomic_load(&done_calls) == 0; i++)
        usleep(10000);
    EXPECT_EQ_INT(1, atomic_load(&done_calls));
    EXPECT_EQ_INT(1, atomic_load(&cancelled_calls));
    rpc_stream_cancel(st);
    rpc_stream_destroy(st);
}

static void test_loopback_addresses_are_told_apart(void)
{
    EXPECT_TRUE(rpc_addr_is_loopback("127.0.0.1:10000"));
    EXPECT_TRUE(rpc_addr_is_loopback("127.1.2.3:0"));
    EXPECT_TRUE(rpc_addr_is_loopback("localhost:10000"));
    EXPECT_TRUE(rpc_addr_is_loopback("[::1]:10000"));
    EXPECT_TRUE(rpc_addr_is_loopback("unix:/tmp/sock"));
    EXPECT_TRUE(!rpc_addr_is_loopback("0.0.0.0:10000"));
    EXPECT_TRUE(!rpc_addr_is_loopback(":10000"));
    EXPECT_TRUE(!rpc_addr_is_loopback("[::]:10000"));
    EXPECT_TRUE(!rpc_addr_is_loopback("10.0.0.5:10000"));
    EXPECT_TRUE(!rpc_addr_is_loopback("gw.example.com:10000"));
    EXPECT_TRUE(!rpc_addr_is_loopback("127.0.0.1.evil.com:10000"));
}

UNIT_MAIN(UNIT_CASE(test_tls_call_verifies_the_server_and_has_no_identity_without_client_cert),
          UNIT_CASE(test_plaintext_client_to_a_tls_server_is_unavailable),
          UNIT_CASE(test_client_trusting_another_ca_refuses_the_server),
          UNIT_CASE(test_mutual_tls_gives_the_server_the_client_cn_and_sans),
          UNIT_CASE(test_mutual_tls_refuses_a_client_without_certificate),
          UNIT_CASE(test_mutual_tls_refuses_a_certificate_from_another_ca),
          UNIT_CASE(test_mutual_tls_refuses_an_expired_certificate),
          UNIT_CASE(test_bearer_token_reaches_the_server_over_tls),
          UNIT_CASE(test_token_without_tls_is_refused_before_any_connection),
          UNIT_CASE(test_server_key_not_matching_its_certificate_is_refused_by_name),
          UNIT_CASE(test_rotated_server_certificate_serves_new_connections_and_keeps_streams),
          UNIT_CASE(test_calls_past_the_server_limit_are_resource_exhausted),
          UNIT_CASE(test_new_calls_past_the_peer_rate_are_resource_exhausted),
          UNIT_CASE(test_request_over_the_size_limit_is_refused),
          UNIT_CASE(test_keepalive_ends_the_calls_of_a_half_open_peer),
          UNIT_CASE(test_loopback_addresses_are_told_apart))
