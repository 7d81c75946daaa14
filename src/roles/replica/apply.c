/* Replica apply engine (see apply.h).
 *
 * Pipeline bookkeeping: every command sent in pipeline mode pushes an entry on a FIFO
 * that says what result to expect and which change it belongs to, so an error read back
 * later names the failing change. A sync point is sent every SYNC_EVERY statements and
 * at most two are left outstanding, so the server never blocks on results we have not
 * read and memory stays bounded whatever the transaction size. */
#include "roles/replica/apply.h"

#include "codec/bigendian.h"
#include "core/hash.h"
#include "core/status.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SYNC_EVERY 1000
#define TABLE_BUCKETS 256
#define STMT_BUCKETS 1024
#define WHAT_LEN 192
#define ARRAY_OID_OFFSET 8 /* ndim int4, flags int4, element type oid */

/* Where a change locates its row. */
enum where_mode { WHERE_NONE = 0, WHERE_KEY = 'k', WHERE_FULL = 'f' };

typedef struct tbl_col {
    char *name;
    uint32_t type_oid;
    bool rewrite; /* its binary values embed type OIDs (arrays, records) */
    bool is_key;
    bool generated; /* GENERATED ALWAYS AS: the replica computes it */
} tbl_col;

#define TYPE_BUCKETS 64
#define TYPE_MAX_DEPTH 8

typedef struct type_entry {
    apply_type_desc d;
    struct type_entry *next;
} type_entry;

typedef struct tbl_meta {
    char *schema, *table;
    char *qname; /* "schema"."table" */
    int ncols, nkeys, ngenerated;
    tbl_col *cols;
    char replident;
    struct tbl_meta *next;
} tbl_meta;

typedef struct stmt {
    char *key;
    char name[32];
    struct stmt *next;
} stmt;

/* PEND_ROWS: a statement that must affect exactly `rows` rows. */
enum pending_kind { PEND_SYNC, PEND_ANY, PEND_ROWS, PEND_PREPARE };

typedef struct pending {
    uint8_t kind;
    uint32_t rows;
    log_pos pos;
    char what[WHAT_LEN];
} pending;

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

/* Consecutive INSERTs into one table with one column set, sent as one multi-row INSERT:
 * per-statement overhead on both sides is what limits the apply rate. Values are copied
 * (the Change they come from is freed once applied). */
#define INSERT_MAX_ROWS 100
#define MAX_PARAMS 65535

typedef struct insert_batch {
    const tbl_meta *t; /* NULL when empty */
    strbuf key;        /* statement key of one row */
    strbuf cols;       /* the column list, "(...)" */
    int ncols, nrows;
    log_pos first, last;
    /* Per parameter (nrows * ncols): offset into data (-1 for NULL), length, format. */
    long *offs;
    int *lens, *fmts;
    Oid *types;
    size_t cap;
    strbuf data;
    strbuf rowkey; /* scratch: the key of the row being added */
} insert_batch;

struct apply_conn {
    PGconn *conn;
    char *source_id;
    char *search_path; /* the session's own, restored after each DDL */
    bool in_tx, in_pipeline, broken;
    tbl_meta *tables[TABLE_BUCKETS];
    type_entry *types_cache[TYPE_BUCKETS];
    stmt *stmts[STMT_BUCKETS];
    uint64_t stmt_counter;
    pending *q;
    size_t q_head, q_len, q_cap;
    int since_sync, syncs_out;
    /* Parameters of the statement being sent. */
    const char **vals;
    int *lens, *fmts;
    Oid *types;
    uint8_t **copies; /* rewritten array values, freed after each send */
    size_t pcap, ncopies;
    strbuf sql, key;
    insert_batch ins;
    apply_stats stats;
    log_pos skip_ddl; /* an inexact DDL row the operator applied by hand; lsn 0: none */
};

static void *xrealloc(void *p, size_t n)
{
    /* The applier is a daemon: one that cannot allocate restarts from its stored position. */
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static void sb_reset(strbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static void sb_reserve(strbuf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
}

static void sb_add(strbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_ident(strbuf *b, const char *name)
{
    sb_reserve(b, 2 * strlen(name) + 2);
    b->len = apply_quote_ident(b->p, b->cap, b->len, name);
}

size_t apply_quote_ident(char *buf, size_t cap, size_t len, const char *name)
{
    size_t need = 2;
    for (const char *p = name; *p; p++)
        need += *p == '"' ? 2 : 1;
    if (len + need + 1 > cap)
        return 0;
    buf[len++] = '"';
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            buf[len++] = '"';
        buf[len++] = *p;
    }
    buf[len++] = '"';
    buf[len] = '\0';
    return len;
}

bool apply_array_set_elemtype(uint8_t *v, size_t len, uint32_t elem_oid)
{
    if (len < ARRAY_OID_OFFSET + 4)
        return false;
    bigendian_put32(v + ARRAY_OID_OFFSET, elem_oid);
    return true;
}

static bool needs_rewrite(const apply_type_desc *d)
{
    return d && (d->kind == 'a' || d->kind == 'c');
}

static bool rewrite_oids(uint8_t *v, size_t len, uint32_t oid, apply_type_lookup lookup, void *ctx,
                         int depth)
{
    const apply_type_desc *d = lookup(ctx, oid);
    if (!needs_rewrite(d))
        return true;
    if (depth > TYPE_MAX_DEPTH)
        return false;
    if (d->kind == 'a') {
        /* ndim, has-nulls flag, element type, ndim x (size, lower bound), then elements
         * each as a length (-1: NULL) and bytes. */
        if (len < 12)
            return false;
        uint32_t ndim = bigendian_get32(v);
        if (ndim > 6 || len < 12 + (size_t)ndim * 8)
            return false;
        apply_array_set_elemtype(v, len, d->elem);
        uint64_t nelems = ndim ? 1 : 0;
        for (uint32_t i = 0; i < ndim; i++) {
            nelems *= bigendian_get32(v + 12 + i * 8);
            if (nelems > len)
                return false;
        }
        const apply_type_desc *e = lookup(ctx, d->elem);
        if (!needs_rewrite(e))
            return true;
        size_t p = 12 + (size_t)ndim * 8;
        for (uint64_t i = 0; i < nelems; i++) {
            if (p + 4 > len)
                return false;
            int32_t elen = (int32_t)bigendian_get32(v + p);
            p += 4;
            if (elen < 0)
                continue;
            if ((size_t)elen > len - p ||
                !rewrite_oids(v + p, (size_t)elen, d->elem, lookup, ctx, depth + 1))
                return false;
            p += (size_t)elen;
        }
        return true;
    }
    /* A record: field count, then per field its type, a length (-1: NULL) and bytes. */
    if (len < 4)
        return false;
    uint32_t n = bigendian_get32(v);
    size_t p = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (p + 8 > len)
            return false;
        uint32_t att = (int)i < d->natts ? d->atts[i] : bigendian_get32(v + p);
        bigendian_put32(v + p, att);
        int32_t flen = (int32_t)bigendian_get32(v + p + 4);
        p += 8;
        if (flen < 0)
            continue;
        if ((size_t)flen > len - p ||
            !rewrite_oids(v + p, (size_t)flen, att, lookup, ctx, depth + 1))
            return false;
        p += (size_t)flen;
    }
    return true;
}

bool apply_rewrite_oids(uint8_t *v, size_t len, uint32_t oid, apply_type_lookup lookup, void *ctx)
{
    return rewrite_oids(v, len, oid, lookup, ctx, 0);
}

static const char *op_name(int op)
{
    switch (op) {
    case PGCAPTURE__CHANGE__OPERATION__INSERT:
        return "INSERT";
    case PGCAPTURE__CHANGE__OPERATION__UPDATE:
        return "UPDATE";
    case PGCAPTURE__CHANGE__OPERATION__DELETE:
        return "DELETE";
    case PGCAPTURE__CHANGE__OPERATION__TRUNCATE:
        return "TRUNCATE";
    }
    return "unknown operation";
}

/* --- caches ------------------------------------------------------------------------------ */

static void table_free(tbl_meta *t)
{
    for (int i = 0; i < t->ncols; i++)
        free(t->cols[i].name);
    free(t->cols);
    free(t->schema);
    free(t->table);
    free(t->qname);
    free(t);
}

/* DDL may change any table's columns or keys, and types: forget them all. */
static void caches_clear(apply_conn *ac)
{
    for (int i = 0; i < TABLE_BUCKETS; i++) {
        while (ac->tables[i]) {
            tbl_meta *t = ac->tables[i];
            ac->tables[i] = t->next;
            table_free(t);
        }
    }
    for (int i = 0; i < TYPE_BUCKETS; i++) {
        while (ac->types_cache[i]) {
            type_entry *e = ac->types_cache[i];
            ac->types_cache[i] = e->next;
            free(e->d.atts);
            free(e);
        }
    }
    for (int i = 0; i < STMT_BUCKETS; i++) {
        while (ac->stmts[i]) {
            stmt *s = ac->stmts[i];
            ac->stmts[i] = s->next;
            free(s->key);
            free(s);
        }
    }
}

/* --- errors -------------------------------------------------------------------------------- */

/* Transient server errors (connection, resources, operator intervention, serialization and
 * deadlock) are worth a retry; anything else, such as a constraint violation, needs a
 * person and stops the applier. */
static int status_of_result(PGconn *conn, const PGresult *r)
{
    if (PQstatus(conn) == CONNECTION_BAD)
        return PGC_ERR_CONN;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return PGC_ERR_CONN;
    if (!strncmp(state, "08", 2) || !strncmp(state, "40", 2) || !strncmp(state, "53", 2) ||
        !strncmp(state, "57", 2) || !strcmp(state, "55P03"))
        return PGC_ERR_CONN;
    return PGC_ERR_STATE;
}

static void trim_message(char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static int fail_result(apply_conn *ac, const PGresult *r, const pending *p, char *err,
                       size_t err_len)
{
    char msg[768], lsn[LSN_TEXT_LEN];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(ac->conn));
    trim_message(msg);
    lsn_format(p->pos.lsn, lsn);
    ac->broken = true;
    return errbuf_set(err, err_len, status_of_result(ac->conn, r),
                      "apply: %s at %s seq %u failed: %s", p->what, lsn, p->pos.seq, msg);
}

static int fail_conn(apply_conn *ac, const char *what, char *err, size_t err_len)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(ac->conn));
    trim_message(msg);
    ac->broken = true;
    return errbuf_set(err, err_len, PGC_ERR_CONN, "apply: %s: %s", what, msg);
}

/* --- the pipeline -------------------------------------------------------------------------- */

static void push(apply_conn *ac, int kind, log_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void push(apply_conn *ac, int kind, log_pos pos, const char *fmt, ...)
{
    if (ac->q_len == ac->q_cap) {
        size_t cap = ac->q_cap ? ac->q_cap * 2 : 2048;
        pending *q = xrealloc(NULL, cap * sizeof *q);
        for (size_t i = 0; i < ac->q_len; i++)
            q[i] = ac->q[(ac->q_head + i) % ac->q_cap];
        free(ac->q);
        ac->q = q;
        ac->q_cap = cap;
        ac->q_head = 0;
    }
    pending *p = &ac->q[(ac->q_head + ac->q_len) % ac->q_cap];
    p->kind = (uint8_t)kind;
    p->rows = kind == PEND_ROWS ? 1 : 0;
    p->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->what, sizeof p->what, fmt, ap);
    va_end(ap);
    ac->q_len++;
}

/* Reads results in order until `syncs` sync points were consumed (or the queue is empty
 * when syncs < 0). The first error wins; later results are read and dropped so the
 * connection stays in step. */
static int read_results(apply_conn *ac, int syncs, char *err, size_t err_len)
{
    int rc = PGC_OK;
    while (ac->q_len > 0 && syncs != 0) {
        pending p = ac->q[ac->q_head];
        ac->q_head = (ac->q_head + 1) % ac->q_cap;
        ac->q_len--;
        PGresult *r = PQgetResult(ac->conn);
        if (!r) {
            if (rc == PGC_OK)
                rc = fail_conn(ac, "connection lost while reading results", err, err_len);
            return rc;
        }
        ExecStatusType st = PQresultStatus(r);
        if (p.kind == PEND_SYNC) {
            if (st != PGRES_PIPELINE_SYNC && rc == PGC_OK)
                rc = fail_result(ac, r, &p, err, err_len);
            PQclear(r);
            ac->syncs_out--;
            if (syncs > 0)
                syncs--;
            continue;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
            if (rc == PGC_OK)
                rc = fail_result(ac, r, &p, err, err_len);
        } else if (st == PGRES_PIPELINE_ABORTED) {
            if (rc == PGC_OK) {
                ac->broken = true;
                rc = errbuf_set(err, err_len, PGC_ERR_STATE, "apply: pipeline aborted at %s",
                                p.what);
            }
        } else if (p.kind == PEND_ROWS && strtoul(PQcmdTuples(r), NULL, 10) != p.rows &&
                   rc == PGC_OK) {
            char lsn[LSN_TEXT_LEN];
            lsn_format(p.pos.lsn, lsn);
            ac->broken = true;
            rc = errbuf_set(err, err_len, PGC_ERR_STATE,
                            "apply: %s at %s seq %u affected %s rows, expected %u: the replica "
                            "has diverged from the source",
                            p.what, lsn, p.pos.seq, PQcmdTuples(r), p.rows);
        }
        PQclear(r);
        /* Every command's results end with NULL. */
        while ((r = PQgetResult(ac->conn)) != NULL)
            PQclear(r);
    }
    return rc;
}

static int send_sync(apply_conn *ac, char *err, size_t err_len)
{
    if (PQpipelineSync(ac->conn) != 1)
        return fail_conn(ac, "cannot send a pipeline sync", err, err_len);
    push(ac, PEND_SYNC, (log_pos){0, 0}, "sync");
    ac->syncs_out++;
    ac->since_sync = 0;
    return PGC_OK;
}

/* After each statement: keep at most two sync points outstanding. */
static int after_send(apply_conn *ac, char *err, size_t err_len)
{
    if (++ac->since_sync < SYNC_EVERY)
        return PGC_OK;
    int rc = send_sync(ac, err, err_len);
    if (rc == PGC_OK && ac->syncs_out > 1)
        rc = read_results(ac, 1, err, err_len);
    return rc;
}

static int pipeline_enter(apply_conn *ac, char *err, size_t err_len)
{
    if (ac->in_pipeline)
        return PGC_OK;
    if (PQenterPipelineMode(ac->conn) != 1)
        return fail_conn(ac, "cannot enter pipeline mode", err, err_len);
    ac->in_pipeline = true;
    return PGC_OK;
}

static int insert_flush(apply_conn *ac, char *err, size_t err_len);

/* Drains every result and leaves pipeline mode, for synchronous commands. */
static int pipeline_leave(apply_conn *ac, char *err, size_t err_len)
{
    if (!ac->in_pipeline)
        return PGC_OK;
    int rc = insert_flush(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (ac->q_len > 0 || ac->since_sync > 0)
        rc = send_sync(ac, err, err_len);
    if (rc == PGC_OK)
        rc = read_results(ac, -1, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (PQexitPipelineMode(ac->conn) != 1)
        return fail_conn(ac, "cannot leave pipeline mode", err, err_len);
    ac->in_pipeline = false;
    return PGC_OK;
}

/* --- synchronous helpers ------------------------------------------------------------------- */

static PGresult *exec_sync(apply_conn *ac, const char *sql, int n, const char *const *vals,
                           ExecStatusType want, const char *what, char *err, size_t err_len,
                           int *rc)
{
    PGresult *r = PQexecParams(ac->conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(ac->conn));
        trim_message(msg);
        *rc = errbuf_set(err, err_len, status_of_result(ac->conn, r), "apply: %s: %s", what, msg);
        ac->broken = true;
        PQclear(r);
        return NULL;
    }
    *rc = PGC_OK;
    return r;
}

static const apply_type_desc *type_find(void *ctx, uint32_t oid)
{
    apply_conn *ac = ctx;
    for (type_entry *e = ac->types_cache[oid % TYPE_BUCKETS]; e; e = e->next)
        if (e->d.oid == oid)
            return &e->d;
    return NULL;
}

/* Reads what the binary formats of replica type `oid` embed (domains stand for their base
 * type), and of the types inside it. Outside pipeline mode. */
static int type_load(apply_conn *ac, uint32_t oid, int depth, char *err, size_t err_len)
{
    if (type_find(ac, oid))
        return PGC_OK;
    if (depth > TYPE_MAX_DEPTH)
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED, "apply: type %u nests too deeply",
                          oid);
    char oid_s[16];
    snprintf(oid_s, sizeof oid_s, "%u", oid);
    const char *vals[1] = {oid_s};
    int rc;
    PGresult *r = exec_sync(
        ac,
        "WITH RECURSIVE b(oid, depth) AS (SELECT $1::oid, 0 UNION ALL "
        "  SELECT t.typbasetype, b.depth + 1 FROM b JOIN pg_type t ON t.oid = b.oid "
        "  WHERE t.typtype = 'd' AND b.depth < 16) "
        "SELECT CASE WHEN t.typtype = 'c' THEN 'c' WHEN t.typlen = -1 AND t.typelem <> 0 AND "
        "  t.typsubscript = 'array_subscript_handler'::regproc THEN 'a' ELSE 'b' END, "
        "  t.typelem, (SELECT string_agg(a.atttypid::text, ',' ORDER BY a.attnum) "
        "  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT "
        "  a.attisdropped) "
        "FROM b JOIN pg_type t ON t.oid = b.oid ORDER BY b.depth DESC LIMIT 1",
        1, vals, PGRES_TUPLES_OK, "cannot read a type", err, err_len, &rc);
    if (!r)
        return rc;
    type_entry *e = xrealloc(NULL, sizeof *e);
    memset(e, 0, sizeof *e);
    e->d.oid = oid;
    e->d.kind = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)[0] : 'b';
    if (e->d.kind == 'a')
        e->d.elem = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
    if (e->d.kind == 'c' && !PQgetisnull(r, 0, 2)) {
        const char *p = PQgetvalue(r, 0, 2);
        int n = 1;
        for (const char *q = p; *q; q++)
            n += *q == ',';
        e->d.atts = xrealloc(NULL, (size_t)n * sizeof *e->d.atts);
        for (char *end; *p && e->d.natts < n; p = *end ? end + 1 : end)
            e->d.atts[e->d.natts++] = (uint32_t)strtoul(p, &end, 10);
    }
    PQclear(r);
    e->next = ac->types_cache[oid % TYPE_BUCKETS];
    ac->types_cache[oid % TYPE_BUCKETS] = e;
    if (e->d.kind == 'a')
        return type_load(ac, e->d.elem, depth + 1, err, err_len);
    for (int i = 0; i < e->d.natts; i++)
        if ((rc = type_load(ac, e->d.atts[i], depth + 1, err, err_len)) != PGC_OK)
            return rc;
    return PGC_OK;
}

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

static int table_load(apply_conn *ac, const char *schema, const char *table, tbl_meta **out,
                      char *err, size_t err_len)
{
    int rc = pipeline_leave(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    const char *vals[2] = {schema, table};
    PGresult *r = exec_sync(ac, TABLE_SQL, 2, vals, PGRES_TUPLES_OK, "cannot read the columns", err,
                            err_len, &rc);
    if (!r)
        return rc;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        ac->broken = true;
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                          "apply: table %s.%s does not exist on the replica (create it, or "
                          "initialise the replica with `pgcapture replica init`)",
                          schema, table);
    }
    tbl_meta *t = xrealloc(NULL, sizeof *t);
    memset(t, 0, sizeof *t);
    t->schema = xstrdup(schema);
    t->table = xstrdup(table);
    strbuf q = {0};
    sb_ident(&q, schema);
    sb_str(&q, ".");
    sb_ident(&q, table);
    t->qname = q.p;
    t->ncols = n;
    t->cols = xrealloc(NULL, (size_t)n * sizeof *t->cols);
    t->replident = PQgetvalue(r, 0, 3)[0];
    for (int i = 0; i < n; i++) {
        tbl_col *c = &t->cols[i];
        c->name = xstrdup(PQgetvalue(r, i, 0));
        c->type_oid = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        c->is_key = PQgetvalue(r, i, 2)[0] == 't';
        if (c->is_key)
            t->nkeys++;
        c->generated = PQgetvalue(r, i, 4)[0] == 't';
        if (c->generated)
            t->ngenerated++;
    }
    PQclear(r);
    for (int i = 0; i < n; i++) {
        if ((rc = type_load(ac, t->cols[i].type_oid, 0, err, err_len)) != PGC_OK) {
            table_free(t);
            return rc;
        }
        t->cols[i].rewrite = needs_rewrite(type_find(ac, t->cols[i].type_oid));
    }
    uint32_t h = hash_fnv1a_str(schema) * 31 + hash_fnv1a_str(table);
    t->next = ac->tables[h % TABLE_BUCKETS];
    ac->tables[h % TABLE_BUCKETS] = t;
    *out = t;
    return PGC_OK;
}

static int table_lookup(apply_conn *ac, const char *schema, const char *table, tbl_meta **out,
                        char *err, size_t err_len)
{
    uint32_t h = hash_fnv1a_str(schema) * 31 + hash_fnv1a_str(table);
    for (tbl_meta *t = ac->tables[h % TABLE_BUCKETS]; t; t = t->next) {
        if (!strcmp(t->table, table) && !strcmp(t->schema, schema)) {
            *out = t;
            return PGC_OK;
        }
    }
    return table_load(ac, schema, table, out, err, err_len);
}

static const tbl_col *find_col(const tbl_meta *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name))
            return &t->cols[i];
    return NULL;
}

static const Pgcapture__Field *find_field(Pgcapture__Field **fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i]->name, name))
            return fields[i];
    return NULL;
}

/* --- statements ---------------------------------------------------------------------------- */

static void params_reserve(apply_conn *ac, size_t n)
{
    if (n <= ac->pcap)
        return;
    size_t cap = ac->pcap ? ac->pcap : 64;
    while (cap < n)
        cap *= 2;
    ac->vals = xrealloc(ac->vals, cap * sizeof *ac->vals);
    ac->lens = xrealloc(ac->lens, cap * sizeof *ac->lens);
    ac->fmts = xrealloc(ac->fmts, cap * sizeof *ac->fmts);
    ac->types = xrealloc(ac->types, cap * sizeof *ac->types);
    ac->copies = xrealloc(ac->copies, cap * sizeof *ac->copies);
    ac->pcap = cap;
}

static void copies_free(apply_conn *ac)
{
    for (size_t i = 0; i < ac->ncopies; i++)
        free(ac->copies[i]);
    ac->ncopies = 0;
}

/* Sets parameter i from a field, typed as the replica's column. Binary arrays carry their
 * element type's OID, which may differ between source and replica for user types: it is
 * rewritten to the replica's. */
static int set_param(apply_conn *ac, int i, const tbl_col *col, const Pgcapture__Field *f,
                     char *err, size_t err_len)
{
    ac->types[i] = col->type_oid;
    switch (f->value_case) {
    case PGCAPTURE__FIELD__VALUE_BINARY:
        if (f->binary.len > 0x7fffffff)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "apply: value of %s too large",
                              col->name);
        ac->fmts[i] = 1;
        ac->lens[i] = (int)f->binary.len;
        ac->vals[i] = (const char *)f->binary.data;
        if (col->rewrite) {
            uint8_t *copy = xrealloc(NULL, f->binary.len);
            memcpy(copy, f->binary.data, f->binary.len);
            apply_rewrite_oids(copy, f->binary.len, col->type_oid, type_find, ac);
            ac->copies[ac->ncopies++] = copy;
            ac->vals[i] = (const char *)copy;
        }
        break;
    case PGCAPTURE__FIELD__VALUE_TEXT:
        ac->fmts[i] = 0;
        ac->lens[i] = 0;
        ac->vals[i] = f->text;
        break;
    default:
        ac->fmts[i] = 0;
        ac->lens[i] = 0;
        ac->vals[i] = NULL; /* SQL NULL */
        break;
    }
    return PGC_OK;
}

/* Finds or prepares (in the pipeline) the statement whose cache key is in ac->key and
 * whose text is in ac->sql. */
static int stmt_get(apply_conn *ac, int nparams, log_pos pos, const char **name, char *err,
                    size_t err_len)
{
    uint32_t h = hash_fnv1a_str(ac->key.p) % STMT_BUCKETS;
    for (stmt *s = ac->stmts[h]; s; s = s->next) {
        if (!strcmp(s->key, ac->key.p)) {
            *name = s->name;
            return PGC_OK;
        }
    }
    stmt *s = xrealloc(NULL, sizeof *s);
    s->key = xstrdup(ac->key.p);
    snprintf(s->name, sizeof s->name, "pgc_apply_%llu", (unsigned long long)++ac->stmt_counter);
    if (PQsendPrepare(ac->conn, s->name, ac->sql.p, nparams, ac->types) != 1) {
        free(s->key);
        free(s);
        return fail_conn(ac, "cannot send a prepare", err, err_len);
    }
    push(ac, PEND_PREPARE, pos, "prepare %.150s", ac->sql.p);
    s->next = ac->stmts[h];
    ac->stmts[h] = s;
    *name = s->name;
    return after_send(ac, err, err_len);
}

/* Builds the WHERE clause that locates the row of an UPDATE or DELETE: by the key columns
 * (primary key or replica identity index, values from the old row when sent, else from
 * the new one), or, for REPLICA IDENTITY FULL without a key, by every old column. Appends
 * to ac->sql and ac->key, sets parameters from *np on. */
static int build_where(apply_conn *ac, const tbl_meta *t, const Pgcapture__Change *c, int *np,
                       log_pos pos, char *err, size_t err_len)
{
    char lsn[LSN_TEXT_LEN];
    lsn_format(pos.lsn, lsn);
    int rc;
    if (t->nkeys > 0) {
        sb_str(&ac->key, "|k");
        sb_str(&ac->sql, " WHERE ");
        bool first = true;
        for (int i = 0; i < t->ncols; i++) {
            const tbl_col *col = &t->cols[i];
            if (!col->is_key)
                continue;
            const Pgcapture__Field *f = find_field(c->old, c->n_old, col->name);
            if (!f)
                f = find_field(c->new_, c->n_new_, col->name);
            if (!f)
                return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                                  "apply: %s of %s at %s seq %u has no value for key column %s",
                                  op_name(c->op), t->qname, lsn, pos.seq, col->name);
            if ((rc = set_param(ac, *np, col, f, err, err_len)) != PGC_OK)
                return rc;
            if (!first)
                sb_str(&ac->sql, " AND ");
            first = false;
            sb_ident(&ac->sql, col->name);
            sb_printf(&ac->sql, " = $%d", ++*np);
        }
        return PGC_OK;
    }
    if (t->replident != 'f')
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "apply: %s of %s at %s seq %u: the table has no primary key, no "
                          "replica identity index and is not REPLICA IDENTITY FULL, so its rows "
                          "cannot be located; add a primary key (or ALTER TABLE %s REPLICA "
                          "IDENTITY FULL) on the source, and on the replica too",
                          op_name(c->op), t->qname, lsn, pos.seq, t->qname);
    if (c->n_old == 0)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: %s of REPLICA IDENTITY FULL table %s at %s seq %u carries no "
                          "old row (is the source table REPLICA IDENTITY FULL too?)",
                          op_name(c->op), t->qname, lsn, pos.seq);
    /* Duplicated rows are indistinguishable: change exactly one of them, as the source did. */
    sb_str(&ac->key, "|f");
    sb_str(&ac->sql, " WHERE ctid = (SELECT ctid FROM ");
    sb_str(&ac->sql, t->qname);
    sb_str(&ac->sql, " WHERE ");
    for (size_t i = 0; i < c->n_old; i++) {
        const tbl_col *col = find_col(t, c->old[i]->name);
        if (!col)
            return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                              "apply: column %s of %s at %s seq %u does not exist on the replica",
                              c->old[i]->name, t->qname, lsn, pos.seq);
        if ((rc = set_param(ac, *np, col, c->old[i], err, err_len)) != PGC_OK)
            return rc;
        if (i > 0)
            sb_str(&ac->sql, " AND ");
        sb_ident(&ac->sql, col->name);
        sb_printf(&ac->sql, " IS NOT DISTINCT FROM $%d", ++*np);
        sb_str(&ac->key, ",");
        sb_str(&ac->key, col->name);
    }
    sb_str(&ac->sql, " LIMIT 1)");
    return PGC_OK;
}

static void insert_reserve(insert_batch *b, size_t n)
{
    if (n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n)
        cap *= 2;
    b->offs = xrealloc(b->offs, cap * sizeof *b->offs);
    b->lens = xrealloc(b->lens, cap * sizeof *b->lens);
    b->fmts = xrealloc(b->fmts, cap * sizeof *b->fmts);
    b->types = xrealloc(b->types, cap * sizeof *b->types);
    b->cap = cap;
}

/* Sends the pending multi-row INSERT, if any. */
static int insert_flush(apply_conn *ac, char *err, size_t err_len)
{
    insert_batch *b = &ac->ins;
    if (!b->t)
        return PGC_OK;
    int n = b->nrows * b->ncols;
    params_reserve(ac, (size_t)n);
    sb_reset(&ac->key);
    sb_str(&ac->key, b->key.p);
    sb_printf(&ac->key, "#%d", b->nrows);
    sb_reset(&ac->sql);
    sb_str(&ac->sql, "INSERT INTO ");
    sb_str(&ac->sql, b->t->qname);
    sb_str(&ac->sql, b->cols.p);
    sb_str(&ac->sql, " VALUES ");
    for (int r = 0, k = 1; r < b->nrows; r++) {
        sb_str(&ac->sql, r ? ", (" : "(");
        for (int i = 0; i < b->ncols; i++, k++)
            sb_printf(&ac->sql, i ? ", $%d" : "$%d", k);
        sb_str(&ac->sql, ")");
    }
    for (int i = 0; i < n; i++) {
        ac->types[i] = b->types[i];
        ac->vals[i] = b->offs[i] < 0 ? NULL : b->data.p + b->offs[i];
    }
    const char *name = NULL;
    int rc = stmt_get(ac, n, b->first, &name, err, err_len);
    if (rc != PGC_OK)
        return rc;
    /* stmt_get may have read results, never touching vals: they still point into data. */
    if (PQsendQueryPrepared(ac->conn, name, n, ac->vals, b->lens, b->fmts, 0) != 1)
        return fail_conn(ac, "cannot send an INSERT", err, err_len);
    if (b->nrows == 1)
        push(ac, PEND_ROWS, b->first, "INSERT of %s", b->t->qname);
    else
        push(ac, PEND_ROWS, b->first, "INSERT of %s (%d rows, the first)", b->t->qname, b->nrows);
    ac->q[(ac->q_head + ac->q_len - 1) % ac->q_cap].rows = (uint32_t)b->nrows;
    ac->stats.statements++;
    b->t = NULL;
    b->nrows = 0;
    return after_send(ac, err, err_len);
}

static int insert_add(apply_conn *ac, const tbl_meta *t, const Pgcapture__Change *c, log_pos pos,
                      char *err, size_t err_len)
{
    insert_batch *b = &ac->ins;
    char lsn[LSN_TEXT_LEN];
    lsn_format(pos.lsn, lsn);
    if (c->n_new_ == 0 || c->n_new_ > MAX_PARAMS)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: INSERT into %s at %s seq %u has %zu columns", t->qname, lsn,
                          pos.seq, c->n_new_);
    sb_reset(&b->rowkey);
    sb_printf(&b->rowkey, "%d|", (int)c->op);
    sb_str(&b->rowkey, t->qname);
    for (size_t i = 0; i < c->n_new_; i++) {
        if (!find_col(t, c->new_[i]->name))
            return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                              "apply: INSERT into %s at %s seq %u: column %s does not exist on "
                              "the replica (was a DDL statement missed?)",
                              t->qname, lsn, pos.seq, c->new_[i]->name);
        sb_str(&b->rowkey, ",");
        sb_str(&b->rowkey, c->new_[i]->name);
    }
    int ncols = (int)c->n_new_;
    int max_rows = MAX_PARAMS / ncols < INSERT_MAX_ROWS ? MAX_PARAMS / ncols : INSERT_MAX_ROWS;
    int rc;
    if (b->t && (b->t != t || b->nrows >= max_rows || strcmp(b->key.p, b->rowkey.p) != 0) &&
        (rc = insert_flush(ac, err, err_len)) != PGC_OK)
        return rc;
    if (!b->t) {
        b->t = t;
        b->ncols = ncols;
        b->nrows = 0;
        b->first = pos;
        sb_reset(&b->key);
        sb_str(&b->key, b->rowkey.p);
        sb_reset(&b->cols);
        sb_str(&b->cols, " (");
        for (int i = 0; i < ncols; i++) {
            if (i)
                sb_str(&b->cols, ", ");
            sb_ident(&b->cols, c->new_[i]->name);
        }
        sb_str(&b->cols, ")");
        sb_reset(&b->data);
    }
    params_reserve(ac, (size_t)ncols);
    copies_free(ac);
    insert_reserve(b, (size_t)(b->nrows + 1) * (size_t)ncols);
    size_t base = (size_t)b->nrows * (size_t)ncols;
    for (int i = 0; i < ncols; i++) {
        if ((rc = set_param(ac, i, find_col(t, c->new_[i]->name), c->new_[i], err, err_len)) !=
            PGC_OK) {
            copies_free(ac);
            return rc;
        }
        size_t k = base + (size_t)i;
        b->types[k] = ac->types[i];
        b->fmts[k] = ac->fmts[i];
        b->lens[k] = ac->lens[i];
        if (!ac->vals[i]) {
            b->offs[k] = -1;
            continue;
        }
        b->offs[k] = (long)b->data.len;
        /* Text values need their NUL; binary ones carry their length. */
        size_t len = ac->fmts[i] ? (size_t)ac->lens[i] : strlen(ac->vals[i]);
        sb_add(&b->data, ac->vals[i], len);
        b->data.len++; /* keep the NUL sb_add wrote */
    }
    copies_free(ac);
    b->nrows++;
    b->last = pos;
    return PGC_OK;
}

static int apply_dml_to(apply_conn *ac, tbl_meta *t, const Pgcapture__Change *c, log_pos pos,
                        char *err, size_t err_len);

static int apply_dml(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len)
{
    tbl_meta *t = NULL;
    int rc = table_lookup(ac, c->schema, c->table, &t, err, err_len);
    if (rc != PGC_OK || t->ngenerated == 0 || c->n_new_ == 0)
        return rc != PGC_OK ? rc : apply_dml_to(ac, t, c, pos, err, err_len);
    /* Generated columns (PostgreSQL 18 publishes them with publish_generated_columns) are
     * the replica's to compute: the new row goes without them. */
    Pgcapture__Field **kept = xrealloc(NULL, c->n_new_ * sizeof *kept);
    Pgcapture__Change without = *c;
    without.new_ = kept;
    without.n_new_ = 0;
    for (size_t i = 0; i < c->n_new_; i++) {
        const tbl_col *col = find_col(t, c->new_[i]->name);
        if (!col || !col->generated)
            kept[without.n_new_++] = c->new_[i];
    }
    rc = apply_dml_to(ac, t, &without, pos, err, err_len);
    free(kept);
    return rc;
}

static int apply_dml_to(apply_conn *ac, tbl_meta *t, const Pgcapture__Change *c, log_pos pos,
                        char *err, size_t err_len)
{
    int rc;
    if ((rc = pipeline_enter(ac, err, err_len)) != PGC_OK)
        return rc;
    char lsn[LSN_TEXT_LEN];
    lsn_format(pos.lsn, lsn);

    if (c->op == PGCAPTURE__CHANGE__OPERATION__TRUNCATE) {
        if ((rc = insert_flush(ac, err, err_len)) != PGC_OK)
            return rc;
        /* CASCADE: whatever references it was truncated on the source in the same command
         * (or the source would have refused), and arrives as its own TRUNCATE. */
        sb_reset(&ac->sql);
        sb_str(&ac->sql, "TRUNCATE ONLY ");
        sb_str(&ac->sql, t->qname);
        sb_str(&ac->sql, " CASCADE");
        if (PQsendQueryParams(ac->conn, ac->sql.p, 0, NULL, NULL, NULL, NULL, 0) != 1)
            return fail_conn(ac, "cannot send a TRUNCATE", err, err_len);
        push(ac, PEND_ANY, pos, "TRUNCATE of %s", t->qname);
        ac->stats.truncates++;
        return after_send(ac, err, err_len);
    }

    if (c->op == PGCAPTURE__CHANGE__OPERATION__INSERT)
        return insert_add(ac, t, c, pos, err, err_len);
    if ((rc = insert_flush(ac, err, err_len)) != PGC_OK)
        return rc;
    size_t total = c->n_new_ + c->n_old + (size_t)t->ncols;
    params_reserve(ac, total);
    copies_free(ac);
    sb_reset(&ac->sql);
    sb_reset(&ac->key);
    sb_printf(&ac->key, "%d|", (int)c->op);
    sb_str(&ac->key, t->qname);
    int np = 0, kind = PEND_ROWS;

    switch (c->op) {
    case PGCAPTURE__CHANGE__OPERATION__UPDATE:
        sb_str(&ac->sql, "UPDATE ");
        sb_str(&ac->sql, t->qname);
        sb_str(&ac->sql, " SET ");
        /* Only the columns sent: an unchanged TOAST value is absent and stays as it is. */
        for (size_t i = 0; i < c->n_new_; i++) {
            const tbl_col *col = find_col(t, c->new_[i]->name);
            if (!col)
                goto no_column;
            if ((rc = set_param(ac, np, col, c->new_[i], err, err_len)) != PGC_OK)
                return rc;
            if (i > 0)
                sb_str(&ac->sql, ", ");
            sb_ident(&ac->sql, col->name);
            sb_printf(&ac->sql, " = $%d", ++np);
            sb_str(&ac->key, ",");
            sb_str(&ac->key, col->name);
        }
        if (np == 0)
            return PGC_OK;
        if ((rc = build_where(ac, t, c, &np, pos, err, err_len)) != PGC_OK)
            goto fail;
        break;
    case PGCAPTURE__CHANGE__OPERATION__DELETE:
        sb_str(&ac->sql, "DELETE FROM ");
        sb_str(&ac->sql, t->qname);
        if ((rc = build_where(ac, t, c, &np, pos, err, err_len)) != PGC_OK)
            goto fail;
        break;
    default:
        return errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                          "apply: change of %s at %s seq %u has unknown operation %d", t->qname,
                          lsn, pos.seq, (int)c->op);
    }

    const char *name = NULL;
    if ((rc = stmt_get(ac, np, pos, &name, err, err_len)) != PGC_OK) {
        copies_free(ac);
        return rc;
    }
    int sent = PQsendQueryPrepared(ac->conn, name, np, ac->vals, ac->lens, ac->fmts, 0);
    copies_free(ac); /* libpq copied the values into its output buffer */
    if (sent != 1)
        return fail_conn(ac, "cannot send a statement", err, err_len);
    push(ac, kind, pos, "%s of %s", op_name(c->op), t->qname);
    ac->stats.statements++;
    return after_send(ac, err, err_len);

fail:
    copies_free(ac);
    return rc;
no_column:
    copies_free(ac);
    return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND,
                      "apply: %s of %s at %s seq %u: a column it sets does not exist on the "
                      "replica (was a DDL statement missed?)",
                      op_name(c->op), t->qname, lsn, pos.seq);
}

/* --- DDL ----------------------------------------------------------------------------------- */

/* A text value as a NUL-terminated copy (binary text is its bytes; binary jsonb is a
 * version byte 1 and then its text). */
static char *field_text(const Pgcapture__Field *f, bool jsonb)
{
    if (!f)
        return NULL;
    if (f->value_case == PGCAPTURE__FIELD__VALUE_TEXT)
        return xstrdup(f->text);
    if (f->value_case != PGCAPTURE__FIELD__VALUE_BINARY)
        return NULL;
    const uint8_t *p = f->binary.data;
    size_t n = f->binary.len;
    if (jsonb) {
        if (n < 1 || p[0] != 1)
            return NULL;
        p++;
        n--;
    }
    if (memchr(p, '\0', n))
        return NULL;
    char *s = xrealloc(NULL, n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Next word of `p` (letters, digits and '_'), after whitespace; its start and length. */
static const char *next_word(const char *p, size_t *len)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    const char *w = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    *len = (size_t)(p - w);
    return w;
}

static bool word_is(const char *w, size_t len, const char *kw)
{
    return len == strlen(kw) && strncasecmp(w, kw, len) == 0;
}

char *apply_ddl_without_concurrently(const char *query)
{
    size_t n;
    const char *w = next_word(query, &n);
    bool candidate = false;
    if (word_is(w, n, "create")) {
        w = next_word(w + n, &n);
        if (word_is(w, n, "unique"))
            w = next_word(w + n, &n);
        candidate = word_is(w, n, "index");
    } else if (word_is(w, n, "drop")) {
        w = next_word(w + n, &n);
        candidate = word_is(w, n, "index");
    } else if (word_is(w, n, "reindex")) {
        candidate = true;
    }
    if (!candidate)
        return NULL;
    /* CONCURRENTLY comes before the index name, after REINDEX's object kind or option list:
     * the first whole word CONCURRENTLY within the next few words is it. */
    const char *p = w + n;
    for (int i = 0; i < 4 && *p; i++) {
        while (*p && (isspace((unsigned char)*p) || *p == '(' || *p == ')' || *p == ','))
            p++;
        w = next_word(p, &n);
        if (n == 0)
            return NULL;
        if (word_is(w, n, "concurrently")) {
            size_t before = (size_t)(w - query), after = strlen(w + n);
            char *out = xrealloc(NULL, before + after + 1);
            memcpy(out, query, before);
            memcpy(out + before, w + n, after + 1);
            return out;
        }
        p = w + n;
    }
    return NULL;
}

static int apply_ddl(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len)
{
    char lsn[LSN_TEXT_LEN];
    lsn_format(pos.lsn, lsn);
    char *query = field_text(find_field(c->new_, c->n_new_, "query"), false);
    if (!query)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "apply: DDL row at %s seq %u has no readable query", lsn, pos.seq);
    char *activity = field_text(find_field(c->new_, c->n_new_, "activity"), true);
    int rc = pipeline_leave(ac, err, err_len);
    PGresult *r = NULL;
    bool skip = false;
    if (rc != PGC_OK)
        goto done;
    /* The statement runs in the search_path and as the user it ran with on the source, so
     * that unqualified names resolve and new objects get the same owner. When the
     * extension's library was not loaded as the DDL started, it could only record the path
     * of its own event trigger ("pg_catalog, pgcapture"): that value means unknown, and
     * the replica session's default is used. */
    {
        const char *vals[1] = {activity ? activity : "{}"};
        r = exec_sync(ac,
                      "SELECT set_config('search_path', CASE WHEN $1::jsonb->>'search_path' "
                      "IS NULL OR $1::jsonb->>'search_path' = 'pg_catalog, pgcapture' THEN "
                      "current_setting('search_path') ELSE $1::jsonb->>'search_path' END, true), "
                      "(SELECT set_config('role', rolname, true) FROM pg_roles WHERE "
                      "rolname = $1::jsonb->>'user' AND rolname <> current_user), "
                      "$1::jsonb->>'inexact', $1::jsonb->>'objects'",
                      1, vals, PGRES_TUPLES_OK, "cannot set the DDL's context", err, err_len, &rc);
        if (!r)
            goto done;
        /* The SQL install could not tell this DDL statement apart from the rest of its query
         * string: replaying the string could run DML the log also carries a second time. */
        if (!PQgetisnull(r, 0, 2)) {
            if (logpos_cmp(pos, ac->skip_ddl) == 0) {
                skip = true;
                goto restore;
            }
            rc = errbuf_set(err, err_len, PGC_ERR_UNSUPPORTED,
                            "apply: DDL at %s seq %u was logged as its whole query string "
                            "(%s), so replaying it could apply its DML twice. Fix: run the DDL "
                            "on the replica by hand, then restart the applier with --skip-ddl "
                            "%s:%u; to avoid this, send DDL one statement per query string "
                            "outside SQL functions, or use the pgcapture extension. Objects: "
                            "%.120s. Statement: %.200s",
                            lsn, pos.seq, PQgetvalue(r, 0, 2), lsn, pos.seq,
                            PQgetisnull(r, 0, 3) ? "unknown" : PQgetvalue(r, 0, 3), query);
            ac->broken = true;
            goto done;
        }
        PQclear(r);
    }
    char *rewritten = apply_ddl_without_concurrently(query);
    r = PQexec(ac->conn, rewritten ? rewritten : query);
    free(rewritten);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        trim_message(msg);
        rc = errbuf_set(err, err_len, status_of_result(ac->conn, r),
                        "apply: DDL at %s seq %u failed: %s (statement: %.300s)", lsn, pos.seq, msg,
                        query);
        ac->broken = true;
        goto done;
    }
restore:
    PQclear(r);
    {
        const char *vals[1] = {ac->search_path};
        r = exec_sync(ac,
                      "SELECT set_config('search_path', $1, true), set_config('role', 'none', "
                      "true)",
                      1, vals, PGRES_TUPLES_OK, "cannot restore the session after DDL", err,
                      err_len, &rc);
        if (!r)
            goto done;
        PQclear(r);
    }
    /* Columns, keys and types may have changed: re-read them, re-prepare everything. */
    caches_clear(ac);
    r = exec_sync(ac, "DEALLOCATE ALL", 0, NULL, PGRES_COMMAND_OK, "cannot deallocate", err,
                  err_len, &rc);
    ac->stats.ddl += skip ? 0 : 1;
done:
    PQclear(r);
    free(query);
    free(activity);
    return rc;
}

/* --- public -------------------------------------------------------------------------------- */

int apply_begin(apply_conn *ac, char *err, size_t err_len)
{
    if (ac->broken)
        return errbuf_set(err, err_len, PGC_ERR_STATE, "apply: connection unusable after an error");
    if (ac->in_tx)
        return PGC_OK;
    int rc = pipeline_enter(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (PQsendQueryParams(ac->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1)
        return fail_conn(ac, "cannot send BEGIN", err, err_len);
    push(ac, PEND_ANY, (log_pos){0, 0}, "BEGIN");
    ac->in_tx = true;
    return after_send(ac, err, err_len);
}

int apply_change(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err, size_t err_len)
{
    int rc = apply_begin(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (!c->schema || !c->table)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "apply: change without a table");
    if (!strcmp(c->schema, "pgcapture")) {
        /* DDL travels as rows of pgcapture.ddl_logs; the other tables of the extension are
         * each database's own bookkeeping. */
        if (!strcmp(c->table, "ddl_logs") && c->op == PGCAPTURE__CHANGE__OPERATION__INSERT)
            return apply_ddl(ac, c, pos, err, err_len);
        return PGC_OK;
    }
    return apply_dml(ac, c, pos, err, err_len);
}

static const char POSITION_SQL[] =
    "INSERT INTO pgcapture.sources AS s (id, commit, seq, commit_ts, mid, apply_ts) "
    "VALUES ($1, $2::pg_lsn, $3::int, "
    "  timestamptz '2000-01-01 00:00:00+00' + $4::bigint * interval '1 microsecond', "
    "  decode($5, 'hex'), clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET commit = EXCLUDED.commit, seq = EXCLUDED.seq, "
    "  commit_ts = EXCLUDED.commit_ts, mid = EXCLUDED.mid, apply_ts = EXCLUDED.apply_ts "
    "WHERE (s.commit, s.seq) <= (EXCLUDED.commit, EXCLUDED.seq) OR s.commit IS NULL";

int apply_commit(apply_conn *ac, const apply_position *p, char *err, size_t err_len)
{
    int rc = apply_begin(ac, err, err_len);
    if (rc != PGC_OK)
        return rc;
    char lsn[LSN_TEXT_LEN], seq[16], ts[24], mid[20];
    lsn_format(p->pos.lsn, lsn);
    snprintf(seq, sizeof seq, "%u", p->pos.seq);
    snprintf(ts, sizeof ts, "%lld", (long long)p->commit_time);
    snprintf(mid, sizeof mid, "%016llx", (unsigned long long)p->stream_seq);
    const char *vals[5] = {ac->source_id, lsn, seq, ts, p->stream_seq ? mid : NULL};
    if ((rc = pipeline_enter(ac, err, err_len)) != PGC_OK ||
        (rc = insert_flush(ac, err, err_len)) != PGC_OK)
        return rc;
    /* The WHERE makes a position that would move backwards update nothing: an error. */
    if (PQsendQueryParams(ac->conn, POSITION_SQL, 5, NULL, vals, NULL, NULL, 0) != 1)
        return fail_conn(ac, "cannot send the position", err, err_len);
    push(ac, PEND_ROWS, p->pos, "position update of pgcapture.sources");
    if (PQsendQueryParams(ac->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1)
        return fail_conn(ac, "cannot send COMMIT", err, err_len);
    push(ac, PEND_ANY, p->pos, "COMMIT");
    if ((rc = send_sync(ac, err, err_len)) != PGC_OK)
        return rc;
    if ((rc = read_results(ac, -1, err, err_len)) != PGC_OK)
        return rc;
    ac->in_tx = false;
    ac->stats.commits++;
    return PGC_OK;
}

bool apply_in_transaction(const apply_conn *ac)
{
    return ac->in_tx;
}

const apply_stats *apply_get_stats(const apply_conn *ac)
{
    return &ac->stats;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int apply_read_position(PGconn *conn, const char *source_id, apply_position *out, char *err,
                        size_t err_len)
{
    memset(out, 0, sizeof *out);
    const char *vals[1] = {source_id};
    PGresult *r = PQexecParams(
        conn,
        "SELECT commit::text, seq, encode(mid, 'hex'), "
        "  (extract(epoch FROM commit_ts - timestamptz '2000-01-01 00:00:00+00') * 1000000)"
        "::bigint FROM pgcapture.sources WHERE id = $1",
        1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        trim_message(msg);
        PQclear(r);
        return errbuf_set(err, err_len, PGC_ERR_CONN, "apply: cannot read pgcapture.sources: %s",
                          msg);
    }
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        if (!lsn_parse(PQgetvalue(r, 0, 0), &out->pos.lsn)) {
            PQclear(r);
            return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                              "apply: bad position in pgcapture.sources");
        }
        out->pos.seq = PQgetisnull(r, 0, 1) ? 0 : (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        const char *mid = PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2);
        /* Our own rows hold an 8-byte stream sequence; anything else is not ours. */
        if (strlen(mid) == 16) {
            uint64_t v = 0;
            bool ok = true;
            for (int i = 0; i < 16; i++) {
                int h = hexval(mid[i]);
                ok = ok && h >= 0;
                v = v << 4 | (uint64_t)(h & 15);
            }
            out->stream_seq = ok ? v : 0;
        }
        out->commit_time = PQgetisnull(r, 0, 3) ? 0 : strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        out->found = true;
    }
    PQclear(r);
    return PGC_OK;
}

int apply_open(const char *conninfo, const char *source_id, apply_conn **out, apply_position *pos,
               char *err, size_t err_len)
{
    apply_conn *ac = xrealloc(NULL, sizeof *ac);
    memset(ac, 0, sizeof *ac);
    ac->source_id = xstrdup(source_id);
    ac->conn = PQconnectdb(conninfo);
    int rc = PGC_OK;
    PGresult *r = NULL;
    if (PQstatus(ac->conn) != CONNECTION_OK) {
        rc = fail_conn(ac, "cannot connect to the replica", err, err_len);
        goto fail;
    }
    const char *vals[1] = {source_id};
    r = exec_sync(ac, "SELECT to_regclass('pgcapture.sources') IS NOT NULL", 0, NULL,
                  PGRES_TUPLES_OK, "cannot query the replica", err, err_len, &rc);
    if (!r)
        goto fail;
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "apply: the replica database has no pgcapture.sources: run CREATE "
                        "EXTENSION pgcapture there first");
        goto fail;
    }
    PQclear(r);
    r = exec_sync(ac,
                  "SELECT pg_try_advisory_lock(hashtext('pgcapture.replica'), hashtext($1)), "
                  "current_setting('search_path')",
                  1, vals, PGRES_TUPLES_OK, "cannot take the advisory lock", err, err_len, &rc);
    if (!r)
        goto fail;
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        rc = errbuf_set(err, err_len, PGC_ERR_BUSY,
                        "apply: another applier of source %s is running on this replica "
                        "(advisory lock held); only one may run at a time",
                        source_id);
        goto fail;
    }
    ac->search_path = xstrdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    /* Like a native subscription: user triggers and foreign-key checks ran on the source;
     * the replica's own event triggers must not log the replayed DDL again. */
    r = exec_sync(ac, "SET session_replication_role = replica", 0, NULL, PGRES_COMMAND_OK,
                  "cannot SET session_replication_role = replica (the applier needs a "
                  "superuser role)",
                  err, err_len, &rc);
    if (!r) {
        if (rc == PGC_ERR_STATE)
            rc = PGC_ERR_PERMISSION;
        goto fail;
    }
    PQclear(r);
    r = NULL;
    if ((rc = apply_read_position(ac->conn, source_id, pos, err, err_len)) != PGC_OK)
        goto fail;
    ac->broken = false;
    *out = ac;
    return PGC_OK;
fail:
    PQclear(r);
    apply_destroy(ac);
    return rc;
}

void apply_set_skip_ddl(apply_conn *ac, log_pos pos)
{
    ac->skip_ddl = pos;
}

void apply_destroy(apply_conn *ac)
{
    if (!ac)
        return;
    PQfinish(ac->conn); /* an open transaction rolls back with the session */
    caches_clear(ac);
    copies_free(ac);
    free(ac->q);
    free(ac->vals);
    free(ac->lens);
    free(ac->fmts);
    free(ac->types);
    free(ac->copies);
    free(ac->sql.p);
    free(ac->key.p);
    free(ac->ins.offs);
    free(ac->ins.lens);
    free(ac->ins.fmts);
    free(ac->ins.types);
    free(ac->ins.data.p);
    free(ac->ins.key.p);
    free(ac->ins.cols.p);
    free(ac->ins.rowkey.p);
    free(ac->search_path);
    free(ac->source_id);
    free(ac);
}
