/* How this process reaches NATS: the server list (jsurl.h), TLS (a CA, a client
 * certificate and key) and credentials (a .creds file, an NKey and its seed file, a user
 * and password, or a token), set once at start-up from the role's flags and applied by
 * the one function every NATS connection of the process is made with. Passwords and
 * tokens come from files or the environment, never from the command line; none of them
 * appears in an error message.
 *
 * Threading: jsauth_configure before any connection, from one thread; jsauth_connect from
 * any thread after. */
#ifndef PGC_JETSTREAM_JSAUTH_H
#define PGC_JETSTREAM_JSAUTH_H

#include <nats/nats.h>
#include <stddef.h>

/* The flags, as option tables fill them (empty or NULL: not given). */
typedef struct jsauth_config {
    char *tls_ca;   /* PEM CA file: connect with TLS, the server verified */
    char *tls_cert; /* PEM client certificate (with tls_key): mutual TLS */
    char *tls_key;
    char *creds_file;     /* a NATS .creds file (user JWT and NKey seed) */
    char *nkey;           /* an NKey user's public key... */
    char *nkey_seed_file; /* ...and the file of its seed */
    char *user;           /* user name, with the password of password_file */
    char *password_file;  /* default: the environment's PGCAPTURE_NATS_PASSWORD */
    char *token_file;     /* default: the environment's PGCAPTURE_NATS_TOKEN */
} jsauth_config;

/* Checks and keeps (copies) the settings for every later connection: files readable,
 * one kind of credentials at most, a password only with a user. PGC_ERR_CONFIG or
 * PGC_ERR_IO with a message naming the flag or file. */
int jsauth_configure(const jsauth_config *c, char *err, size_t err_len);

/* Sets the server list of `urls` and the configured TLS and credentials on `opts` (the
 * caller's, with its own timeouts and callbacks), then connects. Returns libnats' status;
 * jsauth_error turns a failure into ours. */
natsStatus jsauth_connect(natsConnection **nc, natsOptions *opts, const char *urls);

/* Fills err for a failed jsauth_connect and returns PGC_ERR_PERMISSION when NATS refused
 * the credentials (not worth a retry: say so and stop), PGC_ERR_CONFIG for options it
 * refused, else PGC_ERR_CONN. */
int jsauth_error(char *err, size_t err_len, const char *urls, natsStatus ns);

#endif
