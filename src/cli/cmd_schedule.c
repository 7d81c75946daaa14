/* `pgcapture schedule`: plans page ranges of a table from the replica (pg_class.relpages
 * and the relation's real size, whichever is larger, since a growing table has pages
 * past relpages) and calls Schedule on the controller; --stop and --cool-down map to
 * StopSchedule and SetScheduleCoolDown. Exit 0 done, 1 runtime failure, 2 bad input. */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/opts.h"
#include "core/status.h"
#include "rpc/client.h"

#include "pgcapture.pb-c.h"

#include <grpc/status.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEMS_PER_REQUEST 10000

typedef struct schedule_config {
    char *controller;
    char *uri;
    char *table;
    char *replica;
    int64_t pages_per_item;
    bool stop;
    char *cool_down;
    int64_t timeout_ms;
} schedule_config;

#define SCHEDULE_OPT(n, t, d, h, field)                                                            \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(schedule_config, field)      \
    }
#define SCHEDULE_SECRET(n, d, h, field)                                                            \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(schedule_config, field), .secret = true                                 \
    }

static const opt_spec schedule_opts[] = {
    SCHEDULE_OPT("controller", OPT_STRING, "127.0.0.1:10001", "controller address (host:port)",
                 controller),
    SCHEDULE_OPT("uri", OPT_STRING, NULL, "consumer URI the dump is for; required", uri),
    SCHEDULE_OPT("table", OPT_STRING, NULL,
                 "table to dump, as schema.table (schema public when left out)", table),
    SCHEDULE_SECRET("replica", NULL,
                    "replica database to read the table's size from, as libpq takes it; required "
                    "with --table",
                    replica),
    SCHEDULE_OPT("pages-per-item", OPT_INT, "1000", "pages per dump item", pages_per_item),
    SCHEDULE_OPT("stop", OPT_BOOL, "false", "drop the URI's pending items (StopSchedule)", stop),
    SCHEDULE_OPT("cool-down", OPT_STRING, NULL,
                 "minimum time between two items of the URI (SetScheduleCoolDown), e.g. 5s",
                 cool_down),
    SCHEDULE_OPT("timeout", OPT_DURATION_MS, "10s", "deadline of each controller call", timeout_ms),
};

/* Calls a unary method; prints what went wrong and returns 1, or 0 on OK. */
static int call(rpc_channel *ch, const char *method, const ProtobufCMessage *m,
                const schedule_config *cfg)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fprintf(stderr, "pgcapture schedule: out of memory\n");
        return 1;
    }
    protobuf_c_message_pack(m, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int code = 0;
    char err[512] = "";
    int rc = rpc_unary(ch, method, buf, n, (int)cfg->timeout_ms, &resp, &resp_len, &code, err,
                       sizeof err);
    free(buf);
    free(resp);
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture schedule: cannot call %s at %s: %s\n", method, cfg->controller,
                err);
        return 1;
    }
    if (code != GRPC_STATUS_OK) {
        const char *hint = code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED
                               ? " (is the controller running at that address?)"
                               : "";
        fprintf(stderr, "pgcapture schedule: %s at %s failed: status %d: %s%s\n", method,
                cfg->controller, code, err, hint);
        return code == GRPC_STATUS_INVALID_ARGUMENT ? 2 : 1;
    }
    return 0;
}

/* Reads the table's page count on the replica. Returns 0, 1 (runtime) or 2 (bad input). */
static int table_pages(const schedule_config *cfg, const char *schema, const char *table,
                       uint64_t *pages)
{
    PGconn *conn = PQconnectdb(cfg->replica);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pgcapture schedule: cannot connect to the replica: %s",
                PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    const char *params[2] = {schema, table};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT c.relkind, c.relpages::int8, "
                     "       pg_relation_size(c.oid) / current_setting('block_size')::int8 "
                     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = $1 AND c.relname = $2",
                     2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgcapture schedule: cannot read the size of %s.%s: %s", schema, table,
                PQresultErrorMessage(res));
        rc = 1;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "pgcapture schedule: no table %s.%s on the replica\n", schema, table);
        rc = 2;
    } else {
        const char *kind = PQgetvalue(res, 0, 0);
        if (strcmp(kind, "r") != 0 && strcmp(kind, "m") != 0) {
            fprintf(stderr,
                    "pgcapture schedule: %s.%s is not a table with storage (relkind %s)%s\n",
                    schema, table, kind,
                    strcmp(kind, "p") == 0 ? ": schedule its partitions instead" : "");
            rc = 2;
        } else {
            long long relpages = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
            long long real = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
            long long n = relpages > real ? relpages : real;
            *pages = n > 0 ? (uint64_t)n : 0;
        }
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int schedule_table(rpc_channel *ch, const schedule_config *cfg)
{
    char schema[256], table[256];
    const char *dot = strchr(cfg->table, '.');
    int wrote = dot ? snprintf(schema, sizeof schema, "%.*s", (int)(dot - cfg->table), cfg->table)
                    : snprintf(schema, sizeof schema, "public");
    int wrote2 = snprintf(table, sizeof table, "%s", dot ? dot + 1 : cfg->table);
    if (wrote <= 0 || (size_t)wrote >= sizeof schema || wrote2 <= 0 ||
        (size_t)wrote2 >= sizeof table) {
        fprintf(stderr, "pgcapture schedule: --table must be schema.table with non-empty names "
                        "under 256 bytes\n");
        return 2;
    }
    uint64_t pages = 0;
    int rc = table_pages(cfg, schema, table, &pages);
    if (rc != 0)
        return rc;
    if (pages == 0) {
        /* An empty table still gets one item: rows may arrive before it is dumped. */
        pages = 1;
    }
    if (pages > (uint64_t)UINT32_MAX + 1) {
        fprintf(stderr, "pgcapture schedule: %s.%s has more pages than a dump item can name\n",
                schema, table);
        return 1;
    }
    uint64_t per = (uint64_t)cfg->pages_per_item;
    uint64_t n_items = (pages + per - 1) / per;
    Pgcapture__DumpInfoResponse *items = calloc(ITEMS_PER_REQUEST, sizeof *items);
    Pgcapture__DumpInfoResponse **ptrs = calloc(ITEMS_PER_REQUEST, sizeof *ptrs);
    if (!items || !ptrs) {
        free(items);
        free(ptrs);
        fprintf(stderr, "pgcapture schedule: out of memory\n");
        return 1;
    }
    uint64_t sent = 0;
    while (rc == 0 && sent < n_items) {
        size_t k = 0;
        for (; k < ITEMS_PER_REQUEST && sent + k < n_items; k++) {
            uint64_t begin = (sent + k) * per;
            uint64_t end = begin + per - 1 < pages - 1 ? begin + per - 1 : pages - 1;
            pgcapture__dump_info_response__init(&items[k]);
            items[k].schema = schema;
            items[k].table = table;
            items[k].page_begin = (uint32_t)begin;
            items[k].page_end = (uint32_t)end;
            ptrs[k] = &items[k];
        }
        Pgcapture__ScheduleRequest req = PGCAPTURE__SCHEDULE_REQUEST__INIT;
        req.uri = cfg->uri;
        req.n_dumps = k;
        req.dumps = ptrs;
        rc = call(ch, "/pgcapture.DBLogController/Schedule", &req.base, cfg);
        if (rc == 0)
            sent += k;
    }
    free(items);
    free(ptrs);
    if (rc == 0)
        printf("scheduled %s.%s for %s: %llu pages in %llu items of up to %lld pages\n", schema,
               table, cfg->uri, (unsigned long long)pages, (unsigned long long)n_items,
               (long long)cfg->pages_per_item);
    else if (sent > 0)
        fprintf(stderr,
                "pgcapture schedule: %llu of %llu items were scheduled before the "
                "failure\n",
                (unsigned long long)sent, (unsigned long long)n_items);
    return rc;
}

static const cli_spec schedule_cmd = {
    "schedule",
    schedule_opts,
    sizeof schedule_opts / sizeof schedule_opts[0],
    "pgcapture schedule --uri URI --table SCHEMA.TABLE --replica CONNINFO "
    "[options]\n       pgcapture schedule --uri URI --stop | --cool-down "
    "DURATION",
    "Schedules a dump of a table for one consumer URI on the controller, in "
    "items of page ranges\ncovering the whole relation as the replica has it.",
};

int cmd_schedule(int argc, char **argv)
{
    schedule_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    const size_t n = schedule_cmd.n_opts;
    int rc = cli_parse(&schedule_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    int64_t cool_down_ms = -1;
    if (rc == 0 && (!cfg.uri || !*cfg.uri)) {
        snprintf(err, sizeof err, "--uri is required");
        rc = -1;
    } else if (rc == 0 && !cfg.table && !cfg.stop && !cfg.cool_down) {
        snprintf(err, sizeof err, "give --table (with --replica), --stop or --cool-down");
        rc = -1;
    } else if (rc == 0 && cfg.table && (!cfg.replica || !*cfg.replica)) {
        snprintf(err, sizeof err, "--table needs --replica CONNINFO to read the table's size");
        rc = -1;
    } else if (rc == 0 && (cfg.pages_per_item < 1 || cfg.pages_per_item > 1 << 30)) {
        snprintf(err, sizeof err, "--pages-per-item must be between 1 and 2^30");
        rc = -1;
    } else if (rc == 0 && cfg.cool_down &&
               (opts_parse_duration_ms(cfg.cool_down, &cool_down_ms) != 0 || cool_down_ms < 0)) {
        snprintf(err, sizeof err, "--cool-down: \"%s\" is not a duration (e.g. 500ms, 5s, 1min)",
                 cfg.cool_down);
        rc = -1;
    } else if (rc == 0 && cfg.timeout_ms < 1) {
        snprintf(err, sizeof err, "--timeout must be positive");
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&schedule_cmd, &cfg, err);
    rpc_channel *ch = NULL;
    if (rpc_channel_create(cfg.controller, &ch, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "pgcapture schedule: bad --controller %s: %s\n", cfg.controller, err);
        opts_free(schedule_opts, n, &cfg);
        return 2;
    }
    rc = 0;
    if (cfg.stop) {
        Pgcapture__StopScheduleRequest req = PGCAPTURE__STOP_SCHEDULE_REQUEST__INIT;
        req.uri = cfg.uri;
        rc = call(ch, "/pgcapture.DBLogController/StopSchedule", &req.base, &cfg);
        if (rc == 0)
            printf("stopped the schedule of %s\n", cfg.uri);
    }
    if (rc == 0 && cfg.cool_down) {
        Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
        d.seconds = cool_down_ms / 1000;
        d.nanos = (int32_t)(cool_down_ms % 1000) * 1000000;
        Pgcapture__SetScheduleCoolDownRequest req = PGCAPTURE__SET_SCHEDULE_COOL_DOWN_REQUEST__INIT;
        req.uri = cfg.uri;
        req.duration = &d;
        rc = call(ch, "/pgcapture.DBLogController/SetScheduleCoolDown", &req.base, &cfg);
        if (rc == 0)
            printf("cool-down of %s set to %lldms\n", cfg.uri, (long long)cool_down_ms);
    }
    if (rc == 0 && cfg.table)
        rc = schedule_table(ch, &cfg);
    rpc_channel_destroy(ch);
    opts_free(schedule_opts, n, &cfg);
    return rc;
}
