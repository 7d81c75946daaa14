/* A JSON syntax check (RFC 8259) for json and jsonb values before they are embedded in
 * JSON output: the server validated them on input, but a value that reaches us over the
 * network could hold anything, and one bad value must not corrupt a whole line. Iterative,
 * so nesting depth costs heap (one byte per level), not stack. */
#include "client/render.h"
#include "core/status.h"

#include <stdlib.h>

typedef enum { EXPECT_VALUE, EXPECT_KEY, AFTER_VALUE } check_state;

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Past the closing quote of the string starting at s[i] == '"', or 0 when malformed. */
static size_t scan_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            switch (s[i]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                break;
            case 'u':
                if (n - i < 5 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) ||
                    !is_hex(s[i + 4]))
                    return 0;
                i += 4;
                break;
            default:
                return 0;
            }
        }
    }
    return 0;
}

/* Past a number or literal starting at s[i], or 0 when malformed. */
static size_t scan_scalar(const char *s, size_t n, size_t i)
{
    static const char *const literals[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t j = 0;
        while (literals[k][j] && i + j < n && s[i + j] == literals[k][j])
            j++;
        if (!literals[k][j])
            return i + j;
    }
    size_t j = i;
    if (j < n && s[j] == '-')
        j++;
    if (j < n && s[j] == '0') {
        j++;
    } else if (j < n && is_digit(s[j])) {
        while (j < n && is_digit(s[j]))
            j++;
    } else {
        return 0;
    }
    if (j < n && s[j] == '.') {
        if (++j >= n || !is_digit(s[j]))
            return 0;
        while (j < n && is_digit(s[j]))
            j++;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j >= n || !is_digit(s[j]))
            return 0;
        while (j < n && is_digit(s[j]))
            j++;
    }
    return j;
}

int json_check(const char *s, size_t n, char *err, size_t err_len)
{
    char *stack = NULL; /* '{' or '[' per open container */
    size_t depth = 0, cap = 0, i = 0;
    check_state st = EXPECT_VALUE;
    int rc = PGC_ERR_MALFORMED;
    for (;;) {
        i = skip_ws(s, n, i);
        if (st == AFTER_VALUE && depth == 0) {
            if (i == n)
                rc = PGC_OK;
            break;
        }
        if (i >= n)
            break;
        if (st == AFTER_VALUE) {
            char top = stack[depth - 1];
            if (s[i] == ',') {
                i++;
                st = top == '{' ? EXPECT_KEY : EXPECT_VALUE;
            } else if ((top == '{' && s[i] == '}') || (top == '[' && s[i] == ']')) {
                i++;
                depth--;
            } else {
                break;
            }
        } else if (st == EXPECT_KEY) {
            size_t j = s[i] == '"' ? scan_string(s, n, i) : 0;
            if (!j)
                break;
            i = skip_ws(s, n, j);
            if (i >= n || s[i] != ':')
                break;
            i++;
            st = EXPECT_VALUE;
        } else if (s[i] == '{' || s[i] == '[') {
            if (depth == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                char *p = realloc(stack, ncap);
                if (!p) {
                    rc = PGC_ERR_NOMEM;
                    break;
                }
                stack = p;
                cap = ncap;
            }
            char open = s[i++];
            stack[depth++] = open;
            i = skip_ws(s, n, i);
            if (i < n && s[i] == (open == '{' ? '}' : ']')) {
                i++;
                depth--;
                st = AFTER_VALUE;
            } else {
                st = open == '{' ? EXPECT_KEY : EXPECT_VALUE;
            }
        } else {
            size_t j = s[i] == '"' ? scan_string(s, n, i) : scan_scalar(s, n, i);
            if (!j)
                break;
            i = j;
            st = AFTER_VALUE;
        }
    }
    free(stack);
    if (rc == PGC_ERR_MALFORMED)
        errbuf_set(err, err_len, rc, "json: not valid JSON at byte %zu of %zu", i, n);
    else if (rc == PGC_ERR_NOMEM)
        errbuf_set(err, err_len, rc, "json: out of memory");
    return rc;
}
