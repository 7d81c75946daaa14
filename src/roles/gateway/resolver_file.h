/* The gateway's URI resolver file: INI, one section per URI ("[uri]"), keys source,
 * nats_url, durable, replica, dump_schemas and capture (see pgc_resolver_file_load in
 * pgcapture/gateway.h). Pure parsing plus one file read; no logging. */
#ifndef PGC_ROLES_GATEWAY_RESOLVER_FILE_H
#define PGC_ROLES_GATEWAY_RESOLVER_FILE_H

#include "core/acl.h"
#include "roles/gateway/uri_target.h"

#include <stddef.h>

typedef struct resolver_file resolver_file;

#define RESOLVER_FILE_MAX_BYTES (4 * 1024 * 1024)

/* Parses `len` bytes of text. PGC_ERR_CONFIG with "line N: ..." for anything malformed. */
int resolver_file_parse(const char *text, size_t len, resolver_file **out, char *err,
                        size_t err_len);
/* Reads and parses a file: PGC_ERR_IO when unreadable, PGC_ERR_TOO_LARGE past
 * RESOLVER_FILE_MAX_BYTES, else as resolver_file_parse (messages carry the path). */
int resolver_file_load(const char *path, resolver_file **out, char *err, size_t err_len);
void resolver_file_free(resolver_file *c); /* NULL is a no-op */

size_t resolver_file_count(const resolver_file *c);
/* May `peer` capture `uri`? PGC_OK (also for a URI the file does not have when no URI has
 * a capture list: lookup then says NOT_FOUND), else PGC_ERR_UNAUTHENTICATED when the peer
 * brought no verified certificate and no token the file knows, PGC_ERR_PERMISSION when it
 * did; a URI the file does not have gets the same answer as a forbidden one. */
int resolver_file_authorize(const resolver_file *c, const char *uri, const acl_peer *peer);
/* How many URIs have no capture list (open to every client); *first (when not NULL) gets
 * the first one's name. */
size_t resolver_file_open_uris(const resolver_file *c, const char **first);
/* Copies the target of `uri` into *out: PGC_OK or PGC_ERR_NOT_FOUND. */
int resolver_file_lookup(const resolver_file *c, const char *uri, pgc_uri_target *out);

#endif
