/* The chaos checker's view of the log and of the rows the workload writes
 * (tests/chaos/chaos_workload.c): every change of the log reduced to what the checks
 * compare, grouped into transactions, in log order. Built from the stream with the test
 * harness's independent reader (tests/harness/streamread.h). */
#ifndef PGC_CHAOS_LOG_H
#define PGC_CHAOS_LOG_H

#include "codec/logpos.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum chaos_table {
    CT_ITEMS,
    CT_TXNS,
    CT_SCRATCH,
    CT_DDL,
    CT_KEYLESS,
    CT_OTHER
} chaos_table;

/* A value of items.big: absent (an unchanged TOAST value), NULL, or "<token>." repeated to
 * `len` bytes (anything else is recorded as malformed). */
typedef enum big_state { BIG_ABSENT, BIG_NULL, BIG_VALUE, BIG_MALFORMED } big_state;

typedef struct chaos_row {
    int64_t id, ver, txn; /* items: new row (or the old key of a DELETE: id only) */
    int32_t w;
    bool payload_ok; /* payload is "v<ver>-<w>-<txn>" */
    big_state big;
    uint32_t big_len;
    int64_t big_token;
    /* txns rows: what the transaction says it did */
    int64_t n_items, n_scratch, n_truncs, n_ddl, n_keyless;
} chaos_row;

typedef struct chaos_change {
    log_pos pos;
    chaos_table table;
    int op; /* PGCAPTURE__CHANGE__OPERATION__* */
    chaos_row row;
} chaos_change;

typedef struct chaos_txn {
    uint64_t lsn; /* commit LSN (Begin.final_lsn) */
    log_pos commit_pos;
    size_t first, n; /* its changes: log->changes[first .. first + n) */
} chaos_txn;

typedef struct chaos_log {
    chaos_change *changes;
    size_t n_changes;
    chaos_txn *txns;
    size_t n_txns;
    /* Problems with the shape of the log (positions, Begin/Commit framing), first few. */
    size_t shape_errors;
    char shape_error[512];
} chaos_log;

/* Reads the whole log of source `name` (fails the running case on malformed content).
 * Freed at the end of the case. */
chaos_log *chaos_log_read(const char *name);
void chaos_log_free(chaos_log *log);

/* The change at `pos`, or NULL. */
const chaos_change *chaos_log_find(const chaos_log *log, log_pos pos);

/* Parses items.big as text of `len` bytes into `row` (BIG_VALUE or BIG_MALFORMED). */
void chaos_big_parse(const char *s, size_t len, chaos_row *row);
/* Whether payload (len bytes) is "v<ver>-<w>-<txn>" for the row's values. */
bool chaos_payload_matches(const char *s, size_t len, const chaos_row *row);

const char *chaos_table_name(chaos_table t);
const char *chaos_op_name(int op);

#endif
