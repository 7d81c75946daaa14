/* Mirrors whether a gRPC server (the controller, for a gateway) is reachable into the
 * process's dependency health (core/health.h): a thread of its own polls a channel's
 * connectivity every 500 ms, connecting as needed; READY marks the dependency up, a
 * failed connection down (idle and connecting keep what was known).
 *
 * Threading: start and stop from one thread. */
#ifndef PGC_RPC_PROBE_H
#define PGC_RPC_PROBE_H

#include "rpc/client.h"

#include <stddef.h>

typedef struct rpc_probe rpc_probe;

/* Registers `dependency` (a string literal, e.g. "controller") as down and starts polling
 * `target` (host:port) over a channel made with `o` (NULL: plaintext; TLS as the real
 * clients of the target connect, so a refused handshake shows as down). Returns 0 or a
 * negative status with err. */
int rpc_probe_start(const char *target, const rpc_channel_options *o, const char *dependency,
                    rpc_probe **out, char *err, size_t err_len);
/* Stops the thread and closes the channel. NULL is a no-op. */
void rpc_probe_stop(rpc_probe *p);

#endif
