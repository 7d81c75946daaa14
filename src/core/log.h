/* Structured logging for roles, the CLI and the test harness (never for library code):
 * one line per event, human text first, then a key=value tail. */
#ifndef PGC_CORE_LOG_H
#define PGC_CORE_LOG_H

typedef enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
} log_level;

/* Parses "error".."trace"; returns -1 when unknown. */
int log_level_parse(const char *name);
void log_set_level(log_level level);
log_level log_get_level(void);
/* Role name put on every line ("agent", "gateway"). The string must outlive logging. */
void log_set_component(const char *component);

/* `fmt` is the human part; keys and values follow it in the same format string,
 * e.g. log_info("slot created", "slot=%s lsn=%X/%X", ...). Thread-safe. */
void log_write(log_level level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(msg, ...) log_write(LOG_LEVEL_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) log_write(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...)                                                                        \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_write(LOG_LEVEL_DEBUG, msg, __VA_ARGS__);                                          \
    } while (0)

#endif
