/* INI parsing (see inifile.h). */
#include "core/inifile.h"

#include "core/status.h"

#include <stdlib.h>
#include <string.h>

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return s;
}

/* One line: a section, a key or nothing. */
static int parse_line(char *s, char **section, inifile_fn fn, void *arg, char *err, size_t err_len)
{
    if (*s == '\0' || *s == '#' || *s == ';')
        return PGC_OK;
    if (*s == '[') {
        size_t n = strlen(s);
        if (n < 3 || s[n - 1] != ']')
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "a section is [name], not empty");
        char *name = trim(s + 1, s + n - 1);
        if (!*name)
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "empty section name");
        *section = name;
        return fn(arg, name, NULL, NULL, err, err_len);
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "expected key = value");
    if (!*section)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "key before any [section]");
    char *key = trim(s, eq);
    char *val = trim(eq + 1, eq + 1 + strlen(eq + 1));
    return fn(arg, *section, key, val, err, err_len);
}

int inifile_parse(const char *text, size_t len, inifile_fn fn, void *arg, char *err, size_t err_len)
{
    if (memchr(text, '\0', len))
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "NUL byte in the text");
    char *buf = malloc(len + 1);
    if (!buf)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *section = NULL;
    size_t line = 0;
    int rc = PGC_OK;
    for (char *p = buf; p && *p && rc == PGC_OK;) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *next = nl ? nl + 1 : NULL;
        line++;
        char sub[400] = "";
        rc = parse_line(trim(p, end), &section, fn, arg, sub, sizeof sub);
        if (rc != PGC_OK)
            errbuf_set(err, err_len, rc, "line %zu: %s", line, sub);
        p = next;
    }
    free(buf);
    return rc;
}
