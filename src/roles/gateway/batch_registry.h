/* The batches a batch-mode Capture stream has sent and the consumer has not yet answered
 * with a batch ack (docs/protocol.md "Batch mode"), with what each carried: runs of changes
 * of tracked log batches (ack_tracker.h, named by their serial) or rows of one dump item,
 * so that a batch ack can be applied to exactly those. Numbers are issued in order from 1,
 * by the stream thread and the dumper alike. Pure bookkeeping: the stream locks around
 * every call. */
#ifndef PGC_ROLES_GATEWAY_BATCH_REGISTRY_H
#define PGC_ROLES_GATEWAY_BATCH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Changes first..last (inclusive) of the tracked batch `serial`. */
typedef struct batch_run {
    uint64_t serial;
    uint32_t first, last;
} batch_run;

typedef struct batch_record {
    uint64_t number;
    bool dump;        /* rows of a dump item, not changes of the log */
    uint32_t dump_id; /* dump batches: the item's dump id */
    bool dump_last;   /* dump batches: it carries the item's last row */
    batch_run *runs;  /* log batches */
    uint32_t n_runs, cap_runs;
} batch_record;

typedef struct batch_registry batch_registry;

batch_registry *batch_registry_create(void);    /* NULL when out of memory */
void batch_registry_destroy(batch_registry *r); /* frees the open records too; NULL no-op */

/* A record being filled (before its batch is sent); NULL when out of memory. */
batch_record *batch_record_new(bool dump);
/* Adds change `index` of the tracked batch `serial` to a record. PGC_ERR_NOMEM. */
int batch_record_add(batch_record *rec, uint64_t serial, uint32_t index);
/* Numbers a complete record with the next number and keeps it (the registry owns it until
 * taken): from then on a batch ack can answer it, so add it only once filled and before
 * its batch is sent. PGC_ERR_NOMEM (nothing changes). */
int batch_registry_add(batch_registry *r, batch_record *rec);

/* Takes the record of batch `number` out for its batch ack: PGC_OK and *out (the caller
 * frees it with batch_record_free). PGC_ERR_INVALID, with the reason in err, when no batch
 * of that number was sent on this stream (0, or past the last issued) or it was answered
 * by a batch ack already; nothing changes then. */
int batch_registry_take(batch_registry *r, uint64_t number, batch_record **out, char *err,
                        size_t err_len);
void batch_record_free(batch_record *rec); /* NULL is a no-op */

/* Open records, all and dump ones; the last number issued (0 before the first). */
size_t batch_registry_open_count(const batch_registry *r);
size_t batch_registry_open_dumps(const batch_registry *r);
uint64_t batch_registry_last(const batch_registry *r);

#endif
