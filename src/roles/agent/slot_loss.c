/* A lost slot, found when a session starts (see slot_loss.h). */
#include "roles/agent/slot_loss.h"

#include "codec/batch.h"
#include "codec/gapmark.h"
#include "codec/logpos.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

int slot_loss_check(replconn *repl, const char *slot, const char *stream, bool accept,
                    const jspub_last *last, slot_loss_gap *gap, char *err, size_t err_len)
{
    replconn_slot_state st;
    *gap = (slot_loss_gap){false, false, 0};
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
    *gap = (slot_loss_gap){!last->empty, st.lost, st.current_wal_lsn};
    return st.lost ? replconn_drop_slot(repl, slot, err, err_len) : PGC_OK;
}

/* The one publish in flight comes back as a single ack (jspub fails it after its ack
 * timeout at the latest). */
static int wait_ack(jspub *pub, char *err, size_t err_len)
{
    jspub_ack ack;
    while (jspub_poll(pub, &ack, 1) == 0) {
        struct pollfd pfd = {.fd = jspub_wakeup_fd(pub), .events = POLLIN};
        if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
            return errbuf_set(err, err_len, PGC_ERR_IO, "poll: %s", strerror(errno));
    }
    if (!ack.ok)
        return errbuf_set(err, err_len, PGC_ERR_IO, "publish of the gap marker failed: %s",
                          ack.error);
    return PGC_OK;
}

int slot_loss_record(jspub *pub, const jspub_last *last, const slot_loss_gap *gap,
                     size_t batch_bytes, log_pos *pos, char *err, size_t err_len)
{
    gapmark g;
    int rc = gapmark_build(&g, last->last, gap->wal_now_lsn, gap->invalidated,
                           clock_real_ns() / 1000, err, err_len);
    if (rc != PGC_OK)
        return rc;
    batch_writer *bw = NULL;
    if ((rc = batch_writer_create(batch_bytes, &bw)) != PGC_OK)
        return errbuf_set(err, err_len, rc, "gap marker: %s", status_str(rc));
    for (int i = 0; i < 3 && rc == PGC_OK; i++)
        rc = batch_writer_add(bw, &g.msg[i].base, g.pos[i]);
    if (rc != PGC_OK) {
        batch_writer_destroy(bw);
        return errbuf_set(err, err_len, rc, "gap marker: cannot pack it: %s", status_str(rc));
    }
    jspub_headers h = {g.pos[0], g.pos[2], 3, 0, 0};
    rc = jspub_publish(pub, batch_writer_data(bw), batch_writer_len(bw), &h, 0, err, err_len);
    batch_writer_destroy(bw);
    if (rc == PGC_OK)
        rc = wait_ack(pub, err, err_len);
    if (rc != PGC_OK)
        return rc;
    *pos = g.pos[2];
    char at[LOGPOS_LSN_LEN];
    logpos_format_lsn(g.pos[0].lsn, at);
    log_warn("gap recorded in the log as a pgcapture.gaps marker",
             "after=%s resume_lsn=%s reason=\"%s\" marker_lsn=%s", g.after, g.resume,
             g.fields[2].text, at);
    return PGC_OK;
}
