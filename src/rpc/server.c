/* gRPC server plumbing (see server.h). Several completion queues, one thread draining each;
 * every queue keeps one grpc_server_request_call outstanding, and a call lives on the queue
 * that accepted it (its batches complete there), so a call's callbacks run on one thread
 * and in order while different calls are served by different threads.
 * Per call: one RECV_MESSAGE outstanding (its cq thread only), one send batch outstanding
 * at a time (under the call's mutex, from any thread), and RECV_CLOSE_ON_SERVER, whose
 * completion tells the call is over. on_done runs once that completion and every batch
 * of the call have come back, so no completion can reach a call after on_done. */
#include "rpc/server.h"

#include "core/clock.h"
#include "core/status.h"
#include "rpc/bytes.h"
#include "rpc/peer_rate.h"
#include "rpc/tls.h"
#include "core/textfile.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_IDENTITIES 16
#define MAX_TOKEN_BYTES 4096

typedef enum tag_kind { TAG_ACCEPT, TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_SHUTDOWN } tag_kind;

typedef struct cq_worker cq_worker;

typedef struct rpc_tag {
    tag_kind kind;
    rpc_call *call;    /* TAG_RECV, TAG_SEND, TAG_CLOSE */
    cq_worker *worker; /* TAG_ACCEPT */
} rpc_tag;

typedef struct out_msg {
    struct out_msg *next;
    grpc_byte_buffer *buf;
    size_t len;
} out_msg;

struct rpc_call {
    rpc_server *srv;
    const rpc_method *method;
    grpc_call *call;
    char *peer;
    char method_name[200]; /* as the client asked, for the UNIMPLEMENTED message */
    void *ctx;
    char *identities[MAX_IDENTITIES]; /* verified client certificate: CN, then SANs */
    size_t n_identities;
    char *token; /* bearer token of the call, or NULL */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int batches;         /* batches started and not yet completed */
    bool closed;         /* RECV_CLOSE_ON_SERVER completed */
    int cancelled;       /* written by gRPC when the close completes */
    bool finishing;      /* rpc_call_finish was called */
    bool status_started; /* the status batch was started */
    bool over;           /* on_done called */
    bool initial_sent;   /* initial metadata went out with the first send batch */
    bool send_in_flight;
    bool in_flight_is_msg; /* the send batch in flight carries the head message */
    bool recv_active;      /* the cq thread keeps a receive outstanding */
    out_msg *head, *tail;
    size_t queued;        /* messages in the list plus the one in flight */
    size_t queued_bytes;  /* their bytes */
    size_t wake_at;       /* a writer waits: wake it once queued is down to this... */
    size_t wake_at_bytes; /* ...and queued_bytes to this */
    grpc_status_code code;
    char *message;
    grpc_slice status_details;

    grpc_byte_buffer *recv_buf;
    rpc_tag t_recv, t_send, t_close;
};

struct rpc_server {
    const rpc_method *methods;
    size_t n_methods;
    rpc_server_options opts; /* file names copied */
    rpc_tls_server *tls;     /* NULL: plaintext */
    peer_rate *rate;         /* under mu; NULL: no limit */
    grpc_server *server;
    cq_worker *workers;
    int n_workers;
    bool started;
    atomic_bool shutdown_started;
    rpc_tag t_shutdown; /* completes on the first worker's queue */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int live_calls;
    bool shutdown_done;
};

/* One completion queue and the thread that drains it, with the queue's one outstanding
 * grpc_server_request_call (touched by that thread only, once started). */
struct cq_worker {
    rpc_server *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
    bool thread_started;
    grpc_call *new_call;
    grpc_call_details details;
    grpc_metadata_array request_md;
    rpc_tag t_accept;
};

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

static void request_next_call(cq_worker *w)
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

static void call_free(rpc_call *c)
{
    out_msg *m = c->head;
    while (m) {
        out_msg *next = m->next;
        grpc_byte_buffer_destroy(m->buf);
        free(m);
        m = next;
    }
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    grpc_slice_unref(c->status_details);
    grpc_call_unref(c->call);
    gpr_free(c->peer);
    free(c->message);
    for (size_t i = 0; i < c->n_identities; i++)
        free(c->identities[i]);
    textfile_free_secret(c->token);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void rpc_call_ref(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

void rpc_call_unref(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        call_free(c);
}

/* Drops the queued messages, except the one gRPC is sending (it owns its buffer until the
 * batch completes). */
static void drop_queue_locked(rpc_call *c)
{
    bool keep_head = c->send_in_flight && c->in_flight_is_msg && c->head;
    out_msg *m = keep_head ? c->head->next : c->head;
    while (m) {
        out_msg *next = m->next;
        c->queued--;
        c->queued_bytes -= m->len;
        grpc_byte_buffer_destroy(m->buf);
        free(m);
        m = next;
    }
    if (keep_head) {
        c->head->next = NULL;
        c->tail = c->head;
    } else {
        c->head = c->tail = NULL;
    }
}

/* Starts the next send batch if none is in flight: a queued message, or the status once
 * the queue is empty and the call is finishing. Caller holds c->mu. */
static void pump_sends_locked(rpc_call *c)
{
    if (c->send_in_flight || c->closed || c->status_started)
        return;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    if (c->head) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->head->buf;
        /* More is queued behind it: let gRPC coalesce the writes. The last queued message
         * goes without the hint, which flushes what was buffered. */
        if (c->head->next)
            ops[n].flags = GRPC_WRITE_BUFFER_HINT;
        n++;
    } else if (c->finishing) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = c->code;
        c->status_details = grpc_slice_from_copied_string(c->message ? c->message : "");
        ops[n].data.send_status_from_server.status_details = &c->status_details;
        n++;
        c->status_started = true;
    } else {
        return;
    }
    if (grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL) == GRPC_CALL_OK) {
        c->initial_sent = true;
        c->send_in_flight = true;
        c->in_flight_is_msg = !c->status_started;
        c->batches++;
        c->refs++;
    } else {
        /* The call is unusable: nothing more can be sent. */
        drop_queue_locked(c);
        c->finishing = true;
        c->status_started = true;
        pthread_cond_broadcast(&c->cv);
    }
}

int rpc_call_send(rpc_call *c, const uint8_t *data, size_t len)
{
    out_msg *m = malloc(sizeof *m);
    if (!m)
        return PGC_ERR_NOMEM;
    m->next = NULL;
    m->buf = rpc_bytes_to_buffer(data, len);
    m->len = len;
    pthread_mutex_lock(&c->mu);
    if (c->finishing || c->closed || c->over) {
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(m->buf);
        free(m);
        return PGC_ERR_STATE;
    }
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->queued++;
    c->queued_bytes += len;
    pump_sends_locked(c);
    pthread_mutex_unlock(&c->mu);
    return PGC_OK;
}

size_t rpc_call_queued(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->queued;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t rpc_call_queued_bytes(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->queued_bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int rpc_call_wait_writable(rpc_call *c, size_t max_queued, int timeout_ms)
{
    return rpc_call_wait_room(c, max_queued, SIZE_MAX, timeout_ms);
}

int rpc_call_wait_room(rpc_call *c, size_t max_queued, size_t max_bytes, int timeout_ms)
{
    struct timespec until;
    clock_deadline_ms(&until, timeout_ms);
    int rc = PGC_OK;
    pthread_mutex_lock(&c->mu);
    while (!(c->finishing || c->closed || c->over) &&
           (c->queued >= max_queued || c->queued_bytes >= max_bytes)) {
        /* Woken once the queue has drained to a quarter, not after every send: a writer
         * that refills one message at a time hands over to the cq thread once per message,
         * and that hand-over costs more than the message (measured in bench/dump). */
        c->wake_at = max_queued / 4;
        c->wake_at_bytes = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes / 4;
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0) {
            rc = PGC_ERR_TIMEOUT;
            break;
        }
    }
    if (c->finishing || c->closed || c->over)
        rc = PGC_ERR_STATE;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void rpc_call_finish(rpc_call *c, grpc_status_code code, const char *message)
{
    pthread_mutex_lock(&c->mu);
    if (!c->finishing && !c->closed) {
        c->finishing = true;
        c->code = code;
        c->message = message ? strdup(message) : NULL;
        pump_sends_locked(c);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

bool rpc_call_is_over(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    bool over = c->finishing || c->closed || c->over;
    pthread_mutex_unlock(&c->mu);
    return over;
}

void *rpc_call_method_ctx(const rpc_call *c)
{
    return c->method->ctx;
}

void rpc_call_set_ctx(rpc_call *c, void *ctx)
{
    c->ctx = ctx;
}

void *rpc_call_ctx(const rpc_call *c)
{
    return c->ctx;
}

const char *rpc_call_peer(const rpc_call *c)
{
    return c->peer ? c->peer : "unknown";
}

size_t rpc_call_identity_count(const rpc_call *c)
{
    return c->n_identities;
}

const char *rpc_call_identity(const rpc_call *c, size_t i)
{
    return i < c->n_identities ? c->identities[i] : NULL;
}

const char *rpc_call_token(const rpc_call *c)
{
    return c->token;
}

/* The subject CN and SANs of a client certificate gRPC verified. */
static void read_identities(rpc_call *c)
{
    grpc_auth_context *ctx = grpc_call_auth_context(c->call);
    if (!ctx)
        return;
    if (grpc_auth_context_peer_is_authenticated(ctx)) {
        static const char *const names[] = {GRPC_X509_CN_PROPERTY_NAME,
                                            GRPC_X509_SAN_PROPERTY_NAME};
        for (size_t k = 0; k < 2; k++) {
            grpc_auth_property_iterator it =
                grpc_auth_context_find_properties_by_name(ctx, names[k]);
            const grpc_auth_property *p;
            while ((p = grpc_auth_property_iterator_next(&it)) &&
                   c->n_identities < MAX_IDENTITIES) {
                char *v = strndup(p->value, p->value_length);
                if (v)
                    c->identities[c->n_identities++] = v;
            }
        }
    }
    grpc_auth_context_release(ctx);
}

/* "authorization: Bearer <token>" from the request headers. */
static void read_token(rpc_call *c, const grpc_metadata_array *md)
{
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key, *v = &md->metadata[i].value;
        size_t vlen = GRPC_SLICE_LENGTH(*v);
        const char *vs = (const char *)GRPC_SLICE_START_PTR(*v);
        if (GRPC_SLICE_LENGTH(*k) != 13 ||
            strncasecmp((const char *)GRPC_SLICE_START_PTR(*k), "authorization", 13) != 0)
            continue;
        if (vlen > 7 && vlen - 7 <= MAX_TOKEN_BYTES && strncasecmp(vs, "Bearer ", 7) == 0 &&
            !memchr(vs + 7, '\0', vlen - 7))
            c->token = strndup(vs + 7, vlen - 7);
        return;
    }
}

/* Limits checked before a call gets any state: RESOURCE_EXHAUSTED, or NULL to go on. */
static const char *over_limit(rpc_server *s, const char *peer)
{
    pthread_mutex_lock(&s->mu);
    bool full = s->opts.max_calls > 0 && s->live_calls >= s->opts.max_calls;
    bool fast = !full && s->rate && !peer_rate_take(s->rate, peer ? peer : "", clock_mono_ms());
    pthread_mutex_unlock(&s->mu);
    if (full)
        return "server busy: too many calls open";
    if (fast)
        return "too many new calls from this peer: slow down";
    return NULL;
}

/* Runs on the cq thread after a completion: when the close has come back and no batch
 * is outstanding, the call is over. */
static void maybe_done(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    bool done = c->closed && c->batches == 0 && !c->over;
    if (done)
        c->over = true;
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return;
    if (c->method && c->method->on_done)
        c->method->on_done(c, c->cancelled != 0);
    rpc_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    s->live_calls--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    rpc_call_unref(c);
}

static void start_recv(rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    pthread_mutex_lock(&c->mu);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) == GRPC_CALL_OK) {
        c->batches++;
        c->refs++;
        c->recv_active = true;
    } else {
        c->recv_active = false;
    }
    pthread_mutex_unlock(&c->mu);
}

static const rpc_method *find_method(rpc_server *s, grpc_slice name)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        size_t len = strlen(s->methods[i].name);
        if (GRPC_SLICE_LENGTH(name) == len &&
            memcmp(GRPC_SLICE_START_PTR(name), s->methods[i].name, len) == 0)
            return &s->methods[i];
    }
    return NULL;
}

/* A new call: set it up, or answer UNIMPLEMENTED for a method we do not serve. */
static void on_accept(cq_worker *w, bool success)
{
    rpc_server *s = w->srv;
    if (!success || !w->new_call) {
        if (!atomic_load(&s->shutdown_started))
            request_next_call(w);
        return;
    }
    char *peer = grpc_call_get_peer(w->new_call);
    const char *refusal = over_limit(s, peer);
    rpc_call *c = refusal ? NULL : calloc(1, sizeof *c);
    if (!c) {
        grpc_call_cancel_with_status(w->new_call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                     refusal ? refusal : "out of memory", NULL);
        grpc_call_unref(w->new_call);
        gpr_free(peer);
        request_next_call(w);
        return;
    }
    c->srv = s;
    c->call = w->new_call;
    c->method = find_method(s, w->details.method);
    snprintf(c->method_name, sizeof c->method_name, "%.*s",
             (int)GRPC_SLICE_LENGTH(w->details.method),
             (const char *)GRPC_SLICE_START_PTR(w->details.method));
    c->peer = peer;
    read_identities(c);
    read_token(c, &w->request_md);
    c->refs = 1; /* the server's own, dropped after on_done */
    c->status_details = grpc_empty_slice();
    c->t_recv = (rpc_tag){TAG_RECV, c, NULL};
    c->t_send = (rpc_tag){TAG_SEND, c, NULL};
    c->t_close = (rpc_tag){TAG_CLOSE, c, NULL};
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_lock(&s->mu);
    s->live_calls++;
    pthread_mutex_unlock(&s->mu);
    request_next_call(w);

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
        /* Cannot happen on a fresh call; treat it as closed so the call is released. */
        c->closed = true;
        maybe_done(c);
        return;
    }
    c->batches++;
    c->refs++;
    if (!c->method) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown method %s", c->method_name);
        rpc_call_finish(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (c->method->on_start)
        c->method->on_start(c);
    start_recv(c);
}

static void on_recv(rpc_call *c, bool success)
{
    grpc_byte_buffer *buf = c->recv_buf;
    c->recv_buf = NULL;
    pthread_mutex_lock(&c->mu);
    c->batches--;
    c->recv_active = false;
    bool ignore = c->over || c->closed;
    pthread_mutex_unlock(&c->mu);
    if (success && buf && !ignore) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (rpc_bytes_from_buffer(buf, &data, &len) == PGC_OK) {
            if (c->method->on_message)
                c->method->on_message(c, data, len);
            free(data);
        } else {
            rpc_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory reading a request");
        }
        grpc_byte_buffer_destroy(buf);
        if (!rpc_call_is_over(c))
            start_recv(c);
    } else {
        if (buf)
            grpc_byte_buffer_destroy(buf);
        if (success && !buf && !ignore && c->method->on_half_close)
            c->method->on_half_close(c);
    }
    rpc_call_unref(c);
    maybe_done(c);
}

static void on_send(rpc_call *c, bool success)
{
    pthread_mutex_lock(&c->mu);
    c->batches--;
    c->send_in_flight = false;
    if (c->in_flight_is_msg && c->head) {
        out_msg *m = c->head;
        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        c->queued--;
        c->queued_bytes -= m->len;
        grpc_byte_buffer_destroy(m->buf);
        free(m);
    }
    c->in_flight_is_msg = false;
    if (!success) {
        drop_queue_locked(c);
        c->finishing = true;
    } else {
        pump_sends_locked(c);
    }
    if (!success || c->finishing ||
        (c->queued <= c->wake_at && c->queued_bytes <= c->wake_at_bytes))
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    rpc_call_unref(c);
    maybe_done(c);
}

static void on_close(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    c->batches--;
    c->closed = true;
    drop_queue_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    rpc_call_unref(c);
    maybe_done(c);
}

static void *cq_thread(void *arg)
{
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
            on_accept(t->worker, ev.success != 0);
            break;
        case TAG_RECV:
            on_recv(t->call, ev.success != 0);
            break;
        case TAG_SEND:
            on_send(t->call, ev.success != 0);
            break;
        case TAG_CLOSE:
            on_close(t->call);
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
        request_next_call(w);
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
