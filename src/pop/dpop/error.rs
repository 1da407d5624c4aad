//! Why a DPoP proof was refused: one variant per check of RFC 9449 section 4.3 (and the token
//! binding of section 7.1). `Display` is one log line naming the failed check; it never holds the
//! token or the proof, and text taken from the proof is sanitized and cut short.

use crate::challenge::{self, ErrorCode};
use std::fmt;

use crate::jose::JoseError;
use crate::jose::alg::Alg;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DpopError {
    /// No `DPoP` request header (or an empty one).
    NoProof,
    /// More than one proof: several headers, or one header holding a comma-separated list
    /// (httpd merges repeated request headers that way).
    SeveralProofs(usize),
    /// The proof is longer than `MAX_PROOF_LEN` (its length).
    TooLarge(usize),
    /// Not one well-formed compact JWS (RFC 7515), or its header breaks our JWS rules.
    Malformed(JoseError),
    /// `typ` is missing or not `dpop+jwt` (the value, sanitized).
    WrongTyp(Option<String>),
    /// `alg` is `none`, symmetric, unknown or not on `dpop.algs` (the name, sanitized).
    AlgNotAllowed(String),
    /// The header has no `jwk`.
    JwkMissing,
    /// The header's `jwk` is not a JSON object.
    JwkNotObject,
    /// `kty` is `oct`: a shared secret cannot prove possession of a private key.
    JwkSymmetric,
    /// The `jwk` carries a private member (which one).
    JwkPrivate(&'static str),
    /// A key type or curve proofs may not use (sanitized).
    JwkUnsupported(String),
    /// RSA modulus outside 2048..=8192 bits (what was seen).
    JwkRsaSize(String),
    /// RSA public exponent not odd, >= 3 and < 2^32.
    JwkRsaExponent,
    /// The `jwk`'s type or curve cannot make `alg` signatures (or its own `alg` differs).
    JwkAlgMismatch { alg: Alg, key: String },
    /// The `jwk` does not import as a public key.
    JwkInvalid(JoseError),
    /// The payload is not one duplicate-free JSON object.
    PayloadMalformed(JoseError),
    /// A required claim is absent (which one).
    ClaimMissing(&'static str),
    /// A claim has the wrong JSON type (which one).
    ClaimType(&'static str),
    /// `jti` is empty or longer than `MAX_JTI_LEN` bytes.
    JtiInvalid,
    /// `htm` differs from the request method (both, sanitized).
    HtmMismatch { htm: String, method: String },
    /// `htu` is not an http(s) URI we can normalise (value sanitized, reason).
    HtuInvalid {
        htu: String,
        why: super::htu::HtuError,
    },
    /// The request URL itself could not be normalised (e.g. `OPTIONS *`).
    RequestUrlInvalid(super::htu::HtuError),
    /// `htu` names another URL (both normal forms, sanitized).
    HtuMismatch { htu: String, url: String },
    /// `iat` is further in the past than `dpop.iat.slack.before` allows.
    IatTooOld { iat: i64, now: i64 },
    /// `iat` is further in the future than `dpop.iat.slack.after` allows.
    IatInFuture { iat: i64, now: i64 },
    /// `ath` is not the hash of the presented access token.
    AthMismatch,
    /// The signature does not verify with the header's `jwk`.
    SignatureInvalid(JoseError),
    /// Nonces are required (`dpop.nonce=on`) and the proof has none.
    NonceMissing,
    /// The proof's nonce is not one this server issued, or it is stale.
    NonceInvalid,
    /// The access token has no `cnf.jkt`: a DPoP request needs a DPoP-bound token.
    TokenNotBound,
    /// The proof key's thumbprint is not the token's `cnf.jkt`.
    JktMismatch,
    /// The crypto library failed on a well-formed key (not the client's fault).
    Internal(&'static str),
}

impl DpopError {
    /// A short stable name for metrics and tests.
    pub(crate) fn label(&self) -> &'static str {
        use DpopError::*;
        match self {
            NoProof => "dpop_no_proof",
            SeveralProofs(_) => "dpop_several_proofs",
            TooLarge(_) => "dpop_too_large",
            Malformed(_) => "dpop_malformed",
            WrongTyp(_) => "dpop_wrong_typ",
            AlgNotAllowed(_) => "dpop_alg_not_allowed",
            JwkMissing => "dpop_jwk_missing",
            JwkNotObject => "dpop_jwk_not_object",
            JwkSymmetric => "dpop_jwk_symmetric",
            JwkPrivate(_) => "dpop_jwk_private",
            JwkUnsupported(_) => "dpop_jwk_unsupported",
            JwkRsaSize(_) => "dpop_jwk_rsa_size",
            JwkRsaExponent => "dpop_jwk_rsa_exponent",
            JwkAlgMismatch { .. } => "dpop_jwk_alg_mismatch",
            JwkInvalid(_) => "dpop_jwk_invalid",
            PayloadMalformed(_) => "dpop_payload_malformed",
            ClaimMissing(_) => "dpop_claim_missing",
            ClaimType(_) => "dpop_claim_type",
            JtiInvalid => "dpop_jti_invalid",
            HtmMismatch { .. } => "dpop_htm_mismatch",
            HtuInvalid { .. } => "dpop_htu_invalid",
            RequestUrlInvalid(_) => "dpop_request_url_invalid",
            HtuMismatch { .. } => "dpop_htu_mismatch",
            IatTooOld { .. } => "dpop_iat_too_old",
            IatInFuture { .. } => "dpop_iat_in_future",
            AthMismatch => "dpop_ath_mismatch",
            SignatureInvalid(_) => "dpop_signature_invalid",
            NonceMissing => "dpop_nonce_missing",
            NonceInvalid => "dpop_nonce_invalid",
            TokenNotBound => "dpop_token_not_bound",
            JktMismatch => "dpop_jkt_mismatch",
            Internal(_) => "dpop_internal",
        }
    }

    /// True when a fresh nonce is the answer (RFC 9449 section 9: `use_dpop_nonce` with a
    /// `DPoP-Nonce` header).
    pub(crate) fn is_nonce_problem(&self) -> bool {
        matches!(self, DpopError::NonceMissing | DpopError::NonceInvalid)
    }

    /// The RFC 9449 error code for the challenge: `use_dpop_nonce` for nonce problems,
    /// `invalid_token` when the token is not bound to the proof's key (section 7.1), and
    /// `invalid_dpop_proof` for everything wrong with the proof itself.
    pub(crate) fn error_code(&self) -> ErrorCode {
        match self {
            DpopError::NonceMissing | DpopError::NonceInvalid => challenge::USE_DPOP_NONCE,
            // RFC 9449 section 7.1: a token not bound to the proof's key is an invalid token.
            DpopError::TokenNotBound | DpopError::JktMismatch => challenge::BAD_TOKEN,
            _ => challenge::BAD_DPOP_PROOF,
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DpopError::*;
        match self {
            NoProof => write!(f, "DPoP proof missing: no DPoP request header"),
            SeveralProofs(n) => write!(f, "DPoP proof: {n} proofs sent, exactly one is allowed"),
            TooLarge(len) => write!(
                f,
                "DPoP proof too large: {len} bytes, at most {} allowed",
                super::MAX_PROOF_LEN
            ),
            Malformed(e) => write!(f, "DPoP proof is not a well-formed JWS: {e}"),
            WrongTyp(None) => write!(f, "DPoP proof header has no typ (must be dpop+jwt)"),
            WrongTyp(Some(t)) => write!(f, "DPoP proof typ \"{t}\" is not dpop+jwt"),
            AlgNotAllowed(a) => write!(f, "DPoP proof alg \"{a}\" is not allowed (dpop.algs)"),
            JwkMissing => write!(f, "DPoP proof header has no jwk"),
            JwkNotObject => write!(f, "DPoP proof jwk is not a JSON object"),
            JwkSymmetric => write!(f, "DPoP proof jwk is a symmetric (oct) key"),
            JwkPrivate(m) => write!(f, "DPoP proof jwk contains the private member \"{m}\""),
            JwkUnsupported(what) => write!(f, "DPoP proof jwk: unsupported {what}"),
            JwkRsaSize(what) => write!(
                f,
                "DPoP proof jwk: RSA modulus {what}, must be 2048 to 8192 bits"
            ),
            JwkRsaExponent => write!(
                f,
                "DPoP proof jwk: RSA exponent must be odd, >= 3 and < 2^32"
            ),
            JwkAlgMismatch { alg, key } => {
                write!(f, "DPoP proof alg {alg} does not fit its jwk ({key})")
            }
            JwkInvalid(e) => write!(f, "DPoP proof jwk: {e}"),
            PayloadMalformed(e) => write!(f, "DPoP proof payload: {e}"),
            ClaimMissing(c) => write!(f, "DPoP proof has no \"{c}\" claim"),
            ClaimType(c) => write!(f, "DPoP proof claim \"{c}\" has the wrong type"),
            JtiInvalid => write!(
                f,
                "DPoP proof jti must be a non-empty string of at most {} bytes",
                super::MAX_JTI_LEN
            ),
            HtmMismatch { htm, method } => write!(
                f,
                "DPoP proof htm \"{htm}\" does not match the request method \"{method}\""
            ),
            HtuInvalid { htu, why } => write!(f, "DPoP proof htu \"{htu}\": {why}"),
            RequestUrlInvalid(why) => write!(
                f,
                "DPoP proof htu cannot match: the request URL has a {why}"
            ),
            HtuMismatch { htu, url } => write!(
                f,
                "DPoP proof htu \"{htu}\" does not match the request URL \"{url}\""
            ),
            IatTooOld { iat, now } => write!(
                f,
                "DPoP proof iat {iat} is {} s in the past (dpop.iat.slack.before)",
                now.saturating_sub(*iat)
            ),
            IatInFuture { iat, now } => write!(
                f,
                "DPoP proof iat {iat} is {} s in the future (dpop.iat.slack.after)",
                iat.saturating_sub(*now)
            ),
            AthMismatch => write!(
                f,
                "DPoP proof ath is not the hash of the presented access token"
            ),
            SignatureInvalid(e) => write!(f, "DPoP proof signature: {e}"),
            NonceMissing => write!(f, "DPoP proof has no nonce and dpop.nonce=on"),
            NonceInvalid => write!(f, "DPoP proof nonce is invalid or stale"),
            TokenNotBound => write!(
                f,
                "access token is not DPoP-bound (no cnf.jkt) but was presented with a DPoP proof"
            ),
            JktMismatch => write!(
                f,
                "DPoP proof key thumbprint does not match the access token's cnf.jkt"
            ),
            Internal(what) => write!(f, "DPoP proof check failed in the crypto library: {what}"),
        }
    }
}

impl std::error::Error for DpopError {}
