/* libFuzzer target for the text readers of configuration: the INI reader under the
 * resolver and ACL files (inifile_parse), the --config file of every command (opts_parse,
 * through a file in memory), the value parsers the options use (durations, sizes, bools)
 * and the NATS URL list splitter (jsurl_split). The first byte picks the reader, the rest is
 * the text. Invariants: every INI event has trimmed, single-line names and values, and the
 * events written back as INI parse to the same events; durations and sizes that parse are
 * not negative; split URLs are trimmed, non-empty pieces of the list. */
#include "core/inifile.h"
#include "core/opts.h"
#include "core/status.h"
#include "jetstream/jsurl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The events of a parse, written back as INI text. */
typedef struct events {
    char *text;
    size_t len, cap;
    unsigned count;
} events;

static void append(events *e, const char *s)
{
    size_t n = strlen(s);
    if (e->len + n + 1 > e->cap) {
        size_t cap = (e->len + n + 1) * 2;
        char *t = realloc(e->text, cap);
        if (!t)
            abort();
        e->text = t, e->cap = cap;
    }
    memcpy(e->text + e->len, s, n + 1);
    e->len += n;
}

static void check_trimmed(const char *s)
{
    size_t n = strlen(s);
    if (strchr(s, '\n') || (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' ||
                                  s[n - 1] == '\t' || s[n - 1] == '\r')))
        abort();
}

static int on_event(void *arg, const char *section, const char *key, const char *value, char *err,
                    size_t err_len)
{
    (void)err, (void)err_len;
    events *e = arg;
    if (!section || !*section || (key == NULL) != (value == NULL))
        abort();
    check_trimmed(section);
    e->count++;
    if (!key) {
        append(e, "[");
        append(e, section);
        append(e, "]\n");
        return PGC_OK;
    }
    check_trimmed(key);
    check_trimmed(value);
    /* A key that is empty or holds '=' cannot be written back unambiguously. */
    if (!*key || strchr(key, '='))
        return PGC_OK;
    append(e, key);
    append(e, " = ");
    append(e, value);
    append(e, "\n");
    return PGC_OK;
}

static void fuzz_ini(const char *text, size_t len)
{
    char err[512];
    events a = {0}, b = {0};
    int rc = inifile_parse(text, len, on_event, &a, err, sizeof err);
    if (rc != PGC_OK && strncmp(err, "line ", 5) != 0 && rc != PGC_ERR_CONFIG)
        abort();
    /* The events written back parse to themselves. */
    if (rc == PGC_OK && a.text &&
        (inifile_parse(a.text, a.len, on_event, &b, err, sizeof err) != PGC_OK || b.len != a.len ||
         memcmp(a.text, b.text, a.len) != 0))
        abort();
    free(a.text);
    free(b.text);
}

typedef struct cfg {
    char *url, *name;
    int64_t n, ms, bytes;
    bool flag;
} cfg;

static const opt_spec SPECS[] = {
    {"nats-url", OPT_STRING, "nats://127.0.0.1:4222", "NATS", offsetof(cfg, url), false},
    {"name", OPT_STRING, NULL, "a name", offsetof(cfg, name), true},
    {"count", OPT_INT, "3", "a count", offsetof(cfg, n), false},
    {"wait", OPT_DURATION_MS, "30s", "a duration", offsetof(cfg, ms), false},
    {"limit", OPT_BYTES, "1MB", "a size", offsetof(cfg, bytes), false},
    {"flag", OPT_BOOL, "off", "a flag", offsetof(cfg, flag), false},
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

/* The text as a --config file (in memory). */
static void fuzz_config(const char *text, size_t len)
{
    int fd = memfd_create("config", 0);
    if (fd < 0)
        abort();
    if (len && write(fd, text, len) != (ssize_t)len)
        abort();
    char path[64], err[1024];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[] = {"fuzz", "--config", path, NULL};
    cfg c;
    memset(&c, 0, sizeof c);
    int rc = opts_parse(SPECS, NSPECS, &c, 3, argv, NULL, 0, NULL, err, sizeof err);
    if (rc == 0 && (c.ms < 0 || c.bytes < 0 || !c.url))
        abort();
    opts_free(SPECS, NSPECS, &c);
    close(fd);
}

static void fuzz_values(const char *s, size_t len)
{
    int64_t v;
    bool b;
    if (opts_parse_duration_ms(s, &v) == 0 && v < 0)
        abort();
    if (opts_parse_bytes(s, &v) == 0 && v < 0)
        abort();
    opts_parse_bool(s, &b);
    char *buf = malloc(len + 1);
    const char *urls[JSURL_MAX];
    if (!buf)
        abort();
    int n = jsurl_split(s, buf, len + 1, urls, JSURL_MAX);
    if (n == 0 || n > JSURL_MAX)
        abort();
    for (int i = 0; i < n; i++) {
        size_t n_url = strlen(urls[i]);
        if (!n_url || strchr(urls[i], ',') || !strstr(s, urls[i]) || urls[i][0] == ' ' ||
            urls[i][0] == '\t' || urls[i][n_url - 1] == ' ' || urls[i][n_url - 1] == '\t')
            abort();
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 3;
    size_t len = size - 1;
    /* An exact-size copy (NUL-terminated for the readers of strings). */
    char *text = malloc(len + 1);
    if (!text)
        abort();
    memcpy(text, data + 1, len);
    text[len] = '\0';
    if (mode == 0)
        fuzz_ini(text, len);
    else if (mode == 1 && !memchr(text, '\0', len))
        fuzz_config(text, len);
    else if (mode == 2 && !memchr(text, '\0', len))
        fuzz_values(text, len);
    free(text);
    return 0;
}
