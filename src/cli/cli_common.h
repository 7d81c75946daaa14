/* Scaffolding every subcommand shares: parse its flag table (printing --help), check
 * --log-level and --name, report a usage error the same way, and route SIGINT/SIGTERM to a
 * stop. */
#ifndef PGC_CLI_COMMON_H
#define PGC_CLI_COMMON_H

#include "core/metrics_http.h"
#include "core/opts.h"

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

/* Installs handler for SIGINT and SIGTERM and ignores SIGPIPE. */
void cli_on_stop_signals(void (*handler)(int));

#endif
