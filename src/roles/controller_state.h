/* How the controller's queues are kept in its JetStream key-value bucket: one key per
 * queued item ("q.<uri hex>.<id as 16 hex>"), deleted when the item is done, and one per
 * URI for its cool-down and counts ("m.<uri hex>"). Outstanding items keep their key, so
 * a restarted controller hands them out again. URIs are hex-encoded because keys may only
 * hold subject-token characters. Pure encoders and decoders; values are big-endian. */
#ifndef PGC_ROLES_CONTROLLER_STATE_H
#define PGC_ROLES_CONTROLLER_STATE_H

#include "roles/controller_queue.h"

#include <stddef.h>
#include <stdint.h>

#define CS_MAX_KEY_BYTES (2 * CQ_MAX_URI_BYTES + 32)
#define CS_MAX_VALUE_BYTES (16 + 2 * (CQ_MAX_NAME_BYTES + 2))
#define CS_ITEM_FILTER "q.>"
#define CS_META_FILTER "m.>"

int cs_item_key(const char *uri, uint64_t id, char *key, size_t key_len);
int cs_meta_key(const char *uri, char *key, size_t key_len);
/* The wildcard matching every item key of the URI ("q.<uri hex>.*"). */
int cs_items_filter(const char *uri, char *key, size_t key_len);

typedef enum cs_key_kind { CS_KEY_UNKNOWN = 0, CS_KEY_ITEM, CS_KEY_META } cs_key_kind;
/* Decodes a key: its kind, the URI (NUL-terminated) and, for items, the id. */
cs_key_kind cs_parse_key(const char *key, char *uri, size_t uri_len, uint64_t *id);

typedef struct cs_item_value {
    char schema[CQ_MAX_NAME_BYTES + 1];
    char table[CQ_MAX_NAME_BYTES + 1];
    uint32_t page_begin, page_end, attempts;
} cs_item_value;

/* Returns the encoded length, 0 if buf is too small. */
size_t cs_encode_item(const cq_item *item, uint8_t *buf, size_t buf_len);
int cs_decode_item(const uint8_t *data, size_t len, cs_item_value *out, char *err, size_t err_len);
size_t cs_encode_meta(int64_t cooldown_ms, uint64_t done, uint64_t next_id, uint8_t *buf,
                      size_t buf_len);
int cs_decode_meta(const uint8_t *data, size_t len, int64_t *cooldown_ms, uint64_t *done,
                   uint64_t *next_id, char *err, size_t err_len);

#endif
