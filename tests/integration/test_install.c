/* `make install` into a staging DESTDIR gives two usable libraries: programs built from
 * examples/consumer.c and examples/custom_resolver.c with nothing but `pkg-config --cflags
 * --libs pgcapture` / `pgcapture-gateway` (pointed into the DESTDIR, no path into the
 * source tree) link against the installed .so files, load them, and run: the consumer
 * alone fails the way the library says it should, and the installed gateway serves a
 * source's changes (written through a real agent) to the installed consumer. `make
 * uninstall` removes every installed file. Runs from the repository root and builds
 * nothing new (the tree is already built by `make`). */
#include "harness/runner.h"
#include "harness/fixtures.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const installed[] = {
    "bin/pgcapture",
    "lib/libpgcapture.so",
    "lib/libpgcapture.so.0",
    "lib/libpgcapture.a",
    "lib/libpgcapture-gateway.so",
    "lib/libpgcapture-gateway.so.0",
    "include/pgcapture.h",
    "include/pgcapture/gateway.h",
    "lib/pkgconfig/pgcapture.pc",
    "lib/pkgconfig/pgcapture-gateway.pc",
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

static void remove_tree(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
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

/* A staged install: DESTDIR, build variant, a log for commands. */
typedef struct staged {
    char dest[PATH_MAX / 2];
    char variant[64];
    char log[PATH_MAX];
} staged;

static void free_staged(void *s)
{
    remove_tree(((staged *)s)->dest);
    free(s);
}

/* `make install` into a new temporary DESTDIR (removed when the case ends), and checks that
 * every file is there. */
static staged *stage_install(void)
{
    if (access("Makefile", R_OK) != 0 || access("examples/consumer.c", R_OK) != 0)
        unit_fail(__FILE__, __LINE__, "run from the repository root");
    staged *s = calloc(1, sizeof *s);
    if (!s)
        unit_fail(__FILE__, __LINE__, "out of memory");
    snprintf(s->dest, sizeof s->dest, "/tmp/pgc-install.XXXXXX");
    if (!mkdtemp(s->dest)) {
        free(s);
        unit_fail(__FILE__, __LINE__, "mkdtemp failed");
    }
    unit_defer(free_staged, s);
    build_variant(s->variant, sizeof s->variant);
    fmt(s->log, sizeof s->log, "%s/cmd.log", s->dest);
    char cmd[4096], path[PATH_MAX + 64];
    fmt(cmd, sizeof cmd,
        "make --no-print-directory install VARIANT=%s PREFIX=/usr/local DESTDIR=%s", s->variant,
        s->dest);
    EXPECT_RUN(0, cmd, s->log);
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        fmt(path, sizeof path, "%s/usr/local/%s", s->dest, installed[i]);
        if (access(path, R_OK) != 0)
            unit_fail(__FILE__, __LINE__, "make install did not install %s", path);
    }
    return s;
}

/* Builds examples/NAME.c into DESTDIR/NAME with only what pkg-config says about `package`
 * (the staged headers and libraries: sysroot = DESTDIR), and checks that the program loads
 * the installed `library` (not a copy of the code linked in). */
static void build_example(const staged *s, const char *name, const char *package,
                          const char *library)
{
    char cmd[4096];
    fmt(cmd, sizeof cmd,
        "export PKG_CONFIG_PATH=%s/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=%s; "
        "cc -std=c99 -Wall -Wextra -Werror -o %s/%s examples/%s.c "
        "$(pkg-config --cflags --libs %s)",
        s->dest, s->dest, s->dest, name, name, package);
    EXPECT_RUN(0, cmd, s->log);
    fmt(cmd, sizeof cmd,
        "LD_LIBRARY_PATH=%s/usr/local/lib ldd %s/%s | grep -F '%s.so.0 => "
        "%s/usr/local/lib/%s.so.0'",
        s->dest, s->dest, name, library, s->dest, library);
    EXPECT_RUN(0, cmd, s->log);
}

static void test_installed_library_builds_links_and_runs_the_example_consumer(void)
{
    staged *s = stage_install();
    char cmd[4096], path[PATH_MAX + 64];
    fmt(path, sizeof path, "%s/usr/local/lib/pkgconfig/pgcapture.pc", s->dest);
    if (!file_contains(path, "prefix=/usr/local") || !file_contains(path, "-lpgcapture")) {
        print_file(path);
        unit_fail(__FILE__, __LINE__, "pgcapture.pc lacks prefix=/usr/local or -lpgcapture");
    }
    fmt(path, sizeof path, "%s/usr/local/lib/pkgconfig/pgcapture-gateway.pc", s->dest);
    if (!file_contains(path, "Requires: pgcapture") ||
        !file_contains(path, "-lpgcapture-gateway")) {
        print_file(path);
        unit_fail(__FILE__, __LINE__,
                  "pgcapture-gateway.pc lacks Requires: pgcapture or -lpgcapture-gateway");
    }
    build_example(s, "consumer", "pgcapture", "libpgcapture");

    fmt(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/usr/local/lib %s/consumer", s->dest, s->dest);
    EXPECT_RUN(2, cmd, s->log);
    if (!file_contains(s->log, "usage:")) {
        print_file(s->log);
        unit_fail(__FILE__, __LINE__, "the example printed no usage line");
    }
    /* A real run through the library: gRPC loads, the stream fails to an unused port, and
     * the library's status text comes back. */
    fmt(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/usr/local/lib %s/consumer 127.0.0.1:1 u_x 1", s->dest,
        s->dest);
    EXPECT_RUN(1, cmd, s->log);
    if (!file_contains(s->log, "(connection lost)")) {
        print_file(s->log);
        unit_fail(__FILE__, __LINE__, "expected the consumer to fail with \"connection lost\"");
    }
    fmt(cmd, sizeof cmd, "%s/usr/local/bin/pgcapture --help", s->dest);
    EXPECT_RUN(0, cmd, s->log);

    fmt(cmd, sizeof cmd,
        "make --no-print-directory uninstall VARIANT=%s PREFIX=/usr/local DESTDIR=%s", s->variant,
        s->dest);
    EXPECT_RUN(0, cmd, s->log);
    struct stat sb;
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        fmt(path, sizeof path, "%s/usr/local/%s", s->dest, installed[i]);
        if (lstat(path, &sb) == 0)
            unit_fail(__FILE__, __LINE__, "make uninstall left %s", path);
    }
    fmt(path, sizeof path, "%s/usr/local/include/pgcapture", s->dest);
    if (lstat(path, &sb) == 0)
        unit_fail(__FILE__, __LINE__, "make uninstall left the directory %s", path);
}

/* A child process the case started; stopped (and reaped) when the case ends unless the
 * case reaped it already. */
typedef struct child {
    pid_t pid;
    bool reaped;
} child;

static void stop_child(void *arg)
{
    child *ch = arg;
    if (!ch->reaped) {
        kill(ch->pid, SIGTERM);
        if (harness_wait_exit(ch->pid, 5000) == -1) {
            kill(ch->pid, SIGKILL);
            waitpid(ch->pid, NULL, 0);
        }
    }
    free(ch);
}

/* Starts the installed custom_resolver on a port of its choosing with the test's NATS and
 * waits until it prints that port. */
static child *start_custom_resolver(const staged *s, const char *log, int *port)
{
    char bin[PATH_MAX], libdir[PATH_MAX];
    fmt(bin, sizeof bin, "%s/custom_resolver", s->dest);
    fmt(libdir, sizeof libdir, "%s/usr/local/lib", s->dest);
    child *ch = calloc(1, sizeof *ch);
    if (!ch)
        unit_fail(__FILE__, __LINE__, "out of memory");
    ch->pid = fork();
    if (ch->pid < 0) {
        free(ch);
        unit_fail(__FILE__, __LINE__, "fork failed");
    }
    if (ch->pid == 0) {
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        setenv("LD_LIBRARY_PATH", libdir, 1);
        execl(bin, bin, "127.0.0.1:0", harness_nats_url(), (char *)NULL);
        _exit(127);
    }
    unit_defer(stop_child, ch);
    long long deadline = harness_now_ms() + 30000;
    for (;;) {
        FILE *f = fopen(log, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "listening on %d", port) == 1) {
                fclose(f);
                return ch;
            }
        if (f)
            fclose(f);
        int st = harness_wait_exit(ch->pid, 0);
        if (st != -1 || harness_now_ms() > deadline) {
            ch->reaped = st != -1;
            print_file(log);
            unit_fail(__FILE__, __LINE__,
                      "the installed custom_resolver is not listening (exit status %d)", st);
        }
        harness_sleep_ms(50);
    }
}

static void test_installed_gateway_library_serves_changes_to_the_installed_consumer(void)
{
    staged *s = stage_install();
    build_example(s, "consumer", "pgcapture", "libpgcapture");
    build_example(s, "custom_resolver", "pgcapture-gateway", "libpgcapture-gateway");

    char db[256], name[64], agent_log[512], gw_log[PATH_MAX], cmd[4096];
    harness_db_create(false, db, sizeof db);
    harness_unique_name(name, sizeof name);
    PGconn *c = harness_connect(db);
    harness_exec(c, "CREATE TABLE users (id int8 PRIMARY KEY, name text, bio text); "
                    "ALTER TABLE users ALTER bio SET STORAGE EXTERNAL");
    harness_agent_start(db, name, NULL, agent_log, sizeof agent_log);
    harness_agent_wait_streaming(db, name, agent_log, 60000);
    fmt(gw_log, sizeof gw_log, "%s/custom_resolver.log", s->dest);
    int port = 0;
    child *gw = start_custom_resolver(s, gw_log, &port);
    harness_exec(c, "INSERT INTO users VALUES (7, 'ann', repeat('y', 4000))");
    harness_exec(c, "UPDATE users SET name = 'anna' WHERE id = 7");

    /* The example's resolver refuses a URI that is not SOURCE/CONSUMER... */
    fmt(cmd, sizeof cmd,
        "LD_LIBRARY_PATH=%s/usr/local/lib timeout 60 %s/consumer 127.0.0.1:%d nosuch", s->dest,
        s->dest, port);
    EXPECT_RUN(1, cmd, s->log);
    if (!file_contains(s->log, "(not found)")) {
        print_file(s->log);
        unit_fail(__FILE__, __LINE__, "expected the gateway to refuse uri nosuch as not found");
    }
    /* ...and serves SOURCE/CONSUMER: both changes, bound and printed by the consumer. */
    fmt(cmd, sizeof cmd,
        "LD_LIBRARY_PATH=%s/usr/local/lib timeout 60 %s/consumer 127.0.0.1:%d %s/c_%s 2", s->dest,
        s->dest, port, name, name);
    EXPECT_RUN(0, cmd, s->log);
    FILE *f = fopen(s->log, "r");
    EXPECT_TRUE(f != NULL);
    char line[16384];
    int inserted = 0, unchanged = 0;
    while (fgets(line, sizeof line, f)) {
        inserted += strncmp(line, "user 7 name=ann bio=yyyy", 24) == 0;
        unchanged += strcmp(line, "user 7 name=anna bio=(unchanged TOAST)\n") == 0;
    }
    fclose(f);
    if (inserted != 1 || unchanged != 1) {
        print_file(s->log);
        unit_fail(__FILE__, __LINE__, "expected the insert and the update once each, got %d and %d",
                  inserted, unchanged);
    }
    /* The installed gateway stops gracefully on SIGTERM. */
    kill(gw->pid, SIGTERM);
    int st = harness_wait_exit(gw->pid, 30000);
    gw->reaped = st != -1;
    if (st != 0) {
        print_file(gw_log);
        unit_fail(__FILE__, __LINE__, "custom_resolver: expected exit status 0 on SIGTERM, got %d",
                  st);
    }
}

UNIT_MAIN(UNIT_CASE(test_installed_library_builds_links_and_runs_the_example_consumer),
          UNIT_CASE(test_installed_gateway_library_serves_changes_to_the_installed_consumer))
