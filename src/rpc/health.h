/* grpc.health.v1.Health (Check and Watch) for an rpc_server, answering from the
 * process's dependency health (core/health.h): SERVING while every dependency is up,
 * NOT_SERVING otherwise. The empty service name is the whole server; the names given at
 * create are answered the same way; any other name is NOT_FOUND (Check) or
 * SERVICE_UNKNOWN (Watch).
 *
 * Threading: Check and the first Watch answer run on the server's completion-queue
 * thread; one thread of the module's own sends Watch updates when health changes.
 * rpc_health_stop ends every Watch (NOT_SERVING, then UNAVAILABLE) and joins that
 * thread: call it before rpc_server_shutdown. */
#ifndef PGC_RPC_HEALTH_H
#define PGC_RPC_HEALTH_H

#include "rpc/server.h"

#include <stddef.h>

#define RPC_HEALTH_N_METHODS 2

typedef struct rpc_health rpc_health;

/* `services` (copied) are the service names served besides "". */
int rpc_health_create(const char *const *services, size_t n_services, rpc_health **out, char *err,
                      size_t err_len);
/* Fills methods[0..RPC_HEALTH_N_METHODS) for the server's method table. */
void rpc_health_methods(rpc_health *h, rpc_method *methods);
void rpc_health_stop(rpc_health *h);
/* Stops first if needed. NULL is a no-op. */
void rpc_health_destroy(rpc_health *h);

#endif
