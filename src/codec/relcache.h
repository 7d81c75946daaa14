/* Cache of pgoutput Relation messages by relation OID. pgoutput re-sends a Relation
 * whenever its own cache entry is invalidated, at any point in the stream; a new one
 * replaces the old. Entries are deep copies: decoded messages only borrow their buffer. */
#ifndef PGC_CODEC_RELCACHE_H
#define PGC_CODEC_RELCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "codec/pgoutput.h"

typedef struct relcache relcache;

typedef struct relcache_entry {
    uint32_t oid;
    char *nspname, *relname;
    char replident;
    uint16_t ncols;
    pgoutput_column *cols; /* owned, names included */
    uint64_t generation;   /* bumps each time this OID is replaced */
} relcache_entry;

int relcache_create(relcache **out);
void relcache_destroy(relcache *c); /* NULL is a no-op */
/* Copies a decoded Relation message in, replacing any entry of that OID. */
int relcache_put(relcache *c, const pgoutput_msg *relation_msg, const relcache_entry **out,
                 char *err, size_t err_len);
/* NULL when unknown; valid until the next put of that OID or destroy. */
const relcache_entry *relcache_lookup(const relcache *c, uint32_t oid);
size_t relcache_count(const relcache *c);

#endif
