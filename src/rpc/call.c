/* A server call's lifetime (see server.h, server_private.h): accepting it (limits, method,
 * peer identity and token), its one outstanding receive, its close, on_done once every
 * batch is back, references, and the accessors the methods use. */
#include "rpc/server_private.h"

#include "core/clock.h"
#include "core/status.h"
#include "core/textfile.h"
#include "rpc/bytes.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
void rpc_call_maybe_done(rpc_call *c)
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
void rpc_call_accept(cq_worker *w, bool success)
{
    rpc_server *s = w->srv;
    if (!success || !w->new_call) {
        if (!atomic_load(&s->shutdown_started))
            rpc_server_request_call(w);
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
        rpc_server_request_call(w);
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
    rpc_server_request_call(w);

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
        /* Cannot happen on a fresh call; treat it as closed so the call is released. */
        c->closed = true;
        rpc_call_maybe_done(c);
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

void rpc_call_on_recv(rpc_call *c, bool success)
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
    rpc_call_maybe_done(c);
}

void rpc_call_on_close(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    c->batches--;
    c->closed = true;
    rpc_call_drop_queue_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    rpc_call_unref(c);
    rpc_call_maybe_done(c);
}
