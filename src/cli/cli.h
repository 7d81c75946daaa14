/* Scaffolding every subcommand shares: parse its flag table (printing --help), check
 * --log-level and --name, report a usage error the same way, and route SIGINT/SIGTERM to a
 * stop. */
#ifndef PGC_CLI_CLI_H
#define PGC_CLI_CLI_H

#include "core/metrics_http.h"
#include "core/opts.h"
#include "jetstream/jsauth.h"
#include "roles/controller/controller_client.h"
#include "rpc/client.h"

#include <stddef.h>

typedef struct cli_spec {
    const char *name; /* as typed after `pgcapture`, e.g. "replica init" */
    const opt_spec *opts;
    size_t n_opts;
    const char *usage;   /* first line(s) of --help */
    const char *summary; /* paragraph under it */
} cli_spec;

/* Parses argv into cfg (zeroed by the caller). Returns 0 parsed, 1 when --help or
 * --print-config was printed (cfg already freed), or a negative status with the message in
 * err. */
int cli_parse(const cli_spec *cmd, void *cfg, int argc, char **argv, char *err, size_t err_len);

/* Checks --log-level and --log-format (NULL: info, text) and applies them. Returns 0, or -1
 * with the message in err. */
int cli_logging(const char *level, const char *format, char *err, size_t err_len);

/* Serves /metrics, /healthz and /readyz on --metrics-listen `addr` unless it is NULL or
 * empty (*out is NULL then), with pgcapture_build_info{role}. Returns 0, or -1 after
 * logging why. */
int cli_metrics_start(const char *role, const char *addr, metrics_http **out);

/* Checks a --name value against the naming contract (core/names.h). Returns 0, or -1
 * with the message in err. */
int cli_source_name(const char *name, char *err, size_t err_len);

/* Prints "pgcapture NAME: ERR" and the --help hint to stderr, frees cfg's options and
 * returns the usage exit code 2. */
int cli_usage_error(const cli_spec *cmd, void *cfg, const char *err);

/* Reads a secret (a token, a password) from `file` when not empty, else from the
 * environment variable `env` (NULL: none), never from the command line, where every user
 * of the machine can read it (/proc/PID/cmdline). A file's trailing newline is dropped.
 * *out: malloc'ed (free with textfile_free_secret), or NULL when neither is set. Returns 0,
 * or -1 with a message in err that names the file, never the secret. */
int cli_read_secret(const char *file, const char *env, char **out, char *err, size_t err_len);

/* The flags of a client of our gRPC servers: TLS (a CA, a client certificate and key, the
 * server's expected name) and a bearer token file. CLI_RPC_OPTS(prefix, token_env,
 * cfg, field) makes their table entries ("PREFIXtls-ca", ...); `field` is a cli_rpc_flags in
 * `cfg`, and the token comes from the environment variable token_env without a file. */
typedef struct cli_rpc_flags {
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
    char *tls_server_name;
    char *token_file;
} cli_rpc_flags;

#define CLI_RPC_OPT(n, h, cfg, f)                                                                  \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = "", .help = h, .offset = offsetof(cfg, f)            \
    }
#define CLI_RPC_OPTS(prefix, token_env, cfg, field)                                                \
    CLI_RPC_OPT(prefix "tls-ca",                                                                   \
                "PEM file of the CA(s) that signed the server's certificate: connect with TLS",    \
                cfg, field.tls_ca),                                                                \
        CLI_RPC_OPT(prefix "tls-cert",                                                             \
                    "PEM client certificate (chain) for mutual TLS, with --" prefix "tls-key",     \
                    cfg, field.tls_cert),                                                          \
        CLI_RPC_OPT(prefix "tls-key", "PEM private key of --" prefix "tls-cert", cfg,              \
                    field.tls_key),                                                                \
        CLI_RPC_OPT(prefix "tls-server-name",                                                      \
                    "name the server's certificate must carry (default: the host of the address)", \
                    cfg, field.tls_server_name),                                                   \
        CLI_RPC_OPT(prefix "token-file",                                                           \
                    "file holding a bearer token to send (TLS only; default: $" token_env ")",     \
                    cfg, field.token_file)

/* Fills *o (initialised here) from the flags; the token from the token file, else from the
 * environment variable token_env: *token owns it (free with textfile_free_secret once the
 * channel is made). Returns 0, or -1 with a message in err. */
int cli_rpc_options(const cli_rpc_flags *f, const char *token_env, rpc_channel_options *o,
                    char **token, char *err, size_t err_len);

/* A client of the controller at addr from the flags (the token as cli_rpc_options finds it,
 * with $PGCAPTURE_TOKEN). PGC_OK, or a status with a message in err. */
int cli_controller_client(const cli_rpc_flags *f, const char *addr, int timeout_ms,
                          controller_client **out, char *err, size_t err_len);

/* The NATS flags of every role (jetstream/jsauth.h): TLS and credentials.
 * CLI_NATS_OPTS(cfg, field) makes their table entries; `field` is a jsauth_config in
 * `cfg`. */
#define CLI_NATS_OPT(n, h, cfg, f)                                                                 \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = "", .help = h, .offset = offsetof(cfg, f)            \
    }
#define CLI_NATS_OPTS(cfg, field)                                                                  \
    CLI_NATS_OPT("nats-tls-ca", "PEM CA(s) of the NATS servers' certificates: connect with TLS",   \
                 cfg, field.tls_ca),                                                               \
        CLI_NATS_OPT("nats-tls-cert", "PEM client certificate for NATS (mutual TLS)", cfg,         \
                     field.tls_cert),                                                              \
        CLI_NATS_OPT("nats-tls-key", "PEM private key of --nats-tls-cert", cfg, field.tls_key),    \
        CLI_NATS_OPT("nats-creds", "NATS .creds file (user JWT and NKey seed)", cfg,               \
                     field.creds_file),                                                            \
        CLI_NATS_OPT("nats-nkey", "NATS NKey user public key (with --nats-nkey-seed)", cfg,        \
                     field.nkey),                                                                  \
        CLI_NATS_OPT("nats-nkey-seed", "file holding the seed of --nats-nkey", cfg,                \
                     field.nkey_seed_file),                                                        \
        CLI_NATS_OPT("nats-user", "NATS user name (password: --nats-password-file)", cfg,          \
                     field.user),                                                                  \
        CLI_NATS_OPT("nats-password-file",                                                         \
                     "file holding the NATS password (default: $PGCAPTURE_NATS_PASSWORD)", cfg,    \
                     field.password_file),                                                         \
        CLI_NATS_OPT("nats-token-file",                                                            \
                     "file holding a NATS token (default: $PGCAPTURE_NATS_TOKEN)", cfg,            \
                     field.token_file)

/* Installs handler for SIGINT and SIGTERM and ignores SIGPIPE. */
void cli_on_stop_signals(void (*handler)(int));

#endif
