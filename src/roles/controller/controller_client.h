/* A client of the controller's service for the admin commands (`pgcapture schedule`,
 * `pgcapture status`): Schedule of a table's page ranges, StopSchedule,
 * SetScheduleCoolDown and DBLogControllerAdmin/Status, each a blocking unary call with a
 * deadline. Errors are returned, never printed. One thread at a time. */
#ifndef PGC_ROLES_CONTROLLER_CONTROLLER_CLIENT_H
#define PGC_ROLES_CONTROLLER_CONTROLLER_CLIENT_H

#include "rpc/client.h"

#include <stddef.h>
#include <stdint.h>

typedef struct controller_client controller_client;

/* addr is "host:port", reached with channel options `o` (TLS, token; NULL: plaintext);
 * every call waits at most timeout_ms. PGC_ERR_INVALID for an address gRPC refuses or TLS
 * options that do not check out, PGC_ERR_IO for an unreadable TLS file. */
int controller_client_create(const char *addr, const rpc_channel_options *o, int timeout_ms,
                             controller_client **out, char *err, size_t err_len);
void controller_client_destroy(controller_client *c); /* NULL is a no-op */

/* The calls below return PGC_OK; PGC_ERR_INVALID when the controller refused the request
 * as invalid; PGC_ERR_CONN when the call could not be made or ended with another status
 * (err says which, with a hint when the controller seems not to be running). */
int controller_client_stop_schedule(controller_client *c, const char *uri, char *err,
                                    size_t err_len);
int controller_client_set_cool_down(controller_client *c, const char *uri, int64_t cool_down_ms,
                                    char *err, size_t err_len);

typedef struct controller_client_plan {
    uint64_t pages;      /* the table's pages on the replica (at least 1) */
    uint64_t items;      /* items of the plan */
    uint64_t items_sent; /* items scheduled, also on failure */
} controller_client_plan;

/* Schedules a dump of schema.table for `uri`: reads the table's size on the replica
 * (pg/table_pages.h), plans items of pages_per_item pages covering pages 0 to pages - 1
 * (a table of no pages still gets one item: rows may arrive before it is dumped) and
 * schedules them in requests of at most 10,000 items. Besides the statuses above:
 * PGC_ERR_NOT_FOUND when the replica has no such table, PGC_ERR_INVALID also for a
 * relation without storage of its own, PGC_ERR_TOO_LARGE when its pages do not fit a
 * dump item's 32-bit page numbers. */
int controller_client_schedule_table(controller_client *c, const char *uri,
                                     const char *replica_conninfo, const char *schema,
                                     const char *table, uint64_t pages_per_item,
                                     controller_client_plan *plan, char *err, size_t err_len);

typedef struct controller_client_uri_status {
    char *uri;
    uint64_t pending, backing_off, outstanding, done, requeued, rows_sent;
    uint32_t streams;
    int64_t cool_down_ms;
    double done_per_second;
    int64_t eta_ms; /* negative: unknown */
} controller_client_uri_status;

/* The queues of `uri` (empty: of every URI) as *n entries in *out (caller frees with
 * controller_client_status_free). PGC_ERR_TOO_LARGE for a URI too long to ask about,
 * PGC_ERR_MALFORMED for an answer that does not parse. */
int controller_client_status(controller_client *c, const char *uri,
                             controller_client_uri_status **out, size_t *n, char *err,
                             size_t err_len);
void controller_client_status_free(controller_client_uri_status *st, size_t n);

#endif
