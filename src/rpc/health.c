/* grpc.health.v1.Health over rpc_server (see health.h). Watchers are kept in a list
 * under the module's mutex, each with a reference on its call; the update thread sends a
 * watcher the new status only when it differs from the last one it sent. */
#include "rpc/health.h"

#include "core/health.h"
#include "core/status.h"
#include "health.pb-c.h"
#include "rpc/methods.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;
#define ST_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define ST_NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define ST_SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

typedef struct watcher {
    struct watcher *next;
    rpc_call *call;
    bool known;          /* the service name is one we serve */
    serving_status last; /* last status sent */
} watcher;

struct rpc_health {
    char **services;
    size_t n_services;
    pthread_mutex_t mu; /* guards watchers */
    watcher *watchers;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
};

static bool service_known(const rpc_health *h, const char *name)
{
    if (!name || !*name)
        return true;
    for (size_t i = 0; i < h->n_services; i++)
        if (strcmp(h->services[i], name) == 0)
            return true;
    return false;
}

static serving_status current_status(const rpc_health *h)
{
    if (atomic_load(&h->stopping))
        return ST_NOT_SERVING;
    return health_ready(NULL, 0) ? ST_SERVING : ST_NOT_SERVING;
}

static int send_status(rpc_call *call, serving_status st)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = st;
    uint8_t buf[16];
    size_t n = grpc__health__v1__health_check_response__pack(&resp, buf);
    return rpc_call_send(call, buf, n);
}

/* The service name of a request, or NULL (malformed: the call is finished). */
static char *request_service(rpc_call *call, const uint8_t *data, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *req =
        grpc__health__v1__health_check_request__unpack(NULL, len, data);
    if (!req) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        return NULL;
    }
    char *name = strdup(req->service ? req->service : "");
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    if (!name)
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return name;
}

static void check_on_start(rpc_call *call)
{
    (void)call;
}

static void check_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    rpc_health *h = rpc_call_method_ctx(call);
    char *name = request_service(call, data, len);
    if (!name)
        return;
    if (!service_known(h, name)) {
        rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, "unknown service");
    } else {
        send_status(call, current_status(h));
        rpc_call_finish(call, GRPC_STATUS_OK, NULL);
    }
    free(name);
}

static void check_on_done(rpc_call *call, bool cancelled)
{
    (void)call;
    (void)cancelled;
}

static void watch_on_start(rpc_call *call)
{
    rpc_call_set_ctx(call, NULL);
}

static void watch_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    rpc_health *h = rpc_call_method_ctx(call);
    if (rpc_call_ctx(call))
        return; /* one request per Watch; later ones are ignored */
    char *name = request_service(call, data, len);
    if (!name)
        return;
    watcher *w = calloc(1, sizeof *w);
    if (!w) {
        free(name);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->call = call;
    w->known = service_known(h, name);
    free(name);
    rpc_call_ref(call);
    rpc_call_set_ctx(call, w);
    pthread_mutex_lock(&h->mu);
    w->last = w->known ? current_status(h) : ST_SERVICE_UNKNOWN;
    send_status(call, w->last);
    if (atomic_load(&h->stopping))
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "server stopping");
    w->next = h->watchers;
    h->watchers = w;
    pthread_mutex_unlock(&h->mu);
}

static void watch_on_done(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    rpc_health *h = rpc_call_method_ctx(call);
    watcher *w = rpc_call_ctx(call);
    if (!w)
        return;
    pthread_mutex_lock(&h->mu);
    for (watcher **pp = &h->watchers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    rpc_call_set_ctx(call, NULL);
    rpc_call_unref(call);
    free(w);
}

static void notify_locked(rpc_health *h)
{
    serving_status st = current_status(h);
    for (watcher *w = h->watchers; w; w = w->next)
        if (w->known && w->last != st && send_status(w->call, st) == 0)
            w->last = st;
}

static void *watch_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "pgc-health");
    rpc_health *h = arg;
    uint64_t seen = 0;
    while (!atomic_load(&h->stopping)) {
        seen = health_wait_change(seen, 200);
        pthread_mutex_lock(&h->mu);
        notify_locked(h);
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

int rpc_health_create(const char *const *services, size_t n_services, rpc_health **out, char *err,
                      size_t err_len)
{
    rpc_health *h = calloc(1, sizeof *h);
    if (!h || !(h->services = calloc(n_services ? n_services : 1, sizeof *h->services))) {
        free(h);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "health: out of memory");
    }
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->stopping, false);
    for (size_t i = 0; i < n_services; i++, h->n_services++)
        if (!(h->services[i] = strdup(services[i]))) {
            rpc_health_destroy(h);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "health: out of memory");
        }
    if (pthread_create(&h->thread, NULL, watch_thread, h) != 0) {
        rpc_health_destroy(h);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "health: cannot start its thread");
    }
    h->thread_started = true;
    *out = h;
    return PGC_OK;
}

void rpc_health_methods(rpc_health *h, rpc_method *m)
{
    m[0] = (rpc_method){RPC_METHOD_HEALTH_CHECK, h,    check_on_start,
                        check_on_message,        NULL, check_on_done};
    m[1] = (rpc_method){RPC_METHOD_HEALTH_WATCH, h,    watch_on_start,
                        watch_on_message,        NULL, watch_on_done};
}

void rpc_health_stop(rpc_health *h)
{
    if (!h || atomic_exchange(&h->stopping, true))
        return;
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    h->thread_started = false;
    pthread_mutex_lock(&h->mu);
    notify_locked(h);
    for (watcher *w = h->watchers; w; w = w->next)
        rpc_call_finish(w->call, GRPC_STATUS_UNAVAILABLE, "server stopping");
    pthread_mutex_unlock(&h->mu);
}

void rpc_health_destroy(rpc_health *h)
{
    if (!h)
        return;
    rpc_health_stop(h);
    for (size_t i = 0; i < h->n_services; i++)
        free(h->services[i]);
    free(h->services);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
