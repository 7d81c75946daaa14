/* `pgcapture replica wait-caught-up`: the cut-over step of a migration. With writes to the
 * source stopped, it commits one marker DDL statement on the source (a comment on
 * pgcapture.ddl_logs, which the DDL capture logs like any other), waits until the replica
 * shows it (the applier applies in commit order, so everything committed before it is
 * applied: the replica's position is the source's last commit), then copies the source's
 * sequence values, which logical replication does not carry. */
#include "roles/replica/replica.h"

#include "codec/logpos.h"
#include "core/clock.h"
#include "core/log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static PGconn *connect_to(const char *conninfo, const char *what)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        log_error("wait-caught-up failed: cannot connect", "to=%s error=\"%s\"", what, msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs a query with text parameters; NULL (logged) unless it returns `want`. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *vals,
                       ExecStatusType want, const char *step)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) == want)
        return r;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
    msg[strcspn(msg, "\n")] = '\0';
    log_error("wait-caught-up failed", "step=\"%s\" error=\"%s\"", step, msg);
    PQclear(r);
    return NULL;
}

/* Sets every sequence of the source that has a value on the replica; returns how many, or
 * -1 on error. Sequences missing on the replica are reported and left out. */
static int copy_sequences(PGconn *src, PGconn *rep)
{
    PGresult *r = query(src,
                        "SELECT format('%I.%I', schemaname, sequencename), last_value::text "
                        "FROM pg_sequences WHERE last_value IS NOT NULL ORDER BY 1",
                        0, NULL, PGRES_TUPLES_OK, "read the source's sequences");
    if (!r)
        return -1;
    int set = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *vals[2] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)};
        PGresult *s = query(rep,
                            "SELECT setval(c.oid, $2::bigint, true) FROM pg_class c "
                            "WHERE c.oid = to_regclass($1) AND c.relkind = 'S'",
                            2, vals, PGRES_TUPLES_OK, "set a sequence on the replica");
        if (!s) {
            PQclear(r);
            return -1;
        }
        if (PQntuples(s) == 1)
            set++;
        else
            log_warn("sequence missing on the replica, left out", "sequence=%s value=%s", vals[0],
                     vals[1]);
        PQclear(s);
    }
    PQclear(r);
    return set;
}

int replica_wait_caught_up(const replica_cutover_config *cfg)
{
    int exit_code = 1;
    PGconn *src = connect_to(cfg->source, "source");
    PGconn *rep = src ? connect_to(cfg->replica, "replica") : NULL;
    PGresult *r = NULL;
    if (!rep)
        goto done;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char marker[160];
    snprintf(marker, sizeof marker, "pgcapture cut-over marker of %.40s at %lld.%06ld pid %d",
             cfg->name, (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid());
    char *lit = PQescapeLiteral(src, marker, strlen(marker));
    if (!lit)
        goto done;
    char sql[320];
    snprintf(sql, sizeof sql, "COMMENT ON TABLE pgcapture.ddl_logs IS %s", lit);
    PQfreemem(lit);
    int64_t t0 = clock_mono_ms();
    if (!(r = query(src, sql, 0, NULL, PGRES_COMMAND_OK,
                    "commit the marker on the source (it needs pgcapture's DDL capture there "
                    "and the right to comment on pgcapture.ddl_logs)")))
        goto done;
    PQclear(r);
    if (!(r = query(src, "SELECT pg_current_wal_lsn()::text", 0, NULL, PGRES_TUPLES_OK,
                    "read the source's WAL position")))
        goto done;
    char source_lsn[32];
    snprintf(source_lsn, sizeof source_lsn, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    log_info("marker committed on the source; waiting for the replica", "source_wal_lsn=%s",
             source_lsn);

    const char *vals[2] = {marker, cfg->name};
    char applied[64] = "none";
    for (;;) {
        r = query(rep,
                  "SELECT obj_description('pgcapture.ddl_logs'::regclass, 'pg_class') = $1, "
                  "(SELECT commit::text || ' seq ' || seq FROM pgcapture.sources WHERE id = $2)",
                  2, vals, PGRES_TUPLES_OK, "read the replica");
        if (!r)
            goto done;
        bool seen = !PQgetisnull(r, 0, 0) && PQgetvalue(r, 0, 0)[0] == 't';
        snprintf(applied, sizeof applied, "%s",
                 PQgetisnull(r, 0, 1) ? "none" : PQgetvalue(r, 0, 1));
        PQclear(r);
        r = NULL;
        if (seen)
            break;
        if (clock_mono_ms() - t0 > cfg->timeout_ms) {
            log_error("not caught up: the replica has not applied the source's last commit",
                      "timeout_ms=%lld replica_applied=\"%s\" source_wal_lsn=%s hint=\"%s\"",
                      (long long)cfg->timeout_ms, applied, source_lsn,
                      "are the agent and the applier running? (`pgcapture replica` logs its "
                      "lag)");
            printf("not caught up after %lld ms: the replica applied %s\n",
                   (long long)(clock_mono_ms() - t0), applied);
            goto done;
        }
        clock_sleep_ms(20);
    }
    int64_t caught_ms = clock_mono_ms() - t0;
    printf("caught up: the replica applied the source's last commit (%s) in %lld ms\n", applied,
           (long long)caught_ms);
    if (cfg->sequences) {
        int n = copy_sequences(src, rep);
        if (n < 0)
            goto done;
        printf("sequences: %d set on the replica to the source's values\n", n);
    }
    exit_code = 0;
done:
    PQclear(r);
    PQfinish(src);
    PQfinish(rep);
    return exit_code;
}
