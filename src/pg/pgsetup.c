/* Installs the SQL-only pgcapture schema (see pgsetup.h). */
#include "pg/pgsetup.h"

#include "core/status.h"

#include <stdio.h>
#include <string.h>

int pgsetup_install(PGconn *conn, char *err, size_t err_len)
{
    /* Several statements in one simple query run in one transaction: all or nothing. */
    PGresult *r = PQexec(conn, pgsetup_sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        return PGC_OK;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char text[512];
    snprintf(text, sizeof text, "%s", msg ? msg : PQerrorMessage(conn));
    text[strcspn(text, "\n")] = '\0';
    int rc;
    if (PQstatus(conn) != CONNECTION_OK)
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "setup: connection lost: %s", text);
    else if (state && !strcmp(state, "42501"))
        rc = errbuf_set(err, err_len, PGC_ERR_PERMISSION,
                        "setup: %s: creating event triggers takes a superuser, or on a managed "
                        "service its administrator role (rds_superuser on Amazon RDS and Aurora, "
                        "cloudsqlsuperuser on Cloud SQL); nothing was installed",
                        text);
    else if (strstr(text, "extension is installed"))
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "setup: %s", text);
    else
        rc = errbuf_set(err, err_len, PGC_ERR_STATE, "setup: %s", text);
    PQclear(r);
    return rc;
}

int pgsetup_install_at(const char *conninfo, int *major, char *db, size_t db_len, char *err,
                       size_t err_len)
{
    PGconn *conn = PQconnectdb(conninfo);
    int rc;
    if (PQstatus(conn) != CONNECTION_OK) {
        char text[512];
        snprintf(text, sizeof text, "%s", PQerrorMessage(conn));
        text[strcspn(text, "\n")] = '\0';
        rc = errbuf_set(err, err_len, PGC_ERR_CONN, "setup: cannot connect: %s", text);
    } else if (PQserverVersion(conn) < 150000) {
        rc = errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                        "setup: PostgreSQL %d is not supported (15 or newer)",
                        PQserverVersion(conn) / 10000);
    } else {
        /* The notices of IF NOT EXISTS on a second run say nothing useful. */
        PQclear(PQexec(conn, "SET client_min_messages = warning"));
        rc = pgsetup_install(conn, err, err_len);
        *major = PQserverVersion(conn) / 10000;
        snprintf(db, db_len, "%s", PQdb(conn));
    }
    PQfinish(conn);
    return rc;
}
