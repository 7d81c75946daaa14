/* Principal lists (see acl.h). Token hashes are compared with CRYPTO_memcmp, so the time a
 * comparison takes says nothing about how much of a hash matched. */
#include "core/acl.h"

#include "core/status.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

typedef enum principal_kind { P_IDENTITY, P_TOKEN, P_ANYONE } principal_kind;

typedef struct principal {
    principal_kind kind;
    char *identity;
    uint8_t sha256[ACL_SHA256_LEN];
} principal;

struct acl {
    principal *p;
    size_t n, cap;
};

void acl_peer_init(acl_peer *p, const char *const *identities, size_t n_identities,
                   const char *token)
{
    memset(p, 0, sizeof *p);
    p->identities = identities;
    p->n_identities = n_identities;
    if (token) {
        SHA256((const unsigned char *)token, strlen(token), p->token_sha256);
        p->has_token = true;
    }
}

acl *acl_create(void)
{
    return calloc(1, sizeof(acl));
}

void acl_destroy(acl *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i].identity);
    free(a->p);
    free(a);
}

size_t acl_count(const acl *a)
{
    return a->n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int add_one(acl *a, const char *s, size_t len, char *err, size_t err_len)
{
    if (len == 0)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "empty principal in a list");
    if (len >= ACL_PRINCIPAL_MAX)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "principal longer than %d bytes",
                          ACL_PRINCIPAL_MAX - 1);
    principal p;
    memset(&p, 0, sizeof p);
    if (len == 1 && s[0] == '*') {
        p.kind = P_ANYONE;
    } else if (len > 7 && strncmp(s, "sha256:", 7) == 0) {
        if (len != 7 + 2 * ACL_SHA256_LEN)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                              "a token hash is sha256: and 64 hex digits (pgcapture hash-token)");
        for (size_t i = 0; i < ACL_SHA256_LEN; i++) {
            int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
            if (hi < 0 || lo < 0)
                return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                                  "a token hash is sha256: and 64 hex digits (pgcapture "
                                  "hash-token)");
            p.sha256[i] = (uint8_t)(hi << 4 | lo);
        }
        p.kind = P_TOKEN;
    } else {
        p.kind = P_IDENTITY;
        if (!(p.identity = strndup(s, len)))
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        principal *np = realloc(a->p, cap * sizeof *np);
        if (!np) {
            free(p.identity);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        }
        a->p = np, a->cap = cap;
    }
    a->p[a->n++] = p;
    return PGC_OK;
}

int acl_add_list(acl *a, const char *list, char *err, size_t err_len)
{
    const char *s = list;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        const char *end = strchr(s, ',');
        const char *stop = end ? end : s + strlen(s);
        const char *e = stop;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        int rc = add_one(a, s, (size_t)(e - s), err, err_len);
        if (rc != PGC_OK)
            return rc;
        if (!end)
            return PGC_OK;
        s = end + 1;
    }
}

bool acl_knows_token(const acl *a, const acl_peer *peer)
{
    bool found = false;
    if (!peer->has_token)
        return false;
    /* Every stored hash is compared, found or not. */
    for (size_t i = 0; i < a->n; i++)
        if (a->p[i].kind == P_TOKEN &&
            CRYPTO_memcmp(a->p[i].sha256, peer->token_sha256, ACL_SHA256_LEN) == 0)
            found = true;
    return found;
}

bool acl_allows(const acl *a, const acl_peer *peer)
{
    for (size_t i = 0; i < a->n; i++) {
        const principal *p = &a->p[i];
        if (p->kind == P_ANYONE)
            return true;
        if (p->kind == P_IDENTITY)
            for (size_t k = 0; k < peer->n_identities; k++)
                if (strcmp(p->identity, peer->identities[k]) == 0)
                    return true;
    }
    return acl_knows_token(a, peer);
}

void acl_hash_token(const char *token, size_t len, char out[ACL_HASH_TEXT_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[ACL_SHA256_LEN];
    SHA256((const unsigned char *)token, len, d);
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < ACL_SHA256_LEN; i++) {
        out[7 + 2 * i] = hex[d[i] >> 4];
        out[8 + 2 * i] = hex[d[i] & 15];
    }
    out[ACL_HASH_TEXT_LEN - 1] = '\0';
    OPENSSL_cleanse(d, sizeof d);
}
