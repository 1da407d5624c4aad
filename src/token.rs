//! Where the access token comes from (`OAuth2AcceptTokenIn`): the configured methods
//! are tried in the fixed order environment, header, query, post, cookie, basic; the first that has
//! a token wins. Finding a token also yields how to strip it from what the backend receives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::borrow::Cow;
use std::ffi::{CStr, CString};

use crate::config::sources::{Method, Strip, TokenSources};

/// Form bodies larger than this are not searched for a token (the C module's bound).
pub(crate) const MAX_FORM_BODY: usize = 1024 * 1024;

/// Read access to the parts of a request that can carry a token.
pub(crate) trait TokenSource {
    fn header(&self, name: &CStr) -> Option<&str>;
    /// Every value of the request header `name` and of each header a backend reads as that same
    /// name (letters in any case, `-` and `_` alike: `X_Token` for `X-Token`), one per occurrence
    /// (httpd folds a name given twice into one value, joined by `, `).
    fn header_values(&self, name: &CStr) -> Vec<&[u8]>;
    fn env(&self, name: &CStr) -> Option<&str>;
    /// The request method, e.g. `POST`.
    fn method(&self) -> &str;
    /// The query string (without `?`), as received.
    fn query(&self) -> Option<&str>;
    /// The request body, read and kept so the backend still receives it; `None` if it is larger
    /// than `limit` or cannot be read.
    fn form_body(&self, limit: usize) -> Option<&[u8]>;
}

/// How to remove the token from the request before it goes to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StripAction {
    UnsetEnv(CString),
    UnsetHeader(CString),
    /// The query string without the token parameter (empty: no query string).
    SetQuery(String),
    /// The `Cookie` header without the token cookie (empty: remove the header).
    SetCookie(String),
    /// The form body without the token field.
    SetBody(Vec<u8>),
}

#[derive(PartialEq, Eq)]
pub(crate) struct Found<'a> {
    pub(crate) token: Cow<'a, str>,
    pub(crate) method: Method,
    pub(crate) strip: Option<StripAction>,
    /// Sent as `Authorization: DPoP <token>` (RFC 9449 section 7.1), not as a bearer token.
    pub(crate) dpop_scheme: bool,
}

impl std::fmt::Debug for Found<'_> {
    // A token never reaches a log line, also not through a `{:?}` written later; unit tests
    // show it, to say which one they got.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let length = format!("({} bytes)", self.token.len());
        let token: &str = if cfg!(test) { &self.token } else { &length };
        f.debug_struct("Found")
            .field("token", &token)
            .field("method", &self.method)
            .field("strip", &self.strip)
            .field("dpop_scheme", &self.dpop_scheme)
            .finish()
    }
}

pub(crate) fn find<'a>(sources: &TokenSources, req: &'a impl TokenSource) -> Option<Found<'a>> {
    Method::ORDER
        .into_iter()
        .filter(|m| sources.accepts(*m))
        .find_map(|m| from_method(sources, req, m))
}

/// `Authorization: DPoP <token>`, which a location with a `type=dpop` verifier takes before the
/// configured sources (no `OAuth2AcceptTokenIn` line needed).
pub(crate) fn find_dpop<'a>(
    sources: &TokenSources,
    req: &'a impl TokenSource,
) -> Option<Found<'a>> {
    let token = single_header_token(req, c"Authorization", "DPoP")?;
    Some(Found {
        token: Cow::Borrowed(token),
        method: Method::Header,
        strip: (sources.strip == Strip::On)
            .then(|| StripAction::UnsetHeader(c"Authorization".into())),
        dpop_scheme: true,
    })
}

/// The header in which an AWS Application Load Balancer passes the token it signed.
pub(crate) const ALB_HEADER: &std::ffi::CStr = c"x-amzn-oidc-data";

/// `x-amzn-oidc-data: <token>` (the whole value), which a location with an `aws_alb` verifier
/// takes before the configured sources (no `OAuth2AcceptTokenIn` line needed).
pub(crate) fn find_alb<'a>(sources: &TokenSources, req: &'a impl TokenSource) -> Option<Found<'a>> {
    Some(Found {
        token: Cow::Borrowed(single_header_token(req, ALB_HEADER, "")?),
        method: Method::Header,
        strip: (sources.strip == Strip::On).then(|| StripAction::UnsetHeader(ALB_HEADER.into())),
        dpop_scheme: false,
    })
}

fn from_method<'a>(
    s: &TokenSources,
    req: &'a impl TokenSource,
    method: Method,
) -> Option<Found<'a>> {
    let strip_all = s.strip == Strip::On;
    let (token, strip) = match method {
        Method::Environment => {
            let t = req.env(&s.env_name)?;
            // Removing the variable is what the C module's default strip effectively did.
            let strip = (s.strip != Strip::Off).then(|| StripAction::UnsetEnv(s.env_name.clone()));
            (Cow::Borrowed(t), strip)
        }
        Method::Header => {
            let t = single_header_token(req, &s.header_name, &s.header_type)?;
            (
                Cow::Borrowed(t),
                strip_all.then(|| StripAction::UnsetHeader(s.header_name.clone())),
            )
        }
        Method::Query => {
            let (t, rest) = take_pair(req.query()?.as_bytes(), b'&', &s.query_name)?;
            // The query is a `str` and only whole pairs are removed: still UTF-8.
            let rest = String::from_utf8(rest).unwrap_or_default();
            (
                Cow::Owned(t),
                strip_all.then_some(StripAction::SetQuery(rest)),
            )
        }
        Method::Post => {
            if !is_form_post(req) {
                return None;
            }
            let (t, rest) = take_pair(req.form_body(MAX_FORM_BODY)?, b'&', &s.post_name)?;
            (
                Cow::Owned(t),
                strip_all.then_some(StripAction::SetBody(rest)),
            )
        }
        Method::Cookie => {
            let (t, rest) = take_cookie(req.header(c"Cookie")?, &s.cookie_name)?;
            (
                Cow::Owned(t),
                strip_all.then_some(StripAction::SetCookie(rest)),
            )
        }
        Method::Basic => {
            let t = basic_token(req.header(c"Authorization")?)?;
            (
                Cow::Owned(t),
                strip_all.then(|| StripAction::UnsetHeader(c"Authorization".into())),
            )
        }
    };
    let dpop_scheme = method == Method::Header
        && s.header_type.eq_ignore_ascii_case("DPoP")
        && s.header_name
            .as_bytes()
            .eq_ignore_ascii_case(b"Authorization");
    Some(Found {
        token,
        method,
        strip,
        dpop_scheme,
    })
}

/// The token in header `name` ([`header_token`]) when every occurrence of the header and of its
/// look-alike spellings ([`TokenSource::header_values`]) carries that same token; `None` when one
/// carries another token or none: the module would verify one, and which one a backend reads
/// (`X_Token` for `X-Token` in WSGI, the first or the last of two) is not ours to guess. With a
/// scheme, a value is read as a comma-separated list (how httpd folds a repeated header; a
/// token68 has no comma); without one, the whole value is the token, so a folded `a, b` is
/// verified as it is (and fails).
fn single_header_token<'a>(
    req: &'a impl TokenSource,
    name: &CStr,
    scheme: &str,
) -> Option<&'a str> {
    let mut found: Option<&'a str> = None;
    let mut one_token = |t: &'a str| match found {
        Some(first) => first == t,
        None => {
            found = Some(t);
            true
        }
    };
    for value in req.header_values(name) {
        // Not text: a value a backend may still read, so not one to leave beside the token.
        let value = std::str::from_utf8(value).ok()?;
        if scheme.is_empty() {
            if !one_token(value) {
                return None;
            }
            continue;
        }
        for element in value.split(',') {
            if !one_token(header_token(element.trim_matches([' ', '\t']), scheme)?) {
                return None;
            }
        }
    }
    found
}

/// `<type> <token>`: scheme compared case-insensitively, one or more spaces, the rest of the line
/// is the token (trailing junk kept, so it fails verification). An empty type takes the whole value.
fn header_token<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    if scheme.is_empty() {
        return Some(value);
    }
    // Apache trims trailing spaces, so `Bearer ` arrives as `Bearer`: an empty token (then
    // invalid_token, as in the C module), not a missing one.
    if value.eq_ignore_ascii_case(scheme) {
        return Some("");
    }
    // Bytes, not a char search: this runs on every request and the space is a few bytes in.
    let space = value.bytes().position(|b| b == b' ')?;
    let (given, rest) = (&value[..space], &value[space + 1..]);
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| rest.trim_start_matches(' '))
}

/// `Authorization: Basic base64(user:token)`: the token is what follows the first `:`.
fn basic_token(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, token)| token.to_string())
}

/// POST with `Content-Type: application/x-www-form-urlencoded`, parameters such as
/// `; charset=utf-8` allowed.
fn is_form_post(req: &impl TokenSource) -> bool {
    const FORM: &str = "application/x-www-form-urlencoded";
    if req.method() != "POST" {
        return false;
    }
    let Some(ct) = req.header(c"Content-Type") else {
        return false;
    };
    let ct = ct.trim_start();
    // `get`: the client's header may have a multi-byte character where the type ends (fuzz/).
    ct.get(..FORM.len())
        .is_some_and(|t| t.eq_ignore_ascii_case(FORM))
        && ct[FORM.len()..]
            .trim_start()
            .chars()
            .next()
            .is_none_or(|c| c == ';')
}

/// The decoded value of the `name=value` pair, and the raw bytes without that pair (as
/// received: a body that is not UTF-8 must reach the backend unchanged). `None` when the name is
/// there twice with different values (RFC 6750 section 3.1): which one a backend reads is not
/// ours to guess. The same value twice is one token, and `rest` has neither.
fn take_pair(raw: &[u8], sep: u8, name: &str) -> Option<(String, Vec<u8>)> {
    let mut found = None;
    let mut rest: Vec<&[u8]> = Vec::new();
    for pair in raw.split(|b| *b == sep) {
        if let Some((k, v)) = form_urlencoded::parse(pair).next() {
            if k == name {
                match &found {
                    Some(first) if *first != v => return None,
                    Some(_) => {}
                    None => found = Some(v.into_owned()),
                }
                continue;
            }
        }
        if !pair.is_empty() {
            rest.push(pair);
        }
    }
    found.map(|t| (t, rest.join(&sep)))
}

/// The URL-decoded value of the cookie called `name`, and the header without it. `None` when
/// there are two with different values: which one a backend reads is not ours to guess.
fn take_cookie(header: &str, name: &str) -> Option<(String, String)> {
    let mut found = None;
    let mut rest = Vec::new();
    for c in header.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        if let Some((k, v)) = c.split_once('=') {
            if k.trim() == name {
                let v = percent_decode(v.trim());
                match &found {
                    Some(first) if *first != v => return None,
                    Some(_) => {}
                    None => found = Some(v),
                }
                continue;
            }
        }
        rest.push(c);
    }
    found.map(|t| (t, rest.join("; ")))
}

/// %XX decoding (cookies keep `+` as it is, unlike form data).
fn percent_decode(s: &str) -> String {
    let escaped = s.replace('+', "%2B");
    form_urlencoded::parse(format!("v={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        headers: HashMap<&'static str, &'static str>,
        /// More occurrences, beside `headers`: another spelling, the same name again, bytes that
        /// are not UTF-8.
        more_headers: Vec<(&'static str, &'static [u8])>,
        env: HashMap<&'static str, &'static str>,
        method: &'static str,
        query: Option<&'static str>,
        body: Option<&'static [u8]>,
    }
    impl TokenSource for Fake {
        fn header(&self, name: &CStr) -> Option<&str> {
            let n = name.to_str().ok()?;
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
        }
        fn header_values(&self, name: &CStr) -> Vec<&[u8]> {
            let n = name.to_bytes();
            self.headers
                .iter()
                .map(|(k, v)| (*k, v.as_bytes()))
                .chain(self.more_headers.iter().copied())
                .filter(|(k, _)| crate::header_name::same_env_name(k.as_bytes(), n))
                .map(|(_, v)| v)
                .collect()
        }
        fn env(&self, name: &CStr) -> Option<&str> {
            self.env.get(name.to_str().ok()?).copied()
        }
        fn method(&self) -> &str {
            if self.method.is_empty() {
                "GET"
            } else {
                self.method
            }
        }
        fn query(&self) -> Option<&str> {
            self.query
        }
        fn form_body(&self, limit: usize) -> Option<&[u8]> {
            self.body.filter(|b| b.len() <= limit)
        }
    }

    fn with_header(name: &'static str, value: &'static str) -> Fake {
        let mut f = Fake::default();
        f.headers.insert(name, value);
        f
    }

    fn sources(lines: &[(&str, &str)]) -> TokenSources {
        let mut s: Option<TokenSources> = None;
        for (m, o) in lines {
            s = Some(TokenSources::add(s.as_ref(), m, Some(o)).unwrap());
        }
        s.unwrap_or_default()
    }

    fn token(s: &TokenSources, f: &Fake) -> Option<String> {
        find(s, f).map(|x| x.token.into_owned())
    }

    #[test]
    fn alb_header_is_the_whole_value_and_stripped_only_when_asked() {
        let f = with_header("X-Amzn-Oidc-Data", "a.b=.c==");
        let found = find_alb(&TokenSources::default(), &f).unwrap();
        assert_eq!(found.token, "a.b=.c==");
        assert_eq!(found.strip, None);
        assert!(!found.dpop_scheme);
        let on = sources(&[("header", "strip=on")]);
        assert_eq!(
            find_alb(&on, &f).unwrap().strip,
            Some(StripAction::UnsetHeader(ALB_HEADER.into()))
        );
        assert!(find_alb(&on, &with_header("Authorization", "Bearer x")).is_none());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let d = TokenSources::default();
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEARER abc",
            "Bearer   abc",
        ] {
            assert_eq!(
                token(&d, &with_header("Authorization", v)).as_deref(),
                Some("abc"),
                "{v}"
            );
        }
    }

    #[test]
    fn other_schemes_tabs_and_bare_scheme_are_not_tokens() {
        let d = TokenSources::default();
        for v in ["Basic xyz", "Bearer\tabc", "Bearerx abc"] {
            assert_eq!(token(&d, &with_header("Authorization", v)), None, "{v}");
        }
        for v in ["Bearer ", "Bearer", "bearer"] {
            assert_eq!(
                token(&d, &with_header("Authorization", v)).as_deref(),
                Some(""),
                "{v}"
            );
        }
    }

    #[test]
    fn environment_comes_first_and_is_stripped_by_default() {
        let mut f = with_header("Authorization", "Bearer fromheader");
        f.env.insert("access_token", "fromenv");
        let found = find(&TokenSources::default(), &f).unwrap();
        assert_eq!(found.token, "fromenv");
        assert_eq!(
            found.strip,
            Some(StripAction::UnsetEnv(c"access_token".into()))
        );
        let off = sources(&[("environment", "strip=off")]);
        assert_eq!(find(&off, &f).unwrap().strip, None);
    }

    #[test]
    fn header_is_kept_unless_strip_is_on() {
        let f = with_header("Authorization", "Bearer abc");
        assert_eq!(find(&TokenSources::default(), &f).unwrap().strip, None);
        let on = sources(&[("header", "strip=on")]);
        assert_eq!(
            find(&on, &f).unwrap().strip,
            Some(StripAction::UnsetHeader(c"Authorization".into()))
        );
    }

    #[test]
    fn custom_header_and_type() {
        let s = sources(&[("header", "name=X-Token&type=")]);
        assert_eq!(
            token(&s, &with_header("X-Token", "raw.token")).as_deref(),
            Some("raw.token")
        );
        let s = sources(&[("header", "type=DPoP")]);
        assert_eq!(
            token(&s, &with_header("Authorization", "dpop t1")).as_deref(),
            Some("t1")
        );
        assert_eq!(token(&s, &with_header("Authorization", "Bearer t1")), None);
    }

    /// A token header given twice, or once more in a spelling a backend reads as the same name
    /// (`X_Token` for `X-Token` in CGI and WSGI): the module would verify one and leave the other,
    /// never verified, to a backend that may read that one, with `strip=on` as the only one.
    #[test]
    fn a_token_header_given_twice_or_in_a_look_alike_spelling_is_no_token() {
        let x = sources(&[("header", "name=X-Token&type=&strip=on")]);
        let mut f = with_header("X-Token", "good");
        for (name, value) in [
            ("X_Token", b"forged".as_slice()),
            ("x_TOKEN", b"forged"),
            ("X-Token", b"forged"),
            ("X_Token", b""),
            ("X_Token", b"go\xf6d"),
        ] {
            f.more_headers = vec![(name, value)];
            assert_eq!(find(&x, &f), None, "{name}: {value:?}");
        }
        // The same token in both spellings is one token, and strip=on names the header (the
        // request removes every spelling of it).
        f.more_headers = vec![("X_TOKEN", b"good")];
        let found = find(&x, &f).unwrap();
        assert_eq!(found.token, "good");
        assert_eq!(
            found.strip,
            Some(StripAction::UnsetHeader(c"X-Token".into()))
        );
        // Other names are other headers.
        f.more_headers = vec![("X-Tokens", b"forged"), ("XToken", b"forged")];
        assert_eq!(token(&x, &f).as_deref(), Some("good"));
        // Without a scheme the whole value is the token: a folded `a, b` is verified as it is.
        let folded = with_header("X-Token", "good, forged");
        assert_eq!(token(&x, &folded).as_deref(), Some("good, forged"));

        // With a scheme, httpd's folding of a repeated header is a list of credentials.
        let d = TokenSources::default();
        for v in [
            "Bearer good, Bearer forged",
            "Bearer good,Bearer forged",
            "Bearer good, Basic Zm9vOmJhcg==",
            "Bearer good, forged",
            "Bearer good,",
            "Bearer good, Bearer",
        ] {
            assert_eq!(find(&d, &with_header("Authorization", v)), None, "{v}");
        }
        for v in ["Bearer good, bearer good", "Bearer good ,  Bearer  good"] {
            assert_eq!(
                token(&d, &with_header("Authorization", v)).as_deref(),
                Some("good"),
                "{v}"
            );
        }
        let mut f = with_header("X-Token", "Bearer good");
        f.more_headers = vec![("X_Token", b"Bearer forged")];
        let xb = sources(&[("header", "name=X-Token")]);
        assert_eq!(find(&xb, &f), None);
        f.more_headers = vec![("x_token", b"bearer good")];
        assert_eq!(token(&xb, &f).as_deref(), Some("good"));

        // The same for DPoP and the ALB header, which are read before the configured sources.
        let folded = with_header("Authorization", "DPoP good, DPoP forged");
        assert_eq!(find_dpop(&d, &folded), None);
        let twice = with_header("Authorization", "DPoP good, dpop good");
        assert_eq!(find_dpop(&d, &twice).unwrap().token, "good");
        let mut alb = with_header("X-Amzn-Oidc-Data", "good");
        alb.more_headers = vec![("x_amzn_oidc_data", b"forged")];
        assert_eq!(find_alb(&d, &alb), None);
        alb.more_headers = vec![("x_amzn_oidc_data", b"good")];
        assert_eq!(find_alb(&d, &alb).unwrap().token, "good");
    }

    #[test]
    fn query_is_decoded_and_stripped_precisely() {
        let s = sources(&[("query", "strip=on")]);
        let f = Fake {
            query: Some("a=1&access_token=x%2Ey&b=2"),
            ..Default::default()
        };
        let found = find(&s, &f).unwrap();
        assert_eq!(found.token, "x.y");
        assert_eq!(found.strip, Some(StripAction::SetQuery("a=1&b=2".into())));
        let d = sources(&[("query", "")]);
        assert_eq!(
            find(&d, &f).unwrap().strip,
            None,
            "kept without explicit strip"
        );
        let only = Fake {
            query: Some("access_token=t"),
            ..Default::default()
        };
        assert_eq!(
            find(&s, &only).unwrap().strip,
            Some(StripAction::SetQuery(String::new()))
        );
    }

    /// RFC 6750 section 3.1: a request that repeats the parameter is invalid. The module would
    /// verify one and leave the other to a backend that may read that one (PHP takes the last),
    /// and with `strip=on` the backend would be left exactly one, never verified.
    #[test]
    fn a_repeated_query_or_form_parameter_is_no_token() {
        let s = sources(&[("query", "strip=on"), ("post", "")]);
        for q in [
            "access_token=good&access_token=forged",
            "access_token=good&a=1&access%5Ftoken=forged",
            "access_token=good&access_token",
        ] {
            let f = Fake {
                query: Some(q),
                ..Default::default()
            };
            assert_eq!(find(&s, &f), None, "{q}");
        }
        let mut f = with_header("Content-Type", "application/x-www-form-urlencoded");
        f.method = "POST";
        f.body = Some(b"access_token=good&x=1&access_token=forged");
        assert_eq!(find(&s, &f), None);
        // The same token twice is no ambiguity: one token, and strip=on removes both.
        f.body = Some(b"access_token=good&x=1&access%5Ftoken=go%6Fd");
        let found = find(&s, &f).unwrap();
        assert_eq!(found.token, "good");
        assert_eq!(found.strip, Some(StripAction::SetBody(b"x=1".to_vec())));
        // Another name that decodes differently is another parameter.
        f.body = Some(b"access_token=good&access_tokenx=1&xaccess_token=2");
        assert_eq!(token(&s, &f).as_deref(), Some("good"));
    }

    #[test]
    fn post_needs_method_and_form_content_type() {
        let s = sources(&[("post", "strip=on")]);
        let mut f = with_header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        f.method = "POST";
        f.body = Some(b"x=1&access_token=abc%2Bd&y=2");
        let found = find(&s, &f).unwrap();
        assert_eq!(found.token, "abc+d");
        assert_eq!(found.strip, Some(StripAction::SetBody(b"x=1&y=2".to_vec())));
        f.method = "GET";
        assert_eq!(find(&s, &f), None);
        f.method = "POST";
        f.headers.insert("Content-Type", "application/json");
        assert_eq!(find(&s, &f), None);
        f.headers
            .insert("Content-Type", "application/x-www-form-urlencodedX");
        assert_eq!(find(&s, &f), None);
        // Found by fuzz/ (token_sources): a multi-byte character across the end of the type
        // made the slice panic.
        for ct in [
            "application/x-www-form-urlencode\u{e9}",
            "\u{e9}",
            "application/x-www-form-urlencoded\u{e9}",
        ] {
            f.headers.insert("Content-Type", ct);
            assert_eq!(find(&s, &f), None, "{ct}");
        }
    }

    /// The form fields other than the token reach the backend byte for byte, also when they are
    /// not UTF-8 (a form in Latin-1 sent unescaped).
    #[test]
    fn post_strip_keeps_other_fields_byte_exact() {
        let s = sources(&[("post", "strip=on")]);
        let mut f = with_header("Content-Type", "application/x-www-form-urlencoded");
        f.method = "POST";
        f.body = Some(b"name=Jos\xe9&access_token=abc&x=\xff\xfe");
        let found = find(&s, &f).unwrap();
        assert_eq!(found.token, "abc");
        assert_eq!(
            found.strip,
            Some(StripAction::SetBody(b"name=Jos\xe9&x=\xff\xfe".to_vec()))
        );
    }

    #[test]
    fn cookie_is_decoded_and_stripped() {
        let s = sources(&[("cookie", "name=at&strip=on")]);
        let f = with_header("Cookie", "jan=piet; at=a%2Eb; hans=zandbelt");
        let found = find(&s, &f).unwrap();
        assert_eq!(found.token, "a.b");
        assert_eq!(
            found.strip,
            Some(StripAction::SetCookie("jan=piet; hans=zandbelt".into()))
        );
    }

    /// Two cookies of the name (another path or a parent domain set one): the module would
    /// verify the first and leave the second to a backend that may read that one (Python's
    /// `http.cookies` takes the last), with `strip=on` as the only one.
    #[test]
    fn a_repeated_cookie_is_no_token() {
        let s = sources(&[("cookie", "name=at&strip=on")]);
        for c in ["at=good; at=forged", "at=good; x=1;at =forged"] {
            assert_eq!(find(&s, &with_header("Cookie", c)), None, "{c}");
        }
        let twice = with_header("Cookie", "at=good; x=1; at=go%6Fd");
        let found = find(&s, &twice).unwrap();
        assert_eq!(found.token, "good");
        assert_eq!(found.strip, Some(StripAction::SetCookie("x=1".into())));
        let f = with_header("Cookie", "at=good; xat=1; at2=2");
        assert_eq!(token(&s, &f).as_deref(), Some("good"));
    }

    #[test]
    fn basic_takes_the_password() {
        let s = sources(&[("basic", "")]);
        // "dummy:my_basic_token", from liboauth2's own test
        let f = with_header("Authorization", "Basic ZHVtbXk6bXlfYmFzaWNfdG9rZW4=");
        assert_eq!(token(&s, &f).as_deref(), Some("my_basic_token"));
    }

    #[test]
    fn fixed_order_regardless_of_configuration_order() {
        let s = sources(&[("cookie", ""), ("query", "")]);
        let mut f = with_header("Cookie", "access_token=fromcookie");
        f.query = Some("access_token=fromquery");
        assert_eq!(token(&s, &f).as_deref(), Some("fromquery"));
    }
}
