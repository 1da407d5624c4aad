//! The authentication decision for one request, free of Apache types: token in, outcome out.
//! The Apache layer (src/apache/) turns the outcome into r->user, headers, variables and a status.

use serde_json::{Map, Value};

use crate::challenge::{self, www_authenticate};
use crate::config::DirConfig;
use crate::pass;
use crate::token::{self, TokenSource};
use crate::verify::{ParsedToken, Verifier};

/// What the authentication step needs from a request.
pub trait Request: TokenSource {
    /// `AuthName`, for the `realm` of challenges.
    fn auth_name(&self) -> Option<&str>;
    /// base64url SHA-256 thumbprint of the TLS client certificate, if one was presented.
    fn client_thumbprint(&self) -> Option<String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `AuthType oauth2`: a missing token is refused.
    OAuth2,
    /// `AuthType auth-openidc`: a missing token is left to mod_auth_openidc.
    OpenIdc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Not ours to decide (another module may authenticate).
    Declined,
    Refused {
        status: u16,
        www_authenticate: String,
        /// One log line with the reason; never contains the token.
        reason: String,
        level: LogLevel,
    },
    Granted {
        user: String,
        /// `(name, value)` for request headers and environment variables, in claim order.
        pass: Vec<(String, String)>,
        /// The verifier that accepted, for the debug log.
        verifier: String,
    },
}

/// The claim that becomes `r->user` (`OAuth2TargetPass remote_user_claim`, default `sub`).
const REMOTE_USER_CLAIM: &str = "sub";

pub fn authenticate(cfg: &DirConfig, req: &impl Request, mode: Mode, now: i64) -> Outcome {
    let realm = req.auth_name();
    let refuse = |error, reason: String, level| Outcome::Refused {
        status: 401,
        www_authenticate: www_authenticate("Bearer", realm, error),
        reason,
        level,
    };

    let Some(token) = token::find(req) else {
        return match mode {
            Mode::OpenIdc => Outcome::Declined,
            Mode::OAuth2 => refuse(
                challenge::NO_TOKEN,
                "no bearer token found in the request".into(),
                LogLevel::Info,
            ),
        };
    };

    let verifiers: &[Verifier] = cfg.verifiers.as_deref().map_or(&[], |v| v.as_slice());
    if verifiers.is_empty() {
        return refuse(
            challenge::BAD_TOKEN,
            "no OAuth2TokenVerify is configured for this location".into(),
            LogLevel::Error,
        );
    }

    let parsed = ParsedToken::parse(token);
    let mut reasons = Vec::with_capacity(verifiers.len());
    for verifier in verifiers {
        let claims = match verifier.verify(&parsed, now) {
            Ok(claims) => claims,
            Err(e) => {
                reasons.push(format!("{}: {e}", verifier.label));
                continue;
            }
        };
        // The winner's own proof-of-possession settings apply (the C module used the first verifier's).
        if let Err(e) = verifier.check_binding(&claims, || req.client_thumbprint()) {
            return refuse(
                challenge::BAD_TOKEN,
                format!("token refused: {}: {e}", verifier.label),
                LogLevel::Warn,
            );
        }
        return grant(claims, token, verifier, &refuse);
    }
    refuse(
        challenge::BAD_TOKEN,
        format!("token refused: {}", reasons.join("; ")),
        LogLevel::Warn,
    )
}

fn grant(
    claims: Map<String, Value>,
    token: &str,
    verifier: &Verifier,
    refuse: &dyn Fn((&'static str, &'static str), String, LogLevel) -> Outcome,
) -> Outcome {
    let user = match claims.get(REMOTE_USER_CLAIM) {
        Some(Value::String(user)) if !user.is_empty() => pass::header_safe(user),
        _ => {
            return refuse(
                challenge::NO_USER,
                format!(
                    "token verified by {} but its \"{REMOTE_USER_CLAIM}\" claim is missing or not a non-empty string",
                    verifier.label
                ),
                LogLevel::Warn,
            );
        }
    };
    let mut vars = Vec::with_capacity(claims.len() + 1);
    for (name, value) in &claims {
        vars.push((pass::claim_name(pass::DEFAULT_PREFIX, name), pass::claim_value(value)));
    }
    // The C module also passes the token itself; backends that call further APIs rely on it.
    vars.push((
        pass::claim_name(pass::DEFAULT_PREFIX, "access_token"),
        pass::header_safe(token),
    ));
    Outcome::Granted { user, pass: vars, verifier: verifier.label.clone() }
}
