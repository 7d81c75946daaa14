/* Back-off between sessions (see backoff.h). */
#include "core/backoff.h"

#include "core/clock.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_RECOVERED_MS 30000

void backoff_init(backoff *b, int64_t max_ms)
{
    b->delay_ms = BACKOFF_FIRST_MS;
    b->max_ms = max_ms > BACKOFF_FIRST_MS ? max_ms : BACKOFF_FIRST_MS;
    b->failures = 0;
    b->failing_since_ms = 0;
}

int64_t backoff_failed(backoff *b, int64_t session_start_ms)
{
    int64_t now = clock_mono_ms();
    if (now - session_start_ms > BACKOFF_RECOVERED_MS) {
        b->delay_ms = BACKOFF_FIRST_MS;
        b->failures = 0;
    }
    if (b->failures == 0)
        b->failing_since_ms = now;
    b->failures++;
    int64_t wait = b->delay_ms;
    b->delay_ms = b->delay_ms * 2 > b->max_ms ? b->max_ms : b->delay_ms * 2;
    return wait;
}
