/* Logical replication connection (see replconn.h): a regular SQL connection for catalog
 * queries and publication DDL, and a replication=database connection for the slot and
 * the COPY BOTH stream. Errors never include the conninfo (it may hold a password). */
#include "pg/replconn.h"

#include "codec/bigendian.h"
#include "codec/logpos.h"
#include "core/clock.h"
#include "core/status.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */

struct replconn {
    PGconn *sql;
    PGconn *repl;
    char *copybuf; /* last PQgetCopyData buffer, kept until the next read */
};

int64_t replconn_now_pg_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return ((int64_t)tv.tv_sec - CLOCK_PG_EPOCH_UNIX_S) * 1000000 + tv.tv_usec;
}

/* One line of libpq's message, without the trailing newline. */
static const char *one_line(const char *msg, char *buf, size_t len)
{
    snprintf(buf, len, "%s", msg ? msg : "");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

static int classify_connect_error(PGconn *c)
{
    const char *m = PQerrorMessage(c);
    if (strstr(m, "password authentication failed") || strstr(m, "no pg_hba.conf entry") ||
        strstr(m, "permission denied") || strstr(m, "must be superuser or replication") ||
        strstr(m, "not permitted to log in") || strstr(m, "authentication failed"))
        return PGC_ERR_PERMISSION;
    if (strstr(m, "does not exist"))
        return PGC_ERR_CONFIG;
    return PGC_ERR_CONN;
}

static PGconn *connect_with(const char *conninfo, bool replication, int *status, char *err,
                            size_t err_len)
{
    const char *keys[4] = {"dbname", "fallback_application_name", NULL, NULL};
    const char *vals[4] = {conninfo, "pgcapture-agent", NULL, NULL};
    if (replication) {
        keys[2] = "replication";
        vals[2] = "database";
    }
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        *status = errbuf_set(err, err_len, PGC_ERR_NOMEM, "replication: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char line[512];
        *status = errbuf_set(err, err_len, classify_connect_error(c),
                             "replication: cannot connect to the source%s: %s",
                             replication ? " (replication connection)" : "",
                             one_line(PQerrorMessage(c), line, sizeof line));
        PQfinish(c);
        return NULL;
    }
    *status = PGC_OK;
    return c;
}

/* Runs a query on the SQL connection; returns the result or NULL with err set. */
static PGresult *sql_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                          int *status, char *err, size_t err_len)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *status = PGC_OK;
        return r;
    }
    char line[512];
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int code = PQstatus(c) != CONNECTION_OK           ? PGC_ERR_CONN
               : state && strcmp(state, "42501") == 0 ? PGC_ERR_PERMISSION
                                                      : PGC_ERR_CONFIG;
    *status = errbuf_set(err, err_len, code, "replication: %.60s...: %s", sql,
                         one_line(PQresultErrorMessage(r), line, sizeof line));
    PQclear(r);
    return NULL;
}

int replconn_open(const char *conninfo, replconn **out, char *err, size_t err_len)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        /* libpq's message may quote part of the string, a password included. */
        int rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                            "replication: the conninfo does not parse (key=value pairs or a "
                            "postgresql:// URI)");
        PQfreemem(perr);
        return rc;
    }
    PQconninfoFree(opts);
    replconn *conn = calloc(1, sizeof *conn);
    if (!conn)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "replication: out of memory");
    int status;
    if (!(conn->sql = connect_with(conninfo, false, &status, err, err_len)))
        goto fail;
    PGresult *r =
        sql_exec(conn->sql, "SELECT current_setting('wal_level')", 0, NULL, &status, err, err_len);
    if (!r)
        goto fail;
    if (strcmp(PQgetvalue(r, 0, 0), "logical") != 0) {
        status = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                            "replication: wal_level is %s on the source; set wal_level = logical "
                            "and restart PostgreSQL",
                            PQgetvalue(r, 0, 0));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    if (!(conn->repl = connect_with(conninfo, true, &status, err, err_len)))
        goto fail;
    *out = conn;
    return PGC_OK;
fail:
    replconn_destroy(conn);
    return status;
}

void replconn_destroy(replconn *conn)
{
    if (!conn)
        return;
    if (conn->copybuf)
        PQfreemem(conn->copybuf);
    PQfinish(conn->repl);
    PQfinish(conn->sql);
    free(conn);
}

/* PostgreSQL 17+: makes an existing slot a failover slot; whether it is one afterwards. */
static bool slot_make_failover(replconn *conn, const char *slot)
{
    if (PQserverVersion(conn->sql) < 170000)
        return false;
    int status;
    char err[256];
    const char *params[1] = {slot};
    PGresult *r =
        sql_exec(conn->sql, "SELECT failover FROM pg_replication_slots WHERE slot_name = $1", 1,
                 params, &status, err, sizeof err);
    bool failover = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (failover)
        return true;
    char *ident = PQescapeIdentifier(conn->repl, slot, strlen(slot));
    if (!ident)
        return false;
    char sql[300];
    snprintf(sql, sizeof sql, "ALTER_REPLICATION_SLOT %s (FAILOVER true)", ident);
    PQfreemem(ident);
    r = PQexec(conn->repl, sql);
    failover = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return failover;
}

int replconn_ensure_slot(replconn *conn, const char *slot, replconn_slot_info *info, char *err,
                         size_t err_len)
{
    int status;
    const char *params[1] = {slot};
    memset(info, 0, sizeof *info);
    PGresult *r = sql_exec(conn->sql,
                           "SELECT plugin, database = current_database(), active_pid, "
                           "active_pid IS NOT NULL AND active_pid <> pg_backend_pid(), "
                           "COALESCE(confirmed_flush_lsn, '0/0')::text, slot_type "
                           "FROM pg_replication_slots WHERE slot_name = $1",
                           1, params, &status, err, err_len);
    if (!r)
        return status;
    if (PQntuples(r) == 1) {
        info->existed = true;
        if (strcmp(PQgetvalue(r, 0, 5), "logical") != 0 ||
            strcmp(PQgetvalue(r, 0, 0), "pgoutput") != 0 || strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
            status = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                                "replication: slot \"%s\" exists but is not a pgoutput slot of "
                                "this database (plugin %s); drop it or choose another --slot",
                                slot, PQgetvalue(r, 0, 0));
            PQclear(r);
            return status;
        }
        uint64_t lsn;
        if (logpos_parse_lsn(PQgetvalue(r, 0, 4), &lsn))
            info->confirmed_lsn = lsn;
        info->active_elsewhere = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
        PQclear(r);
        if (!info->active_elsewhere)
            info->failover = slot_make_failover(conn, slot);
        return PGC_OK;
    }
    PQclear(r);
    char *ident = PQescapeIdentifier(conn->repl, slot, strlen(slot));
    if (!ident)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "replication: bad slot name");
    char sql[512];
    info->failover = PQserverVersion(conn->repl) >= 170000;
    snprintf(sql, sizeof sql,
             info->failover ? "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'nothing', "
                              "FAILOVER)"
                            : "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT",
             ident);
    PQfreemem(ident);
    r = PQexec(conn->repl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char line[512];
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        status = errbuf_set(err, err_len,
                            PQstatus(conn->repl) != CONNECTION_OK  ? PGC_ERR_CONN
                            : state && strcmp(state, "42501") == 0 ? PGC_ERR_PERMISSION
                                                                   : PGC_ERR_CONFIG,
                            "replication: cannot create slot \"%s\": %s", slot,
                            one_line(PQresultErrorMessage(r), line, sizeof line));
        PQclear(r);
        return status;
    }
    uint64_t lsn;
    if (PQnfields(r) >= 2 && logpos_parse_lsn(PQgetvalue(r, 0, 1), &lsn))
        info->confirmed_lsn = lsn;
    PQclear(r);
    return PGC_OK;
}

int replconn_slot_lookup(replconn *conn, const char *slot, replconn_slot_state *st, char *err,
                         size_t err_len)
{
    int status;
    const char *params[1] = {slot};
    memset(st, 0, sizeof *st);
    PGresult *r = sql_exec(conn->sql,
                           "SELECT pg_current_wal_lsn()::text, s.slot_name IS NOT NULL, "
                           "COALESCE(s.wal_status = 'lost', false), "
                           "COALESCE(s.confirmed_flush_lsn, '0/0')::text FROM (SELECT 1) x "
                           "LEFT JOIN pg_replication_slots s ON s.slot_name = $1",
                           1, params, &status, err, err_len);
    if (!r)
        return status;
    st->exists = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    st->lost = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    bool ok = logpos_parse_lsn(PQgetvalue(r, 0, 0), &st->current_wal_lsn) &&
              logpos_parse_lsn(PQgetvalue(r, 0, 3), &st->confirmed_lsn);
    PQclear(r);
    return ok ? PGC_OK
              : errbuf_set(err, err_len, PGC_ERR_MALFORMED, "replication: unexpected LSN text");
}

int replconn_drop_slot(replconn *conn, const char *slot, char *err, size_t err_len)
{
    int status;
    const char *params[1] = {slot};
    PGresult *r = sql_exec(conn->sql, "SELECT pg_drop_replication_slot($1)", 1, params, &status,
                           err, err_len);
    PQclear(r);
    return status;
}

/* Splits "schema.table" (or "table" in public) into a regclass-ready quoted name. */
static int quote_table(PGconn *c, const char *name, char *out, size_t out_len)
{
    const char *dot = strchr(name, '.');
    char schema[256], table[256];
    if (dot) {
        snprintf(schema, sizeof schema, "%.*s", (int)(dot - name), name);
        snprintf(table, sizeof table, "%s", dot + 1);
    } else {
        snprintf(schema, sizeof schema, "public");
        snprintf(table, sizeof table, "%s", name);
    }
    char *qs = PQescapeIdentifier(c, schema, strlen(schema));
    char *qt = PQescapeIdentifier(c, table, strlen(table));
    int ok = qs && qt;
    if (ok)
        snprintf(out, out_len, "%s.%s", qs, qt);
    PQfreemem(qs);
    PQfreemem(qt);
    return ok ? PGC_OK : PGC_ERR_CONFIG;
}

static int exec_cmd(replconn *conn, const char *sql, char *err, size_t err_len)
{
    int status;
    PGresult *r = sql_exec(conn->sql, sql, 0, NULL, &status, err, err_len);
    PQclear(r);
    return status;
}

int replconn_ensure_publication(replconn *conn, const char *publication, const char *const *tables,
                                int n_tables, replconn_pub_change *change, char *err,
                                size_t err_len)
{
    int status;
    memset(change, 0, sizeof *change);
    char *pub = PQescapeIdentifier(conn->sql, publication, strlen(publication));
    if (!pub)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "replication: bad publication name");
    const char *params[1] = {publication};
    PGresult *r = sql_exec(conn->sql, "SELECT puballtables FROM pg_publication WHERE pubname = $1",
                           1, params, &status, err, err_len);
    if (!r)
        goto out;
    bool exists = PQntuples(r) == 1;
    bool all = exists && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);

    /* Resolve the wanted tables to "schema"."table" and check they exist. */
    char(*want)[600] = n_tables ? calloc((size_t)n_tables, sizeof *want) : NULL;
    if (n_tables && !want) {
        status = errbuf_set(err, err_len, PGC_ERR_NOMEM, "replication: out of memory");
        goto out;
    }
    for (int i = 0; i < n_tables; i++) {
        char q[600], sql[800];
        if (quote_table(conn->sql, tables[i], q, sizeof q) != PGC_OK) {
            status = errbuf_set(err, err_len, PGC_ERR_CONFIG, "replication: bad table name %s",
                                tables[i]);
            goto out_want;
        }
        /* The quoted name is passed as a literal: escape it as one. */
        char *lit = PQescapeLiteral(conn->sql, q, strlen(q));
        snprintf(sql, sizeof sql, "SELECT to_regclass(%s) IS NOT NULL", lit ? lit : "NULL");
        PQfreemem(lit);
        r = sql_exec(conn->sql, sql, 0, NULL, &status, err, err_len);
        if (!r)
            goto out_want;
        bool found = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (!found) {
            status = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                                "replication: table %s in --tables does not exist on the source",
                                tables[i]);
            goto out_want;
        }
        snprintf(want[i], sizeof want[i], "%s", q);
    }

    char sql[8192];
    if (!exists) {
        if (n_tables == 0) {
            snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR ALL TABLES", pub);
        } else {
            size_t n = (size_t)snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR TABLE ", pub);
            for (int i = 0; i < n_tables && n < sizeof sql; i++)
                n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s", i ? ", " : "", want[i]);
        }
        /* PostgreSQL 18 can publish stored generated columns: consumers get their values
         * (appliers leave them to the replica to compute). */
        if (PQserverVersion(conn->sql) >= 180000 && strlen(sql) + 48 < sizeof sql)
            strcat(sql, " WITH (publish_generated_columns = stored)");
        if ((status = exec_cmd(conn, sql, err, err_len)) == PGC_OK)
            change->created = 1;
        goto out_want;
    }
    if (all != (n_tables == 0)) {
        status = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                            "replication: publication \"%s\" is %s but --tables asks for %s; "
                            "drop the publication (DROP PUBLICATION %s) or choose another "
                            "--publication",
                            publication, all ? "FOR ALL TABLES" : "a table list",
                            n_tables ? "a table list" : "all tables", pub);
        goto out_want;
    }
    if (all) {
        status = PGC_OK;
        goto out_want;
    }
    r = sql_exec(conn->sql,
                 /* Quoted the way PQescapeIdentifier quotes (always), so names compare. */
                 "SELECT '\"' || replace(schemaname, '\"', '\"\"') || '\".\"' || "
                 "replace(tablename, '\"', '\"\"') || '\"' FROM pg_publication_tables "
                 "WHERE pubname = $1",
                 1, params, &status, err, err_len);
    if (!r)
        goto out_want;
    for (int i = 0; i < n_tables && status == PGC_OK; i++) {
        bool present = false;
        for (int j = 0; j < PQntuples(r) && !present; j++)
            present = strcmp(PQgetvalue(r, j, 0), want[i]) == 0;
        if (!present) {
            snprintf(sql, sizeof sql, "ALTER PUBLICATION %s ADD TABLE %s", pub, want[i]);
            if ((status = exec_cmd(conn, sql, err, err_len)) == PGC_OK)
                change->added++;
        }
    }
    for (int j = 0; j < PQntuples(r) && status == PGC_OK; j++) {
        bool wanted = false;
        for (int i = 0; i < n_tables && !wanted; i++)
            wanted = strcmp(PQgetvalue(r, j, 0), want[i]) == 0;
        if (!wanted) {
            snprintf(sql, sizeof sql, "ALTER PUBLICATION %s DROP TABLE %s", pub,
                     PQgetvalue(r, j, 0));
            if ((status = exec_cmd(conn, sql, err, err_len)) == PGC_OK)
                change->removed++;
        }
    }
    PQclear(r);
out_want:
    free(want);
out:
    PQfreemem(pub);
    return status;
}

int replconn_start(replconn *conn, const char *slot, const char *publication, uint64_t start_lsn,
                   int proto_version, bool messages, char *err, size_t err_len)
{
    char *ident = PQescapeIdentifier(conn->repl, slot, strlen(slot));
    char *pubident = PQescapeIdentifier(conn->repl, publication, strlen(publication));
    char *publit = pubident ? PQescapeLiteral(conn->repl, pubident, strlen(pubident)) : NULL;
    if (!ident || !publit) {
        PQfreemem(ident);
        PQfreemem(pubident);
        PQfreemem(publit);
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "replication: bad slot or publication");
    }
    char sql[1024], lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(start_lsn, lsn);
    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT %s LOGICAL %s (proto_version '%d', publication_names "
             "%s, binary 'true'%s)",
             ident, lsn, proto_version, publit, messages ? ", messages 'true'" : "");
    PQfreemem(ident);
    PQfreemem(pubident);
    PQfreemem(publit);
    PGresult *r = PQexec(conn->repl, sql);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        char line[512];
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int code = PQstatus(conn->repl) != CONNECTION_OK  ? PGC_ERR_CONN
                   : state && strcmp(state, "55006") == 0 ? PGC_ERR_BUSY
                   : state && strcmp(state, "42501") == 0 ? PGC_ERR_PERMISSION
                                                          : PGC_ERR_CONFIG;
        int status = errbuf_set(err, err_len, code,
                                "replication: START_REPLICATION failed for slot \"%s\": %s", slot,
                                one_line(PQresultErrorMessage(r), line, sizeof line));
        PQclear(r);
        return status;
    }
    PQclear(r);
    if (PQsetnonblocking(conn->repl, 1) != 0)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "replication: cannot set non-blocking mode");
    return PGC_OK;
}

static int stream_ended(replconn *conn, char *err, size_t err_len)
{
    char line[512];
    if (PQstatus(conn->repl) != CONNECTION_OK)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "replication: connection lost: %s",
                          one_line(PQerrorMessage(conn->repl), line, sizeof line));
    PGresult *r = PQgetResult(conn->repl);
    int status =
        errbuf_set(err, err_len, PGC_ERR_STATE, "replication: the server ended the stream: %s",
                   one_line(r ? PQresultErrorMessage(r) : "no reason given", line, sizeof line));
    PQclear(r);
    while ((r = PQgetResult(conn->repl)) != NULL)
        PQclear(r);
    return status;
}

int replconn_read(replconn *conn, int timeout_ms, replconn_event *ev, char *err, size_t err_len)
{
    if (conn->copybuf) {
        PQfreemem(conn->copybuf);
        conn->copybuf = NULL;
    }
    memset(ev, 0, sizeof *ev);
    int64_t start_ms = clock_mono_ms();
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(conn->repl, &buf, 1);
        if (n > 0) {
            conn->copybuf = buf;
            const uint8_t *p = (const uint8_t *)buf;
            if (p[0] == 'w') {
                if (n < 25)
                    return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                      "replication: XLogData of %d bytes is shorter than its "
                                      "header",
                                      n);
                ev->kind = REPLCONN_XLOGDATA;
                ev->wal_start = bigendian_get64(p + 1);
                ev->wal_end = bigendian_get64(p + 9);
                ev->server_time = (int64_t)bigendian_get64(p + 17);
                ev->data = p + 25;
                ev->len = (size_t)n - 25;
                return PGC_OK;
            }
            if (p[0] == 'k') {
                if (n < 18)
                    return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                      "replication: keepalive of %d bytes is too short", n);
                ev->kind = REPLCONN_KEEPALIVE;
                ev->wal_end = bigendian_get64(p + 1);
                ev->server_time = (int64_t)bigendian_get64(p + 9);
                ev->reply_requested = p[17] != 0;
                return PGC_OK;
            }
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "replication: unexpected CopyData message 0x%02x", p[0]);
        }
        if (n == -1)
            return stream_ended(conn, err, err_len);
        if (n == -2) {
            char line[512];
            return errbuf_set(err, err_len, PGC_ERR_CONN, "replication: read failed: %s",
                              one_line(PQerrorMessage(conn->repl), line, sizeof line));
        }
        /* Nothing buffered: wait for the socket, then let libpq read it. */
        int64_t elapsed = clock_mono_ms() - start_ms;
        int left = timeout_ms - (int)elapsed;
        if (left < 0)
            left = 0;
        struct pollfd pfd = {.fd = PQsocket(conn->repl), .events = POLLIN};
        if (PQflush(conn->repl) == 1)
            pfd.events |= POLLOUT;
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno != EINTR)
            return errbuf_set(err, err_len, PGC_ERR_IO, "replication: poll: %s", strerror(errno));
        if (pr > 0 && PQconsumeInput(conn->repl) == 0) {
            char line[512];
            return errbuf_set(err, err_len, PGC_ERR_CONN, "replication: connection lost: %s",
                              one_line(PQerrorMessage(conn->repl), line, sizeof line));
        }
        if (pr == 0 && left == 0) {
            ev->kind = REPLCONN_NONE;
            return PGC_OK;
        }
        if (pr == 0) {
            ev->kind = REPLCONN_NONE;
            return PGC_OK;
        }
    }
}

int replconn_send_status(replconn *conn, uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
                         bool reply_requested, char *err, size_t err_len)
{
    uint8_t msg[34];
    msg[0] = 'r';
    bigendian_put64(msg + 1, write_lsn);
    bigendian_put64(msg + 9, flush_lsn);
    bigendian_put64(msg + 17, apply_lsn);
    bigendian_put64(msg + 25, (uint64_t)replconn_now_pg_us());
    msg[33] = reply_requested ? 1 : 0;
    char line[512];
    if (PQputCopyData(conn->repl, (const char *)msg, sizeof msg) != 1 || PQflush(conn->repl) == -1)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "replication: cannot send status: %s",
                          one_line(PQerrorMessage(conn->repl), line, sizeof line));
    return PGC_OK;
}

int replconn_socket(const replconn *conn)
{
    return PQsocket(conn->repl);
}
