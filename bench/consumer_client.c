/* Throughput of one libpgcapture consumer (pgc_consumer, every change acked):
 *   consumer_client GATEWAY URI N ACK_WINDOW BATCH_LIMIT
 * (BATCH_LIMIT as pgc_consumer_options.batch_limit: 0 the default batch mode, -1 per-change
 * mode) receives N changes and prints "seconds changes cpu_seconds", timed from the first
 * change to the N-th (connection set-up excluded); cpu_seconds is the process's user +
 * system time over the whole run. */
#include <pgcapture.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
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
    if (argc != 6) {
        fprintf(stderr, "usage: %s GATEWAY URI N ACK_WINDOW BATCH_LIMIT\n", argv[0]);
        return 2;
    }
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = argv[1];
    o.uri = argv[2];
    o.ack_window = atoi(argv[4]);
    o.batch_limit = atoi(argv[5]);
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
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%.6f %ld %.3f\n", s, k.seen, cpu);
    return 0;
}
