/* Conninfo to PG* environment (see pgenv.h). */
#include "pg/pgenv.h"

#include "core/status.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct pgenv {
    char **vars; /* NULL-terminated */
    size_t n, cap;
};

static int push(pgenv *e, char *var)
{
    if (e->n + 1 >= e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        char **v = realloc(e->vars, cap * sizeof *v);
        if (!v)
            return PGC_ERR_NOMEM;
        e->vars = v, e->cap = cap;
    }
    e->vars[e->n++] = var;
    e->vars[e->n] = NULL;
    return PGC_OK;
}

/* Replaces NAME=... (or adds it). */
static int set(pgenv *e, const char *name, const char *value)
{
    size_t nl = strlen(name);
    char *var = malloc(nl + strlen(value) + 2);
    if (!var)
        return PGC_ERR_NOMEM;
    sprintf(var, "%s=%s", name, value);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->vars[i], name, nl) == 0 && e->vars[i][nl] == '=') {
            free(e->vars[i]);
            e->vars[i] = var;
            return PGC_OK;
        }
    int rc = push(e, var);
    if (rc != PGC_OK)
        free(var);
    return rc;
}

int pgenv_create(const char *conninfo, pgenv **out, char *err, size_t err_len)
{
    /* A bare word is a database name, as libpq reads it in a dbname setting. */
    bool bare = !strchr(conninfo, '=') && strncmp(conninfo, "postgresql://", 13) != 0 &&
                strncmp(conninfo, "postgres://", 11) != 0;
    char *quoted = NULL;
    if (bare) {
        quoted = malloc(2 * strlen(conninfo) + 12);
        if (!quoted)
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
        char *q = quoted + sprintf(quoted, "dbname='");
        for (const char *c = conninfo; *c; c++) {
            if (*c == '\'' || *c == '\\')
                *q++ = '\\';
            *q++ = *c;
        }
        strcpy(q, "'");
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(quoted ? quoted : conninfo, &perr);
    free(quoted);
    if (!opts) {
        PQfreemem(perr);
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "the conninfo does not parse (libpq's own message would quote it)");
    }
    pgenv *e = calloc(1, sizeof *e);
    int rc = e ? PGC_OK : PGC_ERR_NOMEM;
    for (char **v = environ; rc == PGC_OK && *v; v++) {
        char *copy = strdup(*v);
        rc = copy ? push(e, copy) : PGC_ERR_NOMEM;
        if (rc != PGC_OK)
            free(copy);
    }
    for (PQconninfoOption *o = opts; rc == PGC_OK && o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (o->envvar)
            rc = set(e, o->envvar, o->val);
        else if (strcmp(o->keyword, "sslpassword") == 0)
            rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                            "sslpassword cannot be handed to pg_dump without its command line: "
                            "use a key without a passphrase or a service file");
    }
    PQconninfoFree(opts);
    if (rc != PGC_OK) {
        pgenv_destroy(e);
        if (rc == PGC_ERR_NOMEM)
            return errbuf_set(err, err_len, rc, "out of memory");
        return rc;
    }
    *out = e;
    return PGC_OK;
}

char *const *pgenv_envp(const pgenv *e)
{
    return e->vars;
}

void pgenv_destroy(pgenv *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        explicit_bzero(e->vars[i], strlen(e->vars[i]));
        free(e->vars[i]);
    }
    free(e->vars);
    free(e);
}
