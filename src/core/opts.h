/* Command-line options from one table per command: the same table drives parsing,
 * --help and the sample config. Precedence: defaults < config file (`key = value`, like
 * postgresql.conf, given with --config) < PGCAPTURE_<NAME> environment < command line.
 * Units are part of values: durations "30s", "250ms", "2min"; sizes "64kB", "1MB". */
#ifndef PGC_CORE_OPTS_H
#define PGC_CORE_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum opt_type {
    OPT_STRING,      /* char *, owned by the config struct (opts_free releases it) */
    OPT_INT,         /* int64_t */
    OPT_BOOL,        /* bool: true/false/on/off/1/0; a bare --flag means true */
    OPT_DURATION_MS, /* int64_t milliseconds */
    OPT_BYTES,       /* int64_t bytes */
} opt_type;

typedef struct opt_spec {
    const char *name; /* flag name without dashes, e.g. "nats-url" */
    opt_type type;
    const char *def;  /* default in the flag's own syntax, or NULL for none */
    const char *help; /* one line */
    size_t offset;    /* offset of the field in the command's config struct */
    bool secret;      /* a password or a conninfo that may hold one: --help and
                         --print-config mask it, and it is never logged */
} opt_spec;

/* Parses defaults, the config file, the environment and argv into `cfg`. Returns 0 on
 * success, 1 when --help was asked (nothing else parsed), 2 when everything parsed and
 * --print-config was asked, or a negative status with a message in err. Positional arguments are
 * refused unless `positional` is non-NULL, in which case they are stored there (borrowed from argv)
 * up to `max_positional`. */
int opts_parse(const opt_spec *specs, size_t n, void *cfg, int argc, char **argv,
               const char **positional, int max_positional, int *n_positional, char *err,
               size_t err_len);
/* Prints the effective configuration as config-file lines, each with the layer its value
 * came from (default, config file and line, environment variable, command line) and
 * secrets masked. Parses into `cfg` again on the way (free it after). Returns 0 or a
 * negative status with err. */
int opts_print_config(FILE *out, const char *command, const opt_spec *specs, size_t n, void *cfg,
                      int argc, char **argv, char *err, size_t err_len);
void opts_free(const opt_spec *specs, size_t n, void *cfg);
void opts_print_help(FILE *out, const char *usage, const char *summary, const opt_spec *specs,
                     size_t n);

/* Value parsers, also used by other modules. Return 0 or a negative status. */
int opts_parse_duration_ms(const char *s, int64_t *out_ms);
int opts_parse_bytes(const char *s, int64_t *out_bytes);
int opts_parse_bool(const char *s, bool *out);

#endif
