/* The pgcapture binary: dispatches to one subcommand per role (agent, replica,
 * controller, gateway) and per tool (consume, schedule, status, demo). */
#include "cli/commands.h"
#include "pgcapture.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: pgcapture <command> [options]   (pgcapture <command> --help)\n\n"
                 "Change data capture for PostgreSQL through NATS JetStream, after DBLog.\n\n"
                 "commands:\n");
    for (int i = 0; i < commands_count; i++)
        fprintf(out, "  %-11s %s%s\n", commands[i].name, commands[i].summary,
                commands[i].run ? "" : " (not built yet)");
    fprintf(out, "\n  %-11s print the version\n", "version");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("pgcapture %s\n", pgc_version_get());
        return 0;
    }
    for (int i = 0; i < commands_count; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (!commands[i].run) {
            fprintf(stderr,
                    "pgcapture %s: not built yet in this version (%s); see README.md for "
                    "what is available\n",
                    commands[i].name, commands[i].summary);
            return 2;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "pgcapture: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
