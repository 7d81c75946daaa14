/* The naming contract (see names.h). */
#include "core/names.h"

#include "core/hash.h"
#include "core/status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Bytes of a NATS token that are also safe in stream and consumer names. */
static bool token_byte(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static int name_format(char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int name_format(char *out, size_t out_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, out_len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= out_len ? PGC_ERR_TOO_LARGE : PGC_OK;
}

bool names_token_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAMES_TOKEN_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!token_byte(s[i]))
            return false;
    return true;
}

int names_stream(const char *source, char *out, size_t out_len)
{
    return name_format(out, out_len, "PGCAPTURE_%s", source);
}

int names_log_subject(const char *source, char *out, size_t out_len)
{
    return name_format(out, out_len, "pgcapture.%s.log", source);
}

int names_slot(const char *source, char *out, size_t out_len)
{
    int rc = name_format(out, out_len, "pgcapture_%s", source);
    /* PostgreSQL allows only lower case letters, digits and '_' in slot names. */
    for (char *p = out_len ? out : NULL; p && *p; p++)
        *p = (*p >= 'A' && *p <= 'Z')                                 ? (char)(*p - 'A' + 'a')
             : ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) ? *p
                                                                      : '_';
    return rc;
}

int names_publication(const char *source, char *out, size_t out_len)
{
    return name_format(out, out_len, "pgcapture_%s", source);
}

int names_retry_stream(const char *source, char *out, size_t out_len)
{
    return name_format(out, out_len, "PGCAPTURE_%s_RETRY", source);
}

int names_retry_stream_subjects(const char *source, char *out, size_t out_len)
{
    return name_format(out, out_len, "pgcapture.%s.retry.>", source);
}

int names_retry_subject(const char *source, const char *durable, char *out, size_t out_len)
{
    return name_format(out, out_len, "pgcapture.%s.retry.%s", source, durable);
}

int names_retry_durable(const char *durable, char *out, size_t out_len)
{
    return name_format(out, out_len, "%s_retry", durable);
}

int names_dead_letter_subject(const char *source, const char *durable, char *out, size_t out_len)
{
    return name_format(out, out_len, "pgcapture.%s.retry.%s.dead", source, durable);
}

int names_dead_letter_durable(const char *durable, char *out, size_t out_len)
{
    return name_format(out, out_len, "%s_dead", durable);
}

int names_durable_from_uri(const char *uri, char *out, size_t out_len)
{
    uint32_t h = hash_fnv1a_str(uri);
    char base[64];
    size_t n = 0;
    for (const char *p = uri; *p; p++) {
        if (n < sizeof base - 1)
            base[n++] = token_byte(*p) ? *p : '_';
    }
    base[n] = '\0';
    return name_format(out, out_len, "pgc_%s_%08x", base, h);
}

int names_replica_consumer(const char *source, const char *identity, char *out, size_t out_len)
{
    int rc = name_format(out, out_len, "replica_%s_%s", source, identity);
    for (char *p = out_len ? out : NULL; p && *p; p++)
        if (!token_byte(*p))
            *p = '_';
    return rc;
}
