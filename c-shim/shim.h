/* Interface between the C shim and the Rust core. src/ffi.rs declares the same functions; every
 * `#define OAUTH2_<NAME> <value>` here becomes a Rust constant of the same name (build.rs). */
#ifndef OAUTH2_SHIM_H
#define OAUTH2_SHIM_H

#include "httpd.h"

/* What oauth2_pairs_put does with the pairs in a table: Rust decides, C does exactly that. */
#define OAUTH2_PUT_NONE 0 /* leave the table alone */
#define OAUTH2_PUT_SET 1  /* apr_table_setn: replace any value of the same name */
#define OAUTH2_PUT_ADD 2  /* apr_table_addn: append without searching (no such name is there) */

/* The tables of a request whose keys Rust reads (oauth2_table_count, oauth2_table_key,
 * oauth2_table_val) */
#define OAUTH2_TABLE_HEADERS_IN 1
#define OAUTH2_TABLE_ENV 2 /* subprocess_env */

/* oauth2_rs_authz_claim's answer, returned to mod_authz_core as the authz_status of that name */
#define OAUTH2_AUTHZ_DENIED 0
#define OAUTH2_AUTHZ_GRANTED 1
#define OAUTH2_AUTHZ_DENIED_NO_USER 2
#define OAUTH2_AUTHZ_GENERAL_ERROR 3 /* an internal error (a panic): mod_authz_core answers 500 */

typedef struct {
    void *rs; /* Rust DirConfig, owned by a pool cleanup; NULL when nothing was configured here */
} oauth2_dir_cfg;

typedef struct {
    void *rs; /* Rust ServerConfig, owned by a pool cleanup; NULL when nothing was configured */
} oauth2_srv_cfg;

/* Directives, as passed in cmd->info */
#define OAUTH2_CMD_TOKEN_VERIFY 1
#define OAUTH2_CMD_ACCEPT_TOKEN_IN 2
#define OAUTH2_CMD_TARGET_PASS 3
#define OAUTH2_CMD_CRYPTO_PASSPHRASE 4
#define OAUTH2_CMD_CACHE 5
#define OAUTH2_CMD_TRUSTED_PROXY 6 /* server context: `rs` is the server config's slot */
#define OAUTH2_CMD_RESOURCE_METADATA 7

/* Where a directive was written */
typedef struct {
    apr_pool_t *pool;
    server_rec *server;
    const char *file;
    unsigned line;
} oauth2_cmd_site;

/* The forms of the metrics that oauth2_rs_metrics_text renders */
#define OAUTH2_METRICS_PROMETHEUS 1   /* SetHandler oauth2-metrics: Prometheus text format */
#define OAUTH2_METRICS_STATUS_AUTO 2  /* mod_status, /server-status?auto: "name: value" lines */
#define OAUTH2_METRICS_STATUS_HTML 3  /* mod_status, /server-status: an HTML section */

/* Where the metrics' shared memory is: kept in httpd's retained data, which outlives the module's
 * unloading and reloading on every restart, so a reloaded module counts on in the same memory. */
typedef struct {
    void *base;
    apr_size_t len;
} oauth2_metrics_place;

/* implemented in Rust */
extern const char *oauth2_rs_cmd(const oauth2_cmd_site *site, void **rs, int which, const char *a1,
                                 const char *a2, const char *a3);
extern void oauth2_rs_pre_config(void);
extern const char *oauth2_rs_check_config(apr_pool_t *ptemp);
extern const char *oauth2_rs_post_config(apr_pool_t *ptemp);
extern void oauth2_rs_config_cleared(void);
extern const char *oauth2_rs_authz_parse(apr_pool_t *pool, const char *require_line,
                                         const void **parsed);
extern int oauth2_rs_authz_claim(request_rec *r, const void *parsed);
extern void *oauth2_rs_dir_merge(apr_pool_t *pool, void *base, void *add);
extern void *oauth2_rs_server_merge(apr_pool_t *pool, void *base, void *add);
extern int oauth2_rs_check_authn(request_rec *r, void *rs, const char *auth_type);
extern int oauth2_rs_fixups(request_rec *r, void *rs, const char *auth_type);
extern int oauth2_rs_resource_metadata(request_rec *r);

extern const char *oauth2_rs_metrics_attach(apr_pool_t *ptemp, oauth2_metrics_place *place);
extern void oauth2_rs_metrics_child_init(void);
extern const char *oauth2_rs_metrics_text(request_rec *r, apr_pool_t *p, int form, apr_size_t *len,
                                          const char **content_type);

/* implemented in c-shim/resource_metadata.c (the accessors and oauth2_respond are also called
 * from Rust, src/ffi.rs) */
void oauth2_resource_metadata_register_hooks(void);
int oauth2_server_is_virtual(server_rec *s);
server_rec *oauth2_request_server(request_rec *r);
const char *oauth2_request_path(request_rec *r);
/* 200 with `body` (500 when longer than ap_rwrite's int allows); static header strings. */
int oauth2_respond(request_rec *r, const char *content_type, const char *cache_control,
                   const char *body, apr_size_t len);
/* ap_rwrite with an apr_size_t length: -1 (nothing written) when longer than an int allows. */
int oauth2_rwrite(request_rec *r, const char *buf, apr_size_t len);

#endif
