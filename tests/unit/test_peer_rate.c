/* Token buckets of new calls per peer host. */
#include "harness/runner.h"
#include "rpc/peer_rate.h"

#include <stdio.h>
#include <string.h>

static void test_host_drops_scheme_and_port(void)
{
    char h[64];
    peer_rate_host("ipv4:10.1.2.3:5555", h, sizeof h);
    EXPECT_EQ_STR("10.1.2.3", h);
    peer_rate_host("ipv6:[::1]:5555", h, sizeof h);
    EXPECT_EQ_STR("[::1]", h);
    peer_rate_host("unix:/tmp/s", h, sizeof h);
    EXPECT_EQ_STR("unix", h);
}

static void test_burst_then_refill_at_the_rate(void)
{
    peer_rate *r = peer_rate_create(2.0, 3);
    for (int i = 0; i < 3; i++)
        EXPECT_TRUE(peer_rate_take(r, "ipv4:10.0.0.1:1", 1000));
    EXPECT_TRUE(!peer_rate_take(r, "ipv4:10.0.0.1:2", 1000));
    EXPECT_TRUE(!peer_rate_take(r, "ipv4:10.0.0.1:3", 1400));
    EXPECT_TRUE(peer_rate_take(r, "ipv4:10.0.0.1:3", 1500)); /* 2/s: one token after 500 ms */
    EXPECT_TRUE(!peer_rate_take(r, "ipv4:10.0.0.1:3", 1500));
    peer_rate_destroy(r);
}

static void test_hosts_have_buckets_of_their_own(void)
{
    peer_rate *r = peer_rate_create(1.0, 1);
    EXPECT_TRUE(peer_rate_take(r, "ipv4:10.0.0.1:1", 0));
    EXPECT_TRUE(!peer_rate_take(r, "ipv4:10.0.0.1:2", 0));
    EXPECT_TRUE(peer_rate_take(r, "ipv4:10.0.0.2:1", 0));
    peer_rate_destroy(r);
}

static void test_many_hosts_never_stop_a_new_one(void)
{
    peer_rate *r = peer_rate_create(1.0, 1);
    char peer[64];
    for (int i = 0; i < 3 * PEER_RATE_SLOTS; i++) {
        snprintf(peer, sizeof peer, "ipv4:10.%d.%d.%d:1", i >> 16, (i >> 8) & 255, i & 255);
        EXPECT_TRUE(peer_rate_take(r, peer, i));
    }
    peer_rate_destroy(r);
}

UNIT_MAIN(UNIT_CASE(test_host_drops_scheme_and_port), UNIT_CASE(test_burst_then_refill_at_the_rate),
          UNIT_CASE(test_hosts_have_buckets_of_their_own),
          UNIT_CASE(test_many_hosts_never_stop_a_new_one))
