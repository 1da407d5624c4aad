//! Why a request is refused, as a type, from the token source to the Apache edge; and the one
//! place that turns a refusal into what goes on the wire (status, `WWW-Authenticate`) and into
//! the error log (level, line), plus a short stable label for metrics.

use std::fmt;
use std::sync::Arc;

use crate::challenge::{self, Challenges, ErrorCode, dpop_challenge, www_authenticate};
use crate::pop::dpop::DpopError;
use crate::pop::mtls::BindingError;
use crate::verify::VerifyError;

/// One verifier's reason for not accepting the token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    /// The verifier's label, e.g. `jwk (RSA 2048-bit at site.conf:12)`.
    pub(crate) verifier: Arc<str>,
    pub(crate) error: VerifyError,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// No token where `OAuth2AcceptTokenIn` looks.
    NoToken,
    /// The location has `AuthType oauth2` but no `OAuth2TokenVerify`.
    NoVerifier,
    /// Longer than any token we verify (bounded before any work).
    TokenTooLong { len: usize },
    /// Every verifier said no, each for its reason, in configuration order.
    NotVerified(Vec<Rejection>),
    /// The accepting verifier's proof of possession failed (RFC 8705 section 3).
    Unbound {
        verifier: Arc<str>,
        error: BindingError,
    },
    /// Verified, but the remote-user claim is missing or not a non-empty string.
    NoRemoteUser { verifier: Arc<str>, claim: String },
    /// Verified, but two claims would be passed to the backend under one name
    /// (docs/compatibility.md, row "claim names that differ only in case").
    ClaimNameClash {
        verifier: Arc<str>,
        clash: crate::pass::NameClash,
    },
    /// A token that needs a DPoP proof (a `type=dpop` verifier, or bound by `cnf.jkt`) came with
    /// another scheme than `DPoP` (RFC 9449 section 7.2: no downgrade to Bearer).
    DpopSchemeMissing { verifier: Arc<str> },
    /// `cnf.jkt` is present but not a string: a binding that cannot be checked.
    DpopBindingUnreadable { verifier: Arc<str> },
    /// The DPoP proof failed one of the RFC 9449 section 4.3 checks.
    DpopProof {
        verifier: Arc<str>,
        error: DpopError,
    },
    /// The proof lacks a valid server nonce (RFC 9449 section 9): retry with `nonce`.
    DpopNonce {
        verifier: Arc<str>,
        error: DpopError,
        nonce: String,
    },
    /// The proof's `jti` was seen before (RFC 9449 section 11.1).
    DpopReplay { verifier: Arc<str> },
    /// Issued before this configuration generation started, while its replay store (shm) only
    /// knows proofs seen since.
    DpopIssuedBeforeStart {
        verifier: Arc<str>,
        iat: i64,
        started: i64,
    },
    /// The replay store could not answer: refused rather than risk a replay.
    DpopReplayUnknown { verifier: Arc<str>, error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Info,
    Warn,
    Error,
}

/// What a refusal becomes at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// One value per challenge (a location with Bearer and DPoP verifiers sends both).
    pub(crate) www_authenticate: Vec<String>,
    /// For a `DPoP-Nonce` response header.
    pub(crate) dpop_nonce: Option<String>,
    pub(crate) level: LogLevel,
    /// One line with the reason; never contains the token.
    pub(crate) log_line: String,
}

impl Refusal {
    /// The one mapping from a refusal to the wire and the log: one `WWW-Authenticate` value per
    /// challenge of the location, and the nonce to send in `DPoP-Nonce`.
    pub(crate) fn response(&self, challenges: &Challenges, realm: Option<&str>) -> Response {
        let mut values = Vec::with_capacity(2);
        let metadata = challenges.resource_metadata.as_deref();
        if let Some(scheme) = challenges.bearer {
            values.push(www_authenticate(scheme, realm, self.error_code(), metadata));
        }
        if let Some(algs) = &challenges.dpop_algs {
            values.push(dpop_challenge(
                realm,
                algs,
                self.dpop_error_code(),
                metadata,
            ));
        }
        Response {
            status: 401,
            www_authenticate: values,
            dpop_nonce: match self {
                Refusal::DpopNonce { nonce, .. } => Some(nonce.clone()),
                _ => None,
            },
            level: self.level(),
            log_line: self.to_string(),
        }
    }

    /// The RFC 6750 section 3.1 error code of the Bearer challenge.
    pub(crate) fn error_code(&self) -> ErrorCode {
        match self {
            Refusal::NoToken => challenge::NO_TOKEN,
            Refusal::NoRemoteUser { .. } => challenge::NO_USER,
            Refusal::NoVerifier
            | Refusal::TokenTooLong { .. }
            | Refusal::NotVerified(_)
            | Refusal::Unbound { .. }
            | Refusal::ClaimNameClash { .. }
            | Refusal::DpopSchemeMissing { .. }
            | Refusal::DpopBindingUnreadable { .. }
            | Refusal::DpopProof { .. }
            | Refusal::DpopNonce { .. }
            | Refusal::DpopReplay { .. }
            | Refusal::DpopIssuedBeforeStart { .. }
            | Refusal::DpopReplayUnknown { .. } => challenge::BAD_TOKEN,
        }
    }

    /// The RFC 9449 section 7.1 error code of the DPoP challenge; none for a request without a
    /// token (RFC 6750 section 3.1).
    fn dpop_error_code(&self) -> Option<ErrorCode> {
        match self {
            Refusal::NoToken => None,
            Refusal::DpopProof { error, .. } => Some(error.error_code()),
            Refusal::DpopReplay { .. }
            | Refusal::DpopIssuedBeforeStart { .. }
            | Refusal::DpopReplayUnknown { .. } => Some(challenge::BAD_DPOP_PROOF),
            Refusal::DpopNonce { .. } => Some(challenge::USE_DPOP_NONCE),
            Refusal::NoVerifier
            | Refusal::TokenTooLong { .. }
            | Refusal::NotVerified(_)
            | Refusal::Unbound { .. }
            | Refusal::NoRemoteUser { .. }
            | Refusal::ClaimNameClash { .. }
            | Refusal::DpopSchemeMissing { .. }
            | Refusal::DpopBindingUnreadable { .. } => Some(self.error_code()),
        }
    }

    /// A request without a token is routine; a location without a verifier is a configuration
    /// mistake; the rest are tokens someone sent that did not pass.
    fn level(&self) -> LogLevel {
        match self {
            Refusal::NoToken => LogLevel::Info,
            Refusal::NoVerifier | Refusal::DpopReplayUnknown { .. } => LogLevel::Error,
            Refusal::TokenTooLong { .. }
            | Refusal::NotVerified(_)
            | Refusal::Unbound { .. }
            | Refusal::NoRemoteUser { .. }
            | Refusal::ClaimNameClash { .. }
            | Refusal::DpopSchemeMissing { .. }
            | Refusal::DpopBindingUnreadable { .. }
            | Refusal::DpopProof { .. }
            | Refusal::DpopNonce { .. }
            | Refusal::DpopReplay { .. }
            | Refusal::DpopIssuedBeforeStart { .. } => LogLevel::Warn,
        }
    }

    /// A short stable name for the reason, for metrics: bounded values, never data from the token.
    /// With several verifiers that refused for different reasons, `not_verified`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::NoVerifier => "no_verifier",
            Refusal::TokenTooLong { .. } => "token_too_long",
            Refusal::NotVerified(rejections) => {
                let mut labels = rejections.iter().map(|r| r.error.label());
                match labels.next() {
                    Some(first) if labels.all(|l| l == first) => first,
                    _ => "not_verified",
                }
            }
            Refusal::Unbound { error, .. } => error.label(),
            Refusal::NoRemoteUser { .. } => "no_remote_user",
            Refusal::ClaimNameClash { .. } => "claim_name_clash",
            Refusal::DpopSchemeMissing { .. } => "dpop_scheme_missing",
            Refusal::DpopBindingUnreadable { .. } => "dpop_binding_unreadable",
            Refusal::DpopProof { error, .. } => error.label(),
            Refusal::DpopNonce { .. } => "dpop_nonce",
            Refusal::DpopReplay { .. } => "dpop_replay",
            Refusal::DpopIssuedBeforeStart { .. } => "dpop_before_start",
            Refusal::DpopReplayUnknown { .. } => "dpop_replay_unknown",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoToken => f.write_str("no bearer token found in the request"),
            Refusal::NoVerifier => {
                f.write_str("no OAuth2TokenVerify is configured for this location")
            }
            Refusal::TokenTooLong { len } => write!(
                f,
                "token refused: {len} bytes is longer than the {} allowed",
                crate::jose::jws::MAX_TOKEN_LEN
            ),
            Refusal::NotVerified(rejections) => {
                f.write_str("token refused: ")?;
                for (i, r) in rejections.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{}: {}", r.verifier, r.error)?;
                }
                Ok(())
            }
            Refusal::Unbound { verifier, error } => write!(f, "token refused: {verifier}: {error}"),
            Refusal::NoRemoteUser { verifier, claim } => write!(
                f,
                "token verified by {verifier} but its \"{}\" claim (the remote user) is missing or not a non-empty string",
                crate::pass::header_safe(claim)
            ),
            Refusal::ClaimNameClash { verifier, clash } => {
                let shown = |name: &str| {
                    let short: String = name.chars().take(64).collect();
                    short.escape_default().to_string()
                };
                write!(
                    f,
                    "token verified by {verifier} but its claims \"{}\" and \"{}\" would both be passed as \"{}\" (names differ only in letter case, `-` or `_`); refused",
                    shown(&clash.first),
                    shown(&clash.second),
                    shown(&clash.passed_as)
                )
            }
            Refusal::DpopSchemeMissing { verifier } => write!(
                f,
                "token refused: {verifier}: the token needs a DPoP proof and the DPoP authorization scheme (RFC 9449 section 7.2)"
            ),
            Refusal::DpopBindingUnreadable { verifier } => write!(
                f,
                "token refused: {verifier}: cnf.jkt is not a string, so the DPoP binding cannot be checked"
            ),
            Refusal::DpopProof { verifier, error } => {
                write!(f, "DPoP proof refused: {verifier}: {error}")
            }
            Refusal::DpopNonce {
                verifier, error, ..
            } => write!(
                f,
                "DPoP proof refused: {verifier}: {error}; a nonce was sent (DPoP-Nonce)"
            ),
            Refusal::DpopReplay { verifier } => write!(
                f,
                "DPoP proof refused: {verifier}: replayed (its jti was seen before with the same key)"
            ),
            Refusal::DpopIssuedBeforeStart {
                verifier,
                iat,
                started,
            } => write!(
                f,
                "DPoP proof refused: {verifier}: issued (iat {iat}) before the configuration was loaded ({started}); proofs seen before a restart are not remembered in shm, so none from before it is accepted"
            ),
            Refusal::DpopReplayUnknown { verifier, error } => write!(
                f,
                "DPoP proof refused: {verifier}: the replay store could not answer ({error}); refusing rather than risking a replay"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::Scheme;
    use crate::jose::JoseError;
    use crate::verify::claims::ClaimError;

    fn verifier() -> Arc<str> {
        Arc::from("jwk (RSA 2048-bit at t.conf:1)")
    }

    fn rejection(error: VerifyError) -> Rejection {
        Rejection {
            verifier: verifier(),
            error,
        }
    }

    #[test]
    fn no_token_is_invalid_request_at_info() {
        let r = Refusal::NoToken.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.status, 401);
        assert_eq!(r.level, LogLevel::Info);
        assert_eq!(
            r.www_authenticate[0],
            r#"Bearer error="invalid_request", error_description="No bearer token found in the request.""#
        );
        assert_eq!(r.log_line, "no bearer token found in the request");
        assert_eq!(Refusal::NoToken.label(), "no_token");
    }

    #[test]
    fn no_verifier_is_an_error_line() {
        let r = Refusal::NoVerifier.response(&Challenges::bearer(Scheme::Basic), Some("api"));
        assert_eq!(r.level, LogLevel::Error);
        assert_eq!(
            r.www_authenticate[0],
            r#"Basic realm="api", error="invalid_token", error_description="Token could not be verified.""#
        );
        assert_eq!(Refusal::NoVerifier.label(), "no_verifier");
    }

    #[test]
    fn too_long_names_the_length_and_the_bound() {
        let refusal = Refusal::TokenTooLong { len: 70_000 };
        let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.level, LogLevel::Warn);
        assert_eq!(
            r.log_line,
            format!(
                "token refused: 70000 bytes is longer than the {} allowed",
                crate::jose::jws::MAX_TOKEN_LEN
            )
        );
        assert_eq!(refusal.label(), "token_too_long");
    }

    #[test]
    fn not_verified_lists_every_verifier_in_order() {
        let refusal = Refusal::NotVerified(vec![
            rejection(VerifyError::Signature(JoseError::SignatureInvalid)),
            Rejection {
                verifier: Arc::from("introspect (at t.conf:2)"),
                error: VerifyError::Claims(ClaimError::Expired { exp: 1, now: 2 }),
            },
        ]);
        let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.status, 401);
        assert_eq!(r.level, LogLevel::Warn);
        assert!(r.www_authenticate[0].contains(r#"error="invalid_token""#));
        assert_eq!(
            r.log_line,
            format!(
                "token refused: jwk (RSA 2048-bit at t.conf:1): signature not verified: {}; introspect (at t.conf:2): token expired (exp 1, now 2)",
                JoseError::SignatureInvalid
            )
        );
        assert_eq!(refusal.label(), "not_verified", "two different reasons");
    }

    #[test]
    fn one_reason_gives_its_label() {
        let expired = || VerifyError::Claims(ClaimError::Expired { exp: 1, now: 2 });
        assert_eq!(
            Refusal::NotVerified(vec![rejection(expired())]).label(),
            "expired"
        );
        assert_eq!(
            Refusal::NotVerified(vec![rejection(expired()), rejection(expired())]).label(),
            "expired"
        );
        assert_eq!(
            Refusal::NotVerified(vec![rejection(VerifyError::NoKeyForKid)]).label(),
            "unknown_kid"
        );
    }

    #[test]
    fn alb_reasons_have_their_labels_and_lines() {
        use crate::jose::alg::Alg;
        use crate::remote::alb::AlbError;
        let cases = [
            (
                AlbError::WrongAlg(Alg::ES384),
                "wrong_alg",
                "alg ES384 is not ES256",
            ),
            (AlbError::NoSigner, "no_signer", "no \"signer\" string"),
            (
                AlbError::WrongSigner("arn:aws:x".into()),
                "wrong_signer",
                "signer \"arn:aws:x\" is not the configured ALB ARN",
            ),
            (AlbError::BadKid, "bad_kid", "no usable \"kid\""),
            (
                AlbError::UnknownKid("k1".into()),
                "unknown_kid",
                "the key endpoint has no key for kid \"k1\"",
            ),
            (
                AlbError::KidsThrottled("k2".into()),
                "kid_throttled",
                "kid \"k2\" not fetched",
            ),
        ];
        for (error, label, line) in cases {
            let refusal = Refusal::NotVerified(vec![rejection(VerifyError::Alb(error))]);
            assert_eq!(refusal.label(), label);
            let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
            assert_eq!(r.status, 401);
            assert!(r.log_line.contains(line), "{}", r.log_line);
        }
    }

    #[test]
    fn unbound_names_the_verifier_and_the_binding_error() {
        let refusal = Refusal::Unbound {
            verifier: verifier(),
            error: BindingError::Mismatch,
        };
        let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.level, LogLevel::Warn);
        assert!(r.www_authenticate[0].contains(r#"error="invalid_token""#));
        assert_eq!(
            r.log_line,
            format!(
                "token refused: jwk (RSA 2048-bit at t.conf:1): {}",
                BindingError::Mismatch
            )
        );
        assert_eq!(refusal.label(), "certificate_mismatch");
    }

    #[test]
    fn no_remote_user_is_its_own_error_description() {
        let refusal = Refusal::NoRemoteUser {
            verifier: verifier(),
            claim: "email\r\n".into(),
        };
        let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.level, LogLevel::Warn);
        assert_eq!(
            r.www_authenticate[0],
            r#"Bearer error="invalid_token", error_description="Could not determine remote user.""#
        );
        assert!(
            !r.log_line.contains('\r') && !r.log_line.contains('\n'),
            "{}",
            r.log_line
        );
        assert_eq!(refusal.label(), "no_remote_user");
        assert_eq!(refusal.error_code(), challenge::NO_USER);
    }

    #[test]
    fn a_claim_name_clash_names_both_claims_escaped() {
        let refusal = Refusal::ClaimNameClash {
            verifier: verifier(),
            clash: crate::pass::NameClash {
                first: "sub".into(),
                second: "SU\nB".into(),
                passed_as: "OAUTH2_CLAIM_sub".into(),
            },
        };
        let r = refusal.response(&Challenges::bearer(Scheme::Bearer), None);
        assert_eq!(r.level, LogLevel::Warn);
        assert!(r.www_authenticate[0].contains(r#"error="invalid_token""#));
        assert_eq!(
            r.log_line,
            r#"token verified by jwk (RSA 2048-bit at t.conf:1) but its claims "sub" and "SU\nB" would both be passed as "OAUTH2_CLAIM_sub" (names differ only in letter case, `-` or `_`); refused"#
        );
        assert_eq!(refusal.label(), "claim_name_clash");
    }

    fn dpop_only() -> Challenges {
        Challenges {
            bearer: None,
            dpop_algs: Some("ES256 EdDSA".into()),
            resource_metadata: None,
        }
    }

    #[test]
    fn a_dpop_location_challenges_with_dpop_only() {
        let r = Refusal::NoToken.response(&dpop_only(), None);
        assert_eq!(r.www_authenticate, [r#"DPoP algs="ES256 EdDSA""#]);
        let r = Refusal::DpopReplay {
            verifier: verifier(),
        }
        .response(&dpop_only(), Some("api"));
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate,
            [
                r#"DPoP realm="api", algs="ES256 EdDSA", error="invalid_dpop_proof", error_description="DPoP proof could not be verified.""#
            ]
        );
        assert_eq!(r.dpop_nonce, None);
    }

    #[test]
    fn a_mixed_location_sends_both_challenges() {
        let both = Challenges {
            bearer: Some(Scheme::Bearer),
            dpop_algs: Some("ES256".into()),
            resource_metadata: None,
        };
        let refusal = Refusal::DpopSchemeMissing {
            verifier: verifier(),
        };
        let r = refusal.response(&both, None);
        assert_eq!(
            r.www_authenticate,
            [
                r#"Bearer error="invalid_token", error_description="Token could not be verified.""#,
                r#"DPoP algs="ES256", error="invalid_token", error_description="Token could not be verified.""#
            ]
        );
        assert_eq!(refusal.label(), "dpop_scheme_missing");
        assert!(
            r.log_line.contains("RFC 9449 section 7.2"),
            "{}",
            r.log_line
        );
    }

    #[test]
    fn an_unanswered_replay_store_is_an_error_line() {
        let refusal = Refusal::DpopReplayUnknown {
            verifier: verifier(),
            error: "redis cache: timed out".into(),
        };
        let r = refusal.response(&dpop_only(), None);
        assert_eq!(r.level, LogLevel::Error);
        assert!(r.www_authenticate[0].contains("invalid_dpop_proof"));
        assert_eq!(refusal.label(), "dpop_replay_unknown");
    }

    #[test]
    fn every_challenge_names_the_resource_metadata() {
        let both = Challenges {
            bearer: Some(Scheme::Bearer),
            dpop_algs: Some("ES256".into()),
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource".into()),
        };
        let r = Refusal::NoToken.response(&both, Some("api"));
        assert_eq!(
            r.www_authenticate,
            [
                r#"Bearer realm="api", error="invalid_request", error_description="No bearer token found in the request.", resource_metadata="https://h/.well-known/oauth-protected-resource""#,
                r#"DPoP realm="api", algs="ES256", resource_metadata="https://h/.well-known/oauth-protected-resource""#
            ]
        );
    }
}
