/* `pgcapture setup`: installs pgcapture's schema without the C extension (the SQL of
 * sql/pgcapture-setup.sql, compiled in): pgcapture.ddl_logs, pgcapture.sources and the
 * DDL event triggers in PL/pgSQL, for servers the extension cannot be installed on. */
#ifndef PGC_PG_PGSETUP_H
#define PGC_PG_PGSETUP_H

#include <libpq-fe.h>
#include <stddef.h>

/* The text of sql/pgcapture-setup.sql. */
extern const char pgsetup_sql[];

/* Runs the setup SQL in one transaction on `conn`. PGC_ERR_PERMISSION (with what role it
 * takes) when the user may not create event triggers, PGC_ERR_CONFIG when the database
 * has the pgcapture extension already, PGC_ERR_CONN when the server went away. */
int pgsetup_install(PGconn *conn, char *err, size_t err_len);

/* Connects with `conninfo` and runs pgsetup_install with the server's notices quieted.
 * Besides its statuses: PGC_ERR_CONN when the connection fails, PGC_ERR_UNSUPPORTED for a
 * server older than PostgreSQL 15. On PGC_OK, *major is the server's major version and `db`
 * the database's name. Errors never contain the conninfo. */
int pgsetup_install_at(const char *conninfo, int *major, char *db, size_t db_len, char *err,
                       size_t err_len);

#endif
