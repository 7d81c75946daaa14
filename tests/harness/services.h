/* Integration-test helpers for the gRPC roles: free loopback ports and a throwaway
 * controller (its own key-value bucket, removed at the end of the case). */
#ifndef PGC_TEST_SERVICES_H
#define PGC_TEST_SERVICES_H

#include <stddef.h>
#include <sys/types.h>

/* A loopback TCP port nothing listens on right now. */
int harness_free_port(void);

typedef struct harness_controller {
    char addr[64];   /* host:port it serves */
    char bucket[64]; /* its key-value bucket */
    char log[512];
    pid_t pid;
} harness_controller;

/* Starts `pgcapture controller` on a free port (or extra's --listen) with a fresh bucket
 * plus `extra` flags (NULL-terminated, may be NULL) and waits until it answers. Killed, and its
 * bucket deleted, at the end of the case. */
void harness_controller_start(harness_controller *c, const char *const *extra);

/* Schedule(uri, one item) on the controller; fails the case unless the status is OK. */
void harness_controller_schedule(const harness_controller *c, const char *uri, const char *schema,
                                 const char *table, unsigned page_begin, unsigned page_end);

#endif
