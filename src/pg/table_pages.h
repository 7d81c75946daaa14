/* A table's size in pages on a database, for planning dumps: pg_class.relpages or the
 * relation's real size, whichever is larger (a growing table has pages past relpages,
 * which only VACUUM and ANALYZE update). */
#ifndef PGC_PG_TABLE_PAGES_H
#define PGC_PG_TABLE_PAGES_H

#include <stddef.h>
#include <stdint.h>

/* Connects with `conninfo`, reads the size of schema.table and disconnects. Statuses:
 * PGC_ERR_NOT_FOUND when there is no such relation, PGC_ERR_INVALID when it is not a table
 * with storage (a partitioned table: its partitions have the rows), PGC_ERR_CONN when the
 * connection or the query fails. Errors never contain the conninfo. */
int table_pages_read(const char *conninfo, const char *schema, const char *table, uint64_t *pages,
                     char *err, size_t err_len);

#endif
