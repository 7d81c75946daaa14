/* A growable, always NUL-terminated string buffer: libpgcapture's renderers build JSON and
 * text in it, the replica applier its SQL. Appends never abort: the first allocation
 * failure makes the buffer "failed" (later appends do nothing) and strbuf_status reports
 * PGC_ERR_NOMEM, so call sites check once, before they use what they built. */
#ifndef PGC_CORE_STRBUF_H
#define PGC_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
/* Empties the buffer, keeping its memory, and forgets an earlier failure. */
void strbuf_reset(strbuf *sb);
/* Makes room for `extra` more bytes (plus the NUL); false when that failed. */
bool strbuf_reserve(strbuf *sb, size_t extra);
void strbuf_append(strbuf *sb, const char *s, size_t n);
void strbuf_puts(strbuf *sb, const char *s);
void strbuf_putc(strbuf *sb, char c);
void strbuf_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as a JSON string literal, quotes included, escaped as PostgreSQL's
 * escape_json does. */
void strbuf_json_string(strbuf *sb, const char *s, size_t n);
/* Appends `name` quoted as an SQL identifier: always quoted, inner quotes doubled, as
 * PQescapeIdentifier does (names from the log are hostile). */
void strbuf_sql_ident(strbuf *sb, const char *name);
/* PGC_OK or PGC_ERR_NOMEM. */
int strbuf_status(const strbuf *sb);
/* Hands the buffer to the caller (never NULL on success) and resets sb. */
char *strbuf_take(strbuf *sb, size_t *len);

#endif
