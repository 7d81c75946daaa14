/* The jetstream modules' error line (see jserror.h). */
#include "jetstream/jserror.h"

#include "core/status.h"

int jserror_set(char *err, size_t err_len, int status, const char *what, natsStatus s,
                jsErrCode jerr)
{
    return errbuf_set(err, err_len, status, "jetstream: %s: %s (error code %d)", what,
                      natsStatus_GetText(s), (int)jerr);
}
