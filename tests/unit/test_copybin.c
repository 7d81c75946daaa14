/* The binary COPY decoder: tuples as PostgreSQL writes them, whole or cut at every byte,
 * decode to the same fields; NULLs, the trailer and every malformed input are told apart. */
#include "codec/copybin.h"
#include "core/status.h"
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0};

typedef struct wbuf {
    uint8_t b[4096];
    size_t n;
} wbuf;

static void put16(wbuf *w, int v)
{
    w->b[w->n++] = (uint8_t)((unsigned)v >> 8);
    w->b[w->n++] = (uint8_t)v;
}

static void put32(wbuf *w, int64_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 3; i >= 0; i--)
        w->b[w->n++] = (uint8_t)(u >> (8 * i));
}

static void put_header(wbuf *w, uint32_t flags, uint32_t ext)
{
    memcpy(w->b + w->n, sig, sizeof sig);
    w->n += sizeof sig;
    put32(w, flags);
    put32(w, ext);
    for (uint32_t i = 0; i < ext; i++)
        w->b[w->n++] = 'x';
}

static void put_field(wbuf *w, const char *s)
{
    if (!s) {
        put32(w, -1);
        return;
    }
    put32(w, (int64_t)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

/* Three tuples: ("1","one"), (NULL,""), ("333","three"), then the trailer. */
static void sample(wbuf *w)
{
    w->n = 0;
    put_header(w, 0, 3);
    put16(w, 2), put_field(w, "1"), put_field(w, "one");
    put16(w, 2), put_field(w, NULL), put_field(w, "");
    put16(w, 2), put_field(w, "333"), put_field(w, "three");
    put16(w, -1);
}

/* Decodes `data` fed in chunks of `step` bytes (0: one chunk); writes the tuples as
 * "a|b;" text (NULL as "~") and returns the final status of next/finish. */
static int decode(const uint8_t *data, size_t len, size_t step, char *text, size_t text_len)
{
    copybin *d;
    char err[200];
    if (copybin_create(1 << 20, &d) != PGC_OK)
        return PGC_ERR_NOMEM;
    size_t off = 0, t = 0;
    int rc = 0;
    text[0] = '\0';
    while (off < len) {
        size_t n = step && len - off > step ? step : len - off;
        EXPECT_EQ_INT(PGC_OK, copybin_feed(d, data + off, n));
        off += n;
        copybin_tuple tu;
        while ((rc = copybin_next(d, &tu, err, sizeof err)) == 1) {
            for (int i = 0; i < tu.nfields; i++) {
                const copybin_field *f = &tu.fields[i];
                t += (size_t)snprintf(text + t, text_len - t, "%s%.*s", i ? "|" : "",
                                      f->len < 0 ? 1 : f->len,
                                      f->len < 0 ? "~" : (const char *)f->data);
            }
            t += (size_t)snprintf(text + t, text_len - t, ";");
        }
        if (rc < 0)
            break;
    }
    if (rc >= 0)
        rc = copybin_finish(d, err, sizeof err);
    copybin_destroy(d);
    return rc;
}

static void test_copybin_decodes_tuples_nulls_and_the_trailer(void)
{
    wbuf w;
    char text[256];
    sample(&w);
    EXPECT_EQ_INT(PGC_OK, decode(w.b, w.n, 0, text, sizeof text));
    EXPECT_EQ_STR("1|one;~|;333|three;", text);
}

static void test_copybin_gives_the_same_tuples_at_every_cut(void)
{
    wbuf w;
    char text[256];
    sample(&w);
    for (size_t step = 1; step <= w.n; step++) {
        EXPECT_EQ_INT(PGC_OK, decode(w.b, w.n, step, text, sizeof text));
        EXPECT_EQ_STR("1|one;~|;333|three;", text);
    }
}

static void test_copybin_decodes_whole_tuples_in_place(void)
{
    wbuf w;
    sample(&w);
    copybin *d;
    char err[200];
    EXPECT_EQ_INT(PGC_OK, copybin_create(1 << 20, &d));
    EXPECT_EQ_INT(PGC_OK, copybin_feed(d, w.b, w.n));
    copybin_tuple t;
    EXPECT_EQ_INT(1, copybin_next(d, &t, err, sizeof err));
    /* Borrowed from the chunk, not copied. */
    EXPECT_TRUE(t.fields[0].data > w.b && t.fields[0].data < w.b + w.n);
    EXPECT_EQ_INT(1, copybin_next(d, &t, err, sizeof err));
    EXPECT_TRUE(t.fields[0].data == NULL && t.fields[0].len == -1);
    EXPECT_EQ_INT(0, t.fields[1].len);
    EXPECT_EQ_INT(1, copybin_next(d, &t, err, sizeof err));
    EXPECT_EQ_INT(2, copybin_next(d, &t, err, sizeof err));
    EXPECT_EQ_UINT(3, copybin_tuples(d));
    EXPECT_EQ_INT(PGC_OK, copybin_finish(d, err, sizeof err));
    /* A second stream on the same decoder. */
    copybin_reset(d);
    EXPECT_EQ_INT(PGC_OK, copybin_feed(d, w.b, w.n));
    EXPECT_EQ_INT(1, copybin_next(d, &t, err, sizeof err));
    copybin_destroy(d);
}

static void test_copybin_refuses_a_feed_before_the_chunk_is_used(void)
{
    wbuf w;
    sample(&w);
    copybin *d;
    char err[200];
    copybin_tuple t;
    EXPECT_EQ_INT(PGC_OK, copybin_create(1 << 20, &d));
    EXPECT_EQ_INT(PGC_OK, copybin_feed(d, w.b, w.n));
    EXPECT_EQ_INT(1, copybin_next(d, &t, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_STATE, copybin_feed(d, w.b, w.n));
    copybin_destroy(d);
}

static void expect_refused(const wbuf *w, int status, const char *what)
{
    char text[256];
    for (size_t step = 0; step <= w->n; step++) { /* 0: one chunk */
        int rc = decode(w->b, w->n, step, text, sizeof text);
        if (rc != status)
            unit_fail(__FILE__, __LINE__, "%s, cut every %zu bytes: expected %d, got %d", what,
                      step, status, rc);
    }
}

static void test_copybin_refuses_malformed_streams(void)
{
    wbuf w;
    sample(&w);
    w.b[3] = 'X';
    expect_refused(&w, PGC_ERR_MALFORMED, "bad signature");
    w.n = 0;
    put_header(&w, 1u << 16, 0);
    put16(&w, -1);
    expect_refused(&w, PGC_ERR_MALFORMED, "OIDs flag");
    w.n = 0;
    put_header(&w, 1u << 20, 0);
    put16(&w, -1);
    expect_refused(&w, PGC_ERR_MALFORMED, "unknown critical flag");
    w.n = 0;
    put_header(&w, 1, 0); /* non-critical flags are ignored */
    put16(&w, 1), put_field(&w, "a"), put16(&w, -1);
    expect_refused(&w, PGC_OK, "non-critical flag");
    w.n = 0;
    put_header(&w, 0, 0);
    put16(&w, -2);
    expect_refused(&w, PGC_ERR_MALFORMED, "negative field count");
    w.n = 0;
    put_header(&w, 0, 0);
    put16(&w, 1), put32(&w, -2), put16(&w, -1);
    expect_refused(&w, PGC_ERR_MALFORMED, "field length -2");
    w.n = 0;
    put_header(&w, 0, 0);
    put16(&w, -1), put16(&w, 0);
    expect_refused(&w, PGC_ERR_MALFORMED, "bytes after the trailer");
    w.n = 0;
    put_header(&w, 0, 0);
    put16(&w, 2), put_field(&w, "abc");
    expect_refused(&w, PGC_ERR_TRUNCATED, "cut inside a tuple");
    w.n = 0;
    put_header(&w, 0, 0);
    expect_refused(&w, PGC_ERR_TRUNCATED, "no trailer");
}

static void test_copybin_refuses_a_tuple_past_the_limit(void)
{
    wbuf w;
    w.n = 0;
    put_header(&w, 0, 0);
    put16(&w, 1);
    put32(&w, 1000);
    memset(w.b + w.n, 'y', 1000);
    w.n += 1000;
    put16(&w, -1);
    copybin *d;
    char err[200];
    copybin_tuple t;
    EXPECT_EQ_INT(PGC_OK, copybin_create(512, &d));
    EXPECT_EQ_INT(PGC_OK, copybin_feed(d, w.b, w.n));
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, copybin_next(d, &t, err, sizeof err));
    EXPECT_TRUE(strstr(err, "tuple 1") != NULL);
    /* The error sticks. */
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, copybin_next(d, &t, err, sizeof err));
    EXPECT_EQ_INT(PGC_ERR_TOO_LARGE, copybin_finish(d, err, sizeof err));
    copybin_destroy(d);
}

UNIT_MAIN(UNIT_CASE(test_copybin_decodes_tuples_nulls_and_the_trailer),
          UNIT_CASE(test_copybin_gives_the_same_tuples_at_every_cut),
          UNIT_CASE(test_copybin_decodes_whole_tuples_in_place),
          UNIT_CASE(test_copybin_refuses_a_feed_before_the_chunk_is_used),
          UNIT_CASE(test_copybin_refuses_malformed_streams),
          UNIT_CASE(test_copybin_refuses_a_tuple_past_the_limit))
