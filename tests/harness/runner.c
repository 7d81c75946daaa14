/* Implementation of the unit-test runner declared in runner.h. */
#include "runner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static jmp_buf case_jmp;
static char skip_reason[512];
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

void unit_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    longjmp(case_jmp, 2);
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

/* Runs one case: 1 passed, 0 failed, -1 skipped. The setjmp lives here so no caller
 * variable can be clobbered. */
static int run_case(const unit_case *c)
{
    n_defers = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int jumped = setjmp(case_jmp);
    if (jumped == 0) {
        c->fn();
        run_defers();
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("PASS %s (%ld ms)\n", c->name,
               (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
        return 1;
    }
    run_defers();
    if (jumped == 2) {
        printf("SKIP %s: %s\n", c->name, skip_reason);
        return -1;
    }
    printf("FAIL %s\n", c->name);
    return 0;
}

static int excluded(const char *name, const char *list)
{
    while (list && *list) {
        size_t len = strcspn(list, ",");
        if (len > 0 && len < 128) {
            char part[128];
            memcpy(part, list, len);
            part[len] = '\0';
            if (strstr(name, part))
                return 1;
        }
        list += len + (list[len] == ',');
    }
    return 0;
}

int unit_run(const char *module, const unit_case *cases, size_t n, int argc, char **argv)
{
    /* Optional filter: a substring of the case name, from argv[1] or UNIT_FILTER. */
    const char *filter = argc > 1 ? argv[1] : getenv("UNIT_FILTER");
    int passed = 0, failed = 0, skipped = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* UNIT_EXCLUDE: comma-separated parts of case names not to run (nor count). */
    const char *exclude = getenv("UNIT_EXCLUDE");
    for (size_t i = 0; i < n; i++) {
        if (filter && *filter && !strstr(cases[i].name, filter))
            continue;
        if (excluded(cases[i].name, exclude))
            continue;
        int r = run_case(&cases[i]);
        if (r > 0)
            passed++;
        else if (r < 0)
            skipped++;
        else
            failed++;
    }
    free(defers);
    defers = NULL;
    cap_defers = 0;
    printf("# %s: %d passed, %d failed, %d skipped\n", module, passed, failed, skipped);
    return failed ? 1 : 0;
}
