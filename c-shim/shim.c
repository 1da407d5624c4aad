/* The only C in mod_oauth2: the directive table, hook registration and tiny accessors over
 * request_rec, so that Rust never depends on httpd's struct layouts. No policy and no parsing here:
 * every decision is made in Rust (src/). The `module` struct itself is defined in Rust (src/ffi.rs)
 * because a C-defined one is not exported from a Rust cdylib. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"
#include "mod_ssl.h"
#include "apr_strings.h"
#include "apr_optional.h"

#include "shim.h"

extern module AP_MODULE_DECLARE_DATA oauth2_module;
APLOG_USE_MODULE(oauth2);

static APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *oauth2_ssl_var_lookup = NULL;

/* ---------------------------------------------------------------- per-directory config */

void *oauth2_shim_create_dir_cfg(apr_pool_t *p, char *dir)
{
    return apr_pcalloc(p, sizeof(oauth2_dir_cfg));
}

void *oauth2_shim_merge_dir_cfg(apr_pool_t *p, void *basev, void *addv)
{
    oauth2_dir_cfg *base = basev, *add = addv, *merged = apr_pcalloc(p, sizeof(*merged));
    merged->rs = oauth2_rs_dir_merge(p, base->rs, add->rs);
    return merged;
}

/* ---------------------------------------------------------------- directives */

static const char *cmd_token_verify(cmd_parms *cmd, void *mconfig, const char *type,
                                    const char *value, const char *options)
{
    oauth2_dir_cfg *cfg = mconfig;
    const char *file = cmd->directive ? cmd->directive->filename : NULL;
    unsigned line = cmd->directive ? cmd->directive->line_num : 0;
    return oauth2_rs_cmd_token_verify(cmd->pool, cmd->server, file, line, &cfg->rs, type, value,
                                      options);
}

#define OAUTH2_CONTEXTS (RSRC_CONF | ACCESS_CONF | OR_AUTHCFG)

const command_rec oauth2_shim_cmds[] = {
    AP_INIT_TAKE23("OAuth2TokenVerify", cmd_token_verify, NULL, OAUTH2_CONTEXTS,
                   "OAuth2TokenVerify <type> <value> [<options>]: how to verify access tokens"),
    { NULL }
};

/* ---------------------------------------------------------------- hooks */

static int oauth2_check_authn(request_rec *r)
{
    const char *auth_type = ap_auth_type(r);
    oauth2_dir_cfg *cfg;
    int mode;

    if (auth_type == NULL)
        return DECLINED;
    if (strcasecmp(auth_type, "oauth2") == 0)
        mode = OAUTH2_MODE_OAUTH2;
    else if (strcasecmp(auth_type, "auth-openidc") == 0)
        mode = OAUTH2_MODE_OPENIDC;
    else
        return DECLINED;

    cfg = ap_get_module_config(r->per_dir_config, &oauth2_module);
    return oauth2_rs_check_authn(r, cfg ? cfg->rs : NULL, mode);
}

static void oauth2_retrieve_optional_fn(void)
{
    oauth2_ssl_var_lookup = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
}

void oauth2_shim_register_hooks(apr_pool_t *p)
{
    /* Before mod_auth_openidc, so that AuthType auth-openidc co-operation works. */
    static const char *const succ[] = { "mod_auth_openidc.c", NULL };
    ap_hook_check_authn(oauth2_check_authn, NULL, succ, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_optional_fn_retrieve(oauth2_retrieve_optional_fn, NULL, NULL, APR_HOOK_MIDDLE);
}

/* ---------------------------------------------------------------- accessors for Rust */

const char *oauth2_pstrmemdup(apr_pool_t *p, const char *s, apr_size_t len)
{
    return apr_pstrmemdup(p, s, len);
}

void oauth2_pool_cleanup_register(apr_pool_t *p, void *data, apr_status_t (*fn)(void *))
{
    apr_pool_cleanup_register(p, data, fn, apr_pool_cleanup_null);
}

void oauth2_log_request(request_rec *r, int level, const char *msg, apr_size_t len)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s", (int)len, msg);
}

void oauth2_log_server(server_rec *s, int level, const char *msg, apr_size_t len)
{
    ap_log_error(APLOG_MARK, level, 0, s, "%.*s", (int)len, msg);
}

const char *oauth2_header_in_get(request_rec *r, const char *name)
{
    return apr_table_get(r->headers_in, name);
}

int oauth2_headers_in_count(request_rec *r)
{
    return apr_table_elts(r->headers_in)->nelts;
}

const char *oauth2_headers_in_key(request_rec *r, int i)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    if (i < 0 || i >= arr->nelts)
        return NULL;
    return ((const apr_table_entry_t *)arr->elts)[i].key;
}

void oauth2_header_in_unset(request_rec *r, const char *name, apr_size_t len)
{
    apr_table_unset(r->headers_in, apr_pstrmemdup(r->pool, name, len));
}

void oauth2_header_in_set(request_rec *r, const char *name, apr_size_t nlen, const char *value,
                          apr_size_t vlen)
{
    apr_table_setn(r->headers_in, apr_pstrmemdup(r->pool, name, nlen),
                   apr_pstrmemdup(r->pool, value, vlen));
}

const char *oauth2_env_get(request_rec *r, const char *name)
{
    return apr_table_get(r->subprocess_env, name);
}

void oauth2_env_set(request_rec *r, const char *name, apr_size_t nlen, const char *value,
                    apr_size_t vlen)
{
    apr_table_setn(r->subprocess_env, apr_pstrmemdup(r->pool, name, nlen),
                   apr_pstrmemdup(r->pool, value, vlen));
}

void oauth2_err_header_add(request_rec *r, const char *name, const char *value, apr_size_t vlen)
{
    apr_table_addn(r->err_headers_out, name, apr_pstrmemdup(r->pool, value, vlen));
}

void oauth2_set_user(request_rec *r, const char *user, apr_size_t len)
{
    r->user = apr_pstrmemdup(r->pool, user, len);
}

const char *oauth2_auth_name(request_rec *r)
{
    return ap_auth_name(r);
}

/* The user of the request this one was derived from (sub-request or internal redirect), if any. */
const char *oauth2_derived_from_user(request_rec *r)
{
    if (ap_is_initial_req(r))
        return NULL;
    if (r->main != NULL)
        return r->main->user;
    if (r->prev != NULL)
        return r->prev->user;
    return NULL;
}

/* Copies the user of the originating request; see oauth2_derived_from_user. */
void oauth2_inherit_user(request_rec *r)
{
    r->user = r->main != NULL ? r->main->user : (r->prev != NULL ? r->prev->user : r->user);
}

/* The PEM client certificate mod_ssl saw on this connection, or NULL (no mod_ssl, plain HTTP,
 * no certificate: mod_ssl answers "" then). Looked up at check_authn time: mod_ssl only exports
 * SSL_CLIENT_CERT to the environment in fixups. */
const char *oauth2_client_cert_pem(request_rec *r)
{
    const char *pem;
    if (oauth2_ssl_var_lookup == NULL)
        return NULL;
    pem = oauth2_ssl_var_lookup(r->pool, r->server, r->connection, r, "SSL_CLIENT_CERT");
    return (pem != NULL && *pem != '\0') ? pem : NULL;
}

/* Per-connection memo of the last client certificate and its thumbprint, so that the thumbprint is
 * computed once per connection (and again only if a renegotiation changed the certificate). */
typedef struct {
    const char *pem;
    const char *thumbprint;
} oauth2_conn_memo;

void oauth2_conn_memo_get(request_rec *r, const char **pem, const char **thumbprint)
{
    oauth2_conn_memo *m = ap_get_module_config(r->connection->conn_config, &oauth2_module);
    *pem = m ? m->pem : NULL;
    *thumbprint = m ? m->thumbprint : NULL;
}

void oauth2_conn_memo_set(request_rec *r, const char *pem, const char *thumbprint, apr_size_t tlen)
{
    conn_rec *c = r->connection;
    oauth2_conn_memo *m = ap_get_module_config(c->conn_config, &oauth2_module);
    if (m == NULL) {
        m = apr_pcalloc(c->pool, sizeof(*m));
        ap_set_module_config(c->conn_config, &oauth2_module, m);
    }
    m->pem = apr_pstrdup(c->pool, pem);
    m->thumbprint = apr_pstrmemdup(c->pool, thumbprint, tlen);
}
