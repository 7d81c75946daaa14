/* The change model behind pgc_change: a thin view over a received change (a
 * CaptureMessage's, or one item's of a batch), so a change costs no copy. Internal
 * constructors for the consumer and the gateway tests. */
#ifndef PGC_CLIENT_CHANGE_H
#define PGC_CLIENT_CHANGE_H

#include "pgcapture.h"
#include "pgcapture.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

struct pgc_change {
    const Pgcapture__Checkpoint *checkpoint; /* NULL when the message had none */
    const Pgcapture__Change *change;
    Pgcapture__CaptureMessage *owned; /* freed by pgc_change_destroy, or NULL */
};

/* Checks a received change (present, a known operation) and points `c` at it and its
 * checkpoint without copying: both must outlive `c`. PGC_ERR_INVALID / PGC_ERR_MALFORMED
 * with a message otherwise. */
int change_view(pgc_change *c, const Pgcapture__Checkpoint *checkpoint,
                const Pgcapture__Change *change, char *err, size_t err_len);

/* Like change_view, but allocates the change and takes ownership of `msg` (an unpacked
 * message, freed with the change, also on error). */
int change_wrap(Pgcapture__CaptureMessage *msg, pgc_change **out, char *err, size_t err_len);

#endif
