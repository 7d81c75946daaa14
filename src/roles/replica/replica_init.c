/* `pgcapture replica init`: bootstraps a replica consistently with the log. From the
 * source: a new slot exports its snapshot, pg_dump copies schema and data in that snapshot
 * and the slot's consistent point becomes the replica's position, so the applier starts
 * exactly where the copy ends. From an existing replica: one REPEATABLE READ snapshot
 * gives both the data and the applied position. */
#include "roles/replica/replica.h"

#include "codec/logpos.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "pg/pgenv.h"
#include "roles/replica/apply.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static PGconn *connect_db(const char *conninfo, bool replication)
{
    const char *keys[] = {"dbname", replication ? "replication" : NULL, NULL};
    const char *vals[] = {conninfo, replication ? "database" : NULL, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static bool exec_ok(PGconn *c, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == want;
    if (!ok)
        log_error("replica init failed", "step=\"%s\" error=\"%s\"", what, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* Starts `argv` with environment `envp`, stdin from in_fd and stdout to out_fd (-1: keep). */
static pid_t spawn(const char *const *argv, char *const *envp, int in_fd, int out_fd, int close_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (in_fd >= 0)
            dup2(in_fd, 0);
        if (out_fd >= 0)
            dup2(out_fd, 1);
        if (close_fd >= 0)
            close(close_fd);
        if (in_fd > 2)
            close(in_fd);
        if (out_fd > 2)
            close(out_fd);
        execvpe(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Copies with pg_dump | pg_restore in the exported snapshot. The conninfos go to each
 * program as PG* environment variables (pg/pgenv.h), never on a command line. */
static bool copy_data(const char *from, const char *to, const char *snapshot)
{
    char err[300], snap_arg[160];
    pgenv *from_env = NULL, *to_env = NULL;
    if (pgenv_create(from, &from_env, err, sizeof err) != PGC_OK ||
        pgenv_create(to, &to_env, err, sizeof err) != PGC_OK) {
        log_error("replica init failed", "step=\"pass the conninfos to pg_dump\" error=\"%s\"",
                  err);
        pgenv_destroy(from_env);
        return false;
    }
    snprintf(snap_arg, sizeof snap_arg, "--snapshot=%s", snapshot);
    /* --dbname= empty: pg_restore restores into PGDATABASE instead of printing a script. */
    const char *dump[] = {
        "pg_dump", "--format=custom", "--no-publications", "--no-subscriptions", snap_arg, NULL};
    const char *restore[] = {"pg_restore", "--exit-on-error", "--dbname=", NULL};
    log_info("copying schema and data", "snapshot=%s", snapshot);
    int fds[2];
    pid_t dp = -1, rp = -1;
    if (pipe(fds) == 0) {
        dp = spawn(dump, pgenv_envp(from_env), -1, fds[1], fds[0]);
        rp = spawn(restore, pgenv_envp(to_env), fds[0], -1, fds[1]);
        close(fds[0]);
        close(fds[1]);
    }
    int drc = wait_status(dp), rrc = wait_status(rp);
    pgenv_destroy(from_env);
    pgenv_destroy(to_env);
    if (drc != 0 || rrc != 0) {
        log_error("replica init failed: pg_dump | pg_restore did not succeed",
                  "pg_dump_status=%d pg_restore_status=%d hint=\"%s\"", drc, rrc,
                  "the replica database must exist and be empty (no pgcapture extension yet)");
        return false;
    }
    return true;
}

/* pg_dump refuses to dump a server newer than itself: say so before creating anything. */
static bool pg_dump_can_dump(PGconn *c)
{
    int server = PQserverVersion(c) / 10000;
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
    if (local >= server)
        return true;
    log_error("replica init refused: the local pg_dump cannot dump this server",
              "server_version=%d pg_dump=\"%s\" hint=\"install pg_dump %d or newer (with its "
              "pg_restore) and put it first in PATH\"",
              server, *line ? line : "not found", server);
    fprintf(stderr,
            "pgcapture replica init: the server runs PostgreSQL %d but the local pg_dump is %s: "
            "it needs pg_dump %d or newer\n",
            server, local ? line : "missing", server);
    return false;
}

static bool write_position(const char *replica, const char *name, const apply_position *p)
{
    PGconn *c = connect_db(replica, false);
    char lsn[LOGPOS_LSN_LEN], seq[16], mid[APPLY_MID_HEX_LEN], ts[24];
    logpos_format_lsn(p->pos.lsn, lsn);
    snprintf(seq, sizeof seq, "%u", p->pos.seq);
    snprintf(ts, sizeof ts, "%lld", (long long)p->commit_time);
    const char *vals[5] = {name, lsn, seq, apply_position_mid(p, mid), p->commit_time ? ts : NULL};
    PGresult *r = PQexecParams(
        c,
        "INSERT INTO pgcapture.sources (id, commit, seq, mid, commit_ts) VALUES ($1, "
        "$2::pg_lsn, $3::int, decode($4, 'hex'), "
        "timestamptz '2000-01-01 00:00:00+00' + $5::bigint * interval '1 microsecond') "
        "ON CONFLICT (id) DO UPDATE SET commit = EXCLUDED.commit, seq = EXCLUDED.seq, "
        "mid = EXCLUDED.mid, commit_ts = EXCLUDED.commit_ts",
        5, NULL, vals, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("replica init failed: cannot record the position", "error=\"%s\"",
                  PQstatus(c) == CONNECTION_OK ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

static int init_from_source(const replica_init_config *cfg)
{
    char slot[128], publication[128], sql[512];
    bool slot_fits = cfg->slot && *cfg->slot
                         ? snprintf(slot, sizeof slot, "%s", cfg->slot) < (int)sizeof slot
                         : names_slot(cfg->name, slot, sizeof slot) == PGC_OK;
    bool publication_fits =
        cfg->publication && *cfg->publication
            ? snprintf(publication, sizeof publication, "%s", cfg->publication) <
                  (int)sizeof publication
            : names_publication(cfg->name, publication, sizeof publication) == PGC_OK;
    if (!slot_fits || !publication_fits) {
        log_error("replica init failed: the slot or publication name is too long",
                  "slot=\"%s\" publication=\"%s\"", slot, publication);
        return 1;
    }
    int exit_code = 1;
    PGconn *sql_conn = connect_db(cfg->source, false);
    PGconn *repl = connect_db(cfg->source, true);
    PGresult *r = NULL;
    if (PQstatus(sql_conn) != CONNECTION_OK || PQstatus(repl) != CONNECTION_OK) {
        log_error("replica init failed: cannot connect to the source", "error=\"%s\"",
                  PQstatus(repl) != CONNECTION_OK ? PQerrorMessage(repl)
                                                  : PQerrorMessage(sql_conn));
        goto done;
    }
    if (!pg_dump_can_dump(sql_conn))
        goto done;
    /* The publication must exist before the slot: pgoutput reads it as of each change. */
    char *pub_q = PQescapeLiteral(sql_conn, publication, strlen(publication));
    char *pub_i = PQescapeIdentifier(sql_conn, publication, strlen(publication));
    char *slot_i = PQescapeIdentifier(sql_conn, slot, strlen(slot));
    if (!pub_q || !pub_i || !slot_i) {
        PQfreemem(pub_q);
        PQfreemem(pub_i);
        PQfreemem(slot_i);
        goto done;
    }
    snprintf(sql, sizeof sql,
             "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s) THEN "
             "CREATE PUBLICATION %s FOR ALL TABLES%s; END IF; END$$",
             pub_q, pub_i,
             PQserverVersion(sql_conn) >= 180000 ? " WITH (publish_generated_columns = stored)"
                                                 : "");
    bool ok = exec_ok(sql_conn, sql, PGRES_COMMAND_OK, "create the publication");
    /* PostgreSQL 17+: a failover slot, which standbys with sync_replication_slots keep. */
    snprintf(sql, sizeof sql,
             PQserverVersion(repl) >= 170000
                 ? "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)"
                 : "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
             slot_i);
    PQfreemem(pub_q);
    PQfreemem(pub_i);
    PQfreemem(slot_i);
    if (!ok)
        goto done;
    r = PQexec(repl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_error("replica init failed: cannot create the slot", "slot=%s error=\"%s\" hint=\"%s\"",
                  slot, PQresultErrorMessage(r),
                  "an existing slot cannot export a snapshot: drop it (and the stream) first, or "
                  "initialise from an existing replica with --from-replica");
        goto done;
    }
    uint64_t cp = 0;
    if (!logpos_parse_lsn(PQgetvalue(r, 0, 1), &cp) || cp == 0) {
        log_error("replica init failed: bad consistent point", "value=%s", PQgetvalue(r, 0, 1));
        goto done;
    }
    log_info("slot created", "slot=%s consistent_point=%s", slot, PQgetvalue(r, 0, 1));
    /* The snapshot lives as long as `repl` does nothing else: copy now. */
    if (!copy_data(cfg->source, cfg->replica, PQgetvalue(r, 0, 2)))
        goto done;
    /* Transactions committing at or after the consistent point are in the log, not in the
     * copy: the position is just below it. */
    apply_position p = {{cp - 1, 0x7fffffffu}, 0, 0, true, 0};
    if (!write_position(cfg->replica, cfg->name, &p))
        goto done;
    log_info("replica initialised from the source", "slot=%s position=%s", slot,
             PQgetvalue(r, 0, 1));
    exit_code = 0;
done:
    PQclear(r);
    PQfinish(repl);
    PQfinish(sql_conn);
    return exit_code;
}

static int init_from_replica(const replica_init_config *cfg)
{
    int exit_code = 1;
    PGconn *c = connect_db(cfg->source, false);
    PGresult *r = NULL;
    char err[512];
    apply_position p;
    if (PQstatus(c) != CONNECTION_OK) {
        log_error("replica init failed: cannot connect to the existing replica", "error=\"%s\"",
                  PQerrorMessage(c));
        goto done;
    }
    if (!pg_dump_can_dump(c))
        goto done;
    if (!exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", PGRES_COMMAND_OK, "begin"))
        goto done;
    r = PQexec(c, "SELECT pg_export_snapshot()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_error("replica init failed: cannot export a snapshot", "error=\"%s\"",
                  PQresultErrorMessage(r));
        goto done;
    }
    /* Read in the same snapshot as the data: the position matches the copy exactly. */
    if (apply_read_position(c, cfg->name, &p, err, sizeof err) != PGC_OK || !p.found) {
        log_error("replica init failed: the existing replica has no position for this source",
                  "source_name=%s error=\"%s\"", cfg->name, p.found ? err : "no row");
        goto done;
    }
    if (!copy_data(cfg->source, cfg->replica, PQgetvalue(r, 0, 0)))
        goto done;
    if (!write_position(cfg->replica, cfg->name, &p))
        goto done;
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(p.pos.lsn, lsn);
    log_info("replica initialised from a replica", "position=%s seq=%u", lsn, p.pos.seq);
    exit_code = 0;
done:
    PQclear(r);
    PQfinish(c);
    return exit_code;
}

int replica_init(const replica_init_config *cfg)
{
    return cfg->from_replica ? init_from_replica(cfg) : init_from_source(cfg);
}
