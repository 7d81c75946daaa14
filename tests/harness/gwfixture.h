/* An embedded gateway for integration tests, started through the public API: its
 * resolver maps every URI "u_<source>" to that agent's stream (durable "d_<source>"),
 * and a requeued change comes back after 200 ms. */
#ifndef PGC_TEST_GWFIXTURE_H
#define PGC_TEST_GWFIXTURE_H

#include "pgcapture/gateway.h"

typedef struct gwfixture {
    pgc_gateway *gw;
    int port;      /* 0 before the first start: any free port, then kept for restarts */
    char addr[64]; /* "127.0.0.1:<port>" once serving */
} gwfixture;

/* Creates the gateway and serves it on 127.0.0.1:g->port; fails the case on error (with
 * g->gw NULL). The caller owns g->gw (gwfixture_stop or pgc_gateway_destroy). */
void gwfixture_start(gwfixture *g);

/* Stops the gateway with `grace_ms` for acks in flight and destroys it. */
void gwfixture_stop(gwfixture *g, int grace_ms);

#endif
