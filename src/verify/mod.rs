//! The verifiers of `OAuth2TokenVerify`: each one turns a token into a verified claim set or a
//! reason for refusal. Several verifiers are tried in order; the first that accepts wins.

pub mod claims;

use serde_json::{Map, Value};
use std::fmt;

use crate::jose::{self, JoseError, Jws, Key};
use crate::pop::mtls::{self, BindingError, MtlsPolicy};
use claims::{ClaimError, ClaimPolicy};

/// Proof of possession required on top of a valid token (`type=` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Bearer,
    Mtls(MtlsPolicy),
}

/// One `OAuth2TokenVerify` line with local keys.
#[derive(Clone)]
pub struct Verifier {
    /// Human-readable origin for log lines, e.g. `jwk (line 12)`.
    pub label: String,
    pub keys: Vec<Key>,
    pub claims: ClaimPolicy,
    pub binding: Binding,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyError {
    Malformed(JoseError),
    /// No configured key has the token's `kid`.
    NoKeyForKid,
    /// Keys were tried; the reason from the last one.
    Signature(JoseError),
    Payload(JoseError),
    Claims(ClaimError),
    Binding(BindingError),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(e) => write!(f, "malformed token: {e}"),
            VerifyError::NoKeyForKid => write!(f, "no configured key has the token's kid"),
            VerifyError::Signature(e) => write!(f, "signature not verified: {e}"),
            VerifyError::Payload(e) => write!(f, "bad payload: {e}"),
            VerifyError::Claims(e) => write!(f, "{e}"),
            VerifyError::Binding(e) => write!(f, "{e}"),
        }
    }
}

/// The token, parsed once and shared by all verifiers of a request.
pub struct ParsedToken<'a> {
    jws: Result<Jws<'a>, JoseError>,
}

impl<'a> ParsedToken<'a> {
    pub fn parse(token: &'a str) -> ParsedToken<'a> {
        ParsedToken {
            jws: Jws::parse(token),
        }
    }
}

impl Verifier {
    /// Signature and claims; proof of possession is checked separately by [`Verifier::check_binding`].
    pub fn verify(&self, token: &ParsedToken, now: i64) -> Result<Map<String, Value>, VerifyError> {
        let jws = token
            .jws
            .as_ref()
            .map_err(|e| VerifyError::Malformed(e.clone()))?;
        self.verify_signature(jws)?;
        let claims = jose::json::parse_object(&jws.payload).map_err(VerifyError::Payload)?;
        self.claims
            .check(&claims, now)
            .map_err(VerifyError::Claims)?;
        Ok(claims)
    }

    /// Reference 2.5 step 3: a key is skipped when both it and the token name a `kid` and they
    /// differ; every other key is tried in order until one verifies.
    fn verify_signature(&self, jws: &Jws) -> Result<(), VerifyError> {
        let token_kid = jws.header.kid.as_deref();
        let mut last = None;
        for key in &self.keys {
            if let (Some(want), Some(have)) = (token_kid, key.kid()) {
                if !have.is_empty() && want != have {
                    continue;
                }
            }
            match key.verify(jws) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(VerifyError::NoKeyForKid, VerifyError::Signature))
    }

    pub fn check_binding(
        &self,
        claims: &Map<String, Value>,
        client_thumbprint: impl FnOnce() -> Option<String>,
    ) -> Result<(), VerifyError> {
        match self.binding {
            Binding::Bearer => Ok(()),
            Binding::Mtls(policy) => {
                mtls::check(claims, policy, client_thumbprint).map_err(VerifyError::Binding)
            }
        }
    }
}
