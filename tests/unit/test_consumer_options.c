/* The consumer's contract without a gateway: options are checked and copied, a stop
 * before run makes it return at once, and an unreachable gateway is a connection error
 * with the address in the message (the happy path runs against the real gateway in
 * tests/integration/test_consumer.c). */
#include "harness/runner.h"

#include "pgcapture.h"

#include <string.h>

static void destroy_consumer(void *c)
{
    pgc_consumer_destroy(c);
}

static pgc_verdict never_called(void *arg, const pgc_change *c, const char **reason)
{
    (void)arg;
    (void)c;
    (void)reason;
    unit_fail(__FILE__, __LINE__, "handler called without a gateway");
}

static void test_consumer_requires_gateway_and_uri(void)
{
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    pgc_consumer *c = NULL;
    char err[128] = "";
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgc_consumer_create(&o, &c, err, sizeof err));
    o.gateway = "127.0.0.1:1";
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgc_consumer_create(&o, &c, err, sizeof err));
    EXPECT_TRUE(strstr(err, "uri") != NULL);
    o.uri = "app";
    o.n_params = 1;
    EXPECT_EQ_INT(PGC_ERR_INVALID, pgc_consumer_create(&o, &c, err, sizeof err));
    EXPECT_TRUE(c == NULL);
    pgc_consumer_destroy(NULL);
    pgc_consumer_stop(NULL);
}

static void test_stop_before_run_returns_at_once_and_only_once(void)
{
    char gw[32], uri[8];
    strcpy(gw, "127.0.0.1:1");
    strcpy(uri, "app");
    const char *names[] = {"Truncate"}, *values[] = {"true"};
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = gw;
    o.uri = uri;
    o.table_regex = "^users$";
    o.param_names = names;
    o.param_values = values;
    o.n_params = 1;
    pgc_consumer *c = NULL;
    char err[256] = "";
    EXPECT_EQ_INT(PGC_OK, pgc_consumer_create(&o, &c, err, sizeof err));
    unit_defer(destroy_consumer, c);
    memset(gw, 'x', sizeof gw - 1); /* the consumer holds its own copies */
    pgc_consumer_stop(c);
    EXPECT_EQ_INT(PGC_OK,
                  pgc_consumer_run(c, &(pgc_change_handler){NULL, never_called}, err, sizeof err));
    /* The stop was used up: this run tries the (unreachable) gateway. */
    EXPECT_EQ_INT(PGC_ERR_CONN,
                  pgc_consumer_run(c, &(pgc_change_handler){NULL, never_called}, err, sizeof err));
    EXPECT_TRUE(strstr(err, "127.0.0.1:1") != NULL);
}

UNIT_MAIN(UNIT_CASE(test_consumer_requires_gateway_and_uri),
          UNIT_CASE(test_stop_before_run_returns_at_once_and_only_once))
