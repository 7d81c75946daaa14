/* The replica's catalog as the applier needs it (see apply_private.h): per table its
 * columns with their types, the key that locates a row (primary key, or the replica
 * identity index) and its replica identity; per type what its binary values embed of other
 * types' OIDs. Both are read on first use and kept until DDL clears them. */
#include "roles/replica/apply_private.h"

#include "core/hash.h"
#include "core/status.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <string.h>

static uint32_t table_bucket(const char *schema, const char *table)
{
    return (hash_fnv1a_str(schema) * 31 + hash_fnv1a_str(table)) % APPLY_TABLE_BUCKETS;
}

static void table_free(apply_table *t)
{
    for (int i = 0; i < t->ncols; i++)
        free(t->cols[i].name);
    free(t->cols);
    free(t->schema);
    free(t->table);
    free(t->qname);
    free(t);
}

void apply_catalog_clear(apply_conn *ac)
{
    for (int i = 0; i < APPLY_TABLE_BUCKETS; i++) {
        while (ac->cat.tables[i]) {
            apply_table *t = ac->cat.tables[i];
            ac->cat.tables[i] = t->next;
            table_free(t);
        }
    }
    for (int i = 0; i < APPLY_TYPE_BUCKETS; i++) {
        while (ac->cat.types[i]) {
            apply_type *e = ac->cat.types[i];
            ac->cat.types[i] = e->next;
            free(e->d.atts);
            free(e);
        }
    }
}

const oidrewrite_type *apply_catalog_type(void *ctx, uint32_t oid)
{
    const apply_conn *ac = ctx;
    for (const apply_type *e = ac->cat.types[oid % APPLY_TYPE_BUCKETS]; e; e = e->next)
        if (e->d.oid == oid)
            return &e->d;
    return NULL;
}

/* Domains stand for their base type. */
static const char TYPE_SQL[] =
    "WITH RECURSIVE b(oid, depth) AS (SELECT $1::oid, 0 UNION ALL "
    "  SELECT t.typbasetype, b.depth + 1 FROM b JOIN pg_type t ON t.oid = b.oid "
    "  WHERE t.typtype = 'd' AND b.depth < 16) "
    "SELECT CASE WHEN t.typtype = 'c' THEN 'c' WHEN t.typlen = -1 AND t.typelem <> 0 AND "
    "  t.typsubscript = 'array_subscript_handler'::regproc THEN 'a' ELSE 'b' END, "
    "  t.typelem, (SELECT string_agg(a.atttypid::text, ',' ORDER BY a.attnum) "
    "  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT "
    "  a.attisdropped) "
    "FROM b JOIN pg_type t ON t.oid = b.oid ORDER BY b.depth DESC LIMIT 1";

/* Reads what the binary formats of replica type `oid` embed, and of the types inside it.
 * Outside pipeline mode. */
static int type_load(apply_conn *ac, uint32_t oid, int depth, char *err, size_t err_len)
{
    if (apply_catalog_type(ac, oid))
        return PGC_OK;
    if (depth > OIDREWRITE_MAX_DEPTH)
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED, "apply: type %u nests too deeply",
                          oid);
    char oid_s[16];
    snprintf(oid_s, sizeof oid_s, "%u", oid);
    const char *vals[1] = {oid_s};
    int rc;
    PGresult *r = apply_pipeline_exec_sync(ac, TYPE_SQL, 1, vals, PGRES_TUPLES_OK,
                                           "cannot read a type", err, err_len, &rc);
    if (!r)
        return rc;
    apply_type *e = xcalloc(1, sizeof *e);
    e->d.oid = oid;
    e->d.kind = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)[0] : 'b';
    if (e->d.kind == 'a')
        e->d.elem = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
    if (e->d.kind == 'c' && !PQgetisnull(r, 0, 2)) {
        const char *p = PQgetvalue(r, 0, 2);
        int n = 1;
        for (const char *q = p; *q; q++)
            n += *q == ',';
        e->d.atts = xmalloc((size_t)n * sizeof *e->d.atts);
        for (char *end; *p && e->d.natts < n; p = *end ? end + 1 : end)
            e->d.atts[e->d.natts++] = (uint32_t)strtoul(p, &end, 10);
    }
    PQclear(r);
    e->next = ac->cat.types[oid % APPLY_TYPE_BUCKETS];
    ac->cat.types[oid % APPLY_TYPE_BUCKETS] = e;
    if (e->d.kind == 'a')
        return type_load(ac, e->d.elem, depth + 1, err, err_len);
    for (int i = 0; i < e->d.natts; i++)
        if ((rc = type_load(ac, e->d.atts[i], depth + 1, err, err_len)) != PGC_OK)
            return rc;
    return PGC_OK;
}

/* The key is the primary key, or the replica identity index when the table uses one. */
static const char TABLE_SQL[] =
    "SELECT a.attname, a.atttypid, coalesce(a.attnum = ANY (k.indkey::int2[]), false), "
    "  c.relreplident, a.attgenerated <> '' "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN LATERAL (SELECT i.indkey FROM pg_index i WHERE i.indrelid = c.oid AND "
    "  CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END LIMIT 1) k "
    "  ON true "
    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
    "ORDER BY a.attnum";

static apply_table *table_from_result(const PGresult *r, const char *schema, const char *table)
{
    apply_table *t = xcalloc(1, sizeof *t);
    t->schema = xstrdup(schema);
    t->table = xstrdup(table);
    t->ncols = PQntuples(r);
    t->cols = xcalloc((size_t)t->ncols, sizeof *t->cols);
    t->replident = PQgetvalue(r, 0, 3)[0];
    for (int i = 0; i < t->ncols; i++) {
        apply_column *c = &t->cols[i];
        c->name = xstrdup(PQgetvalue(r, i, 0));
        c->type_oid = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        c->is_key = PQgetvalue(r, i, 2)[0] == 't';
        if (c->is_key)
            t->nkeys++;
        c->generated = PQgetvalue(r, i, 4)[0] == 't';
        if (c->generated)
            t->ngenerated++;
    }
    return t;
}

int apply_catalog_load(apply_conn *ac, const char *schema, const char *table,
                       const apply_table **out, char *err, size_t err_len)
{
    const char *vals[2] = {schema, table};
    int rc;
    PGresult *r = apply_pipeline_exec_sync(ac, TABLE_SQL, 2, vals, PGRES_TUPLES_OK,
                                           "cannot read the columns", err, err_len, &rc);
    if (!r)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                          "apply: table %s.%s does not exist on the replica (create it, or "
                          "initialise the replica with `pgcapture replica init`)",
                          schema, table);
    }
    apply_table *t = table_from_result(r, schema, table);
    PQclear(r);
    strbuf q;
    strbuf_init(&q);
    strbuf_sql_ident(&q, schema);
    strbuf_putc(&q, '.');
    strbuf_sql_ident(&q, table);
    t->qname = strbuf_take(&q, NULL);
    if (!t->qname) {
        table_free(t);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "apply: out of memory");
    }
    for (int i = 0; i < t->ncols; i++) {
        if ((rc = type_load(ac, t->cols[i].type_oid, 0, err, err_len)) != PGC_OK) {
            table_free(t);
            return rc;
        }
        t->cols[i].rewrite = oidrewrite_needed(apply_catalog_type(ac, t->cols[i].type_oid));
    }
    uint32_t h = table_bucket(schema, table);
    t->next = ac->cat.tables[h];
    ac->cat.tables[h] = t;
    *out = t;
    return PGC_OK;
}

const apply_table *apply_catalog_find(const apply_conn *ac, const char *schema, const char *table)
{
    for (const apply_table *t = ac->cat.tables[table_bucket(schema, table)]; t; t = t->next)
        if (!strcmp(t->table, table) && !strcmp(t->schema, schema))
            return t;
    return NULL;
}

const apply_column *apply_catalog_column(const apply_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name))
            return &t->cols[i];
    return NULL;
}
