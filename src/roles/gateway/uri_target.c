/* The setters of pgc_uri_target (pgcapture/gateway.h): copies into the target's buffers,
 * refusing what does not fit rather than cutting it (a cut name would read another
 * source's log). */
#include "roles/gateway/uri_target.h"

#include "core/names.h"
#include "core/schemalist.h"
#include "core/status.h"

#include <string.h>

_Static_assert(PGC_GATEWAY_NAME_MAX == NAMES_TOKEN_MAX_LEN + 1,
               "a target holds exactly the longest valid source or durable name");

static pgc_status set(char *dst, size_t cap, const char *what, const char *value, char *err,
                      size_t err_len)
{
    if (!value)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: %s is NULL", what);
    size_t n = strlen(value);
    if (n >= cap)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                          "uri target: %s of %zu bytes, at most %zu", what, n, cap - 1);
    memcpy(dst, value, n + 1);
    return PGC_OK;
}

pgc_status pgc_uri_target_set_source(pgc_uri_target *t, const char *value, char *err,
                                     size_t err_len)
{
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: NULL target");
    return set(t->source, sizeof t->source, "source", value, err, err_len);
}

pgc_status pgc_uri_target_set_durable(pgc_uri_target *t, const char *value, char *err,
                                      size_t err_len)
{
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: NULL target");
    return set(t->durable, sizeof t->durable, "durable", value, err, err_len);
}

pgc_status pgc_uri_target_set_nats_url(pgc_uri_target *t, const char *value, char *err,
                                       size_t err_len)
{
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: NULL target");
    return set(t->nats_url, sizeof t->nats_url, "nats_url", value, err, err_len);
}

pgc_status pgc_uri_target_set_replica(pgc_uri_target *t, const char *value, char *err,
                                      size_t err_len)
{
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: NULL target");
    return set(t->replica, sizeof t->replica, "replica", value, err, err_len);
}

pgc_status pgc_uri_target_set_dump_schemas(pgc_uri_target *t, const char *value, char *err,
                                           size_t err_len)
{
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri target: NULL target");
    if (value && *value && schemalist_check(value, err, err_len) != PGC_OK)
        return PGC_ERR_INVALID;
    return set(t->dump_schemas, sizeof t->dump_schemas, "dump_schemas", value, err, err_len);
}
