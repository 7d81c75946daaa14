/* `pgcapture schedule`: flags to the controller's client (controller_client.h), which
 * plans page ranges of a table from the replica and calls Schedule; --stop and --cool-down
 * map to StopSchedule and SetScheduleCoolDown. Exit 0 done, 1 runtime failure, 2 bad
 * input. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/opts.h"
#include "core/status.h"
#include "roles/controller/controller_client.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct schedule_config {
    char *controller;
    char *uri;
    char *table;
    char *replica;
    int64_t pages_per_item;
    bool stop;
    char *cool_down;
    int64_t timeout_ms;
    cli_rpc_flags rpc;
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
    CLI_RPC_OPTS("", "PGCAPTURE_TOKEN", schedule_config, rpc),
};

/* Prints what went wrong; returns the exit code: 2 for a request the controller refused
 * as invalid, else 1. */
static int failed(int rc, const char *err)
{
    fprintf(stderr, "pgcapture schedule: %s\n", err);
    return rc == PGC_ERR_INVALID ? 2 : 1;
}

static int schedule_table(controller_client *cc, const schedule_config *cfg)
{
    char schema[256], table[256], err[1024];
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
    controller_client_plan plan;
    int rc =
        controller_client_schedule_table(cc, cfg->uri, cfg->replica, schema, table,
                                         (uint64_t)cfg->pages_per_item, &plan, err, sizeof err);
    if (rc != PGC_OK) {
        fprintf(stderr, "pgcapture schedule: %s\n", err);
        if (plan.items_sent > 0)
            fprintf(stderr,
                    "pgcapture schedule: %llu of %llu items were scheduled before the "
                    "failure\n",
                    (unsigned long long)plan.items_sent, (unsigned long long)plan.items);
        return rc == PGC_ERR_INVALID || rc == PGC_ERR_NOT_FOUND ? 2 : 1;
    }
    printf("scheduled %s.%s for %s: %llu pages in %llu items of up to %lld pages\n", schema, table,
           cfg->uri, (unsigned long long)plan.pages, (unsigned long long)plan.items,
           (long long)cfg->pages_per_item);
    return 0;
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
    controller_client *cc = NULL;
    if (cli_controller_client(&cfg.rpc, cfg.controller, (int)cfg.timeout_ms, &cc, err,
                              sizeof err) != PGC_OK) {
        fprintf(stderr, "pgcapture schedule: controller %s: %s\n", cfg.controller, err);
        opts_free(schedule_opts, n, &cfg);
        return 2;
    }
    rc = 0;
    if (cfg.stop) {
        int status = controller_client_stop_schedule(cc, cfg.uri, err, sizeof err);
        rc = status == PGC_OK ? 0 : failed(status, err);
        if (rc == 0)
            printf("stopped the schedule of %s\n", cfg.uri);
    }
    if (rc == 0 && cfg.cool_down) {
        int status = controller_client_set_cool_down(cc, cfg.uri, cool_down_ms, err, sizeof err);
        rc = status == PGC_OK ? 0 : failed(status, err);
        if (rc == 0)
            printf("cool-down of %s set to %lldms\n", cfg.uri, (long long)cool_down_ms);
    }
    if (rc == 0 && cfg.table)
        rc = schedule_table(cc, &cfg);
    controller_client_destroy(cc);
    opts_free(schedule_opts, n, &cfg);
    return rc;
}
