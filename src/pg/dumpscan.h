/* Reads one dump item from a logical replica (docs/design.md §5): a REPEATABLE READ READ ONLY
 * transaction, the replica's applied position read from pgcapture.sources inside that same
 * snapshot, and `COPY (SELECT ... WHERE ctid range) TO STDOUT (FORMAT binary)` read as a
 * stream (codec/copybin), one row at a time, so a dump of any size runs in bounded memory.
 * Rows come out as serialized protocol Changes (UPDATE with only `new`, codec/dumprow),
 * values in the type's binary send format tagged with the type OID.
 *
 * One dumpscan per connection at a time; the connection is borrowed and must not be used
 * for anything else until dumpscan_destroy. */
#ifndef PGC_PG_DUMPSCAN_H
#define PGC_PG_DUMPSCAN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dumpscan dumpscan;

typedef struct dumpscan_item {
    const char *schema;
    const char *table;
    uint32_t page_begin, page_end; /* inclusive page range */
} dumpscan_item;

/* Opens the snapshot and starts the COPY. `source_id` is the row of pgcapture.sources whose
 * position the replica has applied (NULL: the only row there is). Statuses:
 * PGC_ERR_NOT_FOUND when the table does not exist on the replica, PGC_ERR_STATE when the
 * replica has no applied position yet, PGC_ERR_INVALID for a bad page range, PGC_ERR_CONN
 * or PGC_ERR_IO for connection and query failures. On error nothing is left open. */
int dumpscan_create(PGconn *conn, const char *source_id, const dumpscan_item *item, dumpscan **out,
                    char *err, size_t err_len);
/* Rolls the snapshot back (it only read), cancelling a COPY still running first. NULL is
 * a no-op. */
void dumpscan_destroy(dumpscan *d);

/* The applied commit LSN and seq of the replica in the dump's snapshot: every row read
 * reflects the source exactly up to that position. */
uint64_t dumpscan_applied_lsn(const dumpscan *d);
uint32_t dumpscan_applied_seq(const dumpscan *d);

/* The next row as a serialized Change: 1 with *change and *len (valid until the next
 * call) and *last set when it is the last row of the item (the row after it has been read
 * already); 0 when the item had no (more) rows; negative on error (PGC_ERR_MALFORMED for
 * COPY data that does not match the columns, PGC_ERR_IO, PGC_ERR_CONN). */
int dumpscan_next(dumpscan *d, const uint8_t **change, size_t *len, bool *last, char *err,
                  size_t err_len);
/* Rows returned so far. */
uint64_t dumpscan_rows(const dumpscan *d);

#endif
