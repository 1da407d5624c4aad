//! Strict absolute `http(s)` URLs for configuration values that are published as written (RFC
//! 9728 section 3.3: the `resource` value must be identical to the identifier): only the
//! characters RFC 3986 allows, a host, an optional port, no user information, no dot segments.
//! What passes can go into a JSON string and a quoted `WWW-Authenticate` parameter unchanged:
//! no space, control character, `"` or `\` is left.

use std::fmt;

/// Longest URL accepted: real identifiers and issuer URLs are a fraction of this.
pub(crate) const MAX_URL_LEN: usize = 2048;

/// Why a configured URL is refused; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlError {
    /// Not `https://` where only https is allowed.
    NotHttps,
    /// Neither `https://` nor `http://`.
    NotHttp,
    NoHost,
    /// `user[:password]@` before the host.
    UserInfo,
    BadPort,
    /// A `#fragment`.
    Fragment,
    /// A `?query` where none is allowed (an issuer identifier, RFC 8414 section 2).
    Query,
    /// A character RFC 3986 does not allow in a URL (also any non-ASCII character).
    Character(char),
    /// `%` not followed by two hexadecimal digits.
    BadPercent,
    /// A `.` or `..` path segment: clients remove them before requesting (RFC 3986 section
    /// 5.2.4), so the URL as written would never be asked for.
    DotSegment,
    TooLong,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotHttps => f.write_str("must be an https:// URL, e.g. https://api.example.com/v1"),
            UrlError::NotHttp => {
                f.write_str("must be an https:// or http:// URL, e.g. https://docs.example.com/api")
            }
            UrlError::NoHost => f.write_str("has no host: write https://<host>[:<port>][/<path>]"),
            UrlError::UserInfo => f.write_str(
                "must not contain user information (user@ or user:password@): write https://<host>[/<path>]",
            ),
            UrlError::BadPort => f.write_str(
                "has a bad port: write a number from 1 to 65535 after the host's colon, or no colon",
            ),
            UrlError::Fragment => f.write_str("must not contain a fragment (#...): remove it"),
            UrlError::Query => f.write_str(
                "must not contain a query (?...): remove it, an issuer identifier has none (RFC 8414 section 2)",
            ),
            UrlError::Character(c) => write!(
                f,
                "contains {c:?}, which a URL cannot contain: percent-encode it (RFC 3986 section 2.1)"
            ),
            UrlError::BadPercent => f.write_str(
                "has a % not followed by two hexadecimal digits: write %25 for a literal %",
            ),
            UrlError::DotSegment => f.write_str(
                "has a \".\" or \"..\" path segment, which clients remove before they request a URL: write the path without it",
            ),
            UrlError::TooLong => write!(f, "is longer than {MAX_URL_LEN} bytes"),
        }
    }
}

/// Which schemes a URL may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schemes {
    HttpsOnly,
    HttpOrHttps,
}

/// What may follow the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub(crate) query: bool,
    pub(crate) fragment: bool,
}

/// A URL that passed [`parse`], as written, with where its parts start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    text: String,
    /// Where the path starts (the end of `scheme://authority`).
    path_start: usize,
    /// Where the path ends (`?`, `#` or the end).
    path_end: usize,
}

impl Url {
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// `scheme://authority`.
    pub(crate) fn origin(&self) -> &str {
        &self.text[..self.path_start]
    }

    /// The path as written: empty, or starting with `/`.
    pub(crate) fn path(&self) -> &str {
        &self.text[self.path_start..self.path_end]
    }

    /// `?query` (with its `?`), or empty.
    pub(crate) fn query(&self) -> &str {
        let rest = &self.text[self.path_end..];
        rest.find('#').map_or(rest, |end| &rest[..end])
    }
}

/// Parses `text` as an absolute URL of `schemes`, strictly (module comment).
pub(crate) fn parse(text: &str, schemes: Schemes, allowed: Allowed) -> Result<Url, UrlError> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    check_characters(text)?;
    let scheme_end = text.find("://").unwrap_or(0);
    let scheme = &text[..scheme_end];
    let scheme_ok = scheme.eq_ignore_ascii_case("https")
        || (schemes == Schemes::HttpOrHttps && scheme.eq_ignore_ascii_case("http"));
    if !scheme_ok {
        return Err(match schemes {
            Schemes::HttpsOnly => UrlError::NotHttps,
            Schemes::HttpOrHttps => UrlError::NotHttp,
        });
    }
    let authority_start = scheme_end + 3;
    let path_start = text[authority_start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| authority_start + i);
    check_authority(&text[authority_start..path_start])?;
    let path_end = text[path_start..]
        .find(['?', '#'])
        .map_or(text.len(), |i| path_start + i);
    let path = &text[path_start..path_end];
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(UrlError::DotSegment);
    }
    let rest = &text[path_end..];
    if let Some(at) = rest.find('#') {
        if !allowed.fragment {
            return Err(UrlError::Fragment);
        }
        // RFC 3986 section 3.5: no second `#`.
        if rest[at + 1..].contains('#') {
            return Err(UrlError::Character('#'));
        }
    }
    if rest.starts_with('?') && !allowed.query {
        return Err(UrlError::Query);
    }
    Ok(Url {
        text: text.to_string(),
        path_start,
        path_end,
    })
}

/// Only the characters of RFC 3986 section 2 (unreserved, reserved, `%` with two hex digits).
fn check_characters(text: &str) -> Result<(), UrlError> {
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let allowed = c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
        if !allowed {
            return Err(UrlError::Character(c));
        }
        if c == '%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(UrlError::BadPercent);
        }
    }
    Ok(())
}

/// `host[:port]`: a registered name or IPv4 address, or an IP literal in brackets.
fn check_authority(authority: &str) -> Result<(), UrlError> {
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        let end = literal.find(']').ok_or(UrlError::Character('['))?;
        let inside = &literal[..end];
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(UrlError::NoHost);
        }
        (&authority[..end + 2], &literal[end + 1..])
    } else {
        match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if let Some(c) = host
        .chars()
        .find(|c| !host.starts_with('[') && "[]:".contains(*c))
    {
        return Err(UrlError::Character(c));
    }
    if port.is_empty() {
        return Ok(());
    }
    let digits = port.strip_prefix(':').ok_or(UrlError::BadPort)?;
    match digits.parse::<u16>() {
        Ok(n) if n > 0 && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(UrlError::BadPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Allowed = Allowed {
        query: true,
        fragment: true,
    };
    const BARE: Allowed = Allowed {
        query: false,
        fragment: false,
    };

    fn https(text: &str) -> Result<Url, UrlError> {
        parse(text, Schemes::HttpsOnly, ANY)
    }

    #[test]
    fn parts_are_kept_as_written() {
        let u = https("HTTPS://API.example.com:8443/v1/items?tenant=a").unwrap();
        assert_eq!(u.as_str(), "HTTPS://API.example.com:8443/v1/items?tenant=a");
        assert_eq!(u.origin(), "HTTPS://API.example.com:8443");
        assert_eq!(u.path(), "/v1/items");
        assert_eq!(u.query(), "?tenant=a");
        let u = https("https://h").unwrap();
        assert_eq!((u.origin(), u.path(), u.query()), ("https://h", "", ""));
        let u = https("https://h?x=1#f").unwrap();
        assert_eq!((u.origin(), u.path(), u.query()), ("https://h", "", "?x=1"));
        let u = https("https://[::1]:8443/a%20b").unwrap();
        assert_eq!((u.origin(), u.path()), ("https://[::1]:8443", "/a%20b"));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let cases: &[(&str, UrlError)] = &[
            ("http://h/v1", UrlError::NotHttps),
            ("h/v1", UrlError::NotHttps),
            ("://h", UrlError::NotHttps),
            ("https://", UrlError::NoHost),
            ("https:///v1", UrlError::NoHost),
            ("https://:443/v1", UrlError::NoHost),
            ("https://[]/", UrlError::NoHost),
            ("https://user:pw@h/v1", UrlError::UserInfo),
            ("https://h:0/", UrlError::BadPort),
            ("https://h:65536/", UrlError::BadPort),
            ("https://h:/", UrlError::BadPort),
            ("https://h:+443/", UrlError::BadPort),
            ("https://h:443:1/", UrlError::BadPort),
            ("https://h/a b", UrlError::Character(' ')),
            ("https://h/a\"b", UrlError::Character('"')),
            ("https://h/a\\b", UrlError::Character('\\')),
            ("https://h/a\r\nX: y", UrlError::Character('\r')),
            ("https://h/\u{e9}", UrlError::Character('\u{e9}')),
            ("https://h/a<b>", UrlError::Character('<')),
            ("https://h/%zz", UrlError::BadPercent),
            ("https://h/%4", UrlError::BadPercent),
            ("https://h/a/../b", UrlError::DotSegment),
            ("https://h/./b", UrlError::DotSegment),
            ("https://h/a/..", UrlError::DotSegment),
            ("https://h#a#b", UrlError::Character('#')),
            ("https://h[1]/", UrlError::Character('[')),
        ];
        for (text, want) in cases {
            assert_eq!(https(text).as_ref(), Err(want), "{text}");
        }
        let long = format!("https://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(https(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn query_and_fragment_only_where_allowed() {
        assert_eq!(
            parse("https://h/a?b", Schemes::HttpsOnly, BARE),
            Err(UrlError::Query)
        );
        assert_eq!(
            parse("https://h/a#b", Schemes::HttpsOnly, BARE),
            Err(UrlError::Fragment)
        );
        assert_eq!(
            parse(
                "https://h/a?b#c",
                Schemes::HttpsOnly,
                Allowed {
                    query: true,
                    fragment: false
                }
            ),
            Err(UrlError::Fragment)
        );
        assert!(parse("https://h/a.b/..c/...", Schemes::HttpsOnly, BARE).is_ok());
    }

    #[test]
    fn http_only_where_allowed() {
        assert!(parse("http://docs.example.com/", Schemes::HttpOrHttps, ANY).is_ok());
        assert_eq!(
            parse("ftp://docs.example.com/", Schemes::HttpOrHttps, ANY),
            Err(UrlError::NotHttp)
        );
    }

    #[test]
    fn every_message_says_what_to_do() {
        for e in [
            UrlError::NotHttps,
            UrlError::NotHttp,
            UrlError::NoHost,
            UrlError::UserInfo,
            UrlError::BadPort,
            UrlError::Fragment,
            UrlError::Query,
            UrlError::Character(' '),
            UrlError::BadPercent,
            UrlError::DotSegment,
        ] {
            let m = e.to_string();
            assert!(
                ["write", "remove", "percent-encode", "e.g."]
                    .iter()
                    .any(|w| m.contains(w)),
                "{m}"
            );
        }
    }
}
