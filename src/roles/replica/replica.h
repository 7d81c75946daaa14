/* The replica role: applies a source's log (its JetStream stream) to one logical replica
 * database, exactly once, with the applied position stored in the replica itself; and
 * `replica init`, which bootstraps a replica consistently with the log. */
#ifndef PGC_ROLES_REPLICA_H
#define PGC_ROLES_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/logpos.h"
#include "jetstream/jsauth.h"

typedef struct replica_config {
    char *replica; /* libpq conninfo of the replica database */
    char *nats_url;
    char *name;         /* source name: stream PGCAPTURE_<name>, subject pgcapture.<name>.log */
    char *stream;       /* empty: derived from name */
    char *consumer;     /* durable consumer; empty: derived from the replica's identity */
    int64_t batch_txns; /* source transactions per replica transaction at most */
    int64_t commit_interval_ms; /* a replica transaction stays open this long at most */
    int64_t max_pending;        /* NATS messages held unacked before a forced commit */
    int64_t ack_wait_ms;
    int64_t retry_max_ms;
    int64_t busy_timeout_ms; /* at start, how long another applier may hold the lock */
    int64_t stats_interval_ms;
    char *log_level;
    char *skip_ddl_text;     /* --skip-ddl as given */
    log_pos skip_ddl;        /* parsed: an inexact DDL row applied by hand; lsn 0: none */
    bool accept_new_stream;  /* a recreated stream is read from its first message */
    bool accept_gap;         /* a gap marker is logged and passed over, not a stop */
    char *log_format;        /* CLI: text or json */
    char *metrics_listen;    /* CLI: host:port of /metrics, or empty */
    jsauth_config nats_auth; /* CLI: NATS TLS and credentials */
} replica_config;

/* Runs until replica_request_stop() or an error a retry cannot fix. Returns the process
 * exit code: 0 stopped on request, 1 fatal error (logged with what to do). */
int replica_run(const replica_config *cfg);
/* Async-signal-safe. */
void replica_request_stop(void);

typedef struct replica_init_config {
    char *source;  /* conninfo of the source, or of an existing replica with --from-replica */
    char *replica; /* conninfo of the new replica database (must exist, may be empty) */
    char *name;    /* source name (as the agent's --name) */
    char *slot;    /* empty: pgcapture_<name> */
    char *publication;
    bool from_replica;
    char *log_level;
    char *log_format; /* CLI: text or json */
} replica_init_config;

/* Copies schema and data consistently with the log and records the position the applier
 * starts from. Refuses (before creating anything) when the local pg_dump is older than the
 * server it would dump. Returns the process exit code (0 done, 1 failed). */
int replica_init(const replica_init_config *cfg);

typedef struct replica_cutover_config {
    char *source;
    char *replica;
    char *name;
    int64_t timeout_ms;
    bool sequences; /* copy the source's sequence values once caught up */
    char *log_level;
} replica_cutover_config;

/* With writes to the source stopped: commits a marker DDL statement on the source, waits
 * (up to timeout_ms) until the replica has applied it, so its position is the source's
 * last commit, and copies the sequence values. Prints what it found; returns the process
 * exit code (0 caught up, 1 not within the timeout or an error). */
int replica_wait_caught_up(const replica_cutover_config *cfg);

#endif
