/* libFuzzer target for the gateway's decoding of a Capture stream's requests (a consumer's
 * bytes): capture_request_decode, and for an ack the checkpoint handle it carries
 * (cphandle_decode). Invariants: what decodes stays within the documented limits; a
 * decoded request written again as a CaptureRequest decodes to the same request; a handle
 * that decodes encodes to the same bytes. */
#include "codec/cphandle.h"
#include "core/status.h"
#include "pgcapture.pb-c.h"
#include "roles/gateway/capture_request.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_limits(const capture_request *r)
{
    if (r->kind == CAPTURE_REQUEST_INIT) {
        size_t n = strlen(r->uri);
        if (n == 0 || n > CAPTURE_REQUEST_MAX_URI ||
            strlen(r->table_regex) > CAPTURE_REQUEST_MAX_REGEX ||
            r->has_table_regex != (r->table_regex[0] != '\0') ||
            r->batch_limit > CAPTURE_REQUEST_MAX_BATCH)
            abort();
    } else if (r->kind == CAPTURE_REQUEST_ACK) {
        if (r->data_len > CAPTURE_REQUEST_MAX_DATA ||
            strlen(r->requeue_reason) > CAPTURE_REQUEST_MAX_REASON ||
            r->requeue != (r->requeue_reason[0] != '\0') || (r->batch && r->data_len))
            abort();
    } else {
        abort();
    }
}

/* The request written back as a CaptureRequest. */
static uint8_t *encode(const capture_request *r, size_t *len)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e[3], *ep[3];
    Google__Protobuf__Value v[3];
    for (int i = 0; i < 3; i++) {
        google__protobuf__struct__fields_entry__init(&e[i]);
        google__protobuf__value__init(&v[i]);
        e[i].value = &v[i];
        ep[i] = &e[i];
    }
    if (r->kind == CAPTURE_REQUEST_INIT) {
        req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
        req.init = &init;
        init.uri = (char *)r->uri;
        init.parameters = &params;
        params.fields = ep;
        e[0].key = "TableRegex";
        v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v[0].string_value = (char *)r->table_regex;
        e[1].key = "Truncate";
        v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v[1].bool_value = r->truncate;
        e[2].key = "BatchLimit";
        v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v[2].number_value = r->batch_limit;
        params.n_fields = 3;
    } else {
        req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
        req.ack = &ack;
        ack.batch = r->batch;
        ack.requeue_reason = (char *)r->requeue_reason;
        if (!r->batch) {
            ack.checkpoint = &cp;
            cp.lsn = r->lsn;
            cp.seq = r->seq;
            cp.data.data = (uint8_t *)r->data;
            cp.data.len = r->data_len;
        }
    }
    *len = pgcapture__capture_request__get_packed_size(&req);
    uint8_t *out = malloc(*len ? *len : 1);
    if (!out)
        abort();
    pgcapture__capture_request__pack(&req, out);
    return out;
}

static void check_same(const capture_request *a, const capture_request *b)
{
    if (a->kind != b->kind || strcmp(a->uri, b->uri) != 0 ||
        a->has_table_regex != b->has_table_regex || strcmp(a->table_regex, b->table_regex) != 0 ||
        a->truncate != b->truncate || a->batch_limit != b->batch_limit || a->batch != b->batch ||
        a->lsn != b->lsn || a->seq != b->seq || a->data_len != b->data_len ||
        memcmp(a->data, b->data, a->data_len) != 0 || a->requeue != b->requeue ||
        strcmp(a->requeue_reason, b->requeue_reason) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so that any over-read is caught. */
    uint8_t *in = malloc(size ? size : 1);
    capture_request *r = malloc(sizeof *r), *again = malloc(sizeof *again);
    if (!in || !r || !again)
        abort();
    if (size)
        memcpy(in, data, size);
    char err[256];
    err[0] = '\0';
    int rc = capture_request_decode(in, size, r, err, sizeof err);
    if (rc != PGC_OK && err[0] == '\0')
        abort();
    if (rc == PGC_OK) {
        check_limits(r);
        size_t len;
        uint8_t *bytes = encode(r, &len);
        if (capture_request_decode(bytes, len, again, err, sizeof err) != PGC_OK)
            abort();
        check_same(r, again);
        free(bytes);
        cphandle h;
        if (r->kind == CAPTURE_REQUEST_ACK &&
            cphandle_decode(r->data, r->data_len, &h, err, sizeof err) == PGC_OK) {
            uint8_t back[CPHANDLE_LEN];
            cphandle_encode(&h, back);
            if (r->data_len != CPHANDLE_LEN || memcmp(back, r->data, CPHANDLE_LEN) != 0 ||
                h.stream_seq == 0)
                abort();
        }
    }
    free(again);
    free(r);
    free(in);
    return 0;
}
