/* NATS server lists: split at commas, trimmed, empty entries skipped, bounded. */
#include "harness/runner.h"
#include "jetstream/jsurl.h"

#include <string.h>

static void test_a_list_splits_at_commas_and_is_trimmed(void)
{
    char buf[256];
    const char *out[JSURL_MAX];
    int n = jsurl_split(" nats://a:4222, nats://b:4222 ,,nats://c:4222 ", buf, sizeof buf, out,
                        JSURL_MAX);
    EXPECT_EQ_INT(3, n);
    EXPECT_EQ_STR("nats://a:4222", out[0]);
    EXPECT_EQ_STR("nats://b:4222", out[1]);
    EXPECT_EQ_STR("nats://c:4222", out[2]);
}

static void test_one_url_is_a_list_of_one(void)
{
    char buf[64];
    const char *out[JSURL_MAX];
    EXPECT_EQ_INT(1, jsurl_split("nats://127.0.0.1:4222", buf, sizeof buf, out, JSURL_MAX));
    EXPECT_EQ_STR("nats://127.0.0.1:4222", out[0]);
}

static void test_empty_too_many_or_too_long_is_refused(void)
{
    char buf[64];
    const char *out[2];
    EXPECT_EQ_INT(-1, jsurl_split("", buf, sizeof buf, out, 2));
    EXPECT_EQ_INT(-1, jsurl_split(" , ", buf, sizeof buf, out, 2));
    EXPECT_EQ_INT(-1, jsurl_split("a,b,c", buf, sizeof buf, out, 2));
    EXPECT_EQ_INT(-1, jsurl_split(NULL, buf, sizeof buf, out, 2));
    char tiny[4];
    EXPECT_EQ_INT(-1, jsurl_split("nats://a", tiny, sizeof tiny, out, 2));
}

static void test_options_take_the_list(void)
{
    natsOptions *o = NULL;
    EXPECT_EQ_INT(NATS_OK, natsOptions_Create(&o));
    EXPECT_EQ_INT(NATS_OK, jsurl_set_servers(o, "nats://a:4222,nats://b:4222"));
    EXPECT_EQ_INT(NATS_INVALID_ARG, jsurl_set_servers(o, ","));
    natsOptions_Destroy(o);
}

UNIT_MAIN(UNIT_CASE(test_a_list_splits_at_commas_and_is_trimmed),
          UNIT_CASE(test_one_url_is_a_list_of_one),
          UNIT_CASE(test_empty_too_many_or_too_long_is_refused),
          UNIT_CASE(test_options_take_the_list))
