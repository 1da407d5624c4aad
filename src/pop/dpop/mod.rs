//! RFC 9449 DPoP at the resource server: the checks of one request's proof (section 4.3) and of
//! its binding to the access token (section 7.1), the `type=dpop` settings, and stateless
//! server nonces (section 9, in `nonce`). Pure: no Apache types, no replay store (the caller
//! records [`CheckedProof::replay_key`] after every check passed, section 11.1).

mod error;
pub(crate) mod htu;
mod key;
mod key_cache;
pub(crate) mod nonce;

use std::time::Duration;

use serde_json::{Map, Value};

pub(crate) use error::DpopError;
pub(crate) use key_cache::ProofKeys;
pub(crate) use nonce::Nonces;

use crate::jose::alg::{Alg, Family};
use crate::jose::error::sanitize;
use crate::jose::{JoseError, Jws, b64, json};
use crate::options::{Options, Requirement};
use crate::request_url::RequestUrl;

/// Longest proof accepted, checked before it is parsed. A proof carrying an
/// RSA-8192 `jwk` and signature is under 4 KiB; real ones (EC) are well under 1 KiB.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti`: RFC 9449 section 4.2 asks for at least 96 bits of randomness, a UUID or a
/// base64url string of some 32 bytes; the bound keeps replay-store keys and log lines small.
pub(crate) const MAX_JTI_LEN: usize = 256;

/// Every asymmetric algorithm the JOSE core verifies, in the order `algs="..."` lists them.
const ASYMMETRIC: [Alg; 10] = [
    Alg::ES256,
    Alg::ES384,
    Alg::ES512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::EdDSA,
];
const ASYMMETRIC_NAMES: &str =
    "ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512 or EdDSA";

const DEFAULT_SLACK: u64 = 5;
const MAX_SLACK: u64 = 3600;
const DEFAULT_EXPIRY: u64 = 10;
const MAX_EXPIRY: u64 = 86_400;
const DEFAULT_NONCE_INTERVAL: u64 = 300;
const MIN_NONCE_INTERVAL: u64 = 2;
const MAX_NONCE_INTERVAL: u64 = 86_400;

/// One verifier's `type=dpop` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DpopPolicy {
    /// `dpop.algs`: the proof algorithms accepted (asymmetric only).
    pub(crate) algs: Vec<Alg>,
    /// `dpop.iat.verify`: skip, optional or required (default).
    pub(crate) iat_verify: Requirement,
    /// `dpop.iat.slack.before`: how old a proof's `iat` may be, in seconds (RFC 9449 section
    /// 11.1: the acceptance window, also the replay window).
    pub(crate) iat_slack_before: u64,
    /// `dpop.iat.slack.after`: how far in the future `iat` may be (clock skew), in seconds.
    pub(crate) iat_slack_after: u64,
    /// `dpop.expiry`: how long a `jti` is remembered; at least the `iat` window, so that a proof
    /// cannot be replayed once its `jti` is forgotten (and longer for a proof that needs it,
    /// [`CheckedProof::remember_for`]).
    pub(crate) expiry: Duration,
    /// Some with `dpop.nonce=on`: how long one nonce is issued for (`dpop.nonce.interval`).
    pub(crate) nonce_interval: Option<Duration>,
}

impl Default for DpopPolicy {
    fn default() -> DpopPolicy {
        DpopPolicy {
            algs: ASYMMETRIC.to_vec(),
            iat_verify: Requirement::Required,
            iat_slack_before: DEFAULT_SLACK,
            iat_slack_after: DEFAULT_SLACK,
            expiry: Duration::from_secs(DEFAULT_EXPIRY),
            nonce_interval: None,
        }
    }
}

impl DpopPolicy {
    /// Reads the `dpop.*` options of one `OAuth2TokenVerify` line; the message says what to
    /// write instead.
    pub(crate) fn parse(options: &Options) -> Result<DpopPolicy, String> {
        let algs = match options.get("dpop.algs") {
            None => ASYMMETRIC.to_vec(),
            Some(list) => parse_algs(list)?,
        };
        // As liboauth2 reads it: anything but skip/optional/required keeps the default.
        let iat_verify =
            Requirement::parse_or(options.get("dpop.iat.verify"), Requirement::Required);
        let iat_slack_before = seconds(options, "dpop.iat.slack.before", DEFAULT_SLACK, MAX_SLACK)?;
        let iat_slack_after = seconds(options, "dpop.iat.slack.after", DEFAULT_SLACK, MAX_SLACK)?;
        let window = match iat_verify {
            Requirement::Skip => 0,
            _ => iat_slack_before + iat_slack_after,
        };
        let expiry = match options.get("dpop.expiry") {
            None => DEFAULT_EXPIRY.max(window),
            Some(_) => {
                let expiry = seconds(options, "dpop.expiry", DEFAULT_EXPIRY, MAX_EXPIRY)?;
                if expiry == 0 {
                    return Err(
                        "dpop.expiry=0: the jti of a proof must be remembered for at least 1 \
                         second, or every proof could be replayed; the default is 10"
                            .to_owned(),
                    );
                }
                if expiry < window {
                    return Err(format!(
                        "dpop.expiry={expiry}: a proof is accepted for {window} seconds \
                         (dpop.iat.slack.before + dpop.iat.slack.after) and its jti must be \
                         remembered at least that long, or it could be replayed; set dpop.expiry \
                         to {} or more",
                        window
                    ));
                }
                expiry
            }
        };
        let nonce = match options.get("dpop.nonce") {
            None => false,
            Some(v) => {
                crate::options::flag::parse_flag(v).map_err(|e| format!("dpop.nonce={v}: {e}"))?
            }
        };
        let interval = seconds(
            options,
            "dpop.nonce.interval",
            DEFAULT_NONCE_INTERVAL,
            MAX_NONCE_INTERVAL,
        )?;
        if interval < MIN_NONCE_INTERVAL {
            return Err(format!(
                "dpop.nonce.interval={interval}: clients need time to use a nonce; \
                 give {MIN_NONCE_INTERVAL} seconds or more (default {DEFAULT_NONCE_INTERVAL})"
            ));
        }
        Ok(DpopPolicy {
            algs,
            iat_verify,
            iat_slack_before,
            iat_slack_after,
            expiry: Duration::from_secs(expiry),
            nonce_interval: nonce.then(|| Duration::from_secs(interval)),
        })
    }

    /// The `algs` parameter of a `WWW-Authenticate: DPoP` challenge (RFC 9449 section 7.1).
    pub(crate) fn algs_header_value(&self) -> String {
        let names: Vec<&str> = self.algs.iter().map(|a| a.name()).collect();
        names.join(" ")
    }
}

/// `dpop.algs`: names separated by spaces (`+` in the option string) or commas.
fn parse_algs(list: &str) -> Result<Vec<Alg>, String> {
    let mut algs = Vec::new();
    for name in list.split([' ', ',', '\t']).filter(|n| !n.is_empty()) {
        let alg = match Alg::from_name(name) {
            Some(alg) if alg.family() == Family::Hmac => {
                return Err(format!(
                    "dpop.algs: {name} is symmetric; DPoP proofs are signed with the client's \
                     private key: use {ASYMMETRIC_NAMES}"
                ));
            }
            Some(alg) => alg,
            None if name.eq_ignore_ascii_case("none") => {
                return Err(format!(
                    "dpop.algs: {name} is refused: a DPoP proof must be signed; use {ASYMMETRIC_NAMES}"
                ));
            }
            None => {
                let hint = ASYMMETRIC
                    .iter()
                    .find(|a| a.name().eq_ignore_ascii_case(name))
                    .map(|a| format!(" (names are case-sensitive: {a})"))
                    .unwrap_or_default();
                return Err(format!(
                    "dpop.algs: \"{}\" is not an algorithm DPoP proofs can use here{hint}; \
                     use {ASYMMETRIC_NAMES}",
                    sanitize(name)
                ));
            }
        };
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if algs.is_empty() {
        return Err(format!(
            "dpop.algs is empty: name the proof algorithms to accept, e.g. dpop.algs=ES256+PS256; \
             possible: {ASYMMETRIC_NAMES}"
        ));
    }
    Ok(algs)
}

/// A whole number of seconds from 0 to `max`.
fn seconds(options: &Options, name: &str, default: u64, max: u64) -> Result<u64, String> {
    match options.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{name}={v}: must be a whole number of seconds, 0 to {max}")),
    }
}

/// What one request presents for DPoP. No `Debug`: it holds the access token.
#[derive(Clone, Copy)]
pub(crate) struct Presented<'a> {
    /// Every `DPoP` request header value (0, 1 or several).
    pub(crate) proofs: &'a [&'a str],
    /// The request method exactly as received (RFC 9110 section 9.1: case-sensitive).
    pub(crate) method: &'a str,
    pub(crate) url: RequestUrl<'a>,
    /// The access token, for `ath`.
    pub(crate) token: &'a str,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedProof {
    /// RFC 7638 thumbprint of the proof key (equal to the token's `cnf.jkt`).
    pub(crate) jkt: String,
    pub(crate) jti: String,
    /// The proof's `iat` (whole seconds), or the check's `now` when it had none to check.
    pub(crate) iat: i64,
}

impl CheckedProof {
    /// The replay-store key of this proof (RFC 9449 section 11.1): a hash over the key thumbprint
    /// and `jti`, so `jti`s of different clients never collide and the store never holds the
    /// proof itself. The thumbprint (base64url) has no NUL, so the encoding is unambiguous.
    pub(crate) fn replay_key(&self) -> [u8; 32] {
        crate::digest::sha256(&[
            b"dpop-jti\0",
            self.jkt.as_bytes(),
            b"\0",
            self.jti.as_bytes(),
        ])
    }

    /// How long the replay store must remember this proof's `jti` (accepted at `now`): `dpop.expiry`,
    /// and at least until `check` refuses the proof as too old, the second after `iat` +
    /// `dpop.iat.slack.before` (a proof with the latest `iat` accepted outlives an expiry equal
    /// to the window by that second). With `dpop.iat.verify=skip` an `iat` bounds nothing.
    pub(crate) fn remember_for(&self, policy: &DpopPolicy, now: i64) -> Duration {
        if policy.iat_verify == Requirement::Skip {
            return policy.expiry;
        }
        let too_old_at = self
            .iat
            .saturating_add_unsigned(policy.iat_slack_before)
            .saturating_add(1);
        let left = u64::try_from(too_old_at.saturating_sub(now)).unwrap_or(0);
        policy.expiry.max(Duration::from_secs(left))
    }
}

/// Every check of RFC 9449 section 4.3 on the request's proof, then the token binding of section
/// 7.1 against the token's `cnf.jkt` (`bound_jkt`). Cheap checks run first; the signature is
/// verified after every check of the proof's content, the nonce after the signature (a
/// `use_dpop_nonce` answer only for an otherwise good proof), the binding last. `now` is in
/// seconds since the epoch. Replay is the caller's: it records `replay_key()` afterwards.
pub(crate) fn check(
    policy: &DpopPolicy,
    presented: &Presented<'_>,
    bound_jkt: Option<&str>,
    nonces: Option<&Nonces>,
    keys: &ProofKeys,
    now: i64,
) -> Result<CheckedProof, DpopError> {
    // Section 4.3 checks 1 and 2: exactly one proof, one compact JWS.
    let proof = single_proof(presented.proofs)?;
    let jws = Jws::parse(proof).map_err(|e| match e {
        JoseError::AlgNone => DpopError::AlgNotAllowed("none".to_owned()),
        JoseError::UnknownAlg(name) => DpopError::AlgNotAllowed(name),
        e => DpopError::Malformed(e),
    })?;
    // Check 4: typ. A media type: case-insensitive, "application/" may be written out
    // (RFC 7515 section 4.1.9).
    match jws.header.typ.as_deref() {
        Some(t)
            if t.eq_ignore_ascii_case("dpop+jwt")
                || t.eq_ignore_ascii_case("application/dpop+jwt") => {}
        other => return Err(DpopError::WrongTyp(other.map(sanitize))),
    }
    // Check 5: alg asymmetric and allowed.
    let alg = jws.header.alg;
    if alg.family() == Family::Hmac || !policy.algs.contains(&alg) {
        return Err(DpopError::AlgNotAllowed(alg.name().to_owned()));
    }
    // Check 7 and the bounds on an attacker-chosen key, before any use of it.
    let proof_key = key::proof_key(&jws.header.raw, alg, keys)?;
    let (key, jkt) = (&proof_key.key, &proof_key.jkt);
    // Check 3: the claims (the payload is only looked at; nothing acts on it before the
    // signature is verified below).
    let payload =
        json::parse_object_as(&jws.payload, "payload").map_err(DpopError::PayloadMalformed)?;
    let claims = Claims::read(&payload, policy.iat_verify)?;
    // Check 8: htm, exactly (methods are case-sensitive).
    if claims.htm != presented.method {
        return Err(DpopError::HtmMismatch {
            htm: sanitize(claims.htm),
            method: sanitize(presented.method),
        });
    }
    // Check 9: htu.
    let htu = htu::normalize(claims.htu).map_err(|why| DpopError::HtuInvalid {
        htu: sanitize(claims.htu),
        why,
    })?;
    let url = htu::request_url(&presented.url).map_err(DpopError::RequestUrlInvalid)?;
    if htu != url {
        return Err(DpopError::HtuMismatch {
            htu: sanitize(&htu),
            url: sanitize(&url),
        });
    }
    // Check 11: iat window (section 11.1).
    let iat = match claims.iat {
        Some(iat) => check_iat(policy, iat, now)?,
        None => payload
            .get("iat")
            .and_then(Value::as_f64)
            .map_or(now, whole_seconds),
    };
    // Check 12: ath = base64url(SHA-256(ASCII(access token))).
    let ath = b64::encode(&crate::digest::sha256(&[presented.token.as_bytes()]));
    if !crate::ct::eq(ath.as_bytes(), claims.ath.as_bytes()) {
        return Err(DpopError::AthMismatch);
    }
    // Check 6: the signature, by the header's own key.
    key.verify(&jws).map_err(|e| match e {
        JoseError::AlgKeyMismatch { .. } | JoseError::AlgNotAllowedByJwk => {
            DpopError::JwkAlgMismatch {
                alg,
                key: key.describe(),
            }
        }
        JoseError::Crypto(what) => DpopError::Internal(what),
        e => DpopError::SignatureInvalid(e),
    })?;
    // Check 10: a nonce this server (or one sharing its secret) issued.
    if let Some(nonces) = nonces {
        match payload.get("nonce") {
            None => return Err(DpopError::NonceMissing),
            Some(Value::String(nonce)) if nonces.is_valid(nonce, now) => {}
            Some(_) => return Err(DpopError::NonceInvalid),
        }
    }
    // Section 7.1 / 6.1: the token is bound to this proof key.
    let bound = bound_jkt.ok_or(DpopError::TokenNotBound)?;
    if !crate::ct::eq(jkt.as_bytes(), bound.as_bytes()) {
        return Err(DpopError::JktMismatch);
    }
    Ok(CheckedProof {
        jkt: jkt.clone(),
        jti: claims.jti.to_owned(),
        iat,
    })
}

/// The one proof of the request, trimmed of header whitespace and bounded in size.
fn single_proof<'a>(proofs: &[&'a str]) -> Result<&'a str, DpopError> {
    let proof = match proofs {
        [] => return Err(DpopError::NoProof),
        [one] => one.trim_matches([' ', '\t']),
        several => return Err(DpopError::SeveralProofs(several.len())),
    };
    if proof.is_empty() {
        return Err(DpopError::NoProof);
    }
    // httpd joins repeated request headers with ", "; a compact JWS has no comma.
    if proof.contains(',') {
        let count = proof.bytes().filter(|b| *b == b',').count();
        return Err(DpopError::SeveralProofs(count.saturating_add(1)));
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLarge(proof.len()));
    }
    Ok(proof)
}

/// The claims of section 4.2 that the checks use.
struct Claims<'p> {
    jti: &'p str,
    htm: &'p str,
    htu: &'p str,
    /// Present when the policy checks `iat` and the proof has one.
    iat: Option<f64>,
    ath: &'p str,
}

impl<'p> Claims<'p> {
    fn read(payload: &'p Map<String, Value>, iat_verify: Requirement) -> Result<Self, DpopError> {
        let jti = string_claim(payload, "jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(DpopError::JtiInvalid);
        }
        let htm = string_claim(payload, "htm")?;
        let htu = string_claim(payload, "htu")?;
        let iat = match (iat_verify, payload.get("iat")) {
            (Requirement::Skip, _) => None,
            (Requirement::Required, None) => return Err(DpopError::ClaimMissing("iat")),
            (Requirement::Optional, None) => None,
            (_, Some(Value::Number(n))) => n.as_f64(),
            (_, Some(_)) => return Err(DpopError::ClaimType("iat")),
        };
        // Required: this module only sees proofs that come with an access token.
        let ath = string_claim(payload, "ath")?;
        Ok(Claims {
            jti,
            htm,
            htu,
            iat,
            ath,
        })
    }
}

fn string_claim<'p>(
    payload: &'p Map<String, Value>,
    name: &'static str,
) -> Result<&'p str, DpopError> {
    match payload.get(name) {
        None => Err(DpopError::ClaimMissing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(DpopError::ClaimType(name)),
    }
}

/// `iat` within [now - slack.before, now + slack.after], both edges included.
fn check_iat(policy: &DpopPolicy, iat: f64, now: i64) -> Result<i64, DpopError> {
    let nowf = now as f64;
    if nowf - (policy.iat_slack_before as f64) > iat {
        return Err(DpopError::IatTooOld {
            iat: whole_seconds(iat),
            now,
        });
    }
    if nowf + (policy.iat_slack_after as f64) < iat {
        return Err(DpopError::IatInFuture {
            iat: whole_seconds(iat),
            now,
        });
    }
    Ok(whole_seconds(iat))
}

/// NumericDate (RFC 7519 section 2) may have a fraction; `as` saturates out-of-range values.
fn whole_seconds(t: f64) -> i64 {
    t.floor() as i64
}

#[cfg(test)]
mod tests;
