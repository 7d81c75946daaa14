/* DDL replay (see apply_private.h): event triggers log each DDL statement as a row of
 * pgcapture.ddl_logs (its query, and as `activity` the user and search_path it ran with);
 * the replica runs it again, outside pipeline mode, inside its transaction. A row the SQL
 * install could only log as its whole query string (`inexact`) stops the applier, unless
 * the operator applied it by hand and named it with --skip-ddl. */
#include "roles/replica/apply_private.h"

#include "core/status.h"
#include "core/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A text value as a NUL-terminated copy (binary text is its bytes; binary jsonb is a
 * version byte 1 and then its text). */
static char *field_text(const Pgcapture__Field *f, bool jsonb)
{
    if (!f)
        return NULL;
    if (f->value_case == PGCAPTURE__FIELD__VALUE_TEXT)
        return xstrdup(f->text);
    if (f->value_case != PGCAPTURE__FIELD__VALUE_BINARY)
        return NULL;
    const uint8_t *p = f->binary.data;
    size_t n = f->binary.len;
    if (jsonb) {
        if (n < 1 || p[0] != 1)
            return NULL;
        p++;
        n--;
    }
    if (memchr(p, '\0', n))
        return NULL;
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Next word of `p` (letters, digits and '_'), after whitespace; its start and length. */
static const char *next_word(const char *p, size_t *len)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    const char *w = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    *len = (size_t)(p - w);
    return w;
}

static bool word_is(const char *w, size_t len, const char *kw)
{
    return len == strlen(kw) && strncasecmp(w, kw, len) == 0;
}

char *apply_ddl_without_concurrently(const char *query)
{
    size_t n;
    const char *w = next_word(query, &n);
    bool candidate = false;
    if (word_is(w, n, "create")) {
        w = next_word(w + n, &n);
        if (word_is(w, n, "unique"))
            w = next_word(w + n, &n);
        candidate = word_is(w, n, "index");
    } else if (word_is(w, n, "drop")) {
        w = next_word(w + n, &n);
        candidate = word_is(w, n, "index");
    } else if (word_is(w, n, "reindex")) {
        candidate = true;
    }
    if (!candidate)
        return NULL;
    /* CONCURRENTLY comes before the index name, after REINDEX's object kind or option list:
     * the first whole word CONCURRENTLY within the next few words is it. */
    const char *p = w + n;
    for (int i = 0; i < 4 && *p; i++) {
        while (*p && (isspace((unsigned char)*p) || *p == '(' || *p == ')' || *p == ','))
            p++;
        w = next_word(p, &n);
        if (n == 0)
            return NULL;
        if (word_is(w, n, "concurrently")) {
            size_t before = (size_t)(w - query), after = strlen(w + n);
            char *out = xmalloc(before + after + 1);
            memcpy(out, query, before);
            memcpy(out + before, w + n, after + 1);
            return out;
        }
        p = w + n;
    }
    return NULL;
}

/* The statement runs in the search_path and as the user it ran with on the source, so that
 * unqualified names resolve and new objects get the same owner. When the extension's
 * library was not loaded as the DDL started, it could only record the path of its own
 * event trigger ("pg_catalog, pgcapture"): that value means unknown, and the replica
 * session's default is used. */
static const char SET_CONTEXT_SQL[] =
    "SELECT set_config('search_path', CASE WHEN $1::jsonb->>'search_path' "
    "IS NULL OR $1::jsonb->>'search_path' = 'pg_catalog, pgcapture' THEN "
    "current_setting('search_path') ELSE $1::jsonb->>'search_path' END, true), "
    "(SELECT set_config('role', rolname, true) FROM pg_roles WHERE "
    "rolname = $1::jsonb->>'user' AND rolname <> current_user), "
    "$1::jsonb->>'inexact', $1::jsonb->>'objects'";

static const char RESET_CONTEXT_SQL[] =
    "SELECT set_config('search_path', $1, true), set_config('role', 'none', true)";

/* Runs one synchronous statement whose result is of no interest. */
static int exec_discard(apply_conn *ac, const char *sql, const char *val, ExecStatusType want,
                        const char *what, char *err, size_t err_len)
{
    const char *vals[1] = {val};
    int rc;
    PGresult *r = apply_pipeline_exec_sync(ac, sql, val ? 1 : 0, val ? vals : NULL, want, what, err,
                                           err_len, &rc);
    PQclear(r);
    return rc;
}

/* Sets the DDL's search_path and role. *skip when it is the inexact row the operator
 * applied by hand. */
static int set_context(apply_conn *ac, const char *activity, const char *query, log_pos pos,
                       bool *skip, char *err, size_t err_len)
{
    const char *vals[1] = {activity ? activity : "{}"};
    int rc;
    PGresult *r = apply_pipeline_exec_sync(ac, SET_CONTEXT_SQL, 1, vals, PGRES_TUPLES_OK,
                                           "cannot set the DDL's context", err, err_len, &rc);
    if (!r)
        return rc;
    /* The SQL install could not tell this DDL statement apart from the rest of its query
     * string: replaying the string could run DML the log also carries a second time. */
    if (!PQgetisnull(r, 0, 2) && logpos_cmp(pos, ac->skip_ddl) == 0) {
        *skip = true;
    } else if (!PQgetisnull(r, 0, 2)) {
        char lsn[LOGPOS_LSN_LEN];
        logpos_format_lsn(pos.lsn, lsn);
        rc = errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                        "apply: DDL at %s seq %u was logged as its whole query string "
                        "(%s), so replaying it could apply its DML twice. Fix: run the DDL "
                        "on the replica by hand, then restart the applier with --skip-ddl "
                        "%s:%u; to avoid this, send DDL one statement per query string "
                        "outside SQL functions, or use the pgcapture extension. Objects: "
                        "%.120s. Statement: %.200s",
                        lsn, pos.seq, PQgetvalue(r, 0, 2), lsn, pos.seq,
                        PQgetisnull(r, 0, 3) ? "unknown" : PQgetvalue(r, 0, 3), query);
        ac->broken = true;
    }
    PQclear(r);
    return rc;
}

static int run_query(apply_conn *ac, const char *query, log_pos pos, char *err, size_t err_len)
{
    char *rewritten = apply_ddl_without_concurrently(query);
    PGresult *r = PQexec(ac->conn, rewritten ? rewritten : query);
    free(rewritten);
    ExecStatusType st = PQresultStatus(r);
    int rc = PGC_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        char msg[768], lsn[LOGPOS_LSN_LEN];
        apply_pipeline_message(ac->conn, r, msg, sizeof msg);
        logpos_format_lsn(pos.lsn, lsn);
        rc = errbuf_set(err, err_len, apply_pipeline_status_of(ac->conn, r),
                        "apply: DDL at %s seq %u failed: %s (statement: %.300s)", lsn, pos.seq, msg,
                        query);
        ac->broken = true;
    }
    PQclear(r);
    return rc;
}

int apply_ddl_replay(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len)
{
    char *query = field_text(apply_find_field(c->new_, c->n_new_, "query"), false);
    if (!query) {
        char lsn[LOGPOS_LSN_LEN];
        logpos_format_lsn(pos.lsn, lsn);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: DDL row at %s seq %u has no readable query", lsn, pos.seq);
    }
    char *activity = field_text(apply_find_field(c->new_, c->n_new_, "activity"), true);
    int rc;
    bool skip = false;
    if ((rc = apply_dml_flush(ac, err, err_len)) != PGC_OK ||
        (rc = apply_pipeline_leave(ac, err, err_len)) != PGC_OK ||
        (rc = set_context(ac, activity, query, pos, &skip, err, err_len)) != PGC_OK ||
        (!skip && (rc = run_query(ac, query, pos, err, err_len)) != PGC_OK) ||
        (rc = exec_discard(ac, RESET_CONTEXT_SQL, ac->search_path, PGRES_TUPLES_OK,
                           "cannot restore the session after DDL", err, err_len)) != PGC_OK)
        goto done;
    /* Columns, keys and types may have changed: re-read them, re-prepare everything. */
    apply_catalog_clear(ac);
    apply_stmt_forget_all(ac);
    rc = exec_discard(ac, "DEALLOCATE ALL", NULL, PGRES_COMMAND_OK, "cannot deallocate", err,
                      err_len);
    ac->stats.ddl += skip ? 0 : 1;
done:
    free(query);
    free(activity);
    return rc;
}
