/* Decoder of PostgreSQL's logical replication output plugin pgoutput, protocol versions
 * 1 and 2 (streaming of in-progress transactions), as proto.c in PostgreSQL writes it.
 * Pure: no I/O, no allocation per message in steady state (scratch arrays are reused);
 * everything decoded borrows from the input buffer. Bad input is an error, never a crash. */
#ifndef PGC_CODEC_PGOUTPUT_H
#define PGC_CODEC_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's MaxTupleAttributeNumber. */
#define PGOUTPUT_MAX_COLUMNS 1664

typedef struct pgoutput_value {
    char kind; /* 'n' NULL, 'u' unchanged TOAST, 't' text, 'b' binary */
    uint32_t len;
    const uint8_t *data; /* borrowed from the input buffer */
} pgoutput_value;

typedef struct pgoutput_tuple {
    uint16_t ncols;
    const pgoutput_value *values; /* valid until the next decode call */
} pgoutput_tuple;

typedef struct pgoutput_column {
    uint8_t flags; /* 1: part of the replica identity key */
    const char *name;
    uint32_t type_oid;
    int32_t type_mod;
} pgoutput_column;

typedef struct pgoutput_msg {
    char kind;
    uint32_t xid; /* of a message inside a streamed block, else 0 */
    union {
        struct {
            uint64_t final_lsn;
            int64_t commit_time;
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn, end_lsn;
            int64_t commit_time;
        } commit;
        struct {
            uint64_t lsn;
            const char *name;
        } origin;
        struct {
            uint32_t oid;
            const char *nspname, *relname;
            char replident;
            uint16_t ncols;
            const pgoutput_column *cols;
        } relation;
        struct {
            uint32_t oid;
            const char *nspname, *typname;
        } type;
        struct {
            uint32_t relid;
            pgoutput_tuple new_tuple;
        } insert;
        struct {
            uint32_t relid;
            char old_kind; /* 0, 'K' (key) or 'O' (full old row) */
            pgoutput_tuple old_tuple, new_tuple;
        } update;
        struct {
            uint32_t relid;
            char old_kind;
            pgoutput_tuple old_tuple;
        } del;
        struct {
            uint32_t nrels;
            uint8_t options; /* 1 CASCADE, 2 RESTART IDENTITY */
            const uint32_t *relids;
        } truncate;
        struct {
            bool transactional;
            uint64_t lsn;
            const char *prefix;
            uint32_t len;
            const uint8_t *content;
        } message;
        struct {
            uint32_t xid;
            bool first_segment;
        } stream_start;
        struct {
            uint32_t xid;
            uint8_t flags;
            uint64_t commit_lsn, end_lsn;
            int64_t commit_time;
        } stream_commit;
        struct {
            uint32_t xid, subxid;
        } stream_abort;
    } u;
} pgoutput_msg;

typedef struct pgoutput_decoder pgoutput_decoder;

/* proto_version 1 or 2; PGC_ERR_INVALID otherwise. */
int pgoutput_decoder_create(int proto_version, pgoutput_decoder **out);
void pgoutput_decoder_destroy(pgoutput_decoder *d); /* NULL is a no-op */

/* Decodes one message (the XLogData payload after its 'w' header). Statuses:
 * PGC_ERR_TRUNCATED (ends early), PGC_ERR_MALFORMED (bad tag, missing NUL, trailing
 * bytes), PGC_ERR_UNSUPPORTED (unknown kind, or a v2 message on a v1 decoder),
 * PGC_ERR_TOO_LARGE (more columns than PostgreSQL allows), PGC_ERR_NOMEM. */
int pgoutput_decode(pgoutput_decoder *d, const uint8_t *buf, size_t len, pgoutput_msg *out,
                    char *err, size_t err_len);

#endif
