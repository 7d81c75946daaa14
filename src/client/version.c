/* Version and status descriptions of the linked libpgcapture, for consumers to check at
 * run time. */
#include "core/status.h"
#include "pgcapture.h"

const char *pgc_version_get(void)
{
    return PGC_VERSION_STRING;
}

const char *pgc_status_describe(pgc_status status)
{
    return status_str(status);
}

bool pgc_status_is_transient(pgc_status status)
{
    return status_is_transient(status);
}
