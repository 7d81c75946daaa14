/* The controller's dump queues (see dump_queue.h).
 *
 * Per URI: `pending` holds never-handed-out and restored items in id order, consumed
 * from `head`, so a schedule of many items is handed out in O(1) each; `retry` holds
 * requeued items, which go first once their back-off has passed. Streams are few, so
 * they live in one array searched linearly. */
#include "roles/controller/dump_queue.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

typedef struct dump_queue_stream {
    uint64_t id;
    size_t uri; /* index into q->uris */
    dump_queue_item *outstanding;
    bool has_done;
    int64_t last_done_ms;
} dump_queue_stream;

typedef struct dump_queue_uri {
    char *uri;
    dump_queue_item **pending;
    size_t head, n_pending, cap_pending;
    dump_queue_item **retry;
    size_t n_retry, cap_retry;
    size_t n_outstanding; /* room for all of them is kept in retry, see dump_queue_dispatch */
    uint64_t next_id;
    int64_t cooldown_ms;
    bool has_handout;
    int64_t last_handout_ms;
    uint64_t done, done_here, requeued, rows_sent;
    int64_t first_done_ms, last_done_ms;
} dump_queue_uri;

struct dump_queue {
    dump_queue_config cfg;
    dump_queue_uri **uris;
    size_t n_uris, cap_uris;
    dump_queue_stream *streams;
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

static void item_free(dump_queue_item *it)
{
    if (!it)
        return;
    free(it->schema);
    free(it->table);
    free(it);
}

static dump_queue_item *item_new(uint64_t id, const dump_queue_spec *spec)
{
    dump_queue_item *it = calloc(1, sizeof *it);
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

dump_queue *dump_queue_create(const dump_queue_config *cfg)
{
    dump_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cfg = *cfg;
    if (q->cfg.backoff_base_ms < 1)
        q->cfg.backoff_base_ms = 1;
    if (q->cfg.backoff_max_ms < q->cfg.backoff_base_ms)
        q->cfg.backoff_max_ms = q->cfg.backoff_base_ms;
    return q;
}

static void uri_free(dump_queue_uri *u)
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

void dump_queue_destroy(dump_queue *q)
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
    if (strlen(uri) > DUMP_QUEUE_MAX_URI_BYTES)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "uri is longer than %d bytes",
                          DUMP_QUEUE_MAX_URI_BYTES);
    return PGC_OK;
}

int dump_queue_validate(const char *uri, const dump_queue_spec *spec, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    if (!spec->table || !*spec->table)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "table name is empty");
    /* The replica's scan needs both names (it quotes them as given, no search_path). */
    if (!spec->schema || !*spec->schema)
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "schema name is empty (table %s)",
                          spec->table);
    if (strlen(spec->table) > DUMP_QUEUE_MAX_NAME_BYTES ||
        (spec->schema && strlen(spec->schema) > DUMP_QUEUE_MAX_NAME_BYTES))
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "schema or table name is longer than %d bytes",
                          DUMP_QUEUE_MAX_NAME_BYTES);
    if (spec->page_end < spec->page_begin)
        return errbuf_set(err, err_len, PGC_ERR_INVALID,
                          "page_end %u is before page_begin %u (table %s)", spec->page_end,
                          spec->page_begin, spec->table);
    return PGC_OK;
}

static dump_queue_uri *uri_find(const dump_queue *q, const char *uri)
{
    for (size_t i = 0; i < q->n_uris; i++)
        if (strcmp(q->uris[i]->uri, uri) == 0)
            return q->uris[i];
    return NULL;
}

static size_t uri_index(const dump_queue *q, const dump_queue_uri *u)
{
    for (size_t i = 0; i < q->n_uris; i++)
        if (q->uris[i] == u)
            return i;
    return (size_t)-1;
}

static dump_queue_uri *uri_get(dump_queue *q, const char *uri)
{
    dump_queue_uri *u = uri_find(q, uri);
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
static bool pending_reserve(dump_queue_uri *u, size_t extra)
{
    if (u->head > 0 && u->n_pending + extra > u->cap_pending) {
        memmove(u->pending, u->pending + u->head, (u->n_pending - u->head) * sizeof *u->pending);
        u->n_pending -= u->head;
        u->head = 0;
    }
    return grow((void **)&u->pending, &u->cap_pending, u->n_pending + extra, sizeof *u->pending);
}

int dump_queue_schedule(dump_queue *q, const char *uri, const dump_queue_spec *specs, size_t n,
                        uint64_t *first_id, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char why[256];
        if ((rc = dump_queue_validate(uri, &specs[i], why, sizeof why)) != PGC_OK)
            return errbuf_set(err, err_len, rc, "dumps[%zu]: %s", i, why);
    }
    dump_queue_uri *u = uri_get(q, uri);
    if (!u || !pending_reserve(u, n))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "controller queue: out of memory");
    dump_queue_item **fresh = calloc(n ? n : 1, sizeof *fresh);
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

uint64_t dump_queue_next_id(const dump_queue *q, const char *uri)
{
    const dump_queue_uri *u = uri_find(q, uri);
    return u ? u->next_id : 1;
}

int dump_queue_restore_item(dump_queue *q, const char *uri, uint64_t id,
                            const dump_queue_spec *spec, uint32_t attempts, char *err,
                            size_t err_len)
{
    int rc = dump_queue_validate(uri, spec, err, err_len);
    if (rc != PGC_OK)
        return rc;
    dump_queue_uri *u = uri_get(q, uri);
    dump_queue_item *it = item_new(id, spec);
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

int dump_queue_restore_meta(dump_queue *q, const char *uri, int64_t cooldown_ms, uint64_t done,
                            uint64_t next_id, char *err, size_t err_len)
{
    int rc = validate_uri(uri, err, err_len);
    if (rc != PGC_OK)
        return rc;
    dump_queue_uri *u = uri_get(q, uri);
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
    const dump_queue_item *x = *(dump_queue_item *const *)a, *y = *(dump_queue_item *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void dump_queue_restore_finish(dump_queue *q)
{
    for (size_t i = 0; i < q->n_uris; i++) {
        dump_queue_uri *u = q->uris[i];
        if (u->n_pending > u->head)
            qsort(u->pending + u->head, u->n_pending - u->head, sizeof *u->pending, cmp_item_id);
    }
}

long dump_queue_stop(dump_queue *q, const char *uri, uint64_t **ids)
{
    *ids = NULL;
    dump_queue_uri *u = uri_find(q, uri);
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

int dump_queue_set_cooldown(dump_queue *q, const char *uri, int64_t cooldown_ms)
{
    dump_queue_uri *u = uri_get(q, uri);
    if (!u)
        return PGC_ERR_NOMEM;
    u->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 0;
    return PGC_OK;
}

int64_t dump_queue_cooldown(dump_queue *q, const char *uri)
{
    dump_queue_uri *u = uri_find(q, uri);
    return u ? u->cooldown_ms : 0;
}

static dump_queue_stream *stream_find(dump_queue *q, uint64_t stream_id, size_t *index)
{
    for (size_t i = 0; i < q->n_streams; i++)
        if (q->streams[i].id == stream_id) {
            if (index)
                *index = i;
            return &q->streams[i];
        }
    return NULL;
}

int dump_queue_stream_open(dump_queue *q, const char *uri, uint64_t stream_id)
{
    if (stream_find(q, stream_id, NULL))
        return PGC_ERR_STATE;
    dump_queue_uri *u = uri_get(q, uri);
    if (!u || !grow((void **)&q->streams, &q->cap_streams, q->n_streams + 1, sizeof *q->streams))
        return PGC_ERR_NOMEM;
    dump_queue_stream *s = &q->streams[q->n_streams++];
    memset(s, 0, sizeof *s);
    s->id = stream_id;
    s->uri = uri_index(q, u);
    return PGC_OK;
}

static int64_t backoff_ms(const dump_queue *q, uint32_t attempts)
{
    int64_t d = q->cfg.backoff_base_ms;
    for (uint32_t i = 1; i < attempts && d < q->cfg.backoff_max_ms; i++)
        d *= 2;
    return d < q->cfg.backoff_max_ms ? d : q->cfg.backoff_max_ms;
}

static dump_queue_completion complete(dump_queue *q, dump_queue_stream *s, const char *reason,
                                      int64_t now_ms)
{
    dump_queue_completion c = {DUMP_QUEUE_NOTHING, 0, NULL};
    dump_queue_item *it = s->outstanding;
    if (!it)
        return c;
    dump_queue_uri *u = q->uris[s->uri];
    s->outstanding = NULL;
    u->n_outstanding--;
    s->has_done = true;
    s->last_done_ms = now_ms;
    c.id = it->id;
    if (it->stopped) {
        item_free(it);
        c.outcome = DUMP_QUEUE_DROPPED;
    } else if (!reason || !*reason) {
        item_free(it);
        c.outcome = DUMP_QUEUE_ACKED;
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
        c.outcome = DUMP_QUEUE_REQUEUED;
        c.item = it;
    }
    return c;
}

dump_queue_completion dump_queue_complete(dump_queue *q, uint64_t stream_id, const char *reason,
                                          int64_t now_ms)
{
    dump_queue_stream *s = stream_find(q, stream_id, NULL);
    if (!s)
        return (dump_queue_completion){DUMP_QUEUE_NOTHING, 0, NULL};
    return complete(q, s, reason, now_ms);
}

void dump_queue_add_rows_sent(dump_queue *q, uint64_t stream_id, uint64_t rows)
{
    dump_queue_stream *s = stream_find(q, stream_id, NULL);
    if (s)
        q->uris[s->uri]->rows_sent += rows;
}

dump_queue_completion dump_queue_stream_close(dump_queue *q, uint64_t stream_id, int64_t now_ms)
{
    size_t i;
    dump_queue_stream *s = stream_find(q, stream_id, &i);
    if (!s)
        return (dump_queue_completion){DUMP_QUEUE_NOTHING, 0, NULL};
    dump_queue_completion c = complete(q, s, "stream ended", now_ms);
    q->streams[i] = q->streams[--q->n_streams];
    return c;
}

/* When the URI may hand an item to stream s, given the cool-down. */
static int64_t cooldown_ready_ms(const dump_queue_uri *u, const dump_queue_stream *s)
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
static dump_queue_item *take(dump_queue_uri *u, const dump_queue_stream *s, int64_t now_ms,
                             int64_t *wake)
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
        dump_queue_item *it = u->retry[best];
        memmove(u->retry + best, u->retry + best + 1, (u->n_retry - best - 1) * sizeof *u->retry);
        u->n_retry--;
        return it;
    }
    if (u->head < u->n_pending) {
        dump_queue_item *it = u->pending[u->head++];
        if (u->head == u->n_pending)
            u->head = u->n_pending = 0;
        return it;
    }
    return NULL;
}

int64_t dump_queue_dispatch(dump_queue *q, int64_t now_ms, dump_queue_dispatch_fn fn, void *arg)
{
    int64_t wake = INT64_MAX;
    for (size_t i = 0; i < q->n_streams; i++) {
        dump_queue_stream *s = &q->streams[i];
        if (s->outstanding)
            continue;
        dump_queue_uri *u = q->uris[s->uri];
        /* Reserve the retry slot a requeue of this item would need now, so that a
         * requeue never fails for lack of memory; without it, hand out nothing yet. */
        if (!grow((void **)&u->retry, &u->cap_retry, u->n_retry + u->n_outstanding + 1,
                  sizeof *u->retry)) {
            if (now_ms + 100 < wake)
                wake = now_ms + 100;
            continue;
        }
        dump_queue_item *it = take(u, s, now_ms, &wake);
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

size_t dump_queue_uri_count(const dump_queue *q)
{
    return q->n_uris;
}

void dump_queue_uri_stats_at(const dump_queue *q, size_t i, dump_queue_uri_stats *out)
{
    memset(out, 0, sizeof *out);
    if (i >= q->n_uris)
        return;
    const dump_queue_uri *u = q->uris[i];
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

int64_t dump_queue_eta_ms(const dump_queue_uri_stats *s, int64_t now_ms)
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
