/* Structured logging for roles, the CLI and the test harness (never for library code):
 * one line per event, human text first, then a key=value tail; or, with --log-format
 * json, one JSON object per line with the same keys.
 *
 * Values are escaped, whatever they hold: a value with spaces, quotes, '=' or control
 * characters is quoted with \" \\ \n \r \t and \xNN escapes, so no value (a URI, a
 * requeue reason, a server's message) can end a line or forge a key. */
#ifndef PGC_CORE_LOG_H
#define PGC_CORE_LOG_H

#include <stddef.h>

typedef enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
} log_level;

typedef enum log_format {
    LOG_FORMAT_TEXT = 0, /* 2024-05-06T07:08:09.123Z info  agent: slot created slot=x */
    LOG_FORMAT_JSON,     /* {"time":"...","level":"info","component":"agent","msg":"...",...} */
} log_format;

/* Parses "error".."trace"; returns -1 when unknown. */
int log_level_parse(const char *name);
/* Parses "text" or "json"; returns -1 when unknown. */
int log_format_parse(const char *name);
void log_set_level(log_level level);
log_level log_get_level(void);
void log_set_format(log_format format);
/* Role name put on every line ("agent", "gateway"). The string must outlive logging. */
void log_set_component(const char *component);
/* Where lines go (default 2, stderr): for tests. */
void log_set_fd(int fd);

/* `msg` is the human part; `kv_fmt` is a printf format of space-separated key=value
 * fields, e.g. log_info("slot created", "slot=%s lsn=%X/%X", ...). A field's value may
 * be written quoted in the format (error=\"%s\"): quoting and escaping are applied either
 * way. Thread-safe. */
void log_write(log_level level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line as log_write would write it (without the trailing newline) into buf;
 * for tests. Returns the length. */
size_t log_format_line(char *buf, size_t len, log_level level, const char *msg, const char *kv_fmt,
                       ...) __attribute__((format(printf, 5, 6)));

#define log_error(msg, ...) log_write(LOG_LEVEL_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) log_write(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...)                                                                        \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_write(LOG_LEVEL_DEBUG, msg, __VA_ARGS__);                                          \
    } while (0)

#endif
