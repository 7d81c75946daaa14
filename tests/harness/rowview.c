/* A consumer's view of one row's values (see rowview.h). */
#include "harness/rowview.h"

#include "harness/capclient.h"
#include "harness/fixtures.h"
#include "harness/runner.h"
#include "codec/bigendian.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define SHOW 5

struct row_view {
    int64_t max;
    bool *seen;       /* values received at least once */
    int64_t last_new; /* the last value received for the first time (-1: none) */
    int copies, went_back;
};

static void row_view_free(void *arg)
{
    row_view *v = arg;
    free(v->seen);
    free(v);
}

row_view *row_view_create(int64_t max)
{
    row_view *v = calloc(1, sizeof *v);
    if (!v || !(v->seen = calloc((size_t)max + 1, sizeof *v->seen)))
        unit_fail(__FILE__, __LINE__, "out of memory");
    v->max = max;
    v->last_new = -1;
    unit_defer(row_view_free, v);
    return v;
}

void row_view_write_updates(PGconn *conn, int64_t from, int64_t to)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN FOR i IN %lld..%lld LOOP UPDATE t SET n = i WHERE id = 1; COMMIT; "
             "END LOOP; END $$",
             (long long)from, (long long)to);
    harness_exec(conn, sql);
}

void row_view_note(row_view *v, const Pgcapture__Change *c)
{
    const Pgcapture__Field *f = cap_field(c, "n");
    if (!f || f->value_case != PGCAPTURE__FIELD__VALUE_BINARY || f->binary.len != 8)
        unit_fail(__FILE__, __LINE__, "change without a binary int8 n");
    int64_t n = (int64_t)bigendian_get64(f->binary.data);
    if (n < 0 || n > v->max)
        unit_fail(__FILE__, __LINE__, "value %lld was never written", (long long)n);
    if (v->seen[n]) {
        if (v->copies++ < SHOW)
            printf("    value %lld again after %lld\n", (long long)n, (long long)v->last_new);
        return;
    }
    if (n != v->last_new + 1 && v->went_back++ < SHOW)
        printf("    new value %lld after %lld\n", (long long)n, (long long)v->last_new);
    v->seen[n] = true;
    if (n > v->last_new)
        v->last_new = n;
}

int64_t row_view_last_new(const row_view *v)
{
    return v->last_new;
}

int row_view_copies(const row_view *v)
{
    return v->copies;
}

int row_view_went_back(const row_view *v)
{
    return v->went_back;
}

void row_view_receive_until(cap_client *c, row_view *v, int64_t until)
{
    while (v->last_new < until) {
        Pgcapture__CaptureMessage *m = cap_recv(c, 60000);
        if (!m) {
            cap_show_gateway_log();
            unit_fail(__FILE__, __LINE__, "no change for 60 s; last new value %lld",
                      (long long)v->last_new);
        }
        row_view_note(v, m->change);
        cap_ack(c, m->checkpoint, NULL);
    }
}

void row_view_expect_all_in_order(const row_view *v)
{
    printf("    %d values received twice\n", v->copies);
    EXPECT_EQ_INT(0, v->went_back);
    for (int64_t i = 0; i <= v->max; i++)
        if (!v->seen[i])
            unit_fail(__FILE__, __LINE__, "value %lld never arrived", (long long)i);
}
