/* The gateway: the public embedding API (pgcapture/gateway.h), its gRPC server and the
 * config-file resolver. The streams themselves live in capture_stream.c.
 *
 * Threading: the rpc server's completion-queue threads run the Capture callbacks (each
 * call's on one of them, in order; never blocking); each stream runs one thread of its own for
 * JetStream; pgc_gateway_stop runs on the caller's thread and waits for the stream threads. */
#include "roles/gateway/gateway_private.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "core/textfile.h"
#include "core/acl.h"
#include "jetstream/jsauth.h"
#include "roles/gateway/capture_request.h"
#include "roles/gateway/resolver_file.h"
#include "rpc/methods.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pgc_gateway_options_init(pgc_gateway_options *o)
{
    memset(o, 0, sizeof *o);
    o->nats_url = "nats://127.0.0.1:4222";
    o->ack_wait_ms = 30000;
    o->max_ack_pending = 1000;
    o->window = 4096;
    o->retry_delay_ms = 1000;
    o->max_streams = 1000;
    o->max_streams_per_uri = 100;
    o->new_streams_per_sec = 20;
    o->new_streams_burst = 100;
    o->keepalive_ms = 30000;
    o->keepalive_timeout_ms = 10000;
    o->max_message_bytes = PGC_GATEWAY_DEFAULT_MAX_MESSAGE_BYTES;
}

/* The option strings a gateway owns a copy of. */
static const size_t string_options[] = {
    offsetof(pgc_gateway_options, nats_url),
    offsetof(pgc_gateway_options, controller),
    offsetof(pgc_gateway_options, tls_cert_file),
    offsetof(pgc_gateway_options, tls_key_file),
    offsetof(pgc_gateway_options, tls_client_ca_file),
    offsetof(pgc_gateway_options, controller_tls_ca_file),
    offsetof(pgc_gateway_options, controller_tls_cert_file),
    offsetof(pgc_gateway_options, controller_tls_key_file),
    offsetof(pgc_gateway_options, controller_tls_server_name),
    offsetof(pgc_gateway_options, controller_token),
};
#define N_STRING_OPTIONS (sizeof string_options / sizeof string_options[0])

static const char **string_option(pgc_gateway_options *o, size_t i)
{
    return (const char **)(void *)((char *)o + string_options[i]);
}

/* Replaces every string of *o by a copy (empty ones by NULL): 0, or -1 on out of memory
 * with the copies made so far owned by *o. */
static int copy_strings(pgc_gateway_options *o)
{
    int rc = 0;
    for (size_t i = 0; i < N_STRING_OPTIONS; i++) {
        const char **p = string_option(o, i);
        const char *v = *p;
        *p = v && *v ? strdup(v) : NULL;
        if (v && *v && !*p)
            rc = -1;
    }
    return rc;
}

static void free_strings(pgc_gateway_options *o)
{
    for (size_t i = 0; i < N_STRING_OPTIONS; i++) {
        char **p = (char **)string_option(o, i);
        if (string_options[i] == offsetof(pgc_gateway_options, controller_token))
            textfile_free_secret(*p);
        else
            free(*p);
        *p = NULL;
    }
}

/* An embedder's NATS TLS and credentials go where the CLI's --nats-* flags go. */
static int configure_nats_auth(const pgc_gateway_options *o, char *err, size_t err_len)
{
    const char *given[] = {o->nats_tls_ca_file, o->nats_tls_cert_file, o->nats_tls_key_file,
                           o->nats_creds_file,  o->nats_nkey,          o->nats_nkey_seed_file,
                           o->nats_user,        o->nats_password_file, o->nats_token_file};
    bool any = false;
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++)
        any = any || (given[i] && *given[i]);
    if (!any)
        return PGC_OK;
    jsauth_config c = {
        (char *)o->nats_tls_ca_file, (char *)o->nats_tls_cert_file, (char *)o->nats_tls_key_file,
        (char *)o->nats_creds_file,  (char *)o->nats_nkey,          (char *)o->nats_nkey_seed_file,
        (char *)o->nats_user,        (char *)o->nats_password_file, (char *)o->nats_token_file};
    char why[400];
    if (jsauth_configure(&c, why, sizeof why) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "gateway: NATS options: %s", why);
    return PGC_OK;
}

pgc_status pgc_gateway_create(const pgc_gateway_options *o, const pgc_resolver *resolver,
                              pgc_gateway **out, char *err, size_t err_len)
{
    if (!o || !resolver || !resolver->resolve || !out)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "gateway: options and a resolver "
                          "with a resolve function are required");
    if (!o->nats_url || !*o->nats_url || o->ack_wait_ms < 100 || o->max_ack_pending < 1 ||
        o->window < 1 || o->window > 1000000 || o->retry_delay_ms < 0 || o->max_requeues < 0 ||
        o->retry_delay_ms >= o->ack_wait_ms || o->retry_max_age_ms < 0 || o->retry_max_bytes < 0 ||
        o->max_message_bytes < PGC_GATEWAY_MIN_MAX_MESSAGE_BYTES ||
        o->max_message_bytes > INT32_MAX)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "gateway: nats_url required, ack_wait_ms >= 100, max_ack_pending >= "
                          "1, window 1..1000000, 0 <= retry_delay_ms < ack_wait_ms, max_requeues "
                          ">= 0, retry limits >= 0, max_message_bytes 64 KiB..2 GiB");
    if (o->max_streams < 0 || o->max_streams_per_uri < 0 || o->new_streams_per_sec < 0 ||
        o->new_streams_burst < 0 || o->keepalive_ms < 0 || o->keepalive_ms > INT32_MAX ||
        o->keepalive_timeout_ms < 0 || o->keepalive_timeout_ms > INT32_MAX)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "gateway: stream limits and keepalive times must not be negative");
    if (configure_nats_auth(o, err, err_len) != PGC_OK)
        return PGC_ERR_CONFIG;
    pgc_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "gateway: out of memory");
    gw->opts = *o;
    /* jsauth has copied them: not kept, so nothing borrowed outlives the call. */
    gw->opts.nats_tls_ca_file = gw->opts.nats_tls_cert_file = gw->opts.nats_tls_key_file = NULL;
    gw->opts.nats_creds_file = gw->opts.nats_nkey = gw->opts.nats_nkey_seed_file = NULL;
    gw->opts.nats_user = gw->opts.nats_password_file = gw->opts.nats_token_file = NULL;
    if (copy_strings(&gw->opts) != 0 || !(gw->acked = acked_memo_create())) {
        pgc_gateway_destroy(gw);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "gateway: out of memory");
    }
    rpc_channel_options *cc = &gw->controller_channel;
    rpc_channel_options_init(cc);
    cc->tls_ca_file = gw->opts.controller_tls_ca_file;
    cc->tls_cert_file = gw->opts.controller_tls_cert_file;
    cc->tls_key_file = gw->opts.controller_tls_key_file;
    cc->tls_server_name = gw->opts.controller_tls_server_name;
    cc->token = gw->opts.controller_token;
    gw->resolver = *resolver;
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    atomic_init(&gw->stopping, false);
    atomic_init(&gw->stop_grace_ms, 0);
    gw->methods[0] = (rpc_method){RPC_METHOD_CAPTURE,           gw,
                                  capture_stream_on_start,      capture_stream_on_message,
                                  capture_stream_on_half_close, capture_stream_on_done};
    *out = gw;
    return PGC_OK;
}

static void stop_health(pgc_gateway *gw)
{
    rpc_health_destroy(gw->health);
    natsprobe_stop(gw->nats_probe);
    rpc_probe_stop(gw->controller_probe);
    gw->health = NULL;
    gw->nats_probe = NULL;
    gw->controller_probe = NULL;
}

static pgc_status file_resolve(void *arg, const char *uri, const pgc_peer *peer,
                               pgc_uri_target *out, char *err, size_t err_len);

/* What other machines could do to a gateway they can reach, said once at start. */
static void warn_if_exposed(pgc_gateway *gw, const char *addr)
{
    if (rpc_addr_is_loopback(addr))
        return;
    if (!gw->opts.tls_cert_file)
        log_warn("serving without TLS on an address other machines can reach: changes and "
                 "tokens cross the network in the clear (--tls-cert, --tls-key)",
                 "listen=%s", addr);
    const char *first = NULL;
    size_t open = gw->resolver.resolve == file_resolve
                      ? resolver_file_open_uris(gw->resolver.arg, &first)
                      : 0;
    if (open > 0)
        log_warn("URIs without a capture list: every client that reaches the gateway may "
                 "capture them",
                 "listen=%s open_uris=%zu first=\"%s\"", addr, open, first);
}

pgc_status pgc_gateway_serve(pgc_gateway *gw, const char *addr, int *bound_port, char *err,
                             size_t err_len)
{
    if (gw->serving || gw->server)
        return errbuf_set(err, err_len, PGC_ERR_STATE, "gateway: already serving");
    int port = 0, rc;
    /* grpc.health.v1 says NOT_SERVING while NATS or the controller cannot be reached. */
    static const char *const services[] = {"pgcapture.DBLogGateway"};
    if ((rc = rpc_health_create(services, 1, &gw->health, err, err_len)) != PGC_OK)
        return rc;
    rpc_health_methods(gw->health, &gw->methods[1]);
    rpc_server_options so;
    rpc_server_options_init(&so);
    so.tls_cert_file = gw->opts.tls_cert_file;
    so.tls_key_file = gw->opts.tls_key_file;
    so.tls_client_ca_file = gw->opts.tls_client_ca_file;
    so.max_calls = gw->opts.max_streams;
    so.max_recv_bytes = CAPTURE_REQUEST_MAX_BYTES;
    so.keepalive_ms = (int)gw->opts.keepalive_ms;
    so.keepalive_timeout_ms = (int)gw->opts.keepalive_timeout_ms;
    so.new_calls_per_sec = gw->opts.new_streams_per_sec;
    so.new_calls_burst = gw->opts.new_streams_burst;
    if ((rc = natsprobe_start(gw->opts.nats_url, "nats", &gw->nats_probe, err, err_len)) !=
            PGC_OK ||
        (gw->opts.controller &&
         (rc = rpc_probe_start(gw->opts.controller, &gw->controller_channel, "controller",
                               &gw->controller_probe, err, err_len)) != PGC_OK) ||
        (rc = rpc_server_create(gw->methods, 1 + RPC_HEALTH_N_METHODS, &so, &gw->server, err,
                                err_len)) != PGC_OK ||
        (rc = rpc_server_listen(gw->server, addr, &port, err, err_len)) != PGC_OK ||
        (rc = rpc_server_start(gw->server, err, err_len)) != PGC_OK) {
        rpc_server_destroy(gw->server);
        gw->server = NULL;
        stop_health(gw);
        return rc;
    }
    gw->serving = true;
    if (bound_port)
        *bound_port = port;
    warn_if_exposed(gw, addr);
    return PGC_OK;
}

static void wait_streams(pgc_gateway *gw, int timeout_ms)
{
    struct timespec until;
    clock_deadline_ms(&until, timeout_ms);
    pthread_mutex_lock(&gw->mu);
    while (gw->live_streams > 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&gw->cv, &gw->mu);
        else if (pthread_cond_timedwait(&gw->cv, &gw->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&gw->mu);
}

void pgc_gateway_stop(pgc_gateway *gw, int grace_ms)
{
    if (!gw || !gw->serving)
        return;
    /* Streams see `stopping`: they take no more from the log, give acks in flight up to
     * the grace period, hand back what is unacked and end with UNAVAILABLE. */
    atomic_store(&gw->stop_grace_ms, grace_ms);
    atomic_store(&gw->stopping, true);
    capture_stream_wake_all(gw);
    rpc_health_stop(gw->health);
    wait_streams(gw, grace_ms + 2000);
    rpc_server_shutdown(gw->server, 1000);
    wait_streams(gw, -1);
    stop_health(gw);
    gw->serving = false;
}

void pgc_gateway_destroy(pgc_gateway *gw)
{
    if (!gw)
        return;
    pgc_gateway_stop(gw, 0);
    rpc_server_destroy(gw->server);
    free_strings(&gw->opts);
    acked_memo_destroy(gw->acked);
    pthread_mutex_destroy(&gw->mu);
    pthread_cond_destroy(&gw->cv);
    free(gw);
}

/* ---- the config-file resolver ---- */

static pgc_status file_resolve(void *arg, const char *uri, const pgc_peer *peer,
                               pgc_uri_target *out, char *err, size_t err_len)
{
    const char *ids[16];
    size_t n = pgc_peer_get_identity_count(peer);
    if (n > sizeof ids / sizeof ids[0])
        n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++)
        ids[i] = pgc_peer_get_identity(peer, i);
    acl_peer p;
    acl_peer_init(&p, ids, n, pgc_peer_get_token(peer));
    int rc = resolver_file_authorize(arg, uri, &p);
    if (rc == PGC_ERR_UNAUTHENTICATED)
        return errbuf_set(err, err_len, rc,
                          "no credentials the gateway accepts (a client certificate or a token)");
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "not allowed to capture uri \"%s\"", uri);
    if (resolver_file_lookup(arg, uri, out) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND, "uri \"%s\" is not configured", uri);
    return PGC_OK;
}

pgc_status pgc_resolver_file_load(const char *path, pgc_resolver *out, char *err, size_t err_len)
{
    resolver_file *c = NULL;
    int rc = resolver_file_load(path, &c, err, err_len);
    if (rc != PGC_OK)
        return rc;
    out->arg = c;
    out->resolve = file_resolve;
    return PGC_OK;
}

void pgc_resolver_file_free(pgc_resolver *r)
{
    if (!r)
        return;
    resolver_file_free(r->arg);
    r->arg = NULL;
    r->resolve = NULL;
}
