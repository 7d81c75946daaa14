/* Whole small files read into memory: certificates, keys, secrets, resolver files. Key
 * and secret contents are wiped before they are freed. No logging. */
#ifndef PGC_CORE_TEXTFILE_H
#define PGC_CORE_TEXTFILE_H

#include <stddef.h>

/* Reads the whole file into a NUL-terminated malloc'ed buffer (*len_out, if not NULL, gets
 * its length). PGC_ERR_IO (unreadable, with strerror and the path), PGC_ERR_TOO_LARGE
 * past max_bytes, PGC_ERR_NOMEM. */
int textfile_read(const char *path, size_t max_bytes, char **out, size_t *len_out, char *err,
                  size_t err_len);
/* Zeroes a NUL-terminated secret and frees it. NULL is a no-op. */
void textfile_free_secret(char *s);

#endif
