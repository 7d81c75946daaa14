/* `pgcapture setup`: installs pgcapture's schema without the C extension (the SQL of
 * sql/pgcapture-setup.sql, compiled in): pgcapture.ddl_logs, pgcapture.sources and the
 * DDL event triggers in PL/pgSQL, for servers the extension cannot be installed on. */
#ifndef PGC_PG_SETUP_H
#define PGC_PG_SETUP_H

#include <libpq-fe.h>
#include <stddef.h>

/* The text of sql/pgcapture-setup.sql. */
extern const char pgsetup_sql[];

/* Runs the setup SQL in one transaction on `conn`. PGC_ERR_PERMISSION (with what role it
 * takes) when the user may not create event triggers, PGC_ERR_CONFIG when the database
 * has the pgcapture extension already, PGC_ERR_CONN when the server went away. */
int pgsetup_install(PGconn *conn, char *err, size_t err_len);

#endif
