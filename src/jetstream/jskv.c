/* JetStream key-value bucket (see jskv.h). */
#include "jetstream/jskv.h"

#include "core/status.h"
#include "jetstream/jsauth.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_OP_TIMEOUT_MS 5000
#define KV_MAX_VALUE_BYTES (1024 * 1024)
#define KV_SUBJECT_MAX 4096

struct jskv {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    char *bucket;
};

static int nats_fail(char *err, size_t err_len, int status, const char *what, const char *key,
                     natsStatus s)
{
    const char *last = nats_GetLastError(NULL);
    return errbuf_set(err, err_len, status, "jetstream kv: %s%s%s: %s%s%s", what, key ? " " : "",
                      key ? key : "", natsStatus_GetText(s), last && *last ? ": " : "",
                      last && *last ? last : "");
}

static int connect_js(const char *nats_url, natsConnection **nc, jsCtx **js, char *err,
                      size_t err_len)
{
    natsOptions *opts = NULL;
    natsStatus ns;
    if ((ns = natsOptions_Create(&opts)) != NATS_OK ||
        (ns = natsOptions_SetName(opts, "pgcapture-controller")) != NATS_OK ||
        (ns = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (ns = natsOptions_SetReconnectWait(opts, 250)) != NATS_OK ||
        (ns = natsOptions_SetTimeout(opts, 2000)) != NATS_OK) {
        natsOptions_Destroy(opts);
        return nats_fail(err, err_len, PGC_ERR_CONFIG, "bad NATS options", NULL, ns);
    }
    ns = jsauth_connect(nc, opts, nats_url);
    natsOptions_Destroy(opts);
    if (ns != NATS_OK)
        return jsauth_error(err, err_len, nats_url, ns);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = KV_OP_TIMEOUT_MS;
    if ((ns = natsConnection_JetStream(js, *nc, &jo)) != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "no JetStream context", NULL, ns);
    return PGC_OK;
}

int jskv_open(const char *nats_url, const char *bucket, int replicas, jskv **out, char *err,
              size_t err_len)
{
    jskv *kv = calloc(1, sizeof *kv);
    if (!kv || !(kv->bucket = strdup(bucket))) {
        free(kv);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream kv: out of memory");
    }
    int rc = connect_js(nats_url, &kv->nc, &kv->js, err, err_len);
    if (rc != PGC_OK) {
        jskv_destroy(kv);
        return rc;
    }
    natsStatus ns = js_KeyValue(&kv->kv, kv->js, bucket);
    if (ns == NATS_NOT_FOUND) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = bucket;
        kc.Description = "pgcapture controller: dump queues";
        kc.History = 1;
        kc.StorageType = js_FileStorage;
        kc.MaxValueSize = KV_MAX_VALUE_BYTES;
        kc.Replicas = replicas > 0 ? replicas : 1;
        ns = js_CreateKeyValue(&kv->kv, kv->js, &kc);
    }
    if (ns != NATS_OK) {
        rc = nats_fail(err, err_len, PGC_ERR_CONN, "cannot open bucket", bucket, ns);
        jskv_destroy(kv);
        return rc;
    }
    *out = kv;
    return PGC_OK;
}

int jskv_replicas(jskv *kv)
{
    kvStatus *st = NULL;
    if (kvStore_Status(&st, kv->kv) != NATS_OK)
        return 0;
    int64_t n = kvStatus_Replicas(st);
    kvStatus_Destroy(st);
    return (int)n;
}

void jskv_destroy(jskv *kv)
{
    if (!kv)
        return;
    kvStore_Destroy(kv->kv);
    jsCtx_Destroy(kv->js);
    natsConnection_Destroy(kv->nc);
    free(kv->bucket);
    free(kv);
}

int jskv_put(jskv *kv, const char *key, const void *data, size_t len, char *err, size_t err_len)
{
    if (len > KV_MAX_VALUE_BYTES)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                          "jetstream kv: value of %zu bytes for %s is over %d", len, key,
                          KV_MAX_VALUE_BYTES);
    natsStatus ns = kvStore_Put(NULL, kv->kv, key, data, (int)len);
    if (ns != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot put", key, ns);
    return PGC_OK;
}

int jskv_delete(jskv *kv, const char *key, char *err, size_t err_len)
{
    /* A delete marker replaces the value (history 1), cheaply; jskv_purge drops markers
     * in bulk. */
    natsStatus ns = kvStore_Delete(kv->kv, key);
    if (ns != NATS_OK && ns != NATS_NOT_FOUND)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot delete", key, ns);
    return PGC_OK;
}

int jskv_purge(jskv *kv, const char *keys, char *err, size_t err_len)
{
    /* Purge the keys' subjects from the bucket's stream: no marker is left, unlike
     * kvStore_Purge, and kvStore_PurgeDeletes leaks memory in libnats 3.4.1. The server
     * scans for the subjects, so this is for occasional bulk clean-up, not per key. */
    char stream[200], subject[KV_SUBJECT_MAX];
    int n1 = snprintf(stream, sizeof stream, "KV_%s", kv->bucket);
    int n2 = snprintf(subject, sizeof subject, "$KV.%s.%s", kv->bucket, keys);
    if (n1 < 0 || (size_t)n1 >= sizeof stream || n2 < 0 || (size_t)n2 >= sizeof subject)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "jetstream kv: keys too long: %.64s",
                          keys);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = KV_OP_TIMEOUT_MS;
    jo.Stream.Purge.Subject = subject;
    jsErrCode jerr = 0;
    natsStatus ns = js_PurgeStream(kv->js, stream, &jo, &jerr);
    if (ns != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot purge", keys, ns);
    return PGC_OK;
}

int jskv_stored(jskv *kv, uint64_t *messages, char *err, size_t err_len)
{
    char stream[200];
    int n = snprintf(stream, sizeof stream, "KV_%s", kv->bucket);
    if (n < 0 || (size_t)n >= sizeof stream)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "jetstream kv: bucket name too long");
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, kv->js, stream, NULL, &jerr);
    if (ns != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot read the bucket's stream", stream, ns);
    *messages = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return PGC_OK;
}

int jskv_get(jskv *kv, const char *key, uint8_t **data, size_t *len, char *err, size_t err_len)
{
    kvEntry *e = NULL;
    natsStatus ns = kvStore_Get(&e, kv->kv, key);
    if (ns == NATS_NOT_FOUND)
        return errbuf_set(err, err_len, PGC_ERR_NOT_FOUND, "jetstream kv: no key %s", key);
    if (ns != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot get", key, ns);
    int n = kvEntry_ValueLen(e);
    uint8_t *copy = malloc(n > 0 ? (size_t)n : 1);
    if (!copy) {
        kvEntry_Destroy(e);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "jetstream kv: out of memory");
    }
    if (n > 0)
        memcpy(copy, kvEntry_Value(e), (size_t)n);
    kvEntry_Destroy(e);
    *data = copy;
    *len = n > 0 ? (size_t)n : 0;
    return PGC_OK;
}

int jskv_scan(jskv *kv, const char *filter, jskv_scan_fn fn, void *arg, char *err, size_t err_len)
{
    kvWatcher *w = NULL;
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    /* Not IgnoreDeletes: with it, libnats 3.4.1 did not post its end-of-initial-values
     * marker on a bucket holding 20,000 purge markers (the scan timed out); without it
     * the same bucket is read in 0.15 s and deletes are skipped below. */
    natsStatus ns = kvStore_Watch(&w, kv->kv, filter, &wo);
    if (ns != NATS_OK)
        return nats_fail(err, err_len, PGC_ERR_CONN, "cannot watch", filter, ns);
    int rc = PGC_OK;
    for (;;) {
        kvEntry *e = NULL;
        ns = kvWatcher_Next(&e, w, KV_OP_TIMEOUT_MS);
        if (ns != NATS_OK) {
            rc = nats_fail(err, err_len, PGC_ERR_TIMEOUT, "scan stopped short", filter, ns);
            break;
        }
        if (!e) /* the watcher's marker: every current value has been delivered */
            break;
        if (kvEntry_Operation(e) == kvOp_Put) {
            int n = kvEntry_ValueLen(e);
            rc = fn(arg, kvEntry_Key(e), (const uint8_t *)kvEntry_Value(e), n > 0 ? (size_t)n : 0);
        }
        kvEntry_Destroy(e);
        if (rc != 0)
            break;
    }
    kvWatcher_Stop(w);
    kvWatcher_Destroy(w);
    return rc;
}

int jskv_delete_bucket(const char *nats_url, const char *bucket, char *err, size_t err_len)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = connect_js(nats_url, &nc, &js, err, err_len);
    if (rc == PGC_OK) {
        natsStatus ns = js_DeleteKeyValue(js, bucket);
        if (ns != NATS_OK && ns != NATS_NOT_FOUND)
            rc = nats_fail(err, err_len, PGC_ERR_CONN, "cannot delete bucket", bucket, ns);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}
