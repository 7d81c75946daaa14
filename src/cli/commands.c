/* The table of subcommands; a role that is not built yet has no run function and says so
 * rather than pretending. */
#include "cli/commands.h"

#include <stddef.h>

const command commands[] = {
    {"agent", "read a source's logical replication slot into NATS JetStream", cmd_agent},
    {"setup", "install pgcapture's schema and DDL capture without the C extension", cmd_setup},
    {"replica", "apply the log to a logical replica, exactly once", cmd_replica},
    {"controller", "hold per-consumer dump schedules (Schedule, StopSchedule)", cmd_controller},
    {"gateway", "serve DBLogGateway.Capture: changes plus scheduled dumps", cmd_gateway},
    {"consume", "print a URI's changes as JSON lines", cmd_consume},
    {"schedule", "schedule a dump of a table for a consumer URI", cmd_schedule},
    {"status", "show dump schedules and progress", cmd_status},
    {"dead-letters", "list, show, replay, purge or take a URI's dead letters", cmd_dead_letters},
    {"hash-token", "print the hash of a bearer token for the resolver and ACL files",
     cmd_hash_token},
    {"demo", "run everything locally and show changes and a dump arriving", cmd_demo},
};
const int commands_count = (int)(sizeof commands / sizeof commands[0]);
