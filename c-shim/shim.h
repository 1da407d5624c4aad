/* Interface between the C shim and the Rust core (src/ffi.rs declares the same). */
#ifndef OAUTH2_SHIM_H
#define OAUTH2_SHIM_H

#include "httpd.h"

#define OAUTH2_MODE_OAUTH2 1  /* AuthType oauth2 */
#define OAUTH2_MODE_OPENIDC 2 /* AuthType auth-openidc: co-operation with mod_auth_openidc */

typedef struct {
    void *rs; /* Rust DirConfig, owned by a pool cleanup; NULL when nothing was configured here */
} oauth2_dir_cfg;

/* implemented in Rust */
extern const char *oauth2_rs_cmd_token_verify(apr_pool_t *pool, server_rec *s, const char *file,
                                              unsigned line, void **rs, const char *type,
                                              const char *value, const char *options);
extern void *oauth2_rs_dir_merge(apr_pool_t *pool, void *base, void *add);
extern int oauth2_rs_check_authn(request_rec *r, void *rs, int mode);

#endif
