/* The gateway's fast path between the log and a consumer, on raw protobuf bytes: finds
 * the kind of a log Message and its Change without unpacking it, reads the Change's table
 * name (for TableRegex), copies a Change without the NULL fields of its old row, and
 * writes a CaptureMessage {checkpoint, change} around the Change's bytes. Unpacking and
 * repacking every change would cost more than the rest of the gateway together. Pure;
 * every length is checked. */
#ifndef PGC_CODEC_CAPMSG_H
#define PGC_CODEC_CAPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum capmsg_kind {
    CAPMSG_OTHER = 0, /* Commit, KeepAlive, or a type this version does not know */
    CAPMSG_BEGIN = 1,
    CAPMSG_CHANGE = 3,
} capmsg_kind;

/* Scans one serialized Message. PGC_ERR_MALFORMED when the bytes are not valid protobuf;
 * for a Change (and a Begin), *change and *change_len point at its bytes inside `msg`. When the
 * oneof appears more than once the last one wins, as protobuf says. */
int capmsg_peek(const uint8_t *msg, size_t len, capmsg_kind *kind, const uint8_t **change,
                size_t *change_len, char *err, size_t err_len);
/* Begin.final_lsn and Begin.commit_time (microseconds since 2000-01-01; 0 when absent) of
 * a serialized Begin (the bytes capmsg_peek returns as *change for CAPMSG_BEGIN);
 * PGC_ERR_MALFORMED on bad bytes. */
int capmsg_begin_lsn(const uint8_t *begin, size_t len, uint64_t *lsn, uint64_t *commit_time,
                     char *err, size_t err_len);
/* The table name of a serialized Change (borrowed, not NUL-terminated; empty when
 * absent). PGC_ERR_MALFORMED on bad bytes. */
int capmsg_change_table(const uint8_t *change, size_t len, const uint8_t **table, size_t *table_len,
                        char *err, size_t err_len);
/* The schema name of a serialized Change, as capmsg_change_table gives the table name. */
int capmsg_change_schema(const uint8_t *change, size_t len, const uint8_t **schema,
                         size_t *schema_len, char *err, size_t err_len);

/* The operation of a serialized Change (PGCAPTURE__CHANGE__OPERATION__*; 0, INSERT, when
 * absent, as protobuf says). PGC_ERR_MALFORMED on bad bytes. */
int capmsg_change_op(const uint8_t *change, size_t len, int *op, char *err, size_t err_len);

/* Whether the `old` row of a serialized Change holds a field without a value (SQL NULL).
 * The log keeps such fields (the replica applier matches a keyless REPLICA IDENTITY FULL
 * row by them); the Capture stream leaves them out, as pgcapture does (docs/protocol.md,
 * "Rows and values"). PGC_ERR_MALFORMED on bad bytes. */
int capmsg_change_old_has_null(const uint8_t *change, size_t len, bool *has, char *err,
                               size_t err_len);
/* Copies a serialized Change into `out` (len bytes at least) without the fields of `old`
 * that have no value; every other field's bytes are copied as they are, in order. Returns
 * the length written. Only for a Change capmsg_change_old_has_null read without error. */
size_t capmsg_change_drop_old_nulls(const uint8_t *change, size_t len, uint8_t *out);

/* Exact bytes capmsg_build writes for these lengths. */
size_t capmsg_build_len(uint64_t lsn, uint32_t seq, size_t data_len, size_t change_len);
/* Writes the CaptureMessage up to the change's bytes (change_len of them go at the returned
 * pointer, written by the caller); capmsg_build_len bytes in all. */
uint8_t *capmsg_build_head(uint8_t *out, uint64_t lsn, uint32_t seq, const uint8_t *data,
                           size_t data_len, size_t change_len);
/* Bytes enough for capmsg_build (an upper bound). */
size_t capmsg_build_size(size_t change_len, size_t data_len);
/* Writes CaptureMessage{checkpoint{lsn, seq, data}, change} into out (capmsg_build_size
 * bytes at least); returns the length written. */
size_t capmsg_build(uint8_t *out, uint64_t lsn, uint32_t seq, const uint8_t *data, size_t data_len,
                    const uint8_t *change, size_t change_len);

#endif
