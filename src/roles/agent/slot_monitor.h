/* The agent's view of its slot on the source, for metrics: a thread with its own
 * (non-replication) connection reads pg_replication_slots every interval and sets the
 * WAL-behind, wal_status and safe_wal_size gauges of the source. Started only when
 * metrics are served.
 *
 * Threading: one thread of its own; start and stop from the agent's thread. */
#ifndef PGC_ROLES_AGENT_SLOT_MONITOR_H
#define PGC_ROLES_AGENT_SLOT_MONITOR_H

#include <stdint.h>

typedef struct slot_monitor slot_monitor;

/* Copies its arguments. NULL when out of memory or the thread cannot start. */
slot_monitor *slot_monitor_start(const char *conninfo, const char *slot, const char *source,
                                 int64_t interval_ms);
void slot_monitor_stop(slot_monitor *m); /* NULL is a no-op */

#endif
