/* A JetStream key-value bucket (libnats kvStore): the controller keeps its dump queues
 * here so that they survive a restart. Keys are NATS subject tokens ([-/_=.a-zA-Z0-9]);
 * callers encode anything else. One thread uses a jskv at a time. */
#ifndef PGC_JETSTREAM_JSKV_H
#define PGC_JETSTREAM_JSKV_H

#include <stddef.h>
#include <stdint.h>

typedef struct jskv jskv;

/* Connects and binds the bucket, creating it (file storage, history 1, `replicas`
 * replicas) when missing; an existing bucket keeps its own replica count (jskv_replicas).
 * PGC_ERR_CONN when NATS is unreachable or has no JetStream. */
int jskv_open(const char *nats_url, const char *bucket, int replicas, jskv **out, char *err,
              size_t err_len);
/* The bucket's replica count as the server reports it (0 when it cannot be read). */
int jskv_replicas(jskv *kv);
void jskv_destroy(jskv *kv); /* NULL is a no-op */

/* Stores a value and waits for the server's ack. */
int jskv_put(jskv *kv, const char *key, const void *data, size_t len, char *err, size_t err_len);
/* Deletes a key: its value goes, a small delete marker stays (see jskv_purge). A missing
 * key is not an error. */
int jskv_delete(jskv *kv, const char *key, char *err, size_t err_len);
/* Removes every key matching `keys` (wildcards allowed, e.g. "q.abc.>"), values and
 * markers alike, leaving nothing behind; watchers are not told. Costs a scan on the
 * server: for bulk clean-up. */
int jskv_purge(jskv *kv, const char *keys, char *err, size_t err_len);
/* The current value: PGC_OK with *data (malloc'ed, caller frees; never NULL) and *len, or
 * PGC_ERR_NOT_FOUND. */
int jskv_get(jskv *kv, const char *key, uint8_t **data, size_t *len, char *err, size_t err_len);

/* Messages the bucket's stream holds: current values plus delete markers. */
int jskv_stored(jskv *kv, uint64_t *messages, char *err, size_t err_len);

/* Calls fn for the current value of every key matching `filter` (a subject with
 * wildcards, e.g. "q.>"), deleted keys left out. The bytes are valid during the call. A
 * non-zero return from fn stops the scan and is returned. */
typedef int (*jskv_scan_fn)(void *arg, const char *key, const uint8_t *data, size_t len);
int jskv_scan(jskv *kv, const char *filter, jskv_scan_fn fn, void *arg, char *err, size_t err_len);

/* Deletes the bucket altogether (tests, and `pgcapture controller --reset` style tools). */
int jskv_delete_bucket(const char *nats_url, const char *bucket, char *err, size_t err_len);

#endif
