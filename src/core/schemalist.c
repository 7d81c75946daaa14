/* Schema lists for dumps (see schemalist.h). */
#include "core/schemalist.h"

#include "core/status.h"

#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Calls fn on each trimmed name of the list until it returns true. */
static bool each_name(const char *list, bool (*fn)(const char *name, size_t len, const void *arg),
                      const void *arg)
{
    const char *s = list;
    for (;;) {
        while (is_space(*s))
            s++;
        const char *end = strchr(s, ',');
        const char *e = end ? end : s + strlen(s);
        while (e > s && is_space(e[-1]))
            e--;
        if (fn(s, (size_t)(e - s), arg))
            return true;
        if (!end)
            return false;
        s = end + 1;
    }
}

static bool is_empty(const char *name, size_t len, const void *arg)
{
    (void)name, (void)arg;
    return len == 0;
}

int schemalist_check(const char *list, char *err, size_t err_len)
{
    if (each_name(list, is_empty, NULL))
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "dump_schemas: an empty schema name (use names separated by commas, "
                          "or *)");
    return PGC_OK;
}

static bool matches(const char *name, size_t len, const void *arg)
{
    const char *schema = arg;
    return (len == 1 && name[0] == '*') ||
           (strlen(schema) == len && memcmp(name, schema, len) == 0);
}

bool schemalist_allows(const char *list, const char *schema)
{
    if (list && *list)
        return each_name(list, matches, schema);
    return strcmp(schema, "information_schema") != 0 && strcmp(schema, "pgcapture") != 0 &&
           strncmp(schema, "pg_", 3) != 0;
}
