/* NATS reachability for health checks (see natsprobe.h). */
#include "jetstream/natsprobe.h"

#include "core/health.h"
#include "core/status.h"
#include "jetstream/jsauth.h"

#include <nats/nats.h>
#include <stdlib.h>

struct natsprobe {
    natsConnection *nc;
};

/* The events' closure is the dependency's name, a string literal, not the probe: libnats
 * runs them on its callback thread, where the disconnect that natsprobe_stop's close
 * posts can run after the probe is freed (seen under ASan in a gateway's shutdown). */
static void on_up(natsConnection *nc, void *arg)
{
    (void)nc;
    health_set(arg, true, NULL);
}

static void on_down(natsConnection *nc, void *arg)
{
    (void)nc;
    health_set(arg, false, "disconnected from NATS");
}

int natsprobe_start(const char *url, const char *dependency, natsprobe **out, char *err,
                    size_t err_len)
{
    natsprobe *p = calloc(1, sizeof *p);
    if (!p)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "natsprobe: out of memory");
    void *name = (void *)dependency;
    health_set(dependency, false, "connecting to NATS");
    natsOptions *opts = NULL;
    natsStatus ns;
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetName(opts, "pgcapture-health")) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetReconnectWait(opts, 500)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK ||
        (ns = natsOptions_SetDisconnectedCB(opts, on_down, name)) != NATS_OK ||
        (ns = natsOptions_SetReconnectedCB(opts, on_up, name)) != NATS_OK ||
        (ns = natsOptions_SetRetryOnFailedConnect(opts, true, on_up, name)) != NATS_OK) {
        natsOptions_Destroy(opts);
        free(p);
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "natsprobe: %s: %s", url,
                          natsStatus_GetText(ns));
    }
    ns = jsauth_connect(&p->nc, opts, url);
    natsOptions_Destroy(opts);
    if (ns == NATS_OK) {
        health_set(dependency, true, NULL);
    } else if (ns != NATS_NOT_YET_CONNECTED) {
        natsConnection_Destroy(p->nc);
        free(p);
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "natsprobe: %s: %s", url,
                          natsStatus_GetText(ns));
    }
    *out = p;
    return PGC_OK;
}

void natsprobe_stop(natsprobe *p)
{
    if (!p)
        return;
    natsConnection_Destroy(p->nc);
    free(p);
}
