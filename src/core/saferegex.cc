// RE2 behind a C interface (see saferegex.h). Exceptions (std::bad_alloc) never cross into
// C: they become PGC_ERR_NOMEM.
#include "core/saferegex.h"

extern "C" {
#include "core/status.h"
}

#include <new>
#include <re2/re2.h>
#include <string.h>

struct saferegex {
    RE2 *re;
};

int saferegex_compile(const char *pattern, size_t len, saferegex **out, char *err, size_t err_len)
{
    if (memchr(pattern, '\0', len))
        return errbuf_set(err, err_len, PGC_ERR_INVALID, "NUL byte in the pattern");
    try {
        RE2::Options o;
        o.set_log_errors(false);
        o.set_max_mem(SAFEREGEX_MAX_MEM_BYTES);
        RE2 *re = new RE2(re2::StringPiece(pattern, len), o);
        if (!re->ok()) {
            int rc = errbuf_set(err, err_len, PGC_ERR_INVALID, "%s%s", re->error().c_str(),
                                re->error_code() == RE2::ErrorPatternTooLarge
                                    ? " (over the gateway's limit on a compiled pattern)"
                                    : "");
            delete re;
            return rc;
        }
        saferegex *s = new saferegex{re};
        *out = s;
        return PGC_OK;
    } catch (const std::bad_alloc &) {
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory compiling the pattern");
    }
}

bool saferegex_search(const saferegex *s, const char *text, size_t len)
{
    try {
        return RE2::PartialMatch(re2::StringPiece(text, len), *s->re);
    } catch (const std::bad_alloc &) {
        return true; /* a change sent that might have been filtered beats one lost */
    }
}

void saferegex_free(saferegex *s)
{
    if (!s)
        return;
    delete s->re;
    delete s;
}
