/* The applier's libpq traffic (see apply_private.h).
 *
 * Every command sent in pipeline mode pushes an entry on a FIFO that says what result to
 * expect and which change it belongs to, so an error read back later names the failing
 * change. A sync point is sent every SYNC_EVERY statements and at most two are left
 * outstanding, so the server never blocks on results we have not read and memory stays
 * bounded whatever the transaction size. */
#include "roles/replica/apply_private.h"

#include "core/status.h"
#include "core/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SYNC_EVERY 1000

/* Transient server errors (connection, resources, operator intervention, serialization and
 * deadlock) are worth a retry; anything else, such as a constraint violation, needs a
 * person and stops the applier. */
int apply_pipeline_status_of(PGconn *conn, const PGresult *r)
{
    if (PQstatus(conn) == CONNECTION_BAD)
        return PGC_ERR_CONN;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return PGC_ERR_CONN;
    if (!strncmp(state, "08", 2) || !strncmp(state, "40", 2) || !strncmp(state, "53", 2) ||
        !strncmp(state, "57", 2) || !strcmp(state, "55P03"))
        return PGC_ERR_CONN;
    return PGC_ERR_STATE;
}

void apply_pipeline_message(PGconn *conn, const PGresult *r, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static int fail_result(apply_conn *ac, const PGresult *r, const apply_pending *p, char *err,
                       size_t err_len)
{
    char msg[768], lsn[LOGPOS_LSN_LEN];
    apply_pipeline_message(ac->conn, r, msg, sizeof msg);
    logpos_format_lsn(p->pos.lsn, lsn);
    ac->broken = true;
    return errbuf_set(err, err_len, apply_pipeline_status_of(ac->conn, r),
                      "apply: %s at %s seq %u failed: %s", p->what, lsn, p->pos.seq, msg);
}

int apply_pipeline_fail_conn(apply_conn *ac, const char *what, char *err, size_t err_len)
{
    char msg[512];
    apply_pipeline_message(ac->conn, NULL, msg, sizeof msg);
    ac->broken = true;
    return errbuf_set(err, err_len, PGC_ERR_CONN, "apply: %s: %s", what, msg);
}

void apply_pipeline_expect(apply_conn *ac, apply_expect expect, uint32_t rows, log_pos pos,
                           const char *fmt, ...)
{
    apply_pipeline *pl = &ac->pipe;
    if (pl->len == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 2048;
        apply_pending *q = xmalloc(cap * sizeof *q);
        for (size_t i = 0; i < pl->len; i++)
            q[i] = pl->q[(pl->head + i) % pl->cap];
        free(pl->q);
        pl->q = q;
        pl->cap = cap;
        pl->head = 0;
    }
    apply_pending *p = &pl->q[(pl->head + pl->len) % pl->cap];
    p->expect = (uint8_t)expect;
    p->rows = rows;
    p->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->what, sizeof p->what, fmt, ap);
    va_end(ap);
    pl->len++;
}

/* Checks one statement's result against what it expects; PGC_OK or the error. */
static int check_result(apply_conn *ac, PGresult *r, const apply_pending *p, char *err,
                        size_t err_len)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE)
        return fail_result(ac, r, p, err, err_len);
    if (st == PGRES_PIPELINE_ABORTED) {
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_STATE, "apply: pipeline aborted at %s", p->what);
    }
    if (p->expect == APPLY_EXPECT_ROWS && strtoul(PQcmdTuples(r), NULL, 10) != p->rows) {
        char lsn[LOGPOS_LSN_LEN];
        logpos_format_lsn(p->pos.lsn, lsn);
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_STATE,
                          "apply: %s at %s seq %u affected %s rows, expected %u: the replica "
                          "has diverged from the source",
                          p->what, lsn, p->pos.seq, PQcmdTuples(r), p->rows);
    }
    return PGC_OK;
}

int apply_pipeline_read(apply_conn *ac, int syncs, char *err, size_t err_len)
{
    apply_pipeline *pl = &ac->pipe;
    int rc = PGC_OK;
    while (pl->len > 0 && syncs != 0) {
        apply_pending p = pl->q[pl->head];
        pl->head = (pl->head + 1) % pl->cap;
        pl->len--;
        PGresult *r = PQgetResult(ac->conn);
        if (!r) {
            if (rc == PGC_OK)
                rc = apply_pipeline_fail_conn(ac, "connection lost while reading results", err,
                                              err_len);
            return rc;
        }
        if (p.expect == APPLY_EXPECT_SYNC) {
            if (PQresultStatus(r) != PGRES_PIPELINE_SYNC && rc == PGC_OK)
                rc = fail_result(ac, r, &p, err, err_len);
            PQclear(r);
            pl->syncs_out--;
            if (syncs > 0)
                syncs--;
            continue;
        }
        /* The first error wins; the rest are still read, to stay in step. */
        if (rc == PGC_OK)
            rc = check_result(ac, r, &p, err, err_len);
        PQclear(r);
        /* Every command's results end with NULL. */
        while ((r = PQgetResult(ac->conn)) != NULL)
            PQclear(r);
    }
    return rc;
}

int apply_pipeline_sync(apply_conn *ac, char *err, size_t err_len)
{
    if (PQpipelineSync(ac->conn) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send a pipeline sync", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_SYNC, 0, (log_pos){0, 0}, "sync");
    ac->pipe.syncs_out++;
    ac->pipe.since_sync = 0;
    return PGC_OK;
}

int apply_pipeline_sent(apply_conn *ac, char *err, size_t err_len)
{
    if (++ac->pipe.since_sync < SYNC_EVERY)
        return PGC_OK;
    int rc = apply_pipeline_sync(ac, err, err_len);
    if (rc == PGC_OK && ac->pipe.syncs_out > 1)
        rc = apply_pipeline_read(ac, 1, err, err_len);
    return rc;
}

int apply_pipeline_enter(apply_conn *ac, char *err, size_t err_len)
{
    if (ac->pipe.active)
        return PGC_OK;
    if (PQenterPipelineMode(ac->conn) != 1)
        return apply_pipeline_fail_conn(ac, "cannot enter pipeline mode", err, err_len);
    ac->pipe.active = true;
    return PGC_OK;
}

int apply_pipeline_leave(apply_conn *ac, char *err, size_t err_len)
{
    if (!ac->pipe.active)
        return PGC_OK;
    int rc = PGC_OK;
    if (ac->pipe.len > 0 || ac->pipe.since_sync > 0)
        rc = apply_pipeline_sync(ac, err, err_len);
    if (rc == PGC_OK)
        rc = apply_pipeline_read(ac, -1, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (PQexitPipelineMode(ac->conn) != 1)
        return apply_pipeline_fail_conn(ac, "cannot leave pipeline mode", err, err_len);
    ac->pipe.active = false;
    return PGC_OK;
}

void apply_pipeline_free(apply_conn *ac)
{
    free(ac->pipe.q);
    ac->pipe.q = NULL;
}

PGresult *apply_pipeline_exec_sync(apply_conn *ac, const char *sql, int n, const char *const *vals,
                                   ExecStatusType want, const char *what, char *err, size_t err_len,
                                   int *rc)
{
    PGresult *r = PQexecParams(ac->conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        char msg[768];
        apply_pipeline_message(ac->conn, r, msg, sizeof msg);
        *rc = errbuf_set(err, err_len, apply_pipeline_status_of(ac->conn, r), "apply: %s: %s", what,
                         msg);
        ac->broken = true;
        PQclear(r);
        return NULL;
    }
    *rc = PGC_OK;
    return r;
}
