/* The controller's dump queues (see controller_queue.h).
 *
 * Per URI: `pending` holds never-handed-out and restored items in id order, consumed
 * from `head`, so a schedule of many items is handed out in O(1) each; `retry` holds
 * requeued items, which go first once their back-off has passed. Streams are few, so
 * they live in one array searched linearly. */
#include "roles/controller_queue.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

typedef struct cq_stream {
    uint64_t id;
    size_t uri; /* index into q->uris */
    cq_item *outstanding;
    bool has_done;
    int64_t last_done_ms;
} cq_stream;

typedef struct cq_uri {
    char *uri;
    cq_item **pending;
    size_t head, n_pending, cap_pending;
    cq_item **retry;
    size_t n_retry, cap_retry;
    size_t n_outstanding; /* room for all of them is kept in retry, see cq_dispatch */
    uint64_t next_id;
    int64_t cooldown_ms;
    bool has_handout;
    int64_t last_handout_ms;
    uint64_t done, done_here, requeued, rows_sent;
    int64_t first_done_ms, last_done_ms;
} cq_uri;

struct controller_queue {
    cq_config cfg;
    cq_uri **uris;
    size_t n_uris, cap_uris;
    cq_stream *streams;
    size_t n_streams, cap_streams;
};

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

static void item_free(cq_item *it)
{
    if (!it)
        return;
    free(it->schema);
    free(it->table);
    free(it);
}

static cq_item *item_new(uint64_t id, const cq_spec *spec)
{
    cq_item *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->id = id;
    it->schema = strdup(spec->schema ? spec->schema : "");
    it->table = strdup(spec->table);
    it->page_begin = spec->page_begin;
    it->page_end = spec->page_end;
    if (!it->schema || !it->table) {
        item_free(it);
        return NULL;
    }
    return it;
}

controller_queue *cq_create(const cq_config *cfg)
{
    controller_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cfg = *cfg;
    if (q->cfg.backoff_base_ms < 1)
        q->cfg.backoff_base_ms = 1;
    if (q->cfg.backoff_max_ms < q->cfg.backoff_base_ms)
        q->cfg.backoff_max_ms = q->cfg.backoff_base_ms;
    return q;
}

static void uri_free(cq_uri *u)
{
    for (size_t i = u->head; i < u->n_pending; i++)
        item_free(u->pending[i]);
    for (size_t i = 0; i < u->n_retry; i++)
        item_free(u->retry[i]);
    free(u->pending);
    free(u->retry);
    free(u->uri);
    free(u);
}

void cq_destroy(controller_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n_streams; i++)
        item_free(q->streams[i].outstanding);
    for (size_t i = 0; i < q->n_uris; i++)
        uri_free(q->uris[i]);
    free(q->streams);
    free(q->uris);
    free(q);
}

static int validate_uri(const char *uri, char *err, size_t err_len)
{
    if (!uri || !*uri)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is empty");
    if (strlen(uri) > CQ_MAX_URI_BYTES)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is longer than %d bytes",
                          CQ_MAX_URI_BYTES);
    return PGC_OK;
}

int cq_validate(const char *uri, const cq_spec *spec, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (!spec->table || !*spec->table)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "table name is empty");
    if (strlen(spec->table) > CQ_MAX_NAME_BYTES ||
        (spec->schema && strlen(spec->schema) > CQ_MAX_NAME_BYTES))
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "schema or table name is longer than %d bytes", CQ_MAX_NAME_BYTES);
    if (spec->page_end < spec->page_begin)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "page_end %u is before page_begin %u (table %s)", spec->page_end,
                          spec->page_begin, spec->table);
    return PGC_OK;
}

static cq_uri *uri_find(const controller_queue *q, const char *uri)
{
    for (size_t i = 0; i < q->n_uris; i++)
        if (strcmp(q->uris[i]->uri, uri) == 0)
            return q->uris[i];
    return NULL;
}

static size_t uri_index(const controller_queue *q, const cq_uri *u)
{
    for (size_t i = 0; i < q->n_uris; i++)
        if (q->uris[i] == u)
            return i;
    return (size_t)-1;
}

static cq_uri *uri_get(controller_queue *q, const char *uri)
{
    cq_uri *u = uri_find(q, uri);
    if (u)
        return u;
    if (!grow((void **)&q->uris, &q->cap_uris, q->n_uris + 1, sizeof *q->uris))
        return NULL;
    if (!(u = calloc(1, sizeof *u)) || !(u->uri = strdup(uri))) {
        free(u);
        return NULL;
    }
    u->next_id = 1;
    q->uris[q->n_uris++] = u;
    return u;
}

/* Makes room for `extra` more pending items, reclaiming the consumed head first. */
static bool pending_reserve(cq_uri *u, size_t extra)
{
    if (u->head > 0 && u->n_pending + extra > u->cap_pending) {
        memmove(u->pending, u->pending + u->head, (u->n_pending - u->head) * sizeof *u->pending);
        u->n_pending -= u->head;
        u->head = 0;
    }
    return grow((void **)&u->pending, &u->cap_pending, u->n_pending + extra, sizeof *u->pending);
}

int cq_schedule(controller_queue *q, const char *uri, const cq_spec *specs, size_t n,
                uint64_t *first_id, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char why[256];
        if ((rc = cq_validate(uri, &specs[i], why, sizeof why)) != PGC_OK)
            return errbuf_set(err, err_len, rc, "dumps[%zu]: %s", i, why);
    }
    cq_uri *u = uri_get(q, uri);
    if (!u || !pending_reserve(u, n))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
    cq_item **fresh = calloc(n ? n : 1, sizeof *fresh);
    if (!fresh)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(fresh[i] = item_new(u->next_id + i, &specs[i]))) {
            for (size_t k = 0; k < i; k++)
                item_free(fresh[k]);
            free(fresh);
            return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
        }
    }
    if (n > 0)
        memcpy(u->pending + u->n_pending, fresh, n * sizeof *fresh);
    u->n_pending += n;
    free(fresh);
    if (first_id)
        *first_id = u->next_id;
    u->next_id += n;
    return PGC_OK;
}

uint64_t cq_next_id(const controller_queue *q, const char *uri)
{
    const cq_uri *u = uri_find(q, uri);
    return u ? u->next_id : 1;
}

int cq_restore_item(controller_queue *q, const char *uri, uint64_t id, const cq_spec *spec,
                    uint32_t attempts, char *err, size_t err_len)
{
    int rc = cq_validate(uri, spec, err, err_len);
    if (rc != PGC_OK)
        return rc;
    cq_uri *u = uri_get(q, uri);
    cq_item *it = item_new(id, spec);
    if (!u || !it || !pending_reserve(u, 1)) {
        item_free(it);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
    }
    it->attempts = attempts;
    u->pending[u->n_pending++] = it;
    if (id >= u->next_id)
        u->next_id = id + 1;
    return PGC_OK;
}

int cq_restore_meta(controller_queue *q, const char *uri, int64_t cooldown_ms, uint64_t done,
                    uint64_t next_id, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    cq_uri *u = uri_get(q, uri);
    if (!u)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
    u->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 0;
    u->done = done;
    if (next_id > u->next_id)
        u->next_id = next_id;
    return PGC_OK;
}

static int cmp_item_id(const void *a, const void *b)
{
    const cq_item *x = *(cq_item *const *)a, *y = *(cq_item *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void cq_restore_finish(controller_queue *q)
{
    for (size_t i = 0; i < q->n_uris; i++) {
        cq_uri *u = q->uris[i];
        if (u->n_pending > u->head)
            qsort(u->pending + u->head, u->n_pending - u->head, sizeof *u->pending, cmp_item_id);
    }
}

long cq_stop(controller_queue *q, const char *uri, uint64_t **ids)
{
    *ids = NULL;
    cq_uri *u = uri_find(q, uri);
    if (!u)
        return 0;
    size_t ui = uri_index(q, u);
    size_t n = (u->n_pending - u->head) + u->n_retry;
    for (size_t i = 0; i < q->n_streams; i++)
        if (q->streams[i].uri == ui && q->streams[i].outstanding)
            n++;
    if (n == 0)
        return 0;
    uint64_t *out = malloc(n * sizeof *out);
    if (!out)
        return PGC_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < q->n_streams; i++)
        if (q->streams[i].uri == ui && q->streams[i].outstanding) {
            q->streams[i].outstanding->stopped = true;
            out[k++] = q->streams[i].outstanding->id;
        }
    for (size_t i = u->head; i < u->n_pending; i++) {
        out[k++] = u->pending[i]->id;
        item_free(u->pending[i]);
    }
    for (size_t i = 0; i < u->n_retry; i++) {
        out[k++] = u->retry[i]->id;
        item_free(u->retry[i]);
    }
    u->head = u->n_pending = u->n_retry = 0;
    *ids = out;
    return (long)n;
}

int cq_set_cooldown(controller_queue *q, const char *uri, int64_t cooldown_ms)
{
    cq_uri *u = uri_get(q, uri);
    if (!u)
        return PGC_ERR_NOMEM;
    u->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 0;
    return PGC_OK;
}

int64_t cq_cooldown(controller_queue *q, const char *uri)
{
    cq_uri *u = uri_find(q, uri);
    return u ? u->cooldown_ms : 0;
}

static cq_stream *stream_find(controller_queue *q, uint64_t stream_id, size_t *index)
{
    for (size_t i = 0; i < q->n_streams; i++)
        if (q->streams[i].id == stream_id) {
            if (index)
                *index = i;
            return &q->streams[i];
        }
    return NULL;
}

int cq_stream_open(controller_queue *q, const char *uri, uint64_t stream_id)
{
    if (stream_find(q, stream_id, NULL))
        return PGC_ERR_STATE;
    cq_uri *u = uri_get(q, uri);
    if (!u || !grow((void **)&q->streams, &q->cap_streams, q->n_streams + 1, sizeof *q->streams))
        return PGC_ERR_NOMEM;
    cq_stream *s = &q->streams[q->n_streams++];
    memset(s, 0, sizeof *s);
    s->id = stream_id;
    s->uri = uri_index(q, u);
    return PGC_OK;
}

static int64_t backoff_ms(const controller_queue *q, uint32_t attempts)
{
    int64_t d = q->cfg.backoff_base_ms;
    for (uint32_t i = 1; i < attempts && d < q->cfg.backoff_max_ms; i++)
        d *= 2;
    return d < q->cfg.backoff_max_ms ? d : q->cfg.backoff_max_ms;
}

static cq_completion complete(controller_queue *q, cq_stream *s, const char *reason, int64_t now_ms)
{
    cq_completion c = {CQ_NOTHING, 0, NULL};
    cq_item *it = s->outstanding;
    if (!it)
        return c;
    cq_uri *u = q->uris[s->uri];
    s->outstanding = NULL;
    u->n_outstanding--;
    s->has_done = true;
    s->last_done_ms = now_ms;
    c.id = it->id;
    if (it->stopped) {
        item_free(it);
        c.outcome = CQ_DROPPED;
    } else if (!reason || !*reason) {
        item_free(it);
        c.outcome = CQ_ACKED;
        u->done++;
        u->done_here++;
        if (!u->first_done_ms)
            u->first_done_ms = now_ms;
        u->last_done_ms = now_ms;
    } else {
        it->attempts++;
        it->not_before_ms = now_ms + backoff_ms(q, it->attempts);
        u->retry[u->n_retry++] = it;
        u->requeued++;
        c.outcome = CQ_REQUEUED;
        c.item = it;
    }
    return c;
}

cq_completion cq_complete(controller_queue *q, uint64_t stream_id, const char *reason,
                          int64_t now_ms)
{
    cq_stream *s = stream_find(q, stream_id, NULL);
    if (!s)
        return (cq_completion){CQ_NOTHING, 0, NULL};
    return complete(q, s, reason, now_ms);
}

void cq_add_rows_sent(controller_queue *q, uint64_t stream_id, uint64_t rows)
{
    cq_stream *s = stream_find(q, stream_id, NULL);
    if (s)
        q->uris[s->uri]->rows_sent += rows;
}

cq_completion cq_stream_close(controller_queue *q, uint64_t stream_id, int64_t now_ms)
{
    size_t i;
    cq_stream *s = stream_find(q, stream_id, &i);
    if (!s)
        return (cq_completion){CQ_NOTHING, 0, NULL};
    cq_completion c = complete(q, s, "stream ended", now_ms);
    q->streams[i] = q->streams[--q->n_streams];
    return c;
}

/* When the URI may hand an item to stream s, given the cool-down. */
static int64_t cooldown_ready_ms(const cq_uri *u, const cq_stream *s)
{
    int64_t t = INT64_MIN;
    if (u->cooldown_ms > 0) {
        if (u->has_handout)
            t = u->last_handout_ms + u->cooldown_ms;
        if (s->has_done && s->last_done_ms + u->cooldown_ms > t)
            t = s->last_done_ms + u->cooldown_ms;
    }
    return t;
}

/* Takes the item stream s should get now, or returns NULL and lowers *wake to when one
 * could be ready. */
static cq_item *take(cq_uri *u, const cq_stream *s, int64_t now_ms, int64_t *wake)
{
    bool any = u->n_retry > 0 || u->head < u->n_pending;
    if (!any)
        return NULL;
    int64_t ready = cooldown_ready_ms(u, s);
    if (ready > now_ms) {
        if (ready < *wake)
            *wake = ready;
        return NULL;
    }
    /* Requeued items first (oldest id first) once their back-off has passed. */
    size_t best = (size_t)-1;
    for (size_t i = 0; i < u->n_retry; i++) {
        if (u->retry[i]->not_before_ms <= now_ms) {
            if (best == (size_t)-1 || u->retry[i]->id < u->retry[best]->id)
                best = i;
        } else if (u->retry[i]->not_before_ms < *wake) {
            *wake = u->retry[i]->not_before_ms;
        }
    }
    if (best != (size_t)-1) {
        cq_item *it = u->retry[best];
        memmove(u->retry + best, u->retry + best + 1, (u->n_retry - best - 1) * sizeof *u->retry);
        u->n_retry--;
        return it;
    }
    if (u->head < u->n_pending) {
        cq_item *it = u->pending[u->head++];
        if (u->head == u->n_pending)
            u->head = u->n_pending = 0;
        return it;
    }
    return NULL;
}

int64_t cq_dispatch(controller_queue *q, int64_t now_ms, cq_dispatch_fn fn, void *arg)
{
    int64_t wake = INT64_MAX;
    for (size_t i = 0; i < q->n_streams; i++) {
        cq_stream *s = &q->streams[i];
        if (s->outstanding)
            continue;
        cq_uri *u = q->uris[s->uri];
        /* Reserve the retry slot a requeue of this item would need now, so that a
         * requeue never fails for lack of memory; without it, hand out nothing yet. */
        if (!grow((void **)&u->retry, &u->cap_retry, u->n_retry + u->n_outstanding + 1,
                  sizeof *u->retry)) {
            if (now_ms + 100 < wake)
                wake = now_ms + 100;
            continue;
        }
        cq_item *it = take(u, s, now_ms, &wake);
        if (!it)
            continue;
        s->outstanding = it;
        u->n_outstanding++;
        u->has_handout = true;
        u->last_handout_ms = now_ms;
        fn(arg, u->uri, s->id, it);
    }
    return wake;
}

size_t cq_uri_count(const controller_queue *q)
{
    return q->n_uris;
}

void cq_uri_stats_at(const controller_queue *q, size_t i, cq_uri_stats *out)
{
    memset(out, 0, sizeof *out);
    if (i >= q->n_uris)
        return;
    const cq_uri *u = q->uris[i];
    out->uri = u->uri;
    out->backing_off = u->n_retry;
    out->pending = (u->n_pending - u->head) + u->n_retry;
    for (size_t k = 0; k < q->n_streams; k++) {
        if (q->streams[k].uri != i)
            continue;
        out->streams++;
        if (q->streams[k].outstanding)
            out->outstanding++;
    }
    out->done = u->done;
    out->done_here = u->done_here;
    out->requeued = u->requeued;
    out->rows_sent = u->rows_sent;
    out->cooldown_ms = u->cooldown_ms;
    out->first_done_ms = u->first_done_ms;
    out->last_done_ms = u->last_done_ms;
}

int64_t cq_eta_ms(const cq_uri_stats *s, int64_t now_ms)
{
    uint64_t left = s->pending + s->outstanding;
    if (left == 0)
        return 0;
    if (s->done_here == 0 || now_ms <= s->first_done_ms)
        return -1;
    /* The rate counts from the first ack seen here: done_here - 1 items in that span,
     * or one item per elapsed span when only one is done. */
    double span = (double)(now_ms - s->first_done_ms);
    double per_item = s->done_here > 1 ? span / (double)(s->done_here - 1) : span;
    return (int64_t)(per_item * (double)left);
}
