/* Version of the linked libpgcapture, for consumers to check at run time. */
#include "pgcapture.h"

const char *pgc_version(void)
{
    return PGC_VERSION_STRING;
}
