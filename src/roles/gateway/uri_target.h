/* What a resolver fills for a URI (pgc_uri_target of pgcapture/gateway.h): buffers inside
 * the gateway's stream, written only through pgc_uri_target_set_*, so that a resolver never
 * has to keep strings alive for the gateway. Not a public header. */
#ifndef PGC_ROLES_GATEWAY_URI_TARGET_H
#define PGC_ROLES_GATEWAY_URI_TARGET_H

#include "pgcapture/gateway.h"

struct pgc_uri_target {
    char nats_url[PGC_GATEWAY_URL_MAX];         /* empty: the gateway's default */
    char source[PGC_GATEWAY_NAME_MAX];          /* required */
    char durable[PGC_GATEWAY_NAME_MAX];         /* empty: derived from the URI */
    char replica[PGC_GATEWAY_CONNINFO_MAX];     /* empty: no dumps */
    char dump_schemas[PGC_GATEWAY_SCHEMAS_MAX]; /* empty: the default (core/schemalist.h) */
};

#endif
