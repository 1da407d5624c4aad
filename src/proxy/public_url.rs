//! The public URL a trusted proxy forwards, for comparing a DPoP proof's `htu` with what the
//! client actually requested: `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Port`, or
//! RFC 7239 `Forwarded`, whichever family the administrator says the proxy writes (never both:
//! a proxy that sets one family passes the client's headers of the other through untouched).
//! Only the element the proxy in front of us added is read: the last of a comma-separated list
//! (earlier ones come from hops we do not trust).

use std::ffi::CStr;

use crate::request_url::RequestUrl;

/// Which headers a trusted proxy writes the public URL in (`OAuth2TrustedProxy ... url_from=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum UrlFrom {
    /// `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port`: the default. Only for a proxy
    /// that sets all three (nginx with `proxy_set_header`): AWS ALB passes a client's
    /// `X-Forwarded-Host` through, HAProxy and Envoy write it only when configured to.
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded` (`proto=`, `host=`).
    Forwarded,
    /// None: Apache's own view of the URL (`ServerName`, `UseCanonicalName`) even behind the proxy.
    None,
}

impl UrlFrom {
    pub(crate) const NAMES: &'static str = "x-forwarded, forwarded or none";

    pub(crate) fn parse(name: &str) -> Option<UrlFrom> {
        Some(match name.to_ascii_lowercase().as_str() {
            "x-forwarded" => UrlFrom::XForwarded,
            "forwarded" => UrlFrom::Forwarded,
            "none" => UrlFrom::None,
            _ => return None,
        })
    }
}

/// `direct` (Apache's own view of the URL) with the scheme, host and port a trusted proxy
/// forwarded in the headers `from` names. `header` reads a request header. A value that is
/// malformed is ignored (the part stays Apache's), so a bad header can only make the `htu`
/// comparison fail, never pass.
pub(crate) fn public_url<'a>(
    direct: RequestUrl<'a>,
    from: UrlFrom,
    header: impl Fn(&CStr) -> Option<&'a str>,
) -> RequestUrl<'a> {
    let (proto, host, port) = match from {
        UrlFrom::None => return direct,
        UrlFrom::Forwarded => match header(c"Forwarded").and_then(last_element) {
            Some(element) => (param(element, "proto"), param(element, "host"), None),
            None => return direct,
        },
        UrlFrom::XForwarded => (
            header(c"X-Forwarded-Proto").and_then(last_element),
            header(c"X-Forwarded-Host").and_then(last_element),
            header(c"X-Forwarded-Port").and_then(last_element),
        ),
    };
    let forwarded_scheme = proto.and_then(|p| {
        ["https", "http"]
            .into_iter()
            .find(|s| p.eq_ignore_ascii_case(s))
    });
    let forwarded_host = host.and_then(split_host);
    let scheme = forwarded_scheme.unwrap_or(direct.scheme);
    let forwarded_port = port.and_then(port_number);
    let port = match (forwarded_host.and_then(|(_, p)| p), forwarded_port) {
        (Some(p), _) | (None, Some(p)) => p,
        // A forwarded scheme or host without a port: that scheme's default.
        (None, None) if forwarded_scheme.is_some() || forwarded_host.is_some() => {
            if scheme == "https" { 443 } else { 80 }
        }
        (None, None) => direct.port,
    };
    let host = forwarded_host.map_or(direct.host, |(h, _)| h);
    RequestUrl {
        scheme,
        host,
        port,
        path: direct.path,
    }
}

/// The last comma-separated element, trimmed; `None` when empty.
fn last_element(value: &str) -> Option<&str> {
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then_some(last)
}

/// A `name=value` parameter of one RFC 7239 element (`;`-separated), unquoted. A quoted value
/// with escapes is not a valid scheme or host, so it is not unescaped: it is ignored.
fn param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => value,
        };
        (!value.is_empty() && !value.contains(['"', '\\'])).then_some(value)
    })
}

/// `host[:port]` (IPv6 literals in brackets) with only characters a URI host can hold.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let (host, rest) = value.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(port_number(rest.strip_prefix(':')?)?)),
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port_number(port)?)),
            None => (value, None),
        }
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~[]:%".contains(&b);
    (!host.is_empty() && host.bytes().all(allowed)).then_some((host, port))
}

fn port_number(digits: &str) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECT: RequestUrl<'static> = RequestUrl {
        scheme: "http",
        host: "backend.internal",
        port: 8080,
        path: "/api/x",
    };

    fn with(headers: &[(&'static str, &'static str)]) -> RequestUrl<'static> {
        from(UrlFrom::XForwarded, headers)
    }

    fn from(family: UrlFrom, headers: &[(&'static str, &'static str)]) -> RequestUrl<'static> {
        let headers = headers.to_vec();
        public_url(DIRECT, family, move |name: &CStr| {
            let name = name.to_str().ok()?;
            headers
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }

    fn parts(u: RequestUrl<'_>) -> (String, String, u16, String) {
        (u.scheme.into(), u.host.into(), u.port, u.path.into())
    }

    fn url(scheme: &str, host: &str, port: u16) -> (String, String, u16, String) {
        (scheme.into(), host.into(), port, "/api/x".into())
    }

    #[test]
    fn nothing_forwarded_is_apaches_view() {
        assert_eq!(parts(with(&[])), url("http", "backend.internal", 8080));
    }

    #[test]
    fn x_forwarded_headers() {
        assert_eq!(
            parts(with(&[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "api.example.com")
            ])),
            url("https", "api.example.com", 443)
        );
        assert_eq!(
            parts(with(&[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "api.example.com"),
                ("X-Forwarded-Port", "8443")
            ])),
            url("https", "api.example.com", 8443)
        );
        // The host's own port wins over X-Forwarded-Port.
        assert_eq!(
            parts(with(&[
                ("X-Forwarded-Host", "api.example.com:9443"),
                ("X-Forwarded-Port", "1")
            ])),
            url("http", "api.example.com", 9443)
        );
        // Lists: the last element is the one our peer added.
        assert_eq!(
            parts(with(&[
                ("X-Forwarded-Proto", "http, https"),
                ("X-Forwarded-Host", "evil.example, api.example.com")
            ])),
            url("https", "api.example.com", 443)
        );
    }

    #[test]
    fn rfc7239_forwarded_when_configured_and_never_mixed() {
        let both = [
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "other.example"),
            ("X-Forwarded-Port", "9999"),
            (
                "Forwarded",
                "for=192.0.2.1;proto=http, for=198.51.100.7;proto=https;host=\"api.example.com:8443\"",
            ),
        ];
        assert_eq!(
            parts(from(UrlFrom::Forwarded, &both)),
            url("https", "api.example.com", 8443)
        );
        // The other family is what a client could have sent through the proxy: never read.
        assert_eq!(
            parts(from(UrlFrom::XForwarded, &both)),
            url("http", "other.example", 9999)
        );
        assert_eq!(
            parts(from(
                UrlFrom::Forwarded,
                &[("X-Forwarded-Host", "x.example")]
            )),
            url("http", "backend.internal", 8080)
        );
        assert_eq!(
            parts(from(
                UrlFrom::Forwarded,
                &[
                    (
                        "Forwarded",
                        "For=\"[2001:db8::1]\";Proto=HTTPS;Host=[2001:db8::5]"
                    ),
                    ("X-Forwarded-Port", "1")
                ]
            )),
            url("https", "[2001:db8::5]", 443)
        );
        assert_eq!(
            parts(from(UrlFrom::None, &both)),
            url("http", "backend.internal", 8080)
        );
        for bad in ["host=\"a\\\"b\"", "host=", "proto=ftp", "host=a/b"] {
            assert_eq!(
                parts(from(UrlFrom::Forwarded, &[("Forwarded", bad)])),
                url("http", "backend.internal", 8080),
                "{bad}"
            );
        }
    }

    #[test]
    fn family_names() {
        assert_eq!(UrlFrom::parse("X-Forwarded"), Some(UrlFrom::XForwarded));
        assert_eq!(UrlFrom::parse("forwarded"), Some(UrlFrom::Forwarded));
        assert_eq!(UrlFrom::parse("none"), Some(UrlFrom::None));
        assert_eq!(UrlFrom::parse("rfc7239"), None);
    }

    #[test]
    fn malformed_parts_are_ignored() {
        for bad in [
            &[("X-Forwarded-Proto", "ftp")][..],
            &[("X-Forwarded-Host", "a b")],
            &[("X-Forwarded-Host", "a/b")],
            &[("X-Forwarded-Host", "a@b")],
            &[("X-Forwarded-Host", "host:99999")],
            &[("X-Forwarded-Port", "-1")],
            &[("X-Forwarded-Host", ", ")],
        ] {
            assert_eq!(
                parts(with(bad)),
                url("http", "backend.internal", 8080),
                "{bad:?}"
            );
        }
    }
}
