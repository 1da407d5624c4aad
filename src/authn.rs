//! The authentication decision for one request, free of Apache types: token in, outcome out.
//! The Apache layer (src/apache/) turns the outcome into r->user, headers, variables and a status.

use serde_json::Value;
use std::sync::Arc;

use crate::challenge::{Challenges, Scheme};
use crate::config::DirConfig;
use crate::config::sources::Strip;
use crate::generation::Generation;
use crate::metrics::{self, CacheLayer};
use crate::pass::{self, Passed};
use crate::pop::dpop::{self, Nonces, Presented};
use crate::pop::mtls::BindingError;
use crate::refusal::{Refusal, Rejection};
use crate::request_url::RequestUrl;
use crate::resource_metadata::HostKey;
use crate::token::{self, Found, StripAction, TokenSource};
use crate::verify::memo::ConnectionMemo;
use crate::verify::{Accepted, Binding, Claims, DpopBinding, Jkt, Origin, ParsedToken, Verifier};

/// What the authentication step needs from a request.
pub(crate) trait Request: TokenSource {
    /// `AuthName`, for the `realm` of challenges.
    fn auth_name(&self) -> Option<&str>;
    /// base64url SHA-256 thumbprint of the TLS client certificate, if one was presented. It may
    /// come from a memo of this connection: a certificate whose key the connection proved to hold.
    fn client_thumbprint(&self) -> Option<&str>;
    /// The same, read from the TLS layer now (after a renegotiation it can differ from the memo).
    fn client_thumbprint_now(&self) -> Option<&str> {
        self.client_thumbprint()
    }
    /// What this connection's previous request accepted, for keep-alive requests with the same
    /// token; `None` where there is no connection to remember it for.
    fn connection_memo(&self) -> Option<&ConnectionMemo> {
        None
    }
    /// Every `DPoP` request header value, in order (asked for only when a proof is needed).
    fn dpop_proofs(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The clock (seconds since the epoch) read again when a DPoP proof is checked; `None`: the
    /// time the request began. The verification before it can take long (introspection, key
    /// fetches), and a proof's `iat` window must be judged when its `jti` is recorded.
    fn clock(&self) -> Option<i64> {
        None
    }
    /// When the direct peer (the connection's client address) is an `OAuth2TrustedProxy` of this
    /// server, whose forwarding headers are believed: where those proxies write the public URL.
    fn trusted_proxy(&self) -> Option<crate::proxy::UrlFrom> {
        None
    }
    /// The request URL as Apache sees it (scheme, host and port as configured by `ServerName`
    /// and `UseCanonicalName`), for a DPoP proof's `htu`.
    fn url(&self) -> RequestUrl<'_>;
    /// The server (virtual host) that serves the request, for its RFC 9728 metadata URL.
    fn host(&self) -> Option<HostKey> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `AuthType oauth2`: a missing token is refused.
    OAuth2,
    /// `AuthType auth-openidc`: a missing token is left to mod_auth_openidc.
    OpenIdc,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Not ours to decide (another module may authenticate).
    Declined,
    /// Refused; the edge maps it with [`Refusal::response`].
    Refused {
        refusal: Refusal,
        challenges: Challenges,
    },
    Granted(Granted),
}

#[derive(Debug, PartialEq)]
pub(crate) struct Granted {
    /// The remote user and what goes to the backend; shared with the cached result when the same
    /// settings built it before.
    pub(crate) pass: Arc<Passed>,
    /// How to take the token out of the request for the backend, if `strip` asks for it.
    pub(crate) strip: Option<StripAction>,
    /// The verified claims, kept for `Require oauth2_claim`.
    pub(crate) claims: Claims,
    /// The verifier that accepted (its label, and its place in the location's list), and whether
    /// from a cache, for the debug log.
    pub(crate) verifier: Arc<str>,
    pub(crate) index: usize,
    pub(crate) origin: Origin,
    /// The next DPoP nonce, sent ahead of its interval (RFC 9449 section 8.2).
    pub(crate) dpop_nonce: Option<String>,
}

pub(crate) fn authenticate(
    cfg: &DirConfig,
    req: &impl Request,
    mode: Mode,
    now: i64,
    generation: &Generation,
) -> Outcome {
    let sources = cfg.sources();
    let verifiers = cfg.verifiers.as_deref().map_or(&[][..], |v| &v[..]);
    let dpop_location = verifiers.iter().find(|v| v.binding == Binding::Dpop);
    let refuse = |refusal| Outcome::Refused {
        refusal,
        challenges: challenges(
            sources.basic_only(),
            verifiers,
            dpop_location,
            generation.resource_metadata.challenge_url(req.host()),
        ),
    };

    let alb_location = verifiers.iter().any(Verifier::reads_alb_header);
    let found = dpop_location
        .and_then(|_| token::find_dpop(sources, req))
        .or_else(|| {
            alb_location
                .then(|| token::find_alb(sources, req))
                .flatten()
        })
        .or_else(|| token::find(sources, req));
    let Some(found) = found else {
        return match mode {
            Mode::OpenIdc => Outcome::Declined,
            Mode::OAuth2 => refuse(Refusal::NoToken),
        };
    };

    let Some(verifiers) = cfg.verifiers.as_ref().filter(|v| !v.is_empty()) else {
        return refuse(Refusal::NoVerifier);
    };

    // Bounded before any work, also for opaque tokens that would be sent to introspection.
    if found.token.len() > crate::jose::jws::MAX_TOKEN_LEN {
        return refuse(Refusal::TokenTooLong {
            len: found.token.len(),
        });
    }
    let parsed = ParsedToken::parse(&found.token);
    let memo = req.connection_memo();
    let mut rejections = Vec::new();
    for (index, verifier) in verifiers.iter().enumerate() {
        let recalled = memo.and_then(|m| {
            let claims = m.recall(verifiers, index, &found.token, now);
            metrics::cache(CacheLayer::Connection, claims.is_some());
            claims
        });
        let (claims, origin) = match recalled {
            Some(claims) => (claims, Origin::ConnectionMemo),
            None => match verifier.verify(&parsed, now) {
                Ok(answer) => {
                    if let (Some(memo), Some(until)) = (memo, answer.reusable_until) {
                        memo.remember(verifiers, index, &found.token, &answer.claims, until);
                    }
                    (answer.claims, answer.origin)
                }
                Err(error) => {
                    rejections.push(Rejection {
                        verifier: verifier.label.clone(),
                        error,
                    });
                    continue;
                }
            },
        };
        // The winner's own proof-of-possession settings apply (the C module used the first verifier's).
        if let Err(error) = check_binding(verifier, &claims, req) {
            return refuse(Refusal::Unbound {
                verifier: verifier.label.clone(),
                error,
            });
        }
        let dpop_nonce = if verifier.binding == Binding::Dpop || claims.bound_jkt().is_bound() {
            // A bound token accepted by a bearer verifier is held to the location's DPoP
            // settings (nonces, algorithms, replay store), not to a bearer verifier's defaults.
            let dpop = match dpop_location {
                Some(dpop_verifier) if verifier.binding != Binding::Dpop => &dpop_verifier.dpop,
                _ => &verifier.dpop,
            };
            match check_dpop(verifier, dpop, &claims, &found, req, now, generation) {
                Ok(next_nonce) => next_nonce,
                Err(refusal) => return refuse(refusal),
            }
        } else {
            None
        };
        let stripping = sources.strip == Strip::On;
        let claim = cfg.target_pass.remote_user_claim();
        let passed = pass::passed_once(&claims, &cfg.target_pass, stripping, || {
            let user = match claims.get(claim) {
                Some(Value::String(user)) if !user.is_empty() => pass::header_safe(user),
                _ => {
                    return Err(Refusal::NoRemoteUser {
                        verifier: verifier.label.clone(),
                        claim: claim.to_string(),
                    });
                }
            };
            pass::build(
                &cfg.target_pass,
                &claims,
                &user,
                (!stripping).then_some(&*found.token),
            )
            .map_err(|clash| Refusal::ClaimNameClash {
                verifier: verifier.label.clone(),
                clash,
            })
        });
        let passed = match passed {
            Ok(passed) => passed,
            Err(refusal) => return refuse(refusal),
        };
        return Outcome::Granted(Granted {
            pass: passed,
            strip: found.strip,
            claims,
            verifier: verifier.label.clone(),
            index,
            origin,
            dpop_nonce,
        });
    }
    refuse(Refusal::NotVerified(rejections))
}

/// The certificate binding of `verifier` for `claims` on this request's connection. The
/// connection's own certificate wins; without one, a certificate forwarded by a trusted proxy
/// (`mtls.header`) is used, read per request (one proxy connection carries many clients).
fn check_binding(
    verifier: &Verifier,
    claims: &Accepted,
    req: &impl Request,
) -> Result<(), BindingError> {
    match verifier.check_binding(claims, || req.client_thumbprint()) {
        // The memo is of an earlier certificate of this connection: ask the TLS layer again.
        Err(BindingError::Mismatch) => {
            verifier.check_binding(claims, || req.client_thumbprint_now())
        }
        Err(BindingError::NoCertificate) => match &verifier.cert_header {
            Some(header) if req.trusted_proxy().is_some() => {
                let forwarded = req
                    .header(&header.name)
                    .map(|value| header.certificate_der(value))
                    .transpose()
                    .map_err(BindingError::ForwardedCertificate)?
                    .flatten()
                    .map(|der| crate::pop::mtls::thumbprint_of_der(&der));
                verifier.check_binding(claims, || forwarded.as_deref())
            }
            _ => Err(BindingError::NoCertificate),
        },
        other => other,
    }
}

/// Whether a sub-request or internal redirect to a location with `cfg` may take the user this
/// module granted to the request it derives from (at a location with `parent`, by its verifier
/// `index`, with `claims`) without verifying again: only when both locations verify alike (the
/// same `OAuth2TokenVerify` lines and `OAuth2TargetPass`), and the certificate binding still holds
/// (a renegotiation may have replaced the certificate in between). Otherwise the request is
/// scrubbed and verified like any other (docs/compatibility.md, row "internal redirects and
/// sub-requests").
pub(crate) fn inherits(
    cfg: &DirConfig,
    parent: &DirConfig,
    index: usize,
    claims: &Accepted,
    req: &impl Request,
) -> bool {
    if !cfg.verifies_like(parent) {
        return false;
    }
    let Some(verifier) = cfg.verifiers.as_ref().and_then(|v| v.get(index)) else {
        return false;
    };
    check_binding(verifier, claims, req).is_ok()
}

/// The challenges of a location: the C module's (`Basic` when Basic is the only way to send a
/// token, else `Bearer`) unless every verifier is `type=dpop`; a DPoP one when any is; each
/// with the host's RFC 9728 metadata URL, if it publishes one.
fn challenges(
    basic_only: bool,
    verifiers: &[Verifier],
    dpop: Option<&Verifier>,
    resource_metadata: Option<Arc<str>>,
) -> Challenges {
    let all_dpop = !verifiers.is_empty() && verifiers.iter().all(|v| v.binding == Binding::Dpop);
    let scheme = if basic_only {
        Scheme::Basic
    } else {
        Scheme::Bearer
    };
    Challenges {
        bearer: (!all_dpop).then_some(scheme),
        dpop_algs: dpop.map(|v| v.dpop.policy.algs_header_value()),
        resource_metadata,
    }
}

/// RFC 9449 for a token that needs a proof: the DPoP scheme, a proof that passes every check of
/// section 4.3 by the key the token is bound to, then (and only then) its `jti` recorded as new.
/// Returns the next nonce when one is due (section 8.2).
fn check_dpop(
    verifier: &Verifier,
    dpop: &DpopBinding,
    claims: &Accepted,
    found: &Found,
    req: &impl Request,
    now: i64,
    generation: &Generation,
) -> Result<Option<String>, Refusal> {
    let label = || verifier.label.clone();
    // Judged at the time the jti is recorded below: a replay whose token verification outlasted
    // the first use's record (kept until that proof is too old) must be too old itself by then.
    let now = req.clock().map_or(now, |t| t.max(now));
    if !found.dpop_scheme {
        return Err(Refusal::DpopSchemeMissing { verifier: label() });
    }
    let bound = match claims.bound_jkt() {
        Jkt::Bound(jkt) => Some(&**jkt),
        Jkt::None => None,
        Jkt::Unreadable => return Err(Refusal::DpopBindingUnreadable { verifier: label() }),
    };
    let policy = &dpop.policy;
    let nonces = policy
        .nonce_interval
        .map(|interval| Nonces::new(generation.dpop_nonce_secret(), interval));
    let proofs = req.dpop_proofs();
    let presented = Presented {
        proofs: &proofs,
        method: req.method(),
        url: match req.trusted_proxy() {
            Some(from) => crate::proxy::public_url(req.url(), from, |name| req.header(name)),
            None => req.url(),
        },
        token: &found.token,
    };
    let checked = dpop::check(policy, &presented, bound, nonces.as_ref(), &dpop.keys, now);
    let proof = match checked {
        Ok(proof) => proof,
        Err(error) => {
            return Err(match (&nonces, error.is_nonce_problem()) {
                (Some(nonces), true) => Refusal::DpopNonce {
                    verifier: label(),
                    error,
                    nonce: nonces.issue(now),
                },
                _ => Refusal::DpopProof {
                    verifier: label(),
                    error,
                },
            });
        }
    };
    let Some(replay) = &dpop.replay else {
        return Err(Refusal::DpopReplayUnknown {
            verifier: label(),
            error: "no OAuth2Cache to remember proofs in".into(),
        });
    };
    // Shared memory starts empty with each configuration generation (httpd loads the module
    // afresh on a graceful restart): a proof issued before this one started may have been used
    // with the previous one, so it is not accepted (RFC 9449 section 11.1 lets the server bound
    // `iat`). Redis, memcached and file stores outlive restarts and need no such rule.
    // `iat` has whole seconds: a proof of the start's own second is let through (refusing it
    // would refuse every client right after a start); the remaining window is that one second.
    if replay.is_local_memory() && proof.iat < generation.started_at() {
        return Err(Refusal::DpopIssuedBeforeStart {
            verifier: label(),
            iat: proof.iat,
            started: generation.started_at(),
        });
    }
    let ttl = proof.remember_for(policy, now);
    match replay.insert_if_absent(REPLAY_NAMESPACE, &proof.replay_key(), b"", ttl) {
        Ok(true) => Ok(nonces.and_then(|n| n.next_if_near_rotation(now))),
        Ok(false) => Err(Refusal::DpopReplay { verifier: label() }),
        Err(e) => Err(Refusal::DpopReplayUnknown {
            verifier: label(),
            error: e.to_string(),
        }),
    }
}

/// Where proofs' `jti` are remembered in the replay store.
const REPLAY_NAMESPACE: &str = "dpop-jti";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::registry::CacheRegistry;
    use crate::config::verifier::{self, Origin};
    use crate::verify::VerifyError;
    use crate::verify::claims::ClaimError;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openssl::{hash::MessageDigest, pkey::PKey, rsa::Rsa, sign::Signer};
    use serde_json::json;
    use std::ffi::CStr;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    pub(super) struct Fake {
        authorization: Option<String>,
        env_token: Option<String>,
        realm: Option<&'static str>,
        thumbprint: Option<&'static str>,
        /// What the TLS layer says now, when it differs from the connection's memo.
        thumbprint_now: Option<Option<&'static str>>,
        /// `DPoP` header values.
        proofs: Vec<String>,
        /// Other request headers (name, value), and whether the peer is a trusted proxy.
        headers: Vec<(&'static str, String)>,
        trusted_peer: bool,
        host: Option<HostKey>,
        /// What the clock reads when the proof is checked, if not the request's start.
        clock: Option<i64>,
    }

    impl Fake {
        pub(super) fn bearer(token: &str) -> Fake {
            Fake {
                authorization: Some(format!("Bearer {token}")),
                env_token: None,
                realm: None,
                thumbprint: None,
                thumbprint_now: None,
                proofs: Vec::new(),
                headers: Vec::new(),
                trusted_peer: false,
                host: None,
                clock: None,
            }
        }
    }

    impl TokenSource for Fake {
        fn header(&self, name: &CStr) -> Option<&str> {
            if name == c"Authorization" {
                return self.authorization.as_deref();
            }
            let name = name.to_str().ok()?;
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn header_values(&self, name: &CStr) -> Vec<&[u8]> {
            self.header(name).map(str::as_bytes).into_iter().collect()
        }
        fn env(&self, name: &CStr) -> Option<&str> {
            (name == c"access_token")
                .then_some(self.env_token.as_deref())
                .flatten()
        }
        fn method(&self) -> &str {
            "GET"
        }
        fn query(&self) -> Option<&str> {
            None
        }
        fn form_body(&self, _: usize) -> Option<&[u8]> {
            None
        }
    }

    impl Request for Fake {
        fn url(&self) -> RequestUrl<'_> {
            RequestUrl {
                scheme: "https",
                host: "rs.example",
                port: 443,
                path: "/api",
            }
        }
        fn auth_name(&self) -> Option<&str> {
            self.realm
        }
        fn client_thumbprint(&self) -> Option<&str> {
            self.thumbprint
        }
        fn client_thumbprint_now(&self) -> Option<&str> {
            self.thumbprint_now.unwrap_or(self.thumbprint)
        }
        fn dpop_proofs(&self) -> Vec<&str> {
            self.proofs.iter().map(String::as_str).collect()
        }
        fn clock(&self) -> Option<i64> {
            self.clock
        }
        fn host(&self) -> Option<HostKey> {
            self.host
        }
        fn trusted_proxy(&self) -> Option<crate::proxy::UrlFrom> {
            self.trusted_peer.then_some(crate::proxy::UrlFrom::None)
        }
    }

    /// A location of a server configuration of its own (its own implicit shm cache).
    fn config(lines: &[(&str, &str, Option<&str>)]) -> DirConfig {
        config_in(&mut CacheRegistry::default(), lines)
    }

    /// A location of the server configuration whose `OAuth2Cache` lines are `caches`.
    fn config_in(caches: &mut CacheRegistry, lines: &[(&str, &str, Option<&str>)]) -> DirConfig {
        let mut cfg = DirConfig::default();
        for (kind, value, options) in lines {
            let origin = Origin {
                file: "t.conf",
                line: 1,
            };
            cfg.add_verifier(
                verifier::parse(kind, value, *options, &origin, caches)
                    .unwrap()
                    .verifier,
            );
        }
        cfg
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn hs256(secret: &str, header: serde_json::Value, claims: serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = PKey::hmac(secret.as_bytes()).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
        signer.update(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&signer.sign_to_vec().unwrap()))
    }

    fn token(claims: serde_json::Value) -> String {
        hs256(SECRET, json!({"alg": "HS256"}), claims)
    }

    fn good_claims() -> serde_json::Value {
        json!({"sub": "alice", "exp": NOW + 60, "scope": "read write"})
    }

    fn refusal_of(o: &Outcome) -> &Refusal {
        match o {
            Outcome::Refused { refusal, .. } => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The `WWW-Authenticate` value the edge sends for a refusal.
    fn challenge_of(o: &Outcome, realm: Option<&str>) -> String {
        match o {
            Outcome::Refused {
                refusal,
                challenges,
            } => refusal
                .response(challenges, realm)
                .www_authenticate
                .join("\n"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The single verifier's reason, for refusals by a one-verifier configuration.
    fn rejected_for(o: &Outcome) -> &VerifyError {
        match refusal_of(o) {
            Refusal::NotVerified(rejections) if rejections.len() == 1 => &rejections[0].error,
            other => panic!("expected one verifier's rejection, got {other:?}"),
        }
    }

    fn unbound_for(o: &Outcome) -> &BindingError {
        match refusal_of(o) {
            Refusal::Unbound { error, .. } => error,
            other => panic!("expected a binding refusal, got {other:?}"),
        }
    }

    #[test]
    fn no_token_is_invalid_request() {
        let cfg = config(&[("plain", SECRET, None)]);
        let req = Fake {
            authorization: None,
            env_token: None,
            realm: None,
            thumbprint: None,
            thumbprint_now: None,
            proofs: Vec::new(),
            headers: Vec::new(),
            trusted_peer: false,
            host: None,
            clock: None,
        };
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(refusal_of(&o), &Refusal::NoToken);
        assert_eq!(
            challenge_of(&o, None),
            r#"Bearer error="invalid_request", error_description="No bearer token found in the request.""#
        );
    }

    #[test]
    fn no_token_in_openidc_mode_is_declined() {
        let cfg = config(&[("plain", SECRET, None)]);
        let req = Fake {
            authorization: Some("Basic x".into()),
            env_token: None,
            realm: None,
            thumbprint: None,
            thumbprint_now: None,
            proofs: Vec::new(),
            headers: Vec::new(),
            trusted_peer: false,
            host: None,
            clock: None,
        };
        assert_eq!(
            authenticate(&cfg, &req, Mode::OpenIdc, NOW, &Generation::default()),
            Outcome::Declined
        );
    }

    /// With the shared memory cache (the default), a result enters this process's cache when its
    /// token comes back: a flood of single-use tokens does not push out a token in use.
    #[test]
    fn single_use_tokens_do_not_evict_a_token_in_use() {
        use crate::verify::Origin as Found;
        let cfg = config(&[("plain", SECRET, None)]);
        let verifier = &cfg.verifiers.as_ref().unwrap()[0];
        assert!(
            verifier
                .results
                .shared
                .as_ref()
                .is_some_and(|c| c.is_local_memory()),
            "the implicit shm cache is there"
        );
        let found = |t: &str| match authenticate(
            &cfg,
            &Fake::bearer(t),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        ) {
            Outcome::Granted(g) => g.origin,
            other => panic!("expected a grant, got {other:?}"),
        };
        let hot = token(json!({"sub": "hot-in-use", "exp": NOW + 60}));
        assert_eq!(found(&hot), Found::Verified);
        assert_eq!(found(&hot), Found::SharedCache, "kept in shm first");
        assert_eq!(
            found(&hot),
            Found::ProcessCache,
            "taken in when it came back"
        );
        // More single-use tokens than either cache holds (512 here, 1,000 in shm).
        for i in 0..2_000 {
            let once = token(json!({"sub": format!("once{i}"), "exp": NOW + 60}));
            assert_eq!(found(&once), Found::Verified);
        }
        assert_eq!(
            found(&hot),
            Found::ProcessCache,
            "still in this process's cache"
        );
    }

    #[test]
    fn a_bad_token_in_openidc_mode_is_still_refused() {
        let cfg = config(&[("plain", SECRET, None)]);
        let o = authenticate(
            &cfg,
            &Fake::bearer("garbage"),
            Mode::OpenIdc,
            NOW,
            &Generation::default(),
        );
        assert!(
            matches!(rejected_for(&o), VerifyError::Malformed(_)),
            "{o:?}"
        );
    }

    #[test]
    fn good_token_grants_user_and_claims() {
        let cfg = config(&[("plain", SECRET, None)]);
        let t = token(good_claims());
        match authenticate(
            &cfg,
            &Fake::bearer(&t),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        ) {
            Outcome::Granted(g) => {
                assert_eq!(g.pass.user(), "alice");
                let pass: Vec<(String, String)> = g
                    .pass
                    .vars()
                    .map(|(k, v)| (k.to_string(), String::from_utf8(v.to_vec()).unwrap()))
                    .collect();
                let get = |n: &str| pass.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
                assert_eq!(get("OAUTH2_CLAIM_sub"), Some("alice"));
                assert_eq!(get("OAUTH2_CLAIM_scope"), Some("read write"));
                assert_eq!(
                    get("OAUTH2_CLAIM_exp"),
                    Some((NOW + 60).to_string().as_str())
                );
                assert_eq!(get("OAUTH2_CLAIM_access_token"), Some(t.as_str()));
                let order: Vec<&str> = pass.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(
                    order,
                    [
                        "OAUTH2_CLAIM_sub",
                        "OAUTH2_CLAIM_exp",
                        "OAUTH2_CLAIM_scope",
                        "OAUTH2_CLAIM_access_token"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_from_environment_variable() {
        let cfg = config(&[("plain", SECRET, None)]);
        let req = Fake {
            authorization: None,
            env_token: Some(token(good_claims())),
            realm: None,
            thumbprint: None,
            thumbprint_now: None,
            proofs: Vec::new(),
            headers: Vec::new(),
            trusted_peer: false,
            host: None,
            clock: None,
        };
        assert!(matches!(
            authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default()),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn bad_signature_is_invalid_token_with_realm() {
        let cfg = config(&[("plain", SECRET, None)]);
        let t = hs256(
            "another-secret-another-secret-xx",
            json!({"alg": "HS256"}),
            good_claims(),
        );
        let mut req = Fake::bearer(&t);
        req.realm = Some("my realm");
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(
            rejected_for(&o),
            &VerifyError::Signature(crate::jose::JoseError::SignatureInvalid)
        );
        assert_eq!(
            challenge_of(&o, req.realm),
            r#"Bearer realm="my realm", error="invalid_token", error_description="Token could not be verified.""#
        );
    }

    #[test]
    fn refusal_reason_never_contains_the_token() {
        let cfg = config(&[("plain", SECRET, None)]);
        for t in [
            token(json!({"sub": "a", "exp": NOW - 5})),
            hs256(
                "another-secret-another-secret-xx",
                json!({"alg": "HS256", "kid": "k"}),
                good_claims(),
            ),
            "not.a.token".to_string(),
        ] {
            let o = authenticate(
                &cfg,
                &Fake::bearer(&t),
                Mode::OAuth2,
                NOW,
                &Generation::default(),
            );
            let reason = refusal_of(&o).to_string();
            assert!(!reason.contains(&t), "{reason}");
            for segment in t.split('.').filter(|s| s.len() > 8) {
                assert!(!reason.contains(segment), "{reason}");
            }
        }
    }

    #[test]
    fn expired_token_is_refused_and_says_why() {
        let cfg = config(&[("plain", SECRET, None)]);
        let t = token(json!({"sub": "alice", "exp": NOW - 1}));
        let o = authenticate(
            &cfg,
            &Fake::bearer(&t),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert_eq!(
            rejected_for(&o),
            &VerifyError::Claims(ClaimError::Expired {
                exp: NOW - 1,
                now: NOW
            })
        );
        let reason = refusal_of(&o).to_string();
        assert!(reason.contains("expired"), "{reason}");
        assert!(challenge_of(&o, None).contains("invalid_token"));
    }

    #[test]
    fn missing_or_numeric_sub_cannot_determine_user() {
        let cfg = config(&[("plain", SECRET, None)]);
        for claims in [
            json!({"exp": NOW + 9}),
            json!({"exp": NOW + 9, "sub": 42}),
            json!({"exp": NOW + 9, "sub": ""}),
        ] {
            let o = authenticate(
                &cfg,
                &Fake::bearer(&token(claims)),
                Mode::OAuth2,
                NOW,
                &Generation::default(),
            );
            assert!(
                matches!(refusal_of(&o), Refusal::NoRemoteUser { claim, .. } if claim == "sub"),
                "{o:?}"
            );
            assert_eq!(
                challenge_of(&o, None),
                r#"Bearer error="invalid_token", error_description="Could not determine remote user.""#
            );
        }
    }

    #[test]
    fn second_verifier_is_tried_after_the_first() {
        let cfg = config(&[
            ("plain", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", None),
            ("plain", SECRET, None),
        ]);
        assert!(matches!(
            authenticate(
                &cfg,
                &Fake::bearer(&token(good_claims())),
                Mode::OAuth2,
                NOW,
                &Generation::default()
            ),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn key_with_other_kid_is_skipped_and_key_without_kid_matches_any() {
        let with_kid = config(&[("plain", SECRET, Some("kid=a"))]);
        let t = hs256(SECRET, json!({"alg": "HS256", "kid": "b"}), good_claims());
        let o = authenticate(
            &with_kid,
            &Fake::bearer(&t),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert_eq!(rejected_for(&o), &VerifyError::NoKeyForKid);
        let t_a = hs256(SECRET, json!({"alg": "HS256", "kid": "a"}), good_claims());
        assert!(matches!(
            authenticate(
                &with_kid,
                &Fake::bearer(&t_a),
                Mode::OAuth2,
                NOW,
                &Generation::default()
            ),
            Outcome::Granted(_)
        ));
        let without_kid = config(&[("plain", SECRET, None)]);
        assert!(matches!(
            authenticate(
                &without_kid,
                &Fake::bearer(&t),
                Mode::OAuth2,
                NOW,
                &Generation::default()
            ),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn oversized_tokens_are_refused_before_any_verifier_runs() {
        let cfg = config(&[("plain", SECRET, None)]);
        let huge = "a".repeat(crate::jose::jws::MAX_TOKEN_LEN + 1);
        let o = authenticate(
            &cfg,
            &Fake::bearer(&huge),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert_eq!(
            refusal_of(&o),
            &Refusal::TokenTooLong {
                len: crate::jose::jws::MAX_TOKEN_LEN + 1
            }
        );
        assert!(challenge_of(&o, None).contains("invalid_token"));
    }

    #[test]
    fn no_verifier_configured_is_invalid_token() {
        let o = authenticate(
            &DirConfig::default(),
            &Fake::bearer(&token(good_claims())),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert_eq!(refusal_of(&o), &Refusal::NoVerifier);
        assert!(challenge_of(&o, None).contains("Token could not be verified."));
    }

    #[test]
    fn certificate_binding_uses_the_accepting_verifier() {
        // First verifier (bearer) has another secret; the second (mtls required) accepts the signature,
        // so its binding applies and an unbound token is refused.
        let cfg = config(&[
            ("plain", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", None),
            ("plain", SECRET, Some("type=mtls&mtls.policy=required")),
        ]);
        let o = authenticate(
            &cfg,
            &Fake::bearer(&token(good_claims())),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert_eq!(unbound_for(&o), &BindingError::NotBound);
        let second = &cfg.verifiers.as_ref().unwrap()[1];
        assert!(
            matches!(refusal_of(&o), Refusal::Unbound { verifier, .. } if Arc::ptr_eq(verifier, &second.label)),
            "{o:?}"
        );
    }

    #[test]
    fn bound_token_needs_the_matching_certificate() {
        let cfg = config(&[("plain", SECRET, Some("type=mtls&mtls.policy=optional"))]);
        let t = token(json!({"sub": "a", "exp": NOW + 9, "cnf": {"x5t#S256": "thumb-1"}}));
        let mut req = Fake::bearer(&t);
        req.thumbprint = Some("thumb-1");
        assert!(matches!(
            authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default()),
            Outcome::Granted(_)
        ));
        req.thumbprint = Some("thumb-2");
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(unbound_for(&o), &BindingError::Mismatch);
        req.thumbprint = None;
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(unbound_for(&o), &BindingError::NoCertificate);
    }

    /// A certificate forwarded by a trusted proxy (`mtls.header`): used only from a trusted peer,
    /// only when the connection has no certificate of its own, and a bad one is its own refusal.
    #[test]
    fn forwarded_certificates_count_only_from_trusted_proxies() {
        let der = crate::test_support::self_signed_cert("client")
            .to_der()
            .unwrap();
        let thumb = crate::pop::mtls::thumbprint_of_der(&der);
        let header = base64::engine::general_purpose::STANDARD.encode(&der);

        let cfg = config(&[(
            "plain",
            SECRET,
            Some(
                "type=mtls&mtls.policy=optional&mtls.header=X-Client-Cert&mtls.header.format=der-base64",
            ),
        )]);
        let t = token(json!({"sub": "a", "exp": NOW + 9, "cnf": {"x5t#S256": thumb}}));
        let run = |trusted: bool, value: Option<&str>, direct: Option<&'static str>| {
            let mut req = Fake::bearer(&t);
            req.trusted_peer = trusted;
            req.thumbprint = direct;
            if let Some(v) = value {
                req.headers.push(("x-client-cert", v.to_string()));
            }
            authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default())
        };
        assert!(matches!(
            run(true, Some(&header), None),
            Outcome::Granted(_)
        ));
        // Not from a trusted peer: the header is not believed.
        assert_eq!(
            unbound_for(&run(false, Some(&header), None)),
            &BindingError::NoCertificate
        );
        // The connection's own certificate wins.
        assert_eq!(
            unbound_for(&run(true, Some(&header), Some("other"))),
            &BindingError::Mismatch
        );
        assert_eq!(
            unbound_for(&run(true, None, None)),
            &BindingError::NoCertificate
        );
        assert_eq!(
            unbound_for(&run(true, Some(""), None)),
            &BindingError::NoCertificate
        );
        assert_eq!(
            unbound_for(&run(true, Some("not base64!"), None)),
            &BindingError::ForwardedCertificate(crate::proxy::CertHeaderError::Encoding)
        );
        // A verifier without mtls.header never reads the header.
        let plain = config(&[("plain", SECRET, Some("type=mtls&mtls.policy=optional"))]);
        let mut req = Fake::bearer(&t);
        req.trusted_peer = true;
        req.headers.push(("x-client-cert", header.clone()));
        let o = authenticate(&plain, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(unbound_for(&o), &BindingError::NoCertificate);
    }

    #[test]
    fn a_renegotiated_certificate_is_read_again_before_refusing() {
        let cfg = config(&[("plain", SECRET, Some("type=mtls&mtls.policy=required"))]);
        let t = token(json!({"sub": "a", "exp": NOW + 9, "cnf": {"x5t#S256": "thumb-2"}}));
        let mut req = Fake::bearer(&t);
        req.thumbprint = Some("thumb-1");
        req.thumbprint_now = Some(Some("thumb-2"));
        assert!(matches!(
            authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default()),
            Outcome::Granted(_)
        ));
        req.thumbprint_now = Some(Some("thumb-3"));
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &Generation::default());
        assert_eq!(unbound_for(&o), &BindingError::Mismatch);
    }

    /// docs/compatibility.md, row "internal redirects and sub-requests".
    #[test]
    fn a_derived_request_inherits_only_under_the_same_verification() {
        let mut caches = CacheRegistry::default();
        let lax = config_in(&mut caches, &[("plain", SECRET, None)]);
        let same_lines = config_in(&mut caches, &[("plain", SECRET, None)]);
        let other_key = config_in(
            &mut caches,
            &[("plain", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", None)],
        );
        let strict = config_in(
            &mut caches,
            &[("plain", SECRET, Some("type=mtls&mtls.policy=required"))],
        );
        let mut other_pass = lax.clone();
        other_pass.target_pass.apply("prefix=X_").unwrap();
        let claims = Accepted::new(
            json!({"sub": "joe", "cnf": {"x5t#S256": "thumb-1"}})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let req = Fake::bearer("t");
        assert!(inherits(&lax, &lax, 0, &claims, &req));
        assert!(inherits(&same_lines, &lax, 0, &claims, &req), "same lines");
        assert!(!inherits(&other_key, &lax, 0, &claims, &req));
        assert!(!inherits(&strict, &lax, 0, &claims, &req));
        assert!(!inherits(&other_pass, &lax, 0, &claims, &req));
        assert!(!inherits(&DirConfig::default(), &lax, 0, &claims, &req));
        assert!(!inherits(&lax, &lax, 1, &claims, &req), "no such verifier");
        // The strict location itself: the binding is checked again with the certificate now.
        let mut with_cert = Fake::bearer("t");
        with_cert.thumbprint = Some("thumb-1");
        assert!(inherits(&strict, &strict, 0, &claims, &with_cert));
        with_cert.thumbprint_now = Some(Some("thumb-2"));
        with_cert.thumbprint = Some("thumb-2");
        assert!(!inherits(&strict, &strict, 0, &claims, &with_cert));
    }

    #[test]
    fn rsa_jwk_seed_configuration() {
        let rsa = Rsa::generate(2048).unwrap();
        let jwk = json!({"kty": "RSA", "kid": "one", "use": "sig", "n": b64(&rsa.n().to_vec()), "e": "AQAB"});
        let cfg = config(&[(
            "jwk",
            &jwk.to_string(),
            Some("type=mtls&mtls.policy=optional"),
        )]);
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "RS256", "kid": "one"}).to_string().as_bytes()),
            b64(good_claims().to_string().as_bytes())
        );
        let key = PKey::from_rsa(rsa).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
        signer.update(input.as_bytes()).unwrap();
        let t = format!("{input}.{}", b64(&signer.sign_to_vec().unwrap()));
        assert!(matches!(
            authenticate(
                &cfg,
                &Fake::bearer(&t),
                Mode::OAuth2,
                NOW,
                &Generation::default()
            ),
            Outcome::Granted(_)
        ));
        // The same RSA key's public modulus used as an HMAC secret (key confusion) must not verify.
        let forged = hs256(
            &String::from_utf8_lossy(&key.public_key_to_pem().unwrap()),
            json!({"alg": "HS256", "kid": "one"}),
            good_claims(),
        );
        let o = authenticate(
            &cfg,
            &Fake::bearer(&forged),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        );
        assert!(
            matches!(
                rejected_for(&o),
                VerifyError::Signature(_) | VerifyError::NoKeyForKid
            ),
            "{o:?}"
        );
    }

    #[test]
    fn control_characters_in_sub_do_not_reach_the_user() {
        let cfg = config(&[("plain", SECRET, None)]);
        let t = token(json!({"sub": "eve\r\nX-Admin: 1", "exp": NOW + 9}));
        match authenticate(
            &cfg,
            &Fake::bearer(&t),
            Mode::OAuth2,
            NOW,
            &Generation::default(),
        ) {
            Outcome::Granted(g) => assert_eq!(g.pass.user(), "eve  X-Admin: 1"),
            other => panic!("{other:?}"),
        }
    }

    /// A request on a keep-alive connection: the connection's memo lives across requests.
    struct OnConnection<'a> {
        req: Fake,
        memo: &'a ConnectionMemo,
    }

    impl TokenSource for OnConnection<'_> {
        fn header(&self, name: &CStr) -> Option<&str> {
            self.req.header(name)
        }
        fn header_values(&self, name: &CStr) -> Vec<&[u8]> {
            self.req.header_values(name)
        }
        fn env(&self, name: &CStr) -> Option<&str> {
            self.req.env(name)
        }
        fn method(&self) -> &str {
            self.req.method()
        }
        fn query(&self) -> Option<&str> {
            self.req.query()
        }
        fn form_body(&self, limit: usize) -> Option<&[u8]> {
            self.req.form_body(limit)
        }
    }

    impl Request for OnConnection<'_> {
        fn url(&self) -> RequestUrl<'_> {
            self.req.url()
        }
        fn auth_name(&self) -> Option<&str> {
            self.req.auth_name()
        }
        fn client_thumbprint(&self) -> Option<&str> {
            self.req.client_thumbprint()
        }
        fn connection_memo(&self) -> Option<&ConnectionMemo> {
            Some(self.memo)
        }
    }

    fn origin_on(
        cfg: &DirConfig,
        memo: &ConnectionMemo,
        token: &str,
        now: i64,
    ) -> Option<crate::verify::Origin> {
        let req = OnConnection {
            req: Fake::bearer(token),
            memo,
        };
        match authenticate(cfg, &req, Mode::OAuth2, now, &Generation::default()) {
            Outcome::Granted(g) => Some(g.origin),
            _ => None,
        }
    }

    #[test]
    fn the_same_token_again_on_a_connection_is_answered_from_its_memo() {
        use crate::verify::Origin as From;
        let cfg = config(&[("plain", SECRET, None)]);
        let memo = ConnectionMemo::default();
        let alice = token(json!({"sub": "alice", "exp": NOW + 60, "jti": "memo-1"}));
        let bob = token(json!({"sub": "bob", "exp": NOW + 60, "jti": "memo-1"}));
        assert_eq!(origin_on(&cfg, &memo, &alice, NOW), Some(From::Verified));
        assert_eq!(
            origin_on(&cfg, &memo, &alice, NOW),
            Some(From::ConnectionMemo)
        );
        // Another token on the same connection is not the memo's, and replaces it.
        assert_eq!(origin_on(&cfg, &memo, &bob, NOW), Some(From::Verified));
        assert_eq!(
            origin_on(&cfg, &memo, &bob, NOW),
            Some(From::ConnectionMemo)
        );
        // The first token again: from the shared cache (shm: not yet in this process's cache),
        // no longer from the memo.
        assert_eq!(origin_on(&cfg, &memo, &alice, NOW), Some(From::SharedCache));
        // A token that differs only in its last byte is not mistaken for the memo's.
        let mut forged = alice.clone();
        let last = if forged.ends_with('A') { "B" } else { "A" };
        forged.replace_range(forged.len() - 1.., last);
        assert_eq!(origin_on(&cfg, &memo, &forged, NOW), None);
        // Another location's verifiers (the same directive) do not take the memo's answer; the
        // shared cache of the same server configuration, keyed by the directive, does.
        let mut caches = CacheRegistry::default();
        let (one, other) = (
            config_in(&mut caches, &[("plain", SECRET, None)]),
            config_in(&mut caches, &[("plain", SECRET, None)]),
        );
        let carol = token(json!({"sub": "carol", "exp": NOW + 60}));
        assert_eq!(origin_on(&one, &memo, &carol, NOW), Some(From::Verified));
        assert_eq!(
            origin_on(&other, &memo, &carol, NOW),
            Some(From::SharedCache)
        );
        // A separate server configuration has caches of its own.
        let elsewhere = config(&[("plain", SECRET, None)]);
        assert_eq!(
            origin_on(&elsewhere, &memo, &carol, NOW),
            Some(From::Verified)
        );
    }

    #[test]
    fn the_memo_keeps_the_time_rules_and_the_cache_expiry() {
        use crate::verify::Origin as From;
        let memo = ConnectionMemo::default();
        let short = token(json!({"sub": "alice", "exp": NOW + 5, "jti": "memo-2"}));
        let cfg = config(&[("plain", SECRET, None)]);
        assert_eq!(origin_on(&cfg, &memo, &short, NOW), Some(From::Verified));
        assert_eq!(
            origin_on(&cfg, &memo, &short, NOW + 4),
            Some(From::ConnectionMemo)
        );
        assert_eq!(origin_on(&cfg, &memo, &short, NOW + 6), None, "expired");

        // expiry=10: the memo answers no longer than the result cache would.
        let cfg = config(&[("plain", SECRET, Some("expiry=10"))]);
        let alice = token(json!({"sub": "alice", "exp": NOW + 60, "jti": "memo-3"}));
        assert_eq!(origin_on(&cfg, &memo, &alice, NOW), Some(From::Verified));
        assert_eq!(
            origin_on(&cfg, &memo, &alice, NOW + 9),
            Some(From::ConnectionMemo)
        );
        // Past the memo's time, and past the shared entry's: verified again.
        assert_eq!(
            origin_on(&cfg, &memo, &alice, NOW + 10),
            Some(From::Verified)
        );

        // expiry=0 (no result caching): every request is verified.
        let cfg = config(&[("plain", SECRET, Some("expiry=0"))]);
        assert_eq!(origin_on(&cfg, &memo, &alice, NOW), Some(From::Verified));
        assert_eq!(origin_on(&cfg, &memo, &alice, NOW), Some(From::Verified));
    }

    #[test]
    fn a_result_from_the_shared_cache_is_reused_no_longer_than_its_entry_lives() {
        use crate::verify::Origin as From;
        let tok = token(json!({"sub": "alice", "exp": NOW + 600, "jti": "shared-1"}));
        // The same line in three locations: one verifier identity (one shared entry), three
        // process caches.
        let line = [("plain", SECRET, Some("expiry=10"))];
        let mut caches = CacheRegistry::default();
        let (first, second, third) = (
            config_in(&mut caches, &line),
            config_in(&mut caches, &line),
            config_in(&mut caches, &line),
        );
        let answer = |cfg: &DirConfig, now| {
            let verifier = &cfg.verifiers.as_ref().unwrap()[0];
            let a = verifier.verify(&ParsedToken::parse(&tok), now).unwrap();
            (a.origin, a.reusable_until)
        };
        assert_eq!(answer(&first, NOW), (From::Verified, Some(NOW + 10)));
        // 8 s later: 2 s left, not another 10.
        assert_eq!(
            answer(&second, NOW + 8),
            (From::SharedCache, Some(NOW + 10))
        );
        // Past its time the entry answers no more (its backend may keep it a little longer).
        assert_eq!(answer(&third, NOW + 11), (From::Verified, Some(NOW + 21)));
    }

    #[test]
    fn a_memo_answer_still_checks_the_certificate_binding() {
        let cfg = config(&[("plain", SECRET, Some("type=mtls&mtls.policy=required"))]);
        let memo = ConnectionMemo::default();
        let bound = token(
            json!({"sub": "alice", "exp": NOW + 60, "cnf": {"x5t#S256": "thumb-one"}, "jti": "memo-4"}),
        );
        let on = |thumbprint| OnConnection {
            req: Fake {
                thumbprint,
                ..Fake::bearer(&bound)
            },
            memo: &memo,
        };
        let granted = |o: Outcome| matches!(o, Outcome::Granted(_));
        assert!(granted(authenticate(
            &cfg,
            &on(Some("thumb-one")),
            Mode::OAuth2,
            NOW,
            &Generation::default()
        )));
        assert!(granted(authenticate(
            &cfg,
            &on(Some("thumb-one")),
            Mode::OAuth2,
            NOW,
            &Generation::default()
        )));
        assert!(!granted(authenticate(
            &cfg,
            &on(Some("thumb-two")),
            Mode::OAuth2,
            NOW,
            &Generation::default()
        )));
        assert!(!granted(authenticate(
            &cfg,
            &on(None),
            Mode::OAuth2,
            NOW,
            &Generation::default()
        )));
    }

    // ---- RFC 9449 DPoP: the decision around the proof checks (src/pop/dpop has the checks) ----

    /// A client's DPoP key: its public JWK and a signer of proofs.
    struct ProofKey {
        key: openssl::ec::EcKey<openssl::pkey::Private>,
        jwk: serde_json::Value,
    }

    impl ProofKey {
        fn new() -> ProofKey {
            use openssl::bn::BigNumContext;
            use openssl::ec::{EcGroup, EcKey};
            use openssl::nid::Nid;
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            let key = EcKey::generate(&group).unwrap();
            let (mut x, mut y) = (
                openssl::bn::BigNum::new().unwrap(),
                openssl::bn::BigNum::new().unwrap(),
            );
            let mut ctx = BigNumContext::new().unwrap();
            key.public_key()
                .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                .unwrap();
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(&x.to_vec_padded(32).unwrap()),
                "y": b64(&y.to_vec_padded(32).unwrap()),
            });
            ProofKey { key, jwk }
        }

        /// RFC 7638 thumbprint, as a token's `cnf.jkt`.
        fn jkt(&self) -> String {
            crate::jose::Key::from_jwk_map(self.jwk.as_object().unwrap())
                .unwrap()
                .jwk_thumbprint()
                .unwrap()
        }

        /// A proof for `GET https://rs.example/api` (the fake request) with `token`.
        fn proof(&self, token: &str, jti: &str, nonce: Option<&str>) -> String {
            self.proof_at(token, jti, nonce, NOW)
        }

        /// The same, issued at `iat`.
        fn proof_at(&self, token: &str, jti: &str, nonce: Option<&str>, iat: i64) -> String {
            let mut claims = json!({
                "jti": jti,
                "htm": "GET",
                "htu": "https://rs.example/api",
                "iat": iat,
                "ath": b64(&crate::digest::sha256(&[token.as_bytes()])),
            });
            if let Some(nonce) = nonce {
                claims["nonce"] = json!(nonce);
            }
            let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let digest = openssl::sha::sha256(input.as_bytes());
            let sig = openssl::ecdsa::EcdsaSig::sign(&digest, &self.key).unwrap();
            let mut raw = sig.r().to_vec_padded(32).unwrap();
            raw.extend(sig.s().to_vec_padded(32).unwrap());
            format!("{input}.{}", b64(&raw))
        }
    }

    /// The fake request with `Authorization: <scheme> <token>` and `DPoP` headers.
    fn dpop_request(scheme: &str, token: &str, proofs: Vec<String>) -> Fake {
        let mut req = Fake::bearer(token);
        req.authorization = Some(format!("{scheme} {token}"));
        req.proofs = proofs;
        req
    }

    fn bound_token(key: &ProofKey, jti: &str) -> String {
        token(json!({"sub": "alice", "exp": NOW + 60, "jti": jti, "cnf": {"jkt": key.jkt()}}))
    }

    #[test]
    fn a_dpop_bound_token_with_its_proof_is_granted_once_per_proof() {
        let cfg = config(&[("plain", SECRET, Some("type=dpop"))]);
        let generation = Generation::default();
        let key = ProofKey::new();
        let t = bound_token(&key, "dpop-1");
        let proof = key.proof(&t, "proof-1", None);
        let req = dpop_request("DPoP", &t, vec![proof.clone()]);
        match authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation) {
            Outcome::Granted(g) => assert_eq!(g.pass.user(), "alice"),
            other => panic!("{other:?}"),
        }
        // The same proof again (RFC 9449 section 11.1), also for the cached token.
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation);
        assert!(
            matches!(refusal_of(&o), Refusal::DpopReplay { .. }),
            "{o:?}"
        );
        assert!(challenge_of(&o, None).starts_with("DPoP algs=\"ES256 "));
        assert!(challenge_of(&o, None).contains(r#"error="invalid_dpop_proof""#));
        // A new proof for the same token passes.
        let again = dpop_request("dpop", &t, vec![key.proof(&t, "proof-2", None)]);
        assert!(matches!(
            authenticate(&cfg, &again, Mode::OAuth2, NOW, &generation),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn a_failed_proof_does_not_use_up_its_jti() {
        let cfg = config(&[("plain", SECRET, Some("type=dpop"))]);
        let generation = Generation::default();
        let (key, other) = (ProofKey::new(), ProofKey::new());
        let t = bound_token(&key, "dpop-2");
        // Signed by another key: refused for the key, and its jti stays unused.
        let wrong = dpop_request("DPoP", &t, vec![other.proof(&t, "shared-jti", None)]);
        let o = authenticate(&cfg, &wrong, Mode::OAuth2, NOW, &generation);
        assert!(matches!(refusal_of(&o), Refusal::DpopProof { .. }), "{o:?}");
        let right = dpop_request("DPoP", &t, vec![key.proof(&t, "shared-jti", None)]);
        assert!(matches!(
            authenticate(&cfg, &right, Mode::OAuth2, NOW, &generation),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn no_downgrade_of_a_dpop_bound_token() {
        let key = ProofKey::new();
        let t = bound_token(&key, "dpop-3");
        let proof = key.proof(&t, "proof-3", None);
        let generation = Generation::default();
        // At a bearer location, and at a DPoP location, with the Bearer scheme: refused, even
        // with a valid proof (RFC 9449 section 7.2).
        for options in [None, Some("type=dpop")] {
            let cfg = config(&[("plain", SECRET, options)]);
            let req = dpop_request("Bearer", &t, vec![proof.clone()]);
            let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation);
            assert!(
                matches!(refusal_of(&o), Refusal::DpopSchemeMissing { .. }),
                "{options:?}: {o:?}"
            );
        }
        // An unbound token at a DPoP location needs the DPoP scheme and a proof too.
        let cfg = config(&[("plain", SECRET, Some("type=dpop"))]);
        let unbound = token(good_claims());
        let o = authenticate(
            &cfg,
            &Fake::bearer(&unbound),
            Mode::OAuth2,
            NOW,
            &generation,
        );
        assert!(
            matches!(refusal_of(&o), Refusal::DpopSchemeMissing { .. }),
            "{o:?}"
        );
        // cnf.jkt that is not a string: a binding that cannot be checked is never accepted.
        let odd = token(json!({"sub": "a", "exp": NOW + 9, "cnf": {"jkt": 7}}));
        let req = dpop_request("DPoP", &odd, vec![proof]);
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation);
        assert!(
            matches!(refusal_of(&o), Refusal::DpopBindingUnreadable { .. }),
            "{o:?}"
        );
    }

    #[test]
    fn with_an_shm_replay_store_proofs_from_before_the_start_are_refused() {
        let cfg = config(&[("plain", SECRET, Some("type=dpop"))]);
        let mut generation = Generation::default();
        generation.set_started_at(NOW + 1);
        let key = ProofKey::new();
        let t = bound_token(&key, "dpop-5");
        let req = dpop_request("DPoP", &t, vec![key.proof(&t, "early", None)]);
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW + 1, &generation);
        assert!(
            matches!(refusal_of(&o), Refusal::DpopIssuedBeforeStart { iat, started, .. } if *iat == NOW && *started == NOW + 1),
            "{o:?}"
        );
        generation.set_started_at(NOW);
        assert!(matches!(
            authenticate(&cfg, &req, Mode::OAuth2, NOW + 1, &generation),
            Outcome::Granted(_)
        ));
    }

    /// The verification before the proof check can take long (an introspection, a key fetch):
    /// the `iat` window is judged when the `jti` is recorded, not when the request began, or a
    /// replay whose verification outlasted the first use's record would find it forgotten.
    #[test]
    fn a_slow_replay_is_judged_when_its_jti_is_recorded() {
        // A window of 1 s (iat up to 1 s ahead), remembered as long: a test of seconds.
        let options = "type=dpop&dpop.iat.slack.before=0&dpop.iat.slack.after=1&dpop.expiry=1";
        let cfg = config(&[("plain", SECRET, Some(options))]);
        let generation = Generation::default();
        let key = ProofKey::new();
        let real = || crate::cache::store::now_unix() as i64;
        let start = real();
        let t = token(json!({"sub": "alice", "exp": start + 60, "cnf": {"jkt": key.jkt()}}));
        // Issued 1 s ahead of the server clock: accepted until start + 1.
        let proof = key.proof_at(&t, "slow", None, start + 1);
        let mut req = dpop_request("DPoP", &t, vec![proof]);
        req.clock = Some(start);
        assert!(matches!(
            authenticate(&cfg, &req, Mode::OAuth2, start, &generation),
            Outcome::Granted(_)
        ));
        // Its jti is remembered until start + 2 (or + 3, the store's second having turned).
        while real() < start + 4 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // The replay began at start + 1 (in the window) and reaches the check 3 s later.
        req.clock = Some(real());
        let o = authenticate(&cfg, &req, Mode::OAuth2, start + 1, &generation);
        let too_old = matches!(
            &o,
            Outcome::Refused {
                refusal: Refusal::DpopProof {
                    error: dpop::DpopError::IatTooOld { .. },
                    ..
                },
                ..
            }
        );
        assert!(too_old, "the replay was not refused as too old");
    }

    /// A generation put into service as post_config does (its random nonce secret made).
    fn started() -> Generation {
        let mut generation = Generation::default();
        assert_eq!(generation.start(), Ok(Vec::new()));
        generation
    }

    #[test]
    fn a_nonce_is_asked_for_then_accepted() {
        let cfg = config(&[("plain", SECRET, Some("type=dpop&dpop.nonce=on"))]);
        let generation = started();
        let key = ProofKey::new();
        let t = bound_token(&key, "dpop-4");
        let first = dpop_request("DPoP", &t, vec![key.proof(&t, "n-1", None)]);
        let o = authenticate(&cfg, &first, Mode::OAuth2, NOW, &generation);
        let nonce = match &o {
            Outcome::Refused {
                refusal: Refusal::DpopNonce { nonce, .. },
                ..
            } => nonce.clone(),
            other => panic!("{other:?}"),
        };
        assert!(challenge_of(&o, None).contains(r#"error="use_dpop_nonce""#));
        let retry = dpop_request("DPoP", &t, vec![key.proof(&t, "n-2", Some(&nonce))]);
        assert!(matches!(
            authenticate(&cfg, &retry, Mode::OAuth2, NOW, &generation),
            Outcome::Granted(_)
        ));
        // Another generation (a restart without a passphrase) has another secret.
        let later = dpop_request("DPoP", &t, vec![key.proof(&t, "n-3", Some(&nonce))]);
        let o = authenticate(&cfg, &later, Mode::OAuth2, NOW, &started());
        assert!(matches!(refusal_of(&o), Refusal::DpopNonce { .. }), "{o:?}");
    }

    /// A DPoP-bound token that a bearer verifier of the location accepts is still held to the
    /// location's DPoP settings (here its nonces), not to a bearer verifier's defaults.
    #[test]
    fn a_bound_token_accepted_by_a_bearer_verifier_meets_the_locations_dpop_settings() {
        let cfg = config(&[
            ("plain", SECRET, None),
            (
                "plain",
                "another secret of at least 32 bytes!!",
                Some("type=dpop&dpop.nonce=on"),
            ),
        ]);
        let generation = started();
        let key = ProofKey::new();
        let t = bound_token(&key, "dpop-mixed");
        let without_nonce = dpop_request("DPoP", &t, vec![key.proof(&t, "m-1", None)]);
        let o = authenticate(&cfg, &without_nonce, Mode::OAuth2, NOW, &generation);
        let nonce = match refusal_of(&o) {
            Refusal::DpopNonce {
                verifier, nonce, ..
            } => {
                assert!(verifier.starts_with("plain"), "{verifier}");
                nonce.clone()
            }
            other => panic!("{other:?}"),
        };
        let with_nonce = dpop_request("DPoP", &t, vec![key.proof(&t, "m-2", Some(&nonce))]);
        assert!(matches!(
            authenticate(&cfg, &with_nonce, Mode::OAuth2, NOW, &generation),
            Outcome::Granted(_)
        ));
    }

    #[test]
    fn challenges_follow_the_location() {
        let generation = Generation::default();
        let no_token = Fake {
            authorization: None,
            env_token: None,
            realm: None,
            thumbprint: None,
            thumbprint_now: None,
            proofs: Vec::new(),
            headers: Vec::new(),
            trusted_peer: false,
            host: None,
            clock: None,
        };
        let dpop_only = config(&[("plain", SECRET, Some("type=dpop&dpop.algs=ES256 EdDSA"))]);
        let o = authenticate(&dpop_only, &no_token, Mode::OAuth2, NOW, &generation);
        assert_eq!(challenge_of(&o, None), r#"DPoP algs="ES256 EdDSA""#);
        let mixed = config(&[
            ("plain", SECRET, None),
            ("plain", SECRET, Some("type=dpop&dpop.algs=ES256")),
        ]);
        let o = authenticate(&mixed, &no_token, Mode::OAuth2, NOW, &generation);
        assert_eq!(
            challenge_of(&o, None),
            "Bearer error=\"invalid_request\", error_description=\"No bearer token found in the request.\"\nDPoP algs=\"ES256\""
        );
    }

    #[test]
    fn challenges_in_a_host_with_resource_metadata_name_it() {
        use crate::resource_metadata::{HostSite, directive};
        let mut generation = Generation::default();
        let api = HostSite {
            key: HostKey(7),
            is_virtual: true,
        };
        let d = directive::parse("https://api.example.com/v1", None).unwrap();
        generation
            .resource_metadata
            .publish(api, d, "t.conf:1")
            .unwrap();
        let cfg = config(&[
            ("plain", SECRET, None),
            ("plain", SECRET, Some("type=dpop&dpop.algs=ES256")),
        ]);
        let mut req = Fake::bearer("not-a-jwt");
        req.host = Some(api.key);
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation);
        let url = r#"resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#;
        assert_eq!(
            challenge_of(&o, Some("api")),
            format!(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"Token could not be verified.\", {url}\nDPoP realm=\"api\", algs=\"ES256\", error=\"invalid_token\", error_description=\"Token could not be verified.\", {url}"
            )
        );
        req.host = Some(HostKey(8));
        let o = authenticate(&cfg, &req, Mode::OAuth2, NOW, &generation);
        assert!(
            !challenge_of(&o, None).contains("resource_metadata"),
            "another host"
        );
    }
}

#[cfg(test)]
mod microbench {
    //! `cargo test --release --lib microbench -- --ignored --nocapture`: where the time of one
    //! new-token verification goes (numbers for profiling, not assertions).
    use super::tests::Fake;
    use super::*;
    use crate::config::verifier::{self, Origin};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openssl::{hash::MessageDigest, pkey::PKey, rsa::Rsa, sign::Signer};
    use serde_json::json;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn new_rs256_token_costs() {
        let generation = Generation::default();
        let rsa = Rsa::generate(2048).unwrap();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({"kty": "RSA", "kid": "one", "n": b64(&rsa.n().to_vec()), "e": "AQAB"});
        let key = PKey::from_rsa(rsa).unwrap();
        let mut cfg = DirConfig::default();
        let origin = Origin { file: "b", line: 1 };
        cfg.add_verifier(
            verifier::parse(
                "jwk",
                &jwk.to_string(),
                None,
                &origin,
                &mut crate::cache::registry::CacheRegistry::default(),
            )
            .unwrap()
            .verifier,
        );
        let now = 1_800_000_000;
        let n = 2000;
        let tokens: Vec<String> = (0..n)
            .map(|i| {
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": "RS256", "kid": "one", "typ": "at+jwt"}).to_string().as_bytes()),
                    b64(json!({"sub": format!("user{i}"), "iss": "https://as", "aud": "api", "exp": now + 600, "iat": now, "scope": "read write", "client_id": "c", "jti": format!("{i}")}).to_string().as_bytes())
                );
                let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
                s.update(input.as_bytes()).unwrap();
                format!("{input}.{}", b64(&s.sign_to_vec().unwrap()))
            })
            .collect();
        let t0 = Instant::now();
        for t in &tokens {
            let o = authenticate(&cfg, &Fake::bearer(t), Mode::OAuth2, now, &generation);
            assert!(matches!(o, Outcome::Granted(_)));
        }
        let full = t0.elapsed() / n;
        let pk = crate::jose::Key::from_jwk_json(&jwk.to_string()).unwrap();
        let t1 = Instant::now();
        for t in &tokens {
            let jws = crate::jose::Jws::parse(t).unwrap();
            pk.verify(&jws).unwrap();
        }
        let parse_verify = t1.elapsed() / n;
        let t2 = Instant::now();
        for t in &tokens {
            let _ = crate::jose::Jws::parse(t).unwrap();
        }
        let parse = t2.elapsed() / n;
        // One token again and again (a keep-alive client): after its second use it is answered
        // from this process's cache.
        let again = Fake::bearer(&tokens[n as usize - 1]);
        for _ in 0..2 {
            authenticate(&cfg, &again, Mode::OAuth2, now, &generation);
        }
        let t3 = Instant::now();
        for _ in &tokens {
            let o = authenticate(&cfg, &again, Mode::OAuth2, now, &generation);
            assert!(matches!(o, Outcome::Granted(_)));
        }
        let cached = t3.elapsed() / n;
        let claims = match authenticate(
            &cfg,
            &Fake::bearer(&tokens[0]),
            Mode::OAuth2,
            now,
            &generation,
        ) {
            Outcome::Granted(g) => g.claims.clone(),
            _ => unreachable!(),
        };
        let tp = crate::config::target_pass::TargetPass::default();
        let t4 = Instant::now();
        for t in &tokens {
            let _ = std::hint::black_box(pass::build(&tp, &claims, "user", Some(t)));
        }
        let build = t4.elapsed() / n;
        let t5 = Instant::now();
        for t in &tokens {
            let mut h = openssl::sha::Sha256::new();
            h.update(&[0u8; 32]);
            h.update(t.as_bytes());
            std::hint::black_box(h.finish());
        }
        let sha = t5.elapsed() / n;
        let t6 = Instant::now();
        for _ in &tokens {
            std::hint::black_box(
                cfg.verifiers.as_ref().unwrap()[0]
                    .claims
                    .check(&claims, now),
            )
            .ok();
        }
        let check = t6.elapsed() / n;
        eprintln!(
            "per token: authenticate new {full:?}, parse+verify {parse_verify:?}, parse {parse:?}, authenticate cached {cached:?}, pass::build {build:?}, sha256 {sha:?}, claims check {check:?}"
        );
    }
}
