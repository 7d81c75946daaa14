/* The controller role: per-URI queues of dump work behind the gRPC service
 * pgcapture.DBLogController (Schedule, StopSchedule, SetScheduleCoolDown, PullDumpInfo)
 * plus pgcapture.DBLogControllerAdmin/Status, with its state in a JetStream key-value
 * bucket so that a restart loses nothing. */
#ifndef PGC_ROLES_CONTROLLER_H
#define PGC_ROLES_CONTROLLER_H

#include "jetstream/jsauth.h"

#include <stdint.h>

typedef struct controller_config {
    char *nats_url;
    char *listen;     /* host:port for gRPC */
    char *bucket;     /* JetStream key-value bucket */
    int64_t replicas; /* of the bucket when the controller creates it: 1 or 3 */
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int64_t shutdown_grace_ms;
    char *log_level;
    char *log_format;     /* CLI: text or json */
    char *metrics_listen; /* CLI: host:port of /metrics, or empty */
    /* TLS of the gRPC port: certificate chain and key (PEM; empty: plaintext), and client
     * CAs that make client certificates mandatory (mutual TLS). */
    char *tls_cert;
    char *tls_key;
    char *tls_client_ca;
    char *acl_file;            /* who may schedule, read status and pull (empty: anyone) */
    int64_t max_calls;         /* calls open at once (0: no limit) */
    int64_t max_queued;        /* requests waiting for the controller thread */
    int64_t max_items_per_uri; /* items pending or outstanding per URI */
    int64_t new_calls_per_sec; /* per peer host (0: no limit) */
    int64_t keepalive_ms;      /* ping quiet connections; their pull streams end unanswered */
    jsauth_config nats_auth;   /* CLI: NATS TLS and credentials */
} controller_config;

/* Runs until controller_request_stop(). Returns the process exit code: 0 stopped on
 * request, 1 fatal error (logged). */
int controller_run(const controller_config *cfg);
/* Async-signal-safe. */
void controller_request_stop(void);

#endif
