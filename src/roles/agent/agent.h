/* The agent role: reads one logical replication slot of the source (pgoutput, binary)
 * and publishes every change to the source's JetStream stream in batches, confirming an
 * LSN to PostgreSQL only once the log has it durably. */
#ifndef PGC_ROLES_AGENT_H
#define PGC_ROLES_AGENT_H

#include "jetstream/jsauth.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct agent_config {
    char *source; /* libpq conninfo of the source database */
    char *nats_url;
    char *name; /* source name: derives the names below when they are empty */
    char *slot;
    char *publication;
    char *stream;
    char *tables; /* comma-separated; empty: all tables */
    int64_t batch_bytes;
    int64_t linger_ms;
    char *confirm_delay;      /* CLI: "auto" or a duration, parsed into confirm_delay_ms */
    int64_t confirm_delay_ms; /* < 0: from the stream's replicas (confirm_delay_for) */
    int64_t status_interval_ms;
    int64_t max_age_ms;
    int64_t max_bytes;
    int64_t duplicate_window_ms;
    int64_t replicas;
    int64_t max_in_flight;
    int64_t ack_timeout_ms;
    int64_t retry_max_ms;
    int64_t busy_timeout_ms;
    int64_t proto_version;
    bool messages;
    /* Create a new slot although the stream holds messages (the slot was lost and the
     * operator has recovered replicas and consumers): without it the agent refuses. */
    bool accept_slot_recreate;
    char *log_level;
    char *log_format;        /* CLI: text or json */
    char *metrics_listen;    /* CLI: host:port of /metrics, or empty */
    jsauth_config nats_auth; /* CLI: NATS TLS and credentials */
} agent_config;

/* Runs until agent_request_stop() or an error a retry cannot fix. Returns the process
 * exit code: 0 stopped on request, 1 fatal error (logged with what to do). */
int agent_run(const agent_config *cfg);
/* Async-signal-safe. */
void agent_request_stop(void);

#endif
