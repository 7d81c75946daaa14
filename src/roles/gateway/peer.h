/* The peer of a Capture stream as resolvers see it (pgc_peer of pgcapture/gateway.h): a
 * view of the call's verified identities, token and address. Not a public header. */
#ifndef PGC_ROLES_GATEWAY_PEER_H
#define PGC_ROLES_GATEWAY_PEER_H

#include "pgcapture/gateway.h"
#include "rpc/server.h"

struct pgc_peer {
    const rpc_call *call; /* borrowed: the stream holds a reference while it resolves */
};

#endif
