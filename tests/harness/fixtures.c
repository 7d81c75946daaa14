/* Implementation of the integration-test helpers (see fixtures.h). */
#include "fixtures.h"

#include "core/status.h"
#include "pg/pgsetup.h"
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int name_counter;

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *harness_nats_url(void)
{
    const char *url = getenv("NATS_URL");
    if (!url || !*url)
        unit_fail(__FILE__, __LINE__, "NATS_URL not set: run integration tests via tests/run");
    return url;
}

static void close_conn(void *c)
{
    PQfinish(c);
}

PGconn *harness_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        unit_fail(__FILE__, __LINE__, "cannot connect to \"%s\": %s", conninfo, msg);
    }
    unit_defer(close_conn, c);
    return c;
}

void harness_exec(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        unit_fail(__FILE__, __LINE__, "SQL failed: %.300s: %s", sql, msg);
    }
    PQclear(r);
}

char *harness_query_value(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        unit_fail(__FILE__, __LINE__, "query returned no row: %.300s: %s", sql, msg);
    }
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (v)
        unit_defer(free, v);
    return v;
}

long long harness_query_int(PGconn *conn, const char *sql)
{
    char *v = harness_query_value(conn, sql);
    if (!v)
        unit_fail(__FILE__, __LINE__, "query returned NULL: %.300s", sql);
    return atoll(v);
}

/* The two throwaway servers of a run: the source's (PGHOST/PGPORT) and the replicas'
 * (PGC_TEST_REPLICA_HOST/PORT, the same server when unset). */
typedef struct db_server {
    const char *host, *port, *install;
} db_server;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static db_server server_of(bool replica)
{
    db_server s;
    s.host = env_or("PGHOST", "127.0.0.1");
    s.port = env_or("PGPORT", "5432");
    s.install = env_or("PGC_TEST_INSTALL", "ext");
    if (replica) {
        s.host = env_or("PGC_TEST_REPLICA_HOST", s.host);
        s.port = env_or("PGC_TEST_REPLICA_PORT", s.port);
        s.install = env_or("PGC_TEST_REPLICA_INSTALL", s.install);
    }
    return s;
}

const char *harness_install_mode(bool replica)
{
    return server_of(replica).install;
}

typedef struct db_cleanup {
    char name[64];
    bool replica;
} db_cleanup;

static PGconn *admin_connect(bool replica)
{
    db_server s = server_of(replica);
    const char *keys[] = {"host", "port", "dbname", NULL};
    const char *vals[] = {s.host, s.port, "postgres", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to the test cluster: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void drop_db(void *arg)
{
    db_cleanup *d = arg;
    PGconn *c = admin_connect(d->replica);
    if (c) {
        char sql[512];
        /* Slots keep a database alive: end their walsenders, then drop them. */
        for (int attempt = 0; attempt < 50; attempt++) {
            snprintf(sql, sizeof sql,
                     "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                     "WHERE database = '%s' AND active_pid IS NOT NULL",
                     d->name);
            PQclear(PQexec(c, sql));
            snprintf(sql, sizeof sql,
                     "SELECT count(pg_drop_replication_slot(slot_name)) FROM "
                     "pg_replication_slots WHERE database = '%s' AND NOT active",
                     d->name);
            PQclear(PQexec(c, sql));
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM pg_replication_slots WHERE database = '%s'", d->name);
            PGresult *r = PQexec(c, sql);
            int left = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
            PQclear(r);
            if (left == 0)
                break;
            harness_sleep_ms(100);
        }
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fprintf(stderr, "harness: cannot drop %s: %s", d->name, PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
    }
    free(d);
}

void harness_install_pgcapture(const char *conninfo, bool replica)
{
    PGconn *db = harness_connect(conninfo);
    if (strcmp(server_of(replica).install, "sql") == 0) {
        char err[1024];
        harness_exec(db, "SET client_min_messages = warning");
        if (pgsetup_install(db, err, sizeof err) != PGC_OK)
            unit_fail(__FILE__, __LINE__, "SQL install failed: %s", err);
        harness_exec(db, "RESET client_min_messages");
    } else {
        harness_exec(db, "CREATE EXTENSION pgcapture");
    }
}

static void db_create(bool replica, bool with_extension, char *conninfo, size_t len)
{
    db_cleanup *d = calloc(1, sizeof *d);
    if (!d)
        unit_fail(__FILE__, __LINE__, "out of memory");
    snprintf(d->name, sizeof d->name, "pgct_%d_%d", (int)getpid(), ++name_counter);
    d->replica = replica;
    PGconn *c = admin_connect(replica);
    if (!c) {
        free(d);
        unit_fail(__FILE__, __LINE__, "test cluster unreachable: run via tests/run");
    }
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", d->name);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    if (!ok) {
        free(d);
        unit_fail(__FILE__, __LINE__, "CREATE DATABASE failed: %s", msg);
    }
    unit_defer(drop_db, d);
    db_server s = server_of(replica);
    snprintf(conninfo, len, "host=%s port=%s user=%s dbname=%s", s.host, s.port,
             env_or("PGUSER", "postgres"), d->name);
    if (with_extension)
        harness_install_pgcapture(conninfo, replica);
}

void harness_db_create(bool with_extension, char *conninfo, size_t len)
{
    db_create(false, with_extension, conninfo, len);
}

void harness_replica_db_create(bool with_extension, char *conninfo, size_t len)
{
    db_create(true, with_extension, conninfo, len);
}

int harness_server_major(const char *conninfo)
{
    PGconn *c = harness_connect(conninfo);
    return PQserverVersion(c) / 10000;
}

bool harness_pg_dump_can_dump(const char *conninfo)
{
    FILE *p = popen("pg_dump --version 2>/dev/null", "r");
    char line[256] = "";
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
    }
    const char *digits = strpbrk(line, "0123456789");
    return digits && atoi(digits) >= harness_server_major(conninfo);
}

void harness_require_pg_dump_for(const char *conninfo)
{
    int server = harness_server_major(conninfo);
    FILE *p = popen("pg_dump --version 2>/dev/null", "r");
    char line[256] = "";
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
    }
    line[strcspn(line, "\n")] = '\0';
    const char *digits = strpbrk(line, "0123456789");
    int local = digits ? atoi(digits) : 0;
    if (local < server)
        unit_skip("needs pg_dump %d or newer for a PostgreSQL %d source; this machine has %s",
                  server, server, local ? line : "none");
}

static void delete_stream(void *arg)
{
    char *name = arg;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (natsConnection_ConnectTo(&nc, getenv("NATS_URL")) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK) {
        char stream[160];
        snprintf(stream, sizeof stream, "PGCAPTURE_%s", name);
        js_DeleteStream(js, stream, NULL, NULL);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(name);
}

void harness_unique_name(char *name, size_t len)
{
    snprintf(name, len, "t%d_%d", (int)getpid(), ++name_counter);
    char *copy = strdup(name);
    if (!copy)
        unit_fail(__FILE__, __LINE__, "out of memory");
    unit_defer(delete_stream, copy);
}

static void kill_child(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    if (kill(pid, 0) == 0) {
        kill(pid, SIGTERM);
        if (harness_wait_exit(pid, 5000) == -1) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    } else {
        waitpid(pid, NULL, WNOHANG);
    }
}

pid_t harness_spawn(const char *log_path, const char *const *args)
{
    const char *bin = getenv("PGC_TEST_BIN");
    if (!bin || !*bin)
        unit_fail(__FILE__, __LINE__, "PGC_TEST_BIN not set: run integration tests via tests/run");
    pid_t pid = fork();
    if (pid < 0)
        unit_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[64];
        int n = 0;
        argv[n++] = bin;
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    unit_defer(kill_child, (void *)(intptr_t)pid);
    return pid;
}

int harness_wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 || harness_now_ms() > deadline)
            return -1;
        harness_sleep_ms(10);
    }
}

void harness_print_log_tail(const char *log_path, int lines)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' 2>/dev/null | sed 's/^/    | /'", lines, log_path);
    fflush(stdout);
    int rc = system(cmd);
    (void)rc;
}

static int run_cmd(const char *cmd)
{
    fflush(stdout);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void harness_nats_stop(void)
{
    const char *dir = getenv("NATSTMP_DIR");
    if (!dir)
        unit_fail(__FILE__, __LINE__, "NATSTMP_DIR not set: run via tests/run");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "pid=$(cat '%s/nats.pid'); kill $pid; for i in $(seq 1 200); do "
             "kill -0 $pid 2>/dev/null || exit 0; sleep 0.05; done; exit 1",
             dir);
    if (run_cmd(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "nats-server did not stop");
}

void harness_nats_start(void)
{
    const char *dir = getenv("NATSTMP_DIR");
    const char *url = harness_nats_url();
    const char *port = strrchr(url, ':');
    if (!dir || !port)
        unit_fail(__FILE__, __LINE__, "NATSTMP_DIR/NATS_URL not set: run via tests/run");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "n=$(grep -c 'Server is ready' '%s/nats.log'); "
             "nats-server -js -sd '%s/js' -a 127.0.0.1 -p %s -l '%s/nats.log' -P '%s/nats.pid' "
             ">/dev/null 2>&1 & "
             "for i in $(seq 1 400); do "
             "[ $(grep -c 'Server is ready' '%s/nats.log') -gt $n ] && exit 0; sleep 0.025; done; "
             "exit 1",
             dir, dir, port + 1, dir, dir, dir);
    if (run_cmd(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "nats-server did not start again");
}

void harness_pg_restart(const char *mode)
{
    const char *dir = getenv("PGTMP_DIR");
    if (!dir)
        unit_fail(__FILE__, __LINE__, "PGTMP_DIR not set: run via tests/run");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s '%s/pg_ctl' -D '%s/data' -l '%s/server.log' -m %s -w -t 60 restart >/dev/null",
             getuid() == 0 ? "runuser -u postgres --" : "",
             env_or("PGTMP_BIN", "/usr/lib/postgresql/15/bin"), dir, dir, mode);
    if (run_cmd(cmd) != 0)
        unit_fail(__FILE__, __LINE__, "PostgreSQL did not restart");
}

pid_t harness_agent_start(const char *conninfo, const char *name, const char *const *extra,
                          char *log_path, size_t log_path_len)
{
    const char *dir = getenv("PGC_TEST_LOGDIR");
    snprintf(log_path, log_path_len, "%s/agent-%s.log", dir && *dir ? dir : "/tmp", name);
    const char *args[48] = {"agent",
                            "--source",
                            conninfo,
                            "--nats-url",
                            harness_nats_url(),
                            "--name",
                            name,
                            "--confirm-delay",
                            "0",
                            "--log-level",
                            "debug",
                            "--retry-max",
                            "1s",
                            NULL};
    int n = 0;
    while (args[n])
        n++;
    for (int i = 0; extra && extra[i] && n < 46; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return harness_spawn(log_path, args);
}

void harness_agent_wait_streaming(const char *conninfo, const char *name, const char *log_path,
                                  int timeout_ms)
{
    PGconn *c = harness_connect(conninfo);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcapture_%s' AND "
             "active",
             name);
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        PGresult *r = PQexec(c, sql);
        int active = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
        if (active)
            break;
        if (harness_now_ms() > deadline) {
            harness_print_log_tail(log_path, 20);
            unit_fail(__FILE__, __LINE__, "agent %s not streaming after %d ms", name, timeout_ms);
        }
        harness_sleep_ms(20);
    }
}
