/* `pgcapture setup`: installs pgcapture's schema and DDL event triggers in SQL and
 * PL/pgSQL only (sql/pgcapture-setup.sql), for a source the C extension cannot be
 * installed on, such as a managed service. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/opts.h"
#include "core/status.h"
#include "pg/pgsetup.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct setup_config {
    char *source;
    bool print_sql;
} setup_config;

#define SETUP_OPT(n, t, d, h, field)                                                               \
    {                                                                                              \
        .name = n, .type = t, .def = d, .help = h, .offset = offsetof(setup_config, field)         \
    }
#define SETUP_SECRET(n, d, h, field)                                                               \
    {                                                                                              \
        .name = n, .type = OPT_STRING, .def = d, .help = h,                                        \
        .offset = offsetof(setup_config, field), .secret = true                                    \
    }

static const opt_spec setup_opts[] = {
    SETUP_SECRET("source", NULL, "database to install into, as libpq takes it (URI or key=value)",
                 source),
    SETUP_OPT("print-sql", OPT_BOOL, "false",
              "print the SQL instead of running it (to run it with psql -1 -f)", print_sql),
};

static const cli_spec setup_cmd = {
    "setup",
    setup_opts,
    sizeof setup_opts / sizeof setup_opts[0],
    "pgcapture setup --source CONNINFO",
    "Installs schema pgcapture (ddl_logs, sources) and its DDL event triggers in SQL and "
    "PL/pgSQL,\nfor a server without the pgcapture extension. Running it again updates the "
    "functions and\nkeeps the tables. Needs a superuser or a managed service's administrator "
    "role.",
};

int cmd_setup(int argc, char **argv)
{
    setup_config cfg;
    char err[1024];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&setup_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc == 0 && !cfg.print_sql && (!cfg.source || !*cfg.source)) {
        snprintf(err, sizeof err, "--source is required");
        rc = -1;
    }
    if (rc != 0)
        return cli_usage_error(&setup_cmd, &cfg, err);
    if (cfg.print_sql) {
        fputs(pgsetup_sql, stdout);
        opts_free(setup_opts, setup_cmd.n_opts, &cfg);
        return 0;
    }
    char db[256];
    int major = 0, exit_code = 1;
    if (pgsetup_install_at(cfg.source, &major, db, sizeof db, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "pgcapture %s\n", err);
    } else {
        printf("pgcapture setup: schema pgcapture, its tables and DDL event triggers are "
               "installed in database %s (PostgreSQL %d)\n",
               db, major);
        exit_code = 0;
    }
    opts_free(setup_opts, setup_cmd.n_opts, &cfg);
    return exit_code;
}
