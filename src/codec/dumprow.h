/* Dump rows as serialized protocol Changes (docs/protocol.md "Checkpoints": op UPDATE, only
 * `new` set), written straight from binary COPY tuples: each column's Field name and oid
 * bytes are prepared once per item, so a row costs its values' bytes and a few varints.
 * The bytes are what protobuf-c packs for the same Change (fields in number order, proto3
 * defaults left out). Pure. */
#ifndef PGC_CODEC_DUMPROW_H
#define PGC_CODEC_DUMPROW_H

#include "codec/copybin.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dumprow dumprow;

/* The table and its columns in COPY order (names and oids copied). PGC_ERR_NOMEM,
 * PGC_ERR_INVALID for more than COPYBIN_MAX_FIELDS columns. */
int dumprow_create(const char *schema, const char *table, size_t ncols, const char *const *names,
                   const uint32_t *oids, dumprow **out);
void dumprow_destroy(dumprow *r); /* NULL is a no-op */
size_t dumprow_ncols(const dumprow *r);

/* Exact size of the Change of tuple t (which must have dumprow_ncols fields). */
size_t dumprow_size(const dumprow *r, const copybin_tuple *t);
/* Writes the Change into out (dumprow_size bytes); returns the length written. */
size_t dumprow_write(const dumprow *r, const copybin_tuple *t, uint8_t *out);

#endif
