/* Keys and values of the controller's bucket (see queue_kv.h). */
#include "roles/controller/queue_kv.h"

#include "codec/bigendian.h"
#include "core/status.h"

#include <stdio.h>
#include <string.h>

#define ITEM_MAGIC 0x49 /* 'I' */
#define META_MAGIC 0x4D /* 'M' */
#define FORMAT_VERSION 1

static const char hexdigits[] = "0123456789abcdef";

static int put_uri_hex(const char *prefix, const char *uri, char *key, size_t key_len, size_t *pos)
{
    size_t ulen = strlen(uri), plen = strlen(prefix);
    if (ulen == 0 || ulen > DUMP_QUEUE_MAX_URI_BYTES || plen + 2 * ulen + 1 > key_len)
        return PGC_ERR_INVALID;
    memcpy(key, prefix, plen);
    size_t k = plen;
    for (size_t i = 0; i < ulen; i++) {
        key[k++] = hexdigits[(uint8_t)uri[i] >> 4];
        key[k++] = hexdigits[(uint8_t)uri[i] & 15];
    }
    key[k] = 0;
    *pos = k;
    return PGC_OK;
}

int queue_kv_item_key(const char *uri, uint64_t id, char *key, size_t key_len)
{
    size_t k;
    int rc = put_uri_hex("q.", uri, key, key_len, &k);
    if (rc != PGC_OK)
        return rc;
    if (k + 18 > key_len)
        return PGC_ERR_INVALID;
    snprintf(key + k, key_len - k, ".%016llx", (unsigned long long)id);
    return PGC_OK;
}

int queue_kv_meta_key(const char *uri, char *key, size_t key_len)
{
    size_t k;
    return put_uri_hex("m.", uri, key, key_len, &k);
}

int queue_kv_items_filter(const char *uri, char *key, size_t key_len)
{
    size_t k;
    int rc = put_uri_hex("q.", uri, key, key_len, &k);
    if (rc != PGC_OK)
        return rc;
    if (k + 3 > key_len)
        return PGC_ERR_INVALID;
    memcpy(key + k, ".*", 3);
    return PGC_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes hex from s up to `end` into uri; false when not clean hex or too long. */
static bool get_uri_hex(const char *s, size_t n, char *uri, size_t uri_len)
{
    if (n == 0 || n % 2 || n / 2 >= uri_len || n / 2 > DUMP_QUEUE_MAX_URI_BYTES)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return false;
        uri[i / 2] = (char)(hi << 4 | lo);
    }
    uri[n / 2] = 0;
    return true;
}

queue_kv_key_kind queue_kv_parse_key(const char *key, char *uri, size_t uri_len, uint64_t *id)
{
    if (strncmp(key, "m.", 2) == 0)
        return get_uri_hex(key + 2, strlen(key + 2), uri, uri_len) ? QUEUE_KV_KEY_META
                                                                   : QUEUE_KV_KEY_UNKNOWN;
    if (strncmp(key, "q.", 2) != 0)
        return QUEUE_KV_KEY_UNKNOWN;
    const char *dot = strrchr(key + 2, '.');
    if (!dot || strlen(dot + 1) != 16 ||
        !get_uri_hex(key + 2, (size_t)(dot - key - 2), uri, uri_len))
        return QUEUE_KV_KEY_UNKNOWN;
    uint64_t v = 0;
    for (const char *p = dot + 1; *p; p++) {
        int d = hexval(*p);
        if (d < 0)
            return QUEUE_KV_KEY_UNKNOWN;
        v = v << 4 | (uint64_t)d;
    }
    *id = v;
    return QUEUE_KV_KEY_ITEM;
}

size_t queue_kv_encode_item(const dump_queue_item *item, uint8_t *buf, size_t buf_len)
{
    size_t sl = strlen(item->schema), tl = strlen(item->table);
    size_t n = 2 + 12 + 2 + sl + 2 + tl;
    if (sl > DUMP_QUEUE_MAX_NAME_BYTES || tl > DUMP_QUEUE_MAX_NAME_BYTES || n > buf_len)
        return 0;
    buf[0] = ITEM_MAGIC;
    buf[1] = FORMAT_VERSION;
    bigendian_put32(buf + 2, item->page_begin);
    bigendian_put32(buf + 6, item->page_end);
    bigendian_put32(buf + 10, item->attempts);
    size_t k = 14;
    bigendian_put16(buf + k, (uint16_t)sl);
    k += 2;
    memcpy(buf + k, item->schema, sl);
    k += sl;
    bigendian_put16(buf + k, (uint16_t)tl);
    k += 2;
    memcpy(buf + k, item->table, tl);
    return k + tl;
}

/* Reads a 16-bit length-prefixed name at *k into out (NUL-terminated). */
static bool get_name(const uint8_t *data, size_t len, size_t *k, char *out)
{
    if (len - *k < 2)
        return false;
    size_t n = bigendian_get16(data + *k);
    *k += 2;
    if (n > DUMP_QUEUE_MAX_NAME_BYTES || len - *k < n || memchr(data + *k, 0, n))
        return false;
    memcpy(out, data + *k, n);
    out[n] = 0;
    *k += n;
    return true;
}

int queue_kv_decode_item(const uint8_t *data, size_t len, queue_kv_item_value *out, char *err,
                         size_t err_len)
{
    if (len < 2)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "controller state: item of %zu bytes",
                          len);
    if (data[0] != ITEM_MAGIC || data[1] != FORMAT_VERSION)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "controller state: not an item of format %d", FORMAT_VERSION);
    if (len < 14)
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED, "controller state: item of %zu bytes",
                          len);
    out->page_begin = bigendian_get32(data + 2);
    out->page_end = bigendian_get32(data + 6);
    out->attempts = bigendian_get32(data + 10);
    size_t k = 14;
    if (!get_name(data, len, &k, out->schema) || !get_name(data, len, &k, out->table))
        return errbuf_set(err, err_len, PGC_ERR_TRUNCATED,
                          "controller state: item names truncated or too long");
    if (k != len)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "controller state: %zu bytes after the item", len - k);
    return PGC_OK;
}

size_t queue_kv_encode_meta(int64_t cooldown_ms, uint64_t done, uint64_t next_id, uint8_t *buf,
                            size_t buf_len)
{
    if (buf_len < 26)
        return 0;
    buf[0] = META_MAGIC;
    buf[1] = FORMAT_VERSION;
    bigendian_put64(buf + 2, (uint64_t)cooldown_ms);
    bigendian_put64(buf + 10, done);
    bigendian_put64(buf + 18, next_id);
    return 26;
}

int queue_kv_decode_meta(const uint8_t *data, size_t len, int64_t *cooldown_ms, uint64_t *done,
                         uint64_t *next_id, char *err, size_t err_len)
{
    if (len != 26)
        return errbuf_set(err, err_len, len < 26 ? PGC_ERR_TRUNCATED : PGC_ERR_MALFORMED,
                          "controller state: meta of %zu bytes, expected 26", len);
    if (data[0] != META_MAGIC || data[1] != FORMAT_VERSION)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "controller state: not a meta value of format %d", FORMAT_VERSION);
    *cooldown_ms = (int64_t)bigendian_get64(data + 2);
    *done = bigendian_get64(data + 10);
    *next_id = bigendian_get64(data + 18);
    return PGC_OK;
}
