/* Blocking gRPC client calls on the gRPC C core: unary calls and bidi/server streams
 * over one channel. Messages are raw bytes. Each stream has its own completion queue
 * (pluck), so one thread may send while another receives on the same stream.
 *
 * Threading: a channel may be shared by threads; a stream has at most one sender thread
 * and one receiver thread at a time. */
#ifndef PGC_RPC_CLIENT_H
#define PGC_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

/* How a channel connects. Zeroed (or _init): plaintext, no token, no keepalive. */
typedef struct rpc_channel_options {
    bool tls;                    /* TLS, the server verified against the system's roots... */
    const char *tls_ca_file;     /* ...or against these PEM CAs (implies tls) */
    const char *tls_cert_file;   /* client certificate chain and key for mutual TLS (both or */
    const char *tls_key_file;    /* neither; imply tls) */
    const char *tls_server_name; /* name the server's certificate must carry (default: the
                                    target's host) */
    const char *token;           /* bearer token sent with every call; needs TLS */
    int keepalive_ms;            /* ping the server this often (>= 10000), 0: never */
    int max_recv_bytes;          /* largest message taken from the server; 0: gRPC's (4 MiB) */
} rpc_channel_options;

void rpc_channel_options_init(rpc_channel_options *o);

/* target: "host:port". The options are used during the call only (files read, strings
 * copied). PGC_ERR_CONFIG for TLS files that do not check out, a token without TLS, or a
 * keepalive under 10 s; PGC_ERR_IO for unreadable files. */
int rpc_channel_create_opts(const char *target, const rpc_channel_options *o, rpc_channel **out,
                            char *err, size_t err_len);
/* A plaintext channel (rpc_channel_create_opts with the defaults). */
int rpc_channel_create(const char *target, rpc_channel **out, char *err, size_t err_len);
void rpc_channel_destroy(rpc_channel *ch); /* NULL is a no-op */
/* Connectivity, starting a connection when idle: 1 connected, -1 the last attempt failed
 * (or shut down), 0 idle or connecting. */
int rpc_channel_state(rpc_channel *ch);

/* A unary call. On return 0 the call completed: *grpc_code is its status (0 = OK, then
 * *resp and *resp_len hold the response, malloc'ed, caller frees) and `err` its message when
 * not OK. A negative status when the call could not be made at all. */
int rpc_unary(rpc_channel *ch, const char *method, const uint8_t *req, size_t req_len,
              int timeout_ms, uint8_t **resp, size_t *resp_len, int *grpc_code, char *err,
              size_t err_len);

/* Opens a stream (bidi, or server-streaming after one send and rpc_stream_close_send). */
int rpc_stream_open(rpc_channel *ch, const char *method, rpc_stream **out, char *err,
                    size_t err_len);
/* Sends one message and waits until gRPC has taken it. PGC_ERR_CONN when the stream is
 * over. */
int rpc_stream_send(rpc_stream *st, const uint8_t *data, size_t len, char *err, size_t err_len);
/* Half-closes the sending side. */
int rpc_stream_close_send(rpc_stream *st, char *err, size_t err_len);
/* Receives one message: 1 with *data (malloc'ed, caller frees) and *len; 0 when the server
 * ended the stream (see rpc_stream_status); PGC_ERR_TIMEOUT after timeout_ms (-1: wait
 * forever) with the receive still pending for the next call. */
int rpc_stream_recv(rpc_stream *st, int timeout_ms, uint8_t **data, size_t *len, char *err,
                    size_t err_len);
/* The final status after rpc_stream_recv returned 0 or rpc_stream_send failed: the gRPC
 * code, and its message (borrowed, valid until destroy). When no receive saw the end yet
 * it receives (dropping messages) until one does, so a refused connection reads as
 * UNAVAILABLE with gRPC's reason; a call still going after 10 s is cancelled (CANCELLED).
 * Not concurrently with rpc_stream_recv. */
int rpc_stream_status(rpc_stream *st, const char **message);
/* Cancels the call (thread-safe); pending send/recv return promptly. */
void rpc_stream_cancel(rpc_stream *st);
void rpc_stream_destroy(rpc_stream *st); /* cancels if not over; NULL is a no-op */

#endif
