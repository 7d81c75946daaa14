/* Applies protocol Changes to a logical replica over one libpq connection: prepared
 * statements per (table, operation, column set) with binary parameters typed as the
 * replica's columns, sent in pipeline mode inside one replica transaction that may hold
 * several source transactions; DDL rows of pgcapture.ddl_logs replayed in their user's
 * search_path and role; TRUNCATE; and the applied position written to pgcapture.sources in
 * the same transaction, which is what makes applying exactly once.
 * One thread uses an apply_conn at a time. After any error the connection is unusable:
 * destroy it and open a new one (the replica rolled back to its stored position). */
#ifndef PGC_ROLES_REPLICA_APPLY_H
#define PGC_ROLES_REPLICA_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "codec/logpos.h"
#include "pgcapture.pb-c.h"

typedef struct apply_conn apply_conn;

/* The stored progress of one source on this replica (a row of pgcapture.sources). */
typedef struct apply_position {
    log_pos pos;         /* last applied (lsn, seq) */
    uint64_t stream_seq; /* JetStream sequence of the NATS message holding pos; 0 unknown */
    int64_t commit_time; /* source commit time, microseconds since 2000-01-01 */
    bool found;
    /* The identity of the stream stream_seq counts in: its created time (Unix ns), which a
     * recreated stream changes; 0 unknown (a row written before identities were stored). */
    int64_t stream_created;
} apply_position;

/* The hex text of a position's `mid` column (APPLY_MID_HEX_LEN with its NUL): the stream
 * sequence, then the stream's created time when known; NULL when the sequence is unknown. */
#define APPLY_MID_HEX_LEN 33
const char *apply_position_mid(const apply_position *p, char out[APPLY_MID_HEX_LEN]);

typedef struct apply_stats {
    uint64_t statements, ddl, truncates, commits;
} apply_stats;

/* Connects, takes the per-(database, source) advisory lock (PGC_ERR_BUSY when another
 * applier holds it), sets session_replication_role = replica (user triggers and foreign
 * keys are the source's business, as in native logical replication) and reads the stored
 * position. PGC_ERR_CONN when the replica cannot be reached; PGC_ERR_CONFIG when it lacks
 * the pgcapture extension. */
int apply_open(const char *conninfo, const char *source_id, apply_conn **out, apply_position *pos,
               char *err, size_t err_len);
void apply_destroy(apply_conn *ac); /* NULL is a no-op; rolls back an open transaction */
/* A DDL row the SQL install logged as its whole query string (activity->>'inexact') stops
 * the applier with what to do, unless it is at `pos`: the operator applied that one by hand
 * (`--skip-ddl`), and it is skipped. */
void apply_set_skip_ddl(apply_conn *ac, log_pos pos);

/* Opens a replica transaction when none is open (called by apply_change as needed). */
int apply_begin(apply_conn *ac, char *err, size_t err_len);
/* Applies one Change taken at `pos`. A change of pgcapture.ddl_logs is DDL to replay; a
 * change of another pgcapture table is ignored. Errors carry the position, the table and
 * the operation of the failing change. Errors may also surface later, from a change sent
 * earlier in the pipeline, at any call up to apply_commit. */
int apply_change(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                 size_t err_len);
/* Records `p` in pgcapture.sources and commits. Returns once the replica committed. */
int apply_commit(apply_conn *ac, const apply_position *p, char *err, size_t err_len);
bool apply_in_transaction(const apply_conn *ac);
/* Rewrites only the stream part (`mid`) of the stored position, outside a transaction: the
 * stream's identity adopted by a row written before identities were stored, or a new
 * stream accepted (stream_seq 0: none yet). */
int apply_store_stream(apply_conn *ac, const apply_position *p, char *err, size_t err_len);
const apply_stats *apply_get_stats(const apply_conn *ac);

/* Reads the stored position of `source_id` with an existing connection (for tools and
 * tests). */
int apply_read_position(PGconn *conn, const char *source_id, apply_position *out, char *err,
                        size_t err_len);

#endif
