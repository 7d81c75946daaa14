/* Decoder of PostgreSQL's binary COPY format (COPY ... TO STDOUT (FORMAT binary), described
 * on PostgreSQL's COPY reference page): an 11-byte signature, a flags word, a header
 * extension, then tuples (an int16 field count, then per field an int32 length, -1 for
 * NULL, and that many bytes) and an int16 -1 trailer, all big endian. Each field is its
 * type's binary send format, the same bytes Field.binary carries.
 *
 * Fed as a stream in chunks of any size (libpq hands out one CopyData message at a time;
 * PostgreSQL sends one tuple per message, the header glued to the first). Pure: no I/O.
 * A tuple lying whole inside a chunk is decoded in place; only a tuple cut across chunks
 * is gathered in the decoder's buffer, so memory stays bounded by the largest tuple. */
#ifndef PGC_CODEC_COPYBIN_H
#define PGC_CODEC_COPYBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's MaxTupleAttributeNumber. */
#define COPYBIN_MAX_FIELDS 1664

typedef struct copybin_field {
    const uint8_t *data; /* borrowed; NULL for SQL NULL */
    int32_t len;         /* -1 for SQL NULL */
} copybin_field;

typedef struct copybin_tuple {
    uint16_t nfields;
    const copybin_field *fields; /* valid until the next copybin_next or copybin_feed */
} copybin_tuple;

typedef struct copybin copybin;

/* max_tuple_bytes bounds one tuple's encoded size (a longer one is PGC_ERR_TOO_LARGE). */
int copybin_create(size_t max_tuple_bytes, copybin **out);
void copybin_destroy(copybin *d); /* NULL is a no-op */
/* Starts a new stream (header expected again); keeps the buffers. */
void copybin_reset(copybin *d);

/* Hands the decoder the next chunk. The chunk is borrowed until copybin_next returns 0
 * (what it still needs of the chunk is copied then), so feed only after that.
 * PGC_ERR_STATE when the previous chunk is not used up yet, PGC_ERR_NOMEM. */
int copybin_feed(copybin *d, const uint8_t *data, size_t len);

/* The next tuple: 1 with *out, 0 when the chunks fed so far hold no further whole tuple
 * (feed more), 2 once the trailer has been read (the end of the data). Errors:
 * PGC_ERR_MALFORMED (bad signature, critical flag, field count or length, bytes after the
 * trailer), PGC_ERR_TOO_LARGE, PGC_ERR_NOMEM; the first error sticks. */
int copybin_next(copybin *d, copybin_tuple *out, char *err, size_t err_len);

/* After the last chunk: PGC_OK when the trailer was read and nothing followed it,
 * PGC_ERR_TRUNCATED when the stream stopped short. */
int copybin_finish(const copybin *d, char *err, size_t err_len);

/* Tuples decoded since create or reset. */
uint64_t copybin_tuples(const copybin *d);

#endif
