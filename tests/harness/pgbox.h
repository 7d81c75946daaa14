/* A PostgreSQL server of a case's own (scripts/pg-tmp), for tests that need settings the
 * shared one cannot have: its own pg_hba.conf (password or TLS-only rules) and extra
 * settings; certificate and key files it should read are installed for its OS user.
 * Stopped and removed at the end of the case. */
#ifndef PGC_TEST_PGBOX_H
#define PGC_TEST_PGBOX_H

typedef struct pgbox {
    char dir[256];     /* pg-tmp's directory */
    char filedir[256]; /* hba.conf and installed files, readable by the server */
    int port;
} pgbox;

/* hba: the lines of pg_hba.conf. settings: "name = value" lines, NULL-terminated (may be
 * NULL); "%F" in a setting stands for filedir. tls: install the test server certificate
 * and key as filedir/server.pem and filedir/server.key. */
pgbox *pgbox_start(const char *hba, const char *const *settings, int tls);

#endif
