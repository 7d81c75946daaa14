/* libFuzzer target for the files that say who may do what: the gateway's resolver file
 * (resolver_file_parse, then lookups and capture checks) and the controller's ACL file
 * (controller_acl_parse, then checks of every verb and dump_schemas). The first byte picks
 * the file, the rest is its text; the URIs asked about are those of the text's sections and
 * a few fixed ones, the peers an anonymous one, one with a certificate identity and one with
 * a token. Invariants: a URI the resolver finds has a source; an answer is one of the
 * documented statuses; the dump_schemas a file gives pass schemalist_check. */
#include "core/acl.h"
#include "core/schemalist.h"
#include "core/status.h"
#include "roles/controller/controller_acl.h"
#include "roles/gateway/resolver_file.h"
#include "roles/gateway/uri_target.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_URIS 8

/* The names of up to MAX_URIS "[name]" lines (malloc'ed) and a few fixed URIs. */
static size_t uris_of(const char *text, char **out)
{
    static const char *fixed[] = {"*", "app", "orders-consumer"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!(out[n++] = strdup(fixed[i])))
            abort();
    for (const char *p = text; p && n < MAX_URIS; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = strpbrk(p, "]\n");
        if (*p != '[' || !end || *end != ']')
            continue;
        const char *s = p + 1;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        const char *e = end;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (!(out[n] = strndup(s, (size_t)(e - s))))
            abort();
        n++;
    }
    return n;
}

static void peers(acl_peer p[3])
{
    static const char *ids[] = {"gw1", "alice"};
    acl_peer_init(&p[0], NULL, 0, NULL);
    acl_peer_init(&p[1], ids, 2, NULL);
    acl_peer_init(&p[2], NULL, 0, "secret");
}

static void check_status(int rc)
{
    if (rc != PGC_OK && rc != PGC_ERR_UNAUTHENTICATED && rc != PGC_ERR_PERMISSION)
        abort();
}

static void fuzz_resolver(const char *text, size_t len, char **uris, size_t n_uris)
{
    char err[512] = "";
    resolver_file *r = NULL;
    if (resolver_file_parse(text, len, &r, err, sizeof err) != PGC_OK) {
        if (r || !err[0])
            abort();
        return;
    }
    acl_peer p[3];
    peers(p);
    const char *first = NULL;
    if (resolver_file_open_uris(r, &first) > resolver_file_count(r))
        abort();
    for (size_t i = 0; i < n_uris; i++) {
        pgc_uri_target t;
        memset(&t, 0, sizeof t);
        int rc = resolver_file_lookup(r, uris[i], &t);
        if (rc != PGC_OK && rc != PGC_ERR_NOT_FOUND)
            abort();
        if (rc == PGC_OK &&
            (!*t.source || (*t.dump_schemas && schemalist_check(t.dump_schemas, err, sizeof err))))
            abort();
        for (int k = 0; k < 3; k++)
            check_status(resolver_file_authorize(r, uris[i], &p[k]));
    }
    resolver_file_free(r);
}

static void fuzz_acl(const char *text, size_t len, char **uris, size_t n_uris)
{
    char err[512];
    controller_acl *a = NULL;
    if (controller_acl_parse(text, len, &a, err, sizeof err) != PGC_OK) {
        if (a)
            abort();
        return;
    }
    acl_peer p[3];
    peers(p);
    for (size_t i = 0; i < n_uris; i++) {
        const char *s = controller_acl_dump_schemas(a, uris[i]);
        if (s && schemalist_check(s, err, sizeof err) != PGC_OK)
            abort();
        for (int v = 0; v < CONTROLLER_N_VERBS; v++)
            for (int k = 0; k < 3; k++)
                check_status(controller_acl_check(a, (controller_verb)v, uris[i], &p[k]));
    }
    controller_acl_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    /* An exact-size copy, NUL-terminated as the file reader leaves it. */
    char *text = malloc(len + 1);
    if (!text)
        abort();
    memcpy(text, data + 1, len);
    text[len] = '\0';
    char *uris[MAX_URIS];
    size_t n_uris = uris_of(text, uris);
    if (data[0] & 1)
        fuzz_acl(text, len, uris, n_uris);
    else
        fuzz_resolver(text, len, uris, n_uris);
    for (size_t i = 0; i < n_uris; i++)
        free(uris[i]);
    free(text);
    return 0;
}
