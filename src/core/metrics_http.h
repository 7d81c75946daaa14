/* The HTTP endpoint of a role (libmicrohttpd, one thread of its own): GET /metrics is the
 * registry in Prometheus text format, /healthz answers 200 while the process runs, /readyz
 * 200 when every dependency is up (core/health.h) and 503 with the reason otherwise.
 *
 * Threading: requests are served on libmicrohttpd's thread; start and stop from the
 * role's main thread. */
#ifndef PGC_CORE_METRICS_HTTP_H
#define PGC_CORE_METRICS_HTTP_H

#include "core/metrics.h"

#include <stddef.h>

typedef struct metrics_http metrics_http;

/* Listens on `addr` ("127.0.0.1:9187", "[::1]:0", ":9187" for every IPv4 address; port 0
 * picks a free one, *bound_port gets it). Returns 0 or a negative status with err. */
int metrics_http_start(const char *addr, metrics_registry *r, metrics_http **out, int *bound_port,
                       char *err, size_t err_len);
/* Stops serving and frees. NULL is a no-op. */
void metrics_http_stop(metrics_http *h);

#endif
