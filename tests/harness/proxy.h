/* A TCP proxy on loopback for tests that need a half-open peer: it forwards one
 * connection both ways until frozen, then keeps both sockets open and stops reading and
 * writing, as a peer behind a dead network path looks to a server. */
#ifndef PGC_TEST_PROXY_H
#define PGC_TEST_PROXY_H

typedef struct harness_proxy harness_proxy;

/* Listens on a free loopback port and forwards its first connection to upstream_port.
 * Stopped at the end of the case. */
harness_proxy *harness_proxy_start(int upstream_port);
int harness_proxy_port(const harness_proxy *p);
/* From now on nothing passes, and nothing is closed. */
void harness_proxy_freeze(harness_proxy *p);

#endif
