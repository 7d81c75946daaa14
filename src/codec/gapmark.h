/* The gap marker: a synthesized transaction the agent publishes when it knowingly starts a
 * new slot over a gap (--accept-slot-recreate while the log already holds changes). Its one
 * Change is an INSERT on the virtual table pgcapture.gaps, placed strictly after the log's
 * last position and strictly before anything the new slot decodes, so every reader meets
 * it in order (docs/protocol.md, "The gap marker"). */
#ifndef PGC_CODEC_GAPMARK_H
#define PGC_CODEC_GAPMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/logpos.h"
#include "pgcapture.pb-c.h"

#define GAPMARK_SCHEMA "pgcapture"
#define GAPMARK_TABLE "gaps"
#define GAPMARK_REASON_LOST "slot lost"
#define GAPMARK_REASON_INVALIDATED "slot invalidated"

/* The marker's three Messages (Begin, Change, Commit) and their positions; every pointer
 * in `msg` points inside this struct, so it must not be copied once built. */
typedef struct gapmark {
    Pgcapture__Message msg[3];
    log_pos pos[3];
    Pgcapture__Begin begin;
    Pgcapture__Change change;
    Pgcapture__Commit commit;
    Pgcapture__Field fields[4];
    Pgcapture__Field *ptrs[4];
    char after[LOGPOS_TEXT_LEN], resume[LOGPOS_LSN_LEN], at[40];
} gapmark;

/* Builds the marker of a gap after `log_last` (the log's last position) that ends where
 * the source's WAL was at `resume_lsn`, read before the new slot was created: a slot
 * created afterwards decodes only transactions whose commit record starts at or after its
 * consistent point, itself at or after `resume_lsn`. The marker's positions are
 * (resume_lsn - 1, 0..2). PGC_ERR_INVALID when that is not after `log_last`. */
int gapmark_build(gapmark *g, log_pos log_last, uint64_t resume_lsn, bool invalidated,
                  int64_t unix_us, char *err, size_t err_len);

/* Whether a Change's schema and table name the marker (lengths as given, not NUL-ended). */
bool gapmark_is_marker(const char *schema, size_t schema_len, const char *table, size_t table_len);

#endif
