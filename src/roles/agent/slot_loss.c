/* A lost slot, found when a session starts (see slot_loss.h). */
#include "roles/agent/slot_loss.h"

#include "codec/logpos.h"
#include "core/log.h"
#include "core/status.h"

#include <stdio.h>

int slot_loss_check(replconn *repl, const char *slot, const char *stream, bool accept,
                    const jspub_last *last, char *err, size_t err_len)
{
    replconn_slot_state st;
    int rc = replconn_slot_lookup(repl, slot, &st, err, err_len);
    if (rc != PGC_OK || (st.exists && !st.lost) || (!st.exists && last->empty))
        return rc;
    char from[LOGPOS_TEXT_LEN], now[LOGPOS_LSN_LEN];
    logpos_format(last->last, from);
    logpos_format_lsn(st.current_wal_lsn, now);
    const char *what = st.lost ? "was invalidated (the WAL it needed is gone)" : "is gone";
    char held[600];
    if (last->empty)
        snprintf(held, sizeof held,
                 "stream %s holds no change yet, so changes committed since the slot was "
                 "created",
                 stream);
    else
        snprintf(held, sizeof held,
                 "stream %s holds changes up to %s, so changes committed after %s", stream, from,
                 from);
    if (!accept)
        return errbuf_set(err, err_len, PGC_ERR_DATA_LOSS,
                          "replication slot lost: slot %s %s; %s until a new slot starts (the "
                          "source's WAL is at %s now) may be missing from the log. Recover: "
                          "stop the appliers, re-initialise every replica (pgcapture replica "
                          "init, which creates the slot again), schedule dumps for every "
                          "consumer's tables, then start the agent (or start it once with "
                          "--accept-slot-recreate to let it create the slot itself); see "
                          "docs/operations.md, \"The slot was lost or invalidated\"",
                          slot, what, held, now);
    log_warn("replication slot lost; creating a new one as --accept-slot-recreate asks",
             "slot=%s stream=%s log_end=%s wal_now=%s invalidated=%s", slot, stream,
             last->empty ? "0/0" : from, now, st.lost ? "yes" : "no");
    return st.lost ? replconn_drop_slot(repl, slot, err, err_len) : PGC_OK;
}
