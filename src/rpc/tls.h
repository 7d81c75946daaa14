/* TLS for our gRPC servers and clients with gRPC core's own SSL credentials. PEM files are
 * checked when read (a key that does not match its certificate is refused by name, not
 * left to fail at the first handshake). The server's files are looked at again on every
 * new connection: rotated certificates (or a new client CA) apply to the next handshake,
 * and connections already up keep their streams.
 *
 * Threading: gRPC calls the server's certificate fetcher from its own threads; the
 * rpc_tls_server state is locked inside. */
#ifndef PGC_RPC_TLS_H
#define PGC_RPC_TLS_H

#include <grpc/grpc_security.h>
#include <stdbool.h>
#include <stddef.h>

#define RPC_TLS_MAX_PEM_BYTES (1024 * 1024)

typedef struct rpc_tls_server rpc_tls_server;

/* Reads and checks the server certificate chain and key (PEM), and the client CA when
 * given: then every client must present a certificate signed by it (mutual TLS).
 * PGC_ERR_IO for an unreadable file, PGC_ERR_CONFIG for bad PEM or a key that does not
 * match the certificate; the message names the file. */
int rpc_tls_server_create(const char *cert_file, const char *key_file, const char *client_ca_file,
                          rpc_tls_server **out, char *err, size_t err_len);
/* New server credentials that fetch the current files on each handshake (caller
 * releases them; `t` must outlive the server they are used on). */
grpc_server_credentials *rpc_tls_server_credentials(rpc_tls_server *t);
/* How many times changed files were loaded after the first time. */
unsigned rpc_tls_server_reloads(rpc_tls_server *t);
void rpc_tls_server_destroy(rpc_tls_server *t); /* NULL is a no-op */

/* Channel credentials: server verified against the PEM CAs in ca_file (NULL: the
 * system's roots), and a client certificate chain and key for mutual TLS (both or
 * neither). `token`, when not NULL, is sent as "authorization: Bearer <token>" on every
 * call, and only ever over TLS (gRPC refuses call credentials on a plaintext channel).
 * Caller releases the credentials. */
int rpc_tls_client_credentials(const char *ca_file, const char *cert_file, const char *key_file,
                               const char *token, grpc_channel_credentials **out, char *err,
                               size_t err_len);

#endif
