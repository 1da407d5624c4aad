//! The `htu` comparison of RFC 9449 section 4.3 (check 9): the proof's URI and the request URL
//! match after the RFC 3986 section 6.2.2 syntax-based and 6.2.3 scheme-based normalisations,
//! with query and fragment ignored on both sides. Dot-segments are not resolved (RFC 9449 only
//! asks for the normalisations above; a client that sends them gets no match).

use std::fmt;

use crate::request_url::RequestUrl;

/// Why a URI could not be brought to its normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HtuError {
    /// Not `http://` or `https://` (RFC 9449 section 4.2: the HTTP target URI).
    Scheme,
    /// No host, or a host with characters a URI cannot hold.
    Host,
    /// `user@` before the host: RFC 9110 section 4.2.4 forbids it in http(s) URIs.
    Userinfo,
    /// A port that is not a number from 0 to 65535.
    Port,
    /// A path that does not start with `/`, or with characters a URI cannot hold.
    Path,
    /// `%` not followed by two hex digits.
    PercentEncoding,
}

impl fmt::Display for HtuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HtuError::Scheme => "not an http or https URI",
            HtuError::Host => "missing or malformed host",
            HtuError::Userinfo => "userinfo is not allowed",
            HtuError::Port => "malformed port",
            HtuError::Path => "malformed path",
            HtuError::PercentEncoding => "malformed percent-encoding",
        })
    }
}

/// Normal form of an absolute http(s) URI: `scheme://host[:port]path`, query and fragment
/// dropped, scheme and host lowercase, the scheme's default port left out, percent-encoding
/// with uppercase hex and unreserved characters decoded, an empty path as `/`.
pub(crate) fn normalize(uri: &str) -> Result<String, HtuError> {
    let (scheme, rest) = uri.split_once("://").ok_or(HtuError::Scheme)?;
    let scheme = scheme_name(scheme)?;
    // The path ends at the query or fragment, whichever comes first (RFC 3986 section 3).
    let before_query = rest.find(['?', '#']).map_or(rest, |at| &rest[..at]);
    let (authority, path) = before_query
        .find('/')
        .map_or((before_query, ""), |at| before_query.split_at(at));
    if authority.contains('@') {
        return Err(HtuError::Userinfo);
    }
    let (host, port) = split_port(authority)?;
    let port = match port {
        // RFC 3986 section 6.2.3: an empty port is the default port.
        None | Some("") => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    assemble(scheme, host, port, path)
}

/// Normal form of the URL Apache received, for comparison with [`normalize`]'s.
pub(crate) fn request_url(url: &RequestUrl<'_>) -> Result<String, HtuError> {
    let scheme = scheme_name(url.scheme)?;
    // Apache may hand an IPv6 literal with or without its brackets.
    let bracketed;
    let host = if url.host.contains(':') && !url.host.starts_with('[') {
        bracketed = format!("[{}]", url.host);
        bracketed.as_str()
    } else {
        url.host
    };
    let path = url
        .path
        .find(['?', '#'])
        .map_or(url.path, |at| &url.path[..at]);
    assemble(scheme, host, Some(url.port), path)
}

fn scheme_name(scheme: &str) -> Result<&'static str, HtuError> {
    if scheme.eq_ignore_ascii_case("https") {
        Ok("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Ok("http")
    } else {
        Err(HtuError::Scheme)
    }
}

/// `host[:port]` -> host and the text after the port colon (outside an IPv6 literal).
fn split_port(authority: &str) -> Result<(&str, Option<&str>), HtuError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(HtuError::Host)?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or(HtuError::Host),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_port(digits: &str) -> Result<u16, HtuError> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HtuError::Port);
    }
    digits.parse().map_err(|_| HtuError::Port)
}

fn assemble(
    scheme: &'static str,
    host: &str,
    port: Option<u16>,
    path: &str,
) -> Result<String, HtuError> {
    let host = normalize_host(host)?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => percent_normalize(p, is_path_char, false)?,
        _ => return Err(HtuError::Path),
    };
    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 9);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(port) = port.filter(|p| *p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&path);
    Ok(out)
}

fn normalize_host(host: &str) -> Result<String, HtuError> {
    if host.is_empty() {
        return Err(HtuError::Host);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let literal = inner.strip_suffix(']').ok_or(HtuError::Host)?;
        // IPv6 (or IPvFuture) literal: hex digits, dots, colons, and a zone's "%25".
        let ok = |b: u8| b.is_ascii_alphanumeric() || b".:-_~%".contains(&b);
        if literal.is_empty() || !literal.bytes().all(ok) {
            return Err(HtuError::Host);
        }
        return Ok(format!("[{}]", percent_normalize(literal, |_| true, true)?));
    }
    percent_normalize(host, is_reg_name_char, true).map_err(|e| match e {
        HtuError::PercentEncoding => e,
        _ => HtuError::Host,
    })
}

/// RFC 3986 section 2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// RFC 3986 section 2.2.
fn is_sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

/// `reg-name` of RFC 3986 section 3.2.2, without `%` (handled by the caller).
fn is_reg_name_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b)
}

/// `pchar` and `/` of RFC 3986 section 3.3, without `%`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b":@/".contains(&b)
}

/// RFC 3986 sections 6.2.2.1 and 6.2.2.2: `%xx` gets uppercase hex, or becomes the character
/// itself when that is unreserved; `lower` lowercases everything else (a host). Any byte that
/// `allowed` refuses (space, controls, non-ASCII, `<`, ...) makes the URI invalid.
fn percent_normalize(s: &str, allowed: fn(u8) -> bool, lower: bool) -> Result<String, HtuError> {
    let mut out = String::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(crate::hex::digit_value);
            let lo = bytes.next().and_then(crate::hex::digit_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(HtuError::PercentEncoding);
            };
            let decoded = (hi << 4) | lo;
            if is_unreserved(decoded) {
                out.push(char::from(if lower {
                    decoded.to_ascii_lowercase()
                } else {
                    decoded
                }));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(hi)]));
                out.push(char::from(HEX_UPPER[usize::from(lo)]));
            }
        } else if allowed(b) {
            out.push(char::from(if lower { b.to_ascii_lowercase() } else { b }));
        } else {
            return Err(HtuError::Path);
        }
    }
    Ok(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    fn url<'a>(scheme: &'a str, host: &'a str, port: u16, path: &'a str) -> RequestUrl<'a> {
        RequestUrl {
            scheme,
            host,
            port,
            path,
        }
    }

    #[test]
    fn normal_forms() {
        for (uri, normal) in [
            ("https://rs.example/api", "https://rs.example/api"),
            ("HTTPS://RS.Example/api", "https://rs.example/api"),
            ("https://rs.example:443/api", "https://rs.example/api"),
            ("https://rs.example:/api", "https://rs.example/api"),
            ("http://rs.example:80/api", "http://rs.example/api"),
            ("http://rs.example:443/api", "http://rs.example:443/api"),
            ("https://rs.example:80/api", "https://rs.example:80/api"),
            (
                "https://rs.example:08443/api",
                "https://rs.example:8443/api",
            ),
            ("https://rs.example", "https://rs.example/"),
            ("https://rs.example?q=1", "https://rs.example/"),
            ("https://rs.example/api?q=1#frag", "https://rs.example/api"),
            ("https://rs.example/api#frag?x", "https://rs.example/api"),
            ("https://rs.example/a%2fb", "https://rs.example/a%2Fb"),
            (
                "https://rs.example/%7Euser/%61%2D",
                "https://rs.example/~user/a-",
            ),
            ("https://rs.example/A/b", "https://rs.example/A/b"),
            ("https://rs.example/a/../b", "https://rs.example/a/../b"),
            ("https://%52S.example/", "https://rs.example/"),
            ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
            ("https://rs.example/p;x=1/@:", "https://rs.example/p;x=1/@:"),
        ] {
            assert_eq!(normalize(uri).as_deref(), Ok(normal), "{uri}");
        }
    }

    #[test]
    fn malformed_uris() {
        for (uri, why) in [
            ("rs.example/api", HtuError::Scheme),
            ("ftp://rs.example/api", HtuError::Scheme),
            ("https:/rs.example/api", HtuError::Scheme),
            ("https:///api", HtuError::Host),
            ("https://user@rs.example/api", HtuError::Userinfo),
            ("https://rs.example:x/api", HtuError::Port),
            ("https://rs.example:65536/api", HtuError::Port),
            ("https://rs.example:123456/api", HtuError::Port),
            ("https://rs.example/a b", HtuError::Path),
            ("https://rs.example/\u{e9}", HtuError::Path),
            ("https://rs.example/a\nb", HtuError::Path),
            ("https://rs.example/a%2", HtuError::PercentEncoding),
            ("https://rs.example/a%zz", HtuError::PercentEncoding),
            ("https://rs ex/", HtuError::Host),
            ("https://[::1/", HtuError::Host),
            ("https://[::1]x/", HtuError::Host),
            ("https://[]/", HtuError::Host),
        ] {
            assert_eq!(normalize(uri), Err(why), "{uri}");
        }
    }

    #[test]
    fn request_urls() {
        assert_eq!(
            request_url(&url("https", "RS.example", 443, "/api")).as_deref(),
            Ok("https://rs.example/api")
        );
        assert_eq!(
            request_url(&url("http", "rs.example", 8080, "")).as_deref(),
            Ok("http://rs.example:8080/")
        );
        assert_eq!(
            request_url(&url("https", "::1", 443, "/%7e")).as_deref(),
            Ok("https://[::1]/~")
        );
        assert_eq!(
            request_url(&url("https", "[::1]", 8443, "/x?y")).as_deref(),
            Ok("https://[::1]:8443/x")
        );
        assert_eq!(
            request_url(&url("https", "rs.example", 443, "*")),
            Err(HtuError::Path)
        );
    }

    #[test]
    fn proof_and_request_meet_in_the_normal_form() {
        let request = request_url(&url("https", "rs.example", 443, "/api/%7Ealice/data"));
        for htu in [
            "https://rs.example/api/~alice/data",
            "HTTPS://RS.EXAMPLE:443/api/%7ealice/data?x=1",
            "https://rs.example:/api/%7Ealice/data#top",
        ] {
            assert_eq!(normalize(htu), request, "{htu}");
        }
        for htu in [
            "https://rs.example/API/~alice/data",
            "http://rs.example/api/~alice/data",
            "https://rs.example:8443/api/~alice/data",
            "https://rs.example/api/~alice/data/",
            "https://rs.example/api/%7Ealice%2Fdata",
        ] {
            assert_ne!(normalize(htu), request, "{htu}");
        }
    }
}
