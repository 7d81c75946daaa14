/* include/pgcapture.h compiles alone as C99 and as C++ (docs/style.md, "The public header"),
 * with the compilers' strictest usual warnings. Runs from the repository root. */
#include "harness/runner.h"

#include <stdio.h>
#include <stdlib.h>

static void compile(const char *cmd)
{
    char full[512];
    snprintf(full, sizeof full,
             "printf '#include \"pgcapture.h\"\\nint main(void) { return pgc_version() == 0; }\\n' "
             "| %s -Iinclude -fsyntax-only -Wall -Wextra -Werror -pedantic - 2>&1",
             cmd);
    int rc = system(full);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s failed on include/pgcapture.h (status %d)", cmd, rc);
}

static void test_public_header_compiles_alone_as_c99(void)
{
    compile("gcc -x c -std=c99");
}

static void test_public_header_compiles_alone_as_cxx(void)
{
    compile("g++ -x c++ -std=c++11");
}

UNIT_MAIN(UNIT_CASE(test_public_header_compiles_alone_as_c99),
          UNIT_CASE(test_public_header_compiles_alone_as_cxx))
