/* libpgcapture: the C consumer API of pgcapture-c.
 *
 * Order of this header: version macros, status enum and error record, opaque types,
 * option structs, functions grouped by object, callbacks. The consumer API itself
 * arrives with the gateway; what is here is what a consumer can already rely on.
 * Compiles alone as C99 and as C++. */
#ifndef PGCAPTURE_H
#define PGCAPTURE_H

#ifdef __cplusplus
extern "C" {
#endif

#define PGC_VERSION_MAJOR 0
#define PGC_VERSION_MINOR 1
#define PGC_VERSION_PATCH 0
#define PGC_VERSION_STRING "0.1.0"

/* Operations of a change, numbered as on the wire (protocol.md, Change.op). */
typedef enum pgc_op {
    PGC_OP_INSERT = 0,
    PGC_OP_UPDATE = 1,
    PGC_OP_DELETE = 2,
    PGC_OP_TRUNCATE = 3 /* only sent to consumers that ask for it */
} pgc_op;

/* Returns PGC_VERSION_STRING of the library actually linked. */
const char *pgc_version(void);

#ifdef __cplusplus
}
#endif

#endif
