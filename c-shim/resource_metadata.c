/* RFC 9728 protected-resource metadata: the quick handler that answers the metadata URL before
 * any access control (the document is public), and the accessors it needs. Rust decides whether
 * and what to answer (oauth2_rs_resource_metadata in src/entry.rs). oauth2_respond also answers
 * the metrics handler (c-shim/shim.c). */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"

#include <limits.h>

#include "shim.h"

static int oauth2_resource_metadata_quick(request_rec *r, int lookup_uri)
{
    int status;
    /* A look-up (for a sub-request) answers nothing, and a forward-proxy request is for another
     * server. */
    if (lookup_uri || r->proxyreq != PROXYREQ_NONE)
        return DECLINED;
    status = oauth2_rs_resource_metadata(r);
    if (status == HTTP_METHOD_NOT_ALLOWED)
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1); /* the Allow header of the 405 */
    return status;
}

void oauth2_resource_metadata_register_hooks(void)
{
    ap_hook_quick_handler(oauth2_resource_metadata_quick, NULL, NULL, APR_HOOK_MIDDLE);
}

int oauth2_server_is_virtual(server_rec *s)
{
    return s->is_virtual;
}

server_rec *oauth2_request_server(request_rec *r)
{
    return r->server;
}

const char *oauth2_request_path(request_rec *r)
{
    return r->parsed_uri.path;
}

/* ap_rwrite takes an int length: a longer text (none of ours comes near) is not written, -1. */
int oauth2_rwrite(request_rec *r, const char *buf, apr_size_t len)
{
    if (len > (apr_size_t)INT_MAX)
        return -1;
    return ap_rwrite(buf, (int)len, r);
}

/* 200 with `body`; content_type and cache_control are static strings. The body is passed down
 * the output filters now (they copy what they keep); a HEAD request gets the headers only. */
int oauth2_respond(request_rec *r, const char *content_type, const char *cache_control,
                   const char *body, apr_size_t len)
{
    if (len > (apr_size_t)INT_MAX)
        return HTTP_INTERNAL_SERVER_ERROR;
    ap_set_content_type(r, content_type);
    apr_table_setn(r->headers_out, "Cache-Control", cache_control);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        oauth2_rwrite(r, body, len);
    return OK;
}
