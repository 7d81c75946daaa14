/* Which schemas a URI's dumps may read: a comma-separated list of schema names ("public,
 * sales"), "*" for every schema, or nothing for the default: every schema but the
 * catalogs and pgcapture's own (pg_catalog, information_schema, pgcapture and every pg_*
 * schema, pg_toast and temporary ones included). Names are compared exactly, as they
 * are in pg_namespace. Pure. */
#ifndef PGC_CORE_SCHEMALIST_H
#define PGC_CORE_SCHEMALIST_H

#include <stdbool.h>
#include <stddef.h>

/* Checks a list as a config file gives it: PGC_ERR_CONFIG for an empty name. */
int schemalist_check(const char *list, char *err, size_t err_len);
/* True when `schema` may be dumped under `list` (NULL or "": the default). */
bool schemalist_allows(const char *list, const char *schema);

#endif
