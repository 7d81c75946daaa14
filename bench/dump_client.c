/* The consumer of the dump benchmark (libpgcapture, every change acked):
 *   dump_client GATEWAY URI N
 * prints "ready EPOCH" once its first live change (lsn != 0) arrives, so the script knows the
 * stream is up, then counts dump rows (lsn == 0) and stops after the N-th, printing
 * "done FIRST_EPOCH LAST_EPOCH ROWS LAST_FLAGS CPU_S": wall-clock seconds of the first and the
 * N-th dump row, how many rows carried data {1} (last row of an item) and the process's CPU
 * seconds (user + system) from the first dump row on. */
#include <pgcapture.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

typedef struct counter {
    pgc_consumer *consumer;
    long live, rows, lasts, want;
    double first, last, cpu_first;
} counter;

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double epoch_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static pgc_verdict count(void *arg, const pgc_change *c, const char **reason)
{
    counter *k = arg;
    (void)reason;
    if (pgc_change_get_lsn(c) != 0) {
        if (k->live++ == 0) {
            printf("ready %.6f\n", epoch_s());
            fflush(stdout);
        }
        return PGC_VERDICT_ACK;
    }
    size_t len = 0;
    const uint8_t *data = pgc_change_get_checkpoint_data(c, &len);
    if (len == 1 && data[0] == 1)
        k->lasts++;
    if (k->rows++ == 0) {
        k->first = epoch_s();
        k->cpu_first = cpu_s();
    }
    if (k->rows == k->want) {
        k->last = epoch_s();
        pgc_consumer_stop(k->consumer);
    }
    return PGC_VERDICT_ACK;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s GATEWAY URI N\n", argv[0]);
        return 2;
    }
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = argv[1];
    o.uri = argv[2];
    counter k = {NULL, 0, 0, 0, atol(argv[3]), 0, 0, 0};
    if (k.want <= 0) {
        fprintf(stderr, "dump_client: N must be positive\n");
        return 2;
    }
    char err[512];
    if (pgc_consumer_create(&o, &k.consumer, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "dump_client: %s\n", err);
        return 2;
    }
    int rc = pgc_consumer_run(k.consumer, &(pgc_change_handler){&k, count}, err, sizeof err);
    pgc_consumer_destroy(k.consumer);
    if (rc != PGC_OK || k.rows < k.want) {
        fprintf(stderr, "dump_client: %s after %ld dump rows\n", err, k.rows);
        return 1;
    }
    printf("done %.6f %.6f %ld %ld %.3f\n", k.first, k.last, k.rows, k.lasts,
           cpu_s() - k.cpu_first);
    return 0;
}
