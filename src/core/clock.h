/* Time helpers shared by the roles, the gRPC plumbing and libpgcapture: a monotonic
 * millisecond clock for intervals, absolute deadlines for pthread_cond_timedwait, and a
 * plain sleep. */
#ifndef PGC_CORE_CLOCK_H
#define PGC_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (arbitrary origin): for intervals and deadlines. */
int64_t clock_mono_ms(void);

/* Nanoseconds on CLOCK_MONOTONIC: for latencies under a millisecond. */
int64_t clock_mono_ns(void);

/* PostgreSQL's epoch, 2000-01-01 00:00 UTC, in seconds since the Unix epoch: pgoutput's
 * and the log's commit times count microseconds from it. */
#define CLOCK_PG_EPOCH_UNIX_S 946684800LL

/* Nanoseconds since the Unix epoch on CLOCK_REALTIME. */
int64_t clock_real_ns(void);

/* The CLOCK_REALTIME instant `ms` from now, for pthread_cond_timedwait on a condition
 * variable with the default clock. `ms` must not be negative. */
void clock_deadline_ms(struct timespec *out, int64_t ms);

/* The same on CLOCK_MONOTONIC, for a condition variable created with
 * pthread_condattr_setclock(CLOCK_MONOTONIC). */
void clock_deadline_mono_ms(struct timespec *out, int64_t ms);

/* Sleeps `ms` (one nanosleep: a signal handler cuts it short). */
void clock_sleep_ms(int64_t ms);

#endif
