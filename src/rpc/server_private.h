/* What the gRPC server's files share (server.c the server and its completion-queue
 * threads, call.c a call's lifetime, call_send.c a call's send queue): the call and server
 * state and the functions the cq thread dispatches to. Private to src/rpc/. */
#ifndef PGC_RPC_SERVER_PRIVATE_H
#define PGC_RPC_SERVER_PRIVATE_H

#include "rpc/peer_rate.h"
#include "rpc/server.h"
#include "rpc/tls.h"

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

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

/* server.c: asks the worker's queue for the next call (its one outstanding request). */
void rpc_server_request_call(cq_worker *w);

/* call.c, on the cq thread: a new call arrived on w's queue (TAG_ACCEPT)... */
void rpc_call_accept(cq_worker *w, bool success);
/* ...a receive completed (TAG_RECV), the close completed (TAG_CLOSE)... */
void rpc_call_on_recv(rpc_call *c, bool success);
void rpc_call_on_close(rpc_call *c);
/* ...and after each completion: on_done once the close and every batch are back. */
void rpc_call_maybe_done(rpc_call *c);

/* call_send.c: a send batch completed (TAG_SEND, cq thread)... */
void rpc_call_on_send(rpc_call *c, bool success);
/* ...and drops the queued messages but the one in flight. Caller holds c->mu. */
void rpc_call_drop_queue_locked(rpc_call *c);

#endif
