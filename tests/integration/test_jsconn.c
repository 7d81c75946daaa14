/* The plain JetStream connection against a real NATS server: a stream created once and
 * found again, a message published with headers and read back by sequence, a consumer
 * created from a sequence and deleted, and missing things told apart. */
#include "core/names.h"
#include "core/status.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "jetstream/jsconn.h"
#include "jetstream/jssub.h"

#include <stdio.h>
#include <string.h>

static void close_conn(void *arg)
{
    jsconn_destroy(arg);
}

static jsconn *open_conn(void)
{
    jsconn *c = NULL;
    char err[512] = "";
    if (jsconn_open(harness_nats_url(), &c, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "jsconn_open: %s", err);
    unit_defer(close_conn, c);
    return c;
}

static void test_jsconn_creates_a_stream_once_and_reads_messages_back(void)
{
    char name[64], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], err[512] = "";
    harness_unique_name(name, sizeof name);
    names_stream(name, stream, sizeof stream);
    names_log_subject(name, subject, sizeof subject);
    jsconn *c = open_conn();
    uint64_t first = 9, last = 9;
    EXPECT_EQ_INT(PGC_ERR_NOT_FOUND,
                  jsconn_stream_bounds(c, stream, &first, &last, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jsconn_ensure_stream(c, stream, subject, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jsconn_ensure_stream(c, stream, subject, NULL, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jsconn_stream_bounds(c, stream, &first, &last, err, sizeof err));
    EXPECT_EQ_UINT(0, last);
    const jsconn_header h[] = {{"Pgc-First", "0/16B3748"}, {"Pgc-Count", "1"}};
    for (int i = 0; i < 3; i++)
        EXPECT_EQ_INT(PGC_OK,
                      jsconn_publish(c, subject, (const uint8_t *)"abc", 3, h, 2, err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jsconn_stream_bounds(c, stream, &first, &last, err, sizeof err));
    EXPECT_EQ_UINT(1, first);
    EXPECT_EQ_UINT(3, last);
    char v[64] = "";
    EXPECT_EQ_INT(1, jsconn_msg_header(c, stream, 2, "Pgc-First", v, sizeof v, err, sizeof err));
    EXPECT_EQ_STR("0/16B3748", v);
    EXPECT_EQ_INT(0, jsconn_msg_header(c, stream, 2, "Pgc-Last", v, sizeof v, err, sizeof err));
    EXPECT_EQ_INT(0, jsconn_msg_header(c, stream, 7, "Pgc-First", v, sizeof v, err, sizeof err));
    /* A subject no stream holds is not stored. */
    EXPECT_EQ_INT(PGC_ERR_CONN, jsconn_publish(c, "pgcapture.nobody.log", (const uint8_t *)"x", 1,
                                               NULL, 0, err, sizeof err));
}

static void test_jsconn_consumer_starts_at_the_sequence_it_is_given(void)
{
    char name[64], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], err[512] = "";
    harness_unique_name(name, sizeof name);
    names_stream(name, stream, sizeof stream);
    names_log_subject(name, subject, sizeof subject);
    jsconn *c = open_conn();
    EXPECT_EQ_INT(PGC_OK, jsconn_ensure_stream(c, stream, subject, NULL, err, sizeof err));
    for (int i = 1; i <= 3; i++) {
        uint8_t b = (uint8_t)('0' + i);
        EXPECT_EQ_INT(PGC_OK, jsconn_publish(c, subject, &b, 1, NULL, 0, err, sizeof err));
    }
    EXPECT_EQ_INT(PGC_OK, jsconn_delete_consumer(c, stream, "reader", err, sizeof err));
    jsconn_consumer cc = {"reader", subject, 30000, 10, 2};
    EXPECT_EQ_INT(PGC_OK, jsconn_add_consumer(c, stream, &cc, err, sizeof err));
    jssub *sub = NULL;
    jssub_config sc = {harness_nats_url(), stream, subject, "reader", 30000, 10};
    EXPECT_EQ_INT(PGC_OK, jssub_create(&sc, &sub, err, sizeof err));
    jssub_msg *m[4];
    int n = jssub_fetch(sub, m, 4, 2000, err, sizeof err);
    EXPECT_EQ_INT(2, n);
    for (int i = 0; i < n; i++) {
        EXPECT_EQ_UINT((unsigned long long)(2 + i), jssub_msg_stream_seq(m[i]));
        EXPECT_EQ_MEM(i == 0 ? "2" : "3", 1, jssub_msg_data(m[i]), jssub_msg_len(m[i]));
        jssub_msg_destroy(m[i]);
    }
    jssub_destroy(sub);
    EXPECT_EQ_INT(PGC_OK, jsconn_delete_consumer(c, stream, "reader", err, sizeof err));
    EXPECT_EQ_INT(PGC_OK, jsconn_delete_consumer(c, stream, "reader", err, sizeof err));
}

static void test_jsconn_reports_an_unreachable_server(void)
{
    jsconn *c = NULL;
    char err[512] = "";
    EXPECT_EQ_INT(PGC_ERR_CONN, jsconn_open("nats://127.0.0.1:1", &c, err, sizeof err));
    EXPECT_TRUE(strstr(err, "cannot connect to NATS at nats://127.0.0.1:1") != NULL);
}

UNIT_MAIN(UNIT_CASE(test_jsconn_creates_a_stream_once_and_reads_messages_back),
          UNIT_CASE(test_jsconn_consumer_starts_at_the_sequence_it_is_given),
          UNIT_CASE(test_jsconn_reports_an_unreachable_server))
