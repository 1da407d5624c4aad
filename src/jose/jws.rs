//! Compact JWS parsing (RFC 7515 §7.1) with the header rules of RFC 8725.
//! Parsing never verifies; `Key::verify` does.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use super::alg::Alg;
use super::b64;
use super::error::{JoseError, sanitize};
use super::json;

/// Upper bound on a compact token, checked before any other work.
/// Apache's default `LimitRequestFieldSize` (8190 bytes) already caps a token
/// in the Authorization header; 16 KiB leaves room for raised limits and
/// form-body tokens (RFC 6750 §2.2) with large claim sets and RSA-4096+
/// signatures, while bounding base64, JSON and crypto work per request.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Header names registered for JWS/JWE (RFC 7515 §4.1, RFC 7516 §4.1, RFC 7518
/// §4.6-4.8); RFC 7515 §4.1.11 forbids listing them in `crit`.
const REGISTERED: &[&str] = &[
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

/// The protected header. `jwk`, `jku`, `x5u` and `x5c` stay in `raw` only:
/// key material never comes from the token (RFC 8725 §3.10).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    /// All members, in document order.
    pub(crate) raw: Map<String, Value>,
}

/// A parsed, NOT yet verified compact JWS.
pub(crate) struct Jws<'a> {
    pub(crate) header: Header,
    /// Decoded payload bytes, exactly as signed; parse with `json::parse_object`.
    pub(crate) payload: Vec<u8>,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, borrowed from the token.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Parse a compact JWS without verifying it. Refuses: more than
    /// `MAX_TOKEN_LEN` bytes (checked first); other than 3 segments; any
    /// segment not strict base64url; a header that is not one duplicate-free
    /// JSON object; a missing, non-string or unknown `alg`, or `none` in any
    /// case (even with a signature); any `b64` or `zip`; any `crit` (none of
    /// our extensions exist); a non-string `kid` or `typ`; an empty signature.
    /// The payload is returned as raw bytes.
    pub(crate) fn parse(token: &'a str) -> Result<Jws<'a>, JoseError> {
        Jws::parse_with(token, b64::decode_strict)
    }

    /// As [`Jws::parse`], but each segment may carry `=` padding, as AWS ALB sends its
    /// `x-amzn-oidc-data` tokens; the signature still covers the segments exactly as sent.
    /// Only the `aws_alb` verifier reads tokens this way.
    pub(crate) fn parse_padded(token: &'a str) -> Result<Jws<'a>, JoseError> {
        Jws::parse_with(token, b64::decode_padded)
    }

    fn parse_with(
        token: &'a str,
        decode: fn(&str) -> Result<Vec<u8>, ()>,
    ) -> Result<Jws<'a>, JoseError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::TooLarge);
        }
        let dots = token.bytes().filter(|&b| b == b'.').count();
        if dots != 2 {
            return Err(JoseError::SegmentCount(dots.saturating_add(1)));
        }
        let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(JoseError::SegmentCount(1))?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or(JoseError::SegmentCount(2))?;

        let header_bytes = decode(header_b64).map_err(|()| JoseError::Base64("header"))?;
        let header = parse_header(&header_bytes)?;
        let payload = decode(payload_b64).map_err(|()| JoseError::Base64("payload"))?;
        if sig_b64.is_empty() {
            return Err(JoseError::EmptySignature);
        }
        let signature = decode(sig_b64).map_err(|()| JoseError::Base64("signature"))?;
        Ok(Jws {
            header,
            payload,
            signing_input,
            signature,
        })
    }
}

impl fmt::Debug for Jws<'_> {
    // Lengths only: the payload and signature must not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.header.alg)
            .field("payload_len", &self.payload.len())
            .field("signature_len", &self.signature.len())
            .finish_non_exhaustive()
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, JoseError> {
    let raw = json::parse_object_as(bytes, "header")?;
    let alg = match raw.get("alg") {
        None => return Err(JoseError::MissingAlg),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("none") => return Err(JoseError::AlgNone),
        Some(Value::String(s)) => {
            Alg::from_name(s).ok_or_else(|| JoseError::UnknownAlg(sanitize(s)))?
        }
        Some(_) => return Err(JoseError::HeaderMemberType("alg")),
    };
    // RFC 7797 changes what is signed; we implement no unencoded payloads.
    if raw.contains_key("b64") {
        return Err(JoseError::B64False);
    }
    if raw.contains_key("zip") {
        return Err(JoseError::ZipNotAllowed);
    }
    if let Some(crit) = raw.get("crit") {
        return Err(check_crit(crit, &raw));
    }
    Ok(Header {
        alg,
        kid: optional_string(&raw, "kid")?,
        typ: optional_string(&raw, "typ")?,
        raw,
    })
}

/// RFC 7515 §4.1.11. We understand no extension, so a well-formed `crit`
/// is still refused, only with a more precise reason.
fn check_crit(crit: &Value, header: &Map<String, Value>) -> JoseError {
    let Some(names) = crit.as_array().filter(|a| !a.is_empty()) else {
        return JoseError::CritInvalid;
    };
    let mut seen: HashSet<&str> = HashSet::new();
    let mut first = None;
    for name in names {
        let Some(name) = name.as_str() else {
            return JoseError::CritInvalid;
        };
        if REGISTERED.contains(&name) || !header.contains_key(name) || !seen.insert(name) {
            return JoseError::CritInvalid;
        }
        first = first.or(Some(name));
    }
    JoseError::CritUnsupported(sanitize(first.unwrap_or_default()))
}

fn optional_string(
    raw: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, JoseError> {
    match raw.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoseError::HeaderMemberType(name)),
    }
}
