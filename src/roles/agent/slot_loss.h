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

/* PGC_OK when the slot exists and is usable, or is missing while the stream is empty (a
 * first start: the caller creates it). Otherwise PGC_ERR_DATA_LOSS with what may be missing
 * and how to recover, unless `accept` (--accept-slot-recreate): then the loss is logged, an
 * invalidated slot is dropped, and PGC_OK lets the caller create a new one. */
int slot_loss_check(replconn *repl, const char *slot, const char *stream, bool accept,
                    const jspub_last *last, char *err, size_t err_len);

#endif
