/* The controller's state in its JetStream key-value bucket (see queue_kv.h for the keys
 * and values): an item's key is written before Schedule answers and deleted once the item
 * is acked or dropped; a URI's counters are written as they change; at start-up both are
 * read back into the queue. Controller thread only. */
#include "roles/controller/controller_private.h"

#include "core/log.h"
#include "core/status.h"
#include "roles/controller/queue_kv.h"

#include <stdio.h>
#include <string.h>

int controller_store_meta(controller *c, const char *uri, char *err, size_t err_len)
{
    char key[QUEUE_KV_MAX_KEY_BYTES];
    uint8_t val[64];
    dump_queue_uri_stats st;
    memset(&st, 0, sizeof st);
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats_at(c->q, i, &st);
        if (strcmp(st.uri, uri) == 0)
            break;
    }
    if (queue_kv_meta_key(uri, key, sizeof key) != PGC_OK)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri cannot be a key");
    size_t n = queue_kv_encode_meta(dump_queue_cooldown(c->q, uri), st.done,
                                    dump_queue_next_id(c->q, uri), val, sizeof val);
    return jskv_put(c->kv, key, val, n, err, err_len);
}

int controller_store_item(controller *c, const char *uri, const dump_queue_item *it, char *err,
                          size_t err_len)
{
    char key[QUEUE_KV_MAX_KEY_BYTES];
    uint8_t val[QUEUE_KV_MAX_VALUE_BYTES];
    size_t n = queue_kv_encode_item(it, val, sizeof val);
    if (queue_kv_item_key(uri, it->id, key, sizeof key) != PGC_OK || n == 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "item cannot be stored");
    return jskv_put(c->kv, key, val, n, err, err_len);
}

void controller_store_forget(controller *c, const char *uri, uint64_t id)
{
    char key[QUEUE_KV_MAX_KEY_BYTES], err[CONTROLLER_ERR_LEN];
    if (queue_kv_item_key(uri, id, key, sizeof key) != PGC_OK)
        return;
    if (jskv_delete(c->kv, key, err, sizeof err) != PGC_OK)
        log_warn("cannot delete a finished item from the bucket: it will be handed out again "
                 "after a restart",
                 "uri=%s id=%llu error=\"%s\"", uri, (unsigned long long)id, err);
}

/* Once a URI has nothing left (pending or outstanding), the markers of its finished
 * items are dropped in one purge, so the bucket holds no more than the live schedule. */
void controller_store_purge_if_drained(controller *c, const char *uri)
{
    for (size_t i = 0; i < dump_queue_uri_count(c->q); i++) {
        dump_queue_uri_stats st;
        dump_queue_uri_stats_at(c->q, i, &st);
        if (strcmp(st.uri, uri) != 0)
            continue;
        if (st.pending || st.outstanding)
            return;
        char filter[QUEUE_KV_MAX_KEY_BYTES], err[CONTROLLER_ERR_LEN];
        if (queue_kv_items_filter(uri, filter, sizeof filter) != PGC_OK)
            return;
        if (jskv_purge(c->kv, filter, err, sizeof err) != PGC_OK)
            log_warn("cannot purge the markers of finished items", "uri=%s error=\"%s\"", uri, err);
        return;
    }
}

typedef struct restore_ctx {
    controller *c;
    size_t items, metas, bad;
} restore_ctx;

static int restore_one(void *arg, const char *key, const uint8_t *data, size_t len)
{
    restore_ctx *r = arg;
    char uri[DUMP_QUEUE_MAX_URI_BYTES + 1], err[CONTROLLER_ERR_LEN];
    uint64_t id = 0;
    int rc = PGC_ERR_MALFORMED;
    snprintf(err, sizeof err, "unknown key");
    switch (queue_kv_parse_key(key, uri, sizeof uri, &id)) {
    case QUEUE_KV_KEY_ITEM: {
        queue_kv_item_value v;
        if ((rc = queue_kv_decode_item(data, len, &v, err, sizeof err)) != PGC_OK)
            break;
        dump_queue_spec spec = {v.schema, v.table, v.page_begin, v.page_end};
        if ((rc = dump_queue_restore_item(r->c->q, uri, id, &spec, v.attempts, err, sizeof err)) ==
            PGC_OK)
            r->items++;
        break;
    }
    case QUEUE_KV_KEY_META: {
        int64_t cd;
        uint64_t done, next;
        if ((rc = queue_kv_decode_meta(data, len, &cd, &done, &next, err, sizeof err)) != PGC_OK)
            break;
        if ((rc = dump_queue_restore_meta(r->c->q, uri, cd, done, next, err, sizeof err)) == PGC_OK)
            r->metas++;
        break;
    }
    case QUEUE_KV_KEY_UNKNOWN:
        break;
    }
    if (rc == PGC_ERR_NOMEM)
        return rc;
    if (rc != PGC_OK) {
        r->bad++;
        log_warn("bucket entry skipped", "key=%.64s error=\"%s\"", key, err);
    }
    return 0;
}

int controller_store_restore(controller *c)
{
    char err[CONTROLLER_ERR_LEN];
    restore_ctx r = {c, 0, 0, 0};
    int rc = jskv_scan(c->kv, QUEUE_KV_META_FILTER, restore_one, &r, err, sizeof err);
    if (rc == PGC_OK)
        rc = jskv_scan(c->kv, QUEUE_KV_ITEM_FILTER, restore_one, &r, err, sizeof err);
    if (rc != PGC_OK) {
        log_error("cannot read the controller's state from its bucket", "bucket=%s error=\"%s\"",
                  c->cfg->bucket, rc == PGC_ERR_NOMEM ? "out of memory" : err);
        return -1;
    }
    dump_queue_restore_finish(c->q);
    log_info("state restored", "bucket=%s items=%zu uris=%zu skipped=%zu", c->cfg->bucket, r.items,
             dump_queue_uri_count(c->q), r.bad);
    return 0;
}
