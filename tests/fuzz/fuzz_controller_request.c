/* libFuzzer target for the controller's request decoding (controller_parse: Schedule,
 * StopSchedule, SetScheduleCoolDown, Status, PullDumpInfo) driving a real dump queue, as
 * the controller thread does, and for the decoders of what the controller reads back from
 * its key-value bucket (queue_kv: keys, item and counter values). The input is a sequence
 * of requests, each: u8 what (low 3 bits: the request or decoder, next 2 bits: the pull
 * stream), u16 big-endian length, the bytes. Invariants: what parses is accepted by the
 * queue; an item encoded for the bucket decodes to itself; so do a key and counters that
 * decode. */
#include "core/status.h"
#include "pgcapture.pb-c.h"
#include "roles/controller/controller_parse.h"
#include "roles/controller/dump_queue.h"
#include "roles/controller/queue_kv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAMS 4

typedef struct state {
    dump_queue *q;
    bool open[STREAMS];
    int64_t now_ms;
    uint64_t handed;
} state;

static void on_item(void *arg, const char *uri, uint64_t stream_id, const dump_queue_item *item)
{
    state *s = arg;
    if (!uri || stream_id >= STREAMS || !item || !item->table)
        abort();
    s->handed++;
}

/* A scheduled item as the controller stores it reads back as itself. */
static void check_item_kv(const char *uri, uint64_t id, const dump_queue_spec *spec)
{
    char err[256], key[QUEUE_KV_MAX_KEY_BYTES + 1], back[DUMP_QUEUE_MAX_URI_BYTES + 1];
    uint8_t buf[QUEUE_KV_MAX_VALUE_BYTES];
    dump_queue_item it = {id,
                          (char *)(spec->schema ? spec->schema : ""),
                          (char *)spec->table,
                          spec->page_begin,
                          spec->page_end,
                          3,
                          0,
                          false};
    size_t n = queue_kv_encode_item(&it, buf, sizeof buf);
    queue_kv_item_value v;
    if (n == 0 || queue_kv_decode_item(buf, n, &v, err, sizeof err) != PGC_OK ||
        strcmp(v.schema, it.schema) != 0 || strcmp(v.table, it.table) != 0 ||
        v.page_begin != it.page_begin || v.page_end != it.page_end || v.attempts != 3)
        abort();
    uint64_t got;
    if (queue_kv_item_key(uri, id, key, sizeof key) != PGC_OK ||
        queue_kv_parse_key(key, back, sizeof back, &got) != QUEUE_KV_KEY_ITEM ||
        strcmp(back, uri) != 0 || got != id)
        abort();
}

static void on_schedule(state *s, const uint8_t *p, size_t n)
{
    char err[512];
    Pgcapture__ScheduleRequest *req;
    dump_queue_spec *specs;
    if (controller_parse_schedule(p, n, &req, &specs, err, sizeof err) != PGC_OK)
        return;
    uint64_t first = dump_queue_next_id(s->q, req->uri), got;
    if (dump_queue_schedule(s->q, req->uri, specs, req->n_dumps, &got, err, sizeof err) != PGC_OK ||
        (req->n_dumps && got != first))
        abort();
    for (size_t i = 0; i < req->n_dumps; i++)
        check_item_kv(req->uri, first + i, &specs[i]);
    free(specs);
    pgcapture__schedule_request__free_unpacked(req, NULL);
}

static void on_stop(state *s, const uint8_t *p, size_t n)
{
    char err[512];
    Pgcapture__StopScheduleRequest *req;
    if (controller_parse_stop(p, n, &req, err, sizeof err) != PGC_OK)
        return;
    uint64_t *ids = NULL;
    if (dump_queue_stop(s->q, req->uri, &ids) < 0)
        abort();
    free(ids);
    pgcapture__stop_schedule_request__free_unpacked(req, NULL);
}

static void on_cooldown(state *s, const uint8_t *p, size_t n)
{
    char err[512];
    Pgcapture__SetScheduleCoolDownRequest *req;
    int64_t ms;
    if (controller_parse_cooldown(p, n, &req, &ms, err, sizeof err) != PGC_OK)
        return;
    if (ms < 0 || ms > 365LL * 24 * 3600 * 1000 + 999 ||
        dump_queue_set_cooldown(s->q, req->uri, ms) != PGC_OK ||
        dump_queue_cooldown(s->q, req->uri) != ms)
        abort();
    /* The counters the controller stores with it read back as themselves. */
    uint8_t buf[64];
    int64_t cd;
    uint64_t done, next;
    size_t len = queue_kv_encode_meta(ms, 7, 9, buf, sizeof buf);
    if (len == 0 || queue_kv_decode_meta(buf, len, &cd, &done, &next, err, sizeof err) != PGC_OK ||
        cd != ms || done != 7 || next != 9)
        abort();
    pgcapture__set_schedule_cool_down_request__free_unpacked(req, NULL);
}

static void on_status(state *s, const uint8_t *p, size_t n)
{
    char err[512];
    Pgcapture__ControllerStatusRequest *req;
    if (controller_parse_status(p, n, &req, err, sizeof err) != PGC_OK)
        return;
    for (size_t i = 0; i < dump_queue_uri_count(s->q); i++) {
        dump_queue_uri_stats st;
        dump_queue_uri_stats_at(s->q, i, &st);
        if (!st.uri || st.backing_off > st.pending)
            abort();
    }
    pgcapture__controller_status_request__free_unpacked(req, NULL);
}

static void on_pull(state *s, unsigned stream, const uint8_t *p, size_t n)
{
    char err[512];
    Pgcapture__DumpInfoRequest *req;
    if (controller_parse_pull(p, n, !s->open[stream], &req, err, sizeof err) != PGC_OK) {
        if (s->open[stream])
            dump_queue_stream_close(s->q, stream, s->now_ms);
        s->open[stream] = false;
        return;
    }
    if (!s->open[stream]) {
        if (dump_queue_stream_open(s->q, req->uri, stream) != PGC_OK)
            abort();
        s->open[stream] = true;
    } else {
        dump_queue_add_rows_sent(s->q, stream, req->rows_sent);
        dump_queue_complete(s->q, stream, req->requeue_reason, s->now_ms);
    }
    pgcapture__dump_info_request__free_unpacked(req, NULL);
}

/* Raw bucket contents, as a restarted controller reads them. */
static void on_kv(unsigned what, const uint8_t *p, size_t n)
{
    char err[256];
    if (what == 5) {
        queue_kv_item_value v;
        if (queue_kv_decode_item(p, n, &v, err, sizeof err) == PGC_OK &&
            (strlen(v.schema) > DUMP_QUEUE_MAX_NAME_BYTES ||
             strlen(v.table) > DUMP_QUEUE_MAX_NAME_BYTES))
            abort();
    } else if (what == 6) {
        int64_t cd;
        uint64_t done, next;
        queue_kv_decode_meta(p, n, &cd, &done, &next, err, sizeof err);
    } else {
        char *key = malloc(n + 1), uri[DUMP_QUEUE_MAX_URI_BYTES + 1];
        char again[QUEUE_KV_MAX_KEY_BYTES + 1];
        if (!key)
            abort();
        memcpy(key, p, n);
        key[n] = '\0';
        uint64_t id;
        queue_kv_key_kind k = queue_kv_parse_key(key, uri, sizeof uri, &id);
        if (k == QUEUE_KV_KEY_ITEM &&
            (queue_kv_item_key(uri, id, again, sizeof again) != PGC_OK || strcmp(again, key) != 0))
            abort();
        if (k == QUEUE_KV_KEY_META &&
            (queue_kv_meta_key(uri, again, sizeof again) != PGC_OK || strcmp(again, key) != 0))
            abort();
        free(key);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dump_queue_config cfg = {100, 1000};
    state s = {0};
    if (!(s.q = dump_queue_create(&cfg)))
        abort();
    while (size >= 3) {
        unsigned what = data[0] & 7, stream = (data[0] >> 3) & (STREAMS - 1);
        size_t n = (size_t)data[1] << 8 | data[2];
        data += 3, size -= 3;
        if (n > size)
            n = size;
        /* An exact-size copy so that any over-read is caught. */
        uint8_t *p = malloc(n ? n : 1);
        if (!p)
            abort();
        memcpy(p, data, n);
        data += n, size -= n;
        switch (what) {
        case 0:
            on_schedule(&s, p, n);
            break;
        case 1:
            on_stop(&s, p, n);
            break;
        case 2:
            on_cooldown(&s, p, n);
            break;
        case 3:
            on_status(&s, p, n);
            break;
        case 4:
            on_pull(&s, stream, p, n);
            break;
        default:
            on_kv(what, p, n);
            break;
        }
        free(p);
        s.now_ms += 50;
        dump_queue_dispatch(s.q, s.now_ms, on_item, &s);
    }
    for (unsigned i = 0; i < STREAMS; i++)
        if (s.open[i])
            dump_queue_stream_close(s.q, i, s.now_ms);
    dump_queue_destroy(s.q);
    return 0;
}
