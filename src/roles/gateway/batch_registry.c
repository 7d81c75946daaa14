/* Open batches of a batch-mode stream (see batch_registry.h): an array sorted by number,
 * since numbers are issued in order; acks mostly come in order too, so the oldest are
 * found first and removal moves little. */
#include "roles/gateway/batch_registry.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

struct batch_registry {
    batch_record **open; /* ascending numbers */
    size_t n, cap;
    size_t dumps;
    uint64_t last;
};

batch_registry *batch_registry_create(void)
{
    return calloc(1, sizeof(batch_registry));
}

void batch_record_free(batch_record *rec)
{
    if (!rec)
        return;
    free(rec->runs);
    free(rec);
}

void batch_registry_destroy(batch_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        batch_record_free(r->open[i]);
    free(r->open);
    free(r);
}

batch_record *batch_record_new(bool dump)
{
    batch_record *rec = calloc(1, sizeof *rec);
    if (rec)
        rec->dump = dump;
    return rec;
}

int batch_registry_add(batch_registry *r, batch_record *rec)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        batch_record **o = realloc(r->open, cap * sizeof *o);
        if (!o)
            return PGC_ERR_NOMEM;
        r->open = o;
        r->cap = cap;
    }
    rec->number = ++r->last;
    r->open[r->n++] = rec;
    r->dumps += rec->dump;
    return PGC_OK;
}

int batch_record_add(batch_record *rec, uint64_t serial, uint32_t index)
{
    if (rec->n_runs) {
        batch_run *last = &rec->runs[rec->n_runs - 1];
        if (last->serial == serial && last->last + 1 == index) {
            last->last = index;
            return PGC_OK;
        }
    }
    if (rec->n_runs == rec->cap_runs) {
        uint32_t cap = rec->cap_runs ? rec->cap_runs * 2 : 4;
        batch_run *runs = realloc(rec->runs, cap * sizeof *runs);
        if (!runs)
            return PGC_ERR_NOMEM;
        rec->runs = runs;
        rec->cap_runs = cap;
    }
    rec->runs[rec->n_runs++] = (batch_run){serial, index, index};
    return PGC_OK;
}

int batch_registry_take(batch_registry *r, uint64_t number, batch_record **out, char *err,
                        size_t err_len)
{
    if (number == 0 || number > r->last)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "batch ack for batch %llu, never sent on this stream (last sent: %llu)",
                          (unsigned long long)number, (unsigned long long)r->last);
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->open[mid]->number < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->n || r->open[lo]->number != number)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "batch ack for batch %llu, which was answered already",
                          (unsigned long long)number);
    batch_record *rec = r->open[lo];
    memmove(&r->open[lo], &r->open[lo + 1], (r->n - lo - 1) * sizeof *r->open);
    r->n--;
    r->dumps -= rec->dump;
    *out = rec;
    return PGC_OK;
}

size_t batch_registry_open_count(const batch_registry *r)
{
    return r->n;
}

size_t batch_registry_open_dumps(const batch_registry *r)
{
    return r->dumps;
}

uint64_t batch_registry_last(const batch_registry *r)
{
    return r->last;
}
