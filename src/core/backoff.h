/* Capped exponential back-off between the sessions of a role (agent, replica): the delay
 * doubles from 100 ms up to a cap, and starts over after a session that lasted 30 s, which
 * counts as having recovered. */
#ifndef PGC_CORE_BACKOFF_H
#define PGC_CORE_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
    int64_t delay_ms, max_ms;
    int failures;             /* in a row, since the last recovery */
    int64_t failing_since_ms; /* monotonic time of the first of them */
} backoff;

void backoff_init(backoff *b, int64_t max_ms);
/* Records a failed session that began at session_start_ms (monotonic) and returns how long
 * to wait before the next; b->failures and b->failing_since_ms say how it is going. */
int64_t backoff_failed(backoff *b, int64_t session_start_ms);

#endif
