/* Row changes as SQL (see apply_private.h): UPDATE and DELETE locate their row by its key
 * or, for REPLICA IDENTITY FULL, by every old value; consecutive INSERTs into one table
 * with one column set go out as one multi-row INSERT, since per-statement overhead on both
 * sides is what limits the apply rate. Statements are prepared and sent in pipeline mode. */
#include "roles/replica/apply_private.h"

#include "core/status.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <string.h>

#define INSERT_MAX_ROWS 100
#define MAX_PARAMS 65535

static const char *op_name(int op)
{
    switch (op) {
    case PGCAPTURE__CHANGE__OPERATION__INSERT:
        return "INSERT";
    case PGCAPTURE__CHANGE__OPERATION__UPDATE:
        return "UPDATE";
    case PGCAPTURE__CHANGE__OPERATION__DELETE:
        return "DELETE";
    case PGCAPTURE__CHANGE__OPERATION__TRUNCATE:
        return "TRUNCATE";
    }
    return "unknown operation";
}

/* WHERE by the key columns (primary key or replica identity index), values from the old
 * row when sent, else from the new one. */
static int where_key(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c, int *np,
                     log_pos pos, char *err, size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    strbuf_puts(&d->key, "|k");
    strbuf_puts(&d->sql, " WHERE ");
    bool first = true;
    for (int i = 0; i < t->ncols; i++) {
        const apply_column *col = &t->cols[i];
        if (!col->is_key)
            continue;
        const Pgcapture__Field *f = apply_find_field(c->old, c->n_old, col->name);
        if (!f)
            f = apply_find_field(c->new_, c->n_new_, col->name);
        if (!f) {
            char lsn[LOGPOS_LSN_LEN];
            logpos_format_lsn(pos.lsn, lsn);
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "apply: %s of %s at %s seq %u has no value for key column %s",
                              op_name(c->op), t->qname, lsn, pos.seq, col->name);
        }
        int rc = apply_stmt_set_param(ac, *np, col, f, err, err_len);
        if (rc != PGC_OK)
            return rc;
        if (!first)
            strbuf_puts(&d->sql, " AND ");
        first = false;
        strbuf_sql_ident(&d->sql, col->name);
        strbuf_printf(&d->sql, " = $%d", ++*np);
    }
    return PGC_OK;
}

/* WHERE by every old column, for REPLICA IDENTITY FULL without a key. The log keeps the
 * NULL fields of old (the Capture stream drops them): IS NOT DISTINCT FROM NULL keeps a row
 * that has a value there from matching. */
static int where_full(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c, int *np,
                      log_pos pos, char *err, size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(pos.lsn, lsn);
    if (c->n_old == 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: %s of REPLICA IDENTITY FULL table %s at %s seq %u carries no "
                          "old row (is the source table REPLICA IDENTITY FULL too?)",
                          op_name(c->op), t->qname, lsn, pos.seq);
    /* Duplicated rows are indistinguishable: change exactly one of them, as the source did. */
    strbuf_puts(&d->key, "|f");
    strbuf_puts(&d->sql, " WHERE ctid = (SELECT ctid FROM ");
    strbuf_puts(&d->sql, t->qname);
    strbuf_puts(&d->sql, " WHERE ");
    for (size_t i = 0; i < c->n_old; i++) {
        const apply_column *col = apply_catalog_column(t, c->old[i]->name);
        if (!col)
            return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                              "apply: column %s of %s at %s seq %u does not exist on the replica",
                              c->old[i]->name, t->qname, lsn, pos.seq);
        int rc = apply_stmt_set_param(ac, *np, col, c->old[i], err, err_len);
        if (rc != PGC_OK)
            return rc;
        if (i > 0)
            strbuf_puts(&d->sql, " AND ");
        strbuf_sql_ident(&d->sql, col->name);
        strbuf_printf(&d->sql, " IS NOT DISTINCT FROM $%d", ++*np);
        strbuf_putc(&d->key, ',');
        strbuf_puts(&d->key, col->name);
    }
    strbuf_puts(&d->sql, " LIMIT 1)");
    return PGC_OK;
}

/* Appends the WHERE clause that locates the row of an UPDATE or DELETE to stmt.sql and
 * stmt.key, setting parameters from *np on. */
static int build_where(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c, int *np,
                       log_pos pos, char *err, size_t err_len)
{
    if (t->nkeys > 0)
        return where_key(ac, t, c, np, pos, err, err_len);
    if (t->replident == 'f')
        return where_full(ac, t, c, np, pos, err, err_len);
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(pos.lsn, lsn);
    return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                      "apply: %s of %s at %s seq %u: the table has no primary key, no "
                      "replica identity index and is not REPLICA IDENTITY FULL, so its rows "
                      "cannot be located; add a primary key (or ALTER TABLE %s REPLICA "
                      "IDENTITY FULL) on the source, and on the replica too",
                      op_name(c->op), t->qname, lsn, pos.seq, t->qname);
}

static void insert_reserve(apply_insert_batch *b, size_t n)
{
    if (n <= b->cap)
        return;
    b->cap = b->cap ? b->cap : 256;
    while (b->cap < n)
        b->cap *= 2;
    b->params = xrealloc(b->params, b->cap * sizeof *b->params);
}

/* The string buffers never abort: one that could not grow is caught before use. */
static int batch_status(apply_conn *ac, char *err, size_t err_len)
{
    const apply_insert_batch *b = &ac->ins;
    if (strbuf_status(&b->key) == PGC_OK && strbuf_status(&b->cols) == PGC_OK &&
        strbuf_status(&b->data) == PGC_OK && strbuf_status(&b->rowkey) == PGC_OK)
        return PGC_OK;
    ac->broken = true;
    return errbuf_set(err, err_len, PGC_ERR_NOMEM, "apply: out of memory batching INSERTs");
}

int apply_dml_flush(apply_conn *ac, char *err, size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    apply_insert_batch *b = &ac->ins;
    if (!b->t)
        return PGC_OK;
    int rc = batch_status(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    int n = b->nrows * b->ncols;
    apply_stmt_reserve(ac, (size_t)n);
    strbuf_reset(&d->key);
    strbuf_puts(&d->key, b->key.data);
    strbuf_printf(&d->key, "#%d", b->nrows);
    strbuf_reset(&d->sql);
    strbuf_puts(&d->sql, "INSERT INTO ");
    strbuf_puts(&d->sql, b->t->qname);
    strbuf_puts(&d->sql, b->cols.data);
    strbuf_puts(&d->sql, " VALUES ");
    for (int r = 0, k = 1; r < b->nrows; r++) {
        strbuf_puts(&d->sql, r ? ", (" : "(");
        for (int i = 0; i < b->ncols; i++, k++)
            strbuf_printf(&d->sql, i ? ", $%d" : "$%d", k);
        strbuf_putc(&d->sql, ')');
    }
    for (int i = 0; i < n; i++) {
        const apply_insert_param *p = &b->params[i];
        d->types[i] = p->type;
        d->vals[i] = p->off < 0 ? NULL : b->data.data + p->off;
        d->lens[i] = p->len;
        d->fmts[i] = p->fmt;
    }
    const char *name = NULL;
    if ((rc = apply_stmt_prepare(ac, n, b->first, &name, err, err_len)) != PGC_OK)
        return rc;
    /* apply_stmt_prepare may have read results, never touching the parameters. */
    if (PQsendQueryPrepared(ac->conn, name, n, d->vals, d->lens, d->fmts, 0) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send an INSERT", err, err_len);
    if (b->nrows == 1)
        apply_pipeline_expect(ac, APPLY_EXPECT_ROWS, 1, b->first, "INSERT of %s", b->t->qname);
    else
        apply_pipeline_expect(ac, APPLY_EXPECT_ROWS, (uint32_t)b->nrows, b->first,
                              "INSERT of %s (%d rows, the first)", b->t->qname, b->nrows);
    ac->stats.statements++;
    b->t = NULL;
    b->nrows = 0;
    return apply_pipeline_sent(ac, err, err_len);
}

/* Starts a batch for rows like `c` (its key is in rowkey). */
static void insert_start(apply_insert_batch *b, const apply_table *t, const Pgcapture__Change *c,
                         log_pos pos)
{
    b->t = t;
    b->ncols = (int)c->n_new_;
    b->nrows = 0;
    b->first = pos;
    strbuf_reset(&b->key);
    strbuf_puts(&b->key, b->rowkey.data);
    strbuf_reset(&b->cols);
    strbuf_puts(&b->cols, " (");
    for (int i = 0; i < b->ncols; i++) {
        if (i)
            strbuf_puts(&b->cols, ", ");
        strbuf_sql_ident(&b->cols, c->new_[i]->name);
    }
    strbuf_putc(&b->cols, ')');
    strbuf_reset(&b->data);
}

/* Copies the parameters of one row, as set in stmt.vals..., into the batch. */
static void insert_copy_row(apply_conn *ac, int ncols)
{
    const apply_stmts *d = &ac->stmt;
    apply_insert_batch *b = &ac->ins;
    size_t base = (size_t)b->nrows * (size_t)ncols;
    for (int i = 0; i < ncols; i++) {
        apply_insert_param *p = &b->params[base + (size_t)i];
        p->type = d->types[i];
        p->fmt = d->fmts[i];
        p->len = d->lens[i];
        if (!d->vals[i]) {
            p->off = -1;
            continue;
        }
        p->off = (long)b->data.len;
        /* Text values need their NUL; binary ones carry their length. */
        size_t len = d->fmts[i] ? (size_t)d->lens[i] : strlen(d->vals[i]);
        strbuf_append(&b->data, d->vals[i], len);
        strbuf_putc(&b->data, '\0');
    }
}

static int insert_add(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c, log_pos pos,
                      char *err, size_t err_len)
{
    apply_insert_batch *b = &ac->ins;
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(pos.lsn, lsn);
    if (c->n_new_ == 0 || c->n_new_ > MAX_PARAMS)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: INSERT into %s at %s seq %u has %zu columns", t->qname, lsn,
                          pos.seq, c->n_new_);
    strbuf_reset(&b->rowkey);
    strbuf_printf(&b->rowkey, "%d|", (int)c->op);
    strbuf_puts(&b->rowkey, t->qname);
    for (size_t i = 0; i < c->n_new_; i++) {
        if (!apply_catalog_column(t, c->new_[i]->name))
            return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                              "apply: INSERT into %s at %s seq %u: column %s does not exist on "
                              "the replica (was a DDL statement missed?)",
                              t->qname, lsn, pos.seq, c->new_[i]->name);
        strbuf_putc(&b->rowkey, ',');
        strbuf_puts(&b->rowkey, c->new_[i]->name);
    }
    int ncols = (int)c->n_new_;
    int max_rows = MAX_PARAMS / ncols < INSERT_MAX_ROWS ? MAX_PARAMS / ncols : INSERT_MAX_ROWS;
    int rc = batch_status(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (b->t && (b->t != t || b->nrows >= max_rows || strcmp(b->key.data, b->rowkey.data) != 0) &&
        (rc = apply_dml_flush(ac, err, err_len)) != PGC_OK)
        return rc;
    if (!b->t)
        insert_start(b, t, c, pos);
    apply_stmt_reserve(ac, (size_t)ncols);
    apply_stmt_release(ac);
    insert_reserve(b, (size_t)(b->nrows + 1) * (size_t)ncols);
    for (int i = 0; i < ncols; i++) {
        const apply_column *col = apply_catalog_column(t, c->new_[i]->name);
        if ((rc = apply_stmt_set_param(ac, i, col, c->new_[i], err, err_len)) != PGC_OK) {
            apply_stmt_release(ac);
            return rc;
        }
    }
    insert_copy_row(ac, ncols);
    apply_stmt_release(ac);
    b->nrows++;
    b->last = pos;
    return PGC_OK;
}

/* TRUNCATE ONLY ... CASCADE: whatever references the table was truncated on the source in
 * the same command (or the source would have refused), and arrives as its own TRUNCATE. */
static int truncate_table(apply_conn *ac, const apply_table *t, log_pos pos, char *err,
                          size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    int rc = apply_dml_flush(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    strbuf_reset(&d->sql);
    strbuf_puts(&d->sql, "TRUNCATE ONLY ");
    strbuf_puts(&d->sql, t->qname);
    strbuf_puts(&d->sql, " CASCADE");
    if (strbuf_status(&d->sql) != PGC_OK) {
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "apply: out of memory building a TRUNCATE");
    }
    if (PQsendQueryParams(ac->conn, d->sql.data, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return apply_pipeline_fail_conn(ac, "cannot send a TRUNCATE", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_ANY, 0, pos, "TRUNCATE of %s", t->qname);
    ac->stats.truncates++;
    return apply_pipeline_sent(ac, err, err_len);
}

/* UPDATE ... SET of the columns sent: an unchanged TOAST value the change leaves out stays
 * as it is; one the agent filled in from the old row (REPLICA IDENTITY FULL) is set to the
 * value it has. *np is left 0 when nothing is to be set. */
static int build_update(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c, int *np,
                        log_pos pos, char *err, size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    strbuf_puts(&d->sql, "UPDATE ");
    strbuf_puts(&d->sql, t->qname);
    strbuf_puts(&d->sql, " SET ");
    for (size_t i = 0; i < c->n_new_; i++) {
        const apply_column *col = apply_catalog_column(t, c->new_[i]->name);
        if (!col) {
            char lsn[LOGPOS_LSN_LEN];
            logpos_format_lsn(pos.lsn, lsn);
            return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                              "apply: %s of %s at %s seq %u: a column it sets does not exist on "
                              "the replica (was a DDL statement missed?)",
                              op_name(c->op), t->qname, lsn, pos.seq);
        }
        int rc = apply_stmt_set_param(ac, *np, col, c->new_[i], err, err_len);
        if (rc != PGC_OK)
            return rc;
        if (i > 0)
            strbuf_puts(&d->sql, ", ");
        strbuf_sql_ident(&d->sql, col->name);
        strbuf_printf(&d->sql, " = $%d", ++*np);
        strbuf_putc(&d->key, ',');
        strbuf_puts(&d->key, col->name);
    }
    if (*np == 0)
        return PGC_OK;
    return build_where(ac, t, c, np, pos, err, err_len);
}

/* UPDATE or DELETE of one row: built, prepared on first use, sent. */
static int update_or_delete(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c,
                            log_pos pos, char *err, size_t err_len)
{
    apply_stmts *d = &ac->stmt;
    apply_stmt_reserve(ac, c->n_new_ + c->n_old + (size_t)t->ncols);
    apply_stmt_release(ac);
    strbuf_reset(&d->sql);
    strbuf_reset(&d->key);
    strbuf_printf(&d->key, "%d|", (int)c->op);
    strbuf_puts(&d->key, t->qname);
    int np = 0, rc;
    if (c->op == PGCAPTURE__CHANGE__OPERATION__UPDATE) {
        rc = build_update(ac, t, c, &np, pos, err, err_len);
        if (rc == PGC_OK && np == 0)
            return PGC_OK;
    } else {
        strbuf_puts(&d->sql, "DELETE FROM ");
        strbuf_puts(&d->sql, t->qname);
        rc = build_where(ac, t, c, &np, pos, err, err_len);
    }
    const char *name = NULL;
    if (rc != PGC_OK || (rc = apply_stmt_prepare(ac, np, pos, &name, err, err_len)) != PGC_OK) {
        apply_stmt_release(ac);
        return rc;
    }
    int sent = PQsendQueryPrepared(ac->conn, name, np, d->vals, d->lens, d->fmts, 0);
    apply_stmt_release(ac); /* libpq copied the values into its output buffer */
    if (sent != 1)
        return apply_pipeline_fail_conn(ac, "cannot send a statement", err, err_len);
    apply_pipeline_expect(ac, APPLY_EXPECT_ROWS, 1, pos, "%s of %s", op_name(c->op), t->qname);
    ac->stats.statements++;
    return apply_pipeline_sent(ac, err, err_len);
}

static int change_table(apply_conn *ac, const apply_table *t, const Pgcapture__Change *c,
                        log_pos pos, char *err, size_t err_len)
{
    int rc = apply_pipeline_enter(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    switch (c->op) {
    case PGCAPTURE__CHANGE__OPERATION__TRUNCATE:
        return truncate_table(ac, t, pos, err, err_len);
    case PGCAPTURE__CHANGE__OPERATION__INSERT:
        return insert_add(ac, t, c, pos, err, err_len);
    case PGCAPTURE__CHANGE__OPERATION__UPDATE:
    case PGCAPTURE__CHANGE__OPERATION__DELETE:
        if ((rc = apply_dml_flush(ac, err, err_len)) != PGC_OK)
            return rc;
        return update_or_delete(ac, t, c, pos, err, err_len);
    }
    char lsn[LOGPOS_LSN_LEN];
    logpos_format_lsn(pos.lsn, lsn);
    return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                      "apply: change of %s at %s seq %u has unknown operation %d", t->qname, lsn,
                      pos.seq, (int)c->op);
}

int apply_dml_change(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len)
{
    const apply_table *t = apply_catalog_find(ac, c->schema, c->table);
    int rc;
    /* The catalog is read outside pipeline mode: what was held back goes out first. */
    if (!t && ((rc = apply_dml_flush(ac, err, err_len)) != PGC_OK ||
               (rc = apply_pipeline_leave(ac, err, err_len)) != PGC_OK ||
               (rc = apply_catalog_load(ac, c->schema, c->table, &t, err, err_len)) != PGC_OK))
        return rc;
    if (t->ngenerated == 0 || c->n_new_ == 0)
        return change_table(ac, t, c, pos, err, err_len);
    /* Generated columns (PostgreSQL 18 publishes them with publish_generated_columns) are
     * the replica's to compute: the new row goes without them. */
    Pgcapture__Field **kept = xmalloc(c->n_new_ * sizeof *kept);
    Pgcapture__Change without = *c;
    without.new_ = kept;
    without.n_new_ = 0;
    for (size_t i = 0; i < c->n_new_; i++) {
        const apply_column *col = apply_catalog_column(t, c->new_[i]->name);
        if (!col || !col->generated)
            kept[without.n_new_++] = c->new_[i];
    }
    rc = change_table(ac, t, &without, pos, err, err_len);
    free(kept);
    return rc;
}

void apply_dml_free(apply_conn *ac)
{
    apply_insert_batch *b = &ac->ins;
    free(b->params);
    strbuf_free(&b->data);
    strbuf_free(&b->key);
    strbuf_free(&b->cols);
    strbuf_free(&b->rowkey);
}
