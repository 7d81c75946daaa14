/* The Capture request decoder: inits and acks decoded with every length checked, and a
 * property test feeding it garbage, every truncation of valid requests, bit flips and
 * oversized input (run under ASan by `make asan T=test_capture_request`). */
#include "core/status.h"
#include "google/protobuf/struct.pb-c.h"
#include "pgcapture.pb-c.h"
#include "roles/gateway/capture_request.h"
#include "harness/runner.h"

#include <stdlib.h>
#include <string.h>

static size_t pack_init(uint8_t *buf, const char *uri, const char *regex, bool regex_as_number)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e0 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry e1 = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Value v0 = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Value v1 = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[2] = {&e0, &e1};
    init.uri = (char *)uri;
    v0.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    v0.bool_value = 1;
    e0.key = "Unknown";
    e0.value = &v0;
    if (regex_as_number) {
        v1.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v1.number_value = 3;
    } else {
        v1.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v1.string_value = (char *)regex;
    }
    e1.key = "TableRegex";
    e1.value = &v1;
    params.n_fields = regex || regex_as_number ? 2 : 1;
    params.fields = entries;
    init.parameters = &params;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    return pgcapture__capture_request__pack(&req, buf);
}

static size_t pack_ack(uint8_t *buf, uint64_t lsn, uint32_t seq, const uint8_t *data,
                       size_t data_len, const char *reason)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = lsn;
    cp.seq = seq;
    cp.data.data = (uint8_t *)data;
    cp.data.len = data_len;
    ack.checkpoint = &cp;
    if (reason)
        ack.requeue_reason = (char *)reason;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    req.ack = &ack;
    return pgcapture__capture_request__pack(&req, buf);
}

static capture_request r;

static void test_gwreq_decodes_init_with_table_regex(void)
{
    uint8_t buf[512];
    char err[256];
    size_t n = pack_init(buf, "my-uri", "^t_", false);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_EQ_INT(CAPTURE_REQUEST_INIT, r.kind);
    EXPECT_EQ_STR("my-uri", r.uri);
    EXPECT_TRUE(r.has_table_regex);
    EXPECT_EQ_STR("^t_", r.table_regex);
    n = pack_init(buf, "u", NULL, false);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(!r.has_table_regex);
    n = pack_init(buf, "u", NULL, true);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &r, err, sizeof err));
    n = pack_init(buf, "", NULL, false);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &r, err, sizeof err));
}

static size_t pack_truncate(uint8_t *buf, const Google__Protobuf__Value *v)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[1] = {&e};
    init.uri = "u";
    e.key = "Truncate";
    e.value = (Google__Protobuf__Value *)v;
    params.n_fields = 1;
    params.fields = entries;
    init.parameters = &params;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    return pgcapture__capture_request__pack(&req, buf);
}

static void test_gwreq_truncate_is_a_bool_or_its_string(void)
{
    uint8_t buf[256];
    char err[256];
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    size_t n = pack_init(buf, "u", NULL, false);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(!r.truncate); /* not asked: no TRUNCATE changes */
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    v.bool_value = 1;
    n = pack_truncate(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(r.truncate);
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = "true";
    n = pack_truncate(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(r.truncate);
    v.string_value = "false";
    n = pack_truncate(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(!r.truncate);
    v.string_value = "yes";
    n = pack_truncate(buf, &v);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &r, err, sizeof err));
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = 1;
    n = pack_truncate(buf, &v);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &r, err, sizeof err));
}

static void test_gwreq_decodes_ack_and_requeue(void)
{
    uint8_t buf[512];
    char err[256];
    size_t n = pack_ack(buf, 0x1234, 7, (const uint8_t *)"abc", 3, NULL);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_EQ_INT(CAPTURE_REQUEST_ACK, r.kind);
    EXPECT_EQ_UINT(0x1234, r.lsn);
    EXPECT_EQ_UINT(7, r.seq);
    EXPECT_EQ_MEM("abc", 3, r.data, r.data_len);
    EXPECT_TRUE(!r.requeue);
    n = pack_ack(buf, 1, 1, NULL, 0, "later");
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &r, err, sizeof err));
    EXPECT_TRUE(r.requeue);
    EXPECT_EQ_STR("later", r.requeue_reason);
    uint8_t big[CAPTURE_REQUEST_MAX_DATA + 1] = {0};
    n = pack_ack(buf, 1, 1, big, sizeof big, NULL);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, capture_request_decode(buf, n, &r, err, sizeof err));
}

static void test_gwreq_refuses_empty_and_oversized_requests(void)
{
    char err[256];
    /* An empty message is a CaptureRequest with no type. */
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  capture_request_decode((const uint8_t *)"", 0, &r, err, sizeof err));
    uint8_t *huge = calloc(1, CAPTURE_REQUEST_MAX_BYTES + 1);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE,
                  capture_request_decode(huge, CAPTURE_REQUEST_MAX_BYTES + 1, &r, err, sizeof err));
    free(huge);
    /* An oversized URI inside a well-formed request. */
    char *uri = malloc(CAPTURE_REQUEST_MAX_URI + 2);
    memset(uri, 'u', CAPTURE_REQUEST_MAX_URI + 1);
    uri[CAPTURE_REQUEST_MAX_URI + 1] = '\0';
    uint8_t *buf = malloc(CAPTURE_REQUEST_MAX_URI + 200);
    size_t n = pack_init(buf, uri, NULL, false);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, capture_request_decode(buf, n, &r, err, sizeof err));
    free(uri);
    free(buf);
    /* An ack without a checkpoint. */
    const uint8_t no_cp[] = {0x12, 0x00};
    EXPECT_EQ_INT(PGC_ERR_MALFORMED,
                  capture_request_decode(no_cp, sizeof no_cp, &r, err, sizeof err));
}

/* Every prefix, every single-bit flip of valid requests, and random bytes: the decoder
 * returns a status (never crashes, never reads out of bounds under ASan), and a success
 * always yields a coherent request. */
static void test_gwreq_property_garbage_truncation_and_bit_flips(void)
{
    uint8_t valid[3][512];
    size_t lens[3];
    lens[0] = pack_init(valid[0], "some-uri", "^(a|b)+$", false);
    lens[1] =
        pack_ack(valid[1], 0xABCDEF12345ULL, 99, (const uint8_t *)"0123456789abc", 13, "reason");
    lens[2] = pack_ack(valid[2], 5, 0, NULL, 0, NULL);
    char err[256];
    uint8_t buf[512];
    for (int k = 0; k < 3; k++) {
        for (size_t cut = 0; cut <= lens[k]; cut++) {
            int rc = capture_request_decode(valid[k], cut, &r, err, sizeof err);
            EXPECT_TRUE(rc == PGC_OK || rc < 0);
            if (rc == PGC_OK)
                EXPECT_TRUE(r.kind == CAPTURE_REQUEST_INIT || r.kind == CAPTURE_REQUEST_ACK);
        }
        for (size_t bit = 0; bit < lens[k] * 8; bit++) {
            memcpy(buf, valid[k], lens[k]);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = capture_request_decode(buf, lens[k], &r, err, sizeof err);
            EXPECT_TRUE(rc == PGC_OK || rc < 0);
            if (rc == PGC_OK && r.kind == CAPTURE_REQUEST_INIT)
                EXPECT_TRUE(strlen(r.uri) > 0 && strlen(r.uri) <= CAPTURE_REQUEST_MAX_URI);
            if (rc == PGC_OK && r.kind == CAPTURE_REQUEST_ACK)
                EXPECT_TRUE(r.data_len <= CAPTURE_REQUEST_MAX_DATA);
        }
    }
    srand(12345);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % 300);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand();
        /* Half of the time start like a request, so the parser goes deeper. */
        if (n > 2 && iter % 2)
            buf[0] = iter % 4 == 1 ? 0x0a : 0x12;
        int rc = capture_request_decode(buf, n, &r, err, sizeof err);
        EXPECT_TRUE(rc == PGC_OK || rc < 0);
    }
}

static size_t pack_init_param(uint8_t *buf, const char *key, Google__Protobuf__Value *value);

static size_t pack_init_batch(uint8_t *buf, Google__Protobuf__Value *limit)
{
    return pack_init_param(buf, "BatchLimit", limit);
}

static size_t pack_init_param(uint8_t *buf, const char *key, Google__Protobuf__Value *value)
{
    Pgcapture__CaptureRequest req = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureInit init = PGCAPTURE__CAPTURE_INIT__INIT;
    Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[1] = {&e};
    init.uri = "u";
    e.key = (char *)key;
    e.value = value;
    params.n_fields = 1;
    params.fields = entries;
    init.parameters = &params;
    req.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_INIT;
    req.init = &init;
    return pgcapture__capture_request__pack(&req, buf);
}

static void test_batch_limit_is_read_lowered_and_checked(void)
{
    uint8_t buf[256];
    capture_request req;
    char err[200];
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = 500;
    size_t n = pack_init_batch(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(500, req.batch_limit);
    v.number_value = 1e9;
    n = pack_init_batch(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(CAPTURE_REQUEST_MAX_BATCH, req.batch_limit);
    v.number_value = 0;
    n = pack_init_batch(buf, &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(0, req.batch_limit);
    /* Without the parameter: per-change mode, as pgcapture's clients get. */
    n = pack_init(buf, "u", NULL, false);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(0, req.batch_limit);
    const double bad[] = {-1, 2.5};
    for (size_t i = 0; i < 2; i++) {
        v.number_value = bad[i];
        n = pack_init_batch(buf, &v);
        EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
    }
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = "100";
    n = pack_init_batch(buf, &v);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_TRUE(strstr(err, "BatchLimit") != NULL);
}

static void test_max_message_size_is_read_capped_and_checked(void)
{
    uint8_t buf[256];
    capture_request req;
    char err[200];
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = 8 * 1024 * 1024;
    size_t n = pack_init_param(buf, "MaxMessageSize", &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(8 * 1024 * 1024, req.max_message_bytes);
    v.number_value = 1e12;
    n = pack_init_param(buf, "MaxMessageSize", &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(CAPTURE_REQUEST_MAX_MESSAGE_MAX, req.max_message_bytes);
    /* A client that sends every parameter as a string. */
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = "1074855936";
    n = pack_init_param(buf, "MaxMessageSize", &v);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(1074855936, req.max_message_bytes);
    /* Absent: 0, the gateway's --max-message-size then. */
    n = pack_init(buf, "u", NULL, false);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_UINT(0, req.max_message_bytes);
    const char *bad_s[] = {"", "12x", "-5", "1e9", "100"};
    for (size_t i = 0; i < sizeof bad_s / sizeof bad_s[0]; i++) {
        v.string_value = (char *)bad_s[i];
        n = pack_init_param(buf, "MaxMessageSize", &v);
        EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
        EXPECT_TRUE(strstr(err, "MaxMessageSize") != NULL);
    }
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    const double bad[] = {65535, -1, 70000.5, 0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v.number_value = bad[i];
        n = pack_init_param(buf, "MaxMessageSize", &v);
        EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
    }
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    n = pack_init_param(buf, "MaxMessageSize", &v);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
}

static void test_batch_acks_are_decoded_and_must_not_carry_a_checkpoint(void)
{
    uint8_t buf[256];
    capture_request req;
    char err[200];
    Pgcapture__CaptureRequest cr = PGCAPTURE__CAPTURE_REQUEST__INIT;
    Pgcapture__CaptureAck ack = PGCAPTURE__CAPTURE_ACK__INIT;
    cr.type_case = PGCAPTURE__CAPTURE_REQUEST__TYPE_ACK;
    cr.ack = &ack;
    ack.batch = 77;
    size_t n = pgcapture__capture_request__pack(&cr, buf);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_EQ_INT(CAPTURE_REQUEST_ACK, req.kind);
    EXPECT_EQ_UINT(77, req.batch);
    EXPECT_TRUE(!req.requeue);
    ack.requeue_reason = "full";
    n = pgcapture__capture_request__pack(&cr, buf);
    EXPECT_EQ_INT(PGC_OK, capture_request_decode(buf, n, &req, err, sizeof err));
    EXPECT_TRUE(req.requeue);
    EXPECT_EQ_STR("full", req.requeue_reason);
    Pgcapture__Checkpoint cp = PGCAPTURE__CHECKPOINT__INIT;
    cp.lsn = 5;
    ack.checkpoint = &cp;
    n = pgcapture__capture_request__pack(&cr, buf);
    EXPECT_EQ_INT(PGC_ERR_INVALID, capture_request_decode(buf, n, &req, err, sizeof err));
}

UNIT_MAIN(UNIT_CASE(test_batch_limit_is_read_lowered_and_checked),
          UNIT_CASE(test_max_message_size_is_read_capped_and_checked),
          UNIT_CASE(test_gwreq_truncate_is_a_bool_or_its_string),
          UNIT_CASE(test_batch_acks_are_decoded_and_must_not_carry_a_checkpoint),
          UNIT_CASE(test_gwreq_decodes_init_with_table_regex),
          UNIT_CASE(test_gwreq_decodes_ack_and_requeue),
          UNIT_CASE(test_gwreq_refuses_empty_and_oversized_requests),
          UNIT_CASE(test_gwreq_property_garbage_truncation_and_bit_flips))
