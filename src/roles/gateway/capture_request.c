/* Capture request decoding (see capture_request.h). */
#include "roles/gateway/capture_request.h"

#include "core/status.h"
#include "pgcapture.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Truncate: a bool, or the strings "true" and "false" (clients that send every parameter as
 * a string, like `pgcapture consume`). */
static int decode_truncate(const Google__Protobuf__Value *v, bool *out, char *err, size_t err_len)
{
    if (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE) {
        *out = v->bool_value;
        return PGC_OK;
    }
    if (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && v->string_value &&
        (strcmp(v->string_value, "true") == 0 || strcmp(v->string_value, "false") == 0)) {
        *out = v->string_value[0] == 't';
        return PGC_OK;
    }
    return errbuf_set(err, err_len, PGC_ERR_INVALID, "init: Truncate is not true or false");
}

/* BatchLimit: most changes per message in batch mode (0: per-change mode). */
static int decode_batch_limit(const Google__Protobuf__Value *v, capture_request *out, char *err,
                              size_t err_len)
{
    if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE ||
        !(v->number_value >= 0) || v->number_value != (double)(uint64_t)v->number_value)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "init: BatchLimit must be a whole number from 0 up");
    out->batch_limit = v->number_value > CAPTURE_REQUEST_MAX_BATCH ? CAPTURE_REQUEST_MAX_BATCH
                                                                   : (uint32_t)v->number_value;
    return PGC_OK;
}

/* MaxMessageSize: the client's receive limit in bytes, a number or a string of digits (a
 * client that sends every parameter as a string). */
static int decode_max_message(const Google__Protobuf__Value *v, capture_request *out, char *err,
                              size_t err_len)
{
    double d = -1;
    if (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE)
        d = v->number_value;
    else if (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && v->string_value &&
             *v->string_value && strlen(v->string_value) <= 15 &&
             strspn(v->string_value, "0123456789") == strlen(v->string_value))
        d = strtod(v->string_value, NULL);
    if (!(d >= CAPTURE_REQUEST_MAX_MESSAGE_MIN) || d != (double)(uint64_t)d)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "init: MaxMessageSize must be a whole number of bytes, at least %u",
                          CAPTURE_REQUEST_MAX_MESSAGE_MIN);
    out->max_message_bytes =
        d > CAPTURE_REQUEST_MAX_MESSAGE_MAX ? CAPTURE_REQUEST_MAX_MESSAGE_MAX : (uint32_t)d;
    return PGC_OK;
}

static int decode_init(const Pgcapture__CaptureInit *in, capture_request *out, char *err,
                       size_t err_len)
{
    size_t n = in->uri ? strlen(in->uri) : 0;
    if (n == 0)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "init: empty uri");
    if (n > CAPTURE_REQUEST_MAX_URI)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "init: uri of %zu bytes (max %d)", n,
                          CAPTURE_REQUEST_MAX_URI);
    memcpy(out->uri, in->uri, n + 1);
    const Google__Protobuf__Struct *p = in->parameters;
    for (size_t i = 0; p && i < p->n_fields; i++) {
        const Google__Protobuf__Struct__FieldsEntry *f = p->fields[i];
        if (f && f->key && strcmp(f->key, "Truncate") == 0) {
            int rc = decode_truncate(f->value, &out->truncate, err, err_len);
            if (rc != PGC_OK)
                return rc;
            continue;
        }
        if (f && f->key && strcmp(f->key, "MaxMessageSize") == 0) {
            int rc = decode_max_message(f->value, out, err, err_len);
            if (rc != PGC_OK)
                return rc;
            continue;
        }
        if (f && f->key && strcmp(f->key, "BatchLimit") == 0) {
            int rc = decode_batch_limit(f->value, out, err, err_len);
            if (rc != PGC_OK)
                return rc;
            continue;
        }
        if (!f || !f->key || strcmp(f->key, "TableRegex") != 0)
            continue;
        if (!f->value || f->value->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            return errbuf_set(err, err_len, PGC_ERR_INVALID, "init: TableRegex is not a string");
        size_t r = strlen(f->value->string_value);
        if (r > CAPTURE_REQUEST_MAX_REGEX)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                              "init: TableRegex of %zu bytes (max %d)", r,
                              CAPTURE_REQUEST_MAX_REGEX);
        memcpy(out->table_regex, f->value->string_value, r + 1);
        out->has_table_regex = r > 0;
    }
    return PGC_OK;
}

static int decode_ack(const Pgcapture__CaptureAck *in, capture_request *out, char *err,
                      size_t err_len)
{
    const Pgcapture__Checkpoint *cp = in->checkpoint;
    if (in->batch && cp)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "ack of batch %llu with a checkpoint",
                          (unsigned long long)in->batch);
    if (!cp && !in->batch)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "ack: no checkpoint");
    out->batch = in->batch;
    if (cp) {
        if (cp->data.len > CAPTURE_REQUEST_MAX_DATA)
            return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "ack: checkpoint data of %zu bytes",
                              cp->data.len);
        out->lsn = cp->lsn;
        out->seq = cp->seq;
        out->data_len = cp->data.len;
        if (cp->data.len)
            memcpy(out->data, cp->data.data, cp->data.len);
    }
    size_t r = in->requeue_reason ? strlen(in->requeue_reason) : 0;
    out->requeue = r > 0;
    if (r > CAPTURE_REQUEST_MAX_REASON)
        r = CAPTURE_REQUEST_MAX_REASON;
    if (r)
        memcpy(out->requeue_reason, in->requeue_reason, r);
    out->requeue_reason[r] = '\0';
    return PGC_OK;
}

int capture_request_decode(const uint8_t *data, size_t len, capture_request *out, char *err,
                           size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (len > CAPTURE_REQUEST_MAX_BYTES)
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "request of %zu bytes (max %d)", len,
                          CAPTURE_REQUEST_MAX_BYTES);
    Pgcapture__CaptureRequest *req = pgcapture__capture_request__unpack(NULL, len, data);
    if (!req)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "request of %zu bytes is not a CaptureRequest", len);
    int rc;
    switch (req->type_case) {
    case PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT:
        out->kind = CAPTURE_REQUEST_INIT;
        rc = decode_init(req->init, out, err, err_len);
        break;
    case PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK:
        out->kind = CAPTURE_REQUEST_ACK;
        rc = decode_ack(req->ack, out, err, err_len);
        break;
    default:
        rc = errbuf_set(err, err_len, PGC_ERR_MALFORMED, "request with neither init nor ack");
        break;
    }
    pgcapture__capture_request__free_unpacked(req, NULL);
    return rc;
}
