/* The error line every jetstream module writes for a failed libnats call:
 * "jetstream: WHAT: <libnats text> (error code N)". Private to src/jetstream. */
#ifndef PGC_JETSTREAM_JSERROR_H
#define PGC_JETSTREAM_JSERROR_H

#include <nats/nats.h>
#include <stddef.h>

/* Fills err and returns `status`; jerr is 0 when the call has no JetStream error code. */
int jserror_set(char *err, size_t err_len, int status, const char *what, natsStatus s,
                jsErrCode jerr);

#endif
