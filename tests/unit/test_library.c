/* Both installed libraries are built with -fvisibility=hidden: the dynamic symbol table of
 * libpgcapture.so holds exactly the functions include/pgcapture.h declares PGC_EXPORT, and
 * that of libpgcapture-gateway.so exactly those of include/pgcapture/gateway.h (no codec,
 * rpc or protobuf-c internals a user could bind to by accident, and no declared function
 * missing). Reads the .so files built beside this test binary with nm; runs from the
 * repository root (for the headers). */
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

/* build/<variant>/NAME, from this binary's build/<variant>/tests/unit/. */
static void library_path(const char *name, char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        unit_fail(__FILE__, __LINE__, "cannot read /proc/self/exe");
    exe[n] = '\0';
    char *dir = dirname(dirname(dirname(exe)));
    snprintf(out, len, "%s/%s", dir, name);
    if (access(out, R_OK) != 0)
        unit_fail(__FILE__, __LINE__, "%s is missing: build it with make lib", out);
}

/* The defined dynamic symbols of a .so (nm -D --defined-only: "ADDR TYPE NAME"). */
static symbols *exported_symbols(const char *name)
{
    char so[PATH_MAX + 32], cmd[PATH_MAX + 64], line[512];
    library_path(name, so, sizeof so);
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", so);
    FILE *p = popen(cmd, "r");
    if (!p)
        unit_fail(__FILE__, __LINE__, "cannot run %s", cmd);
    symbols *s = new_symbols();
    while (fgets(line, sizeof line, p)) {
        char addr[64], type[8], sym[400];
        if (sscanf(line, "%63s %7s %399s", addr, type, sym) == 3)
            add_symbol(s, sym);
    }
    int rc = pclose(p);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s exited with status %d", cmd, rc);
    if (s->n == 0)
        unit_fail(__FILE__, __LINE__, "%s exports nothing", name);
    return s;
}

/* The functions a header declares PGC_EXPORT (clang-format keeps the name on the line of
 * PGC_EXPORT). */
static symbols *declared_functions(const char *header)
{
    FILE *h = fopen(header, "r");
    if (!h)
        unit_fail(__FILE__, __LINE__, "cannot open %s (run from the repo root)", header);
    regex_t re;
    if (regcomp(&re, "^PGC_EXPORT [^(]*[ *](pgc_[a-z0-9_]+)\\(", REG_EXTENDED) != 0) {
        fclose(h);
        unit_fail(__FILE__, __LINE__, "regcomp");
    }
    symbols *s = new_symbols();
    char line[512];
    while (fgets(line, sizeof line, h)) {
        regmatch_t m[2];
        if (regexec(&re, line, 2, m, 0) != 0)
            continue;
        line[m[1].rm_eo] = '\0';
        if (s->n < MAX_SYMS)
            add_symbol(s, line + m[1].rm_so);
    }
    regfree(&re);
    fclose(h);
    return s;
}

/* Names in `a` that are not in `b`, space-separated (empty when none). */
static void difference(const symbols *a, const symbols *b, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < a->n; i++)
        if (!has_symbol(b, a->names[i]) && strlen(out) + strlen(a->names[i]) + 2 < len) {
            strcat(out, " ");
            strcat(out, a->names[i]);
        }
}

static void expect_exports_match_header(const char *library, const char *header, size_t at_least)
{
    symbols *exported = exported_symbols(library);
    symbols *declared = declared_functions(header);
    char extra[1024], missing[1024];
    difference(exported, declared, extra, sizeof extra);
    difference(declared, exported, missing, sizeof missing);
    if (declared->n < at_least)
        unit_fail(__FILE__, __LINE__, "expected at least %zu PGC_EXPORT functions in %s, found %zu",
                  at_least, header, declared->n);
    if (*extra)
        unit_fail(__FILE__, __LINE__, "%s exports what %s does not declare:%s", library, header,
                  extra);
    if (*missing)
        unit_fail(__FILE__, __LINE__, "%s declares what %s does not export:%s", header, library,
                  missing);
}

static void test_consumer_library_exports_exactly_its_header(void)
{
    expect_exports_match_header("libpgcapture.so", "include/pgcapture.h", 40);
}

static void test_gateway_library_exports_exactly_its_header(void)
{
    expect_exports_match_header("libpgcapture-gateway.so", "include/pgcapture/gateway.h", 10);
}

static void test_libraries_export_only_pgc_symbols(void)
{
    const char *libraries[] = {"libpgcapture.so", "libpgcapture-gateway.so"};
    for (size_t l = 0; l < 2; l++) {
        symbols *s = exported_symbols(libraries[l]);
        for (size_t i = 0; i < s->n; i++)
            if (strncmp(s->names[i], "pgc_", 4) != 0)
                unit_fail(__FILE__, __LINE__, "%s exports %s: expected only pgc_ symbols",
                          libraries[l], s->names[i]);
    }
}

UNIT_MAIN(UNIT_CASE(test_libraries_export_only_pgc_symbols),
          UNIT_CASE(test_consumer_library_exports_exactly_its_header),
          UNIT_CASE(test_gateway_library_exports_exactly_its_header))
