/* Keeps a stream's log delivery in log order while messages are away: given back to the
 * durable (a nak with a short delay, after which the server queues them again sorted by
 * stream sequence) or asked back by a take-back (every unacked message up to a sequence).
 * A message delivered meanwhile that is newer than one still away gives way: it is given
 * back too, and goes out after. Pure bookkeeping by stream sequence; the caller naks. Not
 * thread-safe (the stream thread's). Should nothing come back for `patience_ms` (what was
 * away was acked meanwhile, as a copy of a change the stream holds), the guard forgets. */
#ifndef PGC_ROLES_GATEWAY_ORDER_GUARD_H
#define PGC_ROLES_GATEWAY_ORDER_GUARD_H

#include <stdbool.h>
#include <stdint.h>

/* Messages away at most; past it the guard forgets them (order_guard_given_back). */
#define ORDER_GUARD_MAX 1024

typedef struct order_guard order_guard;

typedef enum order_guard_verdict {
    ORDER_GUARD_PASS,      /* goes out (or is a copy: the caller knows) */
    ORDER_GUARD_GIVE_BACK, /* newer than what is away: give it back (now counted away) */
} order_guard_verdict;

order_guard *order_guard_create(int64_t patience_ms); /* NULL when out of memory */
void order_guard_destroy(order_guard *g);             /* NULL is a no-op */

/* A take-back asked back every unacked message up to `through` (0: none): they come again
 * together, and what is newer waits until the first of them comes. */
void order_guard_asked_back(order_guard *g, uint64_t through, int64_t now_ms);
/* Message `seq` was given back. False when ORDER_GUARD_MAX are away already: the guard
 * then forgets everything (order is no longer kept for those). */
bool order_guard_given_back(order_guard *g, uint64_t seq, int64_t now_ms);
/* A message of the durable was delivered now: whether it goes out or gives way. */
order_guard_verdict order_guard_admit(order_guard *g, uint64_t seq, int64_t now_ms);
/* A copy of a message the stream holds was delivered now (it does not go out): one of a
 * take-back's range shows the range is queued. */
void order_guard_copy(order_guard *g, uint64_t seq, int64_t now_ms);
/* Something is away. */
bool order_guard_active(const order_guard *g);
/* How many times the guard forgot what was away (patience or room ran out). */
uint64_t order_guard_forgotten(const order_guard *g);

#endif
