/* Batches of the log (docs/protocol.md "In the log"): one NATS message carries consecutive
 * protocol Messages, each prefixed with its length as a protobuf varint. A Message larger
 * than the batch limit travels alone, its delimited bytes cut into parts that readers
 * join again (codec/part.h). */
#ifndef PGC_CODEC_BATCH_H
#define PGC_CODEC_BATCH_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/logpos.h"

typedef struct batch_writer batch_writer;

/* max_bytes: the batch limit (the size a NATS message may carry). */
int batch_writer_create(size_t max_bytes, batch_writer **out);
void batch_writer_destroy(batch_writer *w); /* NULL is a no-op */
void batch_writer_clear(batch_writer *w);

/* Appends `msg` taken at `pos`. PGC_ERR_TOO_LARGE when it does not fit in what is left
 * (nothing is written: flush and add again; if it is alone and still too large, use
 * batch_writer_add_oversized); always after an oversized message, until cleared. */
int batch_writer_add(batch_writer *w, const ProtobufCMessage *msg, log_pos pos);
/* Packs a message that exceeds the limit on its own into the writer's buffer (which then
 * holds only it); the caller publishes it as parts of at most max_bytes each. */
int batch_writer_add_oversized(batch_writer *w, const ProtobufCMessage *msg, log_pos pos);

const uint8_t *batch_writer_data(const batch_writer *w);
size_t batch_writer_len(const batch_writer *w);
size_t batch_writer_max(const batch_writer *w);
uint32_t batch_writer_count(const batch_writer *w);
log_pos batch_writer_first(const batch_writer *w);
log_pos batch_writer_last(const batch_writer *w);

/* Iterates the Messages of a batch. */
typedef struct batch_reader {
    const uint8_t *p, *end;
    size_t offset;
} batch_reader;

void batch_reader_init(batch_reader *r, const uint8_t *data, size_t len);
/* 1 and the next Message's bytes, 0 at the end, or PGC_ERR_TRUNCATED / PGC_ERR_MALFORMED. */
int batch_reader_next(batch_reader *r, const uint8_t **msg, size_t *len, char *err, size_t err_len);

#endif
