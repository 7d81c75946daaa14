/* Small files read whole (see textfile.h). */
#include "core/textfile.h"

#include "core/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int textfile_read(const char *path, size_t max_bytes, char **out, size_t *len_out, char *err,
                  size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errbuf_set(err, err_len, PGC_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = malloc(max_bytes + 2);
    if (!buf) {
        fclose(f);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, max_bytes + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err || n > max_bytes) {
        explicit_bzero(buf, n);
        free(buf);
        return rd_err ? errbuf_set(err, err_len, PGC_ERR_IO, "%s: read error", path)
                      : errbuf_set(err, err_len, PGC_ERR_TOO_LARGE, "%s: larger than %zu bytes",
                                   path, max_bytes);
    }
    buf[n] = '\0';
    *out = buf;
    if (len_out)
        *len_out = n;
    return PGC_OK;
}

void textfile_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}
