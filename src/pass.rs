//! Passing the verified claims on to the backend: `OAUTH2_CLAIM_<name>` request headers and
//! environment variables (reference 5.2), and scrubbing of incoming headers that could spoof them
//! (reference 5.3).

use serde_json::Value;
use serde_json::ser::Formatter;
use std::io;

pub const DEFAULT_PREFIX: &str = "OAUTH2_CLAIM_";

/// The header/variable name for a claim: the C module replaces control bytes, DEL, every non-ASCII
/// byte and the HTTP separators with `-`, keeping case.
pub fn claim_name(prefix: &str, claim: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + claim.len());
    name.push_str(prefix);
    for &b in claim.as_bytes() {
        let separator = b"()<>@,;:\\\"/[]?={} \t".contains(&b);
        name.push(if b < 32 || b >= 127 || separator {
            '-'
        } else {
            b as char
        });
    }
    name
}

/// The value for a claim: strings as they are, other JSON in jansson's default layout
/// (`["a", "b"]`, `{"k": "v"}`), then made safe for a header line.
pub fn claim_value(value: &Value) -> String {
    let raw = match value {
        Value::String(s) => return header_safe(s),
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
pub fn header_safe(s: &str) -> String {
    if !s.bytes().any(|b| (b < 32 && b != b'\t') || b == 127) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_control() && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Whether an incoming request header looks like one this module sets, and must be removed before
/// anything else runs: its name, with letters and digits upper-cased and everything else read as
/// `_`, starts with the prefix read the same way (`OAUTH2-CLAIM-SUB`, `oauth2_claim_x`, ...).
pub fn is_spoofed(prefix: &str, header: &str) -> bool {
    if prefix.is_empty() || header.len() < prefix.len() {
        return false;
    }
    header
        .bytes()
        .zip(prefix.bytes())
        .all(|(h, p)| env_normal(h) == env_normal(p))
}

fn env_normal(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_uppercase()
    } else {
        b'_'
    }
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
    fn spoofed_headers_are_recognised_in_any_spelling() {
        for h in [
            "OAUTH2_CLAIM_sub",
            "oauth2-claim-sub",
            "Oauth2_Claim_Foo",
            "OAUTH2_CLAIM_",
        ] {
            assert!(is_spoofed(DEFAULT_PREFIX, h), "{h}");
        }
        for h in [
            "OAUTH2CLAIMX",
            "Authorization",
            "OAUTH2_CLAI",
            "X-OAUTH2_CLAIM_sub",
        ] {
            assert!(!is_spoofed(DEFAULT_PREFIX, h), "{h}");
        }
        assert!(!is_spoofed("", "anything"));
    }
}
