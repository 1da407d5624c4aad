//! Passing the verified claims on to the backend: `OAUTH2_CLAIM_<name>` request headers and
//! environment variables, and scrubbing of incoming headers that could spoof them
//! (see docs/compatibility.md, header scrubbing).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::ser::Formatter;
use serde_json::{Map, Value};
use std::io::{self, Write};

use crate::config::target_pass::{Encoding, TargetPass};
use crate::header_name::env_normal;
pub(crate) use crate::header_name::{is_reserved_header, same_env_name};

mod once;
pub(crate) use once::passed_once;

/// The header/variable name for a claim: the C module replaces control bytes, DEL, every non-ASCII
/// byte and the HTTP separators with `-`, keeping case.
pub(crate) fn claim_name(prefix: &str, claim: &str) -> String {
    let mut name = Vec::with_capacity(prefix.len() + claim.len());
    push_claim_name(&mut name, prefix, claim);
    // ASCII after a UTF-8 prefix: always UTF-8.
    String::from_utf8(name).unwrap_or_default()
}

fn push_claim_name(out: &mut Vec<u8>, prefix: &str, claim: &str) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend(claim.bytes().map(|b| {
        let separator = b"()<>@,;:\\\"/[]?={} \t".contains(&b);
        if !(32..127).contains(&b) || separator {
            b'-'
        } else {
            b
        }
    }));
}

/// The value for a claim: strings as they are, other JSON in jansson's default layout
/// (`["a", "b"]`, `{"k": "v"}`), then made safe for a header line.
pub(crate) fn claim_value(value: &Value) -> String {
    let raw = match value {
        Value::String(s) => return header_safe(s),
        // Digits only: nothing to make safe, no serializer needed.
        Value::Number(n) => return n.to_string(),
        other => {
            let mut out = Vec::with_capacity(32);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, JanssonFormatter);
            if serde::Serialize::serialize(other, &mut ser).is_err() {
                return String::new();
            }
            String::from_utf8(out).unwrap_or_default()
        }
    };
    header_safe(&raw)
}

/// Control characters (other than tab) can end a header line or truncate a C string: each becomes a
/// space, so a claim can never inject a header into the request to the backend.
pub(crate) fn header_safe(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    push_header_safe(&mut out, s.as_bytes());
    // Only ASCII bytes were replaced, by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn is_unsafe(b: u8) -> bool {
    (b < 32 && b != b'\t') || b == 127
}

fn push_header_safe(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().any(|&b| is_unsafe(b)) {
        out.extend(bytes.iter().map(|&b| if is_unsafe(b) { b' ' } else { b }));
    } else {
        out.extend_from_slice(bytes);
    }
}

/// A claim's value straight into `out`, as [`claim_value`] and `encoding=` would make it, without
/// the intermediate strings for the common cases (strings and numbers, no transcoding).
fn push_claim_value(out: &mut Vec<u8>, encoding: Encoding, value: &Value) {
    match (encoding, value) {
        (Encoding::None, Value::String(s)) => push_header_safe(out, s.as_bytes()),
        (Encoding::None, Value::Number(n)) => {
            let _ = write!(out, "{n}");
        }
        (encoding, value) => out.extend_from_slice(&encode_owned(encoding, claim_value(value))),
    }
}

/// What goes to the backend after a successful verification. Names and values are NUL-terminated
/// in one buffer, so the request gets them with one copy into its pool (and a cached token
/// reuses the whole thing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Passed {
    /// The remote user (`remote_user_claim`), made header-safe.
    user: String,
    /// `name\0value\0` for each variable, then for the `authn_header`.
    text: Vec<u8>,
    /// Where each variable's name and value start in `text`, in claim order.
    vars: Vec<[usize; 2]>,
    /// Variables whose name is a framing or hop-by-hop header ([`is_reserved_header`]): passed as
    /// environment variables only, never as request headers.
    env_only: Vec<[usize; 2]>,
    /// `authn_header=<Name>`: a request header carrying the remote user.
    authn_header: Option<[usize; 2]>,
    /// Set them as request headers (`headers=`).
    pub(crate) headers: bool,
    /// Set them as environment variables (`envvars=`).
    pub(crate) envvars: bool,
    /// The length of the prefix every variable name starts with, when it is not empty and no two
    /// names are the same in any case: the request can then add them without looking for an
    /// earlier value of each (0: set each one, replacing what is there).
    fresh_prefix_len: usize,
}

impl Passed {
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// The whole buffer the offsets of [`Passed::var_offsets`] point into.
    pub(crate) fn text(&self) -> &[u8] {
        &self.text
    }

    pub(crate) fn var_offsets(&self) -> &[[usize; 2]] {
        &self.vars
    }

    /// See the field: variables that must not become request headers.
    pub(crate) fn env_only_offsets(&self) -> &[[usize; 2]] {
        &self.env_only
    }

    pub(crate) fn authn_header_offsets(&self) -> Option<[usize; 2]> {
        self.authn_header
    }

    /// See the field: non-zero when the variables can be added rather than set.
    pub(crate) fn fresh_prefix_len(&self) -> usize {
        self.fresh_prefix_len
    }

    /// `(name, value)` in claim order; values encoded per `encoding=`.
    pub(crate) fn vars(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|&[n, v]| self.pair(n, v))
    }

    #[cfg(test)]
    pub(crate) fn authn_header(&self) -> Option<(&str, &[u8])> {
        self.authn_header.map(|[n, v]| self.pair(n, v))
    }

    fn pair(&self, name: usize, value: usize) -> (&str, &[u8]) {
        let until_nul = |at: usize| {
            let rest = self.text.get(at..).unwrap_or_default();
            &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
        };
        (
            std::str::from_utf8(until_nul(name)).unwrap_or_default(),
            until_nul(value),
        )
    }

    /// No two variable names equal ignoring case (a claim named `access_token`, two claims that
    /// differ only in case or in characters that become `-`): the request tables are
    /// case-insensitive, and such a name must replace, not add.
    fn names_are_distinct(&self) -> bool {
        let mut names: Vec<&[u8]> = self.vars().map(|(name, _)| name.as_bytes()).collect();
        fn lower(name: &[u8]) -> impl Iterator<Item = u8> + '_ {
            name.iter().map(u8::to_ascii_lowercase)
        }
        names.sort_unstable_by(|a, b| lower(a).cmp(lower(b)));
        names.windows(2).all(|w| !w[0].eq_ignore_ascii_case(w[1]))
    }

    /// One of this module's own variables (payload, token): a reserved name stays out of the headers.
    fn push_var(&mut self, pair: [usize; 2]) {
        let name = self.pair(pair[0], pair[1]).0;
        if is_reserved_header(name.as_bytes()) {
            self.env_only.push(pair);
        } else {
            self.vars.push(pair);
        }
    }

    /// The claims' variables (all of them so far), checked for two names that are one variable to
    /// httpd's tables (any case) or to a CGI environment (`-` and `_` alike): [`NameClash`].
    fn check_claim_names(&self, claims: &Map<String, Value>) -> Result<(), NameClash> {
        let mut names: Vec<(&[u8], usize)> = self
            .vars
            .iter()
            .chain(&self.env_only)
            .map(|&[n, v]| (self.pair(n, v).0.as_bytes(), n))
            .collect();
        if names.len() < 2 {
            return Ok(());
        }
        fn normal(name: &[u8]) -> impl Iterator<Item = u8> + '_ {
            name.iter().map(|&b| env_normal(b))
        }
        names.sort_unstable_by(|a, b| normal(a.0).cmp(normal(b.0)).then(a.1.cmp(&b.1)));
        let Some(clash) = names.windows(2).find(|w| same_env_name(w[0].0, w[1].0)) else {
            return Ok(());
        };
        // Back to the claims: the variables are in claim order, so offsets give it.
        let mut order: Vec<usize> = self
            .vars
            .iter()
            .chain(&self.env_only)
            .map(|p| p[0])
            .collect();
        order.sort_unstable();
        let index = |offset: usize| order.iter().position(|&o| o == offset).unwrap_or(0);
        let claim = |offset: usize| {
            claims
                .keys()
                .nth(index(offset))
                .cloned()
                .unwrap_or_default()
        };
        Err(NameClash {
            first: claim(clash[0].1),
            second: claim(clash[1].1),
            passed_as: String::from_utf8_lossy(clash[0].0).into_owned(),
        })
    }

    /// Appends one pair; a NUL inside either part (which the callers never produce) would end it
    /// early for C, so it becomes a space.
    fn push(&mut self, name: &[u8], value: &[u8]) -> [usize; 2] {
        let n = self.text.len();
        push_c(&mut self.text, name);
        let v = self.text.len();
        push_c(&mut self.text, value);
        [n, v]
    }
}

fn push_c(text: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.contains(&0) {
        text.extend(bytes.iter().map(|&b| if b == 0 { b' ' } else { b }));
    } else {
        text.extend_from_slice(bytes);
    }
    text.push(0);
}

/// Two claims whose variables would have the same name in a request table or a CGI environment
/// (`sub` and `SUB`, `a-b` and `a_b`): one would overwrite the other, so the backend could read a
/// value other than the one the remote user came from. The token is refused (docs/compatibility.md,
/// row "claim names that differ only in case").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameClash {
    pub(crate) first: String,
    pub(crate) second: String,
    /// The variable both would be passed as (the first one's name).
    pub(crate) passed_as: String,
}

/// Builds the claims, the optional whole payload and the token (unless it is being stripped) for
/// the backend, following `OAuth2TargetPass`.
pub(crate) fn build(
    tp: &TargetPass,
    claims: &Map<String, Value>,
    user: &str,
    token: Option<&str>,
) -> Result<Passed, NameClash> {
    let prefix = tp.prefix();
    let encoding = tp.encoding();
    let mut p = Passed {
        user: user.to_string(),
        text: Vec::with_capacity(256 + token.map_or(0, str::len)),
        vars: Vec::with_capacity(claims.len() + 2),
        env_only: Vec::new(),
        authn_header: None,
        headers: tp.headers(),
        envvars: tp.envvars(),
        fresh_prefix_len: 0,
    };
    for (name, value) in claims {
        if prefix.is_empty() && name.is_empty() {
            continue; // no name to pass it under: an empty header name breaks the request
        }
        let n = p.text.len();
        push_claim_name(&mut p.text, prefix, name);
        let reserved = is_reserved_header(&p.text[n..]);
        p.text.push(0);
        let v = p.text.len();
        // NUL-free: header_safe turned every control byte into a space (encodings add none).
        push_claim_value(&mut p.text, encoding, value);
        p.text.push(0);
        if reserved {
            p.env_only.push([n, v]);
        } else {
            p.vars.push([n, v]);
        }
    }
    if p.headers || p.envvars {
        p.check_claim_names(claims)?;
    }
    if let Some(name) = &tp.json_payload_claim {
        let json = serde_json::to_string(claims).unwrap_or_default();
        let pair = p.push(
            claim_name(prefix, name).as_bytes(),
            &encode(encoding, &header_safe(&json)),
        );
        p.push_var(pair);
    }
    // The C module also passes the token itself; backends that call further APIs rely on it.
    if let Some(token) = token {
        let pair = p.push(
            claim_name(prefix, "access_token").as_bytes(),
            header_safe(token).as_bytes(),
        );
        p.push_var(pair);
    }
    if let Some(header) = &tp.authn_header {
        p.authn_header = Some(p.push(header.as_bytes(), &encode(encoding, &header_safe(user))));
    }
    if !prefix.is_empty() && p.env_only.is_empty() && p.names_are_distinct() {
        p.fresh_prefix_len = prefix.len();
    }
    Ok(p)
}

/// [`encode`] without a copy for the common `none` case.
fn encode_owned(encoding: Encoding, value: String) -> Vec<u8> {
    match encoding {
        Encoding::None => value.into_bytes(),
        other => encode(other, &value),
    }
}

/// `encoding=`: `none` keeps UTF-8, `latin1` transcodes (unmappable characters become `?`),
/// `base64url` encodes the UTF-8 bytes.
pub(crate) fn encode(encoding: Encoding, value: &str) -> Vec<u8> {
    match encoding {
        Encoding::None => value.as_bytes().to_vec(),
        Encoding::Latin1 => value
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        Encoding::Base64Url => URL_SAFE_NO_PAD.encode(value).into_bytes(),
    }
}

/// Whether an incoming request header looks like one this module sets, and must be removed before
/// anything else runs: its name, with letters and digits upper-cased and everything else read as
/// `_`, starts with the prefix read the same way (`OAUTH2-CLAIM-SUB`, `oauth2_claim_x`, ...).
pub(crate) fn is_spoofed(prefix: &str, header: &[u8]) -> bool {
    if prefix.is_empty() || header.len() < prefix.len() {
        return false;
    }
    header
        .iter()
        .zip(prefix.bytes())
        .all(|(&h, p)| env_normal(h) == env_normal(p))
}

/// jansson's `json_dumps(..., 0)` separators: `", "` between items, `": "` after keys.
struct JanssonFormatter;

impl Formatter for JanssonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::target_pass::DEFAULT_PREFIX;
    use serde_json::json;

    #[test]
    fn names_are_normalised_like_the_c_module() {
        assert_eq!(
            claim_name(DEFAULT_PREFIX, "client_id"),
            "OAUTH2_CLAIM_client_id"
        );
        assert_eq!(claim_name(DEFAULT_PREFIX, "x y"), "OAUTH2_CLAIM_x-y");
        assert_eq!(claim_name(DEFAULT_PREFIX, "ü"), "OAUTH2_CLAIM_--");
        assert_eq!(claim_name(DEFAULT_PREFIX, "a:b\r\n"), "OAUTH2_CLAIM_a-b--");
    }

    #[test]
    fn values_follow_jansson_layout() {
        assert_eq!(claim_value(&json!("plain")), "plain");
        assert_eq!(claim_value(&json!(["a", "b"])), r#"["a", "b"]"#);
        assert_eq!(
            claim_value(&json!({"k": "v", "n": [1, 2]})),
            r#"{"k": "v", "n": [1, 2]}"#
        );
        assert_eq!(claim_value(&json!(true)), "true");
        assert_eq!(claim_value(&json!(null)), "null");
        assert_eq!(claim_value(&json!(5)), "5");
        assert_eq!(claim_value(&json!(1.5)), "1.5");
        assert_eq!(claim_value(&json!("")), "");
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        assert_eq!(claim_value(&json!("x\r\nInjected: 1")), "x  Injected: 1");
        assert_eq!(claim_value(&json!("a\u{0}b")), "a b");
        assert_eq!(claim_value(&json!("tab\tok")), "tab\tok");
        assert_eq!(claim_value(&json!("Cem Özdemir")), "Cem Özdemir");
        // JSON escapes inside arrays stay escaped text, so they are already safe.
        assert_eq!(claim_value(&json!(["a\nb"])), r#"["a\nb"]"#);
    }

    #[test]
    fn encodings_follow_liboauth2() {
        assert_eq!(
            encode(Encoding::Latin1, "Cem Özdemir"),
            b"Cem \xd6zdemir".to_vec()
        );
        assert_eq!(
            encode(Encoding::Base64Url, "Cem Özdemir"),
            b"Q2VtIMOWemRlbWly".to_vec()
        );
        assert_eq!(
            encode(Encoding::None, "Cem Özdemir"),
            "Cem Özdemir".as_bytes().to_vec()
        );
        assert_eq!(encode(Encoding::Latin1, "snow ☃"), b"snow ?".to_vec());
    }

    #[test]
    fn build_follows_target_pass() {
        let claims = match json!({"sub": "joe", "email": "j@x", "n": 1}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let mut tp = TargetPass::default();
        tp.apply("prefix=X-C-&authn_header=X-User&json_payload_claim=payload&envvars=off")
            .unwrap();
        let p = build(&tp, &claims, "joe", Some("tok")).unwrap();
        let names: Vec<&str> = p.vars().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "X-C-sub",
                "X-C-email",
                "X-C-n",
                "X-C-payload",
                "X-C-access_token"
            ]
        );
        assert_eq!(
            p.vars().nth(3).unwrap().1,
            br#"{"sub":"joe","email":"j@x","n":1}"#
        );
        assert!(p.headers && !p.envvars);
        assert_eq!(p.authn_header(), Some(("X-User", &b"joe"[..])));
        // One buffer of NUL-terminated C strings at the offsets given.
        for [n, v] in p
            .var_offsets()
            .iter()
            .copied()
            .chain(p.authn_header_offsets())
        {
            let c = |at: usize| std::ffi::CStr::from_bytes_until_nul(&p.text()[at..]).unwrap();
            assert!(!c(n).is_empty() && c(v).to_bytes().len() < p.text().len());
        }
        let stripped = build(&tp, &claims, "joe", None).unwrap();
        assert!(!stripped.vars().any(|(n, _)| n == "X-C-access_token"));
    }

    #[test]
    fn a_claim_without_a_name_is_not_passed_without_a_prefix() {
        let claims = json!({"": "x", "sub": "joe"});
        let mut tp = TargetPass::default();
        tp.apply("prefix=").unwrap();
        let p = build(&tp, claims.as_object().unwrap(), "joe", None).unwrap();
        let names: Vec<&str> = p.vars().map(|(n, _)| n).collect();
        assert_eq!(names, ["sub"]);
        // With a prefix it has one.
        let p = build(
            &TargetPass::default(),
            claims.as_object().unwrap(),
            "joe",
            None,
        )
        .unwrap();
        assert!(p.vars().any(|(n, _)| n == DEFAULT_PREFIX));
    }

    #[test]
    fn names_that_would_collide_in_a_request_table_are_set_not_added() {
        let fresh = |claims: Value, options: &str, token: Option<&str>| {
            let Value::Object(claims) = claims else {
                unreachable!()
            };
            let mut tp = TargetPass::default();
            tp.apply(options).unwrap();
            build(&tp, &claims, "joe", token).map_or(usize::MAX, |p| p.fresh_prefix_len())
        };
        let prefix = DEFAULT_PREFIX.len();
        assert_eq!(
            fresh(json!({"sub": "joe", "scope": "a"}), "", Some("t")),
            prefix
        );
        // Equal in a case-insensitive table, or after `-` replaced a separator: refused (below).
        assert_eq!(
            fresh(json!({"sub": "joe", "SUB": "x"}), "", None),
            usize::MAX
        );
        assert_eq!(fresh(json!({"a b": 1, "a-b": 2}), "", None), usize::MAX);
        // A claim named like the token's or the payload's variable.
        assert_eq!(fresh(json!({"access_token": "x"}), "", Some("t")), 0);
        assert_eq!(fresh(json!({"access_token": "x"}), "", None), prefix);
        assert_eq!(fresh(json!({"all": 1}), "json_payload_claim=ALL", None), 0);
        // No prefix: a claim could be named like any request header, so every name is set.
        assert_eq!(fresh(json!({"sub": "joe"}), "prefix=", None), 0);
        assert_eq!(fresh(json!({"sub": "joe"}), "prefix=X-", None), 2);
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// docs/compatibility.md, row "claim names that differ only in case".
    #[test]
    fn claims_passed_under_one_name_are_a_clash() {
        let tp = TargetPass::default();
        let clash = |claims: Value| build(&tp, &object(claims), "alice", None).err();
        assert_eq!(
            clash(json!({"sub": "alice", "x": 1, "SUB": "admin"})),
            Some(NameClash {
                first: "sub".into(),
                second: "SUB".into(),
                passed_as: "OAUTH2_CLAIM_sub".into()
            })
        );
        assert_eq!(
            clash(json!({"a_b": 1, "a-b": 2})).map(|c| (c.first, c.second)),
            Some(("a_b".into(), "a-b".into()))
        );
        assert!(clash(json!({"a.b": 1, "a b": 2})).is_some());
        assert_eq!(clash(json!({"sub": "alice", "subs": "x", "su": 1})), None);
        // Nothing is passed: nothing can clash.
        let mut off = TargetPass::default();
        off.apply("headers=off&envvars=off").unwrap();
        assert!(build(&off, &object(json!({"sub": 1, "SUB": 2})), "a", None).is_ok());
    }

    #[test]
    fn framing_and_hop_by_hop_names_never_become_headers() {
        let mut tp = TargetPass::default();
        tp.apply("prefix=").unwrap();
        let claims = object(json!({
            "sub": "alice",
            "Transfer-Encoding": "chunked",
            "content_length": "5",
            "CONNECTION": "close",
            "Host": "evil",
            "te": "trailers",
            "Upgrade": "h2c",
            "Trailer": "x",
            "Expect": "100-continue",
            "Keep-Alive": "1",
            "Proxy-Authorization": "x",
            "proxy_connection": "x",
            "HTTP2-Settings": "x",
            "Hosts": "ok",
            "Proxy": "ok"
        }));
        let p = build(&tp, &claims, "alice", Some("tok")).unwrap();
        let headers: Vec<&str> = p.vars().map(|(n, _)| n).collect();
        assert_eq!(headers, ["sub", "Hosts", "Proxy", "access_token"]);
        let env_only: Vec<&str> = p
            .env_only_offsets()
            .iter()
            .map(|&[n, v]| p.pair(n, v).0)
            .collect();
        assert_eq!(env_only.len(), 12, "{env_only:?}");
        assert_eq!(p.fresh_prefix_len(), 0);
        assert!(is_reserved_header(b"Proxy-"));
        assert!(!is_reserved_header(b"Proxy"));
    }

    #[test]
    fn authn_header_look_alikes() {
        assert!(same_env_name(b"X-Remote-User", b"X_Remote_User"));
        assert!(same_env_name(b"X-Remote-User", b"x-remote_USER"));
        assert!(!same_env_name(b"X-Remote-User", b"X-Remote-Users"));
        assert!(!same_env_name(b"X-Remote-User", b"X-Remote-Usex"));
    }

    #[test]
    fn spoofed_headers_are_recognised_in_any_spelling() {
        for h in [
            "OAUTH2_CLAIM_sub",
            "oauth2-claim-sub",
            "Oauth2_Claim_Foo",
            "OAUTH2_CLAIM_",
        ] {
            assert!(is_spoofed(DEFAULT_PREFIX, h.as_bytes()), "{h}");
        }
        for h in [
            "OAUTH2CLAIMX",
            "Authorization",
            "OAUTH2_CLAI",
            "X-OAUTH2_CLAIM_sub",
        ] {
            assert!(!is_spoofed(DEFAULT_PREFIX, h.as_bytes()), "{h}");
        }
        assert!(!is_spoofed("", b"anything"));
    }
}
