/* A client of the controller's service (see controller_client.h). */
#include "roles/controller/controller_client.h"

#include "core/status.h"
#include "pg/table_pages.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"
#include "rpc/methods.h"

#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEMS_PER_REQUEST 10000
#define STATUS_REQUEST_MAX_BYTES 2048

struct controller_client {
    rpc_channel *ch;
    char *addr;
    int timeout_ms;
};

int controller_client_create(const char *addr, const rpc_channel_options *o, int timeout_ms,
                             controller_client **out, char *err, size_t err_len)
{
    controller_client *c = calloc(1, sizeof *c);
    if (!c || !(c->addr = strdup(addr))) {
        free(c);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    }
    c->timeout_ms = timeout_ms;
    int rc = rpc_channel_create_opts(addr, o, &c->ch, err, err_len);
    if (rc != PGC_OK) {
        controller_client_destroy(c);
        return rc == PGC_ERR_NOMEM ? rc : rc == PGC_ERR_IO ? rc : PGC_ERR_INVALID;
    }
    *out = c;
    return PGC_OK;
}

void controller_client_destroy(controller_client *c)
{
    if (!c)
        return;
    rpc_channel_destroy(c->ch);
    free(c->addr);
    free(c);
}

/* Calls a unary method with a packed request; on PGC_OK, *resp (caller frees) holds the
 * answer when resp is not NULL. */
static int call(controller_client *c, const char *method, const ProtobufCMessage *m, uint8_t **resp,
                size_t *resp_len, char *err, size_t err_len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    protobuf_c_message_pack(m, buf);
    uint8_t *answer = NULL;
    size_t answer_len = 0;
    int code = 0;
    char why[512] = "";
    int rc = rpc_unary(c->ch, method, buf, n, c->timeout_ms, &answer, &answer_len, &code, why,
                       sizeof why);
    free(buf);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_CONN, "cannot call %s at %s: %s", method, c->addr,
                          why);
    if (code != GRPC_STATUS_OK) {
        free(answer);
        const char *hint = code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED
                               ? " (is the controller running at that address?)"
                               : "";
        return errbuf_set(err, err_len,
                          code == GRPC_STATUS_INVALID_ARGUMENT ? PGC_ERR_INVALID : PGC_ERR_CONN,
                          "%s at %s failed: status %d: %s%s", method, c->addr, code, why, hint);
    }
    if (resp) {
        *resp = answer;
        *resp_len = answer_len;
    } else {
        free(answer);
    }
    return PGC_OK;
}

int controller_client_stop_schedule(controller_client *c, const char *uri, char *err,
                                    size_t err_len)
{
    Pgcapture__StopScheduleRequest req = PGCAPTURE__STOP_SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    return call(c, RPC_METHOD_STOP_SCHEDULE, &req.base, NULL, NULL, err, err_len);
}

int controller_client_set_cool_down(controller_client *c, const char *uri, int64_t cool_down_ms,
                                    char *err, size_t err_len)
{
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = cool_down_ms / 1000;
    d.nanos = (int32_t)(cool_down_ms % 1000) * 1000000;
    Pgcapture__SetScheduleCoolDownRequest req = PGCAPTURE__SET_SCHEDULE_COOL_DOWN_REQUEST__INIT;
    req.uri = (char *)uri;
    req.duration = &d;
    return call(c, RPC_METHOD_SET_SCHEDULE_COOL_DOWN, &req.base, NULL, NULL, err, err_len);
}

/* Schedules items [first, first + k) of the plan in one request. */
static int schedule_items(controller_client *c, const char *uri, const char *schema,
                          const char *table, uint64_t per, const controller_client_plan *plan,
                          Pgcapture__DumpInfoResponse *items, Pgcapture__DumpInfoResponse **ptrs,
                          size_t *k, char *err, size_t err_len)
{
    uint64_t first = plan->items_sent;
    size_t n = 0;
    for (; n < ITEMS_PER_REQUEST && first + n < plan->items; n++) {
        uint64_t begin = (first + n) * per;
        uint64_t end = begin + per - 1 < plan->pages - 1 ? begin + per - 1 : plan->pages - 1;
        pgcapture__dump_info_response__init(&items[n]);
        items[n].schema = (char *)schema;
        items[n].table = (char *)table;
        items[n].page_begin = (uint32_t)begin;
        items[n].page_end = (uint32_t)end;
        ptrs[n] = &items[n];
    }
    *k = n;
    Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
    req.uri = (char *)uri;
    req.n_dumps = n;
    req.dumps = ptrs;
    return call(c, RPC_METHOD_SCHEDULE, &req.base, NULL, NULL, err, err_len);
}

int controller_client_schedule_table(controller_client *c, const char *uri,
                                     const char *replica_conninfo, const char *schema,
                                     const char *table, uint64_t pages_per_item,
                                     controller_client_plan *plan, char *err, size_t err_len)
{
    memset(plan, 0, sizeof *plan);
    if (pages_per_item < 1)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "pages per item must be at least 1");
    int rc = table_pages_read(replica_conninfo, schema, table, &plan->pages, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (plan->pages == 0)
        plan->pages = 1;
    if (plan->pages > (uint64_t)UINT32_MAX + 1)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                          "%s.%s has more pages than a dump item can name", schema, table);
    plan->items = (plan->pages + pages_per_item - 1) / pages_per_item;
    Pgcapture__DumpInfoResponse *items = calloc(ITEMS_PER_REQUEST, sizeof *items);
    Pgcapture__DumpInfoResponse **ptrs = calloc(ITEMS_PER_REQUEST, sizeof *ptrs);
    rc = items && ptrs ? PGC_OK : errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    while (rc == PGC_OK && plan->items_sent < plan->items) {
        size_t k = 0;
        rc = schedule_items(c, uri, schema, table, pages_per_item, plan, items, ptrs, &k, err,
                            err_len);
        if (rc == PGC_OK)
            plan->items_sent += k;
    }
    free(items);
    free(ptrs);
    return rc;
}

static int64_t duration_ms(const Google__Protobuf__Duration *d)
{
    return d ? d->seconds * 1000 + d->nanos / 1000000 : 0;
}

int controller_client_status(controller_client *c, const char *uri,
                             controller_client_uri_status **out, size_t *n, char *err,
                             size_t err_len)
{
    *out = NULL;
    *n = 0;
    Pgcapture__ControllerStatusRequest req = PGCAPTURE__CONTROLLER_STATUS_REQUEST__INIT;
    req.uri = (char *)(uri ? uri : "");
    if (pgcapture__controller_status_request__get_packed_size(&req) > STATUS_REQUEST_MAX_BYTES)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "the uri is too long");
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int rc = call(c, RPC_METHOD_ADMIN_STATUS, &req.base, &resp, &resp_len, err, err_len);
    if (rc != PGC_OK)
        return rc;
    Pgcapture__ControllerStatusResponse *st =
        pgcapture__controller_status_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (!st)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "malformed answer from the controller");
    controller_client_uri_status *list = calloc(st->n_uris ? st->n_uris : 1, sizeof *list);
    for (size_t i = 0; list && i < st->n_uris; i++) {
        const Pgcapture__ControllerUriStatus *u = st->uris[i];
        list[i] = (controller_client_uri_status){strdup(u->uri ? u->uri : ""),
                                                 u->pending,
                                                 u->backing_off,
                                                 u->outstanding,
                                                 u->done,
                                                 u->requeued,
                                                 u->rows_sent,
                                                 u->streams,
                                                 duration_ms(u->cool_down),
                                                 u->done_per_second,
                                                 u->eta_ms};
        if (!list[i].uri) {
            controller_client_status_free(list, i);
            list = NULL;
        }
    }
    size_t count = st->n_uris;
    pgcapture__controller_status_response__free_unpacked(st, NULL);
    if (!list)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    *out = list;
    *n = count;
    return PGC_OK;
}

void controller_client_status_free(controller_client_uri_status *st, size_t n)
{
    for (size_t i = 0; st && i < n; i++)
        free(st[i].uri);
    free(st);
}
