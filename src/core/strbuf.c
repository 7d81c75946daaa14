/* The growable string buffer (see strbuf.h). */
#include "core/strbuf.h"

#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(strbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->failed = false;
}

void strbuf_free(strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}

void strbuf_reset(strbuf *sb)
{
    sb->len = 0;
    sb->failed = false;
    if (sb->data)
        sb->data[0] = '\0';
}

bool strbuf_reserve(strbuf *sb, size_t extra)
{
    if (sb->failed)
        return false;
    if (extra > SIZE_MAX / 2 - sb->len) {
        sb->failed = true;
        return false;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->failed = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void strbuf_append(strbuf *sb, const char *s, size_t n)
{
    if (!strbuf_reserve(sb, n))
        return;
    if (n)
        memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void strbuf_puts(strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(strbuf *sb, char c)
{
    strbuf_append(sb, &c, 1);
}

void strbuf_printf(strbuf *sb, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        strbuf_append(sb, small, (size_t)n);
        return;
    }
    if (!strbuf_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void strbuf_json_string(strbuf *sb, const char *s, size_t n)
{
    if (!strbuf_reserve(sb, n + 2))
        return;
    strbuf_putc(sb, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        switch (ch) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (ch >= 0x20) {
                run++;
                continue;
            }
        }
        strbuf_append(sb, s + i - run, run);
        run = 0;
        if (esc)
            strbuf_puts(sb, esc);
        else
            strbuf_printf(sb, "\\u%04x", ch);
    }
    strbuf_append(sb, s + n - run, run);
    strbuf_putc(sb, '"');
}

void strbuf_sql_ident(strbuf *sb, const char *name)
{
    strbuf_putc(sb, '"');
    for (const char *p = name;; p++) {
        const char *q = strchr(p, '"');
        if (!q) {
            strbuf_puts(sb, p);
            break;
        }
        strbuf_append(sb, p, (size_t)(q - p) + 1);
        strbuf_putc(sb, '"');
        p = q;
    }
    strbuf_putc(sb, '"');
}

int strbuf_status(const strbuf *sb)
{
    return sb->failed ? PGC_ERR_NOMEM : PGC_OK;
}

char *strbuf_take(strbuf *sb, size_t *len)
{
    if (sb->failed || !strbuf_reserve(sb, 0))
        return NULL;
    char *p = sb->data;
    p[sb->len] = '\0'; /* a buffer nothing was appended to has just been allocated */
    if (len)
        *len = sb->len;
    strbuf_init(sb);
    return p;
}
