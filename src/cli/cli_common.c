/* Shared subcommand scaffolding: see cli_common.h. */
#include "cli/cli_common.h"

#include "core/log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int cli_parse(const cli_spec *cmd, void *cfg, int argc, char **argv, char *err, size_t err_len)
{
    int rc = opts_parse(cmd->opts, cmd->n_opts, cfg, argc, argv, NULL, 0, NULL, err, err_len);
    if (rc == 1) {
        opts_print_help(stdout, cmd->usage, cmd->summary, cmd->opts, cmd->n_opts);
        opts_free(cmd->opts, cmd->n_opts, cfg);
    }
    return rc;
}

int cli_log_level(const char *s, int *level, char *err, size_t err_len)
{
    *level = s ? log_level_parse(s) : LOG_LEVEL_INFO;
    if (*level < 0) {
        snprintf(err, err_len, "--log-level must be error, warn, info, debug or trace");
        return -1;
    }
    return 0;
}

int cli_usage_error(const cli_spec *cmd, void *cfg, const char *err)
{
    fprintf(stderr, "pgcapture %s: %s\nTry: pgcapture %s --help\n", cmd->name, err, cmd->name);
    opts_free(cmd->opts, cmd->n_opts, cfg);
    return 2;
}

void cli_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
