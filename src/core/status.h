/* Status codes shared by every module: one table (an X-macro) that also says which codes
 * are transient (worth a retry) and which are not. Library code returns these and fills
 * a caller-provided error buffer; it never prints. */
#ifndef PGC_CORE_STATUS_H
#define PGC_CORE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* The table (PGC_STATUS_TABLE) and enum pgc_status are public: they live in pgcapture.h so
 * that libpgcapture's users and the daemons share one set of values. */
#include "pgcapture.h"

/* Short description of a status ("truncated input"); never NULL. */
const char *status_str(int status);
/* True for statuses a retry with back-off may fix (connection lost, timeouts). */
bool status_is_transient(int status);

/* Formats into an error buffer and returns `status`, so call sites can write
 * `return errbuf_set(err, n, PGC_ERR_MALFORMED, "pgoutput: ...", ...)`. */
int errbuf_set(char *err, size_t err_len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
