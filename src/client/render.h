/* Rendering of binary values as PostgreSQL's output functions (text) and to_json (JSON)
 * would, shared by pgc_value_render_text/json, the change JSON and the binding. */
#ifndef PGC_CLIENT_RENDER_H
#define PGC_CLIENT_RENDER_H

#include "core/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum render_mode {
    RENDER_TEXT, /* the type's output function (DateStyle ISO, TimeZone UTC) */
    RENDER_JSON  /* to_json */
} render_mode;

/* Appends the value to sb. PGC_ERR_UNSUPPORTED for an unknown OID, the decoder's status
 * for a bad value, PGC_ERR_NOMEM; on error sb may hold a partial rendering. */
int render_value(strbuf *sb, uint32_t oid, const uint8_t *data, size_t len, render_mode mode,
                 char *err, size_t err_len);

/* numeric's text form; *special (may be NULL) says NaN or an infinity. */
int numeric_render(strbuf *sb, const uint8_t *data, size_t len, bool *special, char *err,
                   size_t err_len);

/* PGC_OK when s[0..n) is one valid JSON text, PGC_ERR_MALFORMED (with the byte offset)
 * otherwise. */
int json_check(const char *s, size_t n, char *err, size_t err_len);

#endif
