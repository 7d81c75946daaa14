/* The getters of pgc_peer (pgcapture/gateway.h), read from the gRPC call. */
#include "roles/gateway/peer.h"

size_t pgc_peer_get_identity_count(const pgc_peer *p)
{
    return p ? rpc_call_identity_count(p->call) : 0;
}

const char *pgc_peer_get_identity(const pgc_peer *p, size_t i)
{
    return p ? rpc_call_identity(p->call, i) : NULL;
}

const char *pgc_peer_get_token(const pgc_peer *p)
{
    return p ? rpc_call_token(p->call) : NULL;
}

const char *pgc_peer_get_address(const pgc_peer *p)
{
    return p ? rpc_call_peer(p->call) : "";
}
