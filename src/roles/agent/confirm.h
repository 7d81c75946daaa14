/* Which LSN the agent may confirm to PostgreSQL (docs/design.md guarantee 1). A transaction's
 * end LSN becomes confirmable once every NATS publish up to the one holding its last
 * message is acknowledged, and, on a single-replica stream, only `delay_ms` after that
 * acknowledgement (the server fsyncs on a timer). Publishes are numbered 1, 2, 3... in
 * publish order; their acks may arrive in any order. Pure bookkeeping: no I/O, no clock
 * of its own (callers pass now_ms), memory bounded by the publishes in flight plus one
 * entry per 100 ms of the delay. */
#ifndef PGC_ROLES_AGENT_CONFIRM_H
#define PGC_ROLES_AGENT_CONFIRM_H

#include <stdbool.h>
#include <stdint.h>

typedef struct confirm_tracker confirm_tracker;

/* The delay a stream of `replicas` needs when --confirm-delay is not given (flag_ms < 0):
 * CONFIRM_DELAY_SINGLE_MS on one replica (a lone server fsyncs its file store on a timer,
 * 2 min by default, so its ack survives a kill -9 but not a power loss until then), 0 on
 * more (a quorum of servers holds the message when JetStream acks it). A given flag wins. */
#define CONFIRM_DELAY_SINGLE_MS (2 * 60 * 1000)
int64_t confirm_delay_for(int64_t flag_ms, int replicas);

/* start_lsn: what the slot already has confirmed (never reported lower). */
int confirm_tracker_create(int64_t delay_ms, uint64_t start_lsn, confirm_tracker **out);
void confirm_tracker_destroy(confirm_tracker *t); /* NULL is a no-op */

/* Publish number `pubno` (the previous one plus one) was sent. */
int confirm_published(confirm_tracker *t, uint64_t pubno);
/* Publish `pubno` is acknowledged by the log. Unknown or repeated numbers are ignored. */
void confirm_acked(confirm_tracker *t, uint64_t pubno, int64_t now_ms);
/* A transaction ending at end_lsn is durable once publishes 1..needed_pubno are acked
 * (needed_pubno 0: nothing of it needed publishing and nothing was in flight before). */
int confirm_txn_done(confirm_tracker *t, uint64_t needed_pubno, uint64_t end_lsn, int64_t now_ms);
/* The server reports WAL end `wal_end` while nothing is open on our side: with nothing
 * in flight or waiting, that position may be confirmed too (a quiet or fully filtered
 * database must not retain WAL). Returns whether it was taken. */
bool confirm_idle(confirm_tracker *t, uint64_t wal_end, int64_t now_ms);

/* The highest LSN that may be reported as flushed now. Never decreases. */
uint64_t confirm_lsn(confirm_tracker *t, int64_t now_ms);
/* Highest publish number such that it and every earlier one is acked. */
uint64_t confirm_acked_through(const confirm_tracker *t);
/* Transactions acked but still inside the delay, plus those waiting for acks. */
int confirm_waiting(const confirm_tracker *t);

#endif
