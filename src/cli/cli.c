/* Shared subcommand scaffolding: see cli.h. */
#include "cli/cli.h"

#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/textfile.h"
#include "pgcapture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MAX_BYTES 65536

int cli_parse(const cli_spec *cmd, void *cfg, int argc, char **argv, char *err, size_t err_len)
{
    int rc = opts_parse(cmd->opts, cmd->n_opts, cfg, argc, argv, NULL, 0, NULL, err, err_len);
    if (rc == 1)
        opts_print_help(stdout, cmd->usage, cmd->summary, cmd->opts, cmd->n_opts);
    if (rc == 2) {
        rc = opts_print_config(stdout, cmd->name, cmd->opts, cmd->n_opts, cfg, argc, argv, err,
                               err_len);
        if (rc != 0)
            return rc;
        rc = 1;
    }
    if (rc == 1)
        opts_free(cmd->opts, cmd->n_opts, cfg);
    return rc;
}

int cli_logging(const char *level, const char *format, char *err, size_t err_len)
{
    int l = level ? log_level_parse(level) : LOG_LEVEL_INFO;
    int f = format ? log_format_parse(format) : LOG_FORMAT_TEXT;
    if (l < 0) {
        snprintf(err, err_len, "--log-level must be error, warn, info, debug or trace");
        return -1;
    }
    if (f < 0) {
        snprintf(err, err_len, "--log-format must be text or json");
        return -1;
    }
    log_set_level((log_level)l);
    log_set_format((log_format)f);
    return 0;
}

int cli_metrics_start(const char *role, const char *addr, metrics_http **out)
{
    *out = NULL;
    metric_set(metrics_get(METRIC_BUILD_INFO, pgc_version_get(), role), 1);
    if (!addr || !*addr)
        return 0;
    char err[256];
    int port = 0;
    if (metrics_http_start(addr, metrics_default(), out, &port, err, sizeof err) != 0) {
        log_error("cannot serve metrics", "listen=%s error=\"%s\"", addr, err);
        return -1;
    }
    log_info("serving metrics", "listen=%s port=%d paths=/metrics,/healthz,/readyz", addr, port);
    return 0;
}

int cli_usage_error(const cli_spec *cmd, void *cfg, const char *err)
{
    fprintf(stderr, "pgcapture %s: %s\nTry: pgcapture %s --help\n", cmd->name, err, cmd->name);
    opts_free(cmd->opts, cmd->n_opts, cfg);
    return 2;
}

void cli_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_source_name(const char *name, char *err, size_t err_len)
{
    if (names_token_valid(name))
        return 0;
    snprintf(err, err_len, "--name must be 1 to %d letters, digits, '_' or '-'",
             NAMES_TOKEN_MAX_LEN);
    return -1;
}

int cli_read_secret(const char *file, const char *env, char **out, char *err, size_t err_len)
{
    *out = NULL;
    if (file && *file) {
        size_t len = 0;
        char *s = NULL;
        if (textfile_read(file, SECRET_MAX_BYTES, &s, &len, err, err_len) != PGC_OK)
            return -1;
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
            s[--len] = '\0';
        if (len == 0 || strlen(s) != len) {
            textfile_free_secret(s);
            snprintf(err, err_len, "%s: empty, or a NUL byte in it", file);
            return -1;
        }
        *out = s;
        return 0;
    }
    const char *v = env ? getenv(env) : NULL;
    if (v && *v && !(*out = strdup(v))) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

int cli_rpc_options(const cli_rpc_flags *f, const char *token_env, rpc_channel_options *o,
                    char **token, char *err, size_t err_len)
{
    rpc_channel_options_init(o);
    o->tls_ca_file = nonempty(f->tls_ca);
    o->tls_cert_file = nonempty(f->tls_cert);
    o->tls_key_file = nonempty(f->tls_key);
    o->tls_server_name = nonempty(f->tls_server_name);
    if (cli_read_secret(f->token_file, token_env, token, err, err_len) != 0)
        return -1;
    o->token = *token;
    return 0;
}

int cli_controller_client(const cli_rpc_flags *f, const char *addr, int timeout_ms,
                          controller_client **out, char *err, size_t err_len)
{
    rpc_channel_options ro;
    char *token = NULL;
    int rc = cli_rpc_options(f, "PGCAPTURE_TOKEN", &ro, &token, err, err_len) == 0
                 ? controller_client_create(addr, &ro, timeout_ms, out, err, err_len)
                 : PGC_ERR_CONFIG;
    textfile_free_secret(token);
    return rc;
}
