/* INI text as the resolver and ACL files write it: "[section]" lines, "key = value" lines
 * under them, '#' and ';' comment lines, blank lines; spaces around names and values are
 * trimmed. Pure: the caller reads the file (core/textfile.h). */
#ifndef PGC_CORE_INIFILE_H
#define PGC_CORE_INIFILE_H

#include <stddef.h>

/* Called for each section line (key and value NULL) and each key line of a section.
 * Returns PGC_OK to go on, or a status with a message in err (without the line number:
 * inifile_parse puts "line N: " in front). */
typedef int (*inifile_fn)(void *arg, const char *section, const char *key, const char *value,
                          char *err, size_t err_len);

/* PGC_ERR_CONFIG ("line N: ...") for a NUL byte, a malformed line or a key before any
 * section; a callback's status and message otherwise; PGC_ERR_NOMEM. */
int inifile_parse(const char *text, size_t len, inifile_fn fn, void *arg, char *err,
                  size_t err_len);

#endif
