/* The replica role: applies a source's log (its JetStream stream) to one logical replica
 * database, exactly once, with the applied position stored in the replica itself; and
 * `replica init`, which bootstraps a replica consistently with the log. */
#ifndef PGC_ROLES_REPLICA_H
#define PGC_ROLES_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

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
} replica_init_config;

/* Copies schema and data consistently with the log and records the position the applier
 * starts from. Returns the process exit code (0 done, 1 failed). */
int replica_init(const replica_init_config *cfg);

#endif
