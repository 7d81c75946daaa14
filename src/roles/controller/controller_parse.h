/* Decoding and checking of the controller's gRPC requests (ScheduleRequest,
 * StopScheduleRequest, SetScheduleCoolDownRequest, ControllerStatusRequest, DumpInfoRequest):
 * bytes from a client become an unpacked request whose fields are within the limits, or a
 * status with the reason the client is told. Pure: no I/O, no logging, no queue state. */
#ifndef PGC_ROLES_CONTROLLER_PARSE_H
#define PGC_ROLES_CONTROLLER_PARSE_H

#include "pgcapture.pb-c.h"
#include "roles/controller/dump_queue.h"

#include <stddef.h>
#include <stdint.h>

/* Each item is one synchronous write to the bucket: 100,000 take about 15 s. */
#define CONTROLLER_PARSE_MAX_DUMPS 100000

/* A Schedule: *req (free with pgcapture__schedule_request__free_unpacked) and its items as
 * dump_queue specs (*specs, borrowing from *req, free()), each valid for the queue.
 * PGC_ERR_MALFORMED for bytes that are not a ScheduleRequest, PGC_ERR_INVALID for too many
 * items, an empty URI or an invalid item ("dumps[i]: ..."), PGC_ERR_NOMEM; nothing to free
 * then. */
int controller_parse_schedule(const uint8_t *data, size_t len, Pgcapture__ScheduleRequest **req,
                              dump_queue_spec **specs, char *err, size_t err_len);
/* A StopSchedule: PGC_ERR_MALFORMED, PGC_ERR_INVALID for an empty URI. */
int controller_parse_stop(const uint8_t *data, size_t len, Pgcapture__StopScheduleRequest **req,
                          char *err, size_t err_len);
/* A SetScheduleCoolDown, its duration in *ms (0 when absent): PGC_ERR_MALFORMED,
 * PGC_ERR_INVALID for a duration outside 0 to 365 days, an empty or too long URI. */
int controller_parse_cooldown(const uint8_t *data, size_t len,
                              Pgcapture__SetScheduleCoolDownRequest **req, int64_t *ms, char *err,
                              size_t err_len);
/* A Status (an empty URI asks for every URI): PGC_ERR_MALFORMED. */
int controller_parse_status(const uint8_t *data, size_t len,
                            Pgcapture__ControllerStatusRequest **req, char *err, size_t err_len);
/* A PullDumpInfo stream's request; the first one of a stream (`first`) must carry a URI of
 * at most DUMP_QUEUE_MAX_URI_BYTES (PGC_ERR_INVALID). PGC_ERR_MALFORMED. */
int controller_parse_pull(const uint8_t *data, size_t len, bool first,
                          Pgcapture__DumpInfoRequest **req, char *err, size_t err_len);

#endif
