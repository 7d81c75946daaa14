/* libpgcapture-gateway: the gateway of pgcapture-c as a library (pkg-config
 * pgcapture-gateway). A gateway serves DBLogGateway.Capture (docs/protocol.md) for the
 * URIs its resolver knows; `pgcapture gateway` is this API with the config-file resolver,
 * and an embedder may resolve URIs its own way (examples/custom_resolver.c). Everything
 * declared here is exported by libpgcapture-gateway.so; the status codes and the error
 * record are those of <pgcapture.h> (pgc_status_describe is in libpgcapture). Like the
 * library's other roles, a gateway logs to stderr.
 *
 * Order and names as in <pgcapture.h>: 3 types, 4 options with their _init, 5 functions
 * grouped by object, 6 callbacks; functions pgc_<noun>_<verb>. Compiles alone as C99 and
 * as C++. */
#ifndef PGCAPTURE_GATEWAY_H
#define PGCAPTURE_GATEWAY_H

#include <pgcapture.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== 3. Types ========================================================================== */

typedef struct pgc_gateway pgc_gateway;
/* Where a URI's changes come from, filled by a resolver through pgc_uri_target_set_*. It
 * belongs to the gateway: a resolver may only use it during the resolve call that
 * received it. */
typedef struct pgc_uri_target pgc_uri_target;
/* The client of a stream as the gateway authenticated it (its verified client
 * certificate, its bearer token), for a resolver to decide who may capture a URI. It
 * belongs to the gateway: only during the resolve call that received it. */
typedef struct pgc_peer pgc_peer;
/* The resolver: a callback and its argument (section 6). */
typedef struct pgc_resolver pgc_resolver;

/* Longest values a target holds, NUL included. Names (source, durable) are NATS tokens:
 * letters, digits, '_' and '-'. */
#define PGC_GATEWAY_NAME_MAX 128
#define PGC_GATEWAY_DEFAULT_MAX_MESSAGE_BYTES (4 * 1024 * 1024)
#define PGC_GATEWAY_MIN_MAX_MESSAGE_BYTES (64 * 1024)
#define PGC_GATEWAY_URL_MAX 512
#define PGC_GATEWAY_CONNINFO_MAX 1024
#define PGC_GATEWAY_SCHEMAS_MAX 1024

/* ==== 4. Options ======================================================================== */

typedef struct pgc_gateway_options {
    const char *nats_url;    /* default NATS URL(s) ("nats://127.0.0.1:4222") */
    const char *controller;  /* host:port of the controller for dumps; NULL: no dumps.
                                A stream serves its URI's dumps when the resolver also
                                names a replica (pgc_uri_target_set_replica). */
    int64_t ack_wait_ms;     /* JetStream ack wait of the URIs' consumers (30 s) */
    int64_t max_ack_pending; /* JetStream max-ack-pending (batches) of a URI (1000) */
    int window;              /* changes sent and not acked per stream at most (4096) */
    int64_t retry_delay_ms;  /* a requeued change comes back after this (1 s) */
    /* TLS of the gateway's port: certificate chain and key (PEM files, both or neither;
     * NULL: plaintext). A client CA makes client certificates mandatory (mutual TLS):
     * their subject CN and SANs are the identities a resolver sees (pgc_peer). Files that
     * change are read again for new connections; open streams keep theirs. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_client_ca_file;
    /* Limits a peer cannot push past: a stream over them ends with RESOURCE_EXHAUSTED. */
    int max_streams;              /* open at once on the gateway (1000; 0: no limit) */
    int max_streams_per_uri;      /* open at once on one URI (100; 0: no limit) */
    double new_streams_per_sec;   /* new streams per peer host and second (20; 0: no limit) */
    int new_streams_burst;        /* ... with bursts of up to this many (100) */
    int64_t keepalive_ms;         /* ping a quiet connection this often (30 s)... */
    int64_t keepalive_timeout_ms; /* ...and end its streams when unanswered this long (10 s):
                                     their unacked changes go back to the log */
    /* How to reach the controller (with `controller`): TLS with these PEM files (the CA
     * enables TLS; certificate and key for mutual TLS), the name its certificate must
     * carry (NULL: the host of `controller`) and a bearer token (TLS only). */
    const char *controller_tls_ca_file;
    const char *controller_tls_cert_file;
    const char *controller_tls_key_file;
    const char *controller_tls_server_name;
    const char *controller_token;
    /* A change the consumers of a URI requeued this many times goes to the URI's
     * dead-letter subject instead of coming back (docs/protocol.md "In the log").
     * 0: no limit, it comes back for ever (pgcapture's behaviour; the default). */
    int max_requeues;
    /* Retention of the retry stream PGCAPTURE_<source>_RETRY, which also holds the dead
     * letters: age and size (0: the log stream's, as when unset). */
    int64_t retry_max_age_ms;
    int64_t retry_max_bytes;
    /* The largest Capture message a client takes, unless it says otherwise at init
     * (parameter MaxMessageSize): a change that would not fit goes to the dead letters with
     * reason "too large: N bytes > M" instead of being sent (4 MiB, gRPC's default receive
     * limit). */
    int64_t max_message_bytes;
    /* How the gateway reaches NATS, for an embedder (the CLI takes --nats-* flags): TLS
     * (a CA verifies the servers; a certificate and key for mutual TLS) and at most one
     * kind of credentials: a .creds file; an NKey public key and its seed file; a user and
     * a password file; or a token file. All NULL: plaintext, no credentials, or what the
     * process set before. Process-wide: every NATS connection of the process uses the
     * settings of the last gateway created with any of them. */
    const char *nats_tls_ca_file;
    const char *nats_tls_cert_file;
    const char *nats_tls_key_file;
    const char *nats_creds_file;
    const char *nats_nkey;
    const char *nats_nkey_seed_file;
    const char *nats_user;
    const char *nats_password_file;
    const char *nats_token_file;
} pgc_gateway_options;

/* Sets every option to its default. Thread-safe (writes only *o). */
PGC_EXPORT void pgc_gateway_options_init(pgc_gateway_options *o);

/* ==== 5. Functions, by object =========================================================== */

/* ---- pgc_gateway ---- */

/* Copies the options and the resolver struct (resolver->arg stays borrowed and must
 * outlive the gateway). PGC_ERR_INVALID for a NULL resolver or an option out of range,
 * PGC_ERR_NOMEM. The caller owns *out (pgc_gateway_destroy). Thread-safe. */
PGC_EXPORT pgc_status pgc_gateway_create(const pgc_gateway_options *o, const pgc_resolver *resolver,
                                         pgc_gateway **out, char *err, size_t err_len);
/* Listens on `addr` ("127.0.0.1:10000"; port 0 picks one, written to *bound_port when not
 * NULL) and starts serving on threads of its own; returns at once. PGC_ERR_CONFIG when
 * the address cannot be bound or the TLS files do not check out (a key that is not its
 * certificate's), PGC_ERR_IO when one is unreadable, PGC_ERR_STATE when already serving. Not
 * thread-safe: one thread at a time calls serve, stop and destroy on a gateway. */
PGC_EXPORT pgc_status pgc_gateway_serve(pgc_gateway *gw, const char *addr, int *bound_port,
                                        char *err, size_t err_len);
/* Graceful stop: refuses new streams, lets acks in flight land for up to grace_ms, ends
 * every stream with UNAVAILABLE (unacked changes go to the retry stream for the next one)
 * and waits for them. NULL or a gateway not serving is a no-op. Not thread-safe (as
 * serve) and not async-signal-safe: call it from a normal thread. */
PGC_EXPORT void pgc_gateway_stop(pgc_gateway *gw, int grace_ms);
/* Stops (grace 0) if serving, then frees. NULL is a no-op. Not thread-safe (as serve). */
PGC_EXPORT void pgc_gateway_destroy(pgc_gateway *gw);

/* ---- pgc_uri_target (for resolvers) ----
 * Each setter copies `value` into the target, replacing what was set; "" resets it to its
 * default. PGC_ERR_INVALID for a NULL argument, PGC_ERR_TOO_LARGE (with a message) for a
 * value that does not fit its limit above. Only during the resolve call that received the
 * target, from its thread; distinct targets are independent. */

/* The agent's --name: stream PGCAPTURE_<source>, subject pgcapture.<source>.log. Required. */
PGC_EXPORT pgc_status pgc_uri_target_set_source(pgc_uri_target *t, const char *value, char *err,
                                                size_t err_len);
/* The URI's durable consumer; default: derived from the URI. Also names the retry subject
 * pgcapture.<source>.retry.<durable>. */
PGC_EXPORT pgc_status pgc_uri_target_set_durable(pgc_uri_target *t, const char *value, char *err,
                                                 size_t err_len);
/* NATS URL(s) of the source's stream; default: the gateway's nats_url. */
PGC_EXPORT pgc_status pgc_uri_target_set_nats_url(pgc_uri_target *t, const char *value, char *err,
                                                  size_t err_len);
/* libpq conninfo of a replica to dump from; default: none (no dumps for this URI). */
PGC_EXPORT pgc_status pgc_uri_target_set_replica(pgc_uri_target *t, const char *value, char *err,
                                                 size_t err_len);
/* The schemas dumps of this URI may read: names separated by commas, or "*" for every
 * schema; default: every schema but pg_catalog, information_schema, pgcapture and the
 * other pg_* ones. A dump item of another schema is dropped (acked to the controller,
 * nothing sent) with a warning. PGC_ERR_INVALID for an empty name in the list. */
PGC_EXPORT pgc_status pgc_uri_target_set_dump_schemas(pgc_uri_target *t, const char *value,
                                                      char *err, size_t err_len);

/* ---- pgc_peer (for resolvers) ----
 * Only during the resolve call that received the peer, from its thread. */

/* The identities of a client certificate the gateway verified (mutual TLS): its subject
 * CN, then its subject alternative names; 0 without one. */
PGC_EXPORT size_t pgc_peer_get_identity_count(const pgc_peer *p);
/* The i-th identity (NUL-terminated), NULL past the count. */
PGC_EXPORT const char *pgc_peer_get_identity(const pgc_peer *p, size_t i);
/* The stream's bearer token ("authorization: Bearer <token>"), NULL without one. Compare
 * it in constant time and never log it. */
PGC_EXPORT const char *pgc_peer_get_token(const pgc_peer *p);
/* The peer's address as gRPC names it ("ipv4:10.0.0.5:51234"), for log lines. */
PGC_EXPORT const char *pgc_peer_get_address(const pgc_peer *p);

/* ---- pgc_resolver_file: the config-file resolver of `pgcapture gateway` ---- */

/* Loads an INI file, one section per URI:
 *     [my-consumer-uri]
 *     source       = main                   # required
 *     nats_url     = nats://127.0.0.1:4222  # optional
 *     durable      = my_consumer            # optional
 *     replica      = host=... dbname=...    # optional (dumps)
 *     dump_schemas = public, sales          # optional (default: no catalogs)
 *     capture      = alice, sha256:<hex>    # who may capture it (repeatable)
 * `capture` lists client certificate identities (subject CN or a SAN), tokens as
 * "sha256:" and the hex SHA-256 of the token (`pgcapture hash-token`), or "*" (anyone).
 * A URI without `capture` is open to every client. Once any URI has a `capture` list, a
 * client refused for a URI, or asking for one the file does not have, gets
 * UNAUTHENTICATED when it presented no certificate and no token the file knows, else
 * PERMISSION_DENIED: the answer never tells whether the URI exists.
 * Lines starting with '#' or ';' are comments. Fills *out with a resolver that is
 * thread-safe (it only reads the loaded table); free it with pgc_resolver_file_free.
 * PGC_ERR_IO when unreadable, PGC_ERR_CONFIG with the line number for anything malformed
 * (unknown key, duplicate URI, missing source, bad name, bad token hash), PGC_ERR_NOMEM.
 * Thread-safe. */
PGC_EXPORT pgc_status pgc_resolver_file_load(const char *path, pgc_resolver *out, char *err,
                                             size_t err_len);
/* Frees what pgc_resolver_file_load loaded; NULL is a no-op. Not while a gateway uses the
 * resolver. */
PGC_EXPORT void pgc_resolver_file_free(pgc_resolver *r);

/* ==== 6. Callbacks ====================================================================== */

/* Resolves a URI for a peer: `resolve` decides whether `peer` may capture `uri`, sets the
 * target through pgc_uri_target_set_* and returns PGC_OK; PGC_ERR_UNAUTHENTICATED (the
 * stream ends with UNAUTHENTICATED) when the peer brought no credentials it accepts,
 * PGC_ERR_PERMISSION (PERMISSION_DENIED) when they do not grant this URI,
 * PGC_ERR_NOT_FOUND (NOT_FOUND) for a URI it does not know, or another status
 * (UNAVAILABLE, with the message in err). A resolver that checks peers should answer an
 * unknown URI as it answers a forbidden one, so that the status does not tell which URIs
 * exist. Called from the streams' own threads, possibly concurrently: it must be
 * thread-safe; it may block briefly (it delays only the stream being opened). */
struct pgc_resolver {
    void *arg; /* passed to resolve as is */
    pgc_status (*resolve)(void *arg, const char *uri, const pgc_peer *peer, pgc_uri_target *out,
                          char *err, size_t err_len);
};

#ifdef __cplusplus
}
#endif

#endif
