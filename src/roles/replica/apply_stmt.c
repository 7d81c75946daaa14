/* Prepared statements of the applier (see apply_private.h): one per (table, operation,
 * column set), named pgc_apply_N, prepared in the pipeline on first use and kept until
 * DDL; their parameters are binary values typed as the replica's columns. */
#include "roles/replica/apply_private.h"

#include "core/hash.h"
#include "core/status.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <string.h>

void apply_stmt_reserve(apply_conn *ac, size_t n)
{
    apply_stmts *s = &ac->stmt;
    if (n <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    s->vals = xrealloc(s->vals, cap * sizeof *s->vals);
    s->lens = xrealloc(s->lens, cap * sizeof *s->lens);
    s->fmts = xrealloc(s->fmts, cap * sizeof *s->fmts);
    s->types = xrealloc(s->types, cap * sizeof *s->types);
    s->copies = xrealloc(s->copies, cap * sizeof *s->copies);
    s->cap = cap;
}

void apply_stmt_release(apply_conn *ac)
{
    for (size_t i = 0; i < ac->stmt.ncopies; i++)
        free(ac->stmt.copies[i]);
    ac->stmt.ncopies = 0;
}

/* Binary arrays and records carry type OIDs, which may differ between source and replica
 * for user types: they are rewritten to the replica's, in a copy. */
int apply_stmt_set_param(apply_conn *ac, int i, const apply_column *col, const Pgcapture__Field *f,
                         char *err, size_t err_len)
{
    apply_stmts *s = &ac->stmt;
    s->types[i] = col->type_oid;
    switch (f->value_case) {
    case PGCAPTURE__FIELD__VALUE_BINARY:
        if (f->binary.len > 0x7fffffff)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "apply: value of %s too large",
                              col->name);
        s->fmts[i] = 1;
        s->lens[i] = (int)f->binary.len;
        s->vals[i] = (const char *)f->binary.data;
        if (col->rewrite) {
            uint8_t *copy = xmalloc(f->binary.len);
            memcpy(copy, f->binary.data, f->binary.len);
            /* A malformed value is sent as it is: the replica refuses it with its own
             * message, which the error of the statement carries. */
            char ignored[8];
            oidrewrite_value(copy, f->binary.len, col->type_oid, apply_catalog_type, ac, ignored,
                             sizeof ignored);
            s->copies[s->ncopies++] = copy;
            s->vals[i] = (const char *)copy;
        }
        break;
    case PGCAPTURE__FIELD__VALUE_TEXT:
        s->fmts[i] = 0;
        s->lens[i] = 0;
        s->vals[i] = f->text;
        break;
    default:
        s->fmts[i] = 0;
        s->lens[i] = 0;
        s->vals[i] = NULL; /* SQL NULL */
        break;
    }
    return PGC_OK;
}

int apply_stmt_prepare(apply_conn *ac, int nparams, log_pos pos, const char **name, char *err,
                       size_t err_len)
{
    apply_stmts *s = &ac->stmt;
    /* The string buffers never abort: one that could not grow is caught before use. */
    if (strbuf_status(&s->sql) != PGC_OK || strbuf_status(&s->key) != PGC_OK) {
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "apply: out of memory building a statement");
    }
    uint32_t h = hash_fnv1a_str(s->key.data) % APPLY_STMT_BUCKETS;
    for (apply_stmt *p = s->prepared[h]; p; p = p->next) {
        if (!strcmp(p->key, s->key.data)) {
            *name = p->name;
            return PGC_OK;
        }
    }
    apply_stmt *p = xmalloc(sizeof *p);
    p->key = xstrdup(s->key.data);
    snprintf(p->name, sizeof p->name, "pgc_apply_%llu", (unsigned long long)++s->counter);
    if (PQsendPrepare(ac->conn, p->name, s->sql.data, nparams, s->types) != 1) {
        free(p->key);
        free(p);
        return apply_pipeline_fail_conn(ac, "cannot send a prepare", err, err_len);
    }
    apply_pipeline_expect(ac, APPLY_EXPECT_PREPARE, 0, pos, "prepare %.150s", s->sql.data);
    p->next = s->prepared[h];
    s->prepared[h] = p;
    *name = p->name;
    return apply_pipeline_sent(ac, err, err_len);
}

void apply_stmt_forget_all(apply_conn *ac)
{
    for (int i = 0; i < APPLY_STMT_BUCKETS; i++) {
        while (ac->stmt.prepared[i]) {
            apply_stmt *p = ac->stmt.prepared[i];
            ac->stmt.prepared[i] = p->next;
            free(p->key);
            free(p);
        }
    }
}

void apply_stmt_free(apply_conn *ac)
{
    apply_stmts *s = &ac->stmt;
    apply_stmt_forget_all(ac);
    apply_stmt_release(ac);
    free(s->vals);
    free(s->lens);
    free(s->fmts);
    free(s->types);
    free(s->copies);
    strbuf_free(&s->sql);
    strbuf_free(&s->key);
}
