/* The gRPC plumbing against itself over loopback: unary and bidi calls, statuses,
 * unknown methods, sends from another thread, cancellation and shutdown. */
#include "core/status.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "harness/runner.h"

#include <grpc/status.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct echo_state {
    atomic_int done_calls;
    atomic_int cancelled_calls;
    atomic_int half_closes;
} echo_state;

static echo_state state;

/* Unary "/t.S/Upper": upper-cases the request; "fail" gets INVALID_ARGUMENT. */
static void upper_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    if (len == 4 && memcmp(data, "fail", 4) == 0) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "fail requested");
        return;
    }
    uint8_t *out = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)((data[i] >= 'a' && data[i] <= 'z') ? data[i] - 32 : data[i]);
    rpc_call_send(call, out, len);
    free(out);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void count_done(rpc_call *call, bool cancelled)
{
    (void)call;
    atomic_fetch_add(&state.done_calls, 1);
    if (cancelled)
        atomic_fetch_add(&state.cancelled_calls, 1);
}

/* Bidi "/t.S/Echo": echoes each message; "end" finishes OK; on half-close finishes. */
static void echo_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    if (len == 3 && memcmp(data, "end", 3) == 0) {
        rpc_call_finish(call, GRPC_STATUS_OK, "bye");
        return;
    }
    rpc_call_send(call, data, len);
}

static void echo_on_half_close(rpc_call *call)
{
    atomic_fetch_add(&state.half_closes, 1);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Bidi "/t.S/Burst": on start, a thread of its own sends N numbered messages (what the
 * gateway does from its fetch thread), waiting for room in the queue. */
enum { BURST = 2000 };

static void *burst_thread(void *arg)
{
    rpc_call *call = arg;
    for (int i = 0; i < BURST; i++) {
        if (rpc_call_wait_writable(call, 64, 10000) != PGC_OK)
            break;
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d", i);
        rpc_call_send(call, (const uint8_t *)buf, (size_t)n);
    }
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
    rpc_call_unref(call);
    return NULL;
}

static void burst_on_start(rpc_call *call)
{
    pthread_t t;
    rpc_call_ref(call);
    pthread_create(&t, NULL, burst_thread, call);
    pthread_detach(t);
}

/* Bidi "/t.S/Who": answers each message with an index of the thread its callback ran on. */
enum { MAX_SEEN = 64 };
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t seen[MAX_SEEN];
static int n_seen;

static void who_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&seen_mu);
    int i = 0;
    while (i < n_seen && !pthread_equal(seen[i], self))
        i++;
    if (i == n_seen && n_seen < MAX_SEEN)
        seen[n_seen++] = self;
    pthread_mutex_unlock(&seen_mu);
    uint8_t idx = (uint8_t)i;
    rpc_call_send(call, &idx, 1);
}

/* Bidi "/t.S/Large": like Burst with messages of 100 kB, waiting for room by bytes; records
 * the most bytes it saw queued. */
enum { LARGE = 200, LARGE_BYTES = 100 * 1024, LARGE_ROOM = 512 * 1024 };
static atomic_size_t large_max_queued;

static void *large_thread(void *arg)
{
    rpc_call *call = arg;
    uint8_t *buf = calloc(1, LARGE_BYTES);
    for (int i = 0; i < LARGE; i++) {
        if (rpc_call_wait_room(call, 64, LARGE_ROOM, 10000) != PGC_OK)
            break;
        memcpy(buf, &i, sizeof i);
        rpc_call_send(call, buf, LARGE_BYTES);
        size_t q = rpc_call_queued_bytes(call);
        if (q > atomic_load(&large_max_queued))
            atomic_store(&large_max_queued, q);
    }
    free(buf);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL);
    rpc_call_unref(call);
    return NULL;
}

static void large_on_start(rpc_call *call)
{
    pthread_t t;
    rpc_call_ref(call);
    pthread_create(&t, NULL, large_thread, call);
    pthread_detach(t);
}

/* Bidi "/t.S/Hold": never answers; ends only when the client goes away or shutdown. */
static void hold_on_message(rpc_call *call, const uint8_t *data, size_t len)
{
    (void)call, (void)data, (void)len;
}

static const rpc_method methods[] = {
    {"/t.S/Upper", NULL, NULL, upper_on_message, NULL, count_done},
    {"/t.S/Echo", NULL, NULL, echo_on_message, echo_on_half_close, count_done},
    {"/t.S/Burst", NULL, burst_on_start, hold_on_message, NULL, count_done},
    {"/t.S/Hold", NULL, NULL, hold_on_message, NULL, count_done},
    {"/t.S/Who", NULL, NULL, who_on_message, NULL, count_done},
    {"/t.S/Large", NULL, large_on_start, hold_on_message, NULL, count_done},
};

typedef struct fixture {
    rpc_server *srv;
    rpc_channel *ch;
    char addr[64];
} fixture;

static void fixture_stop(void *arg)
{
    fixture *f = arg;
    rpc_channel_destroy(f->ch);
    rpc_server_shutdown(f->srv, 1000);
    rpc_server_destroy(f->srv);
    free(f);
}

static fixture *fixture_start_opts(const rpc_server_options *o)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256];
    int port = 0;
    memset(&state, 0, sizeof state);
    EXPECT_EQ_INT(PGC_OK, rpc_server_create(methods, sizeof methods / sizeof methods[0], o, &f->srv,
                                            err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_server_listen(f->srv, "127.0.0.1:0", &port, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_server_start(f->srv, err, sizeof err));
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &f->ch, err, sizeof err));
    unit_defer(fixture_stop, f);
    return f;
}

static fixture *fixture_start(void)
{
    return fixture_start_opts(NULL);
}

static void test_unary_call_returns_the_response_and_ok(void)
{
    fixture *f = fixture_start();
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_unary(f->ch, "/t.S/Upper", (const uint8_t *)"hello", 5, 5000, &resp,
                                    &len, &code, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_OK, code);
    EXPECT_EQ_MEM("HELLO", 5, resp, len);
    free(resp);
}

static void test_unary_error_status_and_message_reach_the_client(void)
{
    fixture *f = fixture_start();
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_unary(f->ch, "/t.S/Upper", (const uint8_t *)"fail", 4, 5000, &resp,
                                    &len, &code, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_INVALID_ARGUMENT, code);
    EXPECT_EQ_STR("fail requested", err);
    EXPECT_TRUE(resp == NULL);
}

static void test_unknown_method_is_unimplemented(void)
{
    fixture *f = fixture_start();
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_unary(f->ch, "/t.S/Nope", (const uint8_t *)"x", 1, 5000, &resp, &len,
                                    &code, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_UNIMPLEMENTED, code);
    EXPECT_TRUE(strstr(err, "/t.S/Nope") != NULL);
}

static void test_bidi_stream_echoes_in_order_and_ends_with_status(void)
{
    fixture *f = fixture_start();
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Echo", &st, err, sizeof err));
    for (int i = 0; i < 100; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "m%d", i);
        EXPECT_EQ_INT(PGC_OK,
                      rpc_stream_send(st, (const uint8_t *)buf, (size_t)n, err, sizeof err));
        uint8_t *data;
        size_t len;
        EXPECT_EQ_INT(1, rpc_stream_recv(st, 5000, &data, &len, err, sizeof err));
        EXPECT_EQ_MEM(buf, (size_t)n, data, len);
        free(data);
    }
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"end", 3, err, sizeof err));
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(0, rpc_stream_recv(st, 5000, &data, &len, err, sizeof err));
    const char *msg;
    EXPECT_EQ_INT(GRPC_STATUS_OK, rpc_stream_status(st, &msg));
    EXPECT_EQ_STR("bye", msg);
    rpc_stream_destroy(st);
}

static void test_half_close_reaches_the_server(void)
{
    fixture *f = fixture_start();
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Echo", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_close_send(st, err, sizeof err));
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(0, rpc_stream_recv(st, 5000, &data, &len, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_OK, rpc_stream_status(st, NULL));
    EXPECT_EQ_INT(1, atomic_load(&state.half_closes));
    rpc_stream_destroy(st);
}

static void test_messages_sent_from_another_thread_all_arrive_in_order(void)
{
    fixture *f = fixture_start();
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Burst", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"go", 2, err, sizeof err));
    int expect = 0;
    for (;;) {
        uint8_t *data;
        size_t len;
        int rc = rpc_stream_recv(st, 10000, &data, &len, err, sizeof err);
        EXPECT_TRUE(rc >= 0);
        if (rc == 0)
            break;
        char want[32];
        int n = snprintf(want, sizeof want, "%d", expect++);
        EXPECT_EQ_MEM(want, (size_t)n, data, len);
        free(data);
    }
    EXPECT_EQ_INT(BURST, expect);
    EXPECT_EQ_INT(GRPC_STATUS_OK, rpc_stream_status(st, NULL));
    rpc_stream_destroy(st);
}

static void test_large_messages_wait_for_room_by_bytes(void)
{
    fixture *f = fixture_start();
    atomic_store(&large_max_queued, 0);
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Large", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"go", 2, err, sizeof err));
    usleep(200000); /* a slow reader: the sender fills its queue meanwhile */
    int got = 0;
    for (;;) {
        uint8_t *data;
        size_t len;
        int rc = rpc_stream_recv(st, 10000, &data, &len, err, sizeof err);
        EXPECT_TRUE(rc >= 0);
        if (rc == 0)
            break;
        EXPECT_EQ_UINT(LARGE_BYTES, len);
        int i;
        memcpy(&i, data, sizeof i);
        EXPECT_EQ_INT(got, i);
        got++;
        free(data);
    }
    EXPECT_EQ_INT(LARGE, got);
    /* Room is waited for before each send: one message past the limit at most. */
    EXPECT_TRUE(atomic_load(&large_max_queued) <= LARGE_ROOM + LARGE_BYTES);
    EXPECT_TRUE(atomic_load(&large_max_queued) >= LARGE_BYTES);
    rpc_stream_destroy(st);
}

static void test_receive_timeout_keeps_the_stream_usable(void)
{
    fixture *f = fixture_start();
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Echo", &st, err, sizeof err));
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(PGC_ERR_TIMEOUT, rpc_stream_recv(st, 50, &data, &len, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"late", 4, err, sizeof err));
    EXPECT_EQ_INT(1, rpc_stream_recv(st, 5000, &data, &len, err, sizeof err));
    EXPECT_EQ_MEM("late", 4, data, len);
    free(data);
    rpc_stream_destroy(st);
}

static void test_client_cancel_ends_the_call_on_the_server_as_cancelled(void)
{
    fixture *f = fixture_start();
    rpc_stream *st;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Hold", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st, (const uint8_t *)"x", 1, err, sizeof err));
    rpc_stream_cancel(st);
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(0, rpc_stream_recv(st, 5000, &data, &len, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_CANCELLED, rpc_stream_status(st, NULL));
    rpc_stream_destroy(st);
    for (int i = 0; i < 500 && atomic_load(&state.done_calls) == 0; i++)
        usleep(10000);
    EXPECT_EQ_INT(1, atomic_load(&state.done_calls));
    EXPECT_EQ_INT(1, atomic_load(&state.cancelled_calls));
}

static void test_shutdown_ends_open_streams_and_reports_each_once(void)
{
    fixture *f = fixture_start();
    rpc_stream *st[3];
    char err[256];
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(PGC_OK, rpc_stream_open(f->ch, "/t.S/Echo", &st[i], err, sizeof err));
        EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st[i], (const uint8_t *)"x", 1, err, sizeof err));
        /* The echo proves the server has taken the call. */
        uint8_t *data;
        size_t len;
        EXPECT_EQ_INT(1, rpc_stream_recv(st[i], 5000, &data, &len, err, sizeof err));
        free(data);
    }
    rpc_server_shutdown(f->srv, 100);
    EXPECT_EQ_INT(3, atomic_load(&state.done_calls));
    for (int i = 0; i < 3; i++) {
        uint8_t *data;
        size_t len;
        EXPECT_EQ_INT(0, rpc_stream_recv(st[i], 5000, &data, &len, err, sizeof err));
        EXPECT_TRUE(rpc_stream_status(st[i], NULL) != GRPC_STATUS_OK);
        rpc_stream_destroy(st[i]);
    }
}

/* Each channel is a connection of its own, and the server spreads connections over its
 * threads (gRPC picks a queue at random per connection): sixteen connections on four
 * threads all landing on one has a chance of one in a billion. A connection's calls stay
 * on one thread. */
static void test_connections_are_served_by_several_threads(void)
{
    rpc_server_options o;
    rpc_server_options_init(&o);
    o.threads = 4;
    fixture *f = fixture_start_opts(&o);
    char err[256];
    enum { N = 16 };
    rpc_channel *ch[N];
    rpc_stream *st[N];
    pthread_mutex_lock(&seen_mu);
    n_seen = 0;
    pthread_mutex_unlock(&seen_mu);
    for (int i = 0; i < N; i++) {
        EXPECT_EQ_INT(PGC_OK, rpc_channel_create(f->addr, &ch[i], err, sizeof err));
        EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch[i], "/t.S/Who", &st[i], err, sizeof err));
    }
    for (int i = 0; i < N; i++) {
        uint8_t first = 0;
        for (int k = 0; k < 3; k++) {
            EXPECT_EQ_INT(PGC_OK, rpc_stream_send(st[i], (const uint8_t *)"?", 1, err, sizeof err));
            uint8_t *data;
            size_t len;
            EXPECT_EQ_INT(1, rpc_stream_recv(st[i], 5000, &data, &len, err, sizeof err));
            EXPECT_EQ_UINT(1, len);
            if (k == 0)
                first = data[0];
            EXPECT_EQ_UINT(first, data[0]);
            free(data);
        }
    }
    for (int i = 0; i < N; i++) {
        rpc_stream_destroy(st[i]);
        rpc_channel_destroy(ch[i]);
    }
    pthread_mutex_lock(&seen_mu);
    int threads = n_seen;
    pthread_mutex_unlock(&seen_mu);
    EXPECT_TRUE(threads >= 2 && threads <= 4);
    /* Out of range. */
    rpc_server *bad;
    o.threads = RPC_SERVER_MAX_THREADS + 1;
    EXPECT_EQ_INT(PGC_ERR_CONFIG, rpc_server_create(methods, 1, &o, &bad, err, sizeof err));
}

static void test_unreachable_server_gives_unavailable(void)
{
    rpc_channel *ch;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create("127.0.0.1:1", &ch, err, sizeof err));
    uint8_t *resp = NULL;
    size_t len = 0;
    int code = -1;
    EXPECT_EQ_INT(PGC_OK, rpc_unary(ch, "/t.S/Upper", (const uint8_t *)"x", 1, 5000, &resp, &len,
                                    &code, err, sizeof err));
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, code);
    rpc_channel_destroy(ch);
}

/* A stream whose first send fails on a refused connection reports why (not UNKNOWN). */
static void test_stream_to_a_refused_port_ends_unavailable_with_the_address(void)
{
    rpc_channel *ch;
    char err[256];
    EXPECT_EQ_INT(PGC_OK, rpc_channel_create("127.0.0.1:1", &ch, err, sizeof err));
    rpc_stream *st;
    EXPECT_EQ_INT(PGC_OK, rpc_stream_open(ch, "/t.S/Echo", &st, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_CONN, rpc_stream_send(st, (const uint8_t *)"x", 1, err, sizeof err));
    const char *msg;
    EXPECT_EQ_INT(GRPC_STATUS_UNAVAILABLE, rpc_stream_status(st, &msg));
    if (!strstr(msg, "127.0.0.1:1"))
        unit_fail(__FILE__, __LINE__, "expected the address in the status message, got \"%s\"",
                  msg);
    uint8_t *data;
    size_t len;
    EXPECT_EQ_INT(0, rpc_stream_recv(st, 1000, &data, &len, err, sizeof err));
    rpc_stream_destroy(st);
    rpc_channel_destroy(ch);
}

UNIT_MAIN(UNIT_CASE(test_unary_call_returns_the_response_and_ok),
          UNIT_CASE(test_unary_error_status_and_message_reach_the_client),
          UNIT_CASE(test_unknown_method_is_unimplemented),
          UNIT_CASE(test_bidi_stream_echoes_in_order_and_ends_with_status),
          UNIT_CASE(test_half_close_reaches_the_server),
          UNIT_CASE(test_messages_sent_from_another_thread_all_arrive_in_order),
          UNIT_CASE(test_large_messages_wait_for_room_by_bytes),
          UNIT_CASE(test_receive_timeout_keeps_the_stream_usable),
          UNIT_CASE(test_client_cancel_ends_the_call_on_the_server_as_cancelled),
          UNIT_CASE(test_shutdown_ends_open_streams_and_reports_each_once),
          UNIT_CASE(test_connections_are_served_by_several_threads),
          UNIT_CASE(test_unreachable_server_gives_unavailable),
          UNIT_CASE(test_stream_to_a_refused_port_ends_unavailable_with_the_address))
