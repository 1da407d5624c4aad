//! The verifiers of `OAuth2TokenVerify`: each one turns a token into a verified claim set or a
//! reason for refusal. Several verifiers are tried in order; the first that accepts wins.

pub(crate) mod accepted;
mod alb;
pub(crate) mod claims;
pub(crate) mod memo;
pub(crate) mod result_cache;

use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::jose::{self, JoseError, Jws, Key};
use crate::metrics::{self, CacheLayer};
use crate::pop::dpop::{DpopPolicy, ProofKeys};
use crate::pop::mtls::{self, BindingError, MtlsPolicy};
use crate::remote::alb::{AlbError, AlbKeys};
use crate::remote::introspect::{IntrospectError, Introspector};
use crate::remote::keys::RemoteKeys;
use crate::remote::metadata::Metadata;
use claims::{ClaimError, ClaimPolicy};
use result_cache::{ResultCache, ttl_for};

pub(crate) use accepted::{Accepted, Claims, Jkt};

/// Proof of possession required on top of a valid token (`type=` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    Bearer,
    Mtls(MtlsPolicy),
    /// RFC 9449: every token needs a DPoP proof by the key it is bound to.
    Dpop,
}

/// How DPoP proofs are checked for this verifier's tokens, and where their `jti` are remembered.
#[derive(Clone)]
pub(crate) struct DpopBinding {
    pub(crate) policy: DpopPolicy,
    /// The replay store; `None` only for an `.htaccess` verifier read with no cache at all.
    pub(crate) replay: Option<Arc<Cache>>,
    /// Proof keys seen recently, imported once.
    pub(crate) keys: Arc<ProofKeys>,
}

/// Where a verifier gets its answer.
#[derive(Clone)]
pub(crate) enum Source {
    /// Keys written in the configuration (`jwk`, `pem`, `pubkey`, `plain`, ...).
    Keys(Vec<Key>),
    /// Keys fetched from a URL (`jwks_uri`, `eckey_uri`).
    Remote(Arc<RemoteKeys>),
    /// RFC 7662 introspection (`introspect`).
    Introspect(Arc<Introspector>),
    /// Discovery (`metadata`): JWTs through the discovered JWKS, others through introspection,
    /// whose answers meet `introspected` (the line's policy as an `introspect` line would have it).
    Metadata {
        metadata: Arc<Metadata>,
        introspected: ClaimPolicy,
    },
    /// AWS ALB `x-amzn-oidc-data` tokens (`aws_alb`): the key named by the token's `kid`.
    AwsAlb(Arc<AlbKeys>),
}

/// One `OAuth2TokenVerify` line.
#[derive(Clone)]
pub(crate) struct Verifier {
    /// Human-readable origin for log lines, e.g. `jwk (RSA 2048-bit at site.conf:12)`.
    pub(crate) label: Arc<str>,
    pub(crate) source: Source,
    pub(crate) claims: ClaimPolicy,
    pub(crate) binding: Binding,
    /// `mtls.header`: a certificate forwarded by a trusted proxy, used when the connection itself
    /// has none (src/proxy/).
    pub(crate) cert_header: Option<crate::proxy::CertHeader>,
    pub(crate) dpop: DpopBinding,
    pub(crate) results: ResultCaching,
}

/// Where accepted tokens are remembered. Entries are bound to the verifier's configuration
/// (a token accepted by a lax verifier is not accepted from cache by a strict one), keyed by a
/// hash of that identity and the token, and never kept past the token's `exp`.
#[derive(Clone)]
pub(crate) struct ResultCaching {
    /// SHA-256 of the directive's type, value and options.
    pub(crate) identity: [u8; 32],
    /// `expiry`: how long an accepted result is reused (default 300 s).
    pub(crate) ttl: Duration,
    /// In this process (the hot path: no lock shared with other children, no round trip).
    pub(crate) front: Arc<ResultCache>,
    /// Shared with other children and hosts (`verify.cache`); `None` when not worth it.
    pub(crate) shared: Option<Arc<Cache>>,
}

impl ResultCaching {
    pub(crate) fn new(identity: [u8; 32], ttl: Duration, shared: Option<Arc<Cache>>) -> Self {
        ResultCaching {
            identity,
            ttl,
            front: Arc::new(ResultCache::new(FRONT_ENTRIES)),
            shared,
        }
    }

    fn key(&self, token: &str) -> [u8; 32] {
        crate::digest::sha256(&[&self.identity, token.as_bytes()])
    }
}

/// Accepted tokens remembered per verifier in each process. An entry (claims and what they pass to
/// the backend, the token included) takes 2-3 KB, and prefork runs a copy per child: 512 keep a
/// child under 1.5 MB per verifier while the hot tokens of its connections stay cached; the shared
/// cache (shm by default) answers for the rest.
const FRONT_ENTRIES: usize = 512;
const RESULT_NAMESPACE: &str = "result";

/// Why one verifier did not accept a token (proof of possession is checked apart: see
/// [`Verifier::check_binding`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VerifyError {
    Malformed(JoseError),
    /// No configured key has the token's `kid`.
    NoKeyForKid,
    /// Keys were tried; the reason from the last one.
    Signature(JoseError),
    Payload(JoseError),
    Claims(ClaimError),
    /// The key set (`jwks_uri`, `eckey_uri`, or the discovered one) could not be had.
    KeysUnavailable(String),
    /// The discovery document (`metadata`) could not be had.
    MetadataUnavailable(String),
    /// The introspection endpoint did not accept the token.
    Introspection(IntrospectError),
    /// `metadata`: not a JWT, and the discovery document names no introspection endpoint.
    NotIntrospectable,
    IssuerMismatch,
    /// `aws_alb`: the header, or the key its `kid` names, is not the load balancer's.
    Alb(AlbError),
}

impl VerifyError {
    /// A short stable name for the reason (for metrics; never data from the token).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::NoKeyForKid => "unknown_kid",
            VerifyError::Signature(_) => "bad_signature",
            VerifyError::Payload(_) => "bad_payload",
            VerifyError::Claims(e) => e.label(),
            VerifyError::KeysUnavailable(_) => "keys_unavailable",
            VerifyError::MetadataUnavailable(_) => "metadata_unavailable",
            VerifyError::Introspection(e) => e.label(),
            VerifyError::NotIntrospectable => "not_introspectable",
            VerifyError::IssuerMismatch => "issuer_mismatch",
            VerifyError::Alb(e) => e.label(),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(e) => write!(f, "malformed token: {e}"),
            VerifyError::NoKeyForKid => write!(f, "no key has the token's kid"),
            VerifyError::Signature(e) => write!(f, "signature not verified: {e}"),
            VerifyError::Payload(e) => write!(f, "bad payload: {e}"),
            VerifyError::Claims(e) => write!(f, "{e}"),
            VerifyError::KeysUnavailable(e) | VerifyError::MetadataUnavailable(e) => f.write_str(e),
            VerifyError::Introspection(e) => write!(f, "{e}"),
            VerifyError::NotIntrospectable => {
                f.write_str("not a JWT and the metadata has no introspection endpoint")
            }
            VerifyError::IssuerMismatch => {
                write!(f, "issuer (iss) is not the one of the discovered metadata")
            }
            VerifyError::Alb(e) => write!(f, "{e}"),
        }
    }
}

/// The token, parsed once and shared by all verifiers of a request.
/// Where an accepted result came from (for the debug log, and tests that count verifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Verified,
    ProcessCache,
    SharedCache,
    /// The token accepted on the previous request of the same connection ([`memo`]).
    ConnectionMemo,
}

impl Origin {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Origin::Verified => "verified",
            Origin::ProcessCache => "from this process's cache",
            Origin::SharedCache => "from the shared cache",
            Origin::ConnectionMemo => "as on this connection's previous request",
        }
    }
}

/// A result as the shared cache keeps it: until when it may be used (Unix seconds, 8 bytes
/// big-endian), then the claims as JSON. Every process that reads it keeps it no longer than that,
/// so a result is reused for `expiry` in all, as in the C module's single cache, not for `expiry`
/// again in each process that found it there.
fn shared_entry(claims: &Accepted, now: i64, ttl: Duration) -> Option<Vec<u8>> {
    let until = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let mut entry = until.to_be_bytes().to_vec();
    serde_json::to_writer(&mut entry, claims.claims()).ok()?;
    Some(entry)
}

/// An accepted token: its claims, where the answer came from, and until when a cache may answer
/// for the same token again.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) claims: Claims,
    pub(crate) origin: Origin,
    /// Unix seconds; `None` when results are not cached (`expiry=0`).
    pub(crate) reusable_until: Option<i64>,
}

impl Answer {
    /// Reusable for `left` from `now` on.
    fn reusable(claims: Claims, origin: Origin, now: i64, left: Duration) -> Answer {
        // Whole seconds, rounded down: never later than the cache entry itself.
        let left = i64::try_from(left.as_secs()).unwrap_or(i64::MAX);
        Answer {
            claims,
            origin,
            reusable_until: Some(now.saturating_add(left)),
        }
    }
}

/// The token of a request, parsed at most once (and not at all when a cached result answers).
pub(crate) struct ParsedToken<'a> {
    raw: &'a str,
    jws: std::cell::OnceCell<Result<Jws<'a>, JoseError>>,
    /// Read as AWS ALB sends it (`=` padding allowed), for `aws_alb` verifiers only.
    padded: std::cell::OnceCell<Result<Jws<'a>, JoseError>>,
}

impl<'a> ParsedToken<'a> {
    pub(crate) fn parse(token: &'a str) -> ParsedToken<'a> {
        ParsedToken {
            raw: token,
            jws: std::cell::OnceCell::new(),
            padded: std::cell::OnceCell::new(),
        }
    }

    fn jws(&self) -> &Result<Jws<'a>, JoseError> {
        self.jws.get_or_init(|| Jws::parse(self.raw))
    }

    fn padded_jws(&self) -> &Result<Jws<'a>, JoseError> {
        self.padded.get_or_init(|| Jws::parse_padded(self.raw))
    }
}

impl Verifier {
    /// Signature (or introspection) and claims, from a cache where one has them; proof of
    /// possession is checked separately by [`Verifier::check_binding`].
    pub(crate) fn verify(&self, token: &ParsedToken, now: i64) -> Result<Answer, VerifyError> {
        let r = &self.results;
        if r.ttl.is_zero() {
            return self.verify_uncached(token, now).map(|claims| Answer {
                claims,
                origin: Origin::Verified,
                reusable_until: None,
            });
        }
        let key = r.key(token.raw);
        let front = r.front.get(&key);
        // Re-checked: time-based rules (e.g. verify.iat.slack_before) may have changed the answer.
        let front = front.filter(|(claims, _)| {
            self.reuse_policy()
                .recheck_times(claims.times(), now)
                .is_ok()
        });
        metrics::cache(CacheLayer::Process, front.is_some());
        if let Some((claims, left)) = front {
            return Ok(Answer::reusable(claims, Origin::ProcessCache, now, left));
        }
        let shared = self.shared_lookup(&key, now);
        if r.shared.is_some() {
            metrics::cache(CacheLayer::Shared, shared.is_some());
        }
        if let Some((claims, left)) = shared {
            // What the entry has left, not a new `expiry`: reused from here it lives no longer.
            let ttl = ttl_for(&claims, r.ttl, now).min(left);
            r.front.put(key, claims.clone(), ttl);
            return Ok(Answer::reusable(claims, Origin::SharedCache, now, ttl));
        }
        let claims = self.verify_uncached(token, now)?;
        let ttl = ttl_for(&claims, r.ttl, now);
        let shared = r.shared.as_ref().filter(|shared| {
            shared_entry(&claims, now, ttl)
                .is_some_and(|entry| shared.set(RESULT_NAMESPACE, &key, &entry, ttl))
        });
        // With the result in shared memory, this process's cache takes the token when it comes
        // back (from there): a flood of tokens used once does not push out the ones in use. With a
        // network cache (a round trip away) or none, or when the shared cache did not take it, the
        // result goes to this process's cache now.
        if !shared.is_some_and(|shared| shared.is_local_memory()) {
            r.front.put(key, claims.clone(), ttl);
        }
        Ok(Answer::reusable(claims, Origin::Verified, now, ttl))
    }

    /// The claims of a shared entry and how long the entry has left (see [`shared_entry`]).
    fn shared_lookup(&self, key: &[u8; 32], now: i64) -> Option<(Claims, Duration)> {
        let bytes = self.results.shared.as_ref()?.get(RESULT_NAMESPACE, key)?;
        let (until, json) = bytes.split_first_chunk::<8>()?;
        let left = i64::from_be_bytes(*until)
            .checked_sub(now)
            .filter(|s| *s > 0)?;
        let claims = jose::json::parse_object_as(json, "cached result").ok()?;
        self.reuse_policy().check(&claims, now).ok()?;
        Some((
            Accepted::new(claims),
            Duration::from_secs(left.unsigned_abs()),
        ))
    }

    /// The claim checks that every result this verifier accepted met. For `metadata` those of
    /// its introspection path: they differ from the key-set path's only where they are less
    /// strict (an answer need not carry `exp`), so JWT results meet them too, and an accepted
    /// introspection answer is not turned away from the cache (and sent to the AS again).
    fn reuse_policy(&self) -> &ClaimPolicy {
        match &self.source {
            Source::Metadata { introspected, .. } => introspected,
            _ => &self.claims,
        }
    }

    fn verify_uncached(&self, token: &ParsedToken, now: i64) -> Result<Claims, VerifyError> {
        match &self.source {
            Source::Keys(keys) => self.verify_jwt(token, keys, now),
            Source::Remote(remote) => self.verify_remote_jwt(token, remote, now, None),
            Source::Introspect(i) => self.verify_introspect(token, i, &self.claims, now, None),
            Source::Metadata {
                metadata,
                introspected,
            } => self.verify_metadata(token, metadata, introspected, now),
            Source::AwsAlb(alb) => self.verify_alb(token, alb, now),
        }
    }

    fn verify_jwt(
        &self,
        token: &ParsedToken,
        keys: &[Key],
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let jws = token
            .jws()
            .as_ref()
            .map_err(|e| VerifyError::Malformed(e.clone()))?;
        verify_signature(jws, keys)?;
        self.check_claims(jws, now)
    }

    /// A token whose `kid` is unknown makes the key set refetch (rate-limited); nothing else does.
    fn verify_remote_jwt(
        &self,
        token: &ParsedToken,
        remote: &RemoteKeys,
        now: i64,
        issuer: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        let jws = token
            .jws()
            .as_ref()
            .map_err(|e| VerifyError::Malformed(e.clone()))?;
        let keys = remote.keys().map_err(VerifyError::KeysUnavailable)?;
        match verify_signature(jws, &keys) {
            Err(VerifyError::NoKeyForKid) => match remote.refresh_for_unknown_kid(&keys) {
                Some(newer) => verify_signature(jws, &newer)?,
                None => return Err(VerifyError::NoKeyForKid),
            },
            other => other?,
        }
        let claims = self.check_claims(jws, now)?;
        check_issuer(&claims, issuer, true)?;
        Ok(claims)
    }

    fn verify_introspect(
        &self,
        token: &ParsedToken,
        introspector: &Introspector,
        policy: &ClaimPolicy,
        now: i64,
        issuer: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        let claims = introspector
            .introspect(token.raw, now)
            .map_err(VerifyError::Introspection)?;
        policy.check(&claims, now).map_err(VerifyError::Claims)?;
        check_issuer(&claims, issuer, false)?;
        Ok(Accepted::new(claims))
    }

    /// JWT-looking tokens through the discovered JWKS; others, and JWTs the key set cannot judge
    /// (no key for them, keys unavailable, signature not verified) unless they name another
    /// issuer, through the discovered introspection endpoint.
    fn verify_metadata(
        &self,
        token: &ParsedToken,
        metadata: &Metadata,
        introspected: &ClaimPolicy,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let d = metadata
            .discovered()
            .map_err(VerifyError::MetadataUnavailable)?;
        let mut jwt_error = None;
        if let Ok(jws) = token.jws() {
            if let Some(keys) = &d.keys {
                match self.verify_remote_jwt(token, keys, now, Some(&d.issuer)) {
                    Ok(claims) => return Ok(claims),
                    // The signature verified: the claims are the issuer's own, and this line
                    // refused them. No introspection answer overrules that (one that left out
                    // `exp` or `aud` would otherwise let an expired or foreign token in).
                    Err(e @ (VerifyError::Claims(_) | VerifyError::IssuerMismatch)) => {
                        return Err(e);
                    }
                    Err(e) => jwt_error = Some(e),
                }
            }
            // A JWT that names another issuer is not shown to this one's introspection endpoint:
            // it would learn a token of another server (e.g. of the next `metadata` line).
            if names_another_issuer(jws, &d.issuer) {
                return Err(VerifyError::IssuerMismatch);
            }
        }
        match (&d.introspector, jwt_error) {
            (Some(i), _) => self.verify_introspect(token, i, introspected, now, Some(&d.issuer)),
            (None, Some(e)) => Err(e),
            (None, None) => Err(VerifyError::NotIntrospectable),
        }
    }

    /// Whether this verifier reads AWS ALB's `x-amzn-oidc-data` header (see [`crate::token`]).
    pub(crate) fn reads_alb_header(&self) -> bool {
        matches!(self.source, Source::AwsAlb(_))
    }

    fn check_claims(&self, jws: &Jws, now: i64) -> Result<Claims, VerifyError> {
        let claims =
            jose::json::parse_object_as(&jws.payload, "payload").map_err(VerifyError::Payload)?;
        self.claims
            .check(&claims, now)
            .map_err(VerifyError::Claims)?;
        Ok(Accepted::new(claims))
    }

    pub(crate) fn check_binding<'a>(
        &self,
        claims: &Accepted,
        client_thumbprint: impl FnOnce() -> Option<&'a str>,
    ) -> Result<(), BindingError> {
        match self.binding {
            Binding::Bearer | Binding::Dpop => Ok(()),
            Binding::Mtls(policy) => {
                mtls::check(claims.bound_thumbprint(), policy, client_thumbprint)
            }
        }
    }
}

/// As the C module selects keys: a key is skipped when both it and the token name a `kid` and they differ;
/// every other key is tried in order until one verifies.
fn verify_signature(jws: &Jws, keys: &[Key]) -> Result<(), VerifyError> {
    let token_kid = jws.header.kid.as_deref();
    let mut last = None;
    for key in keys {
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

/// Whether the (not yet verified) payload of `jws` has an `iss` other than `issuer`.
fn names_another_issuer(jws: &Jws, issuer: &str) -> bool {
    jose::json::parse_object_as(&jws.payload, "payload").is_ok_and(|claims| {
        claims
            .get("iss")
            .is_some_and(|iss| iss.as_str() != Some(issuer))
    })
}

/// With discovery, tokens must come from the discovered issuer: JWTs must carry it, introspection
/// responses must not name another one.
fn check_issuer(
    claims: &Map<String, Value>,
    issuer: Option<&str>,
    required: bool,
) -> Result<(), VerifyError> {
    let Some(expected) = issuer else {
        return Ok(());
    };
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected => Ok(()),
        None if !required && !claims.contains_key("iss") => Ok(()),
        _ => Err(VerifyError::IssuerMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::verifier::{self, Origin as At};
    use crate::jose::b64;
    use openssl::bn::{BigNum, BigNumContext, BigNumRef};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::ecdsa::EcdsaSig;
    use openssl::nid::Nid;

    const NOW: i64 = 1_800_000_000;

    /// An ES256 verifier for a fresh P-256 key, the key, and the curve order.
    fn es256() -> (Verifier, EcKey<openssl::pkey::Private>, BigNum) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let (mut x, mut y, mut n) = (
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
        );
        key.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        group.order(&mut n, &mut ctx).unwrap();
        let coord = |v: &BigNum| b64::encode(&v.to_vec_padded(32).unwrap());
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            coord(&x),
            coord(&y)
        );
        let at = At {
            file: "t.conf",
            line: 1,
        };
        let mut caches = crate::cache::registry::CacheRegistry::default();
        let parsed = verifier::parse("jwk", &jwk, Some("expiry=60"), &at, &mut caches).unwrap();
        (parsed.verifier, key, n)
    }

    /// A compact ES256 token with signature (r, s).
    fn token(input: &str, r: &BigNumRef, s: &BigNumRef) -> String {
        let mut sig = r.to_vec_padded(32).unwrap();
        sig.extend(s.to_vec_padded(32).unwrap());
        format!("{input}.{}", b64::encode(&sig))
    }

    /// The result caches are keyed by the token's exact bytes, looked up before it is parsed: a
    /// variant of an accepted token never answers from the cache. A non-canonical base64url
    /// signature is then refused by the strict parser; an ECDSA signature with s replaced by n - s
    /// (which ECDSA cannot rule out) verifies on its own, with the very claims the issuer signed.
    #[test]
    fn variants_of_an_accepted_token_are_never_answered_from_the_cache() {
        let (v, key, n) = es256();
        let input = format!(
            "{}.{}",
            b64::encode(br#"{"alg":"ES256"}"#),
            b64::encode(format!(r#"{{"sub":"alice","exp":{}}}"#, NOW + 600).as_bytes())
        );
        let digest = openssl::sha::sha256(input.as_bytes());
        let sig = EcdsaSig::sign(&digest, &key).unwrap();
        let original = token(&input, sig.r(), sig.s());
        let first = v.verify(&ParsedToken::parse(&original), NOW).unwrap();
        assert_eq!(first.origin, Origin::Verified);
        let again = v.verify(&ParsedToken::parse(&original), NOW).unwrap();
        assert_ne!(
            again.origin,
            Origin::Verified,
            "the original answers from a cache"
        );

        // 64 bytes: 86 characters, the last one with 4 unused bits; set one of them.
        let (head, last) = original.split_at(original.len() - 1);
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let at = alphabet.find(last).unwrap();
        let bumped = format!("{head}{}", &alphabet[at + 1..at + 2]);
        assert!(matches!(
            v.verify(&ParsedToken::parse(&bumped), NOW),
            Err(VerifyError::Malformed(JoseError::Base64("signature")))
        ));

        let mut flipped_s = BigNum::new().unwrap();
        flipped_s.checked_sub(&n, sig.s()).unwrap();
        let malleated = token(&input, sig.r(), &flipped_s);
        assert_ne!(malleated, original);
        let answer = v.verify(&ParsedToken::parse(&malleated), NOW).unwrap();
        assert_eq!(answer.origin, Origin::Verified, "not the original's entry");
        assert_eq!(answer.claims.claims(), first.claims.claims());
    }
}
