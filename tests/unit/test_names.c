/* The naming contract: every derived name, byte for byte, and the token check. */
#include "core/names.h"
#include "core/status.h"
#include "harness/runner.h"

#include <string.h>

static void test_names_of_a_source(void)
{
    char out[NAMES_BUF_LEN];
    EXPECT_EQ_INT(PGC_OK, names_stream("Main-1", out, sizeof out));
    EXPECT_EQ_STR("PGCAPTURE_Main-1", out);
    EXPECT_EQ_INT(PGC_OK, names_log_subject("Main-1", out, sizeof out));
    EXPECT_EQ_STR("pgcapture.Main-1.log", out);
    EXPECT_EQ_INT(PGC_OK, names_publication("Main-1", out, sizeof out));
    EXPECT_EQ_STR("pgcapture_Main-1", out);
    EXPECT_EQ_INT(PGC_OK, names_retry_stream("Main-1", out, sizeof out));
    EXPECT_EQ_STR("PGCAPTURE_Main-1_RETRY", out);
    EXPECT_EQ_INT(PGC_OK, names_retry_stream_subjects("Main-1", out, sizeof out));
    EXPECT_EQ_STR("pgcapture.Main-1.retry.>", out);
    EXPECT_EQ_INT(PGC_OK, names_retry_subject("Main-1", "orders", out, sizeof out));
    EXPECT_EQ_STR("pgcapture.Main-1.retry.orders", out);
    EXPECT_EQ_INT(PGC_OK, names_retry_durable("orders", out, sizeof out));
    EXPECT_EQ_STR("orders_retry", out);
    EXPECT_EQ_INT(PGC_OK, names_dead_letter_subject("Main-1", "orders", out, sizeof out));
    EXPECT_EQ_STR("pgcapture.Main-1.retry.orders.dead", out);
    EXPECT_EQ_INT(PGC_OK, names_dead_letter_durable("orders", out, sizeof out));
    EXPECT_EQ_STR("orders_dead", out);
    EXPECT_EQ_STR("PGCAPTURE_CONTROLLER", NAMES_CONTROLLER_BUCKET);
}

static void test_names_slot_is_lower_cased_with_only_postgres_bytes(void)
{
    char out[NAMES_BUF_LEN];
    EXPECT_EQ_INT(PGC_OK, names_slot("Main-1_x", out, sizeof out));
    EXPECT_EQ_STR("pgcapture_main_1_x", out);
}

static void test_names_durable_from_uri_keeps_token_bytes_and_hashes_the_whole_uri(void)
{
    char a[NAMES_BUF_LEN], b[NAMES_BUF_LEN];
    /* FNV-1a of "" is 811c9dc5. */
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri("", a, sizeof a));
    EXPECT_EQ_STR("pgc__811c9dc5", a);
    /* FNV-1a of "a" is e40c292c. */
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri("a", a, sizeof a));
    EXPECT_EQ_STR("pgc_a_e40c292c", a);
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri("orders.v1/x", a, sizeof a));
    EXPECT_TRUE(strncmp(a, "pgc_orders_v1_x_", 16) == 0);
    EXPECT_TRUE(names_token_valid(a));
    /* Same token bytes, different URIs: different durables. */
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri("orders_v1_x", b, sizeof b));
    EXPECT_TRUE(strncmp(b, "pgc_orders_v1_x_", 16) == 0);
    EXPECT_TRUE(strcmp(a, b) != 0);
    /* A long URI keeps 63 bytes of itself. */
    char uri[200];
    memset(uri, 'u', sizeof uri - 1);
    uri[sizeof uri - 1] = '\0';
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri(uri, a, sizeof a));
    EXPECT_EQ_UINT(4 + 63 + 1 + 8, strlen(a));
    EXPECT_TRUE(names_token_valid(a));
}

static void test_names_replica_consumer_replaces_non_token_bytes(void)
{
    char out[NAMES_BUF_LEN];
    EXPECT_EQ_INT(PGC_OK, names_replica_consumer("main", "7301_my db.x", out, sizeof out));
    EXPECT_EQ_STR("replica_main_7301_my_db_x", out);
}

static void test_names_tokens_are_letters_digits_underscore_and_dash(void)
{
    EXPECT_TRUE(names_token_valid("main_1-a"));
    EXPECT_TRUE(!names_token_valid(""));
    EXPECT_TRUE(!names_token_valid("a.b"));
    EXPECT_TRUE(!names_token_valid("a*"));
    EXPECT_TRUE(!names_token_valid("a>"));
    EXPECT_TRUE(!names_token_valid("a b"));
    EXPECT_TRUE(!names_token_valid("caf\xc3\xa9"));
    char name[NAMES_TOKEN_MAX_LEN + 2];
    memset(name, 'a', sizeof name);
    name[NAMES_TOKEN_MAX_LEN] = '\0';
    EXPECT_TRUE(names_token_valid(name));
    name[NAMES_TOKEN_MAX_LEN] = 'a';
    name[NAMES_TOKEN_MAX_LEN + 1] = '\0';
    EXPECT_TRUE(!names_token_valid(name));
}

static void test_names_of_the_longest_tokens_fit_the_buffer(void)
{
    char a[NAMES_TOKEN_MAX_LEN + 1], out[NAMES_BUF_LEN];
    memset(a, 'a', NAMES_TOKEN_MAX_LEN);
    a[NAMES_TOKEN_MAX_LEN] = '\0';
    EXPECT_EQ_INT(PGC_OK, names_retry_subject(a, a, out, sizeof out));
    EXPECT_EQ_INT(PGC_OK, names_dead_letter_subject(a, a, out, sizeof out));
    EXPECT_EQ_INT(PGC_OK, names_retry_stream(a, out, sizeof out));
    EXPECT_EQ_INT(PGC_OK, names_retry_durable(a, out, sizeof out));
}

static void test_names_that_do_not_fit_are_refused_and_terminated(void)
{
    char out[8];
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, names_stream("main", out, sizeof out));
    EXPECT_EQ_STR("PGCAPTU", out);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, names_slot("MAIN", out, sizeof out));
    EXPECT_EQ_STR("pgcaptu", out);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, names_replica_consumer("m", "x", out, sizeof out));
    EXPECT_EQ_STR("replica", out);
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, names_durable_from_uri("u", out, sizeof out));
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, names_log_subject("main", NULL, 0));
}

UNIT_MAIN(UNIT_CASE(test_names_of_a_source),
          UNIT_CASE(test_names_slot_is_lower_cased_with_only_postgres_bytes),
          UNIT_CASE(test_names_durable_from_uri_keeps_token_bytes_and_hashes_the_whole_uri),
          UNIT_CASE(test_names_replica_consumer_replaces_non_token_bytes),
          UNIT_CASE(test_names_tokens_are_letters_digits_underscore_and_dash),
          UNIT_CASE(test_names_of_the_longest_tokens_fit_the_buffer),
          UNIT_CASE(test_names_that_do_not_fit_are_refused_and_terminated))
