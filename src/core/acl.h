/* Who may do what: a list of principals, as the resolver file (capture) and the
 * controller's ACL file (schedule, status, pull) write them, comma-separated:
 *     alice, gw1.example.com     a client certificate identity: its subject CN or a SAN,
 *                                compared exactly
 *     sha256:<64 hex digits>     a bearer token, stored as the SHA-256 of the token
 *                                (`pgcapture hash-token`), compared in constant time
 *     *                          anyone, without credentials too
 * Pure: no I/O, no logging. */
#ifndef PGC_CORE_ACL_H
#define PGC_CORE_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACL_SHA256_LEN 32
#define ACL_HASH_TEXT_LEN (7 + 2 * ACL_SHA256_LEN + 1) /* "sha256:" + hex + NUL */
#define ACL_PRINCIPAL_MAX 256

/* What a peer presented: identities from a client certificate the server verified, and
 * the SHA-256 of its bearer token when it sent one. */
typedef struct acl_peer {
    const char *const *identities;
    size_t n_identities;
    bool has_token;
    uint8_t token_sha256[ACL_SHA256_LEN];
} acl_peer;

/* Fills *p; `token` NULL for none (the token itself is not kept). */
void acl_peer_init(acl_peer *p, const char *const *identities, size_t n_identities,
                   const char *token);

typedef struct acl acl;

acl *acl_create(void);    /* NULL on out of memory */
void acl_destroy(acl *a); /* NULL is a no-op */
/* Adds the principals of a comma-separated list. PGC_ERR_CONFIG for a malformed hash or
 * an empty or oversized principal; PGC_ERR_NOMEM. */
int acl_add_list(acl *a, const char *list, char *err, size_t err_len);
size_t acl_count(const acl *a);
/* True when the peer matches a principal of the list. */
bool acl_allows(const acl *a, const acl_peer *p);
/* True when the list holds the peer's token (whatever it grants). */
bool acl_knows_token(const acl *a, const acl_peer *p);

/* "sha256:<hex>" of a token into out (ACL_HASH_TEXT_LEN bytes). */
void acl_hash_token(const char *token, size_t len, char out[ACL_HASH_TEXT_LEN]);

#endif
