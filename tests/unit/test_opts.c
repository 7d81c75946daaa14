/* Option parsing: defaults < config file < environment < command line, units in values,
 * and clear errors for bad input. */
#include "harness/runner.h"

#include "core/opts.h"
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct test_cfg {
    char *name;
    int64_t count;
    bool flag;
    int64_t wait_ms;
    int64_t size;
    char *password;
} test_cfg;

static const opt_spec specs[] = {
    {.name = "password",
     .type = OPT_STRING,
     .help = "secret",
     .offset = offsetof(test_cfg, password),
     .secret = true},
    {.name = "source-name",
     .type = OPT_STRING,
     .def = "main",
     .help = "name",
     .offset = offsetof(test_cfg, name)},
    {.name = "count",
     .type = OPT_INT,
     .def = "3",
     .help = "count",
     .offset = offsetof(test_cfg, count)},
    {.name = "flag",
     .type = OPT_BOOL,
     .def = "false",
     .help = "flag",
     .offset = offsetof(test_cfg, flag)},
    {.name = "wait",
     .type = OPT_DURATION_MS,
     .def = "2min",
     .help = "wait",
     .offset = offsetof(test_cfg, wait_ms)},
    {.name = "size",
     .type = OPT_BYTES,
     .def = "64kB",
     .help = "size",
     .offset = offsetof(test_cfg, size)},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

static test_cfg cfg;

static void free_cfg(void *unused)
{
    (void)unused;
    opts_free(specs, N_SPECS, &cfg);
    unsetenv("PGCAPTURE_COUNT");
    unsetenv("PGCAPTURE_SOURCE_NAME");
    unsetenv("PGCAPTURE_PASSWORD");
}

static int parse(int argc, char **argv, char *err, size_t err_len)
{
    opts_free(specs, N_SPECS, &cfg); /* from an earlier parse in the same case */
    memset(&cfg, 0, sizeof cfg);
    unit_defer(free_cfg, NULL);
    return opts_parse(specs, N_SPECS, &cfg, argc, argv, NULL, 0, NULL, err, err_len);
}

static void test_defaults_apply_with_units(void)
{
    char err[256] = "";
    char *argv[] = {"x"};
    EXPECT_EQ_INT(0, parse(1, argv, err, sizeof err));
    EXPECT_EQ_STR("main", cfg.name);
    EXPECT_EQ_INT(3, cfg.count);
    EXPECT_TRUE(!cfg.flag);
    EXPECT_EQ_INT(120000, cfg.wait_ms);
    EXPECT_EQ_INT(65536, cfg.size);
}

static void test_command_line_beats_environment_beats_config_file(void)
{
    char path[] = "/tmp/pgc-opts-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nsource_name = 'fromfile'\ncount = 7\nwait = 250ms\nsize = 1MB\n");
    fclose(f);
    setenv("PGCAPTURE_COUNT", "8", 1);
    char err[256] = "";
    char *argv[] = {"x", "--config", path, "--flag", "--size=2kB"};
    int rc = parse(5, argv, err, sizeof err);
    unlink(path);
    EXPECT_EQ_INT(0, rc);
    EXPECT_EQ_STR("fromfile", cfg.name);
    EXPECT_EQ_INT(8, cfg.count);
    EXPECT_TRUE(cfg.flag);
    EXPECT_EQ_INT(250, cfg.wait_ms);
    EXPECT_EQ_INT(2048, cfg.size);
}

static void test_bad_values_and_unknown_flags_are_refused_with_the_flag_name(void)
{
    char err[256] = "";
    char *a1[] = {"x", "--wait", "soon"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(3, a1, err, sizeof err));
    EXPECT_TRUE(strstr(err, "--wait") != NULL);
    char *a2[] = {"x", "--nope"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(2, a2, err, sizeof err));
    EXPECT_TRUE(strstr(err, "--nope") != NULL);
    char *a3[] = {"x", "--count"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(2, a3, err, sizeof err));
    char *a4[] = {"x", "--count", "12x"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(3, a4, err, sizeof err));
    char *a5[] = {"x", "stray"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(2, a5, err, sizeof err));
}

/* "nan" and "inf" are numbers to strtod: as durations or sizes they were cast to an integer
 * (undefined behaviour; found by fuzzing). */
static void test_durations_and_sizes_that_are_not_finite_numbers_are_refused(void)
{
    static const char *bad[] = {"nan",      "NaN ms", "-nan",  "nan(1)s", "inf",
                                "infinity", "-1",     "1e300", "1e300 kB"};
    int64_t v = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_EQ_INT(PGC_ERR_INVALID, opts_parse_duration_ms(bad[i], &v));
        EXPECT_EQ_INT(PGC_ERR_INVALID, opts_parse_bytes(bad[i], &v));
    }
    EXPECT_EQ_INT(7, v);
    EXPECT_EQ_INT(PGC_OK, opts_parse_duration_ms("1.5s", &v));
    EXPECT_EQ_INT(1500, v);
    char err[256] = "";
    char *a[] = {"x", "--wait", "nan"};
    EXPECT_EQ_INT(PGC_ERR_CONFIG, parse(3, a, err, sizeof err));
    EXPECT_TRUE(strstr(err, "--wait") != NULL);
}

static void test_help_is_reported_before_anything_else_is_parsed(void)
{
    char err[256] = "";
    char *argv[] = {"x", "--nope", "--help"};
    EXPECT_EQ_INT(1, parse(3, argv, err, sizeof err));
}

static void test_print_config_names_each_source_and_masks_secrets(void)
{
    char path[] = "/tmp/pgc-opts-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "wait = 250ms\nsize = 1MB\n");
    fclose(f);
    setenv("PGCAPTURE_COUNT", "8", 1);
    setenv("PGCAPTURE_PASSWORD", "hunter2", 1);
    char err[256] = "";
    char *argv[] = {"x", "--config", path, "--print-config", "--size=2kB", "--source-name", "a b"};
    EXPECT_EQ_INT(2, parse(7, argv, err, sizeof err));
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    int rc = opts_print_config(m, "test", specs, N_SPECS, &cfg, 7, argv, err, sizeof err);
    fclose(m);
    unit_defer(free, out);
    unlink(path);
    EXPECT_EQ_INT(0, rc);
    EXPECT_TRUE(strstr(out, "hunter2") == NULL);
    EXPECT_TRUE(strstr(out, "\npassword = '********'  # environment PGCAPTURE_PASSWORD\n"));
    EXPECT_TRUE(strstr(out, "\nsource-name = 'a b'  # command line\n"));
    EXPECT_TRUE(strstr(out, "\ncount = 8  # environment PGCAPTURE_COUNT\n"));
    EXPECT_TRUE(strstr(out, "\nflag = false  # default\n"));
    char want[512];
    snprintf(want, sizeof want, "\nwait = 250ms  # config file %s:1\n", path);
    EXPECT_TRUE(strstr(out, want) != NULL);
    EXPECT_TRUE(strstr(out, "\nsize = 2kB  # command line\n"));
}

UNIT_MAIN(UNIT_CASE(test_defaults_apply_with_units),
          UNIT_CASE(test_command_line_beats_environment_beats_config_file),
          UNIT_CASE(test_bad_values_and_unknown_flags_are_refused_with_the_flag_name),
          UNIT_CASE(test_durations_and_sizes_that_are_not_finite_numbers_are_refused),
          UNIT_CASE(test_help_is_reported_before_anything_else_is_parsed),
          UNIT_CASE(test_print_config_names_each_source_and_masks_secrets))
