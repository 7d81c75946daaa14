/* NATS server lists as every --nats-url flag takes them: one URL or several separated by
 * commas ("nats://n1:4222,nats://n2:4222"). libnats 3.4 splits such a list only in
 * natsConnection_ConnectTo; natsOptions_SetURL and natsOptions_SetServers take the whole
 * string as one URL and then never connect, so every connection made from options passes
 * its list through here. */
#ifndef PGC_JETSTREAM_JSURL_H
#define PGC_JETSTREAM_JSURL_H

#include <nats/nats.h>
#include <stddef.h>

#define JSURL_MAX 32

/* Splits `urls` at commas into `buf` (trimmed, empty entries skipped); out[i] point into
 * buf. Returns the number of URLs (at least 1), or -1 when there is none, there are more
 * than `max` or they do not fit in buf. */
int jsurl_split(const char *urls, char *buf, size_t buf_len, const char **out, int max);

/* natsOptions_SetServers with the URLs of `urls`; NATS_INVALID_ARG when the list is empty
 * or too long. */
natsStatus jsurl_set_servers(natsOptions *opts, const char *urls);

#endif
