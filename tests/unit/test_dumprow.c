/* Dump row Changes written from COPY tuples are byte for byte what protobuf-c packs for the
 * same Change: NULLs, empty values and names, a zero oid, many columns. */
#include "codec/dumprow.h"
#include "core/status.h"
#include "harness/runner.h"
#include "pgcapture.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_same_as_protobuf_c(const char *schema, const char *table, size_t ncols,
                                      const char *const *names, const uint32_t *oids,
                                      const copybin_field *values)
{
    dumprow *r;
    EXPECT_EQ_INT(PGC_OK, dumprow_create(schema, table, ncols, names, oids, &r));
    EXPECT_EQ_UINT(ncols, dumprow_ncols(r));
    copybin_tuple t = {(uint16_t)ncols, values};
    size_t n = dumprow_size(r, &t);
    uint8_t *ours = malloc(n);
    EXPECT_EQ_UINT(n, dumprow_write(r, &t, ours));

    Pgcapture__Change c = PGCAPTURE__CHANGE__INIT;
    Pgcapture__Field *fields = calloc(ncols ? ncols : 1, sizeof *fields);
    Pgcapture__Field **ptrs = calloc(ncols ? ncols : 1, sizeof *ptrs);
    c.op = PGCAPTURE__CHANGE__OPERATION__UPDATE;
    c.schema = (char *)schema;
    c.table = (char *)table;
    for (size_t i = 0; i < ncols; i++) {
        pgcapture__field__init(&fields[i]);
        fields[i].name = (char *)names[i];
        fields[i].oid = oids[i];
        if (values[i].len >= 0) {
            fields[i].value_case = PGCAPTURE__FIELD__VALUE_BINARY;
            fields[i].binary.data = (uint8_t *)values[i].data;
            fields[i].binary.len = (size_t)values[i].len;
        }
        ptrs[i] = &fields[i];
    }
    c.n_new_ = ncols;
    c.new_ = ptrs;
    size_t pn = pgcapture__change__get_packed_size(&c);
    uint8_t *theirs = malloc(pn);
    pgcapture__change__pack(&c, theirs);
    EXPECT_EQ_MEM(theirs, pn, ours, n);
    free(theirs);
    free(ptrs);
    free(fields);
    free(ours);
    dumprow_destroy(r);
}

static void test_dumprow_matches_protobuf_c_for_values_and_nulls(void)
{
    const char *names[] = {"id", "note", "empty", "gone"};
    const uint32_t oids[] = {23, 25, 17, 1184};
    const copybin_field values[] = {
        {(const uint8_t *)"\0\0\0\x2a", 4},
        {(const uint8_t *)"hello", 5},
        {(const uint8_t *)"", 0},
        {NULL, -1},
    };
    expect_same_as_protobuf_c("public", "orders", 4, names, oids, values);
}

static void test_dumprow_matches_protobuf_c_for_odd_names_and_sizes(void)
{
    /* Empty name and schema, oid 0, a value of 300 bytes (two-byte length varints). */
    static uint8_t big[300];
    memset(big, 0xAB, sizeof big);
    const char *names[] = {"", "x"};
    const uint32_t oids[] = {0, 4294967295u};
    const copybin_field values[] = {{big, (int32_t)sizeof big}, {NULL, -1}};
    expect_same_as_protobuf_c("", "t", 2, names, oids, values);
    /* Many columns, and no columns at all. */
    enum { N = 200 };
    char *many[N];
    uint32_t moids[N];
    copybin_field mvals[N];
    for (int i = 0; i < N; i++) {
        many[i] = malloc(16);
        snprintf(many[i], 16, "col_%d", i);
        moids[i] = (uint32_t)(20 + i);
        mvals[i] = i % 7 ? (copybin_field){big, i} : (copybin_field){NULL, -1};
    }
    expect_same_as_protobuf_c("s", "wide", N, (const char *const *)many, moids, mvals);
    for (int i = 0; i < N; i++)
        free(many[i]);
    expect_same_as_protobuf_c("s", "none", 0, NULL, NULL, NULL);
}

UNIT_MAIN(UNIT_CASE(test_dumprow_matches_protobuf_c_for_values_and_nulls),
          UNIT_CASE(test_dumprow_matches_protobuf_c_for_odd_names_and_sizes))
