/* Text forms of log positions and LSNs (see logpos.h). */
#include "codec/logpos.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void logpos_format_msgid(log_pos p, char out[LOGPOS_MSGID_LEN])
{
    snprintf(out, LOGPOS_MSGID_LEN, "%016" PRIX64 "-%08" PRIX32, p.lsn, p.seq);
}

void logpos_format(log_pos p, char out[LOGPOS_TEXT_LEN])
{
    snprintf(out, LOGPOS_TEXT_LEN, "%" PRIX64 "/%" PRIu32, p.lsn, p.seq);
}

void logpos_format_lsn(uint64_t lsn, char out[LOGPOS_LSN_LEN])
{
    snprintf(out, LOGPOS_LSN_LEN, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* Strict unsigned parse of [s, end) in base; no sign, no spaces, no overflow. */
static bool parse_u64(const char *s, const char *end, int base, uint64_t max, uint64_t *out)
{
    if (s == end || end - s > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; p < end; p++) {
        int d;
        if (isdigit((unsigned char)*p))
            d = *p - '0';
        else if (base == 16 && isxdigit((unsigned char)*p))
            d = (tolower((unsigned char)*p) - 'a') + 10;
        else
            return false;
        if (v > (max - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return true;
}

/* Splits "<a>/<b>" at its one slash: [s, *slash) and (*slash, *end). */
static bool split_at_slash(const char *s, const char **slash, const char **end)
{
    const char *p = s;
    while (*p && *p != '/')
        p++;
    if (!*p)
        return false;
    *slash = p;
    while (*p)
        p++;
    *end = p;
    return true;
}

bool logpos_parse(const char *s, log_pos *out)
{
    const char *slash, *end;
    uint64_t lsn, seq;
    if (!split_at_slash(s, &slash, &end) || !parse_u64(s, slash, 16, UINT64_MAX, &lsn) ||
        !parse_u64(slash + 1, end, 10, UINT32_MAX, &seq))
        return false;
    out->lsn = lsn;
    out->seq = (uint32_t)seq;
    return true;
}

bool logpos_parse_lsn(const char *s, uint64_t *out)
{
    const char *slash, *end;
    uint64_t hi, lo;
    if (!split_at_slash(s, &slash, &end) || !parse_u64(s, slash, 16, UINT32_MAX, &hi) ||
        !parse_u64(slash + 1, end, 16, UINT32_MAX, &lo))
        return false;
    *out = hi << 32 | lo;
    return true;
}
