/* A small unit-test runner: each test file is one module with its own main (UNIT_MAIN);
 * each case is named after the behaviour it checks. A failing check prints what it
 * expected and what it got, and ends that case only. Output lines "PASS name",
 * "FAIL name" and "SKIP name: reason" are what tests/run counts. */
#ifndef PGC_TEST_RUNNER_H
#define PGC_TEST_RUNNER_H

#include <stddef.h>
#include <stdint.h>

typedef struct unit_case {
    const char *name;
    void (*fn)(void);
} unit_case;

int unit_run(const char *module, const unit_case *cases, size_t n, int argc, char **argv);

/* Called by the check macros; never returns (jumps out of the running case). */
_Noreturn void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the current case as skipped ("SKIP name: reason"): for a case this setup cannot
 * run (say, a server newer than the local pg_dump). Never returns. */
_Noreturn void unit_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Registers a cleanup run when the current case ends, passed or failed. */
void unit_defer(void (*fn)(void *), void *arg);

void unit_expect_mem(const char *file, int line, const char *what, const void *exp, size_t exp_len,
                     const void *got, size_t got_len);

#define UNIT_CASE(fn)                                                                              \
    {                                                                                              \
#fn, fn                                                                                    \
    }
#define UNIT_MAIN(...)                                                                             \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const unit_case cases[] = {__VA_ARGS__};                                            \
        return unit_run(__FILE__, cases, sizeof cases / sizeof cases[0], argc, argv);              \
    }

#define EXPECT_TRUE(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            unit_fail(__FILE__, __LINE__, "expected %s to hold", #cond);                           \
    } while (0)

#define EXPECT_EQ_INT(exp, got)                                                                    \
    do {                                                                                           \
        long long e_ = (long long)(exp), g_ = (long long)(got);                                    \
        if (e_ != g_)                                                                              \
            unit_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #got, e_, g_);            \
    } while (0)

#define EXPECT_EQ_UINT(exp, got)                                                                   \
    do {                                                                                           \
        unsigned long long e_ = (unsigned long long)(exp), g_ = (unsigned long long)(got);         \
        if (e_ != g_)                                                                              \
            unit_fail(__FILE__, __LINE__, "%s: expected %llu, got %llu", #got, e_, g_);            \
    } while (0)

#define EXPECT_EQ_STR(exp, got)                                                                    \
    do {                                                                                           \
        const char *e_ = (exp), *g_ = (got);                                                       \
        if (!e_ || !g_ || strcmp(e_, g_) != 0)                                                     \
            unit_fail(__FILE__, __LINE__, "%s: expected \"%s\", got \"%s\"", #got,                 \
                      e_ ? e_ : "(null)", g_ ? g_ : "(null)");                                     \
    } while (0)

#define EXPECT_EQ_MEM(exp, exp_len, got, got_len)                                                  \
    unit_expect_mem(__FILE__, __LINE__, #got, (exp), (exp_len), (got), (got_len))

#endif
