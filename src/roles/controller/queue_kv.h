/* How the controller's queues are kept in its JetStream key-value bucket: one key per
 * queued item ("q.<uri hex>.<id as 16 hex>"), deleted when the item is done, and one per
 * URI for its cool-down and counts ("m.<uri hex>"). Outstanding items keep their key, so
 * a restarted controller hands them out again. URIs are hex-encoded because keys may only
 * hold subject-token characters. Pure encoders and decoders; values are big-endian. */
#ifndef PGC_ROLES_CONTROLLER_QUEUE_KV_H
#define PGC_ROLES_CONTROLLER_QUEUE_KV_H

#include "roles/controller/dump_queue.h"

#include <stddef.h>
#include <stdint.h>

#define QUEUE_KV_MAX_KEY_BYTES (2 * DUMP_QUEUE_MAX_URI_BYTES + 32)
#define QUEUE_KV_MAX_VALUE_BYTES (16 + 2 * (DUMP_QUEUE_MAX_NAME_BYTES + 2))
#define QUEUE_KV_ITEM_FILTER "q.>"
#define QUEUE_KV_META_FILTER "m.>"

int queue_kv_item_key(const char *uri, uint64_t id, char *key, size_t key_len);
int queue_kv_meta_key(const char *uri, char *key, size_t key_len);
/* The wildcard matching every item key of the URI ("q.<uri hex>.*"). */
int queue_kv_items_filter(const char *uri, char *key, size_t key_len);

typedef enum queue_kv_key_kind {
    QUEUE_KV_KEY_UNKNOWN = 0,
    QUEUE_KV_KEY_ITEM,
    QUEUE_KV_KEY_META
} queue_kv_key_kind;
/* Decodes a key: its kind, the URI (NUL-terminated) and, for items, the id. */
queue_kv_key_kind queue_kv_parse_key(const char *key, char *uri, size_t uri_len, uint64_t *id);

typedef struct queue_kv_item_value {
    char schema[DUMP_QUEUE_MAX_NAME_BYTES + 1];
    char table[DUMP_QUEUE_MAX_NAME_BYTES + 1];
    uint32_t page_begin, page_end, attempts;
} queue_kv_item_value;

/* Returns the encoded length, 0 if buf is too small. */
size_t queue_kv_encode_item(const dump_queue_item *item, uint8_t *buf, size_t buf_len);
int queue_kv_decode_item(const uint8_t *data, size_t len, queue_kv_item_value *out, char *err,
                         size_t err_len);
size_t queue_kv_encode_meta(int64_t cooldown_ms, uint64_t done, uint64_t next_id, uint8_t *buf,
                            size_t buf_len);
int queue_kv_decode_meta(const uint8_t *data, size_t len, int64_t *cooldown_ms, uint64_t *done,
                         uint64_t *next_id, char *err, size_t err_len);

#endif
