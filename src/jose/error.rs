//! One typed error for every way a token or key is refused.

use std::fmt;

use super::alg::Alg;

/// Longest piece of attacker-controlled text kept in an error, in characters.
const MAX_ECHO: usize = 64;

/// Why a token or key was rejected. `Display` is a short reason meant for a
/// log line; it never contains the token, and any text taken from the input
/// is cut to 64 characters with control and non-ASCII characters escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JoseError {
    /// The compact token is longer than `jws::MAX_TOKEN_LEN`.
    TooLarge,
    /// Not exactly three dot-separated segments (count given).
    SegmentCount(usize),
    /// A segment or member is not strict base64url (which one).
    Base64(&'static str),
    /// Decoded bytes are not UTF-8 (which part).
    Utf8(&'static str),
    /// Not valid JSON (which part, parser reason).
    Json(&'static str, String),
    /// Valid JSON but not an object (which part).
    NotJsonObject(&'static str),
    /// The same member name twice in one object, at any depth.
    DuplicateMember(String),
    /// JSON nested deeper than `json::MAX_DEPTH` (which part).
    TooDeep(&'static str),
    /// Header has no `alg`.
    MissingAlg,
    /// `alg` is "none" in some spelling.
    AlgNone,
    /// `alg` is not one this module implements.
    UnknownAlg(String),
    /// A header member has the wrong JSON type (which member).
    HeaderMemberType(&'static str),
    /// `crit` is malformed (empty, not strings, duplicates, registered or absent names).
    CritInvalid,
    /// `crit` names an extension; none is implemented.
    CritUnsupported(String),
    /// `b64` header (RFC 7797 unencoded payload) is present; not supported.
    B64False,
    /// `zip` header on a JWS (compression is JWE-only).
    ZipNotAllowed,
    /// The signature segment is empty.
    EmptySignature,
    /// The algorithm does not fit the key (type, curve or HMAC secret length).
    AlgKeyMismatch { alg: Alg, key: String },
    /// The key's JWK pinned another `alg`.
    AlgNotAllowedByJwk,
    /// Signature has the wrong length for the algorithm or key.
    BadSignatureLength,
    /// The signature does not verify.
    SignatureInvalid,
    /// Key material is malformed or unusable.
    KeyInvalid(String),
    /// Key is well-formed but too weak to be trusted.
    KeyTooWeak(String),
    /// Key type or curve this module does not implement.
    KeyUnsupported(String),
    /// OpenSSL failed while setting up an operation (not an input problem).
    Crypto(&'static str),
}

impl fmt::Display for JoseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use JoseError::*;
        match self {
            TooLarge => write!(f, "token too large"),
            SegmentCount(n) => write!(f, "compact JWS must have 3 segments, got {n}"),
            Base64(part) => write!(f, "{part} is not strict base64url"),
            Utf8(part) => write!(f, "{part} is not UTF-8"),
            Json(part, why) => write!(f, "{part} is not valid JSON: {why}"),
            NotJsonObject(part) => write!(f, "{part} is not a JSON object"),
            DuplicateMember(name) => write!(f, "duplicate JSON member \"{name}\""),
            TooDeep(part) => write!(f, "{part} JSON nested too deeply"),
            MissingAlg => write!(f, "header has no alg"),
            AlgNone => write!(f, "alg none is not accepted"),
            UnknownAlg(a) => write!(f, "unsupported alg \"{a}\""),
            HeaderMemberType(m) => write!(f, "header member {m} must be a string"),
            CritInvalid => write!(f, "malformed crit header"),
            CritUnsupported(n) => write!(f, "unsupported critical header \"{n}\""),
            B64False => write!(f, "b64 header (RFC 7797) not supported"),
            ZipNotAllowed => write!(f, "zip header not allowed on a JWS"),
            EmptySignature => write!(f, "empty signature"),
            AlgKeyMismatch { alg, key } => write!(f, "alg {alg} cannot be used with key {key}"),
            AlgNotAllowedByJwk => write!(f, "alg differs from the alg pinned by the JWK"),
            BadSignatureLength => write!(f, "signature has the wrong length"),
            SignatureInvalid => write!(f, "signature invalid"),
            KeyInvalid(why) => write!(f, "invalid key: {why}"),
            KeyTooWeak(why) => write!(f, "key too weak: {why}"),
            KeyUnsupported(why) => write!(f, "unsupported key: {why}"),
            Crypto(what) => write!(f, "crypto library error: {what}"),
        }
    }
}

impl std::error::Error for JoseError {}

/// Make input-derived text safe for a log line: at most 64 characters,
/// printable ASCII kept, everything else escaped (`\n`, `\u{202e}`, ...).
pub(crate) fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX_ECHO {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_truncates_and_escapes() {
        let long = "a".repeat(1000);
        assert_eq!(sanitize(&long).len(), 64 + 3);
        assert_eq!(sanitize("x\r\ny"), "x\\r\\ny");
        assert_eq!(sanitize("a\u{202e}b"), "a\\u{202e}b");
        let e = JoseError::UnknownAlg(sanitize(&long));
        assert!(e.to_string().len() < 100);
    }
}
