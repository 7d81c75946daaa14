/* Throwaway TLS certificates for tests, made with openssl by tests/harness/make-certs
 * once per test binary into a temp directory removed at exit (see that script for the
 * list: ca, server, alice, bob, carol, gateway, ops, expired, other-ca, rogue,
 * server2). */
#ifndef PGC_TEST_CERTS_H
#define PGC_TEST_CERTS_H

/* The directory; fails the running case when the certificates cannot be made. */
const char *harness_certs_dir(void);
/* The path of one file in it ("alice.pem"); valid for the next 31 calls. */
const char *harness_cert(const char *file);

#endif
