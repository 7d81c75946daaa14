/* Option parsing driven by a table of opt_spec (see opts.h). */
#include "core/opts.h"

#include "core/status.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_scaled(const char *s, int64_t *out, const char *const *units,
                        const int64_t *scales, size_t n_units, const char *default_unit)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* !(v >= 0) also refuses "nan", which no comparison below would catch. */
    if (end == s || errno != 0 || !(v >= 0))
        return PGC_ERR_INVALID;
    while (isspace((unsigned char)*end))
        end++;
    const char *unit = *end ? end : default_unit;
    for (size_t i = 0; i < n_units; i++) {
        if (strcasecmp(unit, units[i]) == 0) {
            double r = v * (double)scales[i];
            if (!(r <= 9.2e18))
                return PGC_ERR_INVALID;
            *out = (int64_t)r;
            return PGC_OK;
        }
    }
    return PGC_ERR_INVALID;
}

int opts_parse_duration_ms(const char *s, int64_t *out_ms)
{
    static const char *const units[] = {"ms", "s", "min", "m", "h", "d"};
    static const int64_t scales[] = {1, 1000, 60000, 60000, 3600000, 86400000};
    return parse_scaled(s, out_ms, units, scales, 6, "ms");
}

int opts_parse_bytes(const char *s, int64_t *out_bytes)
{
    static const char *const units[] = {"B", "kB", "KiB", "MB", "MiB", "GB", "GiB", "TB"};
    static const int64_t scales[] = {1,       1024,    1024,       1048576,
                                     1048576, 1 << 30, 1073741824, 1099511627776LL};
    return parse_scaled(s, out_bytes, units, scales, 8, "B");
}

int opts_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "on", "yes", "1"};
    static const char *const no[] = {"false", "off", "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return PGC_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return PGC_OK;
        }
    }
    return PGC_ERR_INVALID;
}

static int set_value(const opt_spec *spec, void *cfg, const char *value, const char *origin,
                     char *err, size_t err_len)
{
    char *field = (char *)cfg + spec->offset;
    int rc = PGC_OK;
    switch (spec->type) {
    case OPT_STRING: {
        char **dst = (char **)(void *)field;
        char *copy = strdup(value);
        if (!copy)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        free(*dst);
        *dst = copy;
        return PGC_OK;
    }
    case OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno)
            rc = PGC_ERR_INVALID;
        else
            *(int64_t *)(void *)field = v;
        break;
    }
    case OPT_BOOL:
        rc = opts_parse_bool(value, (bool *)(void *)field);
        break;
    case OPT_DURATION_MS:
        rc = opts_parse_duration_ms(value, (int64_t *)(void *)field);
        break;
    case OPT_BYTES:
        rc = opts_parse_bytes(value, (int64_t *)(void *)field);
        break;
    }
    if (rc != PGC_OK) {
        static const char *const hints[] = {"a string", "an integer", "true or false",
                                            "a duration like 30s or 250ms",
                                            "a size like 64kB or 1MB"};
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "invalid value for --%s (from %s): expected %s", spec->name, origin,
                          hints[spec->type]);
    }
    return PGC_OK;
}

static const opt_spec *find_spec(const opt_spec *specs, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

static void env_name(const char *flag, char *out, size_t out_len)
{
    size_t j = (size_t)snprintf(out, out_len, "PGCAPTURE_");
    for (const char *p = flag; *p && j + 1 < out_len; p++)
        out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[j] = '\0';
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Where each layer's values go: stored in the config struct (opts_parse) or recorded
 * with their origin (opts_print_config). */
typedef struct opts_sink {
    void *cfg;      /* opts_parse: the config struct */
    char **values;  /* opts_print_config: per spec, the winning value (owned) */
    char **origins; /* and where it came from (owned) */
    const opt_spec *specs;
} opts_sink;

static int sink_put(opts_sink *k, const opt_spec *spec, const char *value, const char *origin,
                    char *err, size_t err_len)
{
    int rc = set_value(spec, k->cfg, value, origin, err, err_len);
    if (rc != PGC_OK || !k->values)
        return rc;
    size_t i = (size_t)(spec - k->specs);
    char *v = strdup(value), *o = strdup(origin);
    if (!v || !o) {
        free(v);
        free(o);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    }
    free(k->values[i]);
    free(k->origins[i]);
    k->values[i] = v;
    k->origins[i] = o;
    return PGC_OK;
}

static int load_config_file(const opt_spec *specs, size_t n, opts_sink *k, const char *path,
                            char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "cannot open config file %s: %s", path,
                          strerror(errno));
    char line[4096];
    int lineno = 0, rc = PGC_OK;
    while (rc == PGC_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "%s:%d: expected key = value", path,
                            lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '\'' && val[vl - 1] == '\'') {
            val[vl - 1] = '\0';
            val++;
        }
        for (char *p = key; *p; p++)
            if (*p == '_')
                *p = '-';
        const opt_spec *spec = find_spec(specs, n, key, strlen(key));
        if (!spec) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "%s:%d: unknown setting \"%s\"", path,
                            lineno, key);
            break;
        }
        char origin[512];
        snprintf(origin, sizeof origin, "config file %s:%d", path, lineno);
        rc = sink_put(k, spec, val, origin, err, err_len);
    }
    fclose(f);
    return rc;
}

/* The four layers in order of precedence, each value handed to the sink. */
static int parse_layers(const opt_spec *specs, size_t n, opts_sink *k, int argc, char **argv,
                        const char **positional, int max_positional, int *n_positional, char *err,
                        size_t err_len)
{
    int rc;
    const char *config_path = getenv("PGCAPTURE_CONFIG");
    if (n_positional)
        *n_positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    for (size_t i = 0; i < n; i++)
        if (specs[i].def &&
            (rc = sink_put(k, &specs[i], specs[i].def, "default", err, err_len)) != PGC_OK)
            return rc;
    if (config_path && *config_path &&
        (rc = load_config_file(specs, n, k, config_path, err, err_len)) != PGC_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char name[128], origin[160];
        env_name(specs[i].name, name, sizeof name);
        snprintf(origin, sizeof origin, "environment %s", name);
        const char *v = getenv(name);
        if (v && (rc = sink_put(k, &specs[i], v, origin, err, err_len)) != PGC_OK)
            return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (!positional || *n_positional >= max_positional)
                return errbuf_set(err, err_len, PGC_ERR_CONFIG, "unexpected argument \"%s\"", arg);
            positional[(*n_positional)++] = arg;
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 6 && strncmp(name, "config", 6) == 0) {
            if (!eq)
                i++;
            continue;
        }
        if (strcmp(name, "print-config") == 0)
            continue;
        const opt_spec *spec = find_spec(specs, n, name, len);
        if (!spec)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "unknown option \"--%.*s\"", (int)len,
                              name);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (spec->type == OPT_BOOL)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "option --%s needs a value",
                              spec->name);
        if ((rc = sink_put(k, spec, value, "command line", err, err_len)) != PGC_OK)
            return rc;
    }
    return PGC_OK;
}

int opts_parse(const opt_spec *specs, size_t n, void *cfg, int argc, char **argv,
               const char **positional, int max_positional, int *n_positional, char *err,
               size_t err_len)
{
    bool print_config = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--print-config") == 0)
            print_config = true;
    }
    opts_sink k = {cfg, NULL, NULL, specs};
    int rc = parse_layers(specs, n, &k, argc, argv, positional, max_positional, n_positional, err,
                          err_len);
    return rc == PGC_OK && print_config ? 2 : rc;
}

/* A value as a config file line takes it: quoted when it has spaces, '#' or quotes at its
 * ends; a secret is masked. */
static void print_value(FILE *out, const opt_spec *spec, const char *v)
{
    if (!v) {
        fputs("''", out);
        return;
    }
    if (spec->secret && *v) {
        fputs("'********'", out);
        return;
    }
    bool quote = !*v || strpbrk(v, " \t#'") != NULL;
    fprintf(out, quote ? "'%s'" : "%s", v);
}

int opts_print_config(FILE *out, const char *command, const opt_spec *specs, size_t n, void *cfg,
                      int argc, char **argv, char *err, size_t err_len)
{
    char **values = calloc(n ? n : 1, sizeof *values);
    char **origins = calloc(n ? n : 1, sizeof *origins);
    int rc = PGC_ERR_NOMEM;
    if (values && origins) {
        opts_sink k = {cfg, values, origins, specs};
        const char *pos[64];
        int n_pos = 0;
        rc = parse_layers(specs, n, &k, argc, argv, pos, 64, &n_pos, err, err_len);
    } else {
        errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    }
    if (rc == PGC_OK) {
        fprintf(out,
                "# pgcapture %s: effective configuration (secrets masked); each line says "
                "where its value came from\n",
                command);
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "%s = ", specs[i].name);
            print_value(out, &specs[i], values[i]);
            fprintf(out, "  # %s\n", origins[i] ? origins[i] : "not set");
        }
    }
    for (size_t i = 0; values && origins && i < n; i++) {
        free(values[i]);
        free(origins[i]);
    }
    free(values);
    free(origins);
    return rc;
}

void opts_free(const opt_spec *specs, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        if (specs[i].type == OPT_STRING) {
            char **p = (char **)(void *)((char *)cfg + specs[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

void opts_print_help(FILE *out, const char *usage, const char *summary, const opt_spec *specs,
                     size_t n)
{
    fprintf(out,
            "usage: %s\n\n%s\n\noptions (environment PGCAPTURE_<NAME> overrides a "
            "--config file; the command line overrides both):\n",
            usage, summary);
    for (size_t i = 0; i < n; i++) {
        char env[128];
        env_name(specs[i].name, env, sizeof env);
        fprintf(out, "  --%-22s %s\n", specs[i].name, specs[i].help);
        if (specs[i].def && *specs[i].def && !specs[i].secret)
            fprintf(out, "  %-24s (default: %s; env %s)\n", "", specs[i].def, env);
        else
            fprintf(out, "  %-24s (env %s)\n", "", env);
    }
    fprintf(out, "  --%-22s %s\n  --%-22s %s\n  --%-22s %s\n", "config FILE",
            "read settings from FILE (key = value lines)", "print-config",
            "print the effective settings and where each comes from (secrets masked), then exit",
            "help", "show this help");
}
