/* libpgcapture.so is built with -fvisibility=hidden: its dynamic symbol table holds the
 * pgc_ functions that include/pgcapture.h marks PGC_EXPORT and nothing else (no codec,
 * rpc or protobuf-c internals a user could bind to by accident). Reads the .so built
 * beside this test binary with nm; runs from the repository root (for the header). */
#include "harness/runner.h"

#include <libgen.h>
#include <limits.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SYMS 512

typedef struct symbols {
    char *names[MAX_SYMS];
    size_t n;
} symbols;

static void free_symbols(void *arg)
{
    symbols *s = arg;
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s);
}

static symbols *new_symbols(void)
{
    symbols *s = calloc(1, sizeof *s);
    if (!s)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(free_symbols, s);
    return s;
}

static void add_symbol(symbols *s, const char *name)
{
    if (s->n == MAX_SYMS)
        unit_fail(__FILE__, __LINE__, "more than %d symbols", MAX_SYMS);
    if (!(s->names[s->n] = strdup(name)))
        unit_fail(__FILE__, __LINE__, "out of memory");
    s->n++;
}

static bool has_symbol(const symbols *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

/* build/<variant>/libpgcapture.so, from this binary's build/<variant>/tests/unit/. */
static void library_path(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        unit_fail(__FILE__, __LINE__, "cannot read /proc/self/exe");
    exe[n] = '\0';
    char *dir = dirname(dirname(dirname(exe)));
    snprintf(out, len, "%s/libpgcapture.so", dir);
    if (access(out, R_OK) != 0)
        unit_fail(__FILE__, __LINE__, "%s is missing: build it with make lib", out);
}

/* The defined dynamic symbols of the .so (nm -D --defined-only: "ADDR TYPE NAME"). */
static symbols *exported_symbols(void)
{
    char so[PATH_MAX + 32], cmd[PATH_MAX + 64], line[512];
    library_path(so, sizeof so);
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", so);
    FILE *p = popen(cmd, "r");
    if (!p)
        unit_fail(__FILE__, __LINE__, "cannot run %s", cmd);
    symbols *s = new_symbols();
    while (fgets(line, sizeof line, p)) {
        char addr[64], type[8], name[400];
        if (sscanf(line, "%63s %7s %399s", addr, type, name) == 3)
            add_symbol(s, name);
    }
    int rc = pclose(p);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s exited with status %d", cmd, rc);
    return s;
}

static void test_shared_library_exports_only_pgc_symbols(void)
{
    symbols *s = exported_symbols();
    if (s->n == 0)
        unit_fail(__FILE__, __LINE__, "libpgcapture.so exports nothing");
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->names[i], "pgc_", 4) != 0)
            unit_fail(__FILE__, __LINE__, "libpgcapture.so exports %s: expected only pgc_ symbols",
                      s->names[i]);
}

/* Every function the header marks PGC_EXPORT, except the gateway embedding (which needs
 * the daemons' code and lives only in the internal archive), is in the .so. */
static void test_shared_library_exports_every_consumer_function_of_the_header(void)
{
    symbols *s = exported_symbols();
    FILE *h = fopen("include/pgcapture.h", "r");
    if (!h)
        unit_fail(__FILE__, __LINE__, "cannot open include/pgcapture.h (run from the repo root)");
    regex_t re;
    if (regcomp(&re, "^PGC_EXPORT [^(]*[ *](pgc_[a-z0-9_]+)\\(", REG_EXTENDED) != 0) {
        fclose(h);
        unit_fail(__FILE__, __LINE__, "regcomp");
    }
    char line[512], missing[512] = "";
    int declared = 0;
    while (fgets(line, sizeof line, h)) {
        regmatch_t m[2];
        if (regexec(&re, line, 2, m, 0) != 0)
            continue;
        line[m[1].rm_eo] = '\0';
        const char *name = line + m[1].rm_so;
        if (strncmp(name, "pgc_gateway_", 12) == 0 || strncmp(name, "pgc_resolver_", 13) == 0)
            continue;
        declared++;
        if (!has_symbol(s, name) && strlen(missing) + strlen(name) + 2 < sizeof missing) {
            strcat(missing, " ");
            strcat(missing, name);
        }
    }
    regfree(&re);
    fclose(h);
    if (declared < 40)
        unit_fail(__FILE__, __LINE__,
                  "expected at least 40 PGC_EXPORT functions in the "
                  "header, found %d",
                  declared);
    if (*missing)
        unit_fail(__FILE__, __LINE__, "declared PGC_EXPORT but not exported by the .so:%s",
                  missing);
}

UNIT_MAIN(UNIT_CASE(test_shared_library_exports_only_pgc_symbols),
          UNIT_CASE(test_shared_library_exports_every_consumer_function_of_the_header))
