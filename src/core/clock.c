/* Time helpers: see clock.h. */
#include "core/clock.h"

#define NS_PER_MS 1000000L
#define NS_PER_S 1000000000L

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void deadline_on(clockid_t clock, struct timespec *out, int64_t ms)
{
    clock_gettime(clock, out);
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * NS_PER_MS;
    if (out->tv_nsec >= NS_PER_S) {
        out->tv_sec++;
        out->tv_nsec -= NS_PER_S;
    }
}

void clock_deadline_ms(struct timespec *out, int64_t ms)
{
    deadline_on(CLOCK_REALTIME, out, ms);
}

void clock_deadline_mono_ms(struct timespec *out, int64_t ms)
{
    deadline_on(CLOCK_MONOTONIC, out, ms);
}

void clock_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * NS_PER_MS};
    nanosleep(&ts, NULL);
}
