/* NATS TLS and credentials (see jsauth.h). */
#include "jetstream/jsauth.h"

#include "core/status.h"
#include "core/textfile.h"
#include "jetstream/jsurl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET_MAX_BYTES 65536

typedef struct jsauth_state {
    char *tls_ca, *tls_cert, *tls_key, *creds_file, *nkey, *nkey_seed_file, *user;
    char *password, *token; /* secrets, wiped when replaced */
} jsauth_state;

static jsauth_state state;

static bool given(const char *s)
{
    return s && *s;
}

static int readable(const char *flag, const char *path, char *err, size_t err_len)
{
    if (given(path) && access(path, R_OK) != 0)
        return errbuf_set(err, err_len, PGC_ERR_IO, "--%s %s: cannot read it", flag, path);
    return PGC_OK;
}

/* A secret from its file, else from the environment variable. */
static int secret(const char *flag, const char *file, const char *env, char **out, char *err,
                  size_t err_len)
{
    *out = NULL;
    if (given(file)) {
        size_t len = 0;
        char sub[300];
        if (textfile_read(file, SECRET_MAX_BYTES, out, &len, sub, sizeof sub) != PGC_OK)
            return errbuf_set(err, err_len, PGC_ERR_IO, "--%s: %s", flag, sub);
        while (len > 0 && ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r'))
            (*out)[--len] = '\0';
        if (len == 0 || strlen(*out) != len) {
            textfile_free_secret(*out);
            *out = NULL;
            return errbuf_set(err, err_len, PGC_ERR_CONFIG, "--%s %s: empty, or a NUL byte in it",
                              flag, file);
        }
        return PGC_OK;
    }
    const char *v = getenv(env);
    if (given(v) && !(*out = strdup(v)))
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "out of memory");
    return PGC_OK;
}

static void clear(jsauth_state *s)
{
    free(s->tls_ca);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->creds_file);
    free(s->nkey);
    free(s->nkey_seed_file);
    free(s->user);
    textfile_free_secret(s->password);
    textfile_free_secret(s->token);
    memset(s, 0, sizeof *s);
}

static char *dup_given(const char *s)
{
    return given(s) ? strdup(s) : NULL;
}

int jsauth_configure(const jsauth_config *c, char *err, size_t err_len)
{
    jsauth_state s;
    memset(&s, 0, sizeof s);
    int rc = PGC_OK;
    if (given(c->tls_cert) != given(c->tls_key))
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "--nats-tls-cert and --nats-tls-key go together");
    else if (given(c->nkey) != given(c->nkey_seed_file))
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "--nats-nkey and --nats-nkey-seed go together");
    if (rc == PGC_OK &&
        ((rc = readable("nats-tls-ca", c->tls_ca, err, err_len)) != PGC_OK ||
         (rc = readable("nats-tls-cert", c->tls_cert, err, err_len)) != PGC_OK ||
         (rc = readable("nats-tls-key", c->tls_key, err, err_len)) != PGC_OK ||
         (rc = readable("nats-creds", c->creds_file, err, err_len)) != PGC_OK ||
         (rc = readable("nats-nkey-seed", c->nkey_seed_file, err, err_len)) != PGC_OK ||
         (rc = secret("nats-password-file", c->password_file, "PGCAPTURE_NATS_PASSWORD",
                      &s.password, err, err_len)) != PGC_OK ||
         (rc = secret("nats-token-file", c->token_file, "PGCAPTURE_NATS_TOKEN", &s.token, err,
                      err_len)) != PGC_OK)) {
        clear(&s);
        return rc;
    }
    if (rc == PGC_OK && s.password && !given(c->user))
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG, "a NATS password needs --nats-user");
    int kinds = given(c->creds_file) + given(c->nkey) + given(c->user) + (s.token != NULL);
    if (rc == PGC_OK && kinds > 1)
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "one kind of NATS credentials at most: --nats-creds, --nats-nkey, "
                        "--nats-user or a token");
    if (rc != PGC_OK) {
        clear(&s);
        return rc;
    }
    s.tls_ca = dup_given(c->tls_ca);
    s.tls_cert = dup_given(c->tls_cert);
    s.tls_key = dup_given(c->tls_key);
    s.creds_file = dup_given(c->creds_file);
    s.nkey = dup_given(c->nkey);
    s.nkey_seed_file = dup_given(c->nkey_seed_file);
    s.user = dup_given(c->user);
    clear(&state);
    state = s;
    return PGC_OK;
}

natsStatus jsauth_connect(natsConnection **nc, natsOptions *opts, const char *urls)
{
    natsStatus ns = jsurl_set_servers(opts, urls);
    if (ns == NATS_OK && (state.tls_ca || state.tls_cert))
        ns = natsOptions_SetSecure(opts, true);
    if (ns == NATS_OK && state.tls_ca)
        ns = natsOptions_LoadCATrustedCertificates(opts, state.tls_ca);
    if (ns == NATS_OK && state.tls_cert)
        ns = natsOptions_LoadCertificatesChain(opts, state.tls_cert, state.tls_key);
    if (ns == NATS_OK && state.creds_file)
        ns = natsOptions_SetUserCredentialsFromFiles(opts, state.creds_file, NULL);
    if (ns == NATS_OK && state.nkey)
        ns = natsOptions_SetNKeyFromSeed(opts, state.nkey, state.nkey_seed_file);
    if (ns == NATS_OK && state.user)
        ns = natsOptions_SetUserInfo(opts, state.user, state.password);
    if (ns == NATS_OK && state.token)
        ns = natsOptions_SetToken(opts, state.token);
    if (ns == NATS_OK)
        ns = natsConnection_Connect(nc, opts);
    return ns;
}

int jsauth_error(char *err, size_t err_len, const char *urls, natsStatus ns)
{
    if (ns == NATS_CONNECTION_AUTH_FAILED || ns == NATS_NOT_PERMITTED)
        return errbuf_set(err, err_len, PGC_ERR_PERMISSION,
                          "NATS at %s refused this process's credentials (authorization "
                          "violation): check --nats-creds, --nats-nkey, --nats-user with its "
                          "password, or the token",
                          urls);
    if (ns == NATS_SSL_ERROR)
        return errbuf_set(err, err_len, PGC_ERR_CONN,
                          "TLS with NATS at %s failed (%s): check --nats-tls-ca, and that the "
                          "server's certificate names the host",
                          urls, natsStatus_GetText(ns));
    if (ns == NATS_INVALID_ARG)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "bad NATS URL list or options: %s", urls);
    return errbuf_set(err, err_len, PGC_ERR_CONN, "cannot connect to NATS at %s: %s", urls,
                      natsStatus_GetText(ns));
}
