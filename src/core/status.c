/* Status descriptions and the error-buffer helper (see status.h). */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *status_str(int status)
{
    switch (status) {
#define PGC_STATUS_CASE(name, value, transient, desc)                                              \
    case value:                                                                                    \
        return desc;
        PGC_STATUS_TABLE(PGC_STATUS_CASE)
#undef PGC_STATUS_CASE
    }
    return "unknown status";
}

bool status_is_transient(int status)
{
    switch (status) {
#define PGC_STATUS_CASE(name, value, transient, desc)                                              \
    case value:                                                                                    \
        return transient;
        PGC_STATUS_TABLE(PGC_STATUS_CASE)
#undef PGC_STATUS_CASE
    }
    return false;
}

int errbuf_set(char *err, size_t err_len, int status, const char *fmt, ...)
{
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return status;
}
