/* One row of the capture tests' table t (id 1, column n int8) updated again and again, one
 * transaction each (n = 1, 2, ...), and a consumer's view of the values it received: a
 * consumer that applies changes in arrival order must see every new value exactly one more
 * than the last new one (copies of old values may come: at least once). */
#ifndef PGC_TEST_ROWVIEW_H
#define PGC_TEST_ROWVIEW_H

#include "harness/capclient.h"
#include "pgcapture.pb-c.h"

#include <libpq-fe.h>
#include <stdint.h>

typedef struct row_view row_view;

/* A view of values 0..max, none received yet. Freed at the end of the case. */
row_view *row_view_create(int64_t max);
/* Updates row 1 of t to n = from..to, one transaction each. */
void row_view_write_updates(PGconn *conn, int64_t from, int64_t to);
/* Notes the value of a change of the row (fails the case for one that has none or that was
 * never written); prints the first five copies and the first five values out of order. */
void row_view_note(row_view *v, const Pgcapture__Change *c);
int64_t row_view_last_new(const row_view *v); /* -1 before the first */
int row_view_copies(const row_view *v);
int row_view_went_back(const row_view *v);
/* Receives (per-change mode), notes and acks changes of the row until its value reached
 * `until`; fails the case, with the gateway's log, when nothing comes for 60 s. */
void row_view_receive_until(cap_client *c, row_view *v, int64_t until);
/* Every value arrived and none out of order (fails the case otherwise). */
void row_view_expect_all_in_order(const row_view *v);

#endif
