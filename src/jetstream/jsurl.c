/* NATS server lists (see jsurl.h). */
#include "jetstream/jsurl.h"

#include <stdlib.h>
#include <string.h>

int jsurl_split(const char *urls, char *buf, size_t buf_len, const char **out, int max)
{
    if (!urls || strlen(urls) >= buf_len)
        return -1;
    strcpy(buf, urls);
    int n = 0;
    for (char *p = buf, *next; p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!*p)
            continue;
        if (n == max)
            return -1;
        out[n++] = p;
    }
    return n > 0 ? n : -1;
}

natsStatus jsurl_set_servers(natsOptions *opts, const char *urls)
{
    size_t len = urls ? strlen(urls) + 1 : 1;
    char *buf = malloc(len);
    const char *list[JSURL_MAX];
    if (!buf)
        return NATS_NO_MEMORY;
    int n = jsurl_split(urls, buf, len, list, JSURL_MAX);
    natsStatus s = n < 0 ? NATS_INVALID_ARG : natsOptions_SetServers(opts, list, n);
    free(buf); /* libnats copies the URLs */
    return s;
}
