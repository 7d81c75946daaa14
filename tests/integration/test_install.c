/* `make install` into a staging DESTDIR gives a usable library: a program built from
 * examples/consumer.c with only `pkg-config --cflags --libs pgcapture` (pointed into the
 * DESTDIR) links against the installed libpgcapture.so, loads it, and runs; `make
 * uninstall` removes every installed file. Runs from the repository root and builds
 * nothing new (the tree is already built by `make`). */
#include "harness/runner.h"

#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const installed[] = {
    "bin/pgcapture",      "lib/libpgcapture.so", "lib/libpgcapture.so.0",
    "lib/libpgcapture.a", "include/pgcapture.h", "lib/pkgconfig/pgcapture.pc",
};

/* snprintf that fails the case instead of truncating. */
static void fmt(char *buf, size_t len, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, len, format, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        unit_fail(__FILE__, __LINE__, "a command or path of %d bytes does not fit in %zu", n, len);
}

static void remove_tree(void *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", (char *)dir);
    free(dir);
}

/* The build variant this binary belongs to: build/<variant>/tests/integration/NAME. */
static void build_variant(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        unit_fail(__FILE__, __LINE__, "cannot read /proc/self/exe");
    exe[n] = '\0';
    fmt(out, len, "%s", basename(dirname(dirname(dirname(exe)))));
}

/* Runs a shell command with its output in `log`; returns its exit status (-1 if killed). */
static int run(const char *cmd, const char *log)
{
    char full[8192];
    fmt(full, sizeof full, "( %s ) >'%s' 2>&1", cmd, log);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  | %s", line);
    fclose(f);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

#define EXPECT_RUN(status, cmd, log)                                                               \
    do {                                                                                           \
        int rc_ = run((cmd), (log));                                                               \
        if (rc_ != (status)) {                                                                     \
            print_file(log);                                                                       \
            unit_fail(__FILE__, __LINE__, "%s: expected exit status %d, got %d", (cmd), (status),  \
                      rc_);                                                                        \
        }                                                                                          \
    } while (0)

static void test_installed_library_builds_links_and_runs_the_example_consumer(void)
{
    if (access("Makefile", R_OK) != 0 || access("examples/consumer.c", R_OK) != 0)
        unit_fail(__FILE__, __LINE__, "run from the repository root");
    char tmpl[] = "/tmp/pgc-install.XXXXXX";
    if (!mkdtemp(tmpl))
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    char *dest = strdup(tmpl);
    if (!dest)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(remove_tree, dest);
    char variant[64], cmd[4096], log[PATH_MAX], path[PATH_MAX + 64];
    build_variant(variant, sizeof variant);
    fmt(log, sizeof log, "%s/cmd.log", dest);

    fmt(cmd, sizeof cmd,
        "make --no-print-directory install VARIANT=%s PREFIX=/usr/local DESTDIR=%s", variant, dest);
    EXPECT_RUN(0, cmd, log);
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        fmt(path, sizeof path, "%s/usr/local/%s", dest, installed[i]);
        if (access(path, R_OK) != 0)
            unit_fail(__FILE__, __LINE__, "make install did not install %s", path);
    }
    fmt(path, sizeof path, "%s/usr/local/lib/pkgconfig/pgcapture.pc", dest);
    if (!file_contains(path, "prefix=/usr/local") || !file_contains(path, "-lpgcapture")) {
        print_file(path);
        unit_fail(__FILE__, __LINE__, "pgcapture.pc lacks prefix=/usr/local or -lpgcapture");
    }

    /* Only what pkg-config says: the staged header and library (sysroot = DESTDIR), no
     * path into the source tree. */
    const char *env = "PKG_CONFIG_PATH=%s/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=%s";
    char pc_env[2 * PATH_MAX];
    fmt(pc_env, sizeof pc_env, env, dest, dest);
    fmt(cmd, sizeof cmd,
        "export %s; cc -std=c99 -Wall -Werror -o %s/consumer examples/consumer.c "
        "$(pkg-config --cflags --libs pgcapture)",
        pc_env, dest);
    EXPECT_RUN(0, cmd, log);

    /* It loads the installed .so (not a copy of the code linked in). */
    fmt(cmd, sizeof cmd,
        "LD_LIBRARY_PATH=%s/usr/local/lib ldd %s/consumer | grep -F "
        "'libpgcapture.so.0 => %s/usr/local/lib/libpgcapture.so.0'",
        dest, dest, dest);
    EXPECT_RUN(0, cmd, log);

    fmt(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/usr/local/lib %s/consumer", dest, dest);
    EXPECT_RUN(2, cmd, log);
    if (!file_contains(log, "usage:")) {
        print_file(log);
        unit_fail(__FILE__, __LINE__, "the example printed no usage line");
    }
    /* A real run through the library: gRPC loads, the stream fails to an unused port, and
     * the library's status text comes back. */
    fmt(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/usr/local/lib %s/consumer 127.0.0.1:1 u_x 1", dest,
        dest);
    EXPECT_RUN(1, cmd, log);
    if (!file_contains(log, "(connection lost)")) {
        print_file(log);
        unit_fail(__FILE__, __LINE__, "expected the consumer to fail with \"connection lost\"");
    }
    fmt(cmd, sizeof cmd, "%s/usr/local/bin/pgcapture --help", dest);
    EXPECT_RUN(0, cmd, log);

    fmt(cmd, sizeof cmd,
        "make --no-print-directory uninstall VARIANT=%s PREFIX=/usr/local DESTDIR=%s", variant,
        dest);
    EXPECT_RUN(0, cmd, log);
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        struct stat sb;
        fmt(path, sizeof path, "%s/usr/local/%s", dest, installed[i]);
        if (lstat(path, &sb) == 0)
            unit_fail(__FILE__, __LINE__, "make uninstall left %s", path);
    }
}

UNIT_MAIN(UNIT_CASE(test_installed_library_builds_links_and_runs_the_example_consumer))
