/* A nats-server of a case's own, for tests of NATS TLS and credentials: its config
 * written by the test (TLS with the test certificates, client certificates required, and
 * the authorization part the case gives), on a free loopback port; stopped and removed at
 * the end of the case. */
#ifndef PGC_TEST_NATSBOX_H
#define PGC_TEST_NATSBOX_H

#include <sys/types.h>

typedef struct natsbox {
    char dir[256];
    char url[300]; /* a dead server first, then this one: clients must take the whole list */
    char log[300];
    pid_t pid;
} natsbox;

/* Starts it with `auth` (e.g. an accounts block) and waits for "Server is ready". */
natsbox *natsbox_start(const char *auth);

/* The flags that reach it: the URL list and TLS with client certificate `cert` ("alice"),
 * then `extra` (NULL-terminated), into out (NULL-terminated; strings live for the case). */
void natsbox_flags(const natsbox *b, const char *cert, const char *const *extra, const char **out,
                   int max);

#endif
