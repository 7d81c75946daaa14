/* Blocking gRPC client calls (see client.h). Each call gets its own pluck completion
 * queue; sends, receives and the final status are separate batches with their own tags,
 * so a sender and a receiver can wait on the same call at once (pluck allows several
 * concurrent pluckers). A receive that times out stays outstanding and is plucked again
 * by the next rpc_stream_recv. */
#include "rpc/client.h"

#include "core/status.h"
#include "rpc/bytes.h"
#include "rpc/tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_channel {
    grpc_channel *ch;
    char *target;
};

struct rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    char *details_str;
    grpc_byte_buffer *recv_buf;
    bool recv_pending, status_pending, ended, cancelled, got_initial_md;
    int tag_start, tag_send, tag_recv, tag_status, tag_close;
};

/* How long rpc_stream_status waits for the status of a call not seen to end. */
#define STATUS_WAIT_MS 10000

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;
static void grpc_init_once(void)
{
    grpc_init();
}

static gpr_timespec deadline_after(int timeout_ms)
{
    if (timeout_ms < 0)
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

void rpc_channel_options_init(rpc_channel_options *o)
{
    memset(o, 0, sizeof *o);
}

static bool set(const char *s)
{
    return s && *s;
}

int rpc_channel_create_opts(const char *target, const rpc_channel_options *o, rpc_channel **out,
                            char *err, size_t err_len)
{
    pthread_once(&grpc_once, grpc_init_once);
    if (!target || !*target)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "rpc: empty target address");
    rpc_channel_options defaults;
    if (!o) {
        rpc_channel_options_init(&defaults);
        o = &defaults;
    }
    bool tls = o->tls || set(o->tls_ca_file) || set(o->tls_cert_file) || set(o->tls_key_file);
    if (set(o->token) && !tls)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "rpc: a token is only sent over TLS: give the gateway's CA too");
    if (o->keepalive_ms != 0 && o->keepalive_ms < 10000)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "rpc: keepalive must be 0 or >= 10 s");
    grpc_channel_credentials *creds = NULL;
    if (tls) {
        int rc = rpc_tls_client_credentials(o->tls_ca_file, o->tls_cert_file, o->tls_key_file,
                                            set(o->token) ? o->token : NULL, &creds, err, err_len);
        if (rc != PGC_OK)
            return rc;
    } else {
        creds = grpc_insecure_credentials_create();
    }
    grpc_arg args[7];
    size_t n = 0;
    /* A connection of its own: channels to one target otherwise share gRPC's global
     * subchannel pool and with it one connection, which the server serves from one of its
     * threads (server.h). */
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}};
    if (set(o->tls_server_name))
        args[n++] = (grpc_arg){GRPC_ARG_STRING,
                               GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                               {.string = (char *)o->tls_server_name}};
    if (o->keepalive_ms > 0) {
        args[n++] =
            (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = o->keepalive_ms}};
        args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 10000}};
        args[n++] =
            (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}};
    }
    if (o->max_recv_bytes > 0)
        args[n++] = (grpc_arg){
            GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = o->max_recv_bytes}};
    grpc_channel_args ca = {n, args};
    rpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch) {
        grpc_channel_credentials_release(creds);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: out of memory");
    }
    ch->ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    ch->target = strdup(target);
    if (!ch->ch || !ch->target) {
        rpc_channel_destroy(ch);
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "rpc: cannot create a channel to %s",
                          target);
    }
    *out = ch;
    return PGC_OK;
}

int rpc_channel_create(const char *target, rpc_channel **out, char *err, size_t err_len)
{
    return rpc_channel_create_opts(target, NULL, out, err, err_len);
}

int rpc_channel_state(rpc_channel *ch)
{
    switch (grpc_channel_check_connectivity_state(ch->ch, 1)) {
    case GRPC_CHANNEL_READY:
        return 1;
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
    case GRPC_CHANNEL_SHUTDOWN:
        return -1;
    case GRPC_CHANNEL_IDLE:
    case GRPC_CHANNEL_CONNECTING:
        break;
    }
    return 0;
}

void rpc_channel_destroy(rpc_channel *ch)
{
    if (!ch)
        return;
    if (ch->ch)
        grpc_channel_destroy(ch->ch);
    free(ch->target);
    free(ch);
}

/* Waits for the completion of `tag`. Returns 1 on success, 0 on a failed op,
 * PGC_ERR_TIMEOUT when the deadline passes first. */
static int pluck(grpc_completion_queue *cq, void *tag, int timeout_ms)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, deadline_after(timeout_ms), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT)
        return PGC_ERR_TIMEOUT;
    if (ev.type != GRPC_OP_COMPLETE)
        return 0;
    return ev.success ? 1 : 0;
}

static void stream_free(rpc_stream *st)
{
    if (st->recv_buf)
        grpc_byte_buffer_destroy(st->recv_buf);
    grpc_metadata_array_destroy(&st->initial_md);
    grpc_metadata_array_destroy(&st->trailing_md);
    grpc_slice_unref(st->details);
    free(st->details_str);
    if (st->call)
        grpc_call_unref(st->call);
    if (st->cq) {
        grpc_completion_queue_shutdown(st->cq);
        while (grpc_completion_queue_pluck(st->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(st->cq);
    }
    free(st);
}

static int stream_create(rpc_channel *ch, const char *method, gpr_timespec deadline,
                         rpc_stream **out, char *err, size_t err_len)
{
    rpc_stream *st = calloc(1, sizeof *st);
    if (!st)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "rpc: out of memory");
    grpc_metadata_array_init(&st->initial_md);
    grpc_metadata_array_init(&st->trailing_md);
    st->details = grpc_empty_slice();
    st->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice m = grpc_slice_from_copied_string(method);
    st->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, st->cq, m, NULL,
                                        deadline, NULL);
    grpc_slice_unref(m);
    if (!st->call) {
        stream_free(st);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: cannot create a call to %s", method);
    }
    /* The status batch is started at once: it completes when the call ends, whichever
     * side ends it, and its tag is plucked when a receive sees the end. */
    grpc_op ops[1];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (grpc_call_start_batch(st->call, ops, 1, &st->tag_start, NULL) != GRPC_CALL_OK) {
        stream_free(st);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: cannot start a call to %s", method);
    }
    pluck(st->cq, &st->tag_start, -1);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &st->trailing_md;
    ops[0].data.recv_status_on_client.status = &st->status;
    ops[0].data.recv_status_on_client.status_details = &st->details;
    if (grpc_call_start_batch(st->call, ops, 1, &st->tag_status, NULL) != GRPC_CALL_OK) {
        stream_free(st);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: cannot start a call to %s", method);
    }
    st->status_pending = true;
    *out = st;
    return PGC_OK;
}

int rpc_stream_open(rpc_channel *ch, const char *method, rpc_stream **out, char *err,
                    size_t err_len)
{
    return stream_create(ch, method, gpr_inf_future(GPR_CLOCK_REALTIME), out, err, err_len);
}

int rpc_stream_send(rpc_stream *st, const uint8_t *data, size_t len, char *err, size_t err_len)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = rpc_bytes_to_buffer(data, len);
    grpc_call_error e = grpc_call_start_batch(st->call, &op, 1, &st->tag_send, NULL);
    if (e != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(op.data.send_message.send_message);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: send refused: %s",
                          grpc_call_error_to_string(e));
    }
    int ok = pluck(st->cq, &st->tag_send, -1);
    grpc_byte_buffer_destroy(op.data.send_message.send_message);
    if (ok != 1)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: the stream is closed");
    return PGC_OK;
}

int rpc_stream_close_send(rpc_stream *st, char *err, size_t err_len)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    if (grpc_call_start_batch(st->call, &op, 1, &st->tag_close, NULL) != GRPC_CALL_OK)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: cannot half-close the stream");
    if (pluck(st->cq, &st->tag_close, -1) != 1)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "rpc: the stream is closed");
    return PGC_OK;
}

/* Collects the final status (the call has ended). */
static void finish_status(rpc_stream *st)
{
    if (st->status_pending) {
        pluck(st->cq, &st->tag_status, -1);
        st->status_pending = false;
        size_t n = GRPC_SLICE_LENGTH(st->details);
        st->details_str = malloc(n + 1);
        if (st->details_str) {
            memcpy(st->details_str, GRPC_SLICE_START_PTR(st->details), n);
            st->details_str[n] = '\0';
        }
    }
    st->ended = true;
}

int rpc_stream_recv(rpc_stream *st, int timeout_ms, uint8_t **data, size_t *len, char *err,
                    size_t err_len)
{
    if (st->ended)
        return 0;
    if (!st->recv_pending) {
        grpc_op ops[2];
        size_t n = 0;
        memset(ops, 0, sizeof ops);
        if (!st->got_initial_md) {
            /* The server's initial metadata precedes its first message. */
            ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[n].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
            n++;
            st->got_initial_md = true;
        }
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n].data.recv_message.recv_message = &st->recv_buf;
        n++;
        if (grpc_call_start_batch(st->call, ops, n, &st->tag_recv, NULL) != GRPC_CALL_OK) {
            finish_status(st);
            return 0;
        }
        st->recv_pending = true;
    }
    int ok = pluck(st->cq, &st->tag_recv, timeout_ms);
    if (ok == PGC_ERR_TIMEOUT)
        return errbuf_set(err, err_len, PGC_ERR_TIMEOUT, "rpc: no message within %d ms",
                          timeout_ms);
    st->recv_pending = false;
    grpc_byte_buffer *buf = st->recv_buf;
    st->recv_buf = NULL;
    if (ok != 1 || !buf) {
        if (buf)
            grpc_byte_buffer_destroy(buf);
        finish_status(st);
        return 0;
    }
    int rc = rpc_bytes_from_buffer(buf, data, len);
    grpc_byte_buffer_destroy(buf);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "rpc: cannot read a message: %s", status_str(rc));
    return 1;
}

int rpc_stream_status(rpc_stream *st, const char **message)
{
    /* After a failed send no receive has seen the end yet: receive until it does (gRPC
     * hands out the status only once the server's initial metadata and messages are
     * read; those messages are dropped), rather than report the call as UNKNOWN. A call
     * still going after STATUS_WAIT_MS is cancelled (CANCELLED), so this cannot hang. */
    gpr_timespec until = deadline_after(STATUS_WAIT_MS);
    while (!st->ended) {
        gpr_timespec now = gpr_now(GPR_CLOCK_REALTIME);
        int left_ms = (int)gpr_time_to_millis(gpr_time_sub(until, now));
        if (left_ms <= 0 && !st->cancelled)
            rpc_stream_cancel(st);
        uint8_t *data = NULL;
        size_t len;
        if (rpc_stream_recv(st, left_ms > 0 ? left_ms : -1, &data, &len, NULL, 0) == 1)
            free(data);
    }
    if (message)
        *message = st->details_str ? st->details_str : "";
    return (int)st->status;
}

void rpc_stream_cancel(rpc_stream *st)
{
    if (st && st->call) {
        st->cancelled = true;
        grpc_call_cancel(st->call, NULL);
    }
}

void rpc_stream_destroy(rpc_stream *st)
{
    if (!st)
        return;
    if (!st->ended)
        grpc_call_cancel(st->call, NULL);
    if (st->recv_pending) {
        pluck(st->cq, &st->tag_recv, -1);
        st->recv_pending = false;
    }
    if (st->status_pending) {
        pluck(st->cq, &st->tag_status, -1);
        st->status_pending = false;
    }
    stream_free(st);
}

int rpc_unary(rpc_channel *ch, const char *method, const uint8_t *req, size_t req_len,
              int timeout_ms, uint8_t **resp, size_t *resp_len, int *grpc_code, char *err,
              size_t err_len)
{
    rpc_stream *st;
    int rc = stream_create(ch, method, deadline_after(timeout_ms), &st, err, err_len);
    if (rc != PGC_OK)
        return rc;
    *resp = NULL;
    *resp_len = 0;
    /* Send failures show up as the call's status, read below. */
    if (rpc_stream_send(st, req, req_len, err, err_len) == PGC_OK)
        rpc_stream_close_send(st, err, err_len);
    uint8_t *data = NULL;
    size_t len = 0;
    int got = rpc_stream_recv(st, -1, &data, &len, err, err_len);
    if (got == 1) {
        /* A unary response is one message followed by the status. */
        uint8_t *extra = NULL;
        size_t extra_len = 0;
        if (rpc_stream_recv(st, -1, &extra, &extra_len, err, err_len) == 1)
            free(extra);
    }
    const char *msg;
    *grpc_code = rpc_stream_status(st, &msg);
    if (*grpc_code == GRPC_STATUS_OK && got == 1) {
        *resp = data;
        *resp_len = len;
        if (err_len)
            err[0] = '\0';
    } else {
        free(data);
        if (*grpc_code == GRPC_STATUS_OK)
            *grpc_code = GRPC_STATUS_INTERNAL;
        snprintf(err, err_len, "%s", *msg ? msg : "call failed without a message");
    }
    rpc_stream_destroy(st);
    return PGC_OK;
}
