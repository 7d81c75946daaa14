/* Scaffolding every subcommand shares: parse its flag table (printing --help), check
 * --log-level, report a usage error the same way, and route SIGINT/SIGTERM to a stop. */
#ifndef PGC_CLI_COMMON_H
#define PGC_CLI_COMMON_H

#include "core/opts.h"

#include <stddef.h>

typedef struct cli_spec {
    const char *name; /* as typed after `pgcapture`, e.g. "replica init" */
    const opt_spec *opts;
    size_t n_opts;
    const char *usage;   /* first line(s) of --help */
    const char *summary; /* paragraph under it */
} cli_spec;

/* Parses argv into cfg (zeroed by the caller). Returns 0 parsed, 1 when --help was printed (cfg
 * already freed), or a negative status with the message in err. */
int cli_parse(const cli_spec *cmd, void *cfg, int argc, char **argv, char *err, size_t err_len);

/* Parses a --log-level value (NULL: info) into *level. Returns 0, or -1 with the message
 * in err. */
int cli_log_level(const char *s, int *level, char *err, size_t err_len);

/* Prints "pgcapture NAME: ERR" and the --help hint to stderr, frees cfg's options and
 * returns the usage exit code 2. */
int cli_usage_error(const cli_spec *cmd, void *cfg, const char *err);

/* Installs handler for SIGINT and SIGTERM and ignores SIGPIPE. */
void cli_on_stop_signals(void (*handler)(int));

#endif
