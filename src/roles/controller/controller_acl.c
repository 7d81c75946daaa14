/* The controller's ACL file (see controller_acl.h). */
#include "roles/controller/controller_acl.h"

#include "core/inifile.h"
#include "core/schemalist.h"
#include "core/status.h"
#include "core/textfile.h"

#include <stdlib.h>
#include <string.h>

#define ACL_FILE_MAX_BYTES (4 * 1024 * 1024)

static const char *const verb_keys[CONTROLLER_N_VERBS] = {"schedule", "status", "pull"};

typedef struct acl_section {
    char *uri; /* "*" for every URI */
    acl *verbs[CONTROLLER_N_VERBS];
    char *dump_schemas;
} acl_section;

struct controller_acl {
    acl_section *s;
    size_t n, cap;
    acl *principals; /* every list together: the tokens the file knows */
};

static acl_section *find(const controller_acl *a, const char *uri)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->s[i].uri, uri) == 0)
            return &a->s[i];
    return NULL;
}

static int on_section(controller_acl *a, const char *name, char *err, size_t err_len)
{
    if (find(a, name))
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "section [%s] repeated", name);
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        acl_section *s = realloc(a->s, cap * sizeof *s);
        if (!s)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        a->s = s, a->cap = cap;
    }
    acl_section *s = &a->s[a->n];
    memset(s, 0, sizeof *s);
    if (!(s->uri = strdup(name)))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    a->n++;
    return PGC_OK;
}

static int on_line(void *arg, const char *section, const char *key, const char *value, char *err,
                   size_t err_len)
{
    controller_acl *a = arg;
    if (!key)
        return on_section(a, section, err, err_len);
    acl_section *s = &a->s[a->n - 1];
    if (strcmp(key, "dump_schemas") == 0) {
        if (s->dump_schemas)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "dump_schemas given twice");
        int rc = schemalist_check(value, err, err_len);
        if (rc == PGC_OK && !(s->dump_schemas = strdup(value)))
            rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        return rc;
    }
    for (int v = 0; v < CONTROLLER_N_VERBS; v++) {
        if (strcmp(key, verb_keys[v]) != 0)
            continue;
        char sub[300];
        if (!s->verbs[v] && !(s->verbs[v] = acl_create()))
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        int rc = acl_add_list(s->verbs[v], value, sub, sizeof sub);
        if (rc == PGC_OK)
            rc = acl_add_list(a->principals, value, sub, sizeof sub);
        return rc == PGC_OK ? rc : errbuf_set(err, err_len, rc, "%s: %s", key, sub);
    }
    return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                      "unknown key \"%s\" (schedule, status, pull, dump_schemas)", key);
}

int controller_acl_parse(const char *text, size_t len, controller_acl **out, char *err,
                         size_t err_len)
{
    controller_acl *a = calloc(1, sizeof *a);
    if (!a || !(a->principals = acl_create())) {
        free(a);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    }
    int rc = inifile_parse(text, len, on_line, a, err, err_len);
    if (rc != PGC_OK) {
        controller_acl_free(a);
        return rc;
    }
    *out = a;
    return PGC_OK;
}

int controller_acl_load(const char *path, controller_acl **out, char *err, size_t err_len)
{
    char *text = NULL, sub[500];
    size_t len = 0;
    int rc = textfile_read(path, ACL_FILE_MAX_BYTES, &text, &len, sub, sizeof sub);
    if (rc == PGC_OK)
        rc = controller_acl_parse(text, len, out, sub, sizeof sub);
    free(text);
    if (rc != PGC_OK)
        return errbuf_set(err, err_len, rc, "acl %s: %s", path, sub);
    return PGC_OK;
}

void controller_acl_free(controller_acl *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->s[i].uri);
        free(a->s[i].dump_schemas);
        for (int v = 0; v < CONTROLLER_N_VERBS; v++)
            acl_destroy(a->s[i].verbs[v]);
    }
    free(a->s);
    acl_destroy(a->principals);
    free(a);
}

static bool section_allows(const acl_section *s, controller_verb verb, const acl_peer *peer)
{
    return s && s->verbs[verb] && acl_allows(s->verbs[verb], peer);
}

int controller_acl_check(const controller_acl *a, controller_verb verb, const char *uri,
                         const acl_peer *peer)
{
    if (!a)
        return PGC_OK;
    if (section_allows(find(a, uri), verb, peer) || section_allows(find(a, "*"), verb, peer))
        return PGC_OK;
    return peer->n_identities > 0 || acl_knows_token(a->principals, peer) ? PGC_ERR_PERMISSION
                                                                          : PGC_ERR_UNAUTHENTICATED;
}

const char *controller_acl_dump_schemas(const controller_acl *a, const char *uri)
{
    if (!a)
        return NULL;
    const acl_section *s = find(a, uri);
    if (s && s->dump_schemas)
        return s->dump_schemas;
    s = find(a, "*");
    return s ? s->dump_schemas : NULL;
}
