/* Implementation of the unit-test runner declared in runner.h. */
#include "runner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf case_jmp;
typedef struct deferred {
    void (*fn)(void *);
    void *arg;
} deferred;
static deferred *defers;
static int n_defers, cap_defers;

void unit_defer(void (*fn)(void *), void *arg)
{
    if (n_defers == cap_defers) {
        int cap = cap_defers ? cap_defers * 2 : 64;
        deferred *d = realloc(defers, (size_t)cap * sizeof *d);
        if (!d) {
            fn(arg);
            unit_fail(__FILE__, __LINE__, "out of memory for deferred cleanups");
        }
        defers = d;
        cap_defers = cap;
    }
    defers[n_defers].fn = fn;
    defers[n_defers].arg = arg;
    n_defers++;
}

static void run_defers(void)
{
    while (n_defers > 0) {
        n_defers--;
        defers[n_defers].fn(defers[n_defers].arg);
    }
}

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    longjmp(case_jmp, 1);
}

static void hexdump(const char *label, const unsigned char *p, size_t n)
{
    printf("    %s (%zu bytes):", label, n);
    for (size_t i = 0; i < n && i < 64; i++)
        printf(" %02x", p[i]);
    printf("%s\n", n > 64 ? " ..." : "");
}

void unit_expect_mem(const char *file, int line, const char *what, const void *exp, size_t exp_len,
                     const void *got, size_t got_len)
{
    if (exp_len == got_len && (exp_len == 0 || memcmp(exp, got, exp_len) == 0))
        return;
    size_t first = 0;
    while (first < exp_len && first < got_len &&
           ((const unsigned char *)exp)[first] == ((const unsigned char *)got)[first])
        first++;
    printf("  %s:%d: %s: bytes differ (first difference at offset %zu)\n", file, line, what, first);
    hexdump("expected", exp, exp_len);
    hexdump("got", got, got_len);
    fflush(stdout);
    longjmp(case_jmp, 1);
}

/* Runs one case; the setjmp lives here so no caller variable can be clobbered. */
static int run_case(const unit_case *c)
{
    n_defers = 0;
    if (setjmp(case_jmp) == 0) {
        c->fn();
        run_defers();
        printf("PASS %s\n", c->name);
        return 1;
    }
    run_defers();
    printf("FAIL %s\n", c->name);
    return 0;
}

int unit_run(const char *module, const unit_case *cases, size_t n, int argc, char **argv)
{
    /* Optional filter: a substring of the case name, from argv[1] or UNIT_FILTER. */
    const char *filter = argc > 1 ? argv[1] : getenv("UNIT_FILTER");
    int passed = 0, failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++) {
        if (filter && *filter && !strstr(cases[i].name, filter))
            continue;
        if (run_case(&cases[i]))
            passed++;
        else
            failed++;
    }
    free(defers);
    defers = NULL;
    cap_defers = 0;
    printf("# %s: %d passed, %d failed\n", module, passed, failed);
    return failed ? 1 : 0;
}
