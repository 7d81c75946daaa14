/* The gRPC server and its completion-queue threads (see server.h): options, TLS and
 * listening, one thread draining each of several completion queues, shutdown. Every queue
 * keeps one grpc_server_request_call outstanding, and a call lives on the queue that
 * accepted it (its batches complete there), so a call's callbacks run on one thread and in
 * order while different calls are served by different threads.
 * Per call (call.c, call_send.c): one RECV_MESSAGE outstanding (its cq thread only), one
 * send batch outstanding at a time (under the call's mutex, from any thread), and
 * RECV_CLOSE_ON_SERVER, whose completion tells the call is over. on_done runs once that
 * completion and every batch of the call have come back, so no completion can reach a
 * call after on_done. */
#include "rpc/server_private.h"

#include "core/clock.h"
#include "core/status.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;
static void grpc_init_once(void)
{
    grpc_init();
}

static gpr_timespec deadline_in_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

void rpc_server_options_init(rpc_server_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_recv_bytes = 4 * 1024 * 1024;
    o->keepalive_ms = 30000;
    o->keepalive_timeout_ms = 10000;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 2 ? 2 : n > RPC_SERVER_MAX_THREADS ? RPC_SERVER_MAX_THREADS : (int)n;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void free_opts(rpc_server_options *o)
{
    free((char *)o->tls_cert_file);
    free((char *)o->tls_key_file);
    free((char *)o->tls_client_ca_file);
}

/* The HTTP/2 settings of the options. A server-side keepalive finds half-open clients:
 * pings keep going on an idle connection (no cap on pings without data), and a missing
 * answer closes the connection, which cancels its calls (their on_done runs). */
static grpc_server *create_grpc_server(const rpc_server_options *o)
{
    grpc_arg args[7];
    size_t n = 0;
#define INT_ARG(key, v)                                                                            \
    args[n++] = (grpc_arg)                                                                         \
    {                                                                                              \
        GRPC_ARG_INTEGER, (char *)(key),                                                           \
        {                                                                                          \
            .integer = (v)                                                                         \
        }                                                                                          \
    }
    INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, o->max_recv_bytes);
    if (o->max_calls_per_connection > 0)
        INT_ARG(GRPC_ARG_MAX_CONCURRENT_STREAMS, o->max_calls_per_connection);
    if (o->keepalive_ms > 0) {
        INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_ms);
        INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_timeout_ms);
        INT_ARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
        INT_ARG(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    /* Clients of ours ping every 10 s at most often; faster pingers get GOAWAY. */
    INT_ARG(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
#undef INT_ARG
    grpc_channel_args ca = {n, args};
    return grpc_server_create(&ca, NULL);
}

int rpc_server_create(const rpc_method *methods, size_t n_methods, const rpc_server_options *o,
                      rpc_server **out, char *err, size_t err_len)
{
    pthread_once(&grpc_once, grpc_init_once);
    rpc_server_options defaults;
    if (!o) {
        rpc_server_options_init(&defaults);
        o = &defaults;
    }
    if (o->max_recv_bytes < 1 || o->max_calls < 0 || o->keepalive_ms < 0 ||
        o->keepalive_timeout_ms < 0 || o->new_calls_per_sec < 0 || o->threads < 0 ||
        o->threads > RPC_SERVER_MAX_THREADS)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "rpc: max_recv_bytes must be positive, the limits not negative and "
                          "threads at most %d",
                          RPC_SERVER_MAX_THREADS);
    rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: out of memory");
    s->methods = methods;
    s->n_methods = n_methods;
    s->opts = *o;
    s->opts.tls_cert_file = dup_or_null(o->tls_cert_file);
    s->opts.tls_key_file = dup_or_null(o->tls_key_file);
    s->opts.tls_client_ca_file = dup_or_null(o->tls_client_ca_file);
    int rc = PGC_OK;
    if ((o->tls_cert_file && *o->tls_cert_file) || (o->tls_key_file && *o->tls_key_file) ||
        (o->tls_client_ca_file && *o->tls_client_ca_file))
        rc = rpc_tls_server_create(s->opts.tls_cert_file, s->opts.tls_key_file,
                                   s->opts.tls_client_ca_file, &s->tls, err, err_len);
    if (rc == PGC_OK && o->new_calls_per_sec > 0 &&
        !(s->rate = peer_rate_create(o->new_calls_per_sec, o->new_calls_burst)))
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: out of memory");
    if (rc != PGC_OK) {
        rpc_tls_server_destroy(s->tls);
        free_opts(&s->opts);
        free(s);
        return rc;
    }
    s->n_workers = o->threads ? o->threads : default_threads();
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers) {
        rpc_tls_server_destroy(s->tls);
        peer_rate_destroy(s->rate);
        free_opts(&s->opts);
        free(s);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: out of memory");
    }
    s->server = create_grpc_server(&s->opts);
    for (int i = 0; i < s->n_workers; i++) {
        cq_worker *w = &s->workers[i];
        w->srv = s;
        w->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
        grpc_call_details_init(&w->details);
        grpc_metadata_array_init(&w->request_md);
        w->t_accept = (rpc_tag){TAG_ACCEPT, NULL, w};
    }
    atomic_init(&s->shutdown_started, false);
    s->t_shutdown.kind = TAG_SHUTDOWN;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *out = s;
    return PGC_OK;
}

int rpc_server_listen(rpc_server *s, const char *addr, int *bound_port, char *err, size_t err_len)
{
    grpc_server_credentials *creds =
        s->tls ? rpc_tls_server_credentials(s->tls) : grpc_insecure_server_credentials_create();
    if (!creds)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "rpc: gRPC refused the TLS credentials");
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "rpc: cannot listen on %s (address in use or malformed)", addr);
    if (bound_port)
        *bound_port = port;
    return PGC_OK;
}

bool rpc_addr_is_loopback(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "unix-abstract:", 14) == 0)
        return true;
    if (strncmp(addr, "ipv4:", 5) == 0 || strncmp(addr, "ipv6:", 5) == 0)
        addr += 5;
    char host[256];
    size_t n;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end)
            return false;
        n = (size_t)(end - addr - 1);
        addr++;
    } else {
        const char *colon = strrchr(addr, ':');
        n = colon ? (size_t)(colon - addr) : strlen(addr);
    }
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, addr, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return true;
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

unsigned rpc_server_tls_reloads(rpc_server *s)
{
    return s->tls ? rpc_tls_server_reloads(s->tls) : 0;
}

void rpc_server_request_call(cq_worker *w)
{
    grpc_call_details_destroy(&w->details);
    grpc_call_details_init(&w->details);
    grpc_metadata_array_destroy(&w->request_md);
    grpc_metadata_array_init(&w->request_md);
    w->new_call = NULL;
    grpc_call_error e = grpc_server_request_call(w->srv->server, &w->new_call, &w->details,
                                                 &w->request_md, w->cq, w->cq, &w->t_accept);
    /* Fails only once shutdown has begun: then no new call is wanted. */
    (void)e;
}

static void *cq_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-grpc-cq");
    cq_worker *w = arg;
    rpc_server *s = w->srv;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        rpc_tag *t = ev.tag;
        switch (t->kind) {
        case TAG_ACCEPT:
            rpc_call_accept(t->worker, ev.success != 0);
            break;
        case TAG_RECV:
            rpc_call_on_recv(t->call, ev.success != 0);
            break;
        case TAG_SEND:
            rpc_call_on_send(t->call, ev.success != 0);
            break;
        case TAG_CLOSE:
            rpc_call_on_close(t->call);
            break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    return NULL;
}

int rpc_server_start(rpc_server *s, char *err, size_t err_len)
{
    grpc_server_start(s->server);
    s->started = true;
    for (int i = 0; i < s->n_workers; i++) {
        cq_worker *w = &s->workers[i];
        rpc_server_request_call(w);
        if (pthread_create(&w->thread, NULL, cq_thread, w) != 0)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: cannot start the server threads");
        w->thread_started = true;
    }
    return PGC_OK;
}

/* Waits on the server's condition until `pred` holds or the deadline passes. */
static bool wait_until(rpc_server *s, bool (*pred)(rpc_server *), int timeout_ms)
{
    struct timespec until;
    clock_deadline_ms(&until, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!pred(s)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0)
            break;
    }
    bool ok = pred(s);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static bool shutdown_complete(rpc_server *s)
{
    return s->shutdown_done && s->live_calls == 0;
}

void rpc_server_shutdown(rpc_server *s, int grace_ms)
{
    if (!s->started || atomic_exchange(&s->shutdown_started, true))
        return;
    grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &s->t_shutdown);
    /* Cancelling at once would cut streams that already finished on our side: give them
     * the grace period first (env-notes). */
    if (!wait_until(s, shutdown_complete, grace_ms)) {
        grpc_server_cancel_all_calls(s->server);
        wait_until(s, shutdown_complete, 30000);
    }
}

void rpc_server_destroy(rpc_server *s)
{
    if (!s)
        return;
    if (s->started)
        rpc_server_shutdown(s, 0);
    else
        grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &s->t_shutdown);
    for (int i = 0; i < s->n_workers; i++) {
        cq_worker *w = &s->workers[i];
        grpc_completion_queue_shutdown(w->cq);
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
            continue;
        }
        /* No thread drains this queue: do it here. */
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(w->cq, deadline_in_ms(1000), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
        }
    }
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->n_workers; i++) {
        grpc_completion_queue_destroy(s->workers[i].cq);
        grpc_call_details_destroy(&s->workers[i].details);
        grpc_metadata_array_destroy(&s->workers[i].request_md);
    }
    free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    rpc_tls_server_destroy(s->tls);
    peer_rate_destroy(s->rate);
    free_opts(&s->opts);
    free(s);
}
