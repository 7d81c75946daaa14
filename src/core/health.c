/* Process-wide dependency readiness (see health.h): a small fixed table under one mutex,
 * with a condition variable for the gRPC Watch thread. */
#include "core/health.h"

#include "core/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct dep {
    const char *name;
    bool up;
    char detail[200];
} dep;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static dep deps[HEALTH_MAX_DEPS];
static size_t n_deps;
static uint64_t version = 1;

void health_set(const char *dependency, bool up, const char *detail)
{
    pthread_mutex_lock(&mu);
    dep *d = NULL;
    for (size_t i = 0; i < n_deps && !d; i++)
        if (strcmp(deps[i].name, dependency) == 0)
            d = &deps[i];
    if (!d && n_deps < HEALTH_MAX_DEPS) {
        d = &deps[n_deps++];
        d->name = dependency;
        d->up = !up; /* counts as a change */
    }
    if (d) {
        if (d->up != up) {
            version++;
            pthread_cond_broadcast(&cv);
        }
        d->up = up;
        snprintf(d->detail, sizeof d->detail, "%s", detail && !up ? detail : "");
    }
    pthread_mutex_unlock(&mu);
}

bool health_ready(char *why, size_t why_len)
{
    pthread_mutex_lock(&mu);
    bool ready = n_deps > 0;
    if (!ready && why_len)
        snprintf(why, why_len, "starting");
    for (size_t i = 0; i < n_deps && ready; i++) {
        if (deps[i].up)
            continue;
        ready = false;
        if (why_len)
            snprintf(why, why_len, "%s: %s", deps[i].name,
                     deps[i].detail[0] ? deps[i].detail : "unreachable");
    }
    pthread_mutex_unlock(&mu);
    return ready;
}

uint64_t health_version(void)
{
    pthread_mutex_lock(&mu);
    uint64_t v = version;
    pthread_mutex_unlock(&mu);
    return v;
}

uint64_t health_wait_change(uint64_t seen, int timeout_ms)
{
    struct timespec until;
    clock_deadline_ms(&until, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&mu);
    while (version == seen && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    uint64_t v = version;
    pthread_mutex_unlock(&mu);
    return v;
}

void health_reset(void)
{
    pthread_mutex_lock(&mu);
    n_deps = 0;
    version++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
