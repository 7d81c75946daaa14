/* gRPC reachability for health checks (see probe.h). */
#include "rpc/probe.h"

#include "core/clock.h"
#include "core/health.h"
#include "core/status.h"
#include "rpc/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct rpc_probe {
    rpc_channel *ch;
    const char *dependency;
    pthread_t thread;
    atomic_bool stopping;
};

static void *probe_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-probe");
    rpc_probe *p = arg;
    while (!atomic_load(&p->stopping)) {
        int st = rpc_channel_state(p->ch);
        if (st > 0)
            health_set(p->dependency, true, NULL);
        else if (st < 0)
            health_set(p->dependency, false, "cannot connect to the controller");
        for (int i = 0; i < 5 && !atomic_load(&p->stopping); i++)
            clock_sleep_ms(100);
    }
    return NULL;
}

int rpc_probe_start(const char *target, const rpc_channel_options *o, const char *dependency,
                    rpc_probe **out, char *err, size_t err_len)
{
    rpc_probe *p = calloc(1, sizeof *p);
    if (!p)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "probe: out of memory");
    p->dependency = dependency;
    atomic_init(&p->stopping, false);
    int rc = rpc_channel_create_opts(target, o, &p->ch, err, err_len);
    if (rc != PGC_OK) {
        free(p);
        return rc;
    }
    health_set(dependency, false, "connecting to the controller");
    if (pthread_create(&p->thread, NULL, probe_thread, p) != 0) {
        rpc_channel_destroy(p->ch);
        free(p);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "probe: cannot start its thread");
    }
    *out = p;
    return PGC_OK;
}

void rpc_probe_stop(rpc_probe *p)
{
    if (!p)
        return;
    atomic_store(&p->stopping, true);
    pthread_join(p->thread, NULL);
    rpc_channel_destroy(p->ch);
    free(p);
}
