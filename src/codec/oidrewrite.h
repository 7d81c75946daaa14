/* Rewrites the type OIDs that PostgreSQL's binary send formats embed in a value: an array
 * carries its element type's OID, a record each field's type OID. A value taken on the
 * source and bound to a replica's column must carry the replica's OIDs, which differ for
 * user types (enums, composites, domains over them): array_recv and record_recv check them.
 * Pure: no I/O, no allocation; a bounds-checked cursor walks the value and the first
 * failure is recorded with the field it concerns. */
#ifndef PGC_CODEC_OIDREWRITE_H
#define PGC_CODEC_OIDREWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Arrays and records nested deeper than this are refused (a replica type that deep is
 * refused when it is read from the catalog too). */
#define OIDREWRITE_MAX_DEPTH 8
/* PostgreSQL's MAXDIM. */
#define OIDREWRITE_MAX_DIMS 6

/* What the binary formats of one replica type embed. */
typedef struct oidrewrite_type {
    uint32_t oid;
    char kind;     /* 'a' array, 'c' composite, 'b' anything else (nothing to rewrite) */
    uint32_t elem; /* array: its element type */
    int natts;     /* composite: its attributes' types, in order */
    uint32_t *atts;
} oidrewrite_type;

/* Describes replica type `oid`, or NULL when it is unknown (then it has nothing to
 * rewrite). The result must stay valid until oidrewrite_value returns. */
typedef const oidrewrite_type *(*oidrewrite_lookup)(void *ctx, uint32_t oid);

/* True when values of type `t` embed type OIDs (t may be NULL). */
bool oidrewrite_needed(const oidrewrite_type *t);

/* Rewrites in place the OIDs embedded in the binary value `v` of replica type `oid`, and in
 * the arrays and records nested in it, as `lookup` describes the types. Record fields past
 * the attributes `lookup` gives keep their own OIDs. PGC_OK; PGC_ERR_TRUNCATED or
 * PGC_ERR_MALFORMED when the value is not a valid one of its type (it is then left partly
 * rewritten); PGC_ERR_UNSUPPORTED when it nests deeper than OIDREWRITE_MAX_DEPTH. */
int oidrewrite_value(uint8_t *v, size_t len, uint32_t oid, oidrewrite_lookup lookup, void *ctx,
                     char *err, size_t err_len);

#endif
