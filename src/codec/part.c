/* Joining the parts of a Message too large for one batch (see part.h). */
#include "codec/part.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

struct part_joiner {
    uint8_t *buf;
    size_t len, cap, max;
    uint32_t next, n; /* next part expected (0: none in progress) of n */
    log_pos pos;      /* of the message in progress */
};

int part_joiner_create(size_t max_total_bytes, part_joiner **out)
{
    part_joiner *j = calloc(1, sizeof *j);
    if (!j)
        return PGC_ERR_NOMEM;
    j->max = max_total_bytes;
    *out = j;
    return PGC_OK;
}

void part_joiner_destroy(part_joiner *j)
{
    if (!j)
        return;
    free(j->buf);
    free(j);
}

int part_joiner_feed(part_joiner *j, log_pos pos, uint32_t i, uint32_t n, const uint8_t *data,
                     size_t len, const uint8_t **out, size_t *out_len, char *err, size_t err_len)
{
    if (n == 0 || i == 0 || i > n)
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED, "batch: invalid part %u/%u", i, n);
    if (i == 1) {
        j->len = 0;
        j->next = 1;
        j->n = n;
        j->pos = pos;
    } else if (j->next == i && j->n == n && logpos_cmp(j->pos, pos) != 0) {
        char want[LOGPOS_TEXT_LEN], got[LOGPOS_TEXT_LEN];
        logpos_format(j->pos, want);
        logpos_format(pos, got);
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "batch: part %u/%u of the message at %s follows parts of the one at %s",
                          i, n, got, want);
    } else if (j->next != i || j->n != n) {
        uint32_t want = j->next, of = j->n;
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_MALFORMED,
                          "batch: part %u/%u out of order (expected %u/%u)", i, n, want, of);
    }
    if (len > j->max - j->len) {
        j->next = 0;
        j->len = 0;
        return errbuf_set(err, err_len, PGC_ERR_TOO_LARGE,
                          "batch: parts exceed the limit of %zu bytes", j->max);
    }
    if (j->len + len > j->cap) {
        size_t cap = j->cap ? j->cap : 65536;
        while (cap < j->len + len)
            cap *= 2;
        uint8_t *b = realloc(j->buf, cap);
        if (!b)
            return PGC_ERR_NOMEM;
        j->buf = b;
        j->cap = cap;
    }
    if (len)
        memcpy(j->buf + j->len, data, len);
    j->len += len;
    if (i < n) {
        j->next = i + 1;
        return 0;
    }
    j->next = 0;
    *out = j->buf;
    *out_len = j->len;
    return 1;
}

bool part_header_parse(const char *s, uint32_t *i, uint32_t *n)
{
    char *end;
    unsigned long a, b;
    if (*s < '0' || *s > '9')
        return false;
    a = strtoul(s, &end, 10);
    if (*end != '/' || end[1] < '0' || end[1] > '9')
        return false;
    b = strtoul(end + 1, &end, 10);
    if (*end || a == 0 || b == 0 || a > b || b > UINT32_MAX)
        return false;
    *i = (uint32_t)a;
    *n = (uint32_t)b;
    return true;
}
