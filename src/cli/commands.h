/* The subcommands of the pgcapture binary: one function per role or tool, each parsing
 * its own flags (argv[0] is the subcommand name) and returning the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or configuration. */
#ifndef PGC_CLI_COMMANDS_H
#define PGC_CLI_COMMANDS_H

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* NULL: not built yet */
} command;

extern const command commands[];
extern const int commands_count;

int cmd_agent(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_gateway(int argc, char **argv);
int cmd_controller(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_dead_letters(int argc, char **argv);
int cmd_replica(int argc, char **argv);
int cmd_setup(int argc, char **argv);
int cmd_hash_token(int argc, char **argv);

#endif
