/* The controller role (see controller.h).
 *
 * Threading: gRPC callbacks run on the server's completion-queue threads (each call's on
 * one of them) and must not block, so they only copy each request into an inbox (mutex + condition
 * variable) with a reference on its call. The controller thread (the one in controller_run) owns
 * the queue, the key-value bucket and every pull stream's state: it drains the inbox in order,
 * writes the bucket (blocking round trips to NATS), answers unary calls, hands items to idle
 * streams and sleeps until the next event or the next back-off/cool-down expiry. rpc_call_send and
 * rpc_call_finish are thread-safe, so it answers directly.
 *
 * Durability: an item's key is written before Schedule answers and deleted only when the
 * item is acked (or dropped by StopSchedule), so whatever was scheduled and not acked is
 * handed out again after a restart, outstanding items included. */
#include "roles/controller/controller_private.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/status.h"
#include "jetstream/natsprobe.h"
#include "rpc/health.h"
#include "rpc/methods.h"

#include <grpc/status.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_WAIT_MS 200
#define CONNECT_RETRY_MS 1000
#define RETRY_LOG_INTERVAL_MS 30000

static volatile sig_atomic_t stop_requested;

void controller_request_stop(void)
{
    stop_requested = 1;
}

/* ---- completion-queue thread: copy into the inbox ----------------------------------- */

/* Appends an event to the inbox. Caller holds c->mu. */
static void append_locked(controller *c, controller_event *e)
{
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->queued++;
    pthread_cond_signal(&c->cv);
}

/* A request message or half-close into the inbox. A full inbox or no memory ends the call
 * with RESOURCE_EXHAUSTED: a flood of requests is refused, never queued without bound.
 * (A refused pull stream's item goes back to its queue when the stream's end is handled.) */
static void push_event(controller *c, controller_event_kind kind, controller_method method,
                       rpc_call *call, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&c->mu);
    bool full = c->cfg->max_queued > 0 && c->queued >= (size_t)c->cfg->max_queued;
    pthread_mutex_unlock(&c->mu);
    controller_event *e = full ? NULL : calloc(1, sizeof *e);
    if (e && len && !(e->data = malloc(len))) {
        free(e);
        e = NULL;
    }
    if (!e) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        full ? "controller busy: too many requests waiting"
                             : "controller out of memory");
        return;
    }
    e->kind = kind;
    e->method = method;
    e->call = call;
    rpc_call_ref(call);
    if (len)
        memcpy(e->data, data, len);
    e->len = len;
    pthread_mutex_lock(&c->mu);
    append_locked(c, e);
    pthread_mutex_unlock(&c->mu);
}

static void pull_on_start(rpc_call *call)
{
    controller *c = rpc_call_method_ctx(call);
    pull_stream *ps = calloc(1, sizeof *ps);
    if (!ps || !(ps->done_event = calloc(1, sizeof *ps->done_event))) {
        free(ps);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "controller out of memory");
        return;
    }
    pthread_mutex_lock(&c->mu);
    ps->id = ++c->next_stream_id;
    pthread_mutex_unlock(&c->mu);
    ps->call = call;
    rpc_call_ref(call);
    rpc_call_set_ctx(call, ps);
}

static void pull_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    push_event(rpc_call_method_ctx(call), CONTROLLER_EV_MESSAGE, CONTROLLER_PULL, call, data, len);
}

static void pull_on_half_close(rpc_call *call)
{
    push_event(rpc_call_method_ctx(call), CONTROLLER_EV_HALF_CLOSE, CONTROLLER_PULL, call, NULL, 0);
}

static void pull_on_done(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    pull_stream *ps = rpc_call_ctx(call);
    if (!ps)
        return;
    controller *c = rpc_call_method_ctx(call);
    controller_event *e = ps->done_event;
    ps->done_event = NULL;
    e->kind = CONTROLLER_EV_DONE;
    e->method = CONTROLLER_PULL;
    e->call = call;
    rpc_call_ref(call);
    pthread_mutex_lock(&c->mu);
    append_locked(c, e);
    pthread_mutex_unlock(&c->mu);
}

#define UNARY_HANDLER(fn, kind)                                                                    \
    static void fn(rpc_call *call, const uint8_t *data, size_t len)                                \
    {                                                                                              \
        push_event(rpc_call_method_ctx(call), CONTROLLER_EV_MESSAGE, kind, call, data, len);       \
    }
UNARY_HANDLER(schedule_on_message, CONTROLLER_SCHEDULE)
UNARY_HANDLER(stop_on_message, CONTROLLER_STOP)
UNARY_HANDLER(cooldown_on_message, CONTROLLER_COOLDOWN)
UNARY_HANDLER(status_on_message, CONTROLLER_STATUS)

static void unary_on_done(rpc_call *call, bool cancelled)
{
    (void)call, (void)cancelled;
}

/* ---- controller thread ----------------------------------------------------------------- */

static void handle_event(controller *c, const controller_event *e)
{
    switch (e->method) {
    case CONTROLLER_SCHEDULE:
        controller_requests_schedule(c, e->call, e->data, e->len);
        break;
    case CONTROLLER_STOP:
        controller_requests_stop(c, e->call, e->data, e->len);
        break;
    case CONTROLLER_COOLDOWN:
        controller_requests_cooldown(c, e->call, e->data, e->len);
        break;
    case CONTROLLER_STATUS:
        controller_requests_status(c, e->call, e->data, e->len);
        break;
    case CONTROLLER_PULL:
        controller_requests_pull(c, e);
        break;
    }
}

/* ---- start-up: open the bucket ---------------------------------------------------------- */

static int open_bucket(controller *c)
{
    char err[CONTROLLER_ERR_LEN];
    int64_t last_log = 0;
    while (!stop_requested) {
        int rc = jskv_open(c->cfg->nats_url, c->cfg->bucket, (int)c->cfg->replicas, &c->kv, err,
                           sizeof err);
        if (rc == PGC_OK) {
            int have = jskv_replicas(c->kv);
            if (have > 0 && have != (int)c->cfg->replicas)
                log_warn("the key-value bucket has another replica count than --replicas; "
                         "it keeps its own (scale its stream KV_<bucket> to change it)",
                         "bucket=%s replicas=%d want=%lld", c->cfg->bucket, have,
                         (long long)c->cfg->replicas);
            return 0;
        }
        int64_t now = clock_mono_ms();
        if (last_log == 0 || now - last_log >= RETRY_LOG_INTERVAL_MS) {
            log_warn("cannot open the key-value bucket; retrying", "bucket=%s error=\"%s\"",
                     c->cfg->bucket, err);
            last_log = now;
        }
        clock_sleep_ms(CONNECT_RETRY_MS);
    }
    return -1;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Handles, in order, and frees the events of a batch taken from the inbox. */
static void handle_batch(controller *c, controller_event *batch)
{
    while (batch) {
        controller_event *e = batch;
        batch = e->next;
        handle_event(c, e);
        rpc_call_unref(e->call);
        free(e->data);
        free(e);
    }
}

static void drain_inbox(controller *c)
{
    pthread_mutex_lock(&c->mu);
    controller_event *batch = c->head;
    c->head = c->tail = NULL;
    c->queued = 0;
    pthread_mutex_unlock(&c->mu);
    handle_batch(c, batch);
}

/* The queue gauges of every URI, after each round of events. */
static void update_metrics(controller *c)
{
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats st;
        dump_queue_uri_stats_at(c->q, i, &st);
        metric_set(metrics_get(METRIC_CONTROLLER_PENDING, st.uri), (double)st.pending);
        metric_set(metrics_get(METRIC_CONTROLLER_OUTSTANDING, st.uri), (double)st.outstanding);
        /* The counters exist at 0 from the URI's first item on. */
        metrics_get(METRIC_CONTROLLER_DONE, st.uri);
        metrics_get(METRIC_CONTROLLER_REQUEUES, st.uri);
        metrics_get(METRIC_CONTROLLER_COOLDOWNS, st.uri);
    }
}

static void run_loop(controller *c)
{
    int64_t wake = INT64_MAX;
    while (!stop_requested) {
        pthread_mutex_lock(&c->mu);
        if (!c->head) {
            int64_t now = clock_mono_ms();
            int64_t wait = wake == INT64_MAX ? IDLE_WAIT_MS : wake - now;
            if (wait > IDLE_WAIT_MS)
                wait = IDLE_WAIT_MS;
            if (wait > 0) {
                struct timespec ts;
                clock_deadline_mono_ms(&ts, wait);
                pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            }
        }
        controller_event *batch = c->head;
        c->head = c->tail = NULL;
        c->queued = 0;
        pthread_mutex_unlock(&c->mu);
        handle_batch(c, batch);
        wake = dump_queue_dispatch(c->q, clock_mono_ms(), controller_requests_dispatch, c);
        update_metrics(c);
    }
}

int controller_run(const controller_config *cfg)
{
    controller c;
    char err[CONTROLLER_ERR_LEN];
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    pthread_mutex_init(&c.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c.cv, &ca);
    pthread_condattr_destroy(&ca);
    int exit_code = 1;

    if (cfg->acl_file && *cfg->acl_file &&
        controller_acl_load(cfg->acl_file, &c.acl, err, sizeof err) != PGC_OK) {
        log_error("cannot load the ACL file", "error=\"%s\"", err);
        exit_code = 2;
        goto out;
    }
    dump_queue_config qc = {cfg->backoff_base_ms, cfg->backoff_max_ms};
    if (!(c.q = dump_queue_create(&qc))) {
        log_error("out of memory", "what=%s", "queue");
        goto out;
    }
    if (open_bucket(&c) != 0) {
        exit_code = 0; /* stopped while waiting for NATS */
        goto out;
    }
    if (controller_store_restore(&c) != 0)
        goto out;

    static const char *const services[] = {"pgcapture.DBLogController",
                                           "pgcapture.DBLogControllerAdmin"};
    if (rpc_health_create(services, 2, &c.health, err, sizeof err) != PGC_OK ||
        natsprobe_start(cfg->nats_url, "nats", &c.nats_probe, err, sizeof err) != PGC_OK) {
        log_error("cannot start health checks", "error=\"%s\"", err);
        goto out;
    }
    rpc_method methods[5 + RPC_HEALTH_N_METHODS] = {
        {RPC_METHOD_PULL_DUMP_INFO, &c, pull_on_start, pull_on_message, pull_on_half_close,
         pull_on_done},
        {RPC_METHOD_SCHEDULE, &c, NULL, schedule_on_message, NULL, unary_on_done},
        {RPC_METHOD_STOP_SCHEDULE, &c, NULL, stop_on_message, NULL, unary_on_done},
        {RPC_METHOD_SET_SCHEDULE_COOL_DOWN, &c, NULL, cooldown_on_message, NULL, unary_on_done},
        {RPC_METHOD_ADMIN_STATUS, &c, NULL, status_on_message, NULL, unary_on_done},
    };
    rpc_health_methods(c.health, &methods[5]);
    int port = 0;
    rpc_server_options so;
    rpc_server_options_init(&so);
    so.tls_cert_file = cfg->tls_cert;
    so.tls_key_file = cfg->tls_key;
    so.tls_client_ca_file = cfg->tls_client_ca;
    so.max_calls = (int)cfg->max_calls;
    so.new_calls_per_sec = (double)cfg->new_calls_per_sec;
    so.new_calls_burst = (double)cfg->new_calls_per_sec * 5;
    so.keepalive_ms = (int)cfg->keepalive_ms;
    if (rpc_server_create(methods, sizeof methods / sizeof methods[0], &so, &c.srv, err,
                          sizeof err) != PGC_OK ||
        rpc_server_listen(c.srv, cfg->listen, &port, err, sizeof err) != PGC_OK ||
        rpc_server_start(c.srv, err, sizeof err) != PGC_OK) {
        log_error("cannot serve gRPC", "listen=%s error=\"%s\"", cfg->listen, err);
        goto out;
    }
    log_info("controller ready", "listen=%s port=%d bucket=%s tls=%s acl=%s", cfg->listen, port,
             cfg->bucket,
             !cfg->tls_cert || !*cfg->tls_cert           ? "off"
             : cfg->tls_client_ca && *cfg->tls_client_ca ? "mutual"
                                                         : "on",
             c.acl ? cfg->acl_file : "none");
    if (!rpc_addr_is_loopback(cfg->listen) && (!cfg->tls_cert || !*cfg->tls_cert))
        log_warn("serving without TLS on an address other machines can reach (--tls-cert, "
                 "--tls-key)",
                 "listen=%s", cfg->listen);
    if (!rpc_addr_is_loopback(cfg->listen) && !c.acl)
        log_warn("no --acl: every client that reaches the controller may schedule, stop and read "
                 "every URI's dumps",
                 "listen=%s", cfg->listen);
    run_loop(&c);
    log_info("stopping", "grace_ms=%lld", (long long)cfg->shutdown_grace_ms);

    /* Pull streams' on_done callbacks only queue events, so shutting down from this
     * thread cannot deadlock; their events are drained right after. */
    rpc_health_stop(c.health);
    rpc_server_shutdown(c.srv, (int)cfg->shutdown_grace_ms);
    drain_inbox(&c);
    exit_code = 0;
out:
    rpc_server_destroy(c.srv);
    rpc_health_destroy(c.health);
    natsprobe_stop(c.nats_probe);
    drain_inbox(&c);
    for (size_t i = 0; i < c.n_streams; i++) {
        rpc_call_unref(c.streams[i]->call);
        free(c.streams[i]->uri);
        free(c.streams[i]->done_event);
        free(c.streams[i]);
    }
    free(c.streams);
    controller_acl_free(c.acl);
    jskv_destroy(c.kv);
    dump_queue_destroy(c.q);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return exit_code;
}
