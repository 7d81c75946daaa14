/* The dumper of one Capture stream: pulls the URI's dump items from the controller
 * (PullDumpInfo), reads each from a replica in one snapshot (pg/dumpscan) and sends its
 * rows into the stream with no time travel (docs/design.md guarantee 5): the rows go out only
 * once the stream has delivered everything up to the snapshot's applied position L, and
 * before anything after L. The stream provides that through the hooks: it freezes at its
 * position, the dumper waits for a replica snapshot at or past the log's end, and the
 * stream then runs on to exactly L and holds while the rows go out.
 *
 * Threading: the dumper runs one thread of its own (blocking gRPC and libpq calls); the
 * hooks are called from it. dumper_on_ack and dumper_destroy are called by the stream from
 * any thread. */
#ifndef PGC_ROLES_GATEWAY_DUMPER_H
#define PGC_ROLES_GATEWAY_DUMPER_H

#include "codec/capbatch.h"
#include "rpc/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dumper dumper;

typedef struct dumper_hooks {
    void *arg;
    /* Stops live delivery before the stream's next message and reports the end of the
     * log (the position of its last message, 0/0 when empty): everything the consumer
     * has received is at or below it. 0, PGC_ERR_CONN when the stream is over, another
     * negative status when the end cannot be read (the item is requeued). */
    int (*freeze)(void *arg, uint64_t *end_lsn, uint32_t *end_seq);
    /* Lets live delivery go on up to (lsn, seq), at or past the frozen end, and hold
     * there: once every message at or below it has gone out and nothing above it. 0 once
     * held; PGC_ERR_TIMEOUT when the stream did not get there within timeout_ms (the
     * consumer is slow); PGC_ERR_CONN when the stream is over. */
    int (*hold_at)(void *arg, uint64_t lsn, uint32_t seq, int timeout_ms);
    /* Ends a freeze or a hold: live delivery goes on. */
    void (*release)(void *arg);
    /* Sends one serialized CaptureMessage, waiting for room (flow control). Non-zero
     * when the stream is over. */
    int (*send)(void *arg, const uint8_t *msg, size_t len);
    /* Whether the consumer wants rows of this table (TableRegex). */
    bool (*table_wanted)(void *arg, const char *table);
    /* Batch mode: numbers the batch (capbatch_finish), records it as a batch of rows of
     * dump `dump_id` (with the item's last row when `last`) and sends it, waiting for room
     * and for the consumer to answer earlier dump batches. Non-zero when the stream is
     * over. */
    int (*send_batch)(void *arg, capbatch *batch, uint32_t dump_id, bool last);
} dumper_hooks;

typedef struct dumper_config {
    const char *controller_addr; /* host:port of the controller */
    const char *uri;
    const char *replica_conninfo;
    const char *source_id; /* row of pgcapture.sources on the replica; NULL: the only one */
    uint32_t batch_limit;  /* 0: a message per row; N: batches of at most N rows */
    int hold_timeout_ms;   /* how long the consumer may take to reach L (0: 30 s) */
    int replica_wait_ms;   /* how long to wait for a lagging replica (0: 30 s) */
    const rpc_channel_options *controller_channel; /* TLS, token; NULL: plaintext */
    const char *dump_schemas; /* schemas items may read (core/schemalist.h); NULL: default */
} dumper_config;

/* Starts the dumper thread. The config strings are copied. */
int dumper_start(const dumper_config *cfg, const dumper_hooks *hooks, dumper **out, char *err,
                 size_t err_len);
/* Stops the thread and waits for it. An item handed out and not completed is requeued by
 * the controller when the PullDumpInfo stream ends. NULL is a no-op. */
void dumper_destroy(dumper *d);

/* A consumer's ack of a dump row (checkpoint lsn 0). `requeue_reason` empty: ack.
 * PGC_ERR_INVALID when the row was never sent by this dumper (unknown dump id or a data
 * handle other than empty or {1}). */
int dumper_on_ack(dumper *d, uint32_t seq, const uint8_t *data, size_t data_len,
                  const char *requeue_reason);

/* The consumer's batch ack of a batch of rows of dump `dump_id` (docs/protocol.md "Batch
 * mode"): like an ack (or requeue) of each of its rows. */
void dumper_on_batch_ack(dumper *d, uint32_t dump_id, bool last, const char *requeue_reason);

/* Counters for status and tests. */
typedef struct dumper_stats {
    uint64_t items_done, items_requeued, rows_sent;
} dumper_stats;
void dumper_get_stats(dumper *d, dumper_stats *out);

#endif
