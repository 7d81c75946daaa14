/* Who may do what on the controller (--acl FILE): INI, one [uri] section per consumer URI
 * and [*] for every URI, keys
 *     schedule = ...       Schedule, StopSchedule and SetScheduleCoolDown of the URI
 *     status = ...         Status of the URI
 *     pull = ...           PullDumpInfo of the URI (the gateways serving its dumps)
 *     dump_schemas = ...   schemas Schedule may name (core/schemalist.h; default: no
 *                          catalogs and not pgcapture's)
 * each a principal list (core/acl.h), repeatable. A principal may do what its URI's section
 * or [*] lists it for; a verb listed nowhere for a URI is refused. Pure parsing plus one
 * file read; no logging. */
#ifndef PGC_ROLES_CONTROLLER_ACL_H
#define PGC_ROLES_CONTROLLER_ACL_H

#include "core/acl.h"

#include <stddef.h>

typedef enum controller_verb {
    CONTROLLER_VERB_SCHEDULE = 0,
    CONTROLLER_VERB_STATUS,
    CONTROLLER_VERB_PULL,
    CONTROLLER_N_VERBS
} controller_verb;

typedef struct controller_acl controller_acl;

/* PGC_ERR_CONFIG with "line N: ..." for anything malformed, PGC_ERR_NOMEM. */
int controller_acl_parse(const char *text, size_t len, controller_acl **out, char *err,
                         size_t err_len);
/* Reads and parses a file: PGC_ERR_IO, PGC_ERR_TOO_LARGE, else as parse (with the path). */
int controller_acl_load(const char *path, controller_acl **out, char *err, size_t err_len);
void controller_acl_free(controller_acl *a); /* NULL is a no-op */

/* May `peer` do `verb` on `uri`? PGC_OK (always without an ACL, a NULL `a`), else
 * PGC_ERR_UNAUTHENTICATED when the peer brought no verified certificate and no token the
 * file knows, PGC_ERR_PERMISSION when it did. */
int controller_acl_check(const controller_acl *a, controller_verb verb, const char *uri,
                         const acl_peer *peer);
/* The dump_schemas of `uri` (its section's, else [*]'s), NULL for the default. */
const char *controller_acl_dump_schemas(const controller_acl *a, const char *uri);

#endif
