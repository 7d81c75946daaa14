/* The gRPC statuses a Capture stream ends with, as libpgcapture takes them: which are
 * permanent (retrying cannot fix them) and which transient, the pgc_status of each, their
 * names, and messages that carry the name, the server's message and the address. */
#include "harness/runner.h"

#include "client/stream_end.h"
#include "pgcapture.h"

#include <string.h>

static void test_each_grpc_code_maps_to_its_status_and_retry_decision(void)
{
    static const struct {
        pgc_grpc_code code;
        const char *name;
        pgc_status status;
        bool transient;
    } want[] = {
        {PGC_GRPC_CODE_OK, "OK", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_CANCELLED, "CANCELLED", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_UNKNOWN, "UNKNOWN", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_INVALID_ARGUMENT, "INVALID_ARGUMENT", PGC_ERR_INVALID, false},
        {PGC_GRPC_CODE_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", PGC_ERR_TIMEOUT, true},
        {PGC_GRPC_CODE_NOT_FOUND, "NOT_FOUND", PGC_ERR_NOT_FOUND, false},
        {PGC_GRPC_CODE_ALREADY_EXISTS, "ALREADY_EXISTS", PGC_ERR_STATE, false},
        {PGC_GRPC_CODE_PERMISSION_DENIED, "PERMISSION_DENIED", PGC_ERR_PERMISSION, false},
        {PGC_GRPC_CODE_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_FAILED_PRECONDITION, "FAILED_PRECONDITION", PGC_ERR_CONFIG, false},
        {PGC_GRPC_CODE_ABORTED, "ABORTED", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_OUT_OF_RANGE, "OUT_OF_RANGE", PGC_ERR_INVALID, false},
        {PGC_GRPC_CODE_UNIMPLEMENTED, "UNIMPLEMENTED", PGC_ERR_UNIMPLEMENTED, false},
        {PGC_GRPC_CODE_INTERNAL, "INTERNAL", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_UNAVAILABLE, "UNAVAILABLE", PGC_ERR_CONN, true},
        {PGC_GRPC_CODE_DATA_LOSS, "DATA_LOSS", PGC_ERR_DATA_LOSS, false},
        {PGC_GRPC_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", PGC_ERR_UNAUTHENTICATED, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        EXPECT_EQ_INT((int)i, (int)want[i].code);
        EXPECT_EQ_STR(want[i].name, pgc_grpc_code_get_name(want[i].code));
        EXPECT_EQ_INT(want[i].status, stream_end_status(want[i].code));
        if (pgc_status_is_transient(stream_end_status(want[i].code)) != want[i].transient)
            unit_fail(__FILE__, __LINE__, "%s: expected %s", want[i].name,
                      want[i].transient ? "transient" : "permanent");
    }
    /* A code gRPC does not define is UNKNOWN, hence retried. */
    EXPECT_EQ_STR("UNKNOWN", pgc_grpc_code_get_name((pgc_grpc_code)17));
    EXPECT_EQ_INT(PGC_ERR_CONN, stream_end_status((pgc_grpc_code)17));
    EXPECT_EQ_STR("NONE", pgc_grpc_code_get_name(PGC_GRPC_CODE_NONE));
    EXPECT_TRUE(!pgc_status_is_transient(PGC_OK));
    EXPECT_TRUE(!pgc_status_is_transient((pgc_status)-1000));
    EXPECT_EQ_STR("not served at this address", pgc_status_describe(PGC_ERR_UNIMPLEMENTED));
}

static void test_messages_name_the_status_the_server_message_and_what_to_check(void)
{
    char err[600];
    EXPECT_EQ_INT(PGC_ERR_UNIMPLEMENTED,
                  stream_end_explain(PGC_GRPC_CODE_UNIMPLEMENTED, "unknown method /x", "h:1", "app",
                                     err, sizeof err));
    EXPECT_TRUE(strstr(err, "the server at h:1 does not serve DBLogGateway.Capture "
                            "(UNIMPLEMENTED: unknown method /x)") != NULL);
    EXPECT_TRUE(strstr(err, "gateway's address") != NULL);
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND,
                  stream_end_explain(PGC_GRPC_CODE_NOT_FOUND, "", "h:1", "app", err, sizeof err));
    EXPECT_TRUE(strstr(err, "has no uri \"app\" (NOT_FOUND: no message)") != NULL);
    EXPECT_EQ_INT(PGC_ERR_CONN, stream_end_explain(PGC_GRPC_CODE_UNAVAILABLE, "refused", "h:1",
                                                   "app", err, sizeof err));
    EXPECT_EQ_STR("the gateway at h:1 is unavailable (UNAVAILABLE: refused)", err);
    EXPECT_EQ_INT(PGC_ERR_CONN, stream_end_explain(PGC_GRPC_CODE_RESOURCE_EXHAUSTED, "too many",
                                                   "h:1", "app", err, sizeof err));
    EXPECT_EQ_STR(
        "the gateway at h:1 ended the stream of uri \"app\" (RESOURCE_EXHAUSTED: too many)", err);
    /* Each permanent code says what to check. */
    static const pgc_grpc_code permanent[] = {
        PGC_GRPC_CODE_INVALID_ARGUMENT,    PGC_GRPC_CODE_NOT_FOUND,
        PGC_GRPC_CODE_ALREADY_EXISTS,      PGC_GRPC_CODE_PERMISSION_DENIED,
        PGC_GRPC_CODE_FAILED_PRECONDITION, PGC_GRPC_CODE_OUT_OF_RANGE,
        PGC_GRPC_CODE_UNIMPLEMENTED,       PGC_GRPC_CODE_DATA_LOSS,
        PGC_GRPC_CODE_UNAUTHENTICATED};
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        stream_end_explain(permanent[i], "m", "h:1", "app", err, sizeof err);
        if (!strstr(err, pgc_grpc_code_get_name(permanent[i])) || !strstr(err, "h:1") ||
            !(strstr(err, "check") || strstr(err, "retrying") || strstr(err, "running again")))
            unit_fail(__FILE__, __LINE__, "%s: \"%s\" does not say what to check",
                      pgc_grpc_code_get_name(permanent[i]), err);
    }
}

UNIT_MAIN(UNIT_CASE(test_each_grpc_code_maps_to_its_status_and_retry_decision),
          UNIT_CASE(test_messages_name_the_status_the_server_message_and_what_to_check))
