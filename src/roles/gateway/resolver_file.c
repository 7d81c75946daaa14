/* The resolver file of the gateway (see resolver_file.h). */
#include "roles/gateway/resolver_file.h"

#include "core/acl.h"
#include "core/names.h"
#include "core/schemalist.h"
#include "core/status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct resolver_file_entry {
    char *uri;
    pgc_uri_target target;
    acl *capture; /* who may capture it; NULL: everyone */
} resolver_file_entry;

struct resolver_file {
    resolver_file_entry *entries;
    size_t n, cap;
    acl *principals; /* every capture list together: the tokens the file knows */
};

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return s;
}

static int check_entry(const resolver_file_entry *e, size_t line, char *err, size_t err_len)
{
    if (!e->target.source[0])
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: uri \"%s\" has no source", line,
                          e->uri);
    return PGC_OK;
}

/* A `capture` line: its principals go to the entry's list and the file's. */
static int add_capture(resolver_file *c, resolver_file_entry *e, const char *val, size_t line,
                       char *err, size_t err_len)
{
    char sub[300];
    if (!e->capture && !(e->capture = acl_create()))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "uri config: out of memory");
    int rc = acl_add_list(e->capture, val, sub, sizeof sub);
    if (rc == PGC_OK)
        rc = acl_add_list(c->principals, val, sub, sizeof sub);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "line %zu: capture: %s", line, sub);
    return PGC_OK;
}

static int set_key(resolver_file *c, resolver_file_entry *e, const char *key, const char *val,
                   size_t line, char *err, size_t err_len)
{
    char *dst;
    size_t cap;
    bool name = false;
    if (strcmp(key, "capture") == 0)
        return add_capture(c, e, val, line, err, err_len);
    if (strcmp(key, "dump_schemas") == 0) {
        char sub[200];
        if (schemalist_check(val, sub, sizeof sub) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: %s", line, sub);
        dst = e->target.dump_schemas, cap = sizeof e->target.dump_schemas;
    } else if (strcmp(key, "source") == 0) {
        dst = e->target.source, cap = sizeof e->target.source, name = true;
    } else if (strcmp(key, "durable") == 0) {
        dst = e->target.durable, cap = sizeof e->target.durable, name = true;
    } else if (strcmp(key, "nats_url") == 0) {
        dst = e->target.nats_url, cap = sizeof e->target.nats_url;
    } else if (strcmp(key, "replica") == 0) {
        dst = e->target.replica, cap = sizeof e->target.replica;
    } else {
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "line %zu: unknown key \"%s\" (source, nats_url, durable, replica, "
                          "dump_schemas, capture)",
                          line, key);
    }
    if (dst[0])
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: %s given twice", line, key);
    if (strlen(val) >= cap)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: %s longer than %zu bytes", line,
                          key, cap - 1);
    if (name && !names_token_valid(val))
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "line %zu: %s \"%s\" must be letters, digits, '_' or '-'", line, key,
                          val);
    strcpy(dst, val);
    return PGC_OK;
}

int resolver_file_parse(const char *text, size_t len, resolver_file **out, char *err,
                        size_t err_len)
{
    resolver_file *c = calloc(1, sizeof *c);
    char *buf = malloc(len + 1);
    int rc = PGC_OK;
    if (!c || !buf || !(c->principals = acl_create())) {
        resolver_file_free(c);
        free(buf);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "uri config: out of memory");
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "uri config: NUL byte in text");
        goto done;
    }
    size_t line = 0, section_line = 0;
    resolver_file_entry *cur = NULL;
    for (char *p = buf; p && *p;) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *next = nl ? nl + 1 : NULL;
        line++;
        char *s = trim(p, end);
        p = next;
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            size_t n = strlen(s);
            if (n < 3 || s[n - 1] != ']') {
                rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                                "line %zu: section must be [uri] with a non-empty uri", line);
                goto done;
            }
            s[n - 1] = '\0';
            char *uri = trim(s + 1, s + n - 1);
            if (!*uri) {
                rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: empty uri", line);
                goto done;
            }
            if (cur && (rc = check_entry(cur, section_line, err, err_len)) != PGC_OK)
                goto done;
            for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->entries[i].uri, uri) == 0) {
                    rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: uri \"%s\" repeated",
                                    line, uri);
                    goto done;
                }
            if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 8;
                resolver_file_entry *e = realloc(c->entries, cap * sizeof *e);
                if (!e) {
                    rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "uri config: out of memory");
                    goto done;
                }
                c->entries = e, c->cap = cap;
            }
            cur = &c->entries[c->n];
            memset(cur, 0, sizeof *cur);
            if (!(cur->uri = strdup(uri))) {
                rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "uri config: out of memory");
                goto done;
            }
            c->n++;
            section_line = line;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: expected key = value", line);
            goto done;
        }
        if (!cur) {
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "line %zu: key before any [uri] section",
                            line);
            goto done;
        }
        char *key = trim(s, eq);
        char *val = trim(eq + 1, eq + 1 + strlen(eq + 1));
        if ((rc = set_key(c, cur, key, val, line, err, err_len)) != PGC_OK)
            goto done;
    }
    if (cur)
        rc = check_entry(cur, section_line, err, err_len);
done:
    free(buf);
    if (rc != PGC_OK) {
        resolver_file_free(c);
        return rc;
    }
    *out = c;
    return PGC_OK;
}

int resolver_file_load(const char *path, resolver_file **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errbuf_set(err, err_len, PGC_ERR_IO, "uri config %s: %s", path, strerror(errno));
    char *buf = malloc(RESOLVER_FILE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "uri config: out of memory");
    }
    size_t n = fread(buf, 1, RESOLVER_FILE_MAX_BYTES + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err)
        rc = errbuf_set(err, err_len, PGC_ERR_IO, "uri config %s: read error", path);
    else if (n > RESOLVER_FILE_MAX_BYTES)
        rc = errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "uri config %s: larger than %d bytes",
                        path, RESOLVER_FILE_MAX_BYTES);
    else {
        char sub[400];
        rc = resolver_file_parse(buf, n, out, sub, sizeof sub);
        if (rc != PGC_OK)
            errbuf_set(err, err_len, rc, "uri config %s: %s", path, sub);
    }
    free(buf);
    return rc;
}

void resolver_file_free(resolver_file *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].uri);
        acl_destroy(c->entries[i].capture);
    }
    free(c->entries);
    acl_destroy(c->principals);
    free(c);
}

size_t resolver_file_count(const resolver_file *c)
{
    return c->n;
}

static const resolver_file_entry *find(const resolver_file *c, const char *uri)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].uri, uri) == 0)
            return &c->entries[i];
    return NULL;
}

int resolver_file_authorize(const resolver_file *c, const char *uri, const acl_peer *peer)
{
    if (acl_count(c->principals) == 0)
        return PGC_OK; /* no capture list anywhere: the file grants everyone every URI */
    const resolver_file_entry *e = find(c, uri);
    if (e && (!e->capture || acl_allows(e->capture, peer)))
        return PGC_OK;
    /* A URI the file does not have is refused as a forbidden one would be. */
    return peer->n_identities > 0 || acl_knows_token(c->principals, peer) ? PGC_ERR_PERMISSION
                                                                          : PGC_ERR_UNAUTHENTICATED;
}

size_t resolver_file_open_uris(const resolver_file *c, const char **first)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!c->entries[i].capture) {
            if (n++ == 0 && first)
                *first = c->entries[i].uri;
        }
    return n;
}

int resolver_file_lookup(const resolver_file *c, const char *uri, pgc_uri_target *out)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].uri, uri) == 0) {
            *out = c->entries[i].target;
            return PGC_OK;
        }
    return PGC_ERR_NOT_FOUND;
}
