/* The client side of bench/gateway (built by that script against the library):
 *   raw NATS_URL SOURCE DURABLE N        plain libnats pull consumer: fetch + ack until N
 *                                        changes (counted in the batches); prints
 *                                        "secs msgs changes cpu_s"
 *   capture ADDR URI N STREAMS BATCH     N changes over STREAMS Capture streams on one URI
 *                                        (a connection each), every change acked; BATCH 0:
 *                                        per-change mode, else batch mode with BatchLimit
 *                                        BATCH and one ack per batch; prints
 *                                        "secs changes cpu_s"
 *   latency ADDR URI N BATCH             receives up to N changes of table lat (until 2 s
 *                                        without one) whose column ts is the insert time
 *                                        (Unix µs); prints "p50_ms p99_ms count cpu_s"
 *   latency-minutes ADDR URI N BATCH     as latency, until 15 s without one, then one line
 *                                        per minute of insert time (bench/soak):
 *                                        "minute M p50_ms p99_ms count"
 *   latency-raw NATS_URL SOURCE N        the same from the log itself, without the gateway:
 *                                        an ephemeral push consumer of new messages; prints
 *                                        "store_p50 store_p99 recv_p50 recv_p99 count" in ms:
 *                                        insert to stored in JetStream (the agent's part),
 *                                        insert to received here
 * cpu_s is this process's CPU time (user + system) for the run. Exit status 1 with a
 * message on stderr when something fails. */
#include "codec/batch.h"
#include "codec/bigendian.h"
#include "codec/capbatch.h"
#include "codec/capmsg.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"
#include "rpc/client.h"
#include "rpc/methods.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int die(const char *what)
{
    fprintf(stderr, "gateway_client: %s\n", what);
    exit(1);
}

static int run_raw(const char *url, const char *source, const char *durable, long want)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    char stream[128], subject[128];
    snprintf(stream, sizeof stream, "PGCAPTURE_%s", source);
    snprintf(subject, sizeof subject, "pgcapture.%s.log", source);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL))
        die("cannot connect");
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = subject;
    cc.MaxAckPending = 1000;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    if (js_AddConsumer(NULL, js, stream, &cc, NULL, &jerr) != NATS_OK)
        die("cannot add the consumer");
    if (js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr) != NATS_OK)
        die("cannot subscribe");
    long changes = 0, msgs = 0;
    double t0 = now_s(), c0 = cpu_s();
    while (changes < want) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 256, 2000, &jerr);
        if (s == NATS_TIMEOUT)
            die("raw: stream ran dry before N changes");
        if (s != NATS_OK)
            die("raw: fetch failed");
        for (int i = 0; i < list.Count; i++) {
            batch_reader r;
            const uint8_t *p;
            size_t n;
            batch_reader_init(&r, (const uint8_t *)natsMsg_GetData(list.Msgs[i]),
                              (size_t)natsMsg_GetDataLength(list.Msgs[i]));
            while (batch_reader_next(&r, &p, &n, NULL, 0) == 1) {
                capmsg_kind kind;
                const uint8_t *c;
                size_t cl;
                if (capmsg_peek(p, n, &kind, &c, &cl, NULL, 0) == 0 && kind == CAPMSG_CHANGE)
                    changes++;
            }
            natsMsg_Ack(list.Msgs[i], NULL);
            msgs++;
        }
        natsMsgList_Destroy(&list);
    }
    natsConnection_Flush(nc);
    printf("%.6f %ld %ld %.3f\n", now_s() - t0, msgs, changes, cpu_s() - c0);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

static int cmp_double(const void *a, const void *b);

/* The ts column (Unix µs) of a serialized Change, or -1. */
static int64_t change_ts(const uint8_t *change, size_t len)
{
    Pgcapture__Change *c = pgcapture__change__unpack(NULL, len, change);
    int64_t v = -1;
    for (size_t i = 0; c && i < c->n_new_; i++)
        if (strcmp(c->new_[i]->name, "ts") == 0 && c->new_[i]->binary.len == 8)
            v = (int64_t)bigendian_get64(c->new_[i]->binary.data);
    if (c)
        pgcapture__change__free_unpacked(c, NULL);
    return v;
}

static int run_latency_raw(const char *url, const char *source, long want)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    char subject[128];
    snprintf(subject, sizeof subject, "pgcapture.%s.log", source);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL))
        die("cannot connect");
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.DeliverPolicy = js_DeliverNew;
    so.Config.AckPolicy = js_AckNone;
    if (js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr) != NATS_OK)
        die("cannot subscribe");
    double *store = calloc((size_t)want, sizeof *store), *recv = calloc((size_t)want, sizeof *recv);
    long n = 0;
    int idle = 0;
    while (n < want && idle < 10) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 200) != NATS_OK) {
            idle += n > 0;
            continue;
        }
        idle = 0;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        jsMsgMetaData *meta = NULL;
        int64_t stored_us = natsMsg_GetMetaData(&meta, m) == NATS_OK ? meta->Timestamp / 1000 : 0;
        jsMsgMetaData_Destroy(meta);
        batch_reader r;
        const uint8_t *p;
        size_t len;
        batch_reader_init(&r, (const uint8_t *)natsMsg_GetData(m),
                          (size_t)natsMsg_GetDataLength(m));
        while (batch_reader_next(&r, &p, &len, NULL, 0) == 1 && n < want) {
            capmsg_kind kind;
            const uint8_t *c;
            size_t cl;
            int64_t sent_us;
            if (capmsg_peek(p, len, &kind, &c, &cl, NULL, 0) != 0 || kind != CAPMSG_CHANGE ||
                (sent_us = change_ts(c, cl)) <= 0)
                continue;
            store[n] = (double)(stored_us - sent_us) / 1000.0;
            recv[n] = (double)(now_us - sent_us) / 1000.0;
            n++;
        }
        natsMsg_Destroy(m);
    }
    if (n == 0)
        die("latency-raw: nothing received");
    qsort(store, (size_t)n, sizeof *store, cmp_double);
    qsort(recv, (size_t)n, sizeof *recv, cmp_double);
    printf("%.3f %.3f %.3f %.3f %ld\n", store[n / 2], store[(size_t)(n * 99 / 100)], recv[n / 2],
           recv[(size_t)(n * 99 / 100)], n);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(store);
    free(recv);
    return 0;
}

/* ---- Capture streams: a receiver thread per stream, acks from a sender thread ---- */

typedef struct ackq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t **items;
    size_t *lens;
    size_t n, cap;
    bool done;
} ackq;

typedef struct stream_ctx {
    rpc_channel *ch;
    rpc_stream *st;
    int batch_limit;
    ackq q;
    const char *uri;
    long want;
    atomic_long *total;
    bool latency;
    int64_t start_us; /* latency runs count rows inserted after this */
    double *lat;
    int *lat_minute; /* latency-minutes: the minute of insert time of each latency */
    int idle_ticks;  /* 200 ms receive timeouts in a row that end a latency run */
    long *n_lat;
} stream_ctx;

static atomic_long g_total;

static void send_init(rpc_stream *st, const char *uri, int batch_limit)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[1] = {&entry};
    Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
    init.uri = (char *)uri;
    if (batch_limit > 0) {
        value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        value.number_value = batch_limit;
        entry.key = "BatchLimit";
        entry.value = &value;
        params.n_fields = 1;
        params.fields = entries;
        init.parameters = &params;
    }
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    uint8_t buf[512];
    size_t n = pgcapture__capture_request__pack(&req, buf);
    if (rpc_stream_send(st, buf, n, NULL, 0) != 0)
        die("cannot send init");
}

/* Sends the queued acks, taking the whole queue at a time. */
static void *acker(void *arg)
{
    stream_ctx *s = arg;
    uint8_t **items = NULL;
    size_t *lens = NULL, cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->q.mu);
        while (!s->q.n && !s->q.done)
            pthread_cond_wait(&s->q.cv, &s->q.mu);
        if (!s->q.n && s->q.done) {
            pthread_mutex_unlock(&s->q.mu);
            free(items);
            free(lens);
            return NULL;
        }
        size_t n = s->q.n;
        uint8_t **ti = s->q.items;
        size_t *tl = s->q.lens, tc = s->q.cap;
        s->q.items = items, s->q.lens = lens, s->q.cap = cap, s->q.n = 0;
        items = ti, lens = tl, cap = tc;
        pthread_mutex_unlock(&s->q.mu);
        for (size_t i = 0; i < n; i++) {
            rpc_stream_send(s->st, items[i], lens[i], NULL, 0);
            free(items[i]);
        }
    }
}

/* Queues the ack of one change (checkpoint) or of a whole batch (batch != 0). */
static void queue_ack(stream_ctx *s, const Pgcapture__Checkpoint *cp, uint64_t batch)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint copy = PGCAPTURE__CHECKPOINT__INIT;
    if (cp)
        copy = *cp;
    ack.checkpoint = batch ? NULL : &copy;
    ack.batch = batch;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    size_t n = pgcapture__capture_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    pgcapture__capture_request__pack(&req, buf);
    pthread_mutex_lock(&s->q.mu);
    if (s->q.n == s->q.cap) {
        s->q.cap = s->q.cap ? s->q.cap * 2 : 1024;
        s->q.items = realloc(s->q.items, s->q.cap * sizeof *s->q.items);
        s->q.lens = realloc(s->q.lens, s->q.cap * sizeof *s->q.lens);
    }
    s->q.items[s->q.n] = buf;
    s->q.lens[s->q.n++] = n;
    pthread_cond_signal(&s->q.cv);
    pthread_mutex_unlock(&s->q.mu);
}

static int64_t field_int8(const Pgcapture__Change *c, const char *name)
{
    for (size_t i = 0; i < c->n_new_; i++)
        if (strcmp(c->new_[i]->name, name) == 0 && c->new_[i]->binary.len == 8) {
            return (int64_t)bigendian_get64(c->new_[i]->binary.data);
        }
    return -1;
}

static void record_latency(stream_ctx *s, const Pgcapture__Change *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    int64_t sent_us = field_int8(c, "ts");
    if (sent_us < s->start_us)
        return; /* not a row of table lat, or one written before this run */
    long i = atomic_fetch_add(&g_total, 1);
    if (i < s->want) {
        s->lat[i] = (double)(now_us - sent_us) / 1000.0;
        if (s->lat_minute)
            s->lat_minute[i] = (int)((sent_us - s->start_us) / 60000000);
    }
}

/* A batch: counted by scanning (latency runs decode each change for its ts column), acked
 * with one batch ack. */
static void take_batch(stream_ctx *s, const uint8_t *data, size_t len)
{
    capbatch_reader r;
    uint64_t batch;
    uint32_t items;
    if (capbatch_reader_init(&r, data, len, &batch, &items, NULL, 0) != 0 || !batch)
        die("bad batch");
    if (s->latency) {
        capbatch_item it;
        while (capbatch_reader_next(&r, &it, NULL, 0) == 1) {
            Pgcapture__Change *c = pgcapture__change__unpack(NULL, it.change_len, it.change);
            if (!c)
                die("bad change in a batch");
            record_latency(s, c);
            pgcapture__change__free_unpacked(c, NULL);
        }
    } else {
        atomic_fetch_add(&g_total, items);
    }
    queue_ack(s, NULL, batch);
}

static void *receiver(void *arg)
{
    stream_ctx *s = arg;
    int idle = 0;
    while (atomic_load(&g_total) < s->want) {
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = rpc_stream_recv(s->st, 200, &data, &len, NULL, 0);
        if (rc == PGC_ERR_TIMEOUT) {
            /* Latency runs end 2 s after the load stops. */
            if (s->latency && atomic_load(&g_total) > 0 && ++idle >= s->idle_ticks)
                break;
            continue;
        }
        idle = 0;
        if (rc != 1)
            die("stream ended early");
        if (s->batch_limit) {
            take_batch(s, data, len);
            free(data);
            continue;
        }
        Pgcapture__CaptureMessage *m = pgcapture__capture_message__unpack(NULL, len, data);
        free(data);
        if (!m || !m->checkpoint || !m->change)
            die("bad CaptureMessage");
        if (s->latency)
            record_latency(s, m->change);
        else
            atomic_fetch_add(&g_total, 1);
        queue_ack(s, m->checkpoint, 0);
        pgcapture__capture_message__free_unpacked(m, NULL);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* latency-minutes: p50 and p99 of each minute of insert time, from n latencies. */
static void print_minutes(const double *lat, const int *minute, long n)
{
    int last = 0;
    for (long i = 0; i < n; i++)
        last = minute[i] > last ? minute[i] : last;
    double *one = malloc((size_t)(n ? n : 1) * sizeof *one);
    for (int m = 0; m <= last; m++) {
        long k = 0;
        for (long i = 0; i < n; i++)
            if (minute[i] == m)
                one[k++] = lat[i];
        if (k == 0)
            continue;
        qsort(one, (size_t)k, sizeof *one, cmp_double);
        printf("minute %d %.3f %.3f %ld\n", m + 1, one[k / 2], one[(size_t)(k * 99 / 100)], k);
    }
    free(one);
}

/* minutes: latency-minutes (per-minute lines, a 15 s idle end). */
static int run_capture(const char *addr, const char *uri, long want, int streams, int batch_limit,
                       bool latency, bool minutes)
{
    char err[256];
    stream_ctx *s = calloc((size_t)streams, sizeof *s);
    double *lat = latency ? calloc((size_t)want, sizeof *lat) : NULL;
    int *lat_minute = minutes ? calloc((size_t)want, sizeof *lat_minute) : NULL;
    pthread_t rt[16], at[16];
    if (streams < 1 || streams > 16)
        die("1 to 16 streams");
    for (int i = 0; i < streams; i++) {
        /* A channel (a connection) per stream, as separate consumers have. PGC_BENCH_TLS_CA
         * set: TLS to the gateway, its certificate checked against that CA. */
        rpc_channel_options o;
        rpc_channel_options_init(&o);
        o.tls_ca_file = getenv("PGC_BENCH_TLS_CA");
        if (rpc_channel_create_opts(addr, &o, &s[i].ch, err, sizeof err) != 0)
            die(err);
        if (rpc_stream_open(s[i].ch, RPC_METHOD_CAPTURE, &s[i].st, err, sizeof err))
            die(err);
        s[i].batch_limit = batch_limit;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s[i].start_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        pthread_mutex_init(&s[i].q.mu, NULL);
        pthread_cond_init(&s[i].q.cv, NULL);
        s[i].want = want;
        s[i].latency = latency;
        s[i].lat = lat;
        s[i].lat_minute = lat_minute;
        s[i].idle_ticks = minutes ? 75 : 10;
        send_init(s[i].st, uri, batch_limit);
    }
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < streams; i++) {
        pthread_create(&rt[i], NULL, receiver, &s[i]);
        pthread_create(&at[i], NULL, acker, &s[i]);
    }
    for (int i = 0; i < streams; i++)
        pthread_join(rt[i], NULL);
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    for (int i = 0; i < streams; i++) {
        pthread_mutex_lock(&s[i].q.mu);
        s[i].q.done = true;
        pthread_cond_signal(&s[i].q.cv);
        pthread_mutex_unlock(&s[i].q.mu);
        pthread_join(at[i], NULL);
    }
    if (latency) {
        long n = atomic_load(&g_total) < want ? atomic_load(&g_total) : want;
        if (n == 0)
            die("latency: nothing received");
        if (minutes)
            print_minutes(lat, lat_minute, n); /* before the sort below reorders lat */
        qsort(lat, (size_t)n, sizeof *lat, cmp_double);
        printf("%.3f %.3f %ld %.3f\n", lat[n / 2], lat[(size_t)(n * 99 / 100)], n, cpu);
    } else {
        printf("%.6f %ld %.3f\n", secs, atomic_load(&g_total), cpu);
    }
    fflush(stdout);
    struct timespec ts = {0, 300 * 1000000L}; /* let the last acks reach the gateway */
    nanosleep(&ts, NULL);
    for (int i = 0; i < streams; i++) {
        rpc_stream_destroy(s[i].st);
        rpc_channel_destroy(s[i].ch);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "raw") == 0)
        return run_raw(argv[2], argv[3], argv[4], atol(argv[5]));
    if (argc == 7 && strcmp(argv[1], "capture") == 0)
        return run_capture(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), atoi(argv[6]), false,
                           false);
    if (argc == 5 && strcmp(argv[1], "latency-raw") == 0)
        return run_latency_raw(argv[2], argv[3], atol(argv[4]));
    if (argc == 6 && strcmp(argv[1], "latency") == 0)
        return run_capture(argv[2], argv[3], atol(argv[4]), 1, atoi(argv[5]), true, false);
    if (argc == 6 && strcmp(argv[1], "latency-minutes") == 0)
        return run_capture(argv[2], argv[3], atol(argv[4]), 1, atoi(argv[5]), true, true);
    fprintf(stderr, "usage: see the comment at the top of bench/gateway_client.c\n");
    return 2;
}
