/* Secrets stay secret: every role and command of a whole deployment runs with passwords and
 * tokens taken from files and the environment only (a PostgreSQL password through a
 * passfile, or in conninfos given in the environment, with scram-sha-256 in pg_hba.conf;
 * a NATS password; a capture token, the
 * gateway's token for the controller and an operator's schedule token) while a watcher
 * reads every process's command line; afterwards no log and no command line it saw holds
 * any of them, and the data path (live changes and a dump) worked. */
#include "core/acl.h"
#include "core/status.h"
#include "harness/capture.h"
#include "harness/certs.h"
#include "harness/fixtures.h"
#include "harness/natsbox.h"
#include "harness/pgbox.h"
#include "harness/runner.h"
#include "harness/services.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_SECRET "pg-Secret-83hd7Q"
#define NATS_SECRET "nats-Secret-2k9sdW"
#define CAPTURE_TOKEN "capture-Token-9x7qE"
#define GATEWAY_TOKEN "gateway-Token-5v1zR"
#define SCHEDULE_TOKEN "schedule-Token-4m2pT"

static const char *const secrets[] = {PG_SECRET, NATS_SECRET, CAPTURE_TOKEN, GATEWAY_TOKEN,
                                      SCHEDULE_TOKEN};
#define N_SECRETS (sizeof secrets / sizeof secrets[0])

/* ---- a watcher of every process's command line ------------------------------------------ */

typedef struct watcher {
    pthread_t thread;
    atomic_bool stop;
    atomic_int scans;
    char found[1024]; /* the first leak: "secret in pid N: cmdline" */
} watcher;

static void scan_once(watcher *w)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        for (size_t k = 0; k < N_SECRETS && !w->found[0]; k++)
            if (strstr(buf, secrets[k]))
                snprintf(w->found, sizeof w->found, "%s in pid %s: %.300s", secrets[k], de->d_name,
                         buf);
    }
    if (d)
        closedir(d);
    atomic_fetch_add(&w->scans, 1);
}

static void *watch_main(void *arg)
{
    watcher *w = arg;
    while (!atomic_load(&w->stop)) {
        scan_once(w);
        usleep(5000);
    }
    return NULL;
}

static void watcher_stop(void *arg)
{
    watcher *w = arg;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    free(w);
}

/* ---- the deployment ------------------------------------------------------------------------ */

static const char *file_with(const char *name, const char *text)
{
    char *path = malloc(600);
    snprintf(path, 600, "%s/%s", harness_certs_dir(), name);
    unit_defer(free, path);
    FILE *f = fopen(path, "w");
    if (!f)
        unit_fail(__FILE__, __LINE__, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void unset_env(void *name)
{
    unsetenv(name);
}

static int wait_for_lines(const char *path, const char *text, int want, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        int n = 0;
        char line[8192];
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            n += strstr(line, text) != NULL;
        if (f)
            fclose(f);
        if (n >= want || harness_now_ms() > until)
            return n;
        harness_sleep_ms(50);
    }
}

/* Fails the case when a file holds any of the secrets. */
static void expect_no_secret_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[16384];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        for (size_t k = 0; k < N_SECRETS; k++)
            if (strstr(line, secrets[k])) {
                fclose(f);
                unit_fail(__FILE__, __LINE__, "%s line %d holds a secret: %.300s", path, lineno,
                          line);
            }
    }
    fclose(f);
}

static void spawn_or_fail(const char *log, const char *const *args)
{
    harness_spawn(log, args);
}

static void test_no_secret_in_any_log_or_command_line(void)
{
    watcher *w = calloc(1, sizeof *w);
    pthread_create(&w->thread, NULL, watch_main, w);
    unit_defer(watcher_stop, w);
    /* PostgreSQL with password authentication; the password only in a passfile. */
    static const char *const settings[] = {"shared_preload_libraries = 'pgcapture'", NULL};
    pgbox *pg = pgbox_start("local all all trust\n"
                            "host all all 127.0.0.1/32 scram-sha-256\n"
                            "host replication all 127.0.0.1/32 scram-sha-256\n",
                            settings, 0);
    char admin[600];
    snprintf(admin, sizeof admin, "host=%s port=%d user=postgres dbname=postgres", pg->dir,
             pg->port);
    PGconn *a = harness_connect(admin);
    harness_exec(a, "CREATE ROLE capuser LOGIN SUPERUSER REPLICATION PASSWORD '" PG_SECRET "'");
    harness_exec(a, "CREATE DATABASE src");
    harness_exec(a, "CREATE DATABASE rep");
    char ci_src_admin[600];
    snprintf(ci_src_admin, sizeof ci_src_admin, "host=%s port=%d user=postgres dbname=src", pg->dir,
             pg->port);
    PGconn *src = harness_connect(ci_src_admin);
    harness_exec(src, "CREATE EXTENSION pgcapture; CREATE TABLE t (id int PRIMARY KEY);"
                      "INSERT INTO t SELECT generate_series(1, 20)");
    char passfile_text[200];
    snprintf(passfile_text, sizeof passfile_text, "127.0.0.1:%d:*:capuser:%s\n", pg->port,
             PG_SECRET);
    setenv("PGPASSFILE", file_with("pgpass", passfile_text), 1);
    unit_defer(unset_env, "PGPASSFILE");
    char ci_src[300], ci_rep[300];
    snprintf(ci_src, sizeof ci_src, "host=127.0.0.1 port=%d user=capuser dbname=src", pg->port);
    snprintf(ci_rep, sizeof ci_rep, "host=127.0.0.1 port=%d user=capuser dbname=rep", pg->port);

    /* NATS with TLS and a password from a file. */
    natsbox *nb = natsbox_start("accounts {\n  APP {\n    jetstream: enabled\n"
                                "    users: [ {user: pgc, password: \"" NATS_SECRET "\"} ]\n"
                                "  }\n}");
    const char *nats_creds[] = {"--nats-user", "pgc", "--nats-password-file",
                                file_with("nats.pw", NATS_SECRET "\n"), NULL};
    const char *nats[24];
    natsbox_flags(nb, "alice", nats_creds, nats, 24);

    char name[64], uri[96], log[512], dir[256];
    harness_unique_name(name, sizeof name);
    snprintf(uri, sizeof uri, "%s-uri", name);
    snprintf(dir, sizeof dir, "%s", getenv("PGC_TEST_LOGDIR") ? getenv("PGC_TEST_LOGDIR") : "/tmp");
    const char *logs[8];
    int n_logs = 0;
#define LOG(tag)                                                                                   \
    (snprintf(log, sizeof log, "%s/secrets-%s-%s.log", dir, name, tag),                            \
     logs[n_logs++] = strdup(log), unit_defer(free, (void *)logs[n_logs - 1]), logs[n_logs - 1])

    /* replica init with conninfos that hold the password, given in the environment: pg_dump
     * and pg_restore must get them in theirs, not on their command lines. */
    char env_src[400], env_rep[400];
    snprintf(env_src, sizeof env_src, "%s password=%s", ci_src, PG_SECRET);
    snprintf(env_rep, sizeof env_rep, "%s password=%s", ci_rep, PG_SECRET);
    setenv("PGCAPTURE_SOURCE", env_src, 1);
    setenv("PGCAPTURE_REPLICA", env_rep, 1);
    unit_defer(unset_env, "PGCAPTURE_SOURCE");
    unit_defer(unset_env, "PGCAPTURE_REPLICA");
    const char *init[] = {"replica", "init", "--name", name, NULL};
    const char *init_log = LOG("init");
    EXPECT_EQ_INT(0, harness_wait_exit(harness_spawn(init_log, init), 120000));
    unsetenv("PGCAPTURE_SOURCE");
    unsetenv("PGCAPTURE_REPLICA");

    const char *agent_log = LOG("agent");
    const char *agent[40] = {"agent", "--source", ci_src, "--name", name, "--confirm-delay", "0"};
    int k = 7;
    for (int i = 0; nats[i]; i++)
        agent[k++] = nats[i];
    agent[k] = NULL;
    spawn_or_fail(agent_log, agent);

    const char *rep_log = LOG("replica");
    const char *replica[40] = {"replica", "--replica", ci_rep, "--name", name};
    k = 5;
    for (int i = 0; nats[i]; i++)
        replica[k++] = nats[i];
    replica[k] = NULL;
    spawn_or_fail(rep_log, replica);

    /* The controller: TLS; the gateway pulls and the operator schedules with tokens. */
    char h_gw[ACL_HASH_TEXT_LEN], h_sched[ACL_HASH_TEXT_LEN], h_cap[ACL_HASH_TEXT_LEN];
    acl_hash_token(GATEWAY_TOKEN, strlen(GATEWAY_TOKEN), h_gw);
    acl_hash_token(SCHEDULE_TOKEN, strlen(SCHEDULE_TOKEN), h_sched);
    acl_hash_token(CAPTURE_TOKEN, strlen(CAPTURE_TOKEN), h_cap);
    char acl_text[600], ctl_addr[64];
    snprintf(acl_text, sizeof acl_text, "[*]\npull = %s\nschedule = %s\nstatus = %s\n", h_gw,
             h_sched, h_sched);
    snprintf(ctl_addr, sizeof ctl_addr, "127.0.0.1:%d", harness_free_port());
    char bucket[96];
    snprintf(bucket, sizeof bucket, "CTL_%s", name);
    const char *ctl_log = LOG("controller");
    const char *ctl[48] = {"controller",
                           "--listen",
                           ctl_addr,
                           "--bucket",
                           bucket,
                           "--tls-cert",
                           harness_cert("server.pem"),
                           "--tls-key",
                           harness_cert("server.key"),
                           "--acl",
                           file_with("controller.acl", acl_text)};
    k = 11;
    for (int i = 0; nats[i]; i++)
        ctl[k++] = nats[i];
    ctl[k] = NULL;
    spawn_or_fail(ctl_log, ctl);
    EXPECT_TRUE(wait_for_lines(ctl_log, "controller ready", 1, 20000) == 1);

    /* The gateway: TLS; the URI for the capture token; dumps from the replica. */
    char conf_text[800];
    snprintf(conf_text, sizeof conf_text, "[%s]\nsource = %s\nreplica = %s\ncapture = %s\n", uri,
             name, ci_rep, h_cap);
    const char *gw_flags[48] = {"--tls-cert",
                                harness_cert("server.pem"),
                                "--tls-key",
                                harness_cert("server.key"),
                                "--controller",
                                ctl_addr,
                                "--controller-tls-ca",
                                harness_cert("ca.pem"),
                                "--controller-token-file",
                                file_with("gateway.token", GATEWAY_TOKEN "\n")};
    k = 10;
    for (int i = 0; nats[i]; i++)
        gw_flags[k++] = nats[i];
    gw_flags[k] = NULL;
    harness_gateway gw;
    char tag[96];
    snprintf(tag, sizeof tag, "secrets-%s", name);
    harness_gateway_start(&gw, tag, file_with("gateway.conf", conf_text), gw_flags);
    logs[n_logs++] = gw.log;

    /* pgcapture consume with the capture token from a file. */
    const char *consume_log = LOG("consume");
    const char *consume[] = {"consume",
                             "--gateway",
                             gw.addr,
                             "--uri",
                             uri,
                             "--tls-ca",
                             harness_cert("ca.pem"),
                             "--token-file",
                             file_with("capture.token", CAPTURE_TOKEN "\n"),
                             NULL};
    spawn_or_fail(consume_log, consume);
    harness_sleep_ms(500);
    char cmd_sql[128];
    for (int i = 21; i <= 25; i++) {
        snprintf(cmd_sql, sizeof cmd_sql, "INSERT INTO t VALUES (%d)", i);
        harness_exec(src, cmd_sql);
    }
    if (wait_for_lines(consume_log, "\"op\":\"INSERT\"", 5, 60000) != 5) {
        for (int i = 0; i < n_logs; i++)
            harness_print_log_tail(logs[i], 10);
        unit_fail(__FILE__, __LINE__, "consume did not print the 5 inserts");
    }
    /* pgcapture schedule with the operator's token in the environment: the dump of t's 25
     * rows reaches the consumer from the replica. */
    setenv("PGCAPTURE_TOKEN", SCHEDULE_TOKEN, 1);
    unit_defer(unset_env, "PGCAPTURE_TOKEN");
    const char *sched_log = LOG("schedule");
    const char *sched[] = {"schedule",
                           "--controller",
                           ctl_addr,
                           "--uri",
                           uri,
                           "--table",
                           "public.t",
                           "--replica",
                           ci_rep,
                           "--tls-ca",
                           harness_cert("ca.pem"),
                           NULL};
    EXPECT_EQ_INT(0, harness_wait_exit(harness_spawn(sched_log, sched), 60000));
    unsetenv("PGCAPTURE_TOKEN");
    if (wait_for_lines(consume_log, "\"lsn\":\"0/0\"", 25, 60000) != 25) {
        for (int i = 0; i < n_logs; i++)
            harness_print_log_tail(logs[i], 10);
        unit_fail(__FILE__, __LINE__, "the dump did not reach the consumer");
    }
    /* The watcher saw the whole run: no command line held a secret, nor does any log. */
    int scans = atomic_load(&w->scans);
    harness_sleep_ms(50);
    EXPECT_TRUE(atomic_load(&w->scans) > scans);
    if (w->found[0])
        unit_fail(__FILE__, __LINE__, "a command line held a secret: %s", w->found);
    for (int i = 0; i < n_logs; i++)
        expect_no_secret_in(logs[i]);
    expect_no_secret_in(nb->log);
    char pglog[400];
    snprintf(pglog, sizeof pglog, "%s/server.log", pg->dir);
    expect_no_secret_in(pglog);
#undef LOG
}

UNIT_MAIN(UNIT_CASE(test_no_secret_in_any_log_or_command_line))
