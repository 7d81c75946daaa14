/* A gRPC server on the gRPC C core for our services: completion-queue threads accept
 * calls, keep one receive outstanding per call and hand each request message to the
 * method's callbacks; responses may be sent from any thread and are queued per call,
 * since gRPC allows one SEND_MESSAGE in flight per call. Unknown methods get
 * UNIMPLEMENTED. Messages are raw bytes: (de)serialising is the method's business.
 *
 * Threading: the server runs several completion-queue threads (rpc_server_options.threads),
 * and each call belongs to one of them (gRPC hands the calls of one connection to one
 * queue while that queue has a request outstanding): a call's callbacks run on that
 * thread, one at a time and in order, while callbacks of different calls may run at the
 * same time on different threads. Callbacks must not block: they hold up the other calls
 * of their thread. rpc_call_send, rpc_call_finish, rpc_call_wait_writable and the ref
 * functions are thread-safe. */
#ifndef PGC_RPC_SERVER_H
#define PGC_RPC_SERVER_H

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef struct rpc_method {
    const char *name; /* full method name, e.g. RPC_METHOD_CAPTURE (rpc/methods.h) */
    void *ctx;        /* the method's own state, see rpc_call_method_ctx */
    /* A call arrived. Set per-call state with rpc_call_set_ctx. */
    void (*on_start)(rpc_call *call);
    /* One request message (bytes valid during the callback only). */
    void (*on_message)(rpc_call *call, const uint8_t *data, size_t len);
    /* The client finished sending (half-close). May be NULL. */
    void (*on_half_close)(rpc_call *call);
    /* The call is over: finished by us, cancelled, or the client went away (cancelled
     * true then). Called exactly once, last; release the per-call state here. The call
     * handle stays valid for holders of a reference (rpc_call_ref) until they unref it;
     * sends after this return PGC_ERR_STATE. */
    void (*on_done)(rpc_call *call, bool cancelled);
} rpc_method;

/* What a server accepts: TLS and the limits a remote peer cannot push past. Over a limit a
 * new call is refused with RESOURCE_EXHAUSTED before any method callback runs. */
typedef struct rpc_server_options {
    /* TLS: certificate chain and key (PEM files, both or neither: plaintext without). A
     * client CA makes client certificates mandatory (mutual TLS). The files are re-read
     * when they change, for new connections (rpc/tls.h). */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_client_ca_file;
    int max_calls;                /* calls open at once on the server; 0: no limit */
    int max_calls_per_connection; /* HTTP/2 concurrent streams per connection */
    int max_recv_bytes;           /* largest request message gRPC accepts */
    int keepalive_ms;             /* ping an idle connection this often... */
    int keepalive_timeout_ms;     /* ...and drop it (cancelling its calls) when unanswered */
    double new_calls_per_sec;     /* per peer host; 0: no limit */
    double new_calls_burst;       /* tokens a peer host starts with */
    int threads; /* completion-queue threads; 0: one per CPU, at least 2 (at most 16) */
} rpc_server_options;

#define RPC_SERVER_MAX_THREADS 16

/* Defaults: plaintext, no call limits, 4 MB messages, keepalive 30 s with a 10 s
 * timeout. */
void rpc_server_options_init(rpc_server_options *o);

/* Copies the options (file names included); `methods` must outlive the server. `o` NULL:
 * the defaults. PGC_ERR_CONFIG/PGC_ERR_IO for TLS files that do not check out. */
int rpc_server_create(const rpc_method *methods, size_t n_methods, const rpc_server_options *o,
                      rpc_server **out, char *err, size_t err_len);
/* Binds an HTTP/2 port ("127.0.0.1:0" picks a free one), with TLS when the options have a
 * certificate; *bound_port gets it. */
int rpc_server_listen(rpc_server *s, const char *addr, int *bound_port, char *err, size_t err_len);
/* True for addresses only this machine can reach: 127.0.0.0/8, [::1], localhost, unix:. */
bool rpc_addr_is_loopback(const char *addr);
/* How many times the server reloaded changed TLS files (0 without TLS). */
unsigned rpc_server_tls_reloads(rpc_server *s);
/* Starts the server and its completion-queue threads. */
int rpc_server_start(rpc_server *s, char *err, size_t err_len);
/* Stops accepting calls, waits up to grace_ms for running calls to end, then cancels
 * what is left and waits for every on_done. Call it from a thread of your own. */
void rpc_server_shutdown(rpc_server *s, int grace_ms);
/* Shuts down first if still running. NULL is a no-op. */
void rpc_server_destroy(rpc_server *s);

void *rpc_call_method_ctx(const rpc_call *call);
void rpc_call_set_ctx(rpc_call *call, void *ctx);
void *rpc_call_ctx(const rpc_call *call);
/* The peer's address ("ipv4:127.0.0.1:5555"); valid while the call is. */
const char *rpc_call_peer(const rpc_call *call);
/* The identities of a peer that presented a client certificate the server verified: its
 * subject CN, then its subject alternative names. 0 without TLS or client certificate. */
size_t rpc_call_identity_count(const rpc_call *call);
const char *rpc_call_identity(const rpc_call *call, size_t i);
/* The bearer token of the call's "authorization: Bearer <token>" header, or NULL. Valid
 * while the call is; never log it. */
const char *rpc_call_token(const rpc_call *call);

/* Queues a response message (copied). PGC_ERR_STATE once the call is finishing or done. */
int rpc_call_send(rpc_call *call, const uint8_t *data, size_t len);
/* Messages queued and not yet handed to gRPC (the one in flight included). */
size_t rpc_call_queued(rpc_call *call);
/* Their bytes. */
size_t rpc_call_queued_bytes(rpc_call *call);
/* Blocks until fewer than max_queued messages are queued (0), the call is over
 * (PGC_ERR_STATE) or timeout_ms passes (PGC_ERR_TIMEOUT). Never from a callback. */
int rpc_call_wait_writable(rpc_call *call, size_t max_queued, int timeout_ms);
/* The same, and until fewer than max_bytes bytes are queued (for large messages). */
int rpc_call_wait_room(rpc_call *call, size_t max_queued, size_t max_bytes, int timeout_ms);
/* Ends the call with a status once the queued messages are sent. Later calls are
 * ignored. `message` may be NULL. */
void rpc_call_finish(rpc_call *call, grpc_status_code code, const char *message);
/* True once the call is finishing or done. */
bool rpc_call_is_over(rpc_call *call);

/* References keep the handle valid for other threads past on_done. */
void rpc_call_ref(rpc_call *call);
void rpc_call_unref(rpc_call *call);

#endif
