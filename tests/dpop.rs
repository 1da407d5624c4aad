//! RFC 9449 DPoP (`type=dpop`) against a real httpd with mod_ssl: DPoP-bound tokens accepted with
//! a valid proof (local `jwk`, `jwks_uri` and `introspect` against the real authorization
//! server), every proof check refused on its own (RFC 9449 section 4.3), HTTP methods, replay
//! (one child, concurrent, prefork children, two httpds sharing Redis, a graceful restart, Redis
//! down), internal redirects, server nonces and their rotation, 1,000 concurrent proofs, no
//! downgrade to the Bearer scheme, the challenges, `apache2 -t`.
//!
//! Requests go through the raw HTTPS client of `common::dpop` (exact header names, repeated
//! headers, any method and request target); the challenges are parsed and checked by status,
//! scheme, `algs` and `error`, never by the wording of `error_description`.

mod common;

use common::dpop::*;
use common::redirects::*;
use common::remote::*;
use common::servers::*;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "dpop-tests-passphrase-0123456789abcdef";

/// Several prefork children from the start, none recycled.
const PREFORK_CHILDREN: &str =
    "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestsPerChild 0\n";

/// The error codes of RFC 9449 section 7.1 and RFC 6750 section 3.1.
const BAD_PROOF: &[&str] = &["invalid_dpop_proof"];
const BAD_TOKEN: &[&str] = &["invalid_token"];
/// The token is not bound to the proof's key (another `cnf.jkt`, none, or an unreadable one): a
/// problem of the token (RFC 9449 section 7.1), not of the proof.
const BAD_BINDING: &[&str] = &["invalid_token"];
const NO_ERROR: &[&str] = &[];

/// The challenge of a refused proof: every algorithm, no realm, `invalid_dpop_proof`.
const PROOF_REFUSED: DpopChallenge<'static> = DpopChallenge {
    algs: DEFAULT_ALGS,
    realm: None,
    errors: BAD_PROOF,
};
/// The challenge that asks for a server nonce (RFC 9449 section 8): `use_dpop_nonce`.
const NONCE_REQUIRED: DpopChallenge<'static> = DpopChallenge {
    algs: DEFAULT_ALGS,
    realm: None,
    errors: &["use_dpop_nonce"],
};

/// Words of the refusal log line, per check (any of them, case-insensitive).
const LOG_REPLAY: &[&str] = &["replay", "seen before", "already used"];

/// `<Location /d>` taking DPoP-bound tokens by `signer` (`jwk`, `type=dpop`).
fn dpop_location(signer: &TokenSigner) -> String {
    oauth2_location("/d", &jwk_verify(signer, "type=dpop"))
}

/// A token by `signer` for `sub`, bound to `key` (`cnf.jkt`).
fn bound_token(signer: &TokenSigner, sub: &str, key: &DpopKey) -> String {
    signer.mint(&with(
        claims(sub),
        json!({ "cnf": { "jkt": key.thumbprint() } }),
    ))
}

/// `https://127.0.0.1:<port><path>`: the URI the module sees for a request to `path`.
fn htu(h: &Httpd, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", h.https_port)
}

/// `method target` with `Authorization: DPoP <token>` and a valid proof by `key` (htu from the
/// target's path, `ath` of `token`).
fn dpop_req(h: &Httpd, method: &str, target: &str, token: &str, key: &DpopKey) -> RawReq {
    let req = RawReq::new(method, target);
    let proof = Proof::new(key, method, &htu(h, req.path()))
        .ath(token)
        .sign(key);
    req.dpop_token(token).proof(&proof)
}

/// Non-debug `[oauth2:...]` lines between two log marks.
fn refusals_between(h: &Httpd, from: usize, to: usize) -> Vec<String> {
    oauth2_refusal_lines(&h.log_between(from, to))
}

/// True when `line`, without the verifier's label (`jwk (EC P-256 at httpd.conf:12)`), mentions
/// one of `words` (case-insensitive).
fn mentions_any(line: &str, words: &[&str]) -> bool {
    let mut l = line.to_ascii_lowercase();
    for kind in ["jwk (", "jwks_uri (", "introspect ("] {
        while let Some(i) = l.find(kind) {
            let end = l[i..].find(')').map_or(l.len(), |e| i + e + 1);
            l.replace_range(i..end, "");
        }
    }
    words.iter().any(|w| l.contains(&w.to_ascii_lowercase()))
}

/// Check a 401 against the DPoP challenge `want`.
fn expect_dpop_401(f: &mut Failures, what: &str, r: &Response, want: &DpopChallenge<'_>) {
    let p = dpop_refusal_problems(r, want);
    f.check(p.is_empty(), || format!("{what}: {}", p.join("; ")));
}

fn expect_status(f: &mut Failures, what: &str, r: &Response, status: u16) {
    f.check(r.status == status, || {
        format!(
            "{what}: expected {status}, got {} (WWW-Authenticate {:?})",
            r.status,
            r.header_all("WWW-Authenticate")
        )
    });
}

// ---------------------------------------------------------------------------------------------
// 0. The harness itself
// ---------------------------------------------------------------------------------------------

/// Harness self-test (no httpd): RFC 7638's example thumbprint, and every proof key's signature
/// verifies through OpenSSL with the public JWK the proof carries, for every algorithm used here.
#[test]
fn harness_thumbprints_and_signatures() {
    // RFC 7638 section 3.1
    let example = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        jwk_thumbprint(&example),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    let mut f = Failures::new();
    let rsa = DpopKey::rsa(2048);
    let multi = DpopKey::rsa_multi_prime(4096);
    /// A key and an algorithm it signs with.
    struct Signing<'a> {
        key: &'a DpopKey,
        alg: &'a str,
    }
    let (p256, p384, p521, ed) = (
        DpopKey::p256(),
        DpopKey::p384(),
        DpopKey::p521(),
        DpopKey::ed25519(),
    );
    let rows = [
        Signing {
            key: &p256,
            alg: "ES256",
        },
        Signing {
            key: &p384,
            alg: "ES384",
        },
        Signing {
            key: &p521,
            alg: "ES512",
        },
        Signing {
            key: &ed,
            alg: "EdDSA",
        },
        Signing {
            key: &rsa,
            alg: "RS256",
        },
        Signing {
            key: &rsa,
            alg: "PS256",
        },
        Signing {
            key: &rsa,
            alg: "PS512",
        },
        Signing {
            key: &multi,
            alg: "RS256",
        },
    ];
    for Signing { key, alg } in rows {
        let input = b"header.payload";
        let sig = key.sign(alg, input);
        let jwk = key.public_jwk();
        f.check(verify_with_jwk(&jwk, alg, input, &sig), || {
            format!("{alg}: the signature does not verify with {jwk}")
        });
        f.check(!verify_with_jwk(&jwk, alg, b"header.other", &sig), || {
            format!("{alg}: the signature verifies over other data")
        });
        f.check(
            key.thumbprint() == jwk_thumbprint(&key.private_jwk()),
            || format!("{alg}: the private members change the thumbprint"),
        );
    }
    f.check(multi.rsa_bits() == Some(4096), || {
        format!("multi-prime key of {:?} bits", multi.rsa_bits())
    });
    f.assert_none();
}

// ---------------------------------------------------------------------------------------------
// 1. Accepted end to end
// ---------------------------------------------------------------------------------------------

/// DPoP-bound tokens accepted with a valid proof through a local `jwk` (a token the harness
/// signs with `cnf.jkt`), `jwks_uri` (a JWT of the real AS's `dpop-client`) and `introspect` (an
/// opaque token of `dpop-client`, `cnf.jkt` in the introspection response); the same tokens
/// without a proof, with another key's proof, or with the Bearer scheme are refused.
#[test]
fn bound_tokens_accepted_through_jwk_jwks_uri_and_introspection() {
    let a = real_as();
    let signer = TokenSigner::rsa("dpop-local");
    let key = DpopKey::p256();
    let other = DpopKey::p256();
    let rs = Opts::new()
        .path("introspect.ca_file", &a.pki.ca_cert)
        .kv("introspect.auth", "client_secret_basic")
        .kv("client_id", RS_CLIENT.0)
        .kv("client_secret", RS_CLIENT.1)
        .kv("type", "dpop");
    let body = [
        oauth2_location("/j", &jwk_verify(&signer, "type=dpop")),
        verify_location(
            "/k",
            "jwks_uri",
            &a.jwks_url(),
            &Opts::new()
                .path("jwks_uri.ca_file", &a.pki.ca_cert)
                .kv("type", "dpop"),
        ),
        oauth2_location(
            "/i",
            &format!(
                "{}\nOAuth2TargetPass remote_user_claim=client_id",
                verify_line("introspect", &a.introspection_url(), &rs)
            ),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));

    // the AS binds its tokens to the key of the token request's proof
    let as_jwt = as_dpop_token(a, &key, "/es256", "read");
    assert_eq!(
        jwt_payload(&as_jwt)["cnf"]["jkt"],
        key.thumbprint().as_str(),
        "the AS's DPoP JWT is not bound to the proof key: {}",
        jwt_payload(&as_jwt)
    );
    let as_opaque = as_dpop_token(a, &key, "/opaque", "read");
    let i = a.introspect(&as_opaque);
    assert_eq!(i["cnf"]["jkt"], key.thumbprint().as_str(), "{i}");
    assert_eq!(i["token_type"], "DPoP", "{i}");
    let local = bound_token(&signer, "local-user", &key);

    /// One verifier kind: where, which token, who the backend sees.
    struct Kind<'a> {
        what: &'a str,
        location: &'a str,
        token: &'a str,
        user: &'a str,
    }
    let kinds = [
        Kind {
            what: "jwk (local key)",
            location: "/j",
            token: &local,
            user: "local-user",
        },
        Kind {
            what: "jwks_uri (AS JWT)",
            location: "/k",
            token: &as_jwt,
            user: "dpop-client",
        },
        Kind {
            what: "introspect (AS opaque token)",
            location: "/i",
            token: &as_opaque,
            user: "dpop-client",
        },
    ];
    let mut f = Failures::new();
    for Kind {
        what,
        location,
        token,
        user,
    } in kinds
    {
        let env_path = format!("{location}/env");
        let r = send_raw(&h, &dpop_req(&h, "GET", &env_path, token, &key));
        expect_status(&mut f, &format!("{what}: valid proof"), &r, 200);
        if r.status == 200 {
            let env = r.env();
            f.check(
                env.get("REMOTE_USER").map(String::as_str) == Some(user),
                || {
                    format!(
                        "{what}: REMOTE_USER {:?}, expected {user:?}",
                        env.get("REMOTE_USER")
                    )
                },
            );
        }
        let r = send_raw(&h, &dpop_req(&h, "GET", &env_path, token, &other));
        expect_dpop_401(
            &mut f,
            &format!("{what}: proof by another key"),
            &r,
            &DpopChallenge {
                algs: DEFAULT_ALGS,
                realm: None,
                errors: BAD_BINDING,
            },
        );
        let r = send_raw(&h, &RawReq::get(&env_path).dpop_token(token));
        expect_dpop_401(&mut f, &format!("{what}: no proof"), &r, &PROOF_REFUSED);
        let proof = Proof::new(&key, "GET", &htu(&h, &env_path))
            .ath(token)
            .sign(&key);
        let r = send_raw(&h, &RawReq::get(&env_path).bearer(token).proof(&proof));
        expect_status(
            &mut f,
            &format!("{what}: Bearer scheme with a valid proof"),
            &r,
            401,
        );
    }
    if !f.all_passed() {
        eprintln!("--- AS log (tail) ---\n{}", a.log_tail(30));
    }
    f.assert_none_showing(&h);
}

// ---------------------------------------------------------------------------------------------
// 2. Every proof check
// ---------------------------------------------------------------------------------------------

/// What a table row can use.
struct Ctx<'a> {
    h: &'a Httpd,
    signer: &'a TokenSigner,
    /// The main proof key (P-256); `token` is bound to it.
    key: &'a DpopKey,
    other: &'a DpopKey,
    p384: &'a DpopKey,
    p521: &'a DpopKey,
    ed25519: &'a DpopKey,
    rsa2048: &'a DpopKey,
    rsa1024: &'a DpopKey,
    rsa8192: &'a DpopKey,
    rsa16384: &'a DpopKey,
    token: String,
}

impl Ctx<'_> {
    fn htu(&self, path: &str) -> String {
        htu(self.h, path)
    }

    /// A token bound to `key`.
    fn token_for(&self, key: &DpopKey) -> String {
        bound_token(self.signer, "dpop-user", key)
    }

    /// GET `target` with a token bound to `key` and a proof by `key` (htu from the target's
    /// path, ath), changed by `edit`, signed by `key` with the header's alg.
    fn at(&self, target: &str, key: &DpopKey, edit: impl FnOnce(Proof) -> Proof) -> RawReq {
        let token = self.token_for(key);
        let req = RawReq::get(target);
        let proof = edit(Proof::new(key, "GET", &self.htu(req.path())).ath(&token)).sign(key);
        req.dpop_token(&token).proof(&proof)
    }

    /// [`Ctx::at`] `/d/ok` with the main key.
    fn edited(&self, edit: impl FnOnce(Proof) -> Proof) -> RawReq {
        self.at("/d/ok", self.key, edit)
    }

    /// GET /d/ok with the main token and `proof` as the DPoP header.
    fn with_proof(&self, proof: &str) -> RawReq {
        RawReq::get("/d/ok").dpop_token(&self.token).proof(proof)
    }

    /// A valid proof for GET /d/ok and the main token, changed by `edit` (unsigned).
    fn proof(&self, edit: impl FnOnce(Proof) -> Proof) -> Proof {
        edit(Proof::new(self.key, "GET", &self.htu("/d/ok")).ath(&self.token))
    }
}

type Build = Box<dyn Fn(&Ctx<'_>) -> RawReq>;

/// One row: the request, then what must come back.
struct Case {
    name: &'static str,
    request: Build,
    /// 200 (or 404 where the path names no file): accepted; 401: refused.
    expect_status: u16,
    /// For a 401: the acceptable `error` codes (empty: no `error`).
    expect_errors: &'static [&'static str],
    /// For a 401: the challenge's `algs` (the location's `dpop.algs`).
    expect_algs: &'static str,
    /// For a 401: the refusal line names the failed check with one of these words.
    expect_log: &'static [&'static str],
}

impl Case {
    fn accepted(name: &'static str, request: impl Fn(&Ctx<'_>) -> RawReq + 'static) -> Case {
        Case {
            name,
            request: Box::new(request),
            expect_status: 200,
            expect_errors: NO_ERROR,
            expect_algs: DEFAULT_ALGS,
            expect_log: &[],
        }
    }

    fn refused(
        name: &'static str,
        errors: &'static [&'static str],
        log: &'static [&'static str],
        request: impl Fn(&Ctx<'_>) -> RawReq + 'static,
    ) -> Case {
        Case {
            name,
            request: Box::new(request),
            expect_status: 401,
            expect_errors: errors,
            expect_algs: DEFAULT_ALGS,
            expect_log: log,
        }
    }

    fn bad_proof(
        name: &'static str,
        log: &'static [&'static str],
        request: impl Fn(&Ctx<'_>) -> RawReq + 'static,
    ) -> Case {
        Case::refused(name, BAD_PROOF, log, request)
    }

    fn status(mut self, s: u16) -> Case {
        self.expect_status = s;
        self
    }

    fn algs(mut self, algs: &'static str) -> Case {
        self.expect_algs = algs;
        self
    }
}

// The words are matched after the verifier's label (`jwk (...)`) is taken out of the line, and
// none of them is in the generic part of a refusal line ("DPoP proof refused", "token refused").
const L_NO_PROOF: &[&str] = &["missing", "no dpop"];
const L_SEVERAL: &[&str] = &["exactly one", "several", "more than one", "proofs"];
const L_MALFORMED: &[&str] = &[
    "malformed",
    "well-formed",
    "compact",
    "jws",
    "parse",
    "base64",
    "json",
    "segment",
    "payload",
];
const L_EMPTY: &[&str] = &[
    "empty",
    "missing",
    "no dpop",
    "malformed",
    "well-formed",
    "compact",
    "jws",
    "segment",
];
const L_TYP: &[&str] = &["typ"];
const L_ALG: &[&str] = &["alg"];
const L_SIG: &[&str] = &["signature"];
const L_JWK: &[&str] = &["jwk"];
const L_PRIVATE: &[&str] = &["private"];
const L_RSA_SIZE: &[&str] = &["modulus", "bits", "size", "small", "large"];
const L_HTM: &[&str] = &["htm"];
const L_HTU: &[&str] = &["htu"];
const L_IAT: &[&str] = &["iat"];
const L_ATH: &[&str] = &["ath"];
const L_JTI: &[&str] = &["jti"];
const L_BINDING: &[&str] = &["jkt", "thumbprint", "cnf", "bound", "binding"];
const L_NO_TOKEN: &[&str] = &["no bearer token", "no token", "token missing"];

fn cases() -> Vec<Case> {
    vec![
        // ---- accepted: every key kind and the latitude the checks allow
        Case::accepted("ES256 proof, P-256 key", |c| c.edited(|p| p)),
        Case::accepted("ES384 proof, P-384 key", |c| c.at("/d/ok", c.p384, |p| p)),
        Case::accepted("ES512 proof, P-521 key", |c| c.at("/d/ok", c.p521, |p| p)),
        Case::accepted("EdDSA proof, Ed25519 key", |c| {
            c.at("/d/ok", c.ed25519, |p| p)
        }),
        Case::accepted("RS256 proof, RSA-2048 key", |c| {
            c.at("/d/ok", c.rsa2048, |p| p)
        }),
        Case::accepted("PS256 proof, RSA-2048 key", |c| {
            c.at("/d/ok", c.rsa2048, |p| p.header("alg", json!("PS256")))
        }),
        Case::accepted("RS256 proof, RSA-8192 key (the upper bound)", |c| {
            c.at("/d/ok", c.rsa8192, |p| p)
        }),
        Case::accepted("scheme written `dpop`", |c| {
            let p = c.proof(|p| p).sign(c.key);
            RawReq::get("/d/ok")
                .header("Authorization", &format!("dpop {}", c.token))
                .proof(&p)
        }),
        Case::accepted("scheme written `DPOP`", |c| {
            let p = c.proof(|p| p).sign(c.key);
            RawReq::get("/d/ok")
                .header("Authorization", &format!("DPOP {}", c.token))
                .proof(&p)
        }),
        Case::accepted("header name written `dpop`", |c| {
            let p = c.proof(|p| p).sign(c.key);
            RawReq::get("/d/ok").dpop_token(&c.token).header("dpop", &p)
        }),
        Case::accepted("unknown header and claim members are ignored", |c| {
            c.edited(|p| {
                p.header("x-extra", json!({ "a": [1, 2] }))
                    .header("kid", json!("whatever"))
                    .claim("foo", json!("bar"))
                    .claim("exp", json!(4_000_000_000u64))
            })
        }),
        Case::accepted("request with a query, htu without", |c| {
            let token = c.token.clone();
            let p = c.proof(|p| p).sign(c.key);
            RawReq::get("/d/ok?a=1&b=2").dpop_token(&token).proof(&p)
        }),
        Case::accepted("htu with a query, request without", |c| {
            let u = format!("{}?x=y", c.htu("/d/ok"));
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::accepted("htu with a fragment", |c| {
            let u = format!("{}#frag", c.htu("/d/ok"));
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::accepted(
            "request target in absolute form (RFC 9112 section 3.2.2)",
            |c| {
                let target = c.htu("/d/ok");
                let p = c.proof(|p| p).sign(c.key);
                RawReq::get(&target).dpop_token(&c.token).proof(&p)
            },
        ),
        Case::accepted("htu and request with different queries", |c| {
            let u = format!("{}?one=1", c.htu("/d/ok"));
            let p = c.proof(|p| p.claim("htu", json!(u))).sign(c.key);
            RawReq::get("/d/ok?two=2").dpop_token(&c.token).proof(&p)
        }),
        Case::accepted("htu scheme in upper case", |c| {
            let u = format!("HTTPS://127.0.0.1:{}/d/ok", c.h.https_port);
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::accepted("htu host in mixed case (Host: localhost)", |c| {
            let u = format!("https://LocalHost:{}/d/ok", c.h.https_port);
            let p = c.proof(|p| p.claim("htu", json!(u))).sign(c.key);
            c.with_proof(&p)
                .header("Host", &format!("localhost:{}", c.h.https_port))
        }),
        Case::accepted(
            "default port omitted in htu (Host: 127.0.0.1:443, Apache sees port 443)",
            |c| {
                let p = c
                    .proof(|p| p.claim("htu", json!("https://127.0.0.1/d/ok")))
                    .sign(c.key);
                c.with_proof(&p).header("Host", "127.0.0.1:443")
            },
        ),
        Case::accepted(
            "default port explicit in htu (Host: 127.0.0.1:443, Apache sees port 443)",
            |c| {
                let p = c
                    .proof(|p| p.claim("htu", json!("https://127.0.0.1:443/d/ok")))
                    .sign(c.key);
                c.with_proof(&p).header("Host", "127.0.0.1:443")
            },
        ),
        // /d/a%3ab names no file: accepted means 404 (after authentication), refused 401
        Case::accepted("percent-encoded path, htu encoded the same", |c| {
            let u = c.htu("/d/a%3ab");
            let p = c.proof(|p| p.claim("htu", json!(u))).sign(c.key);
            RawReq::get("/d/a%3ab").dpop_token(&c.token).proof(&p)
        })
        .status(404),
        Case::accepted("percent-encoding in other letter case in htu", |c| {
            let u = c.htu("/d/a%3Ab");
            let p = c.proof(|p| p.claim("htu", json!(u))).sign(c.key);
            RawReq::get("/d/a%3ab").dpop_token(&c.token).proof(&p)
        })
        .status(404),
        Case::accepted("iat 3 s in the past", |c| {
            c.edited(|p| p.claim("iat", json!(now() - 3)))
        }),
        Case::accepted("iat 3 s in the future", |c| {
            c.edited(|p| p.claim("iat", json!(now() + 3)))
        }),
        Case::accepted("jwk with kid, use, alg and key_ops members", |c| {
            let mut j = c.key.public_jwk();
            let m = j.as_object_mut().unwrap();
            m.insert("kid".into(), json!("client-key-1"));
            m.insert("use".into(), json!("sig"));
            m.insert("alg".into(), json!("ES256"));
            m.insert("key_ops".into(), json!(["verify"]));
            c.edited(|p| p.header("jwk", j))
        }),
        Case::accepted("iat with a fraction of a second", |c| {
            let t = now() as f64 - 0.5;
            c.edited(|p| p.claim("iat", json!(t)))
        }),
        Case::accepted("ES256 proof where dpop.algs=ES256", |c| {
            c.at("/e/ok", c.key, |p| p)
        }),
        Case::accepted("iat present where iat.verify=required", |c| {
            c.at("/q/ok", c.key, |p| p)
        }),
        // ---- the DPoP header
        Case::bad_proof("no DPoP header", L_NO_PROOF, |c| {
            RawReq::get("/d/ok").dpop_token(&c.token)
        }),
        Case::bad_proof("two DPoP headers, two valid proofs", L_SEVERAL, |c| {
            let p1 = c.proof(|p| p).sign(c.key);
            let p2 = c.proof(|p| p).sign(c.key);
            c.with_proof(&p1).proof(&p2)
        }),
        Case::bad_proof("two DPoP headers, the same proof", L_SEVERAL, |c| {
            let p = c.proof(|p| p).sign(c.key);
            c.with_proof(&p).header("dpop", &p)
        }),
        Case::bad_proof("empty DPoP header", L_EMPTY, |c| c.with_proof("")),
        // ---- compact JWS
        Case::bad_proof("not a JWS", L_MALFORMED, |c| c.with_proof("not-a-jws")),
        Case::bad_proof("two segments", L_MALFORMED, |c| {
            let p = c.proof(|p| p).signing_input();
            c.with_proof(&p)
        }),
        Case::bad_proof("five segments (JWE shape)", L_MALFORMED, |c| {
            let p = c.proof(|p| p).sign(c.key);
            c.with_proof(&format!("{p}.AAAA.BBBB"))
        }),
        Case::bad_proof("header not base64url", L_MALFORMED, |c| {
            let p = c.proof(|p| p).sign(c.key);
            let rest = p.split_once('.').unwrap().1;
            c.with_proof(&format!("e30*.{rest}"))
        }),
        Case::bad_proof("header not JSON", L_MALFORMED, |c| {
            let p = c.proof(|p| p).sign(c.key);
            let rest = p.split_once('.').unwrap().1;
            c.with_proof(&format!("{}.{rest}", b64url(b"{not json")))
        }),
        Case::bad_proof("claims not JSON (signed)", L_MALFORMED, |c| {
            let hd = c.proof(|p| p).header;
            let input = format!("{}.{}", b64url(hd.to_string().as_bytes()), b64url(b"[1,2"));
            let sig = c.key.sign("ES256", input.as_bytes());
            c.with_proof(&format!("{input}.{}", b64url(&sig)))
        }),
        // ---- typ
        Case::bad_proof("typ missing", L_TYP, |c| {
            c.edited(|p| p.without_header("typ"))
        }),
        Case::bad_proof("typ JWT", L_TYP, |c| {
            c.edited(|p| p.header("typ", json!("JWT")))
        }),
        Case::bad_proof("typ at+jwt", L_TYP, |c| {
            c.edited(|p| p.header("typ", json!("at+jwt")))
        }),
        // ---- alg
        Case::bad_proof("alg none, no signature", L_ALG, |c| {
            let p = c.proof(|p| p.header("alg", json!("none")));
            c.with_proof(&p.unsigned())
        }),
        Case::bad_proof(
            "alg HS256 with an oct jwk",
            &["alg", "symmetric", "oct"],
            |c| {
                let secret = b"0123456789abcdef0123456789abcdef";
                let p = c.proof(|p| {
                    p.header("alg", json!("HS256"))
                        .header("jwk", json!({ "kty": "oct", "k": b64url(secret) }))
                });
                c.with_proof(&p.sign_hs256(secret))
            },
        ),
        Case::bad_proof(
            "alg HS256 keyed with the EC public JWK's text",
            L_ALG,
            |c| {
                let p = c.proof(|p| p.header("alg", json!("HS256")));
                let secret = serde_json::to_string(&c.key.public_jwk()).unwrap();
                c.with_proof(&p.sign_hs256(secret.as_bytes()))
            },
        ),
        Case::bad_proof(
            "alg RS256 named for an EC key",
            &["alg", "signature"],
            |c| {
                let p = c.proof(|p| p.header("alg", json!("RS256")));
                c.with_proof(&p.sign_as(c.key, "ES256"))
            },
        ),
        Case::bad_proof("alg missing", L_ALG, |c| {
            let p = c.proof(|p| p.without_header("alg"));
            c.with_proof(&p.sign_as(c.key, "ES256"))
        }),
        Case::bad_proof("alg ES384 with a P-256 key", L_ALG, |c| {
            let p = c.proof(|p| p.header("alg", json!("ES384")));
            c.with_proof(&p.sign_as(c.key, "ES384"))
        }),
        Case::bad_proof("ES384 proof where dpop.algs=ES256", L_ALG, |c| {
            c.at("/e/ok", c.p384, |p| p)
        })
        .algs("ES256"),
        // ---- signature
        Case::bad_proof("signature altered", L_SIG, |c| {
            c.with_proof(&tamper_signature(&c.proof(|p| p).sign(c.key)))
        }),
        Case::bad_proof("signed by another key than the header's jwk", L_SIG, |c| {
            c.with_proof(&c.proof(|p| p).sign(c.other))
        }),
        Case::bad_proof(
            "claims changed after signing (a member added)",
            L_SIG,
            |c| {
                let original = c.proof(|p| p);
                let signed = original.sign(c.key);
                let forged = original.claim("extra", json!("added later"));
                let parts: Vec<&str> = signed.split('.').collect();
                let claims = forged.signing_input();
                let claims = claims.split('.').nth(1).unwrap();
                c.with_proof(&format!("{}.{claims}.{}", parts[0], parts[2]))
            },
        ),
        // ---- jwk
        Case::bad_proof("jwk missing", L_JWK, |c| {
            c.edited(|p| p.without_header("jwk"))
        }),
        Case::bad_proof("jwk with the private key (d)", L_PRIVATE, |c| {
            let j = c.key.private_jwk();
            c.edited(|p| p.header("jwk", j))
        }),
        Case::bad_proof("jwk RSA with the private members", L_PRIVATE, |c| {
            let j = c.rsa2048.private_jwk();
            c.at("/d/ok", c.rsa2048, |p| p.header("jwk", j))
        }),
        Case::bad_proof("jwk RSA-1024", L_RSA_SIZE, |c| {
            c.at("/d/ok", c.rsa1024, |p| p)
        }),
        Case::bad_proof("jwk RSA-16384", L_RSA_SIZE, |c| {
            c.at("/d/ok", c.rsa16384, |p| p)
        }),
        Case::bad_proof(
            "jwk EC point not on the curve",
            &["jwk", "curve", "point", "signature"],
            |c| {
                let mut j = c.key.public_jwk();
                let y = j["y"].as_str().unwrap().to_string();
                let flipped = if y.starts_with('A') { "B" } else { "A" };
                j["y"] = json!(format!("{flipped}{}", &y[1..]));
                c.edited(|p| p.header("jwk", j))
            },
        ),
        Case::bad_proof("jwk not an object", L_JWK, |c| {
            c.edited(|p| p.header("jwk", json!("AAAA")))
        }),
        // ---- htm
        Case::bad_proof("htm POST on a GET", L_HTM, |c| {
            c.edited(|p| p.claim("htm", json!("POST")))
        }),
        Case::bad_proof("htm `get` in lower case", L_HTM, |c| {
            c.edited(|p| p.claim("htm", json!("get")))
        }),
        Case::bad_proof("htm missing", L_HTM, |c| {
            c.edited(|p| p.without_claim("htm"))
        }),
        // ---- htu
        Case::bad_proof("htu of another host", L_HTU, |c| {
            let u = format!("https://127.0.0.2:{}/d/ok", c.h.https_port);
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::bad_proof("htu of another port", L_HTU, |c| {
            let u = format!("https://127.0.0.1:{}/d/ok", c.h.http_port);
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::bad_proof("htu of another path", L_HTU, |c| {
            let u = c.htu("/d/env");
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::bad_proof("htu path in other letter case", L_HTU, |c| {
            let u = c.htu("/d/OK");
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::bad_proof("htu scheme http", L_HTU, |c| {
            let u = format!("http://127.0.0.1:{}/d/ok", c.h.https_port);
            c.edited(|p| p.claim("htu", json!(u)))
        }),
        Case::bad_proof("htu relative", L_HTU, |c| {
            c.edited(|p| p.claim("htu", json!("/d/ok")))
        }),
        Case::bad_proof("htu missing", L_HTU, |c| {
            c.edited(|p| p.without_claim("htu"))
        }),
        Case::bad_proof("htu port 443 when Apache sees the real port", L_HTU, |c| {
            c.edited(|p| p.claim("htu", json!("https://127.0.0.1/d/ok")))
        }),
        // ---- iat
        Case::bad_proof("iat 1 h in the past", L_IAT, |c| {
            c.edited(|p| p.claim("iat", json!(now() - 3600)))
        }),
        Case::bad_proof("iat 1 h in the future", L_IAT, |c| {
            c.edited(|p| p.claim("iat", json!(now() + 3600)))
        }),
        Case::bad_proof("iat a string", L_IAT, |c| {
            let t = now().to_string();
            c.edited(|p| p.claim("iat", json!(t)))
        }),
        Case::bad_proof("iat missing where iat.verify=required", L_IAT, |c| {
            c.at("/q/ok", c.key, |p| p.without_claim("iat"))
        }),
        // ---- ath
        Case::bad_proof("ath missing", L_ATH, |c| {
            c.edited(|p| p.without_claim("ath"))
        }),
        Case::bad_proof("ath of another token", L_ATH, |c| {
            let t = bound_token(c.signer, "someone-else", c.key);
            c.edited(|p| p.ath(&t))
        }),
        Case::bad_proof("ath as hex instead of base64url", L_ATH, |c| {
            let hex = sha256_hex(c.token.as_bytes());
            c.edited(|p| p.claim("ath", json!(hex)))
        }),
        // ---- jti
        Case::bad_proof("jti missing", L_JTI, |c| {
            c.edited(|p| p.without_claim("jti"))
        }),
        // ---- the binding and the token
        Case::refused(
            "proof key is not the token's cnf.jkt",
            BAD_BINDING,
            L_BINDING,
            |c| {
                let p = c
                    .proof(|p| p.header("jwk", c.other.public_jwk()))
                    .sign(c.other);
                c.with_proof(&p)
            },
        ),
        Case::refused(
            "token without cnf.jkt, valid proof",
            BAD_BINDING,
            L_BINDING,
            |c| {
                let t = c.signer.mint(&claims("unbound-user"));
                let p = Proof::new(c.key, "GET", &c.htu("/d/ok"))
                    .ath(&t)
                    .sign(c.key);
                RawReq::get("/d/ok").dpop_token(&t).proof(&p)
            },
        ),
        Case::refused(
            "token with cnf.x5t#S256 only, valid proof",
            BAD_BINDING,
            L_BINDING,
            |c| {
                let t = c.signer.mint(&with(
                    claims("mtls-user"),
                    json!({ "cnf": { "x5t#S256": c.h.pki.thumb_a } }),
                ));
                let p = Proof::new(c.key, "GET", &c.htu("/d/ok"))
                    .ath(&t)
                    .sign(c.key);
                RawReq::get("/d/ok").dpop_token(&t).proof(&p)
            },
        ),
        Case::refused(
            "token with cnf.jkt not a string",
            BAD_BINDING,
            &["jkt"],
            |c| {
                let t = c
                    .signer
                    .mint(&with(claims("odd-user"), json!({ "cnf": { "jkt": 42 } })));
                let p = Proof::new(c.key, "GET", &c.htu("/d/ok"))
                    .ath(&t)
                    .sign(c.key);
                RawReq::get("/d/ok").dpop_token(&t).proof(&p)
            },
        ),
        Case::refused("token signature altered", BAD_TOKEN, L_SIG, |c| {
            let t = tamper_signature(&c.token);
            let p = Proof::new(c.key, "GET", &c.htu("/d/ok"))
                .ath(&t)
                .sign(c.key);
            RawReq::get("/d/ok").dpop_token(&t).proof(&p)
        }),
        Case::refused("token expired", BAD_TOKEN, &["exp"], |c| {
            let n = now();
            let t = c.signer.mint(&with(
                claims("late"),
                json!({ "iat": n - 600, "exp": n - 300, "cnf": { "jkt": c.key.thumbprint() } }),
            ));
            let p = Proof::new(c.key, "GET", &c.htu("/d/ok"))
                .ath(&t)
                .sign(c.key);
            RawReq::get("/d/ok").dpop_token(&t).proof(&p)
        }),
        Case::refused("DPoP header without a token", NO_ERROR, L_NO_TOKEN, |c| {
            RawReq::get("/d/ok").proof(&c.proof(|p| p.without_claim("ath")).sign(c.key))
        }),
    ]
}

/// Every proof check of RFC 9449 section 4.3 as its own row, at a location whose only verifier
/// is `type=dpop` (a local `jwk`); each refusal is one log line naming the check, and neither a
/// token nor a proof reaches the log.
#[test]
fn every_proof_check_refuses_on_its_own() {
    // big RSA keys from 2048-bit primes, in the background while httpd starts
    let big = std::thread::spawn(|| DpopKey::rsa_multi_prime(16384));
    let mid = std::thread::spawn(|| DpopKey::rsa_multi_prime(8192));
    let signer = TokenSigner::rsa("dpop-table");
    let body = [
        dpop_location(&signer),
        oauth2_location("/e", &jwk_verify(&signer, "type=dpop&dpop.algs=ES256")),
        oauth2_location(
            "/q",
            &jwk_verify(&signer, "type=dpop&dpop.iat.verify=required"),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let key = DpopKey::p256();
    let other = DpopKey::p256();
    let p384 = DpopKey::p384();
    let p521 = DpopKey::p521();
    let ed25519 = DpopKey::ed25519();
    let rsa2048 = DpopKey::rsa(2048);
    let rsa1024 = DpopKey::rsa(1024);
    let rsa8192 = mid.join().unwrap();
    let rsa16384 = big.join().unwrap();
    assert_eq!(rsa8192.rsa_bits(), Some(8192));
    assert_eq!(rsa16384.rsa_bits(), Some(16384));
    let ctx = Ctx {
        h: &h,
        signer: &signer,
        key: &key,
        other: &other,
        p384: &p384,
        p521: &p521,
        ed25519: &ed25519,
        rsa2048: &rsa2048,
        rsa1024: &rsa1024,
        rsa8192: &rsa8192,
        rsa16384: &rsa16384,
        token: bound_token(&signer, "dpop-user", &key),
    };
    let cases = cases();
    let mut f = Failures::new();
    let mut marks = Vec::new();
    let mut sent: Vec<String> = vec![ctx.token.clone()];
    for c in &cases {
        let req = (c.request)(&ctx);
        for (n, v) in &req.headers {
            if n.eq_ignore_ascii_case("dpop") || n.eq_ignore_ascii_case("authorization") {
                sent.push(v.rsplit(' ').next().unwrap_or(v).to_string());
            }
        }
        marks.push(h.log_mark());
        let r = send_raw(&h, &req);
        if c.expect_status == 401 {
            expect_dpop_401(
                &mut f,
                c.name,
                &r,
                &DpopChallenge {
                    algs: c.expect_algs,
                    realm: None,
                    errors: c.expect_errors,
                },
            );
        } else {
            expect_status(&mut f, c.name, &r, c.expect_status);
        }
    }
    // a request outside any oauth2 location closes the last window
    let _ = send_raw(&h, &RawReq::get("/none/ok"));
    marks.push(h.log_mark());

    for (i, c) in cases.iter().enumerate() {
        let lines = refusals_between(&h, marks[i], marks[i + 1]);
        if c.expect_status == 401 {
            f.check(lines.len() == 1, || {
                format!(
                    "{}: expected one refusal line, got {}: {lines:?}",
                    c.name,
                    lines.len()
                )
            });
            if let Some(l) = lines.first() {
                f.check(mentions_any(l, c.expect_log), || {
                    format!(
                        "{}: the refusal line names none of {:?}: {l}",
                        c.name, c.expect_log
                    )
                });
            }
        } else {
            f.check(lines.is_empty(), || {
                format!("{}: accepted, but logged above debug: {lines:?}", c.name)
            });
        }
    }
    let log = h.error_log();
    for s in sent.iter().filter(|s| s.len() > 20) {
        let sig = signature_segment(s);
        f.check(!log.contains(s.as_str()), || {
            format!("a token or proof is in the error log: {s}")
        });
        f.check(sig.len() < 20 || !log.contains(sig), || {
            format!("a signature segment is in the error log: {sig}")
        });
    }
    f.assert_none_showing(&h);
}

// ---------------------------------------------------------------------------------------------
// 3. Methods
// ---------------------------------------------------------------------------------------------

/// `htm` is the method exactly, whatever the method: PATCH, HEAD, WebDAV's PROPFIND and an
/// extension method are accepted with a matching proof; a proof for another method is refused.
#[test]
fn every_method_with_a_matching_htm() {
    let signer = TokenSigner::ec("dpop-methods");
    let h = Httpd::start(HttpdConfig::new(dpop_location(&signer)));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "method-user", &key);
    let mut f = Failures::new();

    /// A request method and the `htm` of its proof.
    struct Method {
        method: &'static str,
        htm: &'static str,
        expect_status: u16,
    }
    let rows = [
        Method {
            method: "GET",
            htm: "GET",
            expect_status: 200,
        },
        Method {
            method: "POST",
            htm: "POST",
            expect_status: 200,
        },
        Method {
            method: "PATCH",
            htm: "PATCH",
            expect_status: 200,
        },
        Method {
            method: "HEAD",
            htm: "HEAD",
            expect_status: 200,
        },
        Method {
            method: "PROPFIND",
            htm: "PROPFIND",
            expect_status: 200,
        },
        Method {
            method: "BREW",
            htm: "BREW",
            expect_status: 200,
        },
        Method {
            method: "POST",
            htm: "GET",
            expect_status: 401,
        },
        Method {
            method: "HEAD",
            htm: "GET",
            expect_status: 401,
        },
        Method {
            method: "GET",
            htm: "HEAD",
            expect_status: 401,
        },
        Method {
            method: "PATCH",
            htm: "patch",
            expect_status: 401,
        },
        Method {
            method: "PROPFIND",
            htm: "PROPPATCH",
            expect_status: 401,
        },
    ];
    for Method {
        method,
        htm,
        expect_status: want,
    } in rows
    {
        let what = format!("{method} with htm {htm}");
        let proof = Proof::new(&key, htm, &htu(&h, "/d/env"))
            .ath(&token)
            .sign(&key);
        let mut req = RawReq::new(method, "/d/env")
            .dpop_token(&token)
            .proof(&proof);
        if method == "POST" || method == "PATCH" {
            req = req.header("Content-Length", "0");
        }
        let r = send_raw(&h, &req);
        if want == 401 {
            expect_dpop_401(&mut f, &what, &r, &PROOF_REFUSED);
            continue;
        }
        expect_status(&mut f, &what, &r, want);
        if r.status == 200 && method != "HEAD" {
            let m = r.env().get("REQUEST_METHOD").cloned();
            f.check(m.as_deref() == Some(method), || {
                format!("{what}: the CGI saw REQUEST_METHOD {m:?}")
            });
        }
    }
    f.assert_none_showing(&h);
}

/// Internal redirects and sub-requests (server-level rewrite, ErrorDocument, per-directory
/// rewrite, DirectoryIndex) into a DPoP location reuse the first check: the proof, made for the
/// URL the client asked for and already recorded, is not checked again (that would refuse it as a
/// replay, or for its `htu`).
#[test]
fn internal_redirects_and_subrequests_check_the_proof_once() {
    let signer = TokenSigner::rsa("dpop-redirects");
    let verify = jwk_verify(&signer, "type=dpop");
    let h = start_httpd_with_internal_redirects(&verify);
    let key = DpopKey::p256();
    let token = bound_token(&signer, "redirect-user", &key);
    let mut f = Failures::new();
    for case in &REDIRECTS {
        let (what, path, status) = (case.what, case.path, case.expect_status);
        let r = send_raw(&h, &dpop_req(&h, "GET", path, &token, &key));
        expect_status(&mut f, &format!("{what} {path}"), &r, status);
        case.check_cgi(&mut f, &r, "redirect-user");
        // and without a proof it is refused before any redirect
        let r = send_raw(&h, &RawReq::get(path).dpop_token(&token));
        expect_dpop_401(
            &mut f,
            &format!("{what} {path} without a proof"),
            &r,
            &PROOF_REFUSED,
        );
    }
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

/// httpd takes bytes that are not UTF-8 in a request target (obs-text): the proof's `htu` is
/// still compared with the path asked for. A proof made for the site's root must not open
/// `/d/ok` by a query, or a path, holding such a byte.
#[test]
fn htu_is_compared_with_a_target_that_is_not_utf8() {
    let signer = TokenSigner::ec("dpop-htu-bytes");
    let h = Httpd::start(HttpdConfig::new(dpop_location(&signer)));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "bytes-user", &key);
    let mut f = Failures::new();
    for (what, target, proof_path, status) in [
        ("query byte, proof for /", "/d/ok?q=", "/", 401),
        ("path byte, proof for /", "/d/ok", "/", 401),
        ("query byte, proof for /d/ok", "/d/ok?q=", "/d/ok", 200),
    ] {
        let proof = Proof::new(&key, "GET", &htu(&h, proof_path))
            .ath(&token)
            .sign(&key);
        let req = RawReq::get(target)
            .target_tail(b"\xff")
            .dpop_token(&token)
            .proof(&proof);
        let r = send_raw(&h, &req);
        expect_status(&mut f, what, &r, status);
    }
    f.assert_none_showing(&h);
}

// ---------------------------------------------------------------------------------------------
// 4. Replay
// ---------------------------------------------------------------------------------------------

/// A proof is used once: the same proof again (new connection or the same keep-alive one) is
/// refused; a new proof with the same key and `jti` is refused too, the same `jti` under another
/// key is not; a proof refused for another reason was not recorded and still works once.
#[test]
fn a_proof_is_accepted_once() {
    let signer = TokenSigner::ec("dpop-replay");
    let h = Httpd::start(HttpdConfig::new(dpop_location(&signer)));
    let key = DpopKey::p256();
    let other = DpopKey::p256();
    let token = bound_token(&signer, "replay-user", &key);
    let other_token = bound_token(&signer, "replay-other", &other);
    let u = htu(&h, "/d/ok");
    let mut f = Failures::new();

    // new connections
    let proof = Proof::new(&key, "GET", &u).ath(&token);
    let p = proof.sign(&key);
    let req = RawReq::get("/d/ok").dpop_token(&token).proof(&p);
    let r = send_raw(&h, &req);
    expect_status(&mut f, "first use", &r, 200);
    let mark = h.log_mark();
    let r = send_raw(&h, &req);
    expect_dpop_401(&mut f, "the same proof again", &r, &PROOF_REFUSED);
    let lines = refusals_between(&h, mark, h.log_mark());
    f.check(
        lines.len() == 1 && mentions_any(&lines[0], LOG_REPLAY),
        || format!("replay: expected one refusal line naming the replay, got {lines:?}"),
    );
    let r = send_raw(&h, &req.clone().header("X-Other", "1"));
    expect_dpop_401(&mut f, "the same proof a third time", &r, &PROOF_REFUSED);

    // one keep-alive connection
    let mut conn = Conn::open(&h).unwrap();
    let p2 = Proof::new(&key, "GET", &u).ath(&token).sign(&key);
    let req2 = RawReq::get("/d/ok").dpop_token(&token).proof(&p2);
    let r1 = conn.send(&req2).unwrap();
    expect_status(&mut f, "keep-alive: first use", &r1, 200);
    let r2 = conn.send(&req2).unwrap();
    expect_dpop_401(
        &mut f,
        "keep-alive: the same proof again",
        &r2,
        &PROOF_REFUSED,
    );
    // the token is known on this connection now: the proof is still required every time
    let r3 = conn.send(&RawReq::get("/d/ok").dpop_token(&token)).unwrap();
    expect_dpop_401(
        &mut f,
        "keep-alive: the known token without a proof",
        &r3,
        &PROOF_REFUSED,
    );
    let p4 = Proof::new(&key, "GET", &u).ath(&token).sign(&key);
    let r4 = conn
        .send(&RawReq::get("/d/ok").bearer(&token).proof(&p4))
        .unwrap();
    expect_status(
        &mut f,
        "keep-alive: the known token with the Bearer scheme and a valid proof",
        &r4,
        401,
    );
    let r5 = conn
        .send(&RawReq::get("/d/ok").dpop_token(&token).proof(&p4))
        .unwrap();
    expect_status(
        &mut f,
        "keep-alive: that proof, refused with Bearer, then with DPoP",
        &r5,
        200,
    );

    // the jti is what is recorded (with the key): another proof with the same jti
    let same_jti = proof
        .clone()
        .claim("iat", json!(now() - 1))
        .claim("extra", json!(1));
    let r = send_raw(
        &h,
        &RawReq::get("/d/ok")
            .dpop_token(&token)
            .proof(&same_jti.sign(&key)),
    );
    expect_dpop_401(
        &mut f,
        "a new proof with a used jti, same key",
        &r,
        &PROOF_REFUSED,
    );
    // ... keyed with the proof key: the same jti under another key is another proof
    let by_other = Proof::new(&other, "GET", &u)
        .ath(&other_token)
        .claim("jti", json!(proof.jti()))
        .sign(&other);
    let r = send_raw(
        &h,
        &RawReq::get("/d/ok")
            .dpop_token(&other_token)
            .proof(&by_other),
    );
    expect_status(&mut f, "the same jti under another key", &r, 200);

    // recorded only after every other check passed
    let p3 = Proof::new(&key, "GET", &u).ath(&token).sign(&key);
    /// An attempt with a proof before its first valid use.
    struct Before {
        what: &'static str,
        req: RawReq,
    }
    let before = [
        Before {
            what: "the proof without a token",
            req: RawReq::get("/d/ok").proof(&p3),
        },
        Before {
            what: "the proof with the Bearer scheme",
            req: RawReq::get("/d/ok").bearer(&token).proof(&p3),
        },
        Before {
            what: "the proof on a POST",
            req: RawReq::new("POST", "/d/ok")
                .header("Content-Length", "0")
                .dpop_token(&token)
                .proof(&p3),
        },
        Before {
            what: "the proof with another token",
            req: RawReq::get("/d/ok").dpop_token(&other_token).proof(&p3),
        },
        Before {
            what: "the proof at another path",
            req: RawReq::get("/d/env").dpop_token(&token).proof(&p3),
        },
    ];
    for Before { what, req } in before {
        let r = send_raw(&h, &req);
        expect_status(&mut f, what, &r, 401);
    }
    let req3 = RawReq::get("/d/ok").dpop_token(&token).proof(&p3);
    let r = send_raw(&h, &req3);
    expect_status(
        &mut f,
        "a proof refused five times for other reasons, then used correctly",
        &r,
        200,
    );
    let r = send_raw(&h, &req3);
    expect_dpop_401(&mut f, "... and then replayed", &r, &PROOF_REFUSED);
    f.assert_none_showing(&h);
}

/// A graceful restart does not open a replay window: a proof accepted before is refused after
/// (its `iat` is still within the window), under the default replay store and a named shm cache.
/// httpd loads the module afresh, so shm starts empty: proofs issued in a second before the
/// restart are refused as such (a proof of the restart's own second is let through).
#[test]
fn replay_refused_across_a_graceful_restart() {
    let signer = TokenSigner::ec("dpop-graceful");
    let body = [
        dpop_location(&signer),
        oauth2_location("/s", &jwk_verify(&signer, "type=dpop&dpop.cache=mem")),
    ]
    .concat();
    let mut h = Httpd::start(HttpdConfig::new(body).server("OAuth2Cache shm name=mem\n"));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "graceful-user", &key);
    let mut f = Failures::new();
    let reqs: Vec<(&str, RawReq)> = ["/d/ok", "/s/ok"]
        .into_iter()
        .map(|p| (p, dpop_req(&h, "GET", p, &token, &key)))
        .collect();
    for (path, req) in &reqs {
        let r = send_raw(&h, req);
        expect_status(&mut f, &format!("{path}: before the restart"), &r, 200);
    }
    // The restart happens in a later second than the proofs' iat.
    std::thread::sleep(Duration::from_millis(1100));
    h.graceful();
    for (path, req) in &reqs {
        let r = send_raw(&h, req);
        expect_dpop_401(
            &mut f,
            &format!("{path}: the same proof after a graceful restart"),
            &r,
            &PROOF_REFUSED,
        );
    }
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

/// The same proof sent by 12 clients at once, on new connections, to prefork children and to
/// event-MPM threads: exactly one is accepted (the `jti` is inserted if absent, atomically).
#[test]
fn the_same_proof_sent_concurrently_is_accepted_once() {
    let signer = TokenSigner::ec("dpop-race");
    let location = dpop_location(&signer);
    let prefork = Httpd::start(
        HttpdConfig::new(location.clone())
            .mpm(Mpm::Prefork)
            .server(PREFORK_CHILDREN),
    );
    let event = Httpd::start(HttpdConfig::new(location));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "race-user", &key);
    let mut f = Failures::new();
    for (mpm, h) in [("prefork", &prefork), ("event", &event)] {
        for round in 0..5 {
            let req = dpop_req(h, "GET", "/d/ok", &token, &key);
            let barrier = std::sync::Barrier::new(12);
            let statuses: Vec<Result<u16, String>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..12)
                    .map(|_| {
                        let (req, barrier, port) = (&req, &barrier, h.https_port);
                        s.spawn(move || {
                            barrier.wait();
                            try_send_raw(port, req).map(|r| r.status)
                        })
                    })
                    .collect();
                handles.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
            let refused = statuses.iter().filter(|s| matches!(s, Ok(401))).count();
            f.check(ok == 1 && refused == 11, || {
                format!("{mpm} round {round}: {ok} accepted, {refused} refused: {statuses:?}")
            });
        }
        h.assert_no_child_crash();
    }
    f.assert_none_showing(&event);
}

/// The pid that served the request with the query `marker` (the access log's `%P`).
fn pid_of(h: &Httpd, marker: &str) -> Option<u32> {
    let needle = format!("?{marker} ");
    poll(Duration::from_secs(3), || {
        h.access_log()
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|p| p.trim().parse().ok())
    })
}

/// Under prefork with several children (a new connection per request), a proof accepted by one
/// child is refused by every other: the jti is recorded in the shared (shm) cache.
#[test]
fn replay_refused_across_prefork_children() {
    let signer = TokenSigner::ec("dpop-prefork");
    let h = Httpd::start(
        HttpdConfig::new(dpop_location(&signer))
            .mpm(Mpm::Prefork)
            .server(PREFORK_CHILDREN),
    );
    let key = DpopKey::p256();
    let token = bound_token(&signer, "prefork-user", &key);
    let u = htu(&h, "/d/ok");
    let mut f = Failures::new();
    let counter = AtomicUsize::new(0);
    let mut accepted_pids = BTreeSet::new();
    let mut refused_elsewhere = 0;
    for round in 0..12 {
        let p = Proof::new(&key, "GET", &u).ath(&token).sign(&key);
        let first = format!("r{round}-first");
        let r = send_raw(
            &h,
            &RawReq::get(&format!("/d/ok?{first}"))
                .dpop_token(&token)
                .proof(&p),
        );
        expect_status(&mut f, &format!("round {round}: first use"), &r, 200);
        let Some(first_pid) = pid_of(&h, &first) else {
            f.fail(format!(
                "round {round}: no access log line for the first use"
            ));
            continue;
        };
        accepted_pids.insert(first_pid);
        // four replays at once, each on its own connection: several children answer
        let results: Vec<(String, Result<Response, String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let marker =
                        format!("r{round}-replay{}", counter.fetch_add(1, Ordering::SeqCst));
                    let req = RawReq::get(&format!("/d/ok?{marker}"))
                        .dpop_token(&token)
                        .proof(&p);
                    let port = h.https_port;
                    s.spawn(move || (marker, try_send_raw(port, &req)))
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (marker, r) in results {
            match r {
                Ok(r) => {
                    expect_status(&mut f, &format!("round {round}: {marker}"), &r, 401);
                    if r.status == 401 && pid_of(&h, &marker).is_some_and(|p| p != first_pid) {
                        refused_elsewhere += 1;
                    }
                }
                Err(e) => f.fail(format!("round {round}: {marker}: {e}")),
            }
        }
        if refused_elsewhere >= 3 && accepted_pids.len() >= 2 {
            break;
        }
    }
    f.check(refused_elsewhere >= 1, || {
        "no replay was answered by another child than the one that accepted the proof".into()
    });
    eprintln!(
        "prefork: proofs accepted by children {accepted_pids:?}, {refused_elsewhere} replays refused by another child"
    );
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

/// Two httpds sharing one Redis (`dpop.cache=r`, encrypted entries) behind one public name
/// (`UseCanonicalName On`, `ServerName api.example.test:8443`): a proof accepted by one is
/// refused by the other.
#[test]
fn replay_refused_across_two_httpds_sharing_redis() {
    let redis = Redis::start(RedisAuth::Password("dpop-pw".into()));
    let signer = TokenSigner::ec("dpop-redis");
    let public = "api.example.test:8443";
    let cfg = || {
        let mut c = HttpdConfig::new(oauth2_location(
            "/r",
            &jwk_verify(&signer, "type=dpop&dpop.cache=r"),
        ))
        .server(format!(
            "OAuth2Cache redis {}\nOAuth2CryptoPassphrase {}\n",
            apache_quote(&format!("name=r&{}", redis.cache_options())),
            apache_quote(PASSPHRASE)
        ));
        c.tls_body = format!("UseCanonicalName On\nServerName {public}\n");
        c
    };
    let h1 = Httpd::start(cfg());
    let h2 = Httpd::start(cfg());
    let key = DpopKey::p256();
    let token = bound_token(&signer, "redis-user", &key);
    let u = format!("https://{public}/r/ok");
    let req = |p: &str| {
        RawReq::get("/r/ok")
            .header("Host", public)
            .dpop_token(&token)
            .proof(p)
    };
    let mut f = Failures::new();
    for round in 0..3 {
        let (first, second) = if round % 2 == 0 {
            (&h1, &h2)
        } else {
            (&h2, &h1)
        };
        let p = Proof::new(&key, "GET", &u).ath(&token).sign(&key);
        let r = send_raw(first, &req(&p));
        expect_status(&mut f, &format!("round {round}: first use"), &r, 200);
        let mark = second.log_mark();
        let r = send_raw(second, &req(&p));
        expect_dpop_401(
            &mut f,
            &format!("round {round}: replayed at the other httpd"),
            &r,
            &PROOF_REFUSED,
        );
        let lines = refusals_between(second, mark, second.log_mark());
        f.check(
            lines.len() == 1 && mentions_any(&lines[0], LOG_REPLAY),
            || format!("round {round}: expected one refusal line naming the replay, got {lines:?}"),
        );
        let r = send_raw(first, &req(&p));
        expect_dpop_401(
            &mut f,
            &format!("round {round}: replayed at the same httpd"),
            &r,
            &PROOF_REFUSED,
        );
    }
    f.check(redis.dbsize() >= 3, || {
        format!(
            "redis holds {} keys, expected the 3 recorded proofs",
            redis.dbsize()
        )
    });
    let stored: Vec<String> = redis.keys();
    f.check(
        stored.iter().all(|k| !k.contains(&key.thumbprint())),
        || format!("a redis key shows the proof key's thumbprint: {stored:?}"),
    );
    h1.assert_no_child_crash();
    h2.assert_no_child_crash();
    if !f.all_passed() {
        eprintln!("--- second httpd's oauth2 lines ---");
        for l in h2.error_log().lines().filter(|l| l.contains("oauth2")) {
            eprintln!("{l}");
        }
    }
    f.assert_none_showing(&h1);
}

/// The replay store down (Redis killed): a proof cannot be checked for replay, so it is refused
/// (401 `invalid_dpop_proof`, an error-level log line) rather than accepted; once Redis is back
/// (after the module's back-off) proofs are accepted again and replays refused.
#[test]
fn replay_store_down_refuses_proofs_then_recovers() {
    let mut redis = Redis::start(RedisAuth::Open);
    let signer = TokenSigner::ec("dpop-redis-down");
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location(
            "/r",
            &jwk_verify(&signer, "type=dpop&dpop.cache=r"),
        ))
        .server(format!(
            "{}OAuth2Cache redis {}\nOAuth2CryptoPassphrase {}\n",
            single_process(),
            apache_quote(&format!("name=r&{}", redis.cache_options())),
            apache_quote(PASSPHRASE)
        )),
    );
    let key = DpopKey::p256();
    let token = bound_token(&signer, "redis-down-user", &key);
    let u = htu(&h, "/r/ok");
    let fresh = || {
        RawReq::get("/r/ok")
            .dpop_token(&token)
            .proof(&Proof::new(&key, "GET", &u).ath(&token).sign(&key))
    };
    let mut f = Failures::new();
    let r = send_raw(&h, &fresh());
    expect_status(&mut f, "redis up: a fresh proof", &r, 200);

    redis.kill();
    let mark = h.log_mark();
    let r = send_raw(&h, &fresh());
    expect_dpop_401(&mut f, "redis down: a fresh proof", &r, &PROOF_REFUSED);
    let lines = refusals_between(&h, mark, h.log_mark());
    f.check(lines.iter().any(|l| l.contains("[oauth2:error]")), || {
        format!("redis down: no error-level line: {lines:?}")
    });

    redis.restart();
    let back = poll(Duration::from_secs(15), || {
        let req = fresh();
        (send_raw(&h, &req).status == 200).then_some(req)
    });
    match back {
        Some(req) => {
            let r = send_raw(&h, &req);
            expect_status(&mut f, "redis back: the accepted proof replayed", &r, 401);
        }
        None => f.fail("redis restarted: no proof accepted within 15 s"),
    }
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

// ---------------------------------------------------------------------------------------------
// 5. Nonces
// ---------------------------------------------------------------------------------------------

/// `dpop.nonce=on` (default interval): a proof without the server's nonce gets 401
/// `use_dpop_nonce` with a `DPoP-Nonce`; the retry with it is accepted; a made-up nonce is refused.
#[test]
fn server_nonce_challenge_and_retry() {
    nonce_flow("type=dpop&dpop.nonce=on", false);
}

/// `dpop.nonce.interval=2`: the challenge and retry as above, then a nonce is refused after two
/// intervals, successful responses near the rotation carry the next nonce, which is accepted, and
/// so is the nonce of the new challenge.
#[test]
fn server_nonce_rotation() {
    nonce_flow("type=dpop&dpop.nonce=on&dpop.nonce.interval=2", true);
}

/// `dpop.nonce.interval=10`: within the last seconds of an
/// interval, successful responses carry the next interval's nonce in `DPoP-Nonce`, and a proof
/// with it is accepted at once. Waits at most one interval.
#[test]
fn server_nonce_next_announced_near_rotation() {
    let signer = TokenSigner::ec("dpop-next-nonce");
    let h = Httpd::start(HttpdConfig::new(oauth2_location(
        "/n",
        &jwk_verify(&signer, "type=dpop&dpop.nonce=on&dpop.nonce.interval=10"),
    )));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "next-nonce-user", &key);
    let u = htu(&h, "/n/ok");
    let send = |nonce: Option<&str>| {
        let mut p = Proof::new(&key, "GET", &u).ath(&token);
        if let Some(n) = nonce {
            p = p.nonce(n);
        }
        send_raw(
            &h,
            &RawReq::get("/n/ok").dpop_token(&token).proof(&p.sign(&key)),
        )
    };
    let mut f = Failures::new();
    let Some(current) = send(None).header("DPoP-Nonce").map(str::to_string) else {
        f.fail("no DPoP-Nonce with the challenge");
        return f.assert_none_showing(&h);
    };
    let start = Instant::now();
    let mut announced = None;
    while start.elapsed() < Duration::from_secs(12) {
        let r = send(Some(current.as_str()));
        if r.status != 200 {
            f.fail(format!(
                "the current nonce after {:?}: status {} (WWW-Authenticate {:?})",
                start.elapsed(),
                r.status,
                r.header_all("WWW-Authenticate")
            ));
            break;
        }
        if let Some(n) = r.header("DPoP-Nonce").filter(|n| *n != current) {
            announced = Some((n.to_string(), start.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    match announced {
        None => f.fail("no 200 within one interval carried the next DPoP-Nonce"),
        Some((next, after)) => {
            eprintln!("next nonce announced after {after:?}");
            let r = send(Some(next.as_str()));
            expect_status(
                &mut f,
                &format!("the next nonce, announced after {after:?}, used at once"),
                &r,
                200,
            );
        }
    }
    f.assert_none_showing(&h);
}

fn nonce_flow(options: &str, rotation: bool) {
    let signer = TokenSigner::ec("dpop-nonce");
    let h = Httpd::start(HttpdConfig::new(oauth2_location(
        "/n",
        &jwk_verify(&signer, options),
    )));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "nonce-user", &key);
    let u = htu(&h, "/n/ok");
    let send = |nonce: Option<&str>| {
        let mut p = Proof::new(&key, "GET", &u).ath(&token);
        if let Some(n) = nonce {
            p = p.nonce(n);
        }
        send_raw(
            &h,
            &RawReq::get("/n/ok").dpop_token(&token).proof(&p.sign(&key)),
        )
    };
    let mut f = Failures::new();

    let r = send(None);
    expect_dpop_401(&mut f, "no nonce", &r, &NONCE_REQUIRED);
    let Some(n1) = r.header("DPoP-Nonce").map(str::to_string) else {
        f.fail("no DPoP-Nonce header with use_dpop_nonce");
        return f.assert_none_showing(&h);
    };
    f.check(
        !n1.is_empty() && n1.bytes().all(|b| (0x21..0x7f).contains(&b)),
        || format!("DPoP-Nonce {n1:?} is not a visible-ASCII string (RFC 9449 section 8.1)"),
    );
    let issued = Instant::now();
    let r = send(Some(n1.as_str()));
    expect_status(&mut f, "retry with the server's nonce", &r, 200);
    let r = send(Some("made-up-nonce-0123456789"));
    expect_dpop_401(&mut f, "a made-up nonce", &r, &NONCE_REQUIRED);
    f.check(r.header("DPoP-Nonce").is_some(), || {
        "no DPoP-Nonce with use_dpop_nonce for a made-up nonce".into()
    });

    if !rotation {
        return f.assert_none_showing(&h);
    }
    // rotation: keep using n1 until it is refused (at most 3 intervals and a second)
    let mut next_from_success: Option<String> = None;
    let mut refused_after: Option<Duration> = None;
    let mut fresh_nonce: Option<String> = None;
    while issued.elapsed() < Duration::from_secs(8) {
        let r = send(Some(n1.as_str()));
        match r.status {
            200 => {
                if let Some(n) = r.header("DPoP-Nonce").filter(|n| *n != n1) {
                    next_from_success.get_or_insert_with(|| n.to_string());
                }
            }
            401 => {
                let p = dpop_refusal_problems(&r, &NONCE_REQUIRED);
                f.check(p.is_empty(), || {
                    format!("the old nonce after rotation: {}", p.join("; "))
                });
                refused_after = Some(issued.elapsed());
                fresh_nonce = r.header("DPoP-Nonce").map(str::to_string);
                break;
            }
            s => {
                f.fail(format!("the old nonce: status {s}"));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match refused_after {
        None => f.fail("a nonce of interval 2 s was still accepted after 8 s"),
        Some(t) => f.check(t <= Duration::from_millis(6500), || {
            format!("a nonce of interval 2 s was refused only after {t:?}")
        }),
    }
    f.check(next_from_success.is_some(), || {
        "no successful response before the rotation carried the next DPoP-Nonce".into()
    });
    if let Some(n) = &next_from_success {
        let r = send(Some(n.as_str()));
        expect_status(&mut f, "the next nonce announced by a 200", &r, 200);
    }
    match &fresh_nonce {
        Some(n) => {
            f.check(*n != n1, || {
                "the new challenge repeats the old nonce".into()
            });
            let r = send(Some(n.as_str()));
            expect_status(&mut f, "retry with the rotated nonce", &r, 200);
        }
        None => f.fail("no DPoP-Nonce with the refusal of the old nonce"),
    }
    f.assert_none_showing(&h);
}

/// Nonces are the same for every prefork child (the secret is made before the children are
/// forked) and for every host configured with the same `OAuth2CryptoPassphrase`; a host with
/// another passphrase refuses them.
#[test]
fn nonces_shared_by_prefork_children_and_by_hosts_with_one_passphrase() {
    let signer = TokenSigner::ec("dpop-nonce-shared");
    let location = oauth2_location("/n", &jwk_verify(&signer, "type=dpop&dpop.nonce=on"));
    let passphrase = |p: &str| format!("OAuth2CryptoPassphrase {}\n", apache_quote(p));
    let prefork = Httpd::start(
        HttpdConfig::new(location.clone())
            .mpm(Mpm::Prefork)
            .server(PREFORK_CHILDREN),
    );
    let host_a = Httpd::start(HttpdConfig::new(location.clone()).server(passphrase(PASSPHRASE)));
    let host_b = Httpd::start(HttpdConfig::new(location.clone()).server(passphrase(PASSPHRASE)));
    let host_c = Httpd::start(
        HttpdConfig::new(location).server(passphrase("another-hosts-passphrase-0123456789")),
    );
    let key = DpopKey::p256();
    let token = bound_token(&signer, "nonce-shared-user", &key);
    // GET /n/ok?<marker> with a fresh proof (and `nonce`)
    let request = |h: &Httpd, nonce: Option<&str>, marker: &str| {
        let mut p = Proof::new(&key, "GET", &htu(h, "/n/ok")).ath(&token);
        if let Some(n) = nonce {
            p = p.nonce(n);
        }
        RawReq::get(&format!("/n/ok?{marker}"))
            .dpop_token(&token)
            .proof(&p.sign(&key))
    };
    let nonce_of = |h: &Httpd| {
        send_raw(h, &request(h, None, "challenge"))
            .header("DPoP-Nonce")
            .map(str::to_string)
    };
    let mut f = Failures::new();

    // prefork: one child's nonce, fresh proofs on new connections to several children
    match nonce_of(&prefork) {
        None => f.fail("prefork: no DPoP-Nonce with the challenge"),
        Some(n) => {
            let mut pids = BTreeSet::new();
            for round in 0..10 {
                let results: Vec<(String, Result<Response, String>)> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..4)
                        .map(|i| {
                            let marker = format!("n{round}-{i}");
                            let req = request(&prefork, Some(&n), &marker);
                            let port = prefork.https_port;
                            s.spawn(move || (marker, try_send_raw(port, &req)))
                        })
                        .collect();
                    handles.into_iter().map(|t| t.join().unwrap()).collect()
                });
                for (marker, r) in results {
                    match r {
                        Ok(r) => {
                            expect_status(&mut f, &format!("prefork: {marker}"), &r, 200);
                            pids.extend(pid_of(&prefork, &marker));
                        }
                        Err(e) => f.fail(format!("prefork: {marker}: {e}")),
                    }
                }
                if pids.len() >= 3 {
                    break;
                }
            }
            f.check(pids.len() >= 2, || {
                format!("prefork: only children {pids:?} answered")
            });
        }
    }

    // hosts: A's nonce at B (same passphrase) and at C (another one)
    match nonce_of(&host_a) {
        None => f.fail("host A: no DPoP-Nonce with the challenge"),
        Some(n) => {
            let r = send_raw(&host_b, &request(&host_b, Some(&n), "b"));
            expect_status(
                &mut f,
                "host A's nonce at host B (same passphrase)",
                &r,
                200,
            );
            let r = send_raw(&host_c, &request(&host_c, Some(&n), "c"));
            expect_dpop_401(
                &mut f,
                "host A's nonce at host C (another passphrase)",
                &r,
                &NONCE_REQUIRED,
            );
        }
    }
    prefork.assert_no_child_crash();
    f.assert_none_showing(&prefork);
}

// ---------------------------------------------------------------------------------------------
// 6. Many proofs at once
// ---------------------------------------------------------------------------------------------

/// Statuses of `GET <path>` with `token` and each of `proofs` (in order; 0 = no response), sent
/// by `threads` client threads on keep-alive connections; client-side errors go to `errors`.
fn send_concurrently(
    port: u16,
    path: &str,
    token: &str,
    proofs: &[String],
    threads: usize,
    errors: &Mutex<Vec<String>>,
) -> Vec<u16> {
    let out = Mutex::new(vec![0u16; proofs.len()]);
    std::thread::scope(|s| {
        for t in 0..threads {
            let out = &out;
            s.spawn(move || {
                let mut conn: Option<Conn> = None;
                for i in (t..proofs.len()).step_by(threads) {
                    let req = RawReq::get(path).dpop_token(token).proof(&proofs[i]);
                    // an idle keep-alive connection the server closed: once more on a new one
                    for _attempt in 0..2 {
                        if conn.is_none() {
                            match Conn::open_port(port) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    errors.lock().unwrap().push(format!("#{i}: {e}"));
                                    break;
                                }
                            }
                        }
                        let c = conn.as_mut().unwrap();
                        match c.send(&req) {
                            Ok(r) => {
                                if r.header("Connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    conn = None;
                                }
                                out.lock().unwrap()[i] = r.status;
                                break;
                            }
                            Err(e) => {
                                let retry = c.closed_before_answering(&e);
                                conn = None;
                                if !retry {
                                    errors.lock().unwrap().push(format!("#{i}: {e}"));
                                    break;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    out.into_inner().unwrap()
}

/// 1,000 proofs with distinct `jti`, sent concurrently (8 client threads on keep-alive
/// connections), are all accepted by a replay store sized for the load (`max_entries=20000`);
/// then each is replayed and every replay is refused, while the proofs' `iat` is still within the
/// window (a fresh proof with the same `iat` is accepted). With the default replay store (the
/// implicit shm cache, 1,000 entries shared with results) some windows fill up: those proofs are
/// refused (the store never forgets a live `jti` to make room), and still no replay is accepted. The `iat` window is widened to 60 s (and the
/// `jti` memory to 120 s) so that the run's duration on a slow machine cannot matter.
#[test]
fn a_thousand_concurrent_proofs_accepted_then_replays_refused() {
    const N: usize = 1000;
    const THREADS: usize = 8;
    let signer = TokenSigner::ec("dpop-many");
    let window = "type=dpop&dpop.iat.slack.before=60&dpop.expiry=120";
    let key = DpopKey::p256();
    let token = bound_token(&signer, "many-user", &key);
    let mut f = Failures::new();

    /// One replay store under test, in an httpd of its own (an `OAuth2Cache` line would change
    /// which cache is the default).
    struct Store {
        what: &'static str,
        server: &'static str,
        options: &'static str,
        /// Sized for the load: every first use accepted.
        sized: bool,
    }
    let stores = [
        Store {
            what: "default replay store (implicit shm cache)",
            server: "",
            options: "",
            sized: false,
        },
        Store {
            what: "shm cache with max_entries=20000",
            server: "OAuth2Cache shm \"name=big&max_entries=20000\"\n",
            options: "&dpop.cache=big",
            sized: true,
        },
    ];
    let mut last = None;
    for Store {
        what,
        server,
        options,
        sized,
    } in stores
    {
        let h = Httpd::start(
            HttpdConfig::new(oauth2_location(
                "/d",
                &jwk_verify(&signer, &format!("{window}{options}")),
            ))
            .server(server),
        );
        let path = "/d/ok";
        let u = htu(&h, path);
        let iat = now();
        let proofs: Vec<String> = (0..N)
            .map(|_| {
                Proof::new(&key, "GET", &u)
                    .ath(&token)
                    .claim("iat", json!(iat))
                    .sign(&key)
            })
            .collect();
        let started = Instant::now();
        let errors = Mutex::new(Vec::new());
        let first = send_concurrently(h.https_port, path, &token, &proofs, THREADS, &errors);
        let first_took = started.elapsed();
        let mark = h.log_mark();
        let again = send_concurrently(h.https_port, path, &token, &proofs, THREADS, &errors);
        let replay_took = started.elapsed();
        let errors = errors.into_inner().unwrap();
        f.check(errors.is_empty(), || {
            format!(
                "{what}: {} request(s) without a response, e.g. {:?}",
                errors.len(),
                &errors[..errors.len().min(3)]
            )
        });
        let accepted = first.iter().filter(|s| **s == 200).count();
        let replay_refused = again.iter().filter(|s| **s == 401).count();
        let refused_first = first.iter().filter(|s| **s == 401).count();
        f.check(
            accepted == N || (!sized && accepted + refused_first == N && accepted > 0),
            || {
                format!(
                    "{what}: first use: {accepted} of {N} accepted, statuses {:?}",
                    histogram(&first)
                )
            },
        );
        let accepted_again: Vec<usize> = (0..N).filter(|i| again[*i] == 200).collect();
        f.check(replay_refused == N, || {
            format!(
                "{what}: replays: {replay_refused} of {N} refused, statuses {:?}; accepted again: {} proofs (e.g. #{:?})",
                histogram(&again),
                accepted_again.len(),
                accepted_again.iter().take(5).collect::<Vec<_>>()
            )
        });
        // the replays were refused as replays, not for their age
        let lines = refusals_between(&h, mark, h.log_mark());
        let as_replay = lines.iter().filter(|l| mentions_any(l, LOG_REPLAY)).count();
        f.check(as_replay == replay_refused, || {
            format!(
                "{what}: {as_replay} of {replay_refused} replay refusals name the replay, e.g. {:?}",
                lines.iter().find(|l| !mentions_any(l, LOG_REPLAY))
            )
        });
        let fresh = Proof::new(&key, "GET", &u)
            .ath(&token)
            .claim("iat", json!(iat))
            .sign(&key);
        let r = send_raw(&h, &RawReq::get(path).dpop_token(&token).proof(&fresh));
        // (The full default store may have no room for it: shown by the sized one.)
        if sized {
            expect_status(
                &mut f,
                &format!(
                    "{what}: a fresh proof with the batch's iat after {:?} (the window was still open)",
                    started.elapsed()
                ),
                &r,
                200,
            );
        }
        eprintln!(
            "{what}: {N} proofs: first use {first_took:?}, replays done after {replay_took:?} ({THREADS} threads)"
        );
        h.assert_no_child_crash();
        if !f.all_passed() && last.is_none() {
            last = Some(h);
        }
    }
    match last {
        Some(h) => f.assert_none_showing(&h),
        None => f.assert_none(),
    }
}

// ---------------------------------------------------------------------------------------------
// 7. No downgrade; challenges; configuration
// ---------------------------------------------------------------------------------------------

/// A token with `cnf.jkt` is never accepted with the Bearer scheme: not at a DPoP location, not
/// at a plain bearer location, not at a location with both, not even with a valid proof header.
/// Unbound tokens keep working with Bearer where a bearer verifier is configured.
#[test]
fn bound_tokens_never_accepted_as_bearer_tokens() {
    let signer = TokenSigner::rsa("dpop-downgrade");
    let body = [
        dpop_location(&signer),
        oauth2_location("/b", &format!("OAuth2TokenVerify jwk {}", signer.jwk_arg())),
        oauth2_location(
            "/m",
            &format!(
                "OAuth2TokenVerify jwk {}\n{}",
                signer.jwk_arg(),
                jwk_verify(&signer, "type=dpop")
            ),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let key = DpopKey::p256();
    let bound = bound_token(&signer, "bound-user", &key);
    let unbound = signer.mint(&claims("plain-user"));
    let mut f = Failures::new();

    /// One request: location, scheme, token, whether a valid proof goes with it.
    struct Row {
        what: &'static str,
        location: &'static str,
        scheme: &'static str,
        bound: bool,
        proof: bool,
        expect_status: u16,
    }
    let rows = [
        Row {
            what: "Bearer, bound token, DPoP location",
            location: "/d",
            scheme: "Bearer",
            bound: true,
            proof: false,
            expect_status: 401,
        },
        Row {
            what: "Bearer, bound token, DPoP location, valid proof",
            location: "/d",
            scheme: "Bearer",
            bound: true,
            proof: true,
            expect_status: 401,
        },
        Row {
            what: "Bearer, bound token, bearer location",
            location: "/b",
            scheme: "Bearer",
            bound: true,
            proof: false,
            expect_status: 401,
        },
        Row {
            what: "Bearer, bound token, bearer location, valid proof",
            location: "/b",
            scheme: "Bearer",
            bound: true,
            proof: true,
            expect_status: 401,
        },
        Row {
            what: "Bearer, bound token, bearer+DPoP location",
            location: "/m",
            scheme: "Bearer",
            bound: true,
            proof: false,
            expect_status: 401,
        },
        Row {
            what: "Bearer, bound token, bearer+DPoP location, valid proof",
            location: "/m",
            scheme: "Bearer",
            bound: true,
            proof: true,
            expect_status: 401,
        },
        Row {
            what: "bearer (lower case), bound token, bearer location",
            location: "/b",
            scheme: "bearer",
            bound: true,
            proof: false,
            expect_status: 401,
        },
        Row {
            what: "DPoP, bound token, DPoP location, valid proof",
            location: "/d",
            scheme: "DPoP",
            bound: true,
            proof: true,
            expect_status: 200,
        },
        Row {
            what: "DPoP, bound token, bearer+DPoP location, valid proof",
            location: "/m",
            scheme: "DPoP",
            bound: true,
            proof: true,
            expect_status: 200,
        },
        Row {
            what: "Bearer, unbound token, bearer location",
            location: "/b",
            scheme: "Bearer",
            bound: false,
            proof: false,
            expect_status: 200,
        },
        Row {
            what: "Bearer, unbound token, bearer+DPoP location",
            location: "/m",
            scheme: "Bearer",
            bound: false,
            proof: false,
            expect_status: 200,
        },
        Row {
            what: "Bearer, unbound token, DPoP location",
            location: "/d",
            scheme: "Bearer",
            bound: false,
            proof: false,
            expect_status: 401,
        },
    ];
    for row in rows {
        let token = if row.bound { &bound } else { &unbound };
        let path = format!("{}/ok", row.location);
        let mut req =
            RawReq::get(&path).header("Authorization", &format!("{} {token}", row.scheme));
        if row.proof {
            let p = Proof::new(&key, "GET", &htu(&h, &path))
                .ath(token)
                .sign(&key);
            req = req.proof(&p);
        }
        let mark = h.log_mark();
        let r = send_raw(&h, &req);
        expect_status(&mut f, row.what, &r, row.expect_status);
        if row.expect_status != 401 || r.status != 401 {
            continue;
        }
        let lines = refusals_between(&h, mark, h.log_mark());
        f.check(lines.len() == 1, || {
            format!("{}: expected one refusal line, got {lines:?}", row.what)
        });
        let cs = challenges(&r).unwrap_or_default();
        let schemes: Vec<&str> = cs.iter().map(|c| c.scheme.as_str()).collect();
        match row.location {
            // the bearer location's challenge is exactly what it was before DPoP
            "/b" => f.check(r.header_all("WWW-Authenticate") == [INVALID_TOKEN], || {
                format!(
                    "{}: WWW-Authenticate {:?}, expected [{INVALID_TOKEN}]",
                    row.what,
                    r.header_all("WWW-Authenticate")
                )
            }),
            "/d" => f.check(schemes == ["DPoP"], || {
                format!("{}: challenges {schemes:?}, expected [DPoP]", row.what)
            }),
            _ => f.check(
                r.header_all("WWW-Authenticate").contains(&INVALID_TOKEN)
                    && schemes.len() == 2
                    && schemes.contains(&"DPoP"),
                || {
                    format!(
                        "{}: WWW-Authenticate {:?}, expected [{INVALID_TOKEN}] and a DPoP challenge",
                        row.what,
                        r.header_all("WWW-Authenticate")
                    )
                },
            ),
        }
    }
    f.assert_none_showing(&h);
}

/// The challenges: `DPoP algs="..."` (no error) without a token, `realm` first with AuthName,
/// the location's own `dpop.algs`, `error` for a bad token or proof; a location with bearer and
/// DPoP verifiers sends the Bearer challenge exactly as before and the DPoP one.
#[test]
fn dpop_challenges() {
    let signer = TokenSigner::ec("dpop-challenge");
    let body = [
        dpop_location(&signer),
        oauth2_location(
            "/r",
            &format!(
                "AuthName \"DPoP API\"\n{}",
                jwk_verify(&signer, "type=dpop&dpop.algs=ES256 EdDSA")
            ),
        ),
        oauth2_location(
            "/m",
            &format!(
                "OAuth2TokenVerify jwk {}\n{}",
                signer.jwk_arg(),
                jwk_verify(&signer, "type=dpop&dpop.algs=PS256 ES384")
            ),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let key = DpopKey::p256();
    let token = bound_token(&signer, "challenge-user", &key);
    let mut f = Failures::new();

    /// A request and the one DPoP challenge it must get.
    struct Row<'a> {
        what: &'static str,
        req: RawReq,
        expect: DpopChallenge<'a>,
    }
    let stale = Proof::new(&key, "GET", &htu(&h, "/r/ok"))
        .ath(&token)
        .claim("iat", json!(now() - 3600))
        .sign(&key);
    let rows = [
        Row {
            what: "no token, DPoP location",
            req: RawReq::get("/d/ok"),
            expect: DpopChallenge {
                algs: DEFAULT_ALGS,
                realm: None,
                errors: NO_ERROR,
            },
        },
        Row {
            what: "no token, AuthName and dpop.algs",
            req: RawReq::get("/r/ok"),
            expect: DpopChallenge {
                algs: "ES256 EdDSA",
                realm: Some("DPoP API"),
                errors: NO_ERROR,
            },
        },
        Row {
            what: "stale proof, AuthName",
            req: RawReq::get("/r/ok").dpop_token(&token).proof(&stale),
            expect: DpopChallenge {
                algs: "ES256 EdDSA",
                realm: Some("DPoP API"),
                errors: BAD_PROOF,
            },
        },
        Row {
            what: "bad token, AuthName",
            req: {
                let t = tamper_signature(&token);
                let p = Proof::new(&key, "GET", &htu(&h, "/r/ok"))
                    .ath(&t)
                    .sign(&key);
                RawReq::get("/r/ok").dpop_token(&t).proof(&p)
            },
            expect: DpopChallenge {
                algs: "ES256 EdDSA",
                realm: Some("DPoP API"),
                errors: BAD_TOKEN,
            },
        },
    ];
    for Row { what, req, expect } in rows {
        let r = send_raw(&h, &req);
        expect_dpop_401(&mut f, what, &r, &expect);
    }

    // bearer + DPoP location: two challenges
    /// A request at the mixed location and the Bearer challenge it must get.
    struct Mixed {
        what: &'static str,
        req: RawReq,
        bearer: &'static str,
        dpop_errors: &'static [&'static str],
    }
    let mixed = [
        Mixed {
            what: "no token, bearer+DPoP location",
            req: RawReq::get("/m/ok"),
            bearer: NO_TOKEN,
            dpop_errors: NO_ERROR,
        },
        Mixed {
            what: "unverifiable Bearer token, bearer+DPoP location",
            req: RawReq::get("/m/ok").bearer(&tamper_signature(&token)),
            bearer: INVALID_TOKEN,
            dpop_errors: BAD_TOKEN,
        },
    ];
    for Mixed {
        what,
        req,
        bearer,
        dpop_errors,
    } in mixed
    {
        let r = send_raw(&h, &req);
        let all = r.header_all("WWW-Authenticate");
        f.check(r.status == 401 && all.len() == 2, || {
            format!(
                "{what}: status {}, WWW-Authenticate {all:?}, expected 401 with two",
                r.status
            )
        });
        f.check(all.contains(&bearer), || {
            format!("{what}: no exact [{bearer}] in {all:?}")
        });
        let dpop: Vec<Challenge> = challenges(&r)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.scheme != "Bearer")
            .collect();
        match dpop.as_slice() {
            [c] => {
                // without a DPoP attempt the DPoP challenge may carry the error or not
                let errors = if c.param("error").is_none() {
                    NO_ERROR
                } else {
                    dpop_errors
                };
                let p = dpop_challenge_problems(
                    c,
                    &DpopChallenge {
                        algs: "PS256 ES384",
                        realm: None,
                        errors,
                    },
                );
                f.check(p.is_empty(), || format!("{what}: {}", p.join("; ")));
            }
            other => f.fail(format!("{what}: DPoP challenges {other:?}")),
        }
    }
    f.assert_none_showing(&h);
}

/// `apache2 -t` refuses an unknown `dpop.cache`, a symmetric, unknown or `none` alg in
/// `dpop.algs`, naming the line; it accepts every documented option.
#[test]
fn dpop_options_checked_at_configuration_time() {
    let signer = TokenSigner::ec("dpop-config");
    let cache = "OAuth2Cache redis \"name=r&host=127.0.0.1&port=6399\"\n\
                 OAuth2CryptoPassphrase \"dpop-config-passphrase-0123456789\"\n";
    let mut f = Failures::new();

    /// One `OAuth2TokenVerify` options string and whether `apache2 -t` takes it.
    struct Opt {
        options: &'static str,
        valid: bool,
    }
    let rows = [
        Opt {
            options: "type=dpop",
            valid: true,
        },
        Opt {
            options: "type=dpop&dpop.cache=r&dpop.expiry=30&dpop.iat.verify=required&dpop.iat.slack.before=2&dpop.iat.slack.after=3",
            valid: true,
        },
        Opt {
            options: "type=dpop&dpop.algs=ES256 EdDSA PS512&dpop.nonce=on&dpop.nonce.interval=60",
            valid: true,
        },
        Opt {
            options: "type=dpop&dpop.iat.verify=skip&dpop.nonce=off",
            valid: true,
        },
        Opt {
            options: "type=dpop&dpop.cache=nosuchcache",
            valid: false,
        },
        Opt {
            options: "type=dpop&dpop.algs=HS256",
            valid: false,
        },
        Opt {
            options: "type=dpop&dpop.algs=ES256 HS512",
            valid: false,
        },
        Opt {
            options: "type=dpop&dpop.algs=ES256 XY999",
            valid: false,
        },
        Opt {
            options: "type=dpop&dpop.algs=none",
            valid: false,
        },
        Opt {
            options: "type=dpop&dpop.algs=es256",
            valid: false,
        },
        // a jti forgotten while its proof is still within the iat window could be replayed
        Opt {
            options: "type=dpop&dpop.expiry=3",
            valid: false,
        },
    ];
    for Opt { options, valid } in rows {
        let line = jwk_verify(&signer, options);
        let t = Httpd::config_test(HttpdConfig::new(oauth2_location("/d", &line)).server(cache));
        if valid {
            f.check(t.ok, || format!("{options}: refused:\n{}", t.output));
        } else {
            let e = t.syntax_error(options);
            f.check(e.is_ok(), || {
                format!(
                    "{options}: expected a syntax error on its line: {}",
                    e.unwrap_err()
                )
            });
        }
    }
    f.assert_none();
}
