/* A table's size in pages (see table_pages.h). */
#include "pg/table_pages.h"

#include "core/status.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq's messages end with a newline; ours do not. */
static int pq_fail(char *err, size_t err_len, const char *what, const char *pq_msg)
{
    size_t n = strlen(pq_msg);
    while (n > 0 && pq_msg[n - 1] == '\n')
        n--;
    return errbuf_set(err, err_len, PGC_ERR_CONN, "%s: %.*s", what, (int)n, pq_msg);
}

static int read_row(PGresult *res, const char *schema, const char *table, uint64_t *pages,
                    char *err, size_t err_len)
{
    if (PQntuples(res) == 0)
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND, "no table %s.%s on the replica", schema,
                          table);
    const char *kind = PQgetvalue(res, 0, 0);
    if (strcmp(kind, "r") != 0 && strcmp(kind, "m") != 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "%s.%s is not a table with storage (relkind %s)%s", schema, table, kind,
                          strcmp(kind, "p") == 0 ? ": schedule its partitions instead" : "");
    long long relpages = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long long real = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    long long n = relpages > real ? relpages : real;
    *pages = n > 0 ? (uint64_t)n : 0;
    return PGC_OK;
}

int table_pages_read(const char *conninfo, const char *schema, const char *table, uint64_t *pages,
                     char *err, size_t err_len)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        int rc = pq_fail(err, err_len, "cannot connect to the replica", PQerrorMessage(conn));
        PQfinish(conn);
        return rc;
    }
    const char *params[2] = {schema, table};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT c.relkind, c.relpages::int8, "
                     "       pg_relation_size(c.oid) / current_setting('block_size')::int8 "
                     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = $1 AND c.relname = $2",
                     2, NULL, params, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[600];
        snprintf(what, sizeof what, "cannot read the size of %.250s.%.250s", schema, table);
        rc = pq_fail(err, err_len, what, PQresultErrorMessage(res));
    } else {
        rc = read_row(res, schema, table, pages, err, err_len);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
