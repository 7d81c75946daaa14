/* Running PostgreSQL client programs (pg_dump, pg_restore) against a conninfo without
 * putting it on their command lines, where every user of the machine can read it
 * (/proc/PID/cmdline): the conninfo's settings become the child's PG* environment
 * variables (PGHOST, PGPASSWORD, PGSSLMODE, ...), which only the child's own user can
 * read. A password is better kept in a passfile or a service file (PGPASSFILE,
 * PGSERVICEFILE) in the first place; those pass through the same way. */
#ifndef PGC_PG_PGENV_H
#define PGC_PG_PGENV_H

#include <stddef.h>

typedef struct pgenv pgenv;

/* The current environment with the settings of `conninfo` (key=value or a postgresql://
 * URI) set over it. Settings libpq has no variable for (keepalives, tcp_user_timeout,
 * fallback_application_name, replication) are left out: a one-off copy does not need
 * them; sslpassword, which has none either, is refused (PGC_ERR_CONFIG). PGC_ERR_CONFIG
 * for a conninfo libpq cannot parse (its message never quotes the conninfo). */
int pgenv_create(const char *conninfo, pgenv **out, char *err, size_t err_len);
/* The environment, for execve: NULL-terminated "NAME=value" strings. */
char *const *pgenv_envp(const pgenv *e);
void pgenv_destroy(pgenv *e); /* NULL is a no-op; wipes the values */

#endif
