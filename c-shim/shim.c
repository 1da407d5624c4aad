/* The only C in mod_oauth2: the directive table, hook registration and tiny accessors over
 * request_rec, so that Rust never depends on httpd's struct layouts. Policy and parsing are in
 * Rust (src/); what stays here is mechanics that httpd's API shapes: which handler name serves the
 * metrics (GET only), that the RFC 9728 quick handler skips look-ups and proxy requests, and that a
 * form body announced larger than the limit is not read. The `module` struct itself is defined in
 * Rust (src/ffi.rs) because a C-defined one is not exported from a Rust cdylib. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_main.h"
#include "mod_auth.h"
#include "mod_ssl.h"
#include "apr_strings.h"
#include "mod_status.h"

#include <limits.h>
#include <strings.h>
#include "apr_optional.h"
#include "apr_buckets.h"
#include "util_filter.h"

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
    oauth2_dir_cfg *base = basev, *add = addv, *merged;
    /* The common case, on every request to a <Location> with our directives: nothing to merge. */
    if (base->rs == NULL)
        return add;
    merged = apr_pcalloc(p, sizeof(*merged));
    merged->rs = oauth2_rs_dir_merge(p, base->rs, add->rs);
    return merged;
}

/* ---------------------------------------------------------------- per-server config */

void *oauth2_shim_create_srv_cfg(apr_pool_t *p, server_rec *s)
{
    return apr_pcalloc(p, sizeof(oauth2_srv_cfg));
}

void *oauth2_shim_merge_srv_cfg(apr_pool_t *p, void *basev, void *addv)
{
    oauth2_srv_cfg *base = basev, *add = addv, *merged;
    if (base->rs == NULL)
        return add;
    merged = apr_pcalloc(p, sizeof(*merged));
    merged->rs = oauth2_rs_server_merge(p, base->rs, add->rs);
    return merged;
}

/* The server config's Rust side for a request (NULL: nothing configured). */
const void *oauth2_server_rs(request_rec *r)
{
    oauth2_srv_cfg *sc = ap_get_module_config(r->server->module_config, &oauth2_module);
    return sc ? sc->rs : NULL;
}

/* The TCP peer's address (never a header: mod_remoteip changes useragent_ip, not this). */
const char *oauth2_client_ip(request_rec *r)
{
    return r->connection->client_ip;
}

/* ---------------------------------------------------------------- directives */

/* Every directive goes to one Rust function; cmd->info says which directive it is. */
static const char *cmd_dispatch(cmd_parms *cmd, void *mconfig, const char *a1, const char *a2,
                                const char *a3)
{
    oauth2_dir_cfg *cfg = mconfig;
    oauth2_cmd_site site;
    site.pool = cmd->pool;
    site.server = cmd->server;
    site.file = cmd->directive ? cmd->directive->filename : NULL;
    site.line = cmd->directive ? cmd->directive->line_num : 0;
    return oauth2_rs_cmd(&site, &cfg->rs, (int)(apr_uintptr_t)cmd->info, a1, a2, a3);
}

/* Server-context directives write the server config's slot, not the directory's. */
static const char *cmd_server(cmd_parms *cmd, void *mconfig, const char *a1)
{
    oauth2_srv_cfg *sc = ap_get_module_config(cmd->server->module_config, &oauth2_module);
    oauth2_cmd_site site;
    site.pool = cmd->pool;
    site.server = cmd->server;
    site.file = cmd->directive ? cmd->directive->filename : NULL;
    site.line = cmd->directive ? cmd->directive->line_num : 0;
    return oauth2_rs_cmd(&site, &sc->rs, (int)(apr_uintptr_t)cmd->info, a1, NULL, NULL);
}

static const char *cmd_take1(cmd_parms *cmd, void *mconfig, const char *a1)
{
    return cmd_dispatch(cmd, mconfig, a1, NULL, NULL);
}

static const char *cmd_take12(cmd_parms *cmd, void *mconfig, const char *a1, const char *a2)
{
    return cmd_dispatch(cmd, mconfig, a1, a2, NULL);
}

#define OAUTH2_CONTEXTS (RSRC_CONF | ACCESS_CONF | OR_AUTHCFG)
#define OAUTH2_CMD(n) ((void *)(apr_uintptr_t)(n))

const command_rec oauth2_shim_cmds[] = {
    AP_INIT_TAKE23("OAuth2TokenVerify", cmd_dispatch, OAUTH2_CMD(OAUTH2_CMD_TOKEN_VERIFY),
                   OAUTH2_CONTEXTS,
                   "OAuth2TokenVerify <type> <value> [<options>]: how to verify access tokens"),
    AP_INIT_TAKE12("OAuth2AcceptTokenIn", cmd_take12, OAUTH2_CMD(OAUTH2_CMD_ACCEPT_TOKEN_IN),
                   OAUTH2_CONTEXTS,
                   "OAuth2AcceptTokenIn environment|header|query|post|cookie|basic [<options>]"),
    AP_INIT_TAKE1("OAuth2TargetPass", cmd_take1, OAUTH2_CMD(OAUTH2_CMD_TARGET_PASS),
                  OAUTH2_CONTEXTS, "OAuth2TargetPass <options>: how claims reach the backend"),
    AP_INIT_TAKE12("OAuth2Cache", cmd_take12, OAUTH2_CMD(OAUTH2_CMD_CACHE), OAUTH2_CONTEXTS,
                   "OAuth2Cache shm|file|memcache|redis [<options>]: a cache for results and keys"),
    AP_INIT_TAKE1("OAuth2CryptoPassphrase", cmd_take1, OAUTH2_CMD(OAUTH2_CMD_CRYPTO_PASSPHRASE),
                  OAUTH2_CONTEXTS, "OAuth2CryptoPassphrase <passphrase>: for encrypted caches"),
    AP_INIT_ITERATE("OAuth2TrustedProxy", cmd_server, OAUTH2_CMD(OAUTH2_CMD_TRUSTED_PROXY),
                    RSRC_CONF,
                    "OAuth2TrustedProxy <IP or CIDR> [...]: peers whose forwarding headers are believed"),
    AP_INIT_TAKE12("OAuth2ResourceMetadata", cmd_take12, OAUTH2_CMD(OAUTH2_CMD_RESOURCE_METADATA),
                   RSRC_CONF,
                   "OAuth2ResourceMetadata <resource identifier URL> [<options>]: RFC 9728 metadata"),
    { NULL }
};

/* ---------------------------------------------------------------- Require oauth2_claim */

static authz_status oauth2_authz_claim(request_rec *r, const char *require_line,
                                       const void *parsed)
{
    switch (oauth2_rs_authz_claim(r, parsed)) {
    case OAUTH2_AUTHZ_GRANTED:
        return AUTHZ_GRANTED;
    case OAUTH2_AUTHZ_DENIED_NO_USER:
        return AUTHZ_DENIED_NO_USER;
    case OAUTH2_AUTHZ_GENERAL_ERROR:
        return AUTHZ_GENERAL_ERROR;
    default:
        return AUTHZ_DENIED;
    }
}

static const char *oauth2_authz_parse(cmd_parms *cmd, const char *require_line,
                                      const void **parsed)
{
    return oauth2_rs_authz_parse(cmd->pool, require_line, parsed);
}

static const authz_provider oauth2_authz_claim_provider = {
    &oauth2_authz_claim,
    &oauth2_authz_parse,
};

/* ---------------------------------------------------------------- hooks */

/* Rust decides which AuthType is ours (it declines the others). */
static int oauth2_check_authn(request_rec *r)
{
    oauth2_dir_cfg *cfg = ap_get_module_config(r->per_dir_config, &oauth2_module);
    return oauth2_rs_check_authn(r, cfg ? cfg->rs : NULL, ap_auth_type(r));
}

/* Every request of an oauth2/auth-openidc location, also one that check_authn never saw
 * (authorization granted without a user, a sub-request): Rust scrubs the look-alikes of the
 * headers it passes unless that was done or this module's user is inherited. Before the other
 * fixups (mod_rewrite, mod_headers, mod_env) can copy a spoofed value anywhere. */
static int oauth2_fixups(request_rec *r)
{
    oauth2_dir_cfg *cfg = ap_get_module_config(r->per_dir_config, &oauth2_module);
    return oauth2_rs_fixups(r, cfg ? cfg->rs : NULL, ap_auth_type(r));
}

/* Each (re)read of the configuration starts from a clean slate of process-wide settings. */
static int oauth2_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    oauth2_rs_pre_config();
    return OK;
}

/* ---------------------------------------------------------------- request body replay */

/* A body read during authentication (to find a form-posted token) is handed to whatever reads
 * the body later (handler, proxy) by this input filter, so the backend still receives it. */
#define OAUTH2_BODY_FILTER "OAUTH2_BODY_REPLAY"

typedef struct {
    const char *data;
    apr_size_t len;
    apr_size_t pos;
    int eos; /* the whole body was read: end with EOS instead of reading further below */
} oauth2_body_ctx;

static apr_status_t oauth2_body_replay(ap_filter_t *f, apr_bucket_brigade *bb,
                                       ap_input_mode_t mode, apr_read_type_e block,
                                       apr_off_t readbytes)
{
    oauth2_body_ctx *ctx = f->ctx;
    apr_size_t n;

    if (ctx == NULL || (mode != AP_MODE_READBYTES && mode != AP_MODE_SPECULATIVE &&
                        mode != AP_MODE_GETLINE && mode != AP_MODE_EXHAUSTIVE))
        return ap_get_brigade(f->next, bb, mode, block, readbytes);

    if (ctx->pos >= ctx->len) {
        if (ctx->eos) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
            if (mode != AP_MODE_SPECULATIVE)
                ap_remove_input_filter(f);
            return APR_SUCCESS;
        }
        ap_remove_input_filter(f);
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }

    n = ctx->len - ctx->pos;
    if (mode == AP_MODE_GETLINE) {
        const char *nl = memchr(ctx->data + ctx->pos, '\n', n);
        if (nl != NULL)
            n = (apr_size_t)(nl - (ctx->data + ctx->pos)) + 1;
    }
    else if (mode != AP_MODE_EXHAUSTIVE && readbytes > 0 && (apr_off_t)n > readbytes) {
        n = (apr_size_t)readbytes;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(ctx->data + ctx->pos, n,
                                                            f->c->bucket_alloc));
    /* transient buckets point at pool memory that lives as long as the request */
    if (mode != AP_MODE_SPECULATIVE)
        ctx->pos += n;
    return APR_SUCCESS;
}

/* Reads the request body into the request pool, up to `limit` bytes, and installs the replay
 * filter so the handler still receives all of it. Returns 0 with the body in data and len; -1 when
 * the body is larger than `limit` (then whatever was read is replayed, followed by the rest) or
 * cannot be read. */
int oauth2_body_read(request_rec *r, apr_size_t limit, const char **data, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    oauth2_body_ctx *ctx;
    /* Sized for the announced body (one read of slack), else one read; grown when a filter
     * returns more. Everything read is kept: it goes to the handler as it came. */
    apr_size_t cap = HUGE_STRING_LEN + 1, used = 0;
    char *buf;
    int done = 0, failed = 0;

    *data = NULL;
    *len = 0;
    if (cl != NULL) {
        char *end;
        apr_off_t n;
        if (apr_strtoff(&n, cl, &end, 10) != APR_SUCCESS || *end != '\0' || n < 0 ||
            (apr_uint64_t)n > (apr_uint64_t)limit)
            return -1; /* nothing read: the body goes to the handler untouched */
        cap = (apr_size_t)n + HUGE_STRING_LEN + 1;
    }

    buf = apr_palloc(r->pool, cap);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!done && !failed && used <= limit) {
        apr_bucket *b;
        if (ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                           HUGE_STRING_LEN) != APR_SUCCESS) {
            failed = 1;
            break;
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *chunk;
            apr_size_t clen;
            if (APR_BUCKET_IS_EOS(b)) {
                done = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b))
                continue;
            if (apr_bucket_read(b, &chunk, &clen, APR_BLOCK_READ) != APR_SUCCESS) {
                failed = 1;
                break;
            }
            if (clen > cap - 1 - used) {
                /* A filter returned more than asked (or the body is longer than announced):
                 * grow rather than drop bytes the handler must still get. */
                apr_size_t want = used + clen + 1;
                apr_size_t grown = cap > ((apr_size_t)-1) / 2 ? want : cap * 2;
                char *bigger;
                if (want <= used) { /* overflow */
                    failed = 1;
                    break;
                }
                if (grown < want)
                    grown = want;
                bigger = apr_palloc(r->pool, grown);
                memcpy(bigger, buf, used);
                buf = bigger;
                cap = grown;
            }
            memcpy(buf + used, chunk, clen);
            used += clen;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    buf[used] = '\0';
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->data = buf;
    ctx->len = used;
    ctx->eos = done;
    ap_add_input_filter(OAUTH2_BODY_FILTER, ctx, r, r->connection);
    if (!done || failed || used > limit)
        return -1;
    *data = buf;
    *len = used;
    return 0;
}

/* Replaces the body the backend will receive (after removing the token from a form). */
void oauth2_body_replace(request_rec *r, const char *data, apr_size_t len)
{
    ap_filter_t *f;
    for (f = r->input_filters; f != NULL; f = f->next) {
        if (f->frec != NULL && f->frec->name != NULL &&
            strcasecmp(f->frec->name, OAUTH2_BODY_FILTER) == 0) {
            oauth2_body_ctx *ctx = f->ctx;
            ctx->data = apr_pstrmemdup(r->pool, data, len);
            ctx->len = len;
            ctx->pos = 0;
            apr_table_setn(r->headers_in, "Content-Length",
                           apr_psprintf(r->pool, "%" APR_SIZE_T_FMT, len));
            apr_table_unset(r->headers_in, "Transfer-Encoding");
            return;
        }
    }
}

/* After the configuration is read (also for `apache2 -t`): settings that span directives. */
static int oauth2_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    const char *err = oauth2_rs_check_config(ptemp);
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s, "mod_oauth2: %s", err);
        return !OK;
    }
    return OK;
}

static apr_status_t oauth2_config_cleared(void *data)
{
    oauth2_rs_config_cleared();
    return APR_SUCCESS;
}

/* In the parent, before children are forked: shared caches are created here. */
static int oauth2_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    const char *err = oauth2_rs_post_config(ptemp);
    /* Caches live as long as this configuration generation: released before a restart re-reads it. */
    apr_pool_cleanup_register(pconf, NULL, oauth2_config_cleared, apr_pool_cleanup_null);
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "mod_oauth2: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static void oauth2_retrieve_optional_fn(void)
{
    oauth2_ssl_var_lookup = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
}

/* ---------------------------------------------------------------- metrics */

#define OAUTH2_METRICS_HANDLER "oauth2-metrics"
#define OAUTH2_METRICS_RETAINED "mod_oauth2-metrics"

/* In the parent, before the directives of each configuration reading: the metrics' shared memory
 * is found again where an earlier load of the module left it (retained data), or made. */
static int oauth2_metrics_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    oauth2_metrics_place *place = ap_retained_data_get(OAUTH2_METRICS_RETAINED);
    const char *err;
    if (place == NULL)
        place = ap_retained_data_create(OAUTH2_METRICS_RETAINED, sizeof(*place));
    err = oauth2_rs_metrics_attach(ptemp, place);
    if (err != NULL) /* not fatal: the server runs, without metrics */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, NULL, "mod_oauth2: %s", err);
    return OK;
}

static void oauth2_metrics_child_init(apr_pool_t *p, server_rec *s)
{
    oauth2_rs_metrics_child_init();
}

/* SetHandler oauth2-metrics: GET (and HEAD) only. */
static int oauth2_metrics_handler(request_rec *r)
{
    const char *text, *content_type = NULL;
    apr_size_t len = 0;
    if (r->handler == NULL || strcmp(r->handler, OAUTH2_METRICS_HANDLER) != 0)
        return DECLINED;
    r->allowed |= (AP_METHOD_BIT << M_GET);
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL); /* the 405's Allow header (HEAD is implied) */
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    text = oauth2_rs_metrics_text(r, r->pool, OAUTH2_METRICS_PROMETHEUS, &len, &content_type);
    if (text == NULL)
        return HTTP_INTERNAL_SERVER_ERROR; /* Rust logged why */
    return oauth2_respond(r, content_type, "no-store", text, len);
}

/* mod_status's page (when mod_status is loaded): the same figures, as lines (?auto) or HTML. */
static int oauth2_metrics_status(request_rec *r, int flags)
{
    const char *text, *content_type = NULL;
    apr_size_t len = 0;
    int form = (flags & AP_STATUS_SHORT) ? OAUTH2_METRICS_STATUS_AUTO : OAUTH2_METRICS_STATUS_HTML;
    text = oauth2_rs_metrics_text(r, r->pool, form, &len, &content_type);
    if (text != NULL)
        oauth2_rwrite(r, text, len);
    return OK;
}

static void oauth2_metrics_register_hooks(void)
{
    ap_hook_pre_config(oauth2_metrics_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(oauth2_metrics_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(oauth2_metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, oauth2_metrics_status, NULL, NULL, APR_HOOK_MIDDLE);
}

void oauth2_shim_register_hooks(apr_pool_t *p)
{
    /* Before mod_auth_openidc, so that AuthType auth-openidc co-operation works. */
    static const char *const succ[] = { "mod_auth_openidc.c", NULL };
    ap_hook_check_authn(oauth2_check_authn, NULL, succ, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_fixups(oauth2_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_optional_fn_retrieve(oauth2_retrieve_optional_fn, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(oauth2_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(oauth2_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(oauth2_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "oauth2_claim", AUTHZ_PROVIDER_VERSION,
                              &oauth2_authz_claim_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_input_filter(OAUTH2_BODY_FILTER, oauth2_body_replay, NULL, AP_FTYPE_PROTOCOL - 1);
    oauth2_resource_metadata_register_hooks();
    oauth2_metrics_register_hooks();
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
    ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s", len > INT_MAX ? INT_MAX : (int)len, msg);
}

int oauth2_log_enabled(request_rec *r, int level)
{
    return APLOG_R_IS_LEVEL(r, level);
}

/* Lines that belong to no request or directive (e.g. a key endpoint that stopped answering). */
void oauth2_log_process(int level, const char *msg, apr_size_t len)
{
    ap_log_error(APLOG_MARK, level, 0, ap_server_conf, "%.*s", len > INT_MAX ? INT_MAX : (int)len, msg);
}

void oauth2_log_server(server_rec *s, int level, const char *msg, apr_size_t len)
{
    /* While the configuration is read, a virtual host has no log level yet (httpd merges it
     * afterwards), so its lines would be dropped: they go out as the main server's. */
    if (s != NULL && s->is_virtual && s->log.level < 0)
        s = NULL;
    ap_log_error(APLOG_MARK, level, 0, s, "%.*s", len > INT_MAX ? INT_MAX : (int)len, msg);
}

const char *oauth2_header_in_get(request_rec *r, const char *name)
{
    return apr_table_get(r->headers_in, name);
}

static const apr_table_t *request_table(request_rec *r, int table)
{
    switch (table) {
    case OAUTH2_TABLE_HEADERS_IN:
        return r->headers_in;
    case OAUTH2_TABLE_ENV:
        return r->subprocess_env;
    default:
        return NULL;
    }
}

int oauth2_table_count(request_rec *r, int table)
{
    const apr_table_t *t = request_table(r, table);
    return t != NULL ? apr_table_elts(t)->nelts : 0;
}

/* 1 when a key of the table starts with the `len` bytes of `prefix` in any letter case (tables
 * are case-insensitive), else 0. One call instead of one per key: it runs on every request. */
int oauth2_table_has_prefix(request_rec *r, int table, const char *prefix, apr_size_t len)
{
    const apr_table_t *t = request_table(r, table);
    const apr_array_header_t *elts;
    const apr_table_entry_t *e;
    int i;
    if (t == NULL)
        return 0;
    elts = apr_table_elts(t);
    e = (const apr_table_entry_t *)elts->elts;
    for (i = 0; i < elts->nelts; i++) {
        if (e[i].key != NULL && strncasecmp(e[i].key, prefix, len) == 0)
            return 1;
    }
    return 0;
}

const char *oauth2_table_key(request_rec *r, int table, int i)
{
    const apr_table_t *t = request_table(r, table);
    const apr_array_header_t *arr = t != NULL ? apr_table_elts(t) : NULL;
    if (arr == NULL || i < 0 || i >= arr->nelts)
        return NULL;
    return ((const apr_table_entry_t *)arr->elts)[i].key;
}

/* The value of entry `i` of the table (NULL past the end), to go with oauth2_table_key. */
const char *oauth2_table_val(request_rec *r, int table, int i)
{
    const apr_table_t *t = request_table(r, table);
    const apr_array_header_t *arr = t != NULL ? apr_table_elts(t) : NULL;
    if (arr == NULL || i < 0 || i >= arr->nelts)
        return NULL;
    return ((const apr_table_entry_t *)arr->elts)[i].val;
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

/* One `put` (OAUTH2_PUT_*) into `t`. */
static void table_put(apr_table_t *t, int put, const char *name, const char *value)
{
    if (put == OAUTH2_PUT_ADD)
        apr_table_addn(t, name, value);
    else if (put == OAUTH2_PUT_SET)
        apr_table_setn(t, name, value);
}

/* Copies `text` (NUL-terminated names and values) into the request pool once, then puts each of
 * the `n` pairs that start at `offsets` (name, value) into the request headers and the
 * environment, pointing into that copy, as `headers` and `env` say (OAUTH2_PUT_*). */
void oauth2_pairs_put(request_rec *r, const char *text, apr_size_t len, const apr_size_t *offsets,
                      apr_size_t n, int headers, int env)
{
    const char *copy;
    apr_size_t i;

    if (n == 0 || len == 0 || text[len - 1] != '\0')
        return;
    copy = apr_pmemdup(r->pool, text, len);
    for (i = 0; i < n; i++) {
        apr_size_t name = offsets[2 * i], value = offsets[2 * i + 1];
        if (name >= len || value >= len)
            continue;
        table_put(r->headers_in, headers, copy + name, copy + value);
        table_put(r->subprocess_env, env, copy + name, copy + value);
    }
}

const char *oauth2_method(request_rec *r)
{
    return r->method;
}

typedef struct {
    const char **values;
    int max;
    int count;
} oauth2_values;

static int collect_value(void *data, const char *key, const char *value)
{
    oauth2_values *v = data;
    (void)key;
    if (v->count < v->max)
        v->values[v->count] = value;
    v->count++;
    return 1;
}

/* Every value of request header `name` (case-insensitive), up to `max` of them into `values`;
 * returns how many there are in all. */
int oauth2_header_in_values(request_rec *r, const char *name, const char **values, int max)
{
    oauth2_values v = {values, max, 0};
    apr_table_do(collect_value, &v, r->headers_in, name, NULL);
    return v.count;
}

/* The request URL as httpd itself builds self-referencing URLs (ServerName, UseCanonicalName). */
void oauth2_request_url(request_rec *r, const char **scheme, const char **host, unsigned *port,
                        const char **uri)
{
    *scheme = ap_http_scheme(r);
    *host = ap_get_server_name_for_url(r);
    *port = ap_get_server_port(r);
    *uri = r->unparsed_uri;
}

const char *oauth2_args(request_rec *r)
{
    return r->args;
}

void oauth2_args_set(request_rec *r, const char *args, apr_size_t len)
{
    r->args = len > 0 ? apr_pstrmemdup(r->pool, args, len) : NULL;
    r->parsed_uri.query = r->args;
}

void oauth2_env_unset(request_rec *r, const char *name)
{
    apr_table_unset(r->subprocess_env, name);
}

/* What this module did to one request (each request_rec, sub-requests and internal redirects
 * included, has its own): Rust's note of the authentication it granted, and whether the request
 * headers that look like ours were scrubbed. */
typedef struct {
    void *auth;
    int scrubbed;
} oauth2_request_note;

static oauth2_request_note *request_note(request_rec *r, int create)
{
    oauth2_request_note *n = ap_get_module_config(r->request_config, &oauth2_module);
    if (n == NULL && create) {
        n = apr_pcalloc(r->pool, sizeof(*n));
        ap_set_module_config(r->request_config, &oauth2_module, n);
    }
    return n;
}

/* Rust's note of the authentication granted to this request, released with the request pool. */
void oauth2_request_auth_set(request_rec *r, void *auth, apr_status_t (*release)(void *))
{
    request_note(r, 1)->auth = auth;
    apr_pool_cleanup_register(r->pool, auth, release, apr_pool_cleanup_null);
}

/* The note on this very request (Rust looks at the requests it came from). */
const void *oauth2_request_auth_get(request_rec *r)
{
    oauth2_request_note *n = request_note(r, 0);
    return n != NULL ? n->auth : NULL;
}

void oauth2_request_scrubbed_set(request_rec *r)
{
    request_note(r, 1)->scrubbed = 1;
}

int oauth2_request_scrubbed(request_rec *r)
{
    oauth2_request_note *n = request_note(r, 0);
    return n != NULL && n->scrubbed;
}

const char *oauth2_user(request_rec *r)
{
    return r->user;
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

/* The main request of a sub-request, or NULL. */
request_rec *oauth2_main(request_rec *r)
{
    return r->main;
}

/* The request an internal redirect came from, or NULL. */
request_rec *oauth2_prev(request_rec *r)
{
    return r->prev;
}

/* r->user becomes the user of `from` (a request r derives from, whose pool outlives r's). */
void oauth2_user_share(request_rec *r, request_rec *from)
{
    r->user = from->user;
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

/* The TLS session of the connection now (hex), or NULL: a renegotiation is a new session. */
const char *oauth2_ssl_session_id(request_rec *r)
{
    const char *id;
    if (oauth2_ssl_var_lookup == NULL)
        return NULL;
    id = oauth2_ssl_var_lookup(r->pool, r->server, r->connection, r, "SSL_SESSION_ID");
    return (id != NULL && *id != '\0') ? id : NULL;
}

/* Per-connection memo: the last client certificate, its thumbprint and the TLS session it was
 * read in, so that the thumbprint is computed once per connection (and again only if a
 * renegotiation changed the certificate), and Rust's memo of the last token accepted on the
 * connection. */
typedef struct {
    const char *pem;
    const char *thumbprint;
    const char *session;
    void *token_memo;
} oauth2_conn_memo;

static oauth2_conn_memo *conn_memo(conn_rec *c)
{
    oauth2_conn_memo *m = ap_get_module_config(c->conn_config, &oauth2_module);
    if (m == NULL) {
        m = apr_pcalloc(c->pool, sizeof(*m));
        ap_set_module_config(c->conn_config, &oauth2_module, m);
    }
    return m;
}

void oauth2_conn_memo_get(request_rec *r, const char **pem, const char **thumbprint,
                          const char **session)
{
    oauth2_conn_memo *m = ap_get_module_config(r->connection->conn_config, &oauth2_module);
    *pem = m ? m->pem : NULL;
    *thumbprint = m ? m->thumbprint : NULL;
    *session = m ? m->session : NULL;
}

/* Returns the connection pool's copy of the thumbprint; `session` may be NULL (unknown). */
const char *oauth2_conn_memo_set(request_rec *r, const char *pem, const char *thumbprint,
                                 apr_size_t tlen, const char *session)
{
    conn_rec *c = r->connection;
    oauth2_conn_memo *m = conn_memo(c);
    if (m->pem == NULL || strcmp(m->pem, pem) != 0)
        m->pem = apr_pstrdup(c->pool, pem);
    if (m->thumbprint == NULL || strlen(m->thumbprint) != tlen ||
        memcmp(m->thumbprint, thumbprint, tlen) != 0)
        m->thumbprint = apr_pstrmemdup(c->pool, thumbprint, tlen);
    /* copied only when it changed: a keep-alive connection asks again on every request whose
     * binding did not match the memo, and the connection pool only grows */
    if (session == NULL)
        m->session = NULL;
    else if (m->session == NULL || strcmp(m->session, session) != 0)
        m->session = apr_pstrdup(c->pool, session);
    return m->thumbprint;
}

void *oauth2_conn_token_memo(request_rec *r, void *(*create)(void), apr_status_t (*release)(void *))
{
    conn_rec *c = r->connection;
    oauth2_conn_memo *m = conn_memo(c);
    if (m->token_memo == NULL) {
        m->token_memo = create();
        if (m->token_memo != NULL)
            apr_pool_cleanup_register(c->pool, m->token_memo, release, apr_pool_cleanup_null);
    }
    return m->token_memo;
}
