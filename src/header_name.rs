//! Header names as backends read them: CGI and WSGI map `X-Remote-User` and `X_Remote_User` to
//! one `HTTP_X_REMOTE_USER`; and the names that belong to the connection, not to a claim. Used by
//! the configuration (`authn_header`) and by what is passed to the backend (src/pass/).

/// RFC 9110 `token` characters, the only ones allowed in a header name.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether two header names are one name to a CGI or WSGI backend, which reads `X-Remote-User`
/// and `X_Remote_User` alike as `HTTP_X_REMOTE_USER` (letters in any case, `-` and `_` alike).
pub(crate) fn same_env_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| env_normal(x) == env_normal(y))
}

/// Request headers that frame the message or concern only the next hop (RFC 9110 sections 6.3,
/// 7.2, 7.6.1, 7.8, 10.1.1; RFC 9112 section 6): set from a claim they would make mod_proxy wait
/// for a body that never comes, or drop other headers. Read like [`same_env_name`], and every
/// `Proxy-*`.
pub(crate) fn is_reserved_header(name: &[u8]) -> bool {
    const RESERVED: [&[u8]; 11] = [
        b"Transfer-Encoding",
        b"Content-Length",
        b"Connection",
        b"Host",
        b"TE",
        b"Upgrade",
        b"Trailer",
        b"Expect",
        b"Keep-Alive",
        b"HTTP2-Settings",
        b"Proxy-",
    ];
    RESERVED.iter().any(|r| match r.last() {
        Some(b'-') => name.len() >= r.len() && same_env_name(&name[..r.len()], r),
        _ => same_env_name(name, r),
    })
}

/// A header name byte as a CGI environment has it: letters and digits upper-cased, the rest `_`.
pub(crate) fn env_normal(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_uppercase()
    } else {
        b'_'
    }
}
