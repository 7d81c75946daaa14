/* The gateway's dead-letter policy (--max-requeues, docs/protocol.md "In the log") against
 * real PostgreSQL, NATS, agent and gateway: a change requeued that many times lands on the
 * URI's dead-letter subject, byte for byte as the log has it, with its requeue count and
 * the consumer's last reason, and never comes back; the rest of the stream is untouched;
 * without the flag a change comes back however often it is requeued. */
#include "codec/batch.h"
#include "codec/logpos.h"
#include "core/names.h"
#include "core/status.h"
#include "core/textfile.h"
#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "harness/scrape.h"
#include "harness/services.h"
#include "jetstream/jssub.h"

#include "pgcapture.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The environment with its gateway started again with --max-requeues (and metrics). */
static int setup_with_limit(cap_env *e, const char *max_requeues)
{
    cap_setup(e, NULL);
    kill(e->gw_pid, SIGTERM);
    EXPECT_EQ_INT(0, harness_wait_exit(e->gw_pid, 15000));
    int port = harness_free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *extra[] = {"--max-requeues", max_requeues, "--metrics-listen", listen, NULL};
    cap_start_gateway(e, extra);
    return port;
}

/* A pull subscription on the URI's dead-letter subject. */
static jssub *open_dead_letters(const cap_env *e)
{
    char durable[NAMES_BUF_LEN], stream[NAMES_BUF_LEN], subject[NAMES_BUF_LEN], err[512];
    EXPECT_EQ_INT(PGC_OK, names_durable_from_uri(e->uri, durable, sizeof durable));
    EXPECT_EQ_INT(PGC_OK, names_retry_stream(e->name, stream, sizeof stream));
    EXPECT_EQ_INT(PGC_OK, names_dead_letter_subject(e->name, durable, subject, sizeof subject));
    jssub_config c = {harness_nats_url(), stream, subject, "dead_reader", 30000, 100};
    jssub *s = NULL;
    if (jssub_create(&c, &s, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "dead letters: %s", err);
    return s;
}

/* The next dead letter's one Message, unpacked (NULL when none arrives in timeout_ms);
 * its headers into requeues and reason. */
static Pgcapture__Message *next_dead_letter(jssub *s, int timeout_ms, char *requeues, char *reason,
                                            char *first)
{
    jssub_msg *m = NULL;
    char err[512];
    int n = jssub_fetch(s, &m, 1, timeout_ms, err, sizeof err);
    if (n < 0)
        unit_fail(__FILE__, __LINE__, "dead letters: %s", err);
    if (n == 0)
        return NULL;
    const char *h = jssub_msg_header(m, "Pgc-Requeues");
    snprintf(requeues, 16, "%s", h ? h : "");
    h = jssub_msg_header(m, "Pgc-Reason");
    snprintf(reason, 300, "%s", h ? h : "");
    h = jssub_msg_header(m, "Pgc-First");
    snprintf(first, LOGPOS_TEXT_LEN, "%s", h ? h : "");
    batch_reader r;
    const uint8_t *bytes = NULL, *more = NULL;
    size_t mlen = 0, more_len = 0;
    batch_reader_init(&r, jssub_msg_data(m), jssub_msg_len(m));
    EXPECT_EQ_INT(1, batch_reader_next(&r, &bytes, &mlen, err, sizeof err));
    EXPECT_EQ_INT(0, batch_reader_next(&r, &more, &more_len, err, sizeof err));
    Pgcapture__Message *msg = pgcapture__message__unpack(NULL, mlen, bytes);
    EXPECT_TRUE(msg != NULL && msg->type_case == PGCAPTURE__MESSAGE__TYPE_CHANGE);
    EXPECT_EQ_INT(PGC_OK, jssub_ack(m, true, err, sizeof err));
    jssub_msg_destroy(m);
    return msg;
}

/* The two changes pack to the same bytes. */
static void expect_same_change(const Pgcapture__Change *a, const Pgcapture__Change *b)
{
    size_t la = pgcapture__change__get_packed_size(a), lb = pgcapture__change__get_packed_size(b);
    uint8_t *pa = malloc(la), *pb = malloc(lb);
    pgcapture__change__pack(a, pa);
    pgcapture__change__pack(b, pb);
    EXPECT_EQ_MEM(pa, la, pb, lb);
    free(pa);
    free(pb);
}

static void test_a_change_requeued_max_requeues_times_is_dead_lettered_once(void)
{
    cap_env e;
    int metrics = setup_with_limit(&e, "2");
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 3, true);
    Pgcapture__CaptureMessage *m[3];
    cap_recv_n(c, m, 3, 20000);
    jssub *dead = open_dead_letters(&e); /* the stream's start made the retry stream */
    EXPECT_EQ_INT(2, cap_id_of(m[1]->change));
    cap_ack(c, m[0]->checkpoint, NULL);
    cap_ack(c, m[1]->checkpoint, "bad 1");
    cap_ack(c, m[2]->checkpoint, NULL);
    Pgcapture__CaptureMessage *again[1];
    cap_recv_n(c, again, 1, 10000); /* requeued once: it comes back */
    EXPECT_EQ_INT(2, cap_id_of(again[0]->change));
    cap_ack(c, again[0]->checkpoint, "bad\r\n2");
    cap_expect_quiet(c, 1500); /* the second requeue was the last */

    char requeues[16], reason[300], first[LOGPOS_TEXT_LEN], want_first[LOGPOS_TEXT_LEN];
    Pgcapture__Message *d = next_dead_letter(dead, 10000, requeues, reason, first);
    if (!d) {
        cap_show_gateway_log();
        unit_fail(__FILE__, __LINE__, "no dead letter");
    }
    expect_same_change(m[1]->change, d->change);
    EXPECT_EQ_STR("2", requeues);
    EXPECT_EQ_STR("bad  2", reason);
    logpos_format((log_pos){m[1]->checkpoint->lsn, m[1]->checkpoint->seq}, want_first);
    EXPECT_EQ_STR(want_first, first);
    pgcapture__message__free_unpacked(d, NULL);
    EXPECT_TRUE(next_dead_letter(dead, 1000, requeues, reason, first) == NULL);
    char series[256];
    snprintf(series, sizeof series, "pgcapture_gateway_dead_lettered_total{uri=\"%s\"}", e.uri);
    EXPECT_TRUE(harness_metric_wait(metrics, series, 1, 10000) == 1);

    /* A new consumer gets neither the dead letter nor anything acked. */
    rpc_stream_cancel(c->st);
    cap_client *c2 = cap_open(e.addr, e.uri, NULL);
    cap_expect_quiet(c2, 1500);
    jssub_destroy(dead);
}

static void test_a_batch_requeued_whole_is_dead_lettered_change_by_change(void)
{
    cap_env e;
    setup_with_limit(&e, "1");
    cap_client *c = cap_open_raw(e.addr);
    cap_send_init_batch(c, e.uri, NULL, 100);
    cap_insert_rows(&e, 1, 3, true);
    Pgcapture__Change *sent[3];
    int got = 0;
    long long until = harness_now_ms() + 20000;
    while (got < 3 && harness_now_ms() < until) {
        Pgcapture__CaptureMessage *b = cap_recv_batch(c, 500);
        if (!b)
            continue;
        for (size_t i = 0; i < b->n_items && got < 3; i++)
            sent[got++] = b->items[i]->change;
        cap_ack_batch(c, b->batch, "poison");
    }
    EXPECT_EQ_INT(3, got);
    jssub *dead = open_dead_letters(&e);
    for (int i = 0; i < 3; i++) {
        char requeues[16], reason[300], first[LOGPOS_TEXT_LEN];
        Pgcapture__Message *d = next_dead_letter(dead, 10000, requeues, reason, first);
        if (!d) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "dead letter %d of 3 missing", i + 1);
        }
        EXPECT_EQ_INT(i + 1, cap_id_of(d->change));
        expect_same_change(sent[i], d->change);
        EXPECT_EQ_STR("1", requeues);
        EXPECT_EQ_STR("poison", reason);
        pgcapture__message__free_unpacked(d, NULL);
    }
    Pgcapture__CaptureMessage *more = cap_recv_batch(c, 1500);
    if (more)
        unit_fail(__FILE__, __LINE__, "a dead-lettered change came back (batch of %zu)",
                  more->n_items);
    jssub_destroy(dead);
}

static void test_without_a_limit_a_change_comes_back_however_often_requeued(void)
{
    cap_env e;
    cap_setup(&e, NULL);
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 1, 1, false);
    for (int round = 0; round < 4; round++) {
        Pgcapture__CaptureMessage *m[1];
        cap_recv_n(c, m, 1, 10000);
        EXPECT_EQ_INT(1, cap_id_of(m[0]->change));
        cap_ack(c, m[0]->checkpoint, round < 3 ? "again" : NULL);
    }
    cap_expect_quiet(c, 1000);
}

/* Runs `pgcapture dead-letters` for the environment's URI; returns its output (stdout and
 * stderr), freed by the caller. */
static char *run_dead_letters(const cap_env *e, int *status)
{
    char log[600], err[300];
    snprintf(log, sizeof log, "%s.dead-letters", e->gw_log);
    unlink(log);
    const char *args[] = {"dead-letters", "--source",         e->name,  "--uri", e->uri,
                          "--nats-url",   harness_nats_url(), "--wait", "500ms", NULL};
    *status = harness_wait_exit(harness_spawn(log, args), 20000);
    char *out = NULL;
    size_t len = 0;
    if (textfile_read(log, 1 << 20, &out, &len, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s", err);
    return out;
}

static void test_the_cli_takes_the_dead_letters_out_once(void)
{
    cap_env e;
    setup_with_limit(&e, "1");
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 7, 7, false);
    Pgcapture__CaptureMessage *m[1];
    cap_recv_n(c, m, 1, 20000);
    cap_ack(c, m[0]->checkpoint, "no \"good\"");
    cap_expect_quiet(c, 1000);
    int status = -1;
    char *out = run_dead_letters(&e, &status);
    if (status != 0)
        unit_fail(__FILE__, __LINE__, "dead-letters exited %d:\n%s", status, out);
    char want[256], pos[LOGPOS_TEXT_LEN];
    logpos_format((log_pos){m[0]->checkpoint->lsn, m[0]->checkpoint->seq}, pos);
    snprintf(want, sizeof want,
             "{\"requeues\":1,\"reason\":\"no \\\"good\\\"\",\"position\":\"%s\"", pos);
    if (!strstr(out, want) || !strstr(out, "\"v\":\"row 7\"") || !strstr(out, "1 taken"))
        unit_fail(__FILE__, __LINE__, "dead-letters printed:\n%s\nexpected a line starting %s", out,
                  want);
    free(out);
    /* Taken: a second run finds none. */
    out = run_dead_letters(&e, &status);
    if (status != 0)
        unit_fail(__FILE__, __LINE__, "dead-letters exited %d:\n%s", status, out);
    if (!strstr(out, "0 taken") || strstr(out, "requeues"))
        unit_fail(__FILE__, __LINE__, "second run printed:\n%s", out);
    free(out);
}

/* Runs `pgcapture dead-letters VERB [ARG...]` for the environment's URI; returns its stdout
 * (stderr into *diag when not NULL), freed at the end of the case. */
static char *run_verb(const cap_env *e, const char *verb, const char *a1, const char *a2,
                      int *status, char **diag)
{
    static int runs;
    char out[600], errlog[600], err[300];
    snprintf(out, sizeof out, "%s.dl-%d.out", e->gw_log, ++runs);
    snprintf(errlog, sizeof errlog, "%s.dl-%d.err", e->gw_log, runs);
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "'%s' dead-letters %s --source %s --uri '%s' --nats-url '%s' %s %s >'%s' 2>'%s'",
             getenv("PGC_TEST_BIN"), verb, e->name, e->uri, harness_nats_url(), a1 ? a1 : "",
             a2 ? a2 : "", out, errlog);
    int rc = system(cmd);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    char *text = NULL, *etext = NULL;
    size_t len = 0;
    if (textfile_read(out, 64 << 20, &text, &len, err, sizeof err) != PGC_OK ||
        textfile_read(errlog, 1 << 20, &etext, &len, err, sizeof err) != PGC_OK)
        unit_fail(__FILE__, __LINE__, "%s", err);
    unit_defer(free, text);
    unit_defer(free, etext);
    if (diag)
        *diag = etext;
    return text;
}

/* The positions `list` printed (at most max), in order; how many. */
static int list_positions(const cap_env *e, unsigned long long *pos, int max, char **out)
{
    int status = -1;
    char *diag = NULL;
    char *text = run_verb(e, "list", NULL, NULL, &status, &diag);
    if (status != 0)
        unit_fail(__FILE__, __LINE__, "list exited %d: %s", status, diag);
    const char *head = "position\trequeues\tbytes\ttable\treason\n";
    if (strncmp(text, head, strlen(head)) != 0)
        unit_fail(__FILE__, __LINE__, "list printed:\n%s", text);
    int n = 0;
    for (const char *l = strchr(text, '\n') + 1; *l && n < max; l = strchr(l, '\n') + 1)
        if (sscanf(l, "%llu\t", &pos[n]) == 1)
            n++;
    if (out)
        *out = text;
    return n;
}

static void test_list_show_purge_and_replay(void)
{
    cap_env e;
    setup_with_limit(&e, "1");
    cap_client *c = cap_open(e.addr, e.uri, NULL);
    cap_insert_rows(&e, 7, 8, false);
    Pgcapture__CaptureMessage *m[2];
    cap_recv_n(c, m, 2, 20000);
    cap_ack(c, m[0]->checkpoint, "bad seven");
    cap_ack(c, m[1]->checkpoint, "bad\teight");
    cap_expect_quiet(c, 1000);
    unsigned long long pos[4];
    char *text = NULL;
    int n = 0;
    long long until = harness_now_ms() + 20000;
    while ((n = list_positions(&e, pos, 4, &text)) < 2 && harness_now_ms() < until)
        harness_sleep_ms(200);
    EXPECT_EQ_INT(2, n);
    char want[200];
    snprintf(want, sizeof want, "%llu\t1\t", pos[0]);
    if (!strstr(text, want) || !strstr(text, "\tpublic.t\t\"bad seven\"\n") ||
        !strstr(text, "\tpublic.t\t\"bad\\teight\"\n"))
        unit_fail(__FILE__, __LINE__, "list printed:\n%s", text);

    /* show: the letter whole, as take prints it. */
    char arg[64];
    int status = -1;
    snprintf(arg, sizeof arg, "--position=%llu", pos[0]);
    text = run_verb(&e, "show", arg, NULL, &status, NULL);
    EXPECT_EQ_INT(0, status);
    snprintf(want, sizeof want, ",\"letter\":%llu}\n", pos[0]);
    if (!strstr(text, "{\"requeues\":1,\"reason\":\"bad seven\"") ||
        !strstr(text, "\"v\":\"row 7\"") || !strstr(text, want))
        unit_fail(__FILE__, __LINE__, "show printed:\n%s", text);
    text = run_verb(&e, "show", "--position=999999", NULL, &status, NULL);
    EXPECT_EQ_INT(1, status);

    /* purge one: the other stays. */
    char *diag = NULL;
    snprintf(arg, sizeof arg, "--position=%llu", pos[1]);
    run_verb(&e, "purge", arg, NULL, &status, &diag);
    EXPECT_EQ_INT(0, status);
    if (!strstr(diag, "1 purged"))
        unit_fail(__FILE__, __LINE__, "purge said: %s", diag);
    unsigned long long left[4];
    EXPECT_EQ_INT(1, list_positions(&e, left, 4, NULL));
    EXPECT_EQ_INT((long long)pos[0], (long long)left[0]);

    /* replay: row 7 comes back to the URI's consumer, and is no dead letter any more. */
    snprintf(arg, sizeof arg, "--position=%llu", pos[0]);
    run_verb(&e, "replay", arg, NULL, &status, &diag);
    EXPECT_EQ_INT(0, status);
    if (!strstr(diag, "1 replayed"))
        unit_fail(__FILE__, __LINE__, "replay said: %s", diag);
    Pgcapture__CaptureMessage *again[1];
    cap_recv_n(c, again, 1, 20000);
    EXPECT_EQ_INT(7, cap_id_of(again[0]->change));
    EXPECT_EQ_UINT(m[0]->checkpoint->lsn, again[0]->checkpoint->lsn);
    EXPECT_EQ_UINT(m[0]->checkpoint->seq, again[0]->checkpoint->seq);
    cap_ack(c, again[0]->checkpoint, NULL);
    EXPECT_EQ_INT(0, list_positions(&e, left, 4, NULL));
    cap_expect_quiet(c, 1000);

    /* purge --all on none: a count of 0; bad arguments are usage errors. */
    run_verb(&e, "purge", "--all", NULL, &status, &diag);
    EXPECT_EQ_INT(0, status);
    if (!strstr(diag, "0 purged"))
        unit_fail(__FILE__, __LINE__, "purge --all said: %s", diag);
    run_verb(&e, "replay", NULL, NULL, &status, NULL);
    EXPECT_EQ_INT(2, status);
    run_verb(&e, "frobnicate", NULL, NULL, &status, NULL);
    EXPECT_EQ_INT(2, status);
}

UNIT_MAIN(UNIT_CASE(test_a_change_requeued_max_requeues_times_is_dead_lettered_once),
          UNIT_CASE(test_a_batch_requeued_whole_is_dead_lettered_change_by_change),
          UNIT_CASE(test_without_a_limit_a_change_comes_back_however_often_requeued),
          UNIT_CASE(test_the_cli_takes_the_dead_letters_out_once),
          UNIT_CASE(test_list_show_purge_and_replay))
