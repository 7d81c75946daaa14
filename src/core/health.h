/* Readiness of this process's dependencies (NATS, PostgreSQL, the controller): the one
 * state that /readyz and grpc.health.v1.Health report. A role registers each dependency
 * it needs as down when it starts and marks it up or down as connections come and go.
 *
 * Threading: process-wide; every function is thread-safe. */
#ifndef PGC_CORE_HEALTH_H
#define PGC_CORE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_MAX_DEPS 16

/* Marks `dependency` ("nats", "postgres", "controller") up or down; registers it on
 * first use (the name must outlive the process: a string literal). `detail` (may be NULL)
 * says why it is down and is copied. */
void health_set(const char *dependency, bool up, const char *detail);

/* True when at least one dependency is registered and every one is up. Otherwise writes
 * "dependency: detail" of the first one down (or "starting") into why. */
bool health_ready(char *why, size_t why_len);

/* A number that changes whenever readiness may have changed. */
uint64_t health_version(void);
/* Waits up to timeout_ms for health_version() to differ from `seen`; returns the new
 * version (equal to `seen` on timeout). */
uint64_t health_wait_change(uint64_t seen, int timeout_ms);

/* Forgets every dependency (tests that run several roles in one process). */
void health_reset(void);

#endif
