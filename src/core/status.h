/* Status codes shared by every module: one table (an X-macro) that also says which codes
 * are transient (worth a retry) and which are not. Library code returns these and fills
 * a caller-provided error buffer; it never prints. */
#ifndef PGC_CORE_STATUS_H
#define PGC_CORE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, value, transient, description) */
#define PGC_STATUS_TABLE(X)                                                                        \
    X(OK, 0, false, "ok")                                                                          \
    X(ERR_NOMEM, -1, false, "out of memory")                                                       \
    X(ERR_INVALID, -2, false, "invalid argument")                                                  \
    X(ERR_MALFORMED, -3, false, "malformed input")                                                 \
    X(ERR_TRUNCATED, -4, false, "truncated input")                                                 \
    X(ERR_TOO_LARGE, -5, false, "input too large")                                                 \
    X(ERR_UNSUPPORTED, -6, false, "unsupported")                                                   \
    X(ERR_NOT_FOUND, -7, false, "not found")                                                       \
    X(ERR_IO, -8, true, "i/o error")                                                               \
    X(ERR_CONN, -9, true, "connection lost")                                                       \
    X(ERR_TIMEOUT, -10, true, "timed out")                                                         \
    X(ERR_CONFIG, -11, false, "bad configuration")                                                 \
    X(ERR_PERMISSION, -12, false, "permission denied")                                             \
    X(ERR_BUSY, -13, false, "in use by another process")                                           \
    X(ERR_STATE, -14, false, "invalid state")

typedef enum pgc_status {
#define PGC_STATUS_ENUM(name, value, transient, desc) PGC_##name = value,
    PGC_STATUS_TABLE(PGC_STATUS_ENUM)
#undef PGC_STATUS_ENUM
} pgc_status;

/* Short description of a status ("truncated input"); never NULL. */
const char *status_str(int status);
/* True for statuses a retry with back-off may fix (connection lost, timeouts). */
bool status_is_transient(int status);

/* Formats into an error buffer and returns `status`, so call sites can write
 * `return errbuf_set(err, n, PGC_ERR_MALFORMED, "pgoutput: ...", ...)`. */
int errbuf_set(char *err, size_t err_len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
