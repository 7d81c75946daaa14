/* The replica applier's public API (see apply.h): a session on the replica, its
 * transactions, and the position stored in pgcapture.sources with each commit. The work
 * is done by the parts apply_private.h lists. */
#include "roles/replica/apply_private.h"

#include "core/status.h"
#include "core/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const Pgcapture__Field *apply_find_field(Pgcapture__Field **fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i]->name, name))
            return fields[i];
    return NULL;
}

int apply_begin(apply_conn *ac, char *err, size_t err_len)
{
    if (ac->broken)
        return errbuf_set(err, err_len, PGC_ERR_STATE, "apply: connection unusable after an error");
    if (ac->in_tx)
        return PGC_OK;
    int rc = apply_pipeline_enter(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (PQsendQueryParams(ac->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send BEGIN", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_ANY, 0, (log_pos){0, 0}, "BEGIN");
    ac->in_tx = true;
    return apply_pipeline_sent(ac, err, err_len);
}

int apply_change(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err, size_t err_len)
{
    int rc = apply_begin(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (!c->schema || !c->table)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "apply: change without a table");
    if (!strcmp(c->schema, "pgcapture")) {
        /* DDL travels as rows of pgcapture.ddl_logs; the other tables of the extension are
         * each database's own bookkeeping. */
        if (!strcmp(c->table, "ddl_logs") && c->op == PGCAPTURE__CHANGE__OPERATION__INSERT)
            return apply_ddl_replay(ac, c, pos, err, err_len);
        return PGC_OK;
    }
    return apply_dml_change(ac, c, pos, err, err_len);
}

static const char POSITION_SQL[] =
    "INSERT INTO pgcapture.sources AS s (id, commit, seq, commit_ts, mid, apply_ts) "
    "VALUES ($1, $2::pg_lsn, $3::int, "
    "  timestamptz '2000-01-01 00:00:00+00' + $4::bigint * interval '1 microsecond', "
    "  decode($5, 'hex'), clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET commit = EXCLUDED.commit, seq = EXCLUDED.seq, "
    "  commit_ts = EXCLUDED.commit_ts, mid = EXCLUDED.mid, apply_ts = EXCLUDED.apply_ts "
    "WHERE (s.commit, s.seq) <= (EXCLUDED.commit, EXCLUDED.seq) OR s.commit IS NULL";

int apply_commit(apply_conn *ac, const apply_position *p, char *err, size_t err_len)
{
    int rc = apply_begin(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    char lsn[LOGPOS_LSN_LEN], seq[16], ts[24], mid[APPLY_MID_HEX_LEN];
    logpos_format_lsn(p->pos.lsn, lsn);
    snprintf(seq, sizeof seq, "%u", p->pos.seq);
    snprintf(ts, sizeof ts, "%lld", (long long)p->commit_time);
    const char *vals[5] = {ac->source_id, lsn, seq, ts, apply_position_mid(p, mid)};
    if ((rc = apply_pipeline_enter(ac, err, err_len)) != PGC_OK ||
        (rc = apply_dml_flush(ac, err, err_len)) != PGC_OK)
        return rc;
    /* The WHERE makes a position that would move backwards update nothing: an error. */
    if (PQsendQueryParams(ac->conn, POSITION_SQL, 5, NULL, vals, NULL, NULL, 0) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send the position", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_ROWS, 1, p->pos, "position update of pgcapture.sources");
    if (PQsendQueryParams(ac->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send COMMIT", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_ANY, 0, p->pos, "COMMIT");
    if ((rc = apply_pipeline_sync(ac, err, err_len)) != PGC_OK)
        return rc;
    if ((rc = apply_pipeline_read(ac, -1, err, err_len)) != PGC_OK)
        return rc;
    ac->in_tx = false;
    ac->stats.commits++;
    return PGC_OK;
}

int apply_store_stream(apply_conn *ac, const apply_position *p, char *err, size_t err_len)
{
    if (ac->in_tx)
        return errbuf_set(err, err_len, PGC_ERR_STATE, "apply: a transaction is open");
    char mid[APPLY_MID_HEX_LEN];
    const char *vals[2] = {ac->source_id, apply_position_mid(p, mid)};
    int rc = apply_pipeline_leave(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    PGresult *r = apply_pipeline_exec_sync(
        ac, "UPDATE pgcapture.sources SET mid = decode($2, 'hex') WHERE id = $1", 2, vals,
        PGRES_COMMAND_OK, "cannot store the stream's identity", err, err_len, &rc);
    if (!r)
        return rc;
    PQclear(r);
    return PGC_OK;
}

bool apply_in_transaction(const apply_conn *ac)
{
    return ac->in_tx;
}

const apply_stats *apply_get_stats(const apply_conn *ac)
{
    return &ac->stats;
}

const char *apply_position_mid(const apply_position *p, char out[APPLY_MID_HEX_LEN])
{
    if (!p->stream_seq)
        return NULL;
    if (p->stream_created > 0)
        snprintf(out, APPLY_MID_HEX_LEN, "%016llx%016llx", (unsigned long long)p->stream_seq,
                 (unsigned long long)p->stream_created);
    else
        snprintf(out, APPLY_MID_HEX_LEN, "%016llx", (unsigned long long)p->stream_seq);
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int apply_read_position(PGconn *conn, const char *source_id, apply_position *out, char *err,
                        size_t err_len)
{
    memset(out, 0, sizeof *out);
    const char *vals[1] = {source_id};
    PGresult *r = PQexecParams(
        conn,
        "SELECT commit::text, seq, encode(mid, 'hex'), "
        "  (extract(epoch FROM commit_ts - timestamptz '2000-01-01 00:00:00+00') * 1000000)"
        "::bigint FROM pgcapture.sources WHERE id = $1",
        1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        apply_pipeline_message(conn, r, msg, sizeof msg);
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "apply: cannot read pgcapture.sources: %s",
                          msg);
    }
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        if (!logpos_parse_lsn(PQgetvalue(r, 0, 0), &out->pos.lsn)) {
            PQclear(r);
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "apply: bad position in pgcapture.sources");
        }
        out->pos.seq = PQgetisnull(r, 0, 1) ? 0 : (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        const char *mid = PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2);
        /* Our own rows hold an 8-byte stream sequence, then (since stream identities) the
         * stream's 8-byte created time; anything else is not ours. */
        size_t mid_len = strlen(mid);
        if (mid_len == 16 || mid_len == 32) {
            uint64_t v[2] = {0, 0};
            bool ok = true;
            for (size_t i = 0; i < mid_len; i++) {
                int h = hexval(mid[i]);
                ok = ok && h >= 0;
                v[i / 16] = v[i / 16] << 4 | (uint64_t)(h & 15);
            }
            out->stream_seq = ok ? v[0] : 0;
            out->stream_created = ok && v[1] <= INT64_MAX ? (int64_t)v[1] : 0;
        }
        out->commit_time = PQgetisnull(r, 0, 3) ? 0 : strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        out->found = true;
    }
    PQclear(r);
    return PGC_OK;
}

int apply_open(const char *conninfo, const char *source_id, apply_conn **out, apply_position *pos,
               char *err, size_t err_len)
{
    apply_conn *ac = xcalloc(1, sizeof *ac);
    ac->source_id = xstrdup(source_id);
    ac->conn = PQconnectdb(conninfo);
    int rc = PGC_OK;
    PGresult *r = NULL;
    if (PQstatus(ac->conn) != CONNECTION_OK) {
        rc = apply_pipeline_fail_conn(ac, "cannot connect to the replica", err, err_len);
        goto fail;
    }
    const char *vals[1] = {source_id};
    r = apply_pipeline_exec_sync(ac, "SELECT to_regclass('pgcapture.sources') IS NOT NULL", 0, NULL,
                                 PGRES_TUPLES_OK, "cannot query the replica", err, err_len, &rc);
    if (!r)
        goto fail;
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "apply: the replica database has no pgcapture.sources: run CREATE "
                        "EXTENSION pgcapture there first");
        goto fail;
    }
    PQclear(r);
    r = apply_pipeline_exec_sync(
        ac,
        "SELECT pg_try_advisory_lock(hashtext('pgcapture.replica'), hashtext($1)), "
        "current_setting('search_path')",
        1, vals, PGRES_TUPLES_OK, "cannot take the advisory lock", err, err_len, &rc);
    if (!r)
        goto fail;
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        rc = errbuf_set(err, err_len, PGC_ERR_BUSY,
                        "apply: another applier of source %s is running on this replica "
                        "(advisory lock held); only one may run at a time",
                        source_id);
        goto fail;
    }
    ac->search_path = xstrdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    /* Like a native subscription: user triggers and foreign-key checks ran on the source;
     * the replica's own event triggers must not log the replayed DDL again. */
    r = apply_pipeline_exec_sync(
        ac, "SET session_replication_role = replica", 0, NULL, PGRES_COMMAND_OK,
        "cannot SET session_replication_role = replica (the applier needs a "
        "superuser role)",
        err, err_len, &rc);
    if (!r) {
        if (rc == PGC_ERR_STATE)
            rc = PGC_ERR_PERMISSION;
        goto fail;
    }
    PQclear(r);
    r = NULL;
    if ((rc = apply_read_position(ac->conn, source_id, pos, err, err_len)) != PGC_OK)
        goto fail;
    ac->broken = false;
    *out = ac;
    return PGC_OK;
fail:
    PQclear(r);
    apply_destroy(ac);
    return rc;
}

void apply_set_skip_ddl(apply_conn *ac, log_pos pos)
{
    ac->skip_ddl = pos;
}

void apply_destroy(apply_conn *ac)
{
    if (!ac)
        return;
    PQfinish(ac->conn); /* an open transaction rolls back with the session */
    apply_catalog_clear(ac);
    apply_stmt_free(ac);
    apply_dml_free(ac);
    apply_pipeline_free(ac);
    free(ac->search_path);
    free(ac->source_id);
    free(ac);
}
