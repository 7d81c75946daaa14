/* The embedded test gateway: see gwfixture.h. */
#include "gwfixture.h"

#include "runner.h"
#include "fixtures.h"

#include <stdio.h>
#include <string.h>

static pgc_status resolve(void *arg, const char *uri, const pgc_peer *peer, pgc_uri_target *out,
                          char *err, size_t err_len)
{
    (void)peer;
    (void)arg;
    char durable[PGC_GATEWAY_NAME_MAX + 2];
    if (strncmp(uri, "u_", 2) != 0 || strlen(uri) >= PGC_GATEWAY_NAME_MAX) {
        snprintf(err, err_len, "unknown uri %s", uri);
        return PGC_ERR_NOT_FOUND;
    }
    snprintf(durable, sizeof durable, "d_%s", uri + 2);
    pgc_status rc = pgc_uri_target_set_source(out, uri + 2, err, err_len);
    return rc == PGC_OK ? pgc_uri_target_set_durable(out, durable, err, err_len) : rc;
}

void gwfixture_start(gwfixture *g)
{
    pgc_gateway_options o;
    pgc_gateway_options_init(&o);
    o.nats_url = harness_nats_url();
    o.retry_delay_ms = 200;
    pgc_resolver r = {NULL, resolve};
    char err[512], addr[64];
    if (pgc_gateway_create(&o, &r, &g->gw, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "pgc_gateway_create: %s", err);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g->port);
    if (pgc_gateway_serve(g->gw, addr, &g->port, err, sizeof err) != PGC_OK) {
        pgc_gateway_destroy(g->gw);
        g->gw = NULL;
        unit_fail(__FILE__, __LINE__, "pgc_gateway_serve on %s: %s", addr, err);
    }
    snprintf(g->addr, sizeof g->addr, "127.0.0.1:%d", g->port);
}

void gwfixture_stop(gwfixture *g, int grace_ms)
{
    pgc_gateway_stop(g->gw, grace_ms);
    pgc_gateway_destroy(g->gw);
    g->gw = NULL;
}
