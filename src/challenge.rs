//! RFC 6750 section 3 `WWW-Authenticate` values, byte for byte as the C module writes them, with
//! RFC 9728 section 5.1 `resource_metadata` last where the host publishes metadata.

use std::sync::Arc;

/// The authentication scheme a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    /// The C module challenges with `Basic` when Basic is the only way to send a token.
    Basic,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Basic => "Basic",
        }
    }
}

/// An RFC 6750 section 3.1 error code with the description the C module sends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorCode {
    pub(crate) error: &'static str,
    pub(crate) description: &'static str,
}

pub(crate) const NO_TOKEN: ErrorCode = ErrorCode {
    error: "invalid_request",
    description: "No bearer token found in the request.",
};
pub(crate) const BAD_TOKEN: ErrorCode = ErrorCode {
    error: "invalid_token",
    description: "Token could not be verified.",
};
pub(crate) const NO_USER: ErrorCode = ErrorCode {
    error: "invalid_token",
    description: "Could not determine remote user.",
};
/// RFC 9449 section 7.1: the DPoP proof is missing, malformed, or does not fit the request.
pub(crate) const BAD_DPOP_PROOF: ErrorCode = ErrorCode {
    error: "invalid_dpop_proof",
    description: "DPoP proof could not be verified.",
};
/// RFC 9449 section 9: retry with the nonce in the `DPoP-Nonce` response header.
pub(crate) const USE_DPOP_NONCE: ErrorCode = ErrorCode {
    error: "use_dpop_nonce",
    description: "Resource server requires nonce in DPoP proof",
};
/// Left for mod_headers in `OAUTH2_BEARER_SCOPE_ERROR` when `Require oauth2_claim` denies.
pub(crate) const INSUFFICIENT_SCOPE: ErrorCode = ErrorCode {
    error: "insufficient_scope",
    description: "Different scope(s) or other claims required.",
};

/// `Bearer [realm="R",] error="E", error_description="D"[, resource_metadata="U"]`.
pub(crate) fn www_authenticate(
    scheme: Scheme,
    realm: Option<&str>,
    code: ErrorCode,
    resource_metadata: Option<&str>,
) -> String {
    let mut v = String::with_capacity(128);
    v.push_str(scheme.as_str());
    if let Some(realm) = realm {
        v.push_str(" realm=\"");
        push_quoted_content(&mut v, realm);
        v.push_str("\",");
    }
    v.push_str(" error=\"");
    v.push_str(code.error);
    v.push_str("\", error_description=\"");
    v.push_str(code.description);
    v.push('"');
    push_resource_metadata(&mut v, resource_metadata);
    v
}

/// The challenges a location sends: the C module's Bearer (or Basic) one unless every verifier
/// is `type=dpop`, and a DPoP one (RFC 9449 section 7.1) when any verifier is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenges {
    pub(crate) bearer: Option<Scheme>,
    /// `algs="..."` of the DPoP challenge: the proof algorithms accepted.
    pub(crate) dpop_algs: Option<String>,
    /// RFC 9728 section 5.1: the host's metadata URL, in every challenge.
    pub(crate) resource_metadata: Option<Arc<str>>,
}

impl Challenges {
    #[cfg(test)]
    pub(crate) fn bearer(scheme: Scheme) -> Challenges {
        Challenges {
            bearer: Some(scheme),
            dpop_algs: None,
            resource_metadata: None,
        }
    }
}

/// `DPoP [realm="R", ]algs="A"[, error="E", error_description="D"][, resource_metadata="U"]`.
pub(crate) fn dpop_challenge(
    realm: Option<&str>,
    algs: &str,
    code: Option<ErrorCode>,
    resource_metadata: Option<&str>,
) -> String {
    let mut v = String::with_capacity(160);
    v.push_str("DPoP ");
    if let Some(realm) = realm {
        v.push_str("realm=\"");
        push_quoted_content(&mut v, realm);
        v.push_str("\", ");
    }
    v.push_str("algs=\"");
    push_quoted_content(&mut v, algs);
    v.push('"');
    if let Some(code) = code {
        v.push_str(", error=\"");
        v.push_str(code.error);
        v.push_str("\", error_description=\"");
        v.push_str(code.description);
        v.push('"');
    }
    push_resource_metadata(&mut v, resource_metadata);
    v
}

/// `, resource_metadata="U"` (RFC 9728 section 5.1). The URL passed the strict check of
/// `OAuth2ResourceMetadata` (no `"`, `\` or control character); it is escaped all the same.
fn push_resource_metadata(out: &mut String, url: Option<&str>) {
    if let Some(url) = url {
        out.push_str(", resource_metadata=\"");
        push_quoted_content(out, url);
        out.push('"');
    }
}

/// The content of an RFC 9110 quoted-string: `"` and `\` escaped, control characters dropped
/// (the C module copies AuthName unescaped, which can break the header).
fn push_quoted_content(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_without_realm() {
        assert_eq!(
            www_authenticate(Scheme::Bearer, None, NO_TOKEN, None),
            r#"Bearer error="invalid_request", error_description="No bearer token found in the request.""#
        );
    }

    #[test]
    fn bad_token_with_realm() {
        assert_eq!(
            www_authenticate(Scheme::Bearer, Some("my realm"), BAD_TOKEN, None),
            r#"Bearer realm="my realm", error="invalid_token", error_description="Token could not be verified.""#
        );
    }

    #[test]
    fn basic_scheme() {
        assert_eq!(
            www_authenticate(Scheme::Basic, None, BAD_TOKEN, None),
            r#"Basic error="invalid_token", error_description="Token could not be verified.""#
        );
    }

    #[test]
    fn dpop_challenges() {
        assert_eq!(
            dpop_challenge(None, "ES256 EdDSA", None, None),
            r#"DPoP algs="ES256 EdDSA""#
        );
        assert_eq!(
            dpop_challenge(Some("api"), "ES256", Some(BAD_DPOP_PROOF), None),
            r#"DPoP realm="api", algs="ES256", error="invalid_dpop_proof", error_description="DPoP proof could not be verified.""#
        );
    }

    #[test]
    fn realm_is_escaped() {
        assert_eq!(
            www_authenticate(Scheme::Bearer, Some("a\"b\\c\r\nd"), NO_USER, None),
            r#"Bearer realm="a\"b\\cd", error="invalid_token", error_description="Could not determine remote user.""#
        );
    }

    #[test]
    fn resource_metadata_is_the_last_parameter_of_every_scheme() {
        let url = Some("https://h/.well-known/oauth-protected-resource/v1");
        assert_eq!(
            www_authenticate(Scheme::Bearer, Some("api"), NO_TOKEN, url),
            r#"Bearer realm="api", error="invalid_request", error_description="No bearer token found in the request.", resource_metadata="https://h/.well-known/oauth-protected-resource/v1""#
        );
        assert_eq!(
            www_authenticate(Scheme::Basic, None, BAD_TOKEN, url),
            r#"Basic error="invalid_token", error_description="Token could not be verified.", resource_metadata="https://h/.well-known/oauth-protected-resource/v1""#
        );
        assert_eq!(
            dpop_challenge(None, "ES256", None, url),
            r#"DPoP algs="ES256", resource_metadata="https://h/.well-known/oauth-protected-resource/v1""#
        );
        assert_eq!(
            dpop_challenge(Some("api"), "ES256", Some(USE_DPOP_NONCE), url),
            r#"DPoP realm="api", algs="ES256", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", resource_metadata="https://h/.well-known/oauth-protected-resource/v1""#
        );
    }

    #[test]
    fn resource_metadata_cannot_break_the_header() {
        assert_eq!(
            dpop_challenge(None, "ES256", None, Some("https://h/\"\r\nX: \\")),
            r#"DPoP algs="ES256", resource_metadata="https://h/\"X: \\""#
        );
    }
}
