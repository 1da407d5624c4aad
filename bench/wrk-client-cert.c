/* LD_PRELOAD shim that makes wrk present a TLS client certificate.
 *
 * wrk (4.1) has no client-certificate option. It creates its one SSL_CTX with SSL_CTX_new();
 * this wrapper calls the real SSL_CTX_new() and loads the certificate and key named by
 * WRK_CLIENT_CERT and WRK_CLIENT_KEY (PEM files) into it. Used by bench/run for the mTLS
 * scenario only:  LD_PRELOAD=wrk-client-cert.so WRK_CLIENT_CERT=c.crt WRK_CLIENT_KEY=c.key wrk ...
 * Build: gcc -shared -fPIC -O2 -o wrk-client-cert.so wrk-client-cert.c -ldl -lssl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static SSL_CTX *(*real)(const SSL_METHOD *);
    if (!real) real = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
    SSL_CTX *ctx = real(method);
    const char *cert = getenv("WRK_CLIENT_CERT"), *key = getenv("WRK_CLIENT_KEY");
    if (ctx && cert && key) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            fprintf(stderr, "wrk-client-cert: cannot load %s / %s\n", cert, key);
            exit(3);
        }
    }
    return ctx;
}
