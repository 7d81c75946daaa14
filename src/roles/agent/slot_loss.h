/* A slot that is gone or invalidated while the stream already holds changes: what was
 * committed between the stream's last change and a new slot's start could never reach the
 * log, and nothing downstream could tell (docs/design.md, guarantee 9). Decided when the
 * agent's session starts, before it creates a slot. */
#ifndef PGC_ROLES_AGENT_SLOT_LOSS_H
#define PGC_ROLES_AGENT_SLOT_LOSS_H

#include "jetstream/jspub.h"
#include "pg/replconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the caller must record when it goes on over a gap. */
typedef struct slot_loss_gap {
    bool gap;             /* a new slot starts after changes the log cannot have */
    bool invalidated;     /* the slot was invalidated (else it was gone) */
    uint64_t wal_now_lsn; /* the source's WAL position read before the new slot exists */
} slot_loss_gap;

/* PGC_OK when the slot exists and is usable, or is missing while the stream is empty (a
 * first start: the caller creates it). Otherwise PGC_ERR_DATA_LOSS with what may be missing
 * and how to recover, unless `accept` (--accept-slot-recreate): then the loss is logged, an
 * invalidated slot is dropped, `gap` says what the caller must record in the log (the gap
 * marker, when the stream holds changes), and PGC_OK lets it create a new slot. */
int slot_loss_check(replconn *repl, const char *slot, const char *stream, bool accept,
                    const jspub_last *last, slot_loss_gap *gap, char *err, size_t err_len);

/* Publishes the gap marker (codec/gapmark.h) after `last` and waits for its ack, so that it
 * is in the log before the new slot exists: an agent killed after this finds the slot
 * missing again and refuses, or with the flag records the (larger) gap again; one killed
 * after creating the slot finds the marker as the stream's last message. On PGC_OK `*pos`
 * is the marker's last position. */
int slot_loss_record(jspub *pub, const jspub_last *last, const slot_loss_gap *gap,
                     size_t batch_bytes, log_pos *pos, char *err, size_t err_len);

#endif
