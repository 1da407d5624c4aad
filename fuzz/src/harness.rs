//! One function per fuzz target: each takes the fuzzer's bytes and drives a parser of the module
//! that sees attacker-controlled (or administrator-written) input. Beyond "no panic, no hang, no
//! unbounded allocation", some assert an invariant (marked `invariant:`).

use std::borrow::Cow;
use std::ffi::CStr;
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Map, Value};

use crate::cache::reader::{Reader, parse_decimal};
use crate::cache::registry::CacheRegistry;
use crate::config::sources::TokenSources;
use crate::config::target_pass::TargetPass;
use crate::config::verifier::{self, Origin};
use crate::jose::{Jws, Key, json};
use crate::options::Options;
use crate::pop::dpop::{self, DpopPolicy, Nonces, Presented, ProofKeys, htu};
use crate::request_url::RequestUrl;
use crate::proxy::{CertHeader, CertHeaderFormat, TrustedProxies, UrlFrom, public_url};
use crate::remote::keys::parse_jwks;
use crate::token::{self, TokenSource};
use crate::verify::{ParsedToken, VerifyError};

/// A fixed "now" for every time check (2023-11-14).
pub const NOW: i64 = 1_700_000_000;
/// The HMAC secret of the fixed keys (32 bytes: HS256's minimum).
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// RFC 7515 appendix A.3's P-256 key (public part as a JWK).
pub const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
const EC_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
/// RFC 8037 appendix A's Ed25519 key.
pub const ED_JWK: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The input split at the first `sep` byte (all of it and nothing if there is none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

struct Keys {
    verify: Vec<Key>,
    ec_private: PKey<Private>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        let rsa_pem = PKey::from_rsa(rsa)
            .expect("pkey")
            .public_key_to_pem()
            .expect("pem");
        Keys {
            verify: vec![
                Key::from_secret(SECRET).expect("secret"),
                Key::from_jwk_json(EC_JWK).expect("ec jwk"),
                Key::from_jwk_json(ED_JWK).expect("ed jwk"),
                Key::from_pem_public_key(std::str::from_utf8(&rsa_pem).expect("utf8"))
                    .expect("rsa pem"),
            ],
            ec_private: ec_private(),
        }
    })
}

fn ec_private() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let d = BigNum::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(EC_D)
            .expect("d"),
    )
    .expect("bn");
    let mut ctx = BigNumContext::new().expect("ctx");
    let mut public = EcPoint::new(&group).expect("point");
    public.mul_generator2(&group, &d, &mut ctx).expect("mul");
    let key = EcKey::from_private_components(&group, &d, &public).expect("ec");
    // The private key must be EC_JWK's: the DPoP target's proofs are checked against its thumbprint.
    let x = b64(&public_x(&group, &public, &mut ctx));
    assert!(EC_JWK.contains(&x), "EC_D does not belong to EC_JWK");
    PKey::from_ec_key(key).expect("pkey")
}

fn public_x(group: &openssl::ec::EcGroupRef, p: &EcPoint, ctx: &mut BigNumContext) -> Vec<u8> {
    let mut x = BigNum::new().expect("bn");
    let mut y = BigNum::new().expect("bn");
    p.affine_coordinates(group, &mut x, &mut y, ctx)
        .expect("affine");
    x.to_vec_padded(32).expect("x")
}

/// ES256 over `input` with the fixed P-256 key, as JWS wants it (R||S).
fn es256(input: &[u8]) -> Vec<u8> {
    let digest = openssl::hash::hash(MessageDigest::sha256(), input).expect("sha256");
    let ec = keys().ec_private.ec_key().expect("ec");
    let sig = EcdsaSig::sign(&digest, &ec).expect("sign");
    let mut out = sig.r().to_vec_padded(32).expect("r");
    out.extend(sig.s().to_vec_padded(32).expect("s"));
    out
}

fn hs256(input: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(SECRET).expect("hmac key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("signer");
    signer.sign_oneshot_to_vec(input).expect("hmac")
}

/// `jws`: a compact JWS as it arrives in a request, parsed and verified with every fixed key;
/// then the same text as an `aws_alb` token (padded segments, the ALB header rules, the per-`kid`
/// key fetch: from a closed port here, so it fails at once and its budget is spent early).
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    alb_token(token);
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    let _ = format!("{jws:?}");
    for key in &keys().verify {
        let _ = key.verify(&jws);
    }
    let _ = json::parse_object_as(&jws.payload, "payload");
}

/// The ALB of the `aws_alb` seed tokens (liboauth2's test token names it in `signer`).
const ALB_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/balancer1/181758ae2b0c3ede";

fn alb_token(token: &str) {
    static VERIFIER: OnceLock<crate::verify::Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let origin = Origin {
            file: "fuzz.conf",
            line: 1,
        };
        let parsed = verifier::parse(
            "aws_alb",
            ALB_ARN,
            // No retry: a retry waits `http_retry_interval`, and the remembered kids are asked
            // for again every 10 s, so with retries the target spent most of its time asleep.
            Some("alb_base_url=http://127.0.0.1:1&aws_alb.http_timeout=1&aws_alb.http_retries=0&verify.exp=skip"),
            &origin,
            &mut CacheRegistry::default(),
        )
        .expect("aws_alb verifier");
        // An option ignored as unknown would quietly change what this target runs.
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        parsed.verifier
    });
    let parsed = ParsedToken::parse(token);
    // invariant: nothing is accepted without a key, and no key can be fetched here.
    assert!(
        verifier.verify(&parsed, NOW).is_err(),
        "an aws_alb token was accepted without its key"
    );
}

/// `keys`: key material an administrator configures or a key set endpoint serves. The first byte
/// picks the importer: JWK, PEM public key, PEM certificate, JWKS document (read as fetched over
/// https or, with bit 2 set, as a local file).
pub fn key_import(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let s = text(rest);
    match which % 4 {
        0 => {
            if let Ok(k) = Key::from_jwk_json(&s) {
                let _ = k.describe();
            }
        }
        1 => {
            let _ = Key::from_pem_public_key(&s);
        }
        2 => {
            let _ = Key::from_pem_certificate(&s);
            let _ = crate::jose::key::certificate_der(&s);
        }
        _ => {
            let fetched_from = (which & 4 == 0).then_some("https://as.example/jwks");
            if let Ok(keys) = parse_jwks(rest, fetched_from) {
                for k in keys {
                    // invariant: a key set from the network never yields a shared secret.
                    assert!(
                        fetched_from.is_none() || !k.describe().starts_with("oct"),
                        "a fetched key set yielded a symmetric key"
                    );
                }
            }
        }
    }
}

/// `json`: a JSON document from the network (introspection response, discovery metadata, JWT
/// payload) through the strict parser, then what the module reads of it: `active`/`error` as
/// the introspection client does, and the claim checks of a verifier with every check on.
pub fn json_documents(data: &[u8]) {
    let Ok(doc) = json::parse_object_as(data, "fuzz") else {
        return;
    };
    let _ = doc.get("error").is_some_and(|e| !e.is_null());
    let _ = matches!(doc.get("active"), Some(Value::Bool(true)));
    let _ = crate::verify::claims::Times::of(&doc);
    let verifier = plain_verifier(Some(
        "verify.exp=required&verify.iat=required&verify.iat.slack_before=10&verify.iat.slack_after=10&verify.nbf=required",
    ));
    let _ = verifier.claims.check(&doc, NOW);
    let accepted = crate::verify::accepted::Accepted::new(doc.clone());
    let _ = accepted.bound_thumbprint();
    let _ = accepted.bound_jkt();
    for options in [
        "",
        "prefix=X_&remote_user_claim=sub&json_payload_claim=payload&encoding=base64url",
        "encoding=none&authn_header=X-User",
    ] {
        let mut tp = TargetPass::default();
        if tp.apply(options).is_ok() {
            let _ = crate::pass::build(&tp, &doc, "user", Some("tok"));
        }
    }
    static REQUIRE: OnceLock<crate::authz::Requirement> = OnceLock::new();
    let require = REQUIRE.get_or_init(|| {
        crate::authz::Requirement::parse("scope~(^|\\s)read($|\\s) sub:alice a.b.c:1 aud:rs")
            .expect("requirement")
    });
    let _ = require.is_satisfied(&doc);
}

fn plain_verifier(options: Option<&str>) -> crate::verify::Verifier {
    let origin = Origin {
        file: "fuzz.conf",
        line: 1,
    };
    let secret = std::str::from_utf8(SECRET).expect("ascii");
    let parsed = verifier::parse(
        "plain",
        secret,
        options,
        &origin,
        &mut CacheRegistry::default(),
    )
    .expect("plain verifier");
    // An option ignored as unknown would quietly change what the target runs.
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    parsed.verifier
}

/// A request as the token-source code reads it, built from the fuzzer's bytes.
struct Request {
    authorization: Option<String>,
    cookie: Option<String>,
    other: Option<String>,
    env: Option<String>,
    method: String,
    query: Option<String>,
    body: Vec<u8>,
}

impl TokenSource for Request {
    fn header(&self, name: &CStr) -> Option<&str> {
        match name.to_bytes() {
            b"Authorization" => self.authorization.as_deref(),
            b"Cookie" => self.cookie.as_deref(),
            _ => self.other.as_deref(),
        }
    }
    fn header_values(&self, name: &CStr) -> Vec<&[u8]> {
        self.header(name).map(str::as_bytes).into_iter().collect()
    }
    fn env(&self, _name: &CStr) -> Option<&str> {
        self.env.as_deref()
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn form_body(&self, limit: usize) -> Option<&[u8]> {
        (self.body.len() <= limit).then_some(self.body.as_slice())
    }
}

/// `token_sources`: `OAuth2AcceptTokenIn` lines (administrator) and a request (client). The
/// input is fields separated by 0xFF: up to three `method options` lines, then the
/// Authorization header, Cookie header, another header, the environment variable, the method,
/// the query string, the body.
pub fn token_sources(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0xFF);
    let mut next = || fields.next().map(|f| text(f).into_owned());
    let mut sources: Option<TokenSources> = None;
    for _ in 0..3 {
        let Some(line) = next() else { break };
        if line.is_empty() {
            continue;
        }
        let (method, options) = match line.split_once(' ') {
            Some((m, o)) => (m.to_owned(), Some(o.to_owned())),
            None => (line, None),
        };
        if let Ok(s) = TokenSources::add(sources.as_ref(), &method, options.as_deref()) {
            sources = Some(s);
        }
    }
    let sources = sources.unwrap_or_default();
    let req = Request {
        authorization: next(),
        cookie: next(),
        other: next(),
        env: next(),
        method: next().unwrap_or_else(|| "POST".into()),
        query: next(),
        body: next().map(String::into_bytes).unwrap_or_default(),
    };
    let _ = token::find_dpop(&sources, &req);
    // An empty token can be found (`Bearer` alone, an empty variable): it is then refused as
    // invalid_token, as in the C module.
    let _ = token::find(&sources, &req);
}

/// `options`: directive text an administrator writes. The first byte picks the directive:
/// `OAuth2TokenVerify <kind> <value> <options>` (local kinds only: no network), the options
/// string itself, `OAuth2TargetPass`, `Require oauth2_claim`, DPoP policy options.
pub fn directive_options(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let s = text(rest);
    match which % 5 {
        0 => {
            const KINDS: [&str; 6] = ["plain", "base64", "base64url", "hex", "jwk", "pubkey"];
            let (kind_and_value, options) = split(rest, 0xFF);
            let (kind, value) = split(kind_and_value, b' ');
            let kind = KINDS[kind.first().copied().unwrap_or(0) as usize % KINDS.len()];
            let origin = Origin {
                file: "fuzz.conf",
                line: 1,
            };
            let options = (!options.is_empty()).then(|| text(options));
            let _ = verifier::parse(
                kind,
                &text(value),
                options.as_deref(),
                &origin,
                &mut CacheRegistry::default(),
            );
        }
        1 => {
            let o = Options::parse(&s);
            let _ = o.canonical();
            let _ = o.unknown(&["a", "b"]).count();
            let _ = crate::options::parse_number(&s);
            let _ = crate::options::flag::parse_flag(&s);
        }
        2 => {
            let mut tp = TargetPass::default();
            let _ = tp.apply(&s);
        }
        3 => {
            let _ = crate::authz::Requirement::parse(&s);
        }
        _ => {
            let _ = DpopPolicy::parse(&Options::parse(&s));
        }
    }
}

/// `cache_reply`: bytes a Redis or memcached server (or whoever answers on its port) sends back,
/// read with the bounded reply reader the way the two clients read their replies.
pub fn cache_reply(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut r = Reader::new(Cursor::new(rest.to_vec()));
    if which % 2 == 0 {
        // RESP: a type byte and a line; a bulk string's length, then its bytes and CRLF.
        for _ in 0..8 {
            let Ok(line) = r.read_line() else { return };
            let Some((&kind, body)) = line.split_first() else {
                return;
            };
            if kind == b'$' {
                if body == b"-1" {
                    continue;
                }
                let Some(len) = parse_decimal(body).and_then(|n| usize::try_from(n).ok()) else {
                    return;
                };
                if r.read_value(len, "bulk reply").is_err() {
                    return;
                }
            }
        }
    } else {
        // memcached: `VALUE <key> <flags> <bytes>`, the value, `END`.
        for _ in 0..8 {
            let Ok(line) = r.read_line() else { return };
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            if fields.len() == 4 && fields[0] == b"VALUE" {
                let Some(len) = parse_decimal(fields[3]).and_then(|n| usize::try_from(n).ok())
                else {
                    return;
                };
                if r.read_value(len, "value").is_err() {
                    return;
                }
            }
        }
    }
    let _ = r.is_clean();
}

fn dpop_policy() -> &'static DpopPolicy {
    static P: OnceLock<DpopPolicy> = OnceLock::new();
    P.get_or_init(|| DpopPolicy::parse(&Options::parse("")).expect("default DPoP policy"))
}

fn nonces() -> &'static Nonces {
    static N: OnceLock<Nonces> = OnceLock::new();
    N.get_or_init(|| Nonces::new([7; 32], Duration::from_secs(300)))
}

fn proof_keys() -> &'static ProofKeys {
    static K: OnceLock<ProofKeys> = OnceLock::new();
    K.get_or_init(ProofKeys::default)
}

/// The access token of the DPoP requests (its `ath` is the SHA-256 of this).
pub const DPOP_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const DPOP_URL: RequestUrl<'static> = RequestUrl {
    scheme: "https",
    host: "rs.example",
    port: 443,
    path: "/api/data",
};

/// `dpop`: DPoP proofs (client) checked against a fixed policy and request. First byte: 0 =
/// the rest is the `DPoP` header value(s) (0xFF separates several); 1 = the rest is a claims
/// object signed here as a proof with the fixed P-256 key (the header is right), so the claim
/// checks are reached; 2 = the rest is a JOSE header signed with the fixed key over good
/// claims (key and typ handling); 3 = `htu` normalisation.
pub fn dpop_proof(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let ath = b64(&openssl::sha::sha256(DPOP_TOKEN.as_bytes()));
    let proof = match which % 4 {
        0 => {
            let proofs: Vec<String> = rest
                .split(|&b| b == 0xFF)
                .map(|p| text(p).into_owned())
                .collect();
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            check_proofs(&proofs, which & 0x80 != 0);
            return;
        }
        1 => {
            let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{EC_JWK}}}"#);
            sign_es256(header.as_bytes(), rest)
        }
        2 => {
            let claims = format!(
                r#"{{"jti":"j1","htm":"GET","htu":"https://rs.example/api/data","iat":{NOW},"ath":"{ath}"}}"#
            );
            sign_es256(rest, claims.as_bytes())
        }
        _ => {
            let s = text(rest);
            if let Ok(n) = htu::normalize(&s) {
                // invariant: normalisation is idempotent.
                assert_eq!(htu::normalize(&n).as_deref(), Ok(n.as_str()), "of {s:?}");
            }
            return;
        }
    };
    check_proofs(&[&proof], which & 0x80 != 0);
}

fn sign_es256(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = es256(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn check_proofs(proofs: &[&str], with_nonce: bool) {
    let presented = Presented {
        proofs,
        method: "GET",
        url: DPOP_URL,
        token: DPOP_TOKEN,
    };
    // RFC 7638 thumbprint of EC_JWK: its required members in lexicographic order.
    let jkt = b64(&openssl::sha::sha256(
        br#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    ));
    let nonces = with_nonce.then(nonces);
    if let Ok(checked) = dpop::check(
        dpop_policy(),
        &presented,
        Some(&jkt),
        nonces,
        proof_keys(),
        NOW,
    ) {
        // invariant: an accepted proof is bound to the token's key.
        assert_eq!(checked.jkt, jkt);
        let _ = checked.replay_key();
    }
}

/// `signed_claims`: a JWT signed here with the verifier's own secret, so every check after the
/// signature (payload JSON, `exp`/`iat`/`nbf`/`iss`/`aud`, result caching) sees fuzzer-chosen
/// claims. First byte: 0 = the rest is the payload under `{"alg":"HS256","typ":"JWT"}`; 1 = the
/// rest is `header 0xFF payload`, both fuzzer-chosen.
pub fn signed_claims(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    static VERIFIER: OnceLock<crate::verify::Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        plain_verifier(Some(
            "verify.iss=https://as.example&verify.aud=rs&verify.exp=required&verify.iat=optional&verify.iat.slack_before=60",
        ))
    });
    let fixed_header = which % 2 == 0;
    let (header, payload): (&[u8], &[u8]) = if fixed_header {
        (br#"{"alg":"HS256","typ":"JWT"}"#, rest)
    } else {
        split(rest, 0xFF)
    };
    let input = format!("{}.{}", b64(header), b64(payload));
    let token = format!("{input}.{}", b64(&hs256(input.as_bytes())));
    let parsed = ParsedToken::parse(&token);
    let result = verifier.verify(&parsed, NOW);
    if fixed_header {
        // invariant: a token signed with the right key never fails on its signature.
        assert!(
            !matches!(
                result,
                Err(VerifyError::Signature(_)) | Err(VerifyError::NoKeyForKid)
            ),
            "{result:?}"
        );
    }
    // The same token a second time (result cache path).
    let again = verifier.verify(&parsed, NOW);
    assert_eq!(result.is_ok(), again.is_ok());
}

/// `forwarded`: what a TLS terminator forwards, as a client can shape it through the proxy. The
/// first byte picks: 0-3 a client certificate header in one of the `mtls.header.format`s, 4 the
/// forwarding headers of the public URL (`Forwarded`, `X-Forwarded-Proto`, `-Host`, `-Port`,
/// separated by 0xFF), 5 `OAuth2TrustedProxy` arguments (space-separated) and peer addresses.
pub fn forwarded(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    const FORMATS: [CertHeaderFormat; 4] = [
        CertHeaderFormat::PemUrlencoded,
        CertHeaderFormat::Pem,
        CertHeaderFormat::DerBase64,
        CertHeaderFormat::Xfcc,
    ];
    match which % 6 {
        n @ 0..=3 => {
            let header = CertHeader {
                name: c"X-Client-Cert".into(),
                format: FORMATS[usize::from(n)],
            };
            if let Ok(Some(der)) = header.certificate_der(&text(rest)) {
                // invariant: what is accepted is one certificate OpenSSL reads, nothing after it.
                let cert = openssl::x509::X509::from_der(&der).expect("accepted DER parses");
                assert_eq!(cert.to_der().map(|d| d.len()).ok(), Some(der.len()));
            }
        }
        4 => {
            let fields: Vec<String> = rest
                .split(|&b| b == 0xFF)
                .map(|f| text(f).into_owned())
                .collect();
            let names: [&CStr; 4] = [
                c"Forwarded",
                c"X-Forwarded-Proto",
                c"X-Forwarded-Host",
                c"X-Forwarded-Port",
            ];
            let direct = RequestUrl {
                scheme: "https",
                host: "rs.example",
                port: 8443,
                path: "/api",
            };
            let from = [UrlFrom::XForwarded, UrlFrom::Forwarded, UrlFrom::None][usize::from(which / 6 % 3)];
            let url = public_url(direct, from, |name| {
                let i = names.iter().position(|n| *n == name)?;
                fields.get(i).map(String::as_str)
            });
            // invariant: only http or https, and a host with URI characters only.
            assert!(url.scheme == "http" || url.scheme == "https");
            assert!(!url.host.contains(['/', '?', '#', '@', ' ', '"']));
            let _ = htu::request_url(&url);
        }
        _ => {
            let value = text(rest);
            let (args, peers) = value.split_once('|').unwrap_or((&value, "127.0.0.1 ::1"));
            let mut trusted = TrustedProxies::default();
            for arg in args.split(' ').take(16) {
                let _ = trusted.add(arg);
            }
            for peer in peers.split(' ').take(16) {
                let _ = trusted.trusts(peer);
            }
        }
    }
}
