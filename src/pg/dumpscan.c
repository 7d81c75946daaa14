/* Dump items read from a replica by TID range (see dumpscan.h). The cursor is fetched
 * `fetch_rows` at a time in binary; one result is held at a time, plus the next one once
 * the current is exhausted, which is how the last row of the item is known before it is
 * handed out (it carries data = {1} downstream). */
#include "pg/dumpscan.h"

#include "core/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL's largest block number is 0xFFFFFFFE; past it a range has no upper end. */
#define MAX_BLOCK_NUMBER 0xFFFFFFFEu

struct dumpscan {
    PGconn *conn;
    bool in_txn;
    uint64_t lsn;
    uint32_t seq;
    char *schema, *table;
    int fetch_rows;
    char fetch_sql[64];

    int ncols;
    char **names;
    uint32_t *oids;

    PGresult *cur, *next; /* current batch and the one after it (NULL: not fetched yet) */
    int row;              /* next row of cur */
    bool cursor_done;     /* a FETCH returned fewer rows than asked */
    uint64_t rows;

    Pgcapture__Change change;
    Pgcapture__Field *fields;
    Pgcapture__Field **ptrs;
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
    d->fields = calloc((size_t)n, sizeof *d->fields);
    d->ptrs = calloc((size_t)n, sizeof *d->ptrs);
    size_t list_len = 1;
    for (int i = 0; i < n; i++)
        list_len += strlen(PQgetvalue(r, i, 2)) + 2;
    char *list = malloc(list_len);
    if (!d->names || !d->oids || !d->fields || !d->ptrs || !list) {
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

static int declare_cursor(dumpscan *d, const char *select_list, const dumpscan_item *item,
                          char *err, size_t err_len)
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
        snprintf(sql, len, "DECLARE pgc_dump NO SCROLL CURSOR FOR SELECT %s FROM %s.%s WHERE %s",
                 select_list, qs, qt, range);
        status = exec_ok(d, sql, "declaring the cursor", err, err_len);
    }
    free(sql);
    PQfreemem(qs);
    PQfreemem(qt);
    return status;
}

int dumpscan_create(PGconn *conn, const char *source_id, const dumpscan_item *item, int fetch_rows,
                    dumpscan **out, char *err, size_t err_len)
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
    d->fetch_rows = fetch_rows > 0 ? fetch_rows : 1000;
    snprintf(d->fetch_sql, sizeof d->fetch_sql, "FETCH FORWARD %d FROM pgc_dump", d->fetch_rows);
    d->schema = strdup(item->schema);
    d->table = strdup(item->table);
    if (!d->schema || !d->table) {
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
    if (status == PGC_OK)
        status = declare_cursor(d, select_list, item, err, err_len);
    free(select_list);
    if (status != PGC_OK) {
        dumpscan_destroy(d);
        return status;
    }
    pgcapture__change__init(&d->change);
    d->change.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    d->change.schema = d->schema;
    d->change.table = d->table;
    d->change.new_ = d->ptrs;
    *out = d;
    return PGC_OK;
}

void dumpscan_destroy(dumpscan *d)
{
    if (!d)
        return;
    PQclear(d->cur);
    PQclear(d->next);
    if (d->in_txn && PQstatus(d->conn) == CONNECTION_OK)
        PQclear(PQexec(d->conn, "ROLLBACK"));
    for (int i = 0; i < d->ncols; i++)
        free(d->names[i]);
    free(d->names);
    free(d->oids);
    free(d->fields);
    free(d->ptrs);
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

/* Fetches the next batch; NULL result (and PGC_OK) once the cursor is exhausted. */
static int fetch(dumpscan *d, PGresult **out, char *err, size_t err_len)
{
    *out = NULL;
    if (d->cursor_done)
        return PGC_OK;
    PGresult *r = PQexecParams(d->conn, d->fetch_sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return query_failed(d, r, "fetching rows", err, err_len);
    if (PQnfields(r) != d->ncols) {
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "dump %s.%s: cursor returned %d columns, expected %d", d->schema,
                          d->table, PQnfields(r), d->ncols);
    }
    if (PQntuples(r) < d->fetch_rows)
        d->cursor_done = true;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return PGC_OK;
    }
    *out = r;
    return PGC_OK;
}

int dumpscan_next(dumpscan *d, const Pgcapture__Change **out, bool *last, char *err, size_t err_len)
{
    int status;
    if (!d->cur || d->row >= PQntuples(d->cur)) {
        PQclear(d->cur);
        d->cur = NULL;
        if (d->next) {
            d->cur = d->next;
            d->next = NULL;
        } else if ((status = fetch(d, &d->cur, err, err_len)) != PGC_OK) {
            return status;
        }
        d->row = 0;
        if (!d->cur)
            return 0;
    }
    /* On the last row of this batch, look ahead: is there any row after it? */
    if (d->row == PQntuples(d->cur) - 1 && !d->next &&
        (status = fetch(d, &d->next, err, err_len)) != PGC_OK)
        return status;
    int row = d->row++;
    size_t n = 0;
    for (int i = 0; i < d->ncols; i++) {
        Pgcapture__Field *f = &d->fields[n];
        pgcapture__field__init(f);
        f->name = d->names[i];
        f->oid = d->oids[i];
        if (!PQgetisnull(d->cur, row, i)) {
            f->value_case = PGCAPTURE__FIELD__VALUE_BINARY;
            f->binary.data = (uint8_t *)PQgetvalue(d->cur, row, i);
            f->binary.len = (size_t)PQgetlength(d->cur, row, i);
        }
        d->ptrs[n++] = f;
    }
    d->change.n_new_ = n;
    d->rows++;
    *last = d->row >= PQntuples(d->cur) && !d->next;
    *out = &d->change;
    return 1;
}
