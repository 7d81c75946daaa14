/* The controller's request decoding (see controller_parse.h). */
#include "roles/controller/controller_parse.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

int controller_parse_schedule(const uint8_t *data, size_t len, Pgcapture__ScheduleRequest **req,
                              dump_queue_spec **specs, char *err, size_t err_len)
{
    *req = NULL;
    *specs = NULL;
    Pgcapture__ScheduleRequest *r = pgcapture__schedule_request__unpack(NULL, len, data);
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed ScheduleRequest");
    int rc = PGC_OK;
    dump_queue_spec *s = NULL;
    if (r->n_dumps > CONTROLLER_PARSE_MAX_DUMPS) {
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "%zu dumps in one request, at most %d",
                        r->n_dumps, CONTROLLER_PARSE_MAX_DUMPS);
        goto out;
    }
    if (!(s = calloc(r->n_dumps ? r->n_dumps : 1, sizeof *s))) {
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller out of memory");
        goto out;
    }
    if (!r->uri || !*r->uri) {
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is empty");
        goto out;
    }
    for (size_t i = 0; i < r->n_dumps; i++) {
        const Pgcapture__DumpInfoResponse *d = r->dumps[i];
        s[i] = (dump_queue_spec){d->schema, d->table, d->page_begin, d->page_end};
        char why[256];
        if ((rc = dump_queue_validate(r->uri, &s[i], why, sizeof why)) != PGC_OK) {
            errbuf_set(err, err_len, rc, "dumps[%zu]: %s", i, why);
            goto out;
        }
    }
out:
    if (rc != PGC_OK) {
        free(s);
        pgcapture__schedule_request__free_unpacked(r, NULL);
        return rc;
    }
    *req = r;
    *specs = s;
    return PGC_OK;
}

int controller_parse_stop(const uint8_t *data, size_t len, Pgcapture__StopScheduleRequest **req,
                          char *err, size_t err_len)
{
    Pgcapture__StopScheduleRequest *r = pgcapture__stop_schedule_request__unpack(NULL, len, data);
    *req = NULL;
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed StopScheduleRequest");
    if (!r->uri || !*r->uri) {
        pgcapture__stop_schedule_request__free_unpacked(r, NULL);
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is empty");
    }
    *req = r;
    return PGC_OK;
}

int controller_parse_cooldown(const uint8_t *data, size_t len,
                              Pgcapture__SetScheduleCoolDownRequest **req, int64_t *ms, char *err,
                              size_t err_len)
{
    Pgcapture__SetScheduleCoolDownRequest *r =
        pgcapture__set_schedule_cool_down_request__unpack(NULL, len, data);
    *req = NULL;
    *ms = 0;
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed SetScheduleCoolDownRequest");
    int rc = PGC_OK;
    if (r->duration) {
        int64_t s = r->duration->seconds;
        int32_t ns = r->duration->nanos;
        if (s < 0 || ns < 0 || ns > 999999999 || s > 365LL * 24 * 3600)
            rc = errbuf_set(err, err_len, PGC_ERR_INVALID,
                            "duration must be between 0 and 365 days");
        else
            *ms = s * 1000 + ns / 1000000;
    }
    if (rc == PGC_OK && (!r->uri || !*r->uri))
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is empty");
    if (rc == PGC_OK && strlen(r->uri) > DUMP_QUEUE_MAX_URI_BYTES)
        rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is too long");
    if (rc != PGC_OK) {
        *ms = 0;
        pgcapture__set_schedule_cool_down_request__free_unpacked(r, NULL);
        return rc;
    }
    *req = r;
    return PGC_OK;
}

int controller_parse_status(const uint8_t *data, size_t len,
                            Pgcapture__ControllerStatusRequest **req, char *err, size_t err_len)
{
    *req = pgcapture__controller_status_request__unpack(NULL, len, data);
    if (!*req)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed ControllerStatusRequest");
    return PGC_OK;
}

int controller_parse_pull(const uint8_t *data, size_t len, bool first,
                          Pgcapture__DumpInfoRequest **req, char *err, size_t err_len)
{
    Pgcapture__DumpInfoRequest *r = pgcapture__dump_info_request__unpack(NULL, len, data);
    *req = NULL;
    if (!r)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed DumpInfoRequest");
    if (first && (!r->uri || !*r->uri || strlen(r->uri) > DUMP_QUEUE_MAX_URI_BYTES)) {
        pgcapture__dump_info_request__free_unpacked(r, NULL);
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "the first DumpInfoRequest must carry a uri (at most %d bytes)",
                          DUMP_QUEUE_MAX_URI_BYTES);
    }
    *req = r;
    return PGC_OK;
}
