/* Structured log lines (see log.h). The key=value format is split into fields at the
 * format level, each field's value formatted on its own (one conversion at a time, the
 * argument fetched by its type), then escaped for the output format. One write per line,
 * so concurrent threads never interleave within a line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile log_level current_level = LOG_LEVEL_INFO;
static volatile log_format current_format = LOG_FORMAT_TEXT;
static volatile int out_fd = STDERR_FILENO;
static const char *component = "pgcapture";

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LEVEL_TRACE; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int log_format_parse(const char *name)
{
    if (strcasecmp(name, "text") == 0)
        return LOG_FORMAT_TEXT;
    if (strcasecmp(name, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
}

void log_set_level(log_level level)
{
    current_level = level;
}

log_level log_get_level(void)
{
    return current_level;
}

void log_set_format(log_format format)
{
    current_format = format;
}

void log_set_component(const char *name)
{
    component = name;
}

void log_set_fd(int fd)
{
    out_fd = fd;
}

/* ---- the output line ---- */

typedef struct line {
    char *buf;
    size_t len, cap; /* cap keeps one byte for the newline */
} line;

static void put_char(line *l, char c)
{
    if (l->len + 1 < l->cap)
        l->buf[l->len++] = c;
}

static void put_str(line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_char(l, s[i]);
}

static bool needs_quotes(const char *v, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* Escapes quotes, backslashes and control characters; JSON spells control characters
 * \u00XX, text \xNN. Bytes >= 0x80 pass (UTF-8 stays readable). */
static void put_escaped(line *l, const char *v, size_t n, bool json)
{
    char hex[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        switch (c) {
        case '"':
            put_str(l, "\\\"", 2);
            break;
        case '\\':
            put_str(l, "\\\\", 2);
            break;
        case '\n':
            put_str(l, "\\n", 2);
            break;
        case '\r':
            put_str(l, "\\r", 2);
            break;
        case '\t':
            put_str(l, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                int k = snprintf(hex, sizeof hex, json ? "\\u%04x" : "\\x%02x", c);
                put_str(l, hex, (size_t)k);
            } else {
                put_char(l, (char)c);
            }
        }
    }
}

/* ---- one field's value: its format piece with the arguments it takes ---- */

typedef enum arg_kind {
    ARG_INT,
    ARG_LONG,
    ARG_LLONG,
    ARG_SIZE,
    ARG_DOUBLE,
    ARG_STR,
    ARG_PTR
} arg_kind;

/* Formats the conversion spec [spec, spec_len) with the next argument. Returns false on a
 * spec it does not know (the rest of the format is then dropped). */
static bool format_conversion(char *out, size_t out_len, const char *spec, size_t spec_len,
                              va_list *ap, bool *is_int)
{
    char f[32];
    if (spec_len >= sizeof f)
        return false;
    memcpy(f, spec, spec_len);
    f[spec_len] = '\0';
    char conv = f[spec_len - 1];
    bool star_w = false, star_p = false;
    const char *p = f + 1;
    while (*p && strchr("-+ #0", *p))
        p++;
    if (*p == '*') {
        star_w = true;
        p++;
    }
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p == '*') {
            star_p = true;
            p++;
        }
        while (*p >= '0' && *p <= '9')
            p++;
    }
    arg_kind kind = ARG_INT;
    if (strncmp(p, "ll", 2) == 0 || *p == 'j' || *p == 'q')
        kind = ARG_LLONG;
    else if (*p == 'l')
        kind = ARG_LONG;
    else if (*p == 'z' || *p == 't')
        kind = ARG_SIZE;
    if (conv == 's')
        kind = ARG_STR;
    else if (conv == 'p')
        kind = ARG_PTR;
    else if (strchr("fFeEgGaA", conv))
        kind = ARG_DOUBLE;
    else if (!strchr("diouxXc", conv))
        return false;
    *is_int = strchr("diu", conv) != NULL;
    int w = star_w ? va_arg(*ap, int) : 0, pr = star_p ? va_arg(*ap, int) : 0;
    /* The widths go first, as printf takes them. */
#define FMT(val)                                                                                   \
    (star_w && star_p ? snprintf(out, out_len, f, w, pr, val)                                      \
     : star_w         ? snprintf(out, out_len, f, w, val)                                          \
     : star_p         ? snprintf(out, out_len, f, pr, val)                                         \
                      : snprintf(out, out_len, f, val))
    switch (kind) {
    case ARG_INT:
        FMT(va_arg(*ap, int));
        break;
    case ARG_LONG:
        FMT(va_arg(*ap, long));
        break;
    case ARG_LLONG:
        FMT(va_arg(*ap, long long));
        break;
    case ARG_SIZE:
        FMT(va_arg(*ap, size_t));
        break;
    case ARG_DOUBLE:
        FMT(va_arg(*ap, double));
        break;
    case ARG_STR: {
        const char *s = va_arg(*ap, const char *);
        FMT(s ? s : "(null)");
        break;
    }
    case ARG_PTR:
        FMT(va_arg(*ap, void *));
        break;
    }
#undef FMT
    return true;
}

/* Formats the value piece [fmt, fmt+n) into out; *numeric tells it is one integer
 * conversion and nothing else (JSON then writes it as a number). */
static bool format_value(char *out, size_t out_len, const char *fmt, size_t n, va_list *ap,
                         bool *numeric)
{
    size_t o = 0;
    int conversions = 0;
    bool only_int = true, ok = true;
    out[0] = '\0';
    for (size_t i = 0; i < n && ok;) {
        if (fmt[i] != '%') {
            if (o + 1 < out_len)
                out[o++] = fmt[i];
            only_int = false;
            i++;
            continue;
        }
        if (i + 1 < n && fmt[i + 1] == '%') {
            if (o + 1 < out_len)
                out[o++] = '%';
            only_int = false;
            i += 2;
            continue;
        }
        size_t j = i + 1;
        while (j < n && !strchr("diouxXcspfFeEgGaA%n", fmt[j]))
            j++;
        if (j >= n)
            return false;
        bool is_int = false;
        char piece[1024];
        ok = format_conversion(piece, sizeof piece, fmt + i, j - i + 1, ap, &is_int);
        only_int = only_int && is_int;
        conversions++;
        size_t pl = strnlen(piece, sizeof piece);
        if (o + pl >= out_len)
            pl = out_len - 1 - o;
        memcpy(out + o, piece, pl);
        o += pl;
        i = j + 1;
    }
    out[o] = '\0';
    *numeric = only_int && conversions == 1 && o > 0;
    return ok;
}

/* Writes the fields of kv_fmt, each "key=value" in text or ,"key":value in JSON. A format
 * token without '=' goes under the key "detail". */
static void put_fields(line *l, bool json, const char *kv_fmt, va_list *ap)
{
    const char *p = kv_fmt;
    while (p && *p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        /* A field runs to the next space outside double quotes. */
        const char *start = p;
        bool in_quotes = false;
        while (*p && (in_quotes || *p != ' ')) {
            if (*p == '"')
                in_quotes = !in_quotes;
            p++;
        }
        const char *eq = memchr(start, '=', (size_t)(p - start));
        const char *key = eq ? start : "detail", *vf = eq ? eq + 1 : start;
        size_t key_len = eq ? (size_t)(eq - start) : 6, vf_len = (size_t)(p - vf);
        bool quoted = vf_len >= 2 && vf[0] == '"' && vf[vf_len - 1] == '"';
        if (quoted) {
            vf++;
            vf_len -= 2;
        }
        char value[2048];
        bool numeric = false;
        if (!format_value(value, sizeof value, vf, vf_len, ap, &numeric))
            return;
        size_t vl = strlen(value);
        if (json) {
            put_str(l, ",\"", 2);
            put_escaped(l, key, key_len, true);
            put_str(l, "\":", 2);
            if (numeric) {
                put_str(l, value, vl);
            } else {
                put_char(l, '"');
                put_escaped(l, value, vl, true);
                put_char(l, '"');
            }
        } else {
            put_char(l, ' ');
            put_str(l, key, key_len);
            put_char(l, '=');
            if (quoted || needs_quotes(value, vl)) {
                put_char(l, '"');
                put_escaped(l, value, vl, false);
                put_char(l, '"');
            } else {
                put_str(l, value, vl);
            }
        }
    }
}

static size_t format_line(char *buf, size_t cap, log_level level, const char *msg,
                          const char *kv_fmt, va_list *ap)
{
    line l = {buf, 0, cap};
    struct timeval tv;
    struct tm tm;
    char ts[40];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000));
    bool json = current_format == LOG_FORMAT_JSON;
    if (json) {
        put_str(&l, "{\"time\":\"", 9);
        put_str(&l, ts, (size_t)n);
        put_str(&l, "\",\"level\":\"", 11);
        put_str(&l, level_names[level], strlen(level_names[level]));
        put_str(&l, "\",\"component\":\"", 15);
        put_escaped(&l, component, strlen(component), true);
        put_str(&l, "\",\"msg\":\"", 9);
        put_escaped(&l, msg, strlen(msg), true);
        put_char(&l, '"');
    } else {
        char head[96];
        int h = snprintf(head, sizeof head, "%s %-5s ", ts, level_names[level]);
        put_str(&l, head, (size_t)h);
        put_escaped(&l, component, strlen(component), false);
        put_str(&l, ": ", 2);
        put_escaped(&l, msg, strlen(msg), false);
    }
    put_fields(&l, json, kv_fmt, ap);
    if (json) {
        /* A truncated object still closes. */
        if (l.len + 2 >= l.cap)
            l.len = l.cap > 3 ? l.cap - 3 : 0;
        put_char(&l, '}');
    }
    l.buf[l.len] = '\0';
    return l.len;
}

size_t log_format_line(char *buf, size_t len, log_level level, const char *msg, const char *kv_fmt,
                       ...)
{
    va_list ap;
    va_start(ap, kv_fmt);
    size_t n = format_line(buf, len, level, msg, kv_fmt, &ap);
    va_end(ap);
    return n;
}

void log_write(log_level level, const char *msg, const char *kv_fmt, ...)
{
    if (level > current_level)
        return;
    char buf[4096];
    va_list ap;
    va_start(ap, kv_fmt);
    size_t n = format_line(buf, sizeof buf - 1, level, msg, kv_fmt, &ap);
    va_end(ap);
    buf[n++] = '\n';
    ssize_t w = write(out_fd, buf, n);
    (void)w;
}
