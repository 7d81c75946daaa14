/* TLS credentials for gRPC (see tls.h). The server side uses gRPC's certificate config
 * fetcher: gRPC asks for the current config on every handshake, and we answer
 * "unchanged" unless one of the files' identity (device, inode, size, mtime) differs from
 * what was loaded, so a rotation costs three stat calls per new connection. A rotated
 * pair that does not check out (a key written before its certificate) is not installed:
 * the previous one stays until the files agree. */
#include "rpc/tls.h"

#include "core/status.h"
#include "core/textfile.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { F_CERT, F_KEY, F_CA, N_FILES };

typedef struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool present;
} file_sig;

struct rpc_tls_server {
    char *path[N_FILES]; /* F_CA may be NULL */
    pthread_mutex_t mu;
    file_sig loaded[N_FILES];
    bool have_loaded;
    unsigned reloads;
};

/* Counts the certificates of a PEM text; 0 when there are none or one is malformed. */
static int count_certs(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return 0;
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_free(x);
        n++;
    }
    BIO_free(bio);
    return n;
}

/* Checks a certificate chain and its key: both parse, and the key is the leaf's. */
static int check_pair(const char *cert_pem, const char *key_pem, const char *cert_file,
                      const char *key_file, char *err, size_t err_len)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *leaf = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int rc = PGC_OK;
    if (!cb || !kb)
        rc = errbuf_set(err, err_len, PGC_ERR_NOMEM, "tls: out of memory");
    else if (!leaf)
        rc =
            errbuf_set(err, err_len, PGC_ERR_CONFIG, "tls: %s holds no PEM certificate", cert_file);
    else if (!key)
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "tls: %s holds no PEM private key (an encrypted key is not supported)",
                        key_file);
    else if (X509_check_private_key(leaf, key) != 1)
        rc = errbuf_set(err, err_len, PGC_ERR_CONFIG,
                        "tls: the key in %s does not belong to the certificate in %s", key_file,
                        cert_file);
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

static int check_ca(const char *pem, const char *file, char *err, size_t err_len)
{
    if (count_certs(pem) < 1)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "tls: %s holds no PEM certificate", file);
    return PGC_OK;
}

/* The files' contents, read and checked. Caller frees with free_pems. */
typedef struct pems {
    char *text[N_FILES];
} pems;

static void free_pems(pems *p)
{
    for (int i = 0; i < N_FILES; i++) {
        textfile_free_secret(p->text[i]);
        p->text[i] = NULL;
    }
}

static int read_pems(char *const path[N_FILES], pems *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char sub[400];
    for (int i = 0; i < N_FILES; i++) {
        if (!path[i])
            continue;
        int rc =
            textfile_read(path[i], RPC_TLS_MAX_PEM_BYTES, &out->text[i], NULL, sub, sizeof sub);
        if (rc != PGC_OK) {
            free_pems(out);
            return errbuf_set(err, err_len, rc, "tls: %s", sub);
        }
    }
    int rc =
        check_pair(out->text[F_CERT], out->text[F_KEY], path[F_CERT], path[F_KEY], err, err_len);
    if (rc == PGC_OK && path[F_CA])
        rc = check_ca(out->text[F_CA], path[F_CA], err, err_len);
    if (rc != PGC_OK)
        free_pems(out);
    return rc;
}

static void sign_files(char *const path[N_FILES], file_sig sig[N_FILES])
{
    for (int i = 0; i < N_FILES; i++) {
        struct stat st;
        memset(&sig[i], 0, sizeof sig[i]);
        if (path[i] && stat(path[i], &st) == 0)
            sig[i] = (file_sig){st.st_dev, st.st_ino, st.st_size, st.st_mtim, true};
    }
}

static bool sigs_equal(const file_sig *a, const file_sig *b)
{
    for (int i = 0; i < N_FILES; i++)
        if (a[i].present != b[i].present || a[i].dev != b[i].dev || a[i].ino != b[i].ino ||
            a[i].size != b[i].size || a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
            a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
            return false;
    return true;
}

static grpc_ssl_certificate_config_reload_status
fetch_config(void *arg, grpc_ssl_server_certificate_config **config)
{
    rpc_tls_server *t = arg;
    grpc_ssl_certificate_config_reload_status st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&t->mu);
    file_sig now[N_FILES];
    sign_files(t->path, now);
    pems p;
    char err[400];
    if ((!t->have_loaded || !sigs_equal(now, t->loaded)) &&
        read_pems(t->path, &p, err, sizeof err) == PGC_OK) {
        grpc_ssl_pem_key_cert_pair pair = {p.text[F_KEY], p.text[F_CERT]};
        /* gRPC copies the strings. Its fetcher path insists on client roots even when no
         * client certificate is requested: the server's own chain stands in, unused. */
        const char *roots = p.text[F_CA] ? p.text[F_CA] : p.text[F_CERT];
        *config = grpc_ssl_server_certificate_config_create(roots, &pair, 1);
        free_pems(&p);
        if (*config) {
            if (t->have_loaded)
                t->reloads++;
            memcpy(t->loaded, now, sizeof now);
            t->have_loaded = true;
            st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
        }
    }
    if (!t->have_loaded)
        st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    pthread_mutex_unlock(&t->mu);
    return st;
}

int rpc_tls_server_create(const char *cert_file, const char *key_file, const char *client_ca_file,
                          rpc_tls_server **out, char *err, size_t err_len)
{
    if (!cert_file || !*cert_file || !key_file || !*key_file)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "tls: a server certificate needs both its file and its key file");
    rpc_tls_server *t = calloc(1, sizeof *t);
    if (!t)
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "tls: out of memory");
    pthread_mutex_init(&t->mu, NULL);
    t->path[F_CERT] = strdup(cert_file);
    t->path[F_KEY] = strdup(key_file);
    t->path[F_CA] = client_ca_file && *client_ca_file ? strdup(client_ca_file) : NULL;
    if (!t->path[F_CERT] || !t->path[F_KEY] ||
        (client_ca_file && *client_ca_file && !t->path[F_CA])) {
        rpc_tls_server_destroy(t);
        return errbuf_set(err, err_len, PGC_ERR_NOMEM, "tls: out of memory");
    }
    pems p;
    int rc = read_pems(t->path, &p, err, err_len);
    if (rc != PGC_OK) {
        rpc_tls_server_destroy(t);
        return rc;
    }
    free_pems(&p);
    *out = t;
    return PGC_OK;
}

grpc_server_credentials *rpc_tls_server_credentials(rpc_tls_server *t)
{
    grpc_ssl_client_certificate_request_type req =
        t->path[F_CA] ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch_config, t);
    return o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
}

unsigned rpc_tls_server_reloads(rpc_tls_server *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned n = t->reloads;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void rpc_tls_server_destroy(rpc_tls_server *t)
{
    if (!t)
        return;
    for (int i = 0; i < N_FILES; i++)
        free(t->path[i]);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* A bearer token goes into an HTTP/2 header: visible ASCII only. */
static bool token_valid(const char *s)
{
    if (!*s || strlen(s) > 4096)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

int rpc_tls_client_credentials(const char *ca_file, const char *cert_file, const char *key_file,
                               const char *token, grpc_channel_credentials **out, char *err,
                               size_t err_len)
{
    bool has_cert = cert_file && *cert_file, has_key = key_file && *key_file;
    if (has_cert != has_key)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "tls: a client certificate needs both its file and its key file");
    if (token && !token_valid(token))
        return errbuf_set(err, err_len, PGC_ERR_CONFIG,
                          "tls: the token must be 1 to 4096 visible ASCII characters");
    char *path[N_FILES] = {has_cert ? (char *)cert_file : NULL, has_key ? (char *)key_file : NULL,
                           ca_file && *ca_file ? (char *)ca_file : NULL};
    pems p;
    memset(&p, 0, sizeof p);
    char sub[400];
    for (int i = 0; i < N_FILES; i++) {
        int rc = path[i] ? textfile_read(path[i], RPC_TLS_MAX_PEM_BYTES, &p.text[i], NULL, sub,
                                         sizeof sub)
                         : PGC_OK;
        if (rc != PGC_OK) {
            free_pems(&p);
            return errbuf_set(err, err_len, rc, "tls: %s", sub);
        }
    }
    int rc = PGC_OK;
    if (has_cert)
        rc = check_pair(p.text[F_CERT], p.text[F_KEY], cert_file, key_file, err, err_len);
    if (rc == PGC_OK && p.text[F_CA])
        rc = check_ca(p.text[F_CA], ca_file, err, err_len);
    if (rc != PGC_OK) {
        free_pems(&p);
        return rc;
    }
    grpc_ssl_pem_key_cert_pair pair = {p.text[F_KEY], p.text[F_CERT]};
    /* gRPC copies the PEM strings. */
    grpc_channel_credentials *creds =
        grpc_ssl_credentials_create_ex(p.text[F_CA], has_cert ? &pair : NULL, NULL, NULL);
    free_pems(&p);
    if (creds && token) {
        grpc_call_credentials *call_creds = grpc_access_token_credentials_create(token, NULL);
        grpc_channel_credentials *both =
            call_creds ? grpc_composite_channel_credentials_create(creds, call_creds, NULL) : NULL;
        grpc_channel_credentials_release(creds);
        if (call_creds)
            grpc_call_credentials_release(call_creds);
        creds = both;
    }
    if (!creds)
        return errbuf_set(err, err_len, PGC_ERR_CONFIG, "tls: gRPC refused the credentials");
    *out = creds;
    return PGC_OK;
}
