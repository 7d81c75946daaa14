/* Mirrors whether a NATS server is reachable into the process's dependency health
 * (core/health.h): a connection of its own, reconnecting forever, whose connect,
 * disconnect and reconnect events mark the dependency up or down.
 *
 * Threading: the events arrive on libnats's threads; start and stop from one thread. */
#ifndef PGC_JETSTREAM_NATSPROBE_H
#define PGC_JETSTREAM_NATSPROBE_H

#include <stddef.h>

typedef struct natsprobe natsprobe;

/* Registers `dependency` (a string literal, e.g. "nats") as down, then connects in the
 * background. Returns 0, or a negative status with err (bad URL, out of memory). */
int natsprobe_start(const char *url, const char *dependency, natsprobe **out, char *err,
                    size_t err_len);
/* Closes the connection. NULL is a no-op. */
void natsprobe_stop(natsprobe *p);

#endif
