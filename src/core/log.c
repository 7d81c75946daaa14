/* Structured log lines on stderr (see log.h). One write per line so concurrent threads
 * never interleave within a line. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile log_level current_level = LOG_LEVEL_INFO;
static const char *component = "pgcapture";

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LEVEL_TRACE; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
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

void log_set_component(const char *name)
{
    component = name;
}

void log_write(log_level level, const char *msg, const char *kv_fmt, ...)
{
    if (level > current_level)
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level], component, msg);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line - 2 && kv_fmt && *kv_fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, kv_fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, kv_fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
