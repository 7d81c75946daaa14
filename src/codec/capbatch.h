/* Batch-mode CaptureMessages (docs/protocol.md "Batch mode") as bytes. The gateway writes
 * {batch, items: [{checkpoint, change}, ...]} around Change bytes it already holds (from the
 * log, or from dumprow), without building or packing protobuf-c structs; readers walk the
 * items of a received message without unpacking all of it. Pure. */
#ifndef PGC_CODEC_CAPBATCH_H
#define PGC_CODEC_CAPBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A batch being written; the caller owns the struct (capbatch_init/capbatch_free). The
 * batch number goes last (capbatch_finish): protobuf fields may come in any order, and the
 * gateway numbers a batch only when it sends it. */
typedef struct capbatch {
    uint8_t *buf;
    size_t len, cap;
    uint32_t count; /* items written */
} capbatch;

void capbatch_init(capbatch *b);
void capbatch_free(capbatch *b);
/* Empties the batch (the buffer is kept). */
void capbatch_reset(capbatch *b);
/* Appends the batch number (1, 2, ... on a stream): the message is then complete, in
 * b->buf and b->len. PGC_ERR_NOMEM. */
int capbatch_finish(capbatch *b, uint64_t number);
/* Bytes an item adds to the batch. */
size_t capbatch_item_size(uint64_t lsn, uint32_t seq, size_t data_len, size_t change_len);
/* Appends the item {checkpoint {lsn, seq, data}, change} and returns where its change_len
 * bytes of Change go (the caller writes them before the next call), NULL when out of
 * memory (nothing appended). */
uint8_t *capbatch_add_item(capbatch *b, uint64_t lsn, uint32_t seq, const uint8_t *data,
                           size_t data_len, size_t change_len);
/* Appends an item with the Change's bytes copied in. PGC_ERR_NOMEM. */
int capbatch_add(capbatch *b, uint64_t lsn, uint32_t seq, const uint8_t *data, size_t data_len,
                 const uint8_t *change, size_t change_len);

/* One change of a received CaptureMessage (a batch item, or the message itself in
 * per-change mode); pointers borrow from the message. */
typedef struct capbatch_item {
    bool has_checkpoint;
    uint64_t lsn;
    uint32_t seq;
    const uint8_t *data;
    size_t data_len;
    bool has_change;
    const uint8_t *change; /* serialized Change */
    size_t change_len;
} capbatch_item;

/* Reads a CaptureMessage's (or CaptureItem's) checkpoint and change. PGC_ERR_MALFORMED on
 * bytes that are not protobuf or fields of the wrong wire type. */
int capbatch_read_item(const uint8_t *msg, size_t len, capbatch_item *out, char *err,
                       size_t err_len);

typedef struct capbatch_reader {
    const uint8_t *msg, *p, *end;
} capbatch_reader;

/* Starts reading a CaptureMessage: *batch gets its batch number (0: a per-change message,
 * whose one change capbatch_read_item reads) and *items how many items it carries.
 * PGC_ERR_MALFORMED on bad bytes. */
int capbatch_reader_init(capbatch_reader *r, const uint8_t *msg, size_t len, uint64_t *batch,
                         uint32_t *items, char *err, size_t err_len);
/* The next item: 1, 0 after the last, PGC_ERR_MALFORMED. */
int capbatch_reader_next(capbatch_reader *r, capbatch_item *out, char *err, size_t err_len);

#endif
