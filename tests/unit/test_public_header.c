/* The installed headers (pgcapture.h, pgcapture/gateway.h) compile alone as C99 and as C++
 * with the compilers' strictest usual warnings, and keep the API's rules: every function
 * is pgc_<noun>_<verb> and none returns a bare int (a status is a pgc_status), every enum
 * value carries its type's name (the status codes PGC_OK / PGC_ERR_* excepted), and no
 * public struct holds a fixed-size char array. Runs from the repository root. */
#include "harness/runner.h"

#include <ctype.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void compile(const char *cmd, const char *header, const char *call)
{
    char full[1024];
    snprintf(full, sizeof full,
             "printf '#include <%s>\\nint main(void) { return %s == 0; }\\n' "
             "| %s -Iinclude -fsyntax-only -Wall -Wextra -Werror -pedantic - 2>&1",
             header, call, cmd);
    int rc = system(full);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s failed on include/%s (status %d)", cmd, header, rc);
}

static void test_public_headers_compile_alone_as_c99(void)
{
    compile("gcc -x c -std=c99", "pgcapture.h", "pgc_version_get()");
    compile("gcc -x c -std=c99", "pgcapture/gateway.h", "(int)sizeof(pgc_gateway_options)");
}

static void test_public_headers_compile_alone_as_cxx(void)
{
    compile("g++ -x c++ -std=c++11", "pgcapture.h", "pgc_version_get()");
    compile("g++ -x c++ -std=c++11", "pgcapture/gateway.h", "(int)sizeof(pgc_gateway_options)");
}

static void free_text(void *p)
{
    free(p);
}

/* The header's text with comments blanked out (string literals kept), so that the rules
 * below look at declarations only. */
static char *header_code(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot open %s (run from the repository root)", path);
    char *s = malloc(1 << 20);
    size_t n = s ? fread(s, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!s)
        unit_fail(__FILE__, __LINE__, "out of memory");
    s[n] = '\0';
    unit_defer(free_text, s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (s[i] == '/' && s[i + 1] == '*') {
            for (; i < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
                if (s[i] != '\n')
                    s[i] = ' ';
            if (i < n)
                s[i] = s[i + 1] = ' ';
        } else if (s[i] == '/' && s[i + 1] == '/') {
            for (; i < n && s[i] != '\n'; i++)
                s[i] = ' ';
        }
    }
    return s;
}

static regex_t *compile_regex(const char *pattern)
{
    regex_t *re = malloc(sizeof *re);
    if (!re || regcomp(re, pattern, REG_EXTENDED) != 0)
        unit_fail(__FILE__, __LINE__, "regcomp %s", pattern);
    return re;
}

static void free_regex(regex_t *re)
{
    regfree(re);
    free(re);
}

static char *trimmed(char *s, size_t len)
{
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    s[len] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* Each PGC_EXPORT function: pgc_<noun>_<verb...>, and not declared to return int. Returns
 * how many were declared. */
static int check_functions(const char *path, const char *code)
{
    regex_t *re = compile_regex("PGC_EXPORT[[:space:]]+([^;(]*[^a-z0-9_])(pgc_[a-z0-9_]+)[[:space:]"
                                "]*\\(");
    regex_t *name_re = compile_regex("^pgc_[a-z0-9]+_[a-z0-9_]*[a-z0-9]$");
    char bad[1024] = "";
    int n = 0;
    regmatch_t m[3];
    for (const char *p = code; regexec(re, p, 3, m, 0) == 0; p += m[0].rm_eo, n++) {
        char ret[128], name[128];
        snprintf(ret, sizeof ret, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        snprintf(name, sizeof name, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
        const char *r = trimmed(ret, strlen(ret));
        if (strcmp(r, "int") == 0 || regexec(name_re, name, 0, NULL, 0) != 0) {
            size_t used = strlen(bad);
            snprintf(bad + used, sizeof bad - used, " %s %s", r, name);
        }
    }
    free_regex(re);
    free_regex(name_re);
    if (*bad)
        unit_fail(__FILE__, __LINE__,
                  "%s: expected pgc_<noun>_<verb> functions returning pgc_status, not int; "
                  "got:%s",
                  path, bad);
    return n;
}

/* Each `typedef enum pgc_<type> {...}`: every PGC_ name in it starts PGC_<TYPE>_. */
static int check_enums(const char *path, const char *code)
{
    regex_t *re = compile_regex("typedef[[:space:]]+enum[[:space:]]+pgc_([a-z0-9_]+)[[:space:]]*"
                                "\\{([^}]*)\\}");
    regex_t *value_re = compile_regex("PGC_[A-Z0-9_]*");
    char bad[1024] = "";
    int n = 0;
    regmatch_t m[3];
    for (const char *p = code; regexec(re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char type[64], prefix[80];
        snprintf(type, sizeof type, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        if (strcmp(type, "status") == 0)
            continue; /* PGC_OK and PGC_ERR_*, from PGC_STATUS_TABLE */
        n++;
        size_t k = 0;
        k += (size_t)snprintf(prefix, sizeof prefix, "PGC_");
        for (const char *t = type; *t && k + 2 < sizeof prefix; t++)
            prefix[k++] = (char)toupper((unsigned char)*t);
        prefix[k++] = '_';
        prefix[k] = '\0';
        const char *body = p + m[2].rm_so, *end = p + m[2].rm_eo;
        regmatch_t v;
        while (body < end && regexec(value_re, body, 1, &v, 0) == 0 && body + v.rm_so < end) {
            const char *value = body + v.rm_so;
            size_t len = (size_t)(v.rm_eo - v.rm_so);
            if (len <= k || strncmp(value, prefix, k) != 0) {
                size_t used = strlen(bad);
                snprintf(bad + used, sizeof bad - used, " %.*s (pgc_%s)", (int)len, value, type);
            }
            body += v.rm_eo;
        }
    }
    free_regex(re);
    free_regex(value_re);
    if (*bad)
        unit_fail(__FILE__, __LINE__,
                  "%s: expected enum values named PGC_<TYPE>_<NAME> after their type; got:%s", path,
                  bad);
    return n;
}

/* No `char name[N]` inside a public struct. */
static void check_structs(const char *path, const char *code)
{
    regex_t *re = compile_regex("struct[[:space:]]+pgc_([a-z0-9_]+)[[:space:]]*\\{([^}]*)\\}");
    regex_t *array_re =
        compile_regex("(^|[^a-z0-9_])char[[:space:]]+[a-z_][a-z0-9_]*[[:space:]]*\\[");
    regmatch_t m[3];
    for (const char *p = code; regexec(re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char body[4096];
        snprintf(body, sizeof body, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
        if (regexec(array_re, body, 0, NULL, 0) == 0) {
            free_regex(re);
            free_regex(array_re);
            unit_fail(__FILE__, __LINE__, "%s: struct pgc_%.*s holds a fixed-size char array", path,
                      (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        }
    }
    free_regex(re);
    free_regex(array_re);
}

static void test_public_headers_name_functions_and_enum_values_by_their_object(void)
{
    const char *path = "include/pgcapture.h";
    char *code = header_code(path);
    int functions = check_functions(path, code);
    int enums = check_enums(path, code);
    if (functions < 40 || enums < 5)
        unit_fail(__FILE__, __LINE__,
                  "%s: expected at least 40 functions and 5 enums, found %d, %d", path, functions,
                  enums);
    path = "include/pgcapture/gateway.h";
    code = header_code(path);
    functions = check_functions(path, code);
    check_enums(path, code);
    if (functions < 10)
        unit_fail(__FILE__, __LINE__, "%s: expected at least 10 functions, found %d", path,
                  functions);
}

static void test_public_headers_structs_hold_no_fixed_size_strings(void)
{
    check_structs("include/pgcapture.h", header_code("include/pgcapture.h"));
    check_structs("include/pgcapture/gateway.h", header_code("include/pgcapture/gateway.h"));
}

UNIT_MAIN(UNIT_CASE(test_public_headers_compile_alone_as_c99),
          UNIT_CASE(test_public_headers_compile_alone_as_cxx),
          UNIT_CASE(test_public_headers_name_functions_and_enum_values_by_their_object),
          UNIT_CASE(test_public_headers_structs_hold_no_fixed_size_strings))
