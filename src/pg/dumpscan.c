/* Dump items read from a replica by TID range (see dumpscan.h). The COPY is read one
 * CopyData message at a time (PostgreSQL sends one row per message) and decoded as it
 * comes; each row is written as a Change right away, into one of two buffers, because the
 * row after it must be read before it is handed out: that is how the last row of the item
 * is known (it carries data = {1} downstream). */
#include "pg/dumpscan.h"

#include "codec/copybin.h"
#include "codec/dumprow.h"
#include "core/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL's largest block number is 0xFFFFFFFE; past it a range has no upper end. */
#define MAX_BLOCK_NUMBER 0xFFFFFFFEu
/* A row larger than this is refused (PostgreSQL's own limit on a field is 1 GB). */
#define MAX_ROW_BYTES ((size_t)1 << 30)

typedef struct rowbuf {
    uint8_t *data;
    size_t len, cap;
} rowbuf;

struct dumpscan {
    PGconn *conn;
    bool in_txn, in_copy;
    uint64_t lsn;
    uint32_t seq;
    char *schema, *table;

    int ncols;
    char **names;
    uint32_t *oids;

    copybin *dec;
    dumprow *enc;
    char *chunk;   /* the CopyData message being decoded (libpq's, PQfreemem) */
    bool trailer;  /* the COPY's trailer has been read */
    rowbuf row[2]; /* the row handed out last, and the one read after it */
    int cur;       /* row[cur] is the next to hand out, when have_row */
    bool have_row; /* row[cur] holds a row not handed out yet */
    bool primed;   /* the first row has been read */
    uint64_t rows;
};

static int query_failed(dumpscan *d, PGresult *r, const char *what, char *err, size_t err_len)
{
    int status = PQstatus(d->conn) == CONNECTION_OK ? PGC_ERR_IO : PGC_ERR_CONN;
    errbuf_set(err, err_len, status, "dump %s.%s: %s: %s", d->schema, d->table, what,
               r ? PQresultErrorMessage(r) : PQerrorMessage(d->conn));
    PQclear(r);
    return status;
}

static int exec_ok(dumpscan *d, const char *sql, const char *what, char *err, size_t err_len)
{
    PGresult *r = PQexec(d->conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return query_failed(d, r, what, err, err_len);
    PQclear(r);
    return PGC_OK;
}

/* The applied position, read in the dump's own snapshot. */
static int read_position(dumpscan *d, const char *source_id, char *err, size_t err_len)
{
    const char *params[1] = {source_id};
    PGresult *r = PQexecParams(d->conn,
                               "SELECT (commit - '0/0'::pg_lsn)::text, coalesce(seq, 0) "
                               "FROM pgcapture.sources WHERE ($1::text IS NULL OR id = $1) "
                               "AND commit IS NOT NULL",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return query_failed(d, r, "reading pgcapture.sources", err, err_len);
    if (PQntuples(r) != 1) {
        int n = PQntuples(r);
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_STATE,
                          "dump %s.%s: the replica has %s applied position%s%s%s", d->schema,
                          d->table, n == 0 ? "no" : "more than one",
                          source_id ? " for source " : "", source_id ? source_id : "",
                          n == 0 ? " yet (is its applier running?)" : " (name the source)");
    }
    d->lsn = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    d->seq = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return PGC_OK;
}

/* Column names and type OIDs of the table, in column order; PGC_ERR_NOT_FOUND when the
 * table does not exist. Also builds the cursor's select list. */
static int read_columns(dumpscan *d, char **select_list, char *err, size_t err_len)
{
    const char *params[2] = {d->schema, d->table};
    PGresult *r = PQexecParams(d->conn,
                               "SELECT a.attname, a.atttypid, quote_ident(a.attname) "
                               "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "JOIN pg_attribute a ON a.attrelid = c.oid "
                               "WHERE n.nspname = $1 AND c.relname = $2 "
                               "AND c.relkind IN ('r', 'p', 'm') "
                               "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return query_failed(d, r, "reading the columns", err, err_len);
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                          "dump %s.%s: no such table on the replica", d->schema, d->table);
    }
    d->names = calloc((size_t)n, sizeof *d->names);
    d->oids = calloc((size_t)n, sizeof *d->oids);
    size_t list_len = 1;
    for (int i = 0; i < n; i++)
        list_len += strlen(PQgetvalue(r, i, 2)) + 2;
    char *list = malloc(list_len);
    if (!d->names || !d->oids || !list) {
        free(list);
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
    }
    d->ncols = n;
    list[0] = '\0';
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        d->names[i] = strdup(PQgetvalue(r, i, 0));
        if (!d->names[i]) {
            free(list);
            PQclear(r);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
        }
        d->oids[i] = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        off += (size_t)snprintf(list + off, list_len - off, "%s%s", i ? ", " : "",
                                PQgetvalue(r, i, 2));
    }
    PQclear(r);
    *select_list = list;
    return PGC_OK;
}

static int start_copy(dumpscan *d, const char *select_list, const dumpscan_item *item, char *err,
                      size_t err_len)
{
    char *qs = PQescapeIdentifier(d->conn, d->schema, strlen(d->schema));
    char *qt = PQescapeIdentifier(d->conn, d->table, strlen(d->table));
    char range[96];
    /* A TID range scan (PG 14+) reads exactly the pages asked for. */
    if (item->page_end >= MAX_BLOCK_NUMBER)
        snprintf(range, sizeof range, "ctid >= '(%" PRIu32 ",0)'::tid", item->page_begin);
    else
        snprintf(range, sizeof range,
                 "ctid >= '(%" PRIu32 ",0)'::tid AND ctid < '(%" PRIu32 ",0)'::tid",
                 item->page_begin, item->page_end + 1);
    size_t len =
        strlen(select_list) + (qs ? strlen(qs) : 0) + (qt ? strlen(qt) : 0) + strlen(range) + 96;
    char *sql = malloc(len);
    int status = PGC_OK;
    if (!qs || !qt || !sql) {
        status = errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
    } else {
        snprintf(sql, len, "COPY (SELECT %s FROM %s.%s WHERE %s) TO STDOUT (FORMAT binary)",
                 select_list, qs, qt, range);
        PGresult *r = PQexec(d->conn, sql);
        if (PQresultStatus(r) != PGRES_COPY_OUT) {
            status = query_failed(d, r, "starting the COPY", err, err_len);
        } else {
            PQclear(r);
            d->in_copy = true;
        }
    }
    free(sql);
    PQfreemem(qs);
    PQfreemem(qt);
    return status;
}

int dumpscan_create(PGconn *conn, const char *source_id, const dumpscan_item *item, dumpscan **out,
                    char *err, size_t err_len)
{
    if (!item->schema || !*item->schema || !item->table || !*item->table)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "dump: empty schema or table name");
    if (item->page_end < item->page_begin)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "dump %s.%s: page_end %" PRIu32 " is before page_begin %" PRIu32,
                          item->schema, item->table, item->page_end, item->page_begin);
    dumpscan *d = calloc(1, sizeof *d);
    if (!d)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
    d->conn = conn;
    d->schema = strdup(item->schema);
    d->table = strdup(item->table);
    if (!d->schema || !d->table || copybin_create(MAX_ROW_BYTES, &d->dec) != PGC_OK) {
        dumpscan_destroy(d);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
    }
    char *select_list = NULL;
    int status = exec_ok(d, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                         "starting the snapshot", err, err_len);
    if (status == PGC_OK) {
        d->in_txn = true;
        status = read_position(d, source_id, err, err_len);
    }
    if (status == PGC_OK)
        status = read_columns(d, &select_list, err, err_len);
    if (status == PGC_OK &&
        dumprow_create(d->schema, d->table, (size_t)d->ncols, (const char *const *)d->names,
                       d->oids, &d->enc) != PGC_OK)
        status = errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory");
    if (status == PGC_OK)
        status = start_copy(d, select_list, item, err, err_len);
    free(select_list);
    if (status != PGC_OK) {
        dumpscan_destroy(d);
        return status;
    }
    *out = d;
    return PGC_OK;
}

/* Ends a COPY still running (the item was not read to its end): cancel it and read what
 * is left, so the connection can roll back and serve the next item. */
static void abort_copy(dumpscan *d)
{
    PGcancel *cancel = PQgetCancel(d->conn);
    if (cancel) {
        char buf[256];
        PQcancel(cancel, buf, sizeof buf);
        PQfreeCancel(cancel);
    }
    char *data;
    while (PQgetCopyData(d->conn, &data, 0) > 0)
        PQfreemem(data);
    PGresult *r;
    while ((r = PQgetResult(d->conn)) != NULL)
        PQclear(r);
    d->in_copy = false;
}

void dumpscan_destroy(dumpscan *d)
{
    if (!d)
        return;
    if (d->in_copy && PQstatus(d->conn) == CONNECTION_OK)
        abort_copy(d);
    PQfreemem(d->chunk);
    if (d->in_txn && PQstatus(d->conn) == CONNECTION_OK)
        PQclear(PQexec(d->conn, "ROLLBACK"));
    for (int i = 0; i < d->ncols; i++)
        free(d->names[i]);
    free(d->names);
    free(d->oids);
    copybin_destroy(d->dec);
    dumprow_destroy(d->enc);
    free(d->row[0].data);
    free(d->row[1].data);
    free(d->schema);
    free(d->table);
    free(d);
}

uint64_t dumpscan_applied_lsn(const dumpscan *d)
{
    return d->lsn;
}

uint32_t dumpscan_applied_seq(const dumpscan *d)
{
    return d->seq;
}

uint64_t dumpscan_rows(const dumpscan *d)
{
    return d->rows;
}

/* The COPY has sent everything: its command status must say it succeeded. */
static int end_copy(dumpscan *d, char *err, size_t err_len)
{
    d->in_copy = false;
    PGresult *r = PQgetResult(d->conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return query_failed(d, r, "reading the rows", err, err_len);
    PQclear(r);
    while ((r = PQgetResult(d->conn)) != NULL)
        PQclear(r);
    return PGC_OK;
}

/* The next tuple of the COPY: 1 (valid until the next call), 0 after the last, or an
 * error. */
static int next_tuple(dumpscan *d, copybin_tuple *t, char *err, size_t err_len)
{
    for (;;) {
        if (d->trailer)
            return 0;
        int rc = copybin_next(d->dec, t, err, err_len);
        if (rc == 1) {
            if (t->nfields != d->ncols)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                  "dump %s.%s: COPY row of %d columns, expected %d", d->schema,
                                  d->table, t->nfields, d->ncols);
            return 1;
        }
        if (rc < 0)
            return rc;
        /* The chunk is used up (0), or the trailer was read (2). */
        PQfreemem(d->chunk);
        d->chunk = NULL;
        int n = PQgetCopyData(d->conn, &d->chunk, 0);
        if (n == -1) {
            if ((rc = end_copy(d, err, err_len)) != PGC_OK)
                return rc;
            if ((rc = copybin_finish(d->dec, err, err_len)) != PGC_OK)
                return rc;
            d->trailer = true;
            return 0;
        }
        if (n < 0)
            return query_failed(d, NULL, "reading the rows", err, err_len);
        if ((rc = copybin_feed(d->dec, (const uint8_t *)d->chunk, (size_t)n)) != PGC_OK)
            return errbuf_set(err, err_len, rc, "dump %s.%s: cannot take COPY data", d->schema,
                              d->table);
    }
}

/* Reads the next tuple into row[slot] as a Change: 1, 0 after the last, or an error. */
static int read_row(dumpscan *d, int slot, char *err, size_t err_len)
{
    copybin_tuple t;
    int rc = next_tuple(d, &t, err, err_len);
    if (rc != 1)
        return rc;
    rowbuf *b = &d->row[slot];
    size_t need = dumprow_size(d->enc, &t);
    if (need > b->cap) {
        size_t cap = need < 4096 ? 4096 : need;
        uint8_t *nb = realloc(b->data, cap);
        if (!nb)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "dump: out of memory for a row");
        b->data = nb;
        b->cap = cap;
    }
    b->len = dumprow_write(d->enc, &t, b->data);
    return 1;
}

int dumpscan_next(dumpscan *d, const uint8_t **change, size_t *len, bool *last, char *err,
                  size_t err_len)
{
    int rc;
    if (!d->primed) {
        d->primed = true;
        if ((rc = read_row(d, d->cur, err, err_len)) < 0)
            return rc;
        d->have_row = rc == 1;
    }
    if (!d->have_row)
        return 0;
    /* Read ahead into the other buffer: the row to hand out stays where it is. */
    if ((rc = read_row(d, d->cur ^ 1, err, err_len)) < 0)
        return rc;
    const rowbuf *b = &d->row[d->cur];
    *change = b->data;
    *len = b->len;
    *last = rc == 0;
    d->have_row = rc == 1;
    d->cur ^= 1;
    d->rows++;
    return 1;
}
