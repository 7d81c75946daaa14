/* Regular expressions from remote peers (a consumer's TableRegex), with RE2: matching
 * takes time linear in the text and never backtracks, and compiling is refused once the
 * program would pass SAFEREGEX_MAX_MEM_BYTES, so a hostile pattern costs bounded memory
 * (RE2 also caps every counted repetition, nested ones multiplied, at 1000). Compiling can
 * still take up to a few hundred milliseconds for the worst patterns under the cap: do it
 * on a thread that may block, never on a shared event loop. Syntax: RE2's (Go's regexp
 * syntax), which covers POSIX extended expressions without back-references.
 *
 * Threading: a compiled saferegex may be matched from several threads at once. */
#ifndef PGC_CORE_SAFEREGEX_H
#define PGC_CORE_SAFEREGEX_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAFEREGEX_MAX_MEM_BYTES (256 * 1024)

typedef struct saferegex saferegex;

/* Compiles `pattern` (len bytes, NUL bytes refused). PGC_ERR_INVALID with RE2's reason for a
 * malformed pattern or one over the limits; PGC_ERR_NOMEM. */
int saferegex_compile(const char *pattern, size_t len, saferegex **out, char *err, size_t err_len);
/* True when the pattern matches anywhere in text (a search, as POSIX regexec does). */
bool saferegex_search(const saferegex *re, const char *text, size_t len);
void saferegex_free(saferegex *re); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif

#endif
