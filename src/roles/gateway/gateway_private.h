/* Internals shared by the gateway's files: gateway.c (the public API and the gRPC
 * method) and the Capture stream's files (capture_stream.h). Not a public header. */
#ifndef PGC_ROLES_GATEWAY_PRIVATE_H
#define PGC_ROLES_GATEWAY_PRIVATE_H

#include "jetstream/natsprobe.h"
#include "roles/gateway/acked_memo.h"
#include "pgcapture/gateway.h"
#include "roles/gateway/uri_target.h"
#include "rpc/client.h"
#include "rpc/health.h"
#include "rpc/probe.h"
#include "rpc/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct capture_stream capture_stream;

struct pgc_gateway {
    pgc_gateway_options opts;               /* strings owned */
    rpc_channel_options controller_channel; /* TLS and token for the controller (into opts) */
    pgc_resolver resolver;
    rpc_method methods[1 + RPC_HEALTH_N_METHODS]; /* Capture, then grpc.health.v1 */
    rpc_health *health;
    natsprobe *nats_probe;       /* health: the default NATS server */
    rpc_probe *controller_probe; /* health: the controller, when dumps are on */
    rpc_server *server;
    bool serving;
    atomic_bool stopping;     /* no new streams; running ones wind down */
    atomic_int stop_grace_ms; /* how long a winding-down stream waits for acks */
    pthread_mutex_t mu;       /* guards live_streams and streams */
    pthread_cond_t cv;
    int live_streams; /* stream threads still running */
    capture_stream *streams;
    acked_memo *acked; /* what consumers acked of batches handed back whole */
};

/* The rpc_method callbacks of /pgcapture.DBLogGateway/Capture (capture_stream.c); the
 * method ctx is the pgc_gateway. */
void capture_stream_on_start(rpc_call *call);
void capture_stream_on_message(rpc_call *call, const uint8_t *data, size_t len);
void capture_stream_on_half_close(rpc_call *call);
void capture_stream_on_done(rpc_call *call, bool cancelled);
/* Wakes every stream of the gateway (after setting stopping). */
void capture_stream_wake_all(pgc_gateway *gw);

#endif
