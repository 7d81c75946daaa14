/* Where a Capture stream's live delivery may go while a dump item is prepared and sent
 * (docs/design.md guarantee 5). The dumper freezes the stream (nothing more goes out), finds a
 * replica snapshot at position L at or past the log's end, then lets the stream run on to
 * exactly L and hold there while the dump rows go out; releasing lets it go on.
 *
 * States: NONE -> FROZEN (stream_hold_freeze) -> RUNNING_TO L (stream_hold_hold_at) -> HELD (the
 * stream passed L, or is about to pass it, or has delivered the whole log) -> NONE
 * (stream_hold_release, from any state).
 *
 * Threading: the stream thread calls gate/passed/caught_up, the dumper thread
 * freeze/hold_at/release; every call is thread-safe. Waits wake every 100 ms to ask the
 * `stopped` callback whether the stream is over. */
#ifndef PGC_ROLES_GATEWAY_STREAM_HOLD_H
#define PGC_ROLES_GATEWAY_STREAM_HOLD_H

#include "codec/logpos.h"

#include <stdbool.h>

typedef struct stream_hold stream_hold;

/* `stopped(arg)` tells whether the stream is over (then every wait returns). `flush(arg)`
 * (may be NULL) sends what the stream has gathered and not sent yet (a batch being built):
 * the gate calls it before it stops the stream, and it must report the positions it sent
 * with stream_hold_passed; non-zero when the stream is over. */
int stream_hold_create(bool (*stopped)(void *arg), int (*flush)(void *arg), void *arg,
                       stream_hold **out);
void stream_hold_destroy(stream_hold *h); /* NULL is a no-op */

/* Stream thread, before a message goes out (or is passed over): waits while the stream
 * is frozen or held, after a flush. A message of the log at a position past the target of
 * a run-to turns it into a hold first (so nothing past L goes out), after a flush. `from_log` is
 * false for redeliveries of requeued changes, which carry old positions: they only wait. Returns 0,
 * or PGC_ERR_STATE when the stream is over. */
int stream_hold_gate(stream_hold *h, bool from_log, log_pos p);
/* Stream thread, after a message of the log at `p` went out or was passed over. */
void stream_hold_passed(stream_hold *h, log_pos p);
/* Whether a run-to is waiting for the stream (worth checking if the log is drained). */
bool stream_hold_running(stream_hold *h);
/* Stream thread: every message of the log has been delivered (nothing pending): a run-to
 * has reached its target. */
void stream_hold_caught_up(stream_hold *h);

/* Dumper thread. */
void stream_hold_freeze(stream_hold *h);
/* Runs the stream on to `target` and waits until it holds there (at once when the stream
 * has delivered up to the target already): 0, PGC_ERR_TIMEOUT, or PGC_ERR_CONN when the
 * stream is over. On failure the caller releases. */
int stream_hold_hold_at(stream_hold *h, log_pos target, int timeout_ms);
void stream_hold_release(stream_hold *h);
/* Wakes every waiter (after the stream's stop condition changed). */
void stream_hold_wake(stream_hold *h);

#endif
