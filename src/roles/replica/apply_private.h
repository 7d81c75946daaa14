/* What the files of the replica applier share; apply.h is its public face.
 *   apply.c           the public API: open, begin, change, commit, the stored position
 *   apply_pipeline.c  libpq: commands in pipeline mode and their results, synchronous
 *                     commands, errors and which of them are worth a retry
 *   apply_catalog.c   the replica's tables (columns, keys, replica identity) and types,
 *                     cached until DDL
 *   apply_stmt.c      prepared statements and their binary parameters
 *   apply_dml.c       INSERT (batched into multi-row statements), UPDATE, DELETE and
 *                     TRUNCATE
 *   apply_ddl.c       replay of pgcapture.ddl_logs rows
 * One thread uses an apply_conn at a time; each part owns its own sub-struct of it. */
#ifndef PGC_ROLES_REPLICA_APPLY_PRIVATE_H
#define PGC_ROLES_REPLICA_APPLY_PRIVATE_H

#include "codec/oidrewrite.h"
#include "core/strbuf.h"
#include "roles/replica/apply.h"

/* --- apply_pipeline.c ---------------------------------------------------------------------- */

/* What result a command sent in pipeline mode expects. */
typedef enum apply_expect {
    APPLY_EXPECT_SYNC,    /* a sync point */
    APPLY_EXPECT_ANY,     /* any success */
    APPLY_EXPECT_ROWS,    /* a statement that must affect exactly `rows` rows */
    APPLY_EXPECT_PREPARE, /* a prepared statement's creation */
} apply_expect;

#define APPLY_WHAT_LEN 192

typedef struct apply_pending {
    uint8_t expect; /* apply_expect */
    uint32_t rows;
    log_pos pos;
    char what[APPLY_WHAT_LEN]; /* names the change in an error: "UPDATE of "s"."t"" */
} apply_pending;

typedef struct apply_pipeline {
    bool active;      /* in libpq's pipeline mode */
    apply_pending *q; /* a ring: one entry per command whose results are unread */
    size_t head, len, cap;
    int since_sync, syncs_out;
} apply_pipeline;

/* Records what the command just sent expects (printf-style `what` names it in errors). */
void apply_pipeline_expect(apply_conn *ac, apply_expect expect, uint32_t rows, log_pos pos,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* To call after each command sent: sends a sync point every so often and reads results
 * so that at most two are outstanding. */
int apply_pipeline_sent(apply_conn *ac, char *err, size_t err_len);
int apply_pipeline_sync(apply_conn *ac, char *err, size_t err_len);
/* Reads results in order until `syncs` sync points were consumed, or all of them when
 * syncs < 0. The first error wins; later results are read and dropped. */
int apply_pipeline_read(apply_conn *ac, int syncs, char *err, size_t err_len);
int apply_pipeline_enter(apply_conn *ac, char *err, size_t err_len);
/* Reads every result and leaves pipeline mode, for synchronous commands. */
int apply_pipeline_leave(apply_conn *ac, char *err, size_t err_len);
void apply_pipeline_free(apply_conn *ac);
/* Runs `sql` outside pipeline mode; NULL (with *rc and err set, the connection marked
 * broken) unless its status is `want`. The caller clears the result. */
PGresult *apply_pipeline_exec_sync(apply_conn *ac, const char *sql, int n, const char *const *vals,
                                   ExecStatusType want, const char *what, char *err, size_t err_len,
                                   int *rc);
/* Marks the connection broken and returns PGC_ERR_CONN, with libpq's message. */
int apply_pipeline_fail_conn(apply_conn *ac, const char *what, char *err, size_t err_len);
/* PGC_ERR_CONN for server errors worth a retry, PGC_ERR_STATE for those that need a person. */
int apply_pipeline_status_of(PGconn *conn, const PGresult *r);
/* The error message of `r` (of the connection when r is NULL) on one line. */
void apply_pipeline_message(PGconn *conn, const PGresult *r, char *out, size_t out_len);

/* --- apply_catalog.c ----------------------------------------------------------------------- */

typedef struct apply_column {
    char *name;
    uint32_t type_oid;
    bool rewrite; /* its binary values embed type OIDs (arrays, records) */
    bool is_key;
    bool generated; /* GENERATED ALWAYS AS: the replica computes it */
} apply_column;

typedef struct apply_table {
    char *schema, *table;
    char *qname; /* "schema"."table" */
    int ncols, nkeys, ngenerated;
    apply_column *cols;
    char replident;
    struct apply_table *next;
} apply_table;

typedef struct apply_type {
    oidrewrite_type d;
    struct apply_type *next;
} apply_type;

#define APPLY_TABLE_BUCKETS 256
#define APPLY_TYPE_BUCKETS 64

typedef struct apply_catalog {
    apply_table *tables[APPLY_TABLE_BUCKETS];
    apply_type *types[APPLY_TYPE_BUCKETS];
} apply_catalog;

/* The cached table, or NULL when it must be loaded. */
const apply_table *apply_catalog_find(const apply_conn *ac, const char *schema, const char *table);
/* Reads a table's columns, keys and column types from the replica; outside pipeline mode.
 * PGC_ERR_NOT_FOUND when it does not exist there. */
int apply_catalog_load(apply_conn *ac, const char *schema, const char *table,
                       const apply_table **out, char *err, size_t err_len);
const apply_column *apply_catalog_column(const apply_table *t, const char *name);
/* The oidrewrite_lookup over the cached types; `ctx` is the apply_conn. */
const oidrewrite_type *apply_catalog_type(void *ctx, uint32_t oid);
/* Forgets every table and type: DDL may have changed any of them. */
void apply_catalog_clear(apply_conn *ac);

/* --- apply_stmt.c -------------------------------------------------------------------------- */

typedef struct apply_stmt {
    char *key;
    char name[32];
    struct apply_stmt *next;
} apply_stmt;

#define APPLY_STMT_BUCKETS 1024

/* The statement being built (its text and its cache key), its parameters, and the
 * statements prepared so far. */
typedef struct apply_stmts {
    strbuf sql, key;
    const char **vals;
    int *lens, *fmts;
    Oid *types;
    uint8_t **copies; /* values with rewritten type OIDs, freed by apply_stmt_release */
    size_t cap, ncopies;
    apply_stmt *prepared[APPLY_STMT_BUCKETS];
    uint64_t counter;
} apply_stmts;

/* Makes room for n parameters. */
void apply_stmt_reserve(apply_conn *ac, size_t n);
/* Sets parameter i from a field, typed as the replica's column `col`. */
int apply_stmt_set_param(apply_conn *ac, int i, const apply_column *col, const Pgcapture__Field *f,
                         char *err, size_t err_len);
/* Frees the parameters' rewritten copies (once libpq has copied the values). */
void apply_stmt_release(apply_conn *ac);
/* The name of the statement whose text is in stmt.sql and cache key in stmt.key; prepared
 * (in the pipeline) on first use. */
int apply_stmt_prepare(apply_conn *ac, int nparams, log_pos pos, const char **name, char *err,
                       size_t err_len);
/* Forgets the prepared statements (after DEALLOCATE ALL). */
void apply_stmt_forget_all(apply_conn *ac);
void apply_stmt_free(apply_conn *ac);

/* --- apply_dml.c --------------------------------------------------------------------------- */

/* One parameter of a held INSERT; its value is at `off` in the batch's data. */
typedef struct apply_insert_param {
    long off; /* -1 for NULL */
    int len, fmt;
    Oid type;
} apply_insert_param;

/* Consecutive INSERTs into one table with one column set, held to be sent as one multi-row
 * INSERT. Values are copied (the Change they come from is freed once applied). */
typedef struct apply_insert_batch {
    const apply_table *t; /* NULL when empty */
    strbuf key;           /* statement key of one row */
    strbuf cols;          /* the column list, "(...)" */
    int ncols, nrows;
    log_pos first, last;
    apply_insert_param *params; /* nrows * ncols */
    size_t cap;
    strbuf data;
    strbuf rowkey; /* scratch: the key of the row being added */
} apply_insert_batch;

/* Applies an INSERT, UPDATE, DELETE or TRUNCATE. */
int apply_dml_change(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len);
/* Sends the INSERTs held back for a multi-row statement; in pipeline mode. */
int apply_dml_flush(apply_conn *ac, char *err, size_t err_len);
void apply_dml_free(apply_conn *ac);

/* --- apply_ddl.c --------------------------------------------------------------------------- */

/* Replays the DDL statement of a pgcapture.ddl_logs row in its user's search_path and role. */
int apply_ddl_replay(apply_conn *ac, const Pgcapture__Change *c, log_pos pos, char *err,
                     size_t err_len);
/* DDL that cannot run inside a transaction block but can without its CONCURRENTLY
 * (CREATE [UNIQUE] INDEX, DROP INDEX, REINDEX): returns a malloc'ed copy of `query` with
 * that word removed, or NULL when the statement is not one of those. A replica applies it
 * inside its transaction, where a plain index build is the only way. */
char *apply_ddl_without_concurrently(const char *query);

/* --- apply.c ------------------------------------------------------------------------------- */

struct apply_conn {
    PGconn *conn;
    char *source_id;
    char *search_path; /* the session's own, restored after each DDL */
    bool in_tx, broken;
    apply_pipeline pipe;
    apply_catalog cat;
    apply_stmts stmt;
    apply_insert_batch ins;
    apply_stats stats;
    log_pos skip_ddl; /* an inexact DDL row the operator applied by hand; lsn 0: none */
};

/* The field called `name` of a change's row, or NULL. */
const Pgcapture__Field *apply_find_field(Pgcapture__Field **fields, size_t n, const char *name);

#endif
