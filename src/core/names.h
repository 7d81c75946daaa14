/* The naming contract: every name the roles and the CLI derive from a source name (the
 * agent's --name) or from a consumer URI, written out once (docs/protocol.md).
 *
 *   source stream        PGCAPTURE_<source>
 *   log subject          pgcapture.<source>.log
 *   replication slot     pgcapture_<source>, lower-cased, other bytes '_' (PostgreSQL's rule)
 *   publication          pgcapture_<source>
 *   retry stream         PGCAPTURE_<source>_RETRY, subjects pgcapture.<source>.retry.>
 *   retry subject        pgcapture.<source>.retry.<durable>
 *   retry durable        <durable>_retry
 *   dead-letter subject  pgcapture.<source>.retry.<durable>.dead (in the retry stream)
 *   dead-letter reader   <durable>_dead (the durable of `pgcapture dead-letters`)
 *   durable of a URI     pgc_<the URI's token bytes, '_' for others, at most 63>_<FNV-1a hex>
 *   replica's consumer   replica_<source>_<identity>, non-token bytes '_'
 *   controller bucket    PGCAPTURE_CONTROLLER (the default of --bucket)
 *
 * Source and durable names are NATS tokens (names_token_valid). Pure: no I/O, no logging. */
#ifndef PGC_CORE_NAMES_H
#define PGC_CORE_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest source or durable name, in bytes. */
#define NAMES_TOKEN_MAX_LEN 127
/* A buffer of this size holds every name below when its inputs are valid tokens. */
#define NAMES_BUF_LEN 300

#define NAMES_CONTROLLER_BUCKET "PGCAPTURE_CONTROLLER"

/* True when `s` is usable as a NATS subject token and as a stream or consumer name:
 * 1 to NAMES_TOKEN_MAX_LEN bytes of [A-Za-z0-9_-]. */
bool names_token_valid(const char *s);

/* Each writes one name into out (always NUL-terminated when out_len > 0) and returns
 * PGC_OK, or PGC_ERR_TOO_LARGE when it does not fit (out then holds a truncated name). */
int names_stream(const char *source, char *out, size_t out_len);
int names_log_subject(const char *source, char *out, size_t out_len);
int names_slot(const char *source, char *out, size_t out_len);
int names_publication(const char *source, char *out, size_t out_len);
int names_retry_stream(const char *source, char *out, size_t out_len);
int names_retry_stream_subjects(const char *source, char *out, size_t out_len);
int names_retry_subject(const char *source, const char *durable, char *out, size_t out_len);
int names_retry_durable(const char *durable, char *out, size_t out_len);
int names_dead_letter_subject(const char *source, const char *durable, char *out, size_t out_len);
int names_dead_letter_durable(const char *durable, char *out, size_t out_len);
/* The durable of a URI whose resolver names none: its token bytes plus a hash of all of
 * it, so distinct URIs never share a consumer by accident. */
int names_durable_from_uri(const char *uri, char *out, size_t out_len);
/* The replica applier's durable when none is given; `identity` tells replica databases
 * apart (the cluster's system identifier and the database name). */
int names_replica_consumer(const char *source, const char *identity, char *out, size_t out_len);

#endif
