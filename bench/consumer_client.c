/* Throughput of one libpgcapture consumer (pgc_consumer, every change acked):
 *   consumer_client GATEWAY URI N ACK_WINDOW
 * receives N changes and prints "seconds changes", timed from the first change to the
 * N-th (connection set-up excluded). */
#include <pgcapture.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct counter {
    pgc_consumer *consumer;
    long seen, want;
    struct timespec first, last;
} counter;

static pgc_verdict count(void *arg, const pgc_change *c, const char **reason)
{
    counter *k = arg;
    (void)c;
    (void)reason;
    if (k->seen == 0)
        clock_gettime(CLOCK_MONOTONIC, &k->first);
    if (++k->seen == k->want) {
        clock_gettime(CLOCK_MONOTONIC, &k->last);
        pgc_consumer_stop(k->consumer);
    }
    return PGC_VERDICT_ACK;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s GATEWAY URI N ACK_WINDOW\n", argv[0]);
        return 2;
    }
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = argv[1];
    o.uri = argv[2];
    o.ack_window = atoi(argv[4]);
    counter k = {NULL, 0, atol(argv[3]), {0, 0}, {0, 0}};
    char err[512];
    if (pgc_consumer_create(&o, &k.consumer, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "consumer_client: %s\n", err);
        return 2;
    }
    int rc = pgc_consumer_run(k.consumer, &(pgc_change_handler){&k, count}, err, sizeof err);
    pgc_consumer_destroy(k.consumer);
    if (rc != PGC_OK || k.seen < k.want) {
        fprintf(stderr, "consumer_client: %s after %ld changes\n", err, k.seen);
        return 1;
    }
    double s = (double)(k.last.tv_sec - k.first.tv_sec) + (k.last.tv_nsec - k.first.tv_nsec) / 1e9;
    printf("%.6f %ld\n", s, k.seen);
    return 0;
}
