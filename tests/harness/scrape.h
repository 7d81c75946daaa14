/* Integration-test helpers for the operational surfaces: plain HTTP GETs of a role's
 * /metrics, /healthz and /readyz, reading one sample out of a Prometheus exposition, and
 * a grpc.health.v1 client (tests/integration/health_client.py, Python stubs generated
 * from proto/health.proto). */
#ifndef PGC_TEST_SCRAPE_H
#define PGC_TEST_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>

/* GET http://127.0.0.1:port/path; returns the status code (0 when nothing answers) and
 * the body (cut to body_len). */
int harness_http_get(int port, const char *path, char *body, size_t body_len);

/* The value of the sample whose name-and-labels is exactly `series` (e.g.
 * `pgcapture_agent_changes_published_total{source="app"}`) in an exposition; NaN when
 * absent. */
double harness_metric(const char *exposition, const char *series);

/* Scrapes /metrics on port until `series` reaches at least `min` (fails the case after
 * timeout_ms, printing the scrape); returns the value. */
double harness_metric_wait(int port, const char *series, double min, int timeout_ms);

/* grpc.health.v1 Check of `service` at addr: "SERVING", "NOT_SERVING" or "code=NAME". */
void harness_health_check(const char *addr, const char *service, char *out, size_t out_len);
/* Calls Check until it answers `want`; fails the case after timeout_ms. */
void harness_health_wait(const char *addr, const char *service, const char *want, int timeout_ms);

#endif
