/* `pgcapture hash-token`: prints the line a resolver or ACL file lists for a bearer token
 * ("sha256:<hex>"), reading the token from a file or standard input, never from the
 * command line (where every user of the machine could read it). */
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/acl.h"
#include "core/opts.h"
#include "core/textfile.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX_BYTES 4096

typedef struct hash_token_config {
    char *token_file;
} hash_token_config;

static const opt_spec hash_token_opts[] = {
    {.name = "token-file",
     .type = OPT_STRING,
     .def = "",
     .help = "read the token from FILE (default: standard input)",
     .offset = offsetof(hash_token_config, token_file)},
};

static const cli_spec hash_token_cmd = {
    "hash-token",
    hash_token_opts,
    sizeof hash_token_opts / sizeof hash_token_opts[0],
    "pgcapture hash-token [--token-file FILE] < token",
    "Prints sha256:<hex> of a bearer token, for the capture, schedule, status and pull\n"
    "lists of the gateway's resolver file and the controller's ACL file. A trailing newline\n"
    "is not part of the token. A token of 32 random bytes is plenty:\n"
    "  openssl rand -base64 32 | tr -d '\\n' > alice.token",
};

/* Reads standard input whole (at most max bytes). */
static char *read_stdin(size_t max, size_t *len)
{
    char *buf = malloc(max + 2);
    if (!buf)
        return NULL;
    *len = fread(buf, 1, max + 1, stdin);
    buf[*len] = '\0';
    return buf;
}

int cmd_hash_token(int argc, char **argv)
{
    hash_token_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = cli_parse(&hash_token_cmd, &cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return cli_usage_error(&hash_token_cmd, &cfg, err);
    char *token = NULL;
    size_t len = 0;
    if (*cfg.token_file) {
        if (cli_read_secret(cfg.token_file, NULL, &token, err, sizeof err) != 0) {
            fprintf(stderr, "pgcapture hash-token: %s\n", err);
            opts_free(hash_token_opts, hash_token_cmd.n_opts, &cfg);
            return 2;
        }
        len = strlen(token);
    } else if ((token = read_stdin(TOKEN_MAX_BYTES, &len)) != NULL) {
        while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
            token[--len] = '\0';
    }
    opts_free(hash_token_opts, hash_token_cmd.n_opts, &cfg);
    if (!token || len == 0 || len > TOKEN_MAX_BYTES || strlen(token) != len) {
        fprintf(stderr,
                "pgcapture hash-token: expected a token of 1 to %d bytes without NUL "
                "bytes on standard input or in --token-file\n",
                TOKEN_MAX_BYTES);
        textfile_free_secret(token);
        return 2;
    }
    char hash[ACL_HASH_TEXT_LEN];
    acl_hash_token(token, len, hash);
    textfile_free_secret(token);
    printf("%s\n", hash);
    return 0;
}
