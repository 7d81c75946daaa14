/* A three-node NATS JetStream cluster of a case's own (scripts/nats-tmp start --cluster):
 * servers n1, n2, n3 on loopback. While it runs, NATS_URL names its three servers, so the
 * harness's agents, gateways, controllers and stream readers all use it; at the end of the
 * case the cluster is stopped and NATS_URL is the run's single server again. */
#ifndef PGC_TEST_NATSCLUSTER_H
#define PGC_TEST_NATSCLUSTER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct natscluster {
    char dir[256];
    char url[256]; /* the three client URLs, comma-separated */
} natscluster;

/* Starts it and waits until every node is healthy; fails the case otherwise. */
natscluster *natscluster_start(void);
/* kill -9 of one node ("n1", "n2" or "n3"). */
void natscluster_kill(const natscluster *c, const char *node);
/* Starts that node again (same ports and store) and waits until the cluster is healthy. */
void natscluster_restart(const natscluster *c, const char *node);
/* The server name of the stream's leader into out; false while it has none (an election). */
bool natscluster_stream_leader(const natscluster *c, const char *stream, char *out, size_t len);
/* The stream's configured replica count; 0 when it does not exist. */
int natscluster_stream_replicas(const natscluster *c, const char *stream);

#endif
