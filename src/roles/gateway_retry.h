/* A URI's retry subject (protocol.md "In the log"): a requeued change is republished, as
 * a one-Message batch with the usual Pgc-* headers, to pgcapture.<source>.retry.<durable>,
 * held by the stream PGCAPTURE_<source>_RETRY (subjects pgcapture.<source>.retry.>; a
 * stream of its own, so the agent's stream keeps exactly the subjects the agent gave it),
 * and read back by the URI's durable "<durable>_retry" after the retry delay. */
#ifndef PGC_ROLES_GATEWAY_RETRY_H
#define PGC_ROLES_GATEWAY_RETRY_H

#include "codec/logpos.h"
#include "jetstream/jssub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gwretry gwretry;

typedef struct gwretry_config {
    const char *nats_url;
    const char *source;
    const char *durable;
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
} gwretry_config;

/* Connects, creates the retry stream when missing and binds (or creates) the retry
 * durable. PGC_ERR_CONN when NATS is unreachable. */
int gwretry_create(const gwretry_config *cfg, gwretry **out, char *err, size_t err_len);
void gwretry_destroy(gwretry *r); /* NULL is a no-op */

/* Publishes one serialized Message at `pos` and waits for JetStream's ack (blocking). */
int gwretry_publish(gwretry *r, const uint8_t *msg, size_t len, log_pos pos, char *err,
                    size_t err_len);
/* The retry durable, for fetching. */
jssub *gwretry_sub(gwretry *r);

#endif
