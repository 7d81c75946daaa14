/* A complete libpgcapture consumer: receives the changes of one URI from a pgcapture
 * gateway, binds rows of table "users" (id int8, name text, bio text) to a C struct,
 * notices an unchanged TOAST column, prints every change as JSON, and acks it.
 *
 *   consumer GATEWAY URI [COUNT]     e.g. consumer 127.0.0.1:10000 app 10
 *
 * Stops after COUNT changes (default: never) or on Ctrl-C.
 * Build: cc -o consumer consumer.c $(pkg-config --cflags --libs pgcapture) */
#include <pgcapture.h>

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct user {
    int64_t id;
    char name[64];
    char *bio; /* malloc'ed by pgc_change_bind: large, may stay unchanged (TOAST) in an UPDATE */
    bool bio_null;
} user;

static const pgc_bind_column user_columns[] = {
    {"id", PGC_CTYPE_INT64, offsetof(user, id), 0, PGC_BIND_NO_NULL},
    {"name", PGC_CTYPE_STRING, offsetof(user, name), sizeof(((user *)0)->name), PGC_BIND_NO_NULL},
    {"bio", PGC_CTYPE_STRING_DUP, offsetof(user, bio), 0, offsetof(user, bio_null)},
};

typedef struct state {
    pgc_consumer *consumer;
    long seen, limit;
    char reason[300];
} state;

static pgc_consumer *running;

static void on_sigint(int sig)
{
    (void)sig;
    pgc_consumer_stop(running); /* async-signal-safe */
}

static pgc_verdict handle(void *arg, const pgc_change *c, const char **reason)
{
    state *s = arg;
    char *json = NULL;
    if (pgc_change_render_json(c, &json, NULL, s->reason, sizeof s->reason) != PGC_OK) {
        *reason = s->reason; /* e.g. a column of a type this library does not decode */
        return PGC_VERDICT_REQUEUE;
    }
    printf("%s\n", json);
    pgc_memory_free(json);
    if (strcmp(pgc_change_get_table(c), "users") == 0 && pgc_change_get_op(c) != PGC_OP_DELETE) {
        user u = {0};
        bool present[3];
        if (pgc_change_bind(c, PGC_ROW_NEW, user_columns, 3, &u, present, s->reason,
                            sizeof s->reason) != PGC_OK) {
            *reason = s->reason;
            return PGC_VERDICT_REQUEUE;
        }
        printf("user %lld name=%s bio=%s\n", (long long)u.id, u.name,
               !present[2]  ? "(unchanged TOAST)"
               : u.bio_null ? "(null)"
                            : u.bio);
        pgc_memory_free(u.bio);
    }
    fflush(stdout);
    if (++s->seen == s->limit)
        pgc_consumer_stop(s->consumer);
    return PGC_VERDICT_ACK;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s GATEWAY URI [COUNT]\n", argv[0]);
        return 2;
    }
    pgc_consumer_options o;
    pgc_consumer_options_init(&o);
    o.gateway = argv[1];
    o.uri = argv[2];
    state s = {NULL, 0, argc > 3 ? atol(argv[3]) : -1, ""};
    char err[512];
    if (pgc_consumer_create(&o, &s.consumer, err, sizeof err) != PGC_OK) {
        fprintf(stderr, "consumer: %s\n", err);
        return 2;
    }
    running = s.consumer;
    signal(SIGINT, on_sigint);
    pgc_change_handler handler = {&s, handle};
    pgc_status rc = pgc_consumer_run(s.consumer, &handler, err, sizeof err);
    if (rc != PGC_OK)
        fprintf(stderr, "consumer: %s (%s)\n", err, pgc_status_describe(rc));
    pgc_consumer_destroy(s.consumer);
    return rc == PGC_OK ? 0 : 1;
}
