/* A rate of new calls per peer host: one token bucket per host (the peer address without
 * its port, so a client opening many connections is still one peer), in a fixed table
 * whose least recently seen entry makes room for a new host. Pure: the caller passes the
 * time and does the locking. */
#ifndef PGC_RPC_PEER_RATE_H
#define PGC_RPC_PEER_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEER_RATE_SLOTS 4096
#define PEER_RATE_HOST_MAX 64

typedef struct peer_rate peer_rate;

/* per_sec new calls per second per host, bursts of up to `burst`. NULL on out of memory. */
peer_rate *peer_rate_create(double per_sec, double burst);
void peer_rate_destroy(peer_rate *r); /* NULL is a no-op */
/* Takes one token for the host of `peer` ("ipv4:10.0.0.1:5555", "ipv6:[::1]:5555") at time
 * now_ms: true when allowed. */
bool peer_rate_take(peer_rate *r, const char *peer, int64_t now_ms);
/* The host part of a gRPC peer string, without scheme and port, into out. */
void peer_rate_host(const char *peer, char *out, size_t out_len);

#endif
