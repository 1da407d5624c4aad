//! `check` end to end on proofs signed here with OpenSSL: every allowed algorithm, and one test
//! per rejection reason.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use serde_json::{Map, Value, json};

use super::*;
use crate::jose::Key;

const NOW: i64 = 1_700_000_000;
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const HTU: &str = "https://rs.example/api/data";
const URL: RequestUrl<'static> = RequestUrl {
    scheme: "https",
    host: "rs.example",
    port: 443,
    path: "/api/data",
};

// ---------- keys (generated once per test run) ----------

fn generated(
    cell: &'static OnceLock<PKey<Private>>,
    make: fn() -> PKey<Private>,
) -> &'static PKey<Private> {
    cell.get_or_init(make)
}

fn rsa_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || {
        PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
    })
}

fn ec(nid: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(nid).expect("group");
    PKey::from_ec_key(EcKey::generate(&group).expect("ec")).expect("pkey")
}

fn p256() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || ec(Nid::X9_62_PRIME256V1))
}

fn other_p256() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || ec(Nid::X9_62_PRIME256V1))
}

fn p384() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || ec(Nid::SECP384R1))
}

fn p521() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || ec(Nid::SECP521R1))
}

fn ed25519() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    generated(&K, || PKey::generate_ed25519().expect("ed25519"))
}

fn key_for(alg: Alg) -> &'static PKey<Private> {
    match alg {
        Alg::ES256 => p256(),
        Alg::ES384 => p384(),
        Alg::ES512 => p521(),
        Alg::EdDSA => ed25519(),
        _ => rsa_key(),
    }
}

fn coord_len(nid: Nid) -> i32 {
    match nid {
        Nid::X9_62_PRIME256V1 => 32,
        Nid::SECP384R1 => 48,
        _ => 66,
    }
}

fn public_jwk(pkey: &PKey<Private>) -> Value {
    match pkey.id() {
        Id::RSA => {
            let rsa = pkey.rsa().expect("rsa");
            json!({
                "kty": "RSA",
                "n": b64::encode(&rsa.n().to_vec()),
                "e": b64::encode(&rsa.e().to_vec()),
            })
        }
        Id::EC => {
            let ec = pkey.ec_key().expect("ec");
            let nid = ec.group().curve_name().expect("named");
            let (mut x, mut y) = (BigNum::new().expect("bn"), BigNum::new().expect("bn"));
            let mut ctx = BigNumContext::new().expect("ctx");
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .expect("xy");
            let crv = match nid {
                Nid::X9_62_PRIME256V1 => "P-256",
                Nid::SECP384R1 => "P-384",
                _ => "P-521",
            };
            json!({
                "kty": "EC",
                "crv": crv,
                "x": b64::encode(&x.to_vec_padded(coord_len(nid)).expect("x")),
                "y": b64::encode(&y.to_vec_padded(coord_len(nid)).expect("y")),
            })
        }
        _ => json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64::encode(&pkey.raw_public_key().expect("raw")),
        }),
    }
}

fn thumbprint(pkey: &PKey<Private>) -> String {
    let jwk = public_jwk(pkey);
    Key::from_jwk_map(jwk.as_object().expect("object"))
        .and_then(|k| k.jwk_thumbprint())
        .expect("thumbprint")
}

fn sign(alg: Alg, pkey: &PKey<Private>, input: &[u8]) -> Vec<u8> {
    match alg.family() {
        Family::EdDSA => {
            let mut signer = Signer::new_without_digest(pkey).expect("signer");
            signer.sign_oneshot_to_vec(input).expect("sign")
        }
        Family::Ecdsa => {
            let mut signer = Signer::new(alg.digest(), pkey).expect("signer");
            let der = signer.sign_oneshot_to_vec(input).expect("sign");
            let sig = EcdsaSig::from_der(&der).expect("der");
            let nid = pkey
                .ec_key()
                .expect("ec")
                .group()
                .curve_name()
                .expect("nid");
            let mut out = sig.r().to_vec_padded(coord_len(nid)).expect("r");
            out.extend(sig.s().to_vec_padded(coord_len(nid)).expect("s"));
            out
        }
        Family::RsaPss => {
            let mut signer = Signer::new(alg.digest(), pkey).expect("signer");
            signer.set_rsa_padding(Padding::PKCS1_PSS).expect("pss");
            signer.set_rsa_mgf1_md(alg.digest()).expect("mgf1");
            signer
                .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .expect("salt");
            signer.sign_oneshot_to_vec(input).expect("sign")
        }
        Family::RsaPkcs1 => {
            let mut signer = Signer::new(alg.digest(), pkey).expect("signer");
            signer.sign_oneshot_to_vec(input).expect("sign")
        }
        Family::Hmac => {
            let key = PKey::hmac(&[0x42; 32]).expect("hmac key");
            let mut signer = Signer::new(alg.digest(), &key).expect("signer");
            signer.sign_oneshot_to_vec(input).expect("hmac")
        }
    }
}

/// A compact JWS from header and payload JSON text, signed with `pkey` as `alg`.
fn mint(header: &str, payload: &str, alg: Alg, pkey: &PKey<Private>) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.as_bytes())
    );
    let sig = sign(alg, pkey, input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

fn ath(token: &str) -> String {
    b64::encode(&crate::digest::sha256(&[token.as_bytes()]))
}

// ---------- proofs ----------

/// A good proof for `GET https://rs.example/api/data` at `NOW`, to be spoiled one way per test.
struct Proof {
    alg: Alg,
    key: &'static PKey<Private>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl Proof {
    fn new(alg: Alg) -> Proof {
        Proof::signed_by(alg, key_for(alg))
    }

    fn signed_by(alg: Alg, key: &'static PKey<Private>) -> Proof {
        let header = json!({"typ": "dpop+jwt", "alg": alg.name(), "jwk": public_jwk(key)});
        let claims = json!({
            "jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": HTU, "iat": NOW, "ath": ath(TOKEN),
        });
        Proof {
            alg,
            key,
            header: header.as_object().cloned().unwrap_or_default(),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    fn header(mut self, name: &str, value: Value) -> Proof {
        self.header.insert(name.to_owned(), value);
        self
    }

    fn without_header(mut self, name: &str) -> Proof {
        self.header.remove(name);
        self
    }

    fn claim(mut self, name: &str, value: Value) -> Proof {
        self.claims.insert(name.to_owned(), value);
        self
    }

    fn without_claim(mut self, name: &str) -> Proof {
        self.claims.remove(name);
        self
    }

    fn jwk(self, name: &str, value: Value) -> Proof {
        let mut jwk = self.header.get("jwk").cloned().unwrap_or(json!({}));
        if let Some(members) = jwk.as_object_mut() {
            members.insert(name.to_owned(), value);
        }
        self.header("jwk", jwk)
    }

    fn compact(&self) -> String {
        mint(
            &Value::Object(self.header.clone()).to_string(),
            &Value::Object(self.claims.clone()).to_string(),
            self.alg,
            self.key,
        )
    }

    /// Checked as a request with the defaults, by a token bound to the proof key.
    fn check(&self) -> Result<CheckedProof, DpopError> {
        Request::bound_to(self.key).check(&self.compact())
    }
}

/// The request side of a check.
struct Request {
    policy: DpopPolicy,
    method: &'static str,
    url: RequestUrl<'static>,
    token: &'static str,
    bound: Option<String>,
    nonces: Option<Nonces>,
    now: i64,
}

impl Request {
    fn bound_to(key: &PKey<Private>) -> Request {
        Request {
            policy: DpopPolicy::default(),
            method: "GET",
            url: URL,
            token: TOKEN,
            bound: Some(thumbprint(key)),
            nonces: None,
            now: NOW,
        }
    }

    fn check(&self, proof: &str) -> Result<CheckedProof, DpopError> {
        self.check_all(&[proof])
    }

    fn check_all(&self, proofs: &[&str]) -> Result<CheckedProof, DpopError> {
        self.check_with(proofs, &ProofKeys::default())
    }

    /// Checked with the kept proof keys `keys`, as a verifier's successive requests are.
    fn check_with(&self, proofs: &[&str], keys: &ProofKeys) -> Result<CheckedProof, DpopError> {
        let presented = Presented {
            proofs,
            method: self.method,
            url: self.url,
            token: self.token,
        };
        check(
            &self.policy,
            &presented,
            self.bound.as_deref(),
            self.nonces.as_ref(),
            keys,
            self.now,
        )
    }
}

fn label(result: Result<CheckedProof, DpopError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    }
}

// ---------- accepted ----------

#[test]
fn every_allowed_alg_accepted() {
    for alg in ASYMMETRIC {
        let proof = Proof::new(alg);
        let checked = proof.check();
        assert_eq!(
            checked,
            Ok(CheckedProof {
                jkt: thumbprint(proof.key),
                jti: "e1j3V_bKic8-LAEB".to_owned(),
                iat: NOW,
            }),
            "{alg}"
        );
    }
}

#[test]
fn unknown_header_members_and_claims_ignored() {
    let proof = Proof::new(Alg::ES256)
        .header("kid", json!("k1"))
        .header("x-vendor", json!({"nested": [1, 2, {"a": null}]}))
        .claim("exp", json!(NOW + 60))
        .claim("custom", json!(["x", 1.5, false]))
        .claim("nonce", json!("unchecked without dpop.nonce"));
    assert_eq!(label(proof.check()), "ok");
}

#[test]
fn typ_is_a_media_type() {
    for typ in [
        "dpop+jwt",
        "DPoP+JWT",
        "application/dpop+jwt",
        "Application/DPOP+jwt",
    ] {
        let proof = Proof::new(Alg::ES256).header("typ", json!(typ));
        assert_eq!(label(proof.check()), "ok", "{typ}");
    }
}

#[test]
fn header_whitespace_around_the_proof_is_trimmed() {
    let proof = Proof::new(Alg::ES256).compact();
    let request = Request::bound_to(p256());
    assert_eq!(label(request.check(&format!(" \t{proof} "))), "ok");
}

#[test]
fn methods_are_compared_exactly_as_received() {
    for method in ["HEAD", "PATCH", "PROPFIND", "DELETE", "X-Custom"] {
        let proof = Proof::new(Alg::ES256).claim("htm", json!(method));
        let mut request = Request::bound_to(p256());
        request.method = method;
        assert_eq!(label(request.check(&proof.compact())), "ok", "{method}");
        request.method = "GET";
        assert_eq!(
            label(request.check(&proof.compact())),
            "dpop_htm_mismatch",
            "{method} proof on GET"
        );
    }
}

#[test]
fn htu_normalised_on_both_sides() {
    for htu in [
        "HTTPS://RS.EXAMPLE/api/data",
        "https://rs.example:443/api/data",
        "https://rs.example/api/data?page=2",
        "https://rs.example/api/data#section",
        "https://rs.example/%61pi/data",
    ] {
        let proof = Proof::new(Alg::ES256).claim("htu", json!(htu));
        assert_eq!(label(proof.check()), "ok", "{htu}");
    }
    let proof = Proof::new(Alg::ES256).claim("htu", json!("http://rs.example:8080/"));
    let mut request = Request::bound_to(p256());
    request.url = RequestUrl {
        scheme: "HTTP",
        host: "RS.example",
        port: 8080,
        path: "",
    };
    assert_eq!(label(request.check(&proof.compact())), "ok");
}

#[test]
fn e_of_3_is_acceptable() {
    // Bounds allow e = 3: this proof gets past every key check and fails only at the
    // signature (the private key belongs to e = 65537).
    let proof = Proof::new(Alg::RS256).jwk("e", json!("Aw"));
    assert_eq!(label(proof.check()), "dpop_signature_invalid");
}

// ---------- refused: one test per reason ----------

#[test]
fn no_proof() {
    let request = Request::bound_to(p256());
    assert_eq!(request.check_all(&[]), Err(DpopError::NoProof));
    assert_eq!(request.check(""), Err(DpopError::NoProof));
    assert_eq!(request.check(" \t "), Err(DpopError::NoProof));
}

#[test]
fn several_proofs() {
    let proof = Proof::new(Alg::ES256).compact();
    let request = Request::bound_to(p256());
    assert_eq!(
        request.check_all(&[proof.as_str(), proof.as_str()]),
        Err(DpopError::SeveralProofs(2))
    );
    // As httpd merges repeated headers.
    assert_eq!(
        request.check(&format!("{proof}, {proof}")),
        Err(DpopError::SeveralProofs(2))
    );
}

#[test]
fn too_large_refused_before_parsing() {
    let request = Request::bound_to(p256());
    let huge = "x".repeat(MAX_PROOF_LEN + 1);
    assert_eq!(
        request.check(&huge),
        Err(DpopError::TooLarge(MAX_PROOF_LEN + 1))
    );
    let padded = Proof::new(Alg::ES256).claim("pad", json!("p".repeat(MAX_PROOF_LEN)));
    assert_eq!(label(padded.check()), "dpop_too_large");
}

#[test]
fn malformed() {
    let request = Request::bound_to(p256());
    let proof = Proof::new(Alg::ES256).compact();
    for bad in [
        "not a jws".to_owned(),
        "a.b".to_owned(),
        format!("{proof}.extra"),
        format!("{proof}=="),
        proof.replacen('.', "..", 1),
    ] {
        assert_eq!(label(request.check(&bad)), "dpop_malformed", "{bad}");
    }
    // Duplicate header members and `crit` are refused by the JWS parser.
    let header = format!(
        r#"{{"typ":"dpop+jwt","typ":"JWT","alg":"ES256","jwk":{}}}"#,
        public_jwk(p256())
    );
    let claims = Value::Object(Proof::new(Alg::ES256).claims).to_string();
    let dup = mint(&header, &claims, Alg::ES256, p256());
    assert!(matches!(
        request.check(&dup),
        Err(DpopError::Malformed(JoseError::DuplicateMember(_)))
    ));
    let crit = Proof::new(Alg::ES256)
        .header("crit", json!(["x"]))
        .header("x", json!(1));
    assert_eq!(label(crit.check()), "dpop_malformed");
}

#[test]
fn wrong_typ() {
    let missing = Proof::new(Alg::ES256).without_header("typ");
    assert_eq!(missing.check(), Err(DpopError::WrongTyp(None)));
    for typ in ["JWT", "at+jwt", "dpop", "dpop+jwt ", "application/jwt"] {
        let proof = Proof::new(Alg::ES256).header("typ", json!(typ));
        assert_eq!(
            proof.check(),
            Err(DpopError::WrongTyp(Some(typ.to_owned()))),
            "{typ}"
        );
    }
    let number = Proof::new(Alg::ES256).header("typ", json!(1));
    assert_eq!(label(number.check()), "dpop_malformed");
}

#[test]
fn alg_not_allowed() {
    // none, even with a signature.
    let none = Proof::new(Alg::ES256).header("alg", json!("none"));
    assert_eq!(
        none.check(),
        Err(DpopError::AlgNotAllowed("none".to_owned()))
    );
    // Symmetric: whatever the key, an HMAC proves nothing about a private key.
    let hs = Proof::signed_by(Alg::HS256, p256());
    assert_eq!(
        hs.check(),
        Err(DpopError::AlgNotAllowed("HS256".to_owned()))
    );
    // Unknown names.
    let es256k = Proof::new(Alg::ES256).header("alg", json!("ES256K"));
    assert_eq!(
        es256k.check(),
        Err(DpopError::AlgNotAllowed("ES256K".to_owned()))
    );
    // Not on dpop.algs.
    let rs = Proof::new(Alg::RS256).compact();
    let mut request = Request::bound_to(rsa_key());
    request.policy.algs = vec![Alg::ES256, Alg::PS256];
    assert_eq!(
        request.check(&rs),
        Err(DpopError::AlgNotAllowed("RS256".to_owned()))
    );
    // Even a policy built by hand with HS256 on it refuses symmetric proofs.
    let mut request = Request::bound_to(p256());
    request.policy.algs = vec![Alg::HS256];
    assert_eq!(label(request.check(&hs.compact())), "dpop_alg_not_allowed");
}

#[test]
fn jwk_missing() {
    let proof = Proof::new(Alg::ES256).without_header("jwk");
    assert_eq!(proof.check(), Err(DpopError::JwkMissing));
}

#[test]
fn jwk_not_object() {
    let jwk = public_jwk(p256()).to_string();
    let proof = Proof::new(Alg::ES256).header("jwk", json!(jwk));
    assert_eq!(proof.check(), Err(DpopError::JwkNotObject));
}

#[test]
fn jwk_kty_oct_refused() {
    let proof =
        Proof::new(Alg::ES256).header("jwk", json!({"kty": "oct", "k": b64::encode(&[0x42; 32])}));
    assert_eq!(proof.check(), Err(DpopError::JwkSymmetric));
}

#[test]
fn jwk_private_members_refused() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let proof = Proof::new(Alg::RS256).jwk(member, json!("AQAB"));
        assert_eq!(
            proof.check(),
            Err(DpopError::JwkPrivate(member)),
            "{member}"
        );
    }
    // A real private EC key in the header.
    let ec = p256().ec_key().expect("ec");
    let d = b64::encode(&ec.private_key().to_vec_padded(32).expect("d"));
    let proof = Proof::new(Alg::ES256).jwk("d", json!(d));
    assert_eq!(proof.check(), Err(DpopError::JwkPrivate("d")));
    let proof = Proof::new(Alg::EdDSA).jwk("d", json!(b64::encode(&[1; 32])));
    assert_eq!(proof.check(), Err(DpopError::JwkPrivate("d")));
}

#[test]
fn jwk_unsupported_type_or_curve() {
    for (alg, jwk) in [
        (Alg::ES256, json!({"kty": "XYZ"})),
        (
            Alg::ES256,
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
        ),
        (Alg::EdDSA, json!({"kty": "OKP", "crv": "Ed448", "x": "AA"})),
        (
            Alg::EdDSA,
            json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
        ),
    ] {
        let proof = Proof::new(alg).header("jwk", jwk.clone());
        assert_eq!(label(proof.check()), "dpop_jwk_unsupported", "{jwk}");
    }
}

#[test]
fn jwk_rsa_too_small() {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    let small = generated(&K, || {
        PKey::from_rsa(Rsa::generate(1024).expect("rsa")).expect("pkey")
    });
    let proof = Proof::signed_by(Alg::RS256, small).compact();
    // The token is bound to the small key (its thumbprint cannot be computed here: the JOSE
    // core refuses to import it at all).
    let mut request = Request::bound_to(rsa_key());
    request.bound = Some("thumbprint-of-the-1024-bit-key".to_owned());
    assert_eq!(
        request.check(&proof),
        Err(DpopError::JwkRsaSize("of 1024 bits".to_owned()))
    );
}

#[test]
fn jwk_rsa_16384_bits_refused_before_any_signature_work() {
    // Not a real key: nothing may get as far as using it.
    let mut n = vec![0xff; 16384 / 8];
    n[0] = 0xc5;
    let jwk = json!({"kty": "RSA", "n": b64::encode(&n), "e": "AQAB"});
    let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}).to_string();
    let claims = Value::Object(Proof::new(Alg::RS256).claims).to_string();
    let proof = format!(
        "{}.{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(claims.as_bytes()),
        b64::encode(&n)
    );
    assert!(proof.len() <= MAX_PROOF_LEN, "fits the size bound");
    let request = Request::bound_to(rsa_key());
    let start = Instant::now();
    let result = request.check(&proof);
    assert_eq!(label(result), "dpop_jwk_rsa_size");
    assert!(start.elapsed() < Duration::from_millis(500));
    // Just over the ceiling, decoded: 8193 bits.
    let mut n = vec![0xff; 1025];
    n[0] = 1;
    let proof = Proof::new(Alg::RS256).jwk("n", json!(b64::encode(&n)));
    assert_eq!(
        proof.check(),
        Err(DpopError::JwkRsaSize("of 8193 bits".to_owned()))
    );
}

#[test]
fn jwk_rsa_bad_exponent() {
    // e = 1 turns RSA verification into a comparison with the padded message.
    for e in [
        b64::encode(&[1]),
        b64::encode(&[0, 1]),
        b64::encode(&[2]),
        b64::encode(&[1, 0, 0]),
        b64::encode(&[1, 0, 0, 0, 1]),
        String::new(),
    ] {
        let proof = Proof::new(Alg::RS256).jwk("e", json!(e));
        assert_eq!(proof.check(), Err(DpopError::JwkRsaExponent), "e={e}");
    }
}

#[test]
fn jwk_does_not_fit_alg() {
    for (alg, key) in [
        (Alg::ES256, rsa_key()),
        (Alg::ES384, p256()),
        (Alg::ES256, p521()),
        (Alg::EdDSA, p256()),
        (Alg::RS256, ed25519()),
        (Alg::PS256, p256()),
        (Alg::ES256, ed25519()),
    ] {
        // Signed with the right kind of key for alg, but the header names `key`.
        let proof = Proof::new(alg).header("jwk", public_jwk(key));
        assert_eq!(label(proof.check()), "dpop_jwk_alg_mismatch", "{alg}");
    }
    // The jwk pins another algorithm of its family.
    let proof = Proof::new(Alg::RS256).jwk("alg", json!("PS256"));
    assert_eq!(label(proof.check()), "dpop_jwk_alg_mismatch");
}

#[test]
fn jwk_invalid() {
    let mut jwk = public_jwk(p256());
    if let Some(members) = jwk.as_object_mut() {
        members.insert("y".to_owned(), json!(b64::encode(&[7; 32])));
    }
    let off_curve = Proof::new(Alg::ES256).header("jwk", jwk);
    assert_eq!(label(off_curve.check()), "dpop_jwk_invalid");
    for proof in [
        Proof::new(Alg::ES256).jwk("use", json!("enc")),
        Proof::new(Alg::ES256).jwk("x", json!("not base64url!")),
        Proof::new(Alg::ES256).jwk("kty", json!(1)),
        Proof::new(Alg::RS256).jwk("n", json!(42)),
        Proof::new(Alg::ES256).header("jwk", json!({"crv": "P-256"})),
        Proof::new(Alg::EdDSA).jwk("x", json!(b64::encode(&[1; 31]))),
    ] {
        assert_eq!(label(proof.check()), "dpop_jwk_invalid");
    }
}

#[test]
fn payload_malformed() {
    let header = Value::Object(Proof::new(Alg::ES256).header).to_string();
    let request = Request::bound_to(p256());
    for payload in ["[]", "not json", r#"{"jti":"a","jti":"b"}"#, ""] {
        let proof = mint(&header, payload, Alg::ES256, p256());
        assert_eq!(
            label(request.check(&proof)),
            "dpop_payload_malformed",
            "{payload}"
        );
    }
}

#[test]
fn claim_missing() {
    for claim in ["jti", "htm", "htu", "iat", "ath"] {
        let proof = Proof::new(Alg::ES256).without_claim(claim);
        assert_eq!(
            proof.check(),
            Err(DpopError::ClaimMissing(claim)),
            "{claim}"
        );
    }
}

#[test]
fn claim_type() {
    for (claim, value) in [
        ("jti", json!(12345)),
        ("htm", json!(["GET"])),
        ("htu", json!({"href": HTU})),
        ("iat", json!("1700000000")),
        ("ath", json!(null)),
    ] {
        let proof = Proof::new(Alg::ES256).claim(claim, value);
        assert_eq!(proof.check(), Err(DpopError::ClaimType(claim)), "{claim}");
    }
}

#[test]
fn jti_invalid() {
    for jti in [String::new(), "j".repeat(MAX_JTI_LEN + 1)] {
        let proof = Proof::new(Alg::ES256).claim("jti", json!(jti));
        assert_eq!(proof.check(), Err(DpopError::JtiInvalid));
    }
    let longest = Proof::new(Alg::ES256).claim("jti", json!("j".repeat(MAX_JTI_LEN)));
    assert_eq!(label(longest.check()), "ok");
}

#[test]
fn htm_mismatch() {
    for htm in ["get", "POST", "GET ", ""] {
        let proof = Proof::new(Alg::ES256).claim("htm", json!(htm));
        assert_eq!(
            proof.check(),
            Err(DpopError::HtmMismatch {
                htm: sanitize(htm),
                method: "GET".to_owned()
            }),
            "{htm:?}"
        );
    }
    // HEAD is HEAD, not GET.
    let proof = Proof::new(Alg::ES256).compact();
    let mut request = Request::bound_to(p256());
    request.method = "HEAD";
    assert_eq!(label(request.check(&proof)), "dpop_htm_mismatch");
}

#[test]
fn htu_invalid() {
    for htu in [
        "/api/data",
        "rs.example/api/data",
        "ftp://rs.example/api/data",
        "https://u@rs.example/api/data",
        "",
    ] {
        let proof = Proof::new(Alg::ES256).claim("htu", json!(htu));
        assert_eq!(label(proof.check()), "dpop_htu_invalid", "{htu}");
    }
}

#[test]
fn request_url_invalid() {
    let proof = Proof::new(Alg::ES256).claim("htu", json!("https://rs.example/"));
    let mut request = Request::bound_to(p256());
    request.url.path = "*";
    assert_eq!(
        request.check(&proof.compact()),
        Err(DpopError::RequestUrlInvalid(htu::HtuError::Path))
    );
}

#[test]
fn htu_mismatch() {
    for htu in [
        "https://rs.example/api/other",
        "https://rs.example/API/data",
        "http://rs.example/api/data",
        "https://rs.example:8443/api/data",
        "https://evil.example/api/data",
        "https://rs.example/api/data/",
        "https://rs.example/api%2Fdata",
    ] {
        let proof = Proof::new(Alg::ES256).claim("htu", json!(htu));
        assert_eq!(label(proof.check()), "dpop_htu_mismatch", "{htu}");
    }
}

#[test]
fn iat_window_edges() {
    let at = |iat: Value| label(Proof::new(Alg::ES256).claim("iat", iat).check());
    assert_eq!(at(json!(NOW - 5)), "ok", "slack.before is inclusive");
    assert_eq!(at(json!(NOW - 6)), "dpop_iat_too_old");
    assert_eq!(at(json!(NOW + 5)), "ok", "slack.after is inclusive");
    assert_eq!(at(json!(NOW + 6)), "dpop_iat_in_future");
    assert_eq!(at(json!(NOW - 3600)), "dpop_iat_too_old");
    assert_eq!(at(json!(NOW + 3600)), "dpop_iat_in_future");
    assert_eq!(at(json!(0)), "dpop_iat_too_old");
    assert_eq!(at(json!(-1e300)), "dpop_iat_too_old");
    assert_eq!(at(json!(1e300)), "dpop_iat_in_future");
    // A NumericDate may have a fraction.
    assert_eq!(at(json!((NOW as f64) - 5.5)), "dpop_iat_too_old");
    let fractional = Proof::new(Alg::ES256).claim("iat", json!((NOW as f64) + 0.75));
    assert_eq!(fractional.check().map(|c| c.iat), Ok(NOW));
    assert_eq!(
        Proof::new(Alg::ES256).claim("iat", json!(NOW - 6)).check(),
        Err(DpopError::IatTooOld {
            iat: NOW - 6,
            now: NOW
        })
    );
}

/// The replay store forgets a `jti` `remember_for` seconds after the proof was accepted (shm: from
/// that second on; redis and memcached: within it): from then on `check` must refuse the proof as
/// too old, or it could be used again. The latest `iat` accepted is the edge case.
#[test]
fn jti_remembered_as_long_as_the_proof_is_accepted() {
    for (options, iat) in [
        ("", json!(NOW + 5)),
        ("", json!((NOW as f64) + 4.5)),
        ("", json!(NOW)),
        (
            "dpop.iat.slack.before=30&dpop.iat.slack.after=0&dpop.expiry=30",
            json!(NOW),
        ),
        (
            "dpop.iat.slack.before=0&dpop.iat.slack.after=60",
            json!(NOW + 60),
        ),
    ] {
        let proof = Proof::new(Alg::ES256).claim("iat", iat.clone()).compact();
        let policy = policy(options).expect("policy");
        let at = |now: i64| Request {
            policy: policy.clone(),
            now,
            ..Request::bound_to(p256())
        };
        let checked = at(NOW).check(&proof).expect("accepted");
        let ttl = i64::try_from(checked.remember_for(&policy, NOW).as_secs()).expect("secs");
        assert!(ttl >= 1, "{options} {iat}");
        assert_eq!(
            label(at(NOW + ttl).check(&proof)),
            "dpop_iat_too_old",
            "{options} iat {iat}: jti forgotten at +{ttl}"
        );
    }
}

#[test]
fn iat_slacks_from_the_policy() {
    let mut request = Request::bound_to(p256());
    request.policy.iat_slack_before = 10;
    request.policy.iat_slack_after = 10;
    for (iat, expected) in [
        (NOW - 10, "ok"),
        (NOW + 10, "ok"),
        (NOW - 11, "dpop_iat_too_old"),
        (NOW + 11, "dpop_iat_in_future"),
    ] {
        let proof = Proof::new(Alg::ES256).claim("iat", json!(iat)).compact();
        assert_eq!(label(request.check(&proof)), expected, "{iat}");
    }
}

#[test]
fn iat_verify_skip_and_optional() {
    let old = Proof::new(Alg::ES256)
        .claim("iat", json!(NOW - 3600))
        .compact();
    let none = Proof::new(Alg::ES256).without_claim("iat").compact();
    let text = Proof::new(Alg::ES256)
        .claim("iat", json!("yesterday"))
        .compact();
    let mut request = Request::bound_to(p256());
    request.policy.iat_verify = Requirement::Skip;
    assert_eq!(request.check(&old).map(|c| c.iat), Ok(NOW - 3600));
    assert_eq!(request.check(&none).map(|c| c.iat), Ok(NOW));
    assert_eq!(label(request.check(&text)), "ok", "skip does not read iat");
    request.policy.iat_verify = Requirement::Optional;
    assert_eq!(label(request.check(&old)), "dpop_iat_too_old");
    assert_eq!(request.check(&none).map(|c| c.iat), Ok(NOW));
    assert_eq!(request.check(&text), Err(DpopError::ClaimType("iat")));
}

#[test]
fn ath_mismatch() {
    let other = Proof::new(Alg::ES256).claim("ath", json!(ath("another token")));
    assert_eq!(other.check(), Err(DpopError::AthMismatch));
    let raw = Proof::new(Alg::ES256).claim("ath", json!(TOKEN));
    assert_eq!(raw.check(), Err(DpopError::AthMismatch));
    let empty = Proof::new(Alg::ES256).claim("ath", json!(""));
    assert_eq!(empty.check(), Err(DpopError::AthMismatch));
    // The proof was made for TOKEN; another token presented with it fails.
    let proof = Proof::new(Alg::ES256).compact();
    let mut request = Request::bound_to(p256());
    request.token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln";
    assert_eq!(request.check(&proof), Err(DpopError::AthMismatch));
}

#[test]
fn signature_invalid() {
    // Signed by another key than the one in the header.
    let forged = Proof::signed_by(Alg::ES256, other_p256()).header("jwk", public_jwk(p256()));
    assert_eq!(label(forged.check()), "dpop_signature_invalid");
    // A changed claim after signing.
    let proof = Proof::new(Alg::ES256).compact();
    let mut parts: Vec<&str> = proof.split('.').collect();
    let claims =
        Value::Object(Proof::new(Alg::ES256).claim("jti", json!("another")).claims).to_string();
    let changed = b64::encode(claims.as_bytes());
    parts[1] = &changed;
    let tampered = parts.join(".");
    assert_eq!(
        label(Request::bound_to(p256()).check(&tampered)),
        "dpop_signature_invalid"
    );
    // A signature one byte short.
    for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
        let proof = Proof::new(alg).compact();
        let (input, sig) = proof.rsplit_once('.').unwrap_or_default();
        let mut sig = b64::decode_strict(sig).unwrap_or_default();
        sig.pop();
        let short = format!("{input}.{}", b64::encode(&sig));
        assert_eq!(
            label(Request::bound_to(key_for(alg)).check(&short)),
            "dpop_signature_invalid",
            "{alg}"
        );
    }
}

#[test]
fn nonce_missing() {
    let mut request = Request::bound_to(p256());
    request.nonces = Some(Nonces::new([9; 32], Duration::from_secs(300)));
    let err = request.check(&Proof::new(Alg::ES256).compact());
    assert_eq!(err, Err(DpopError::NonceMissing));
    assert!(err.is_err_and(|e| e.is_nonce_problem() && e.error_code().error == "use_dpop_nonce"));
}

#[test]
fn nonce_invalid_or_stale() {
    let nonces = Nonces::new([9; 32], Duration::from_secs(300));
    let mut request = Request::bound_to(p256());
    let current = nonces.issue(NOW);
    let stale = nonces.issue(NOW - 600);
    let foreign = Nonces::new([1; 32], Duration::from_secs(300)).issue(NOW);
    request.nonces = Some(nonces);
    let with = |nonce: Value| {
        let proof = Proof::new(Alg::ES256).claim("nonce", nonce).compact();
        request.check(&proof)
    };
    assert_eq!(label(with(json!(current))), "ok");
    for bad in [
        json!(stale),
        json!(foreign),
        json!("made-up"),
        json!(42),
        json!(null),
    ] {
        let err = with(bad.clone());
        assert_eq!(err, Err(DpopError::NonceInvalid), "{bad}");
        assert!(err.is_err_and(|e| e.is_nonce_problem()));
    }
}

#[test]
fn nonce_is_checked_after_the_rest_of_the_proof() {
    let mut request = Request::bound_to(p256());
    request.nonces = Some(Nonces::new([9; 32], Duration::from_secs(300)));
    let forged = Proof::signed_by(Alg::ES256, other_p256()).header("jwk", public_jwk(p256()));
    assert_eq!(
        label(request.check(&forged.compact())),
        "dpop_signature_invalid"
    );
    let old = Proof::new(Alg::ES256).claim("iat", json!(NOW - 60));
    assert_eq!(label(request.check(&old.compact())), "dpop_iat_too_old");
}

#[test]
fn token_not_bound() {
    let mut request = Request::bound_to(p256());
    request.bound = None;
    let err = request.check(&Proof::new(Alg::ES256).compact());
    assert_eq!(err, Err(DpopError::TokenNotBound));
    assert!(err.is_err_and(|e| e.error_code().error == "invalid_token"));
}

#[test]
fn jkt_mismatch() {
    // A good proof by another key than the one the token is bound to.
    let proof = Proof::signed_by(Alg::ES256, other_p256()).compact();
    let request = Request::bound_to(p256());
    let err = request.check(&proof);
    assert_eq!(err, Err(DpopError::JktMismatch));
    assert!(err.is_err_and(|e| !e.is_nonce_problem() && e.error_code().error == "invalid_token"));
    let mut request = Request::bound_to(other_p256());
    assert_eq!(label(request.check(&proof)), "ok");
    request.bound = Some(String::new());
    assert_eq!(label(request.check(&proof)), "dpop_jkt_mismatch");
}

#[test]
fn every_one_character_change_or_cut_is_refused_without_panicking() {
    let proof = Proof::new(Alg::ES256).compact();
    let request = Request::bound_to(p256());
    assert_eq!(label(request.check(&proof)), "ok");
    for (at, c) in proof.char_indices() {
        let other = if c == 'A' { 'B' } else { 'A' };
        let changed = format!("{}{other}{}", &proof[..at], &proof[at + 1..]);
        assert!(request.check(&changed).is_err(), "change at {at}");
        if at % 7 == 0 {
            assert!(request.check(&proof[..at]).is_err(), "cut at {at}");
        }
    }
}

#[test]
fn a_jwk_that_pins_the_header_alg_is_accepted() {
    let proof = Proof::new(Alg::PS256)
        .jwk("alg", json!("PS256"))
        .jwk("use", json!("sig"))
        .jwk("kid", json!("client-key-1"));
    assert_eq!(label(proof.check()), "ok");
}

/// The kept key is a function of the key material alone: a proof whose `jwk` carries the same
/// public key (anyone can copy it from a client's proofs) with its own `alg`, `use` or `key_ops`
/// must not make that client's next proofs fail on this child (no signature is needed to get a
/// key imported, it happens before the signature check).
#[test]
fn kept_keys_cannot_be_poisoned_by_optional_jwk_members() {
    let keys = ProofKeys::default();
    let request = Request::bound_to(rsa_key());
    let poison = Proof::new(Alg::RS256).jwk("alg", json!("PS512"));
    assert_eq!(
        label(request.check_with(&[&poison.compact()], &keys)),
        "dpop_jwk_alg_mismatch"
    );
    let client = Proof::new(Alg::RS256).claim("jti", json!("after-the-poison"));
    assert_eq!(label(request.check_with(&[&client.compact()], &keys)), "ok");
    // And the other way: a key kept from a proof without `alg` does not let a jwk that pins
    // another alg through.
    let pinned = Proof::new(Alg::RS256)
        .jwk("alg", json!("PS512"))
        .claim("jti", json!("pinned"));
    assert_eq!(
        label(request.check_with(&[&pinned.compact()], &keys)),
        "dpop_jwk_alg_mismatch"
    );
}

// ---------- results and errors ----------

#[test]
fn replay_key_covers_key_and_jti() {
    let a = CheckedProof {
        jkt: thumbprint(p256()),
        jti: "j1".to_owned(),
        iat: NOW,
    };
    let same = CheckedProof {
        iat: NOW + 1,
        ..a.clone()
    };
    let other_jti = CheckedProof {
        jti: "j2".to_owned(),
        ..a.clone()
    };
    let other_key = CheckedProof {
        jkt: thumbprint(other_p256()),
        ..a.clone()
    };
    assert_eq!(a.replay_key(), same.replay_key());
    assert_ne!(a.replay_key(), other_jti.replay_key());
    assert_ne!(a.replay_key(), other_key.replay_key());
    // jkt "ab" + jti "c" and jkt "a" + jti "bc" do not collide.
    let split = |jkt: &str, jti: &str| CheckedProof {
        jkt: jkt.to_owned(),
        jti: jti.to_owned(),
        iat: NOW,
    };
    assert_ne!(split("ab", "c").replay_key(), split("a", "bc").replay_key());
}

#[test]
fn error_labels_are_unique_and_lines_bounded() {
    let long = "\u{202e}x\n".repeat(500);
    let errors = [
        DpopError::NoProof,
        DpopError::SeveralProofs(2),
        DpopError::TooLarge(9000),
        DpopError::Malformed(JoseError::SegmentCount(2)),
        DpopError::WrongTyp(Some(sanitize(&long))),
        DpopError::AlgNotAllowed(sanitize(&long)),
        DpopError::JwkMissing,
        DpopError::JwkNotObject,
        DpopError::JwkSymmetric,
        DpopError::JwkPrivate("d"),
        DpopError::JwkUnsupported(sanitize(&long)),
        DpopError::JwkRsaSize("of 1024 bits".to_owned()),
        DpopError::JwkRsaExponent,
        DpopError::JwkAlgMismatch {
            alg: Alg::ES256,
            key: "RSA".to_owned(),
        },
        DpopError::JwkInvalid(JoseError::KeyInvalid("x".to_owned())),
        DpopError::PayloadMalformed(JoseError::NotJsonObject("payload")),
        DpopError::ClaimMissing("jti"),
        DpopError::ClaimType("iat"),
        DpopError::JtiInvalid,
        DpopError::HtmMismatch {
            htm: sanitize(&long),
            method: sanitize(&long),
        },
        DpopError::HtuInvalid {
            htu: sanitize(&long),
            why: htu::HtuError::Scheme,
        },
        DpopError::RequestUrlInvalid(htu::HtuError::Path),
        DpopError::HtuMismatch {
            htu: sanitize(&long),
            url: sanitize(&long),
        },
        DpopError::IatTooOld { iat: 0, now: NOW },
        DpopError::IatInFuture {
            iat: i64::MAX,
            now: i64::MIN,
        },
        DpopError::AthMismatch,
        DpopError::SignatureInvalid(JoseError::SignatureInvalid),
        DpopError::NonceMissing,
        DpopError::NonceInvalid,
        DpopError::TokenNotBound,
        DpopError::JktMismatch,
        DpopError::Internal("thumbprint"),
    ];
    let mut labels = std::collections::HashSet::new();
    for e in &errors {
        assert!(labels.insert(e.label()), "duplicate label {}", e.label());
        assert!(e.label().starts_with("dpop_"));
        let line = e.to_string();
        // sanitize keeps 64 characters of each attacker string; escaping can widen them.
        assert!(line.len() < 1500, "{} bytes: {line}", line.len());
        assert!(!line.contains('\n') && !line.contains('\u{202e}'), "{line}");
        let nonce = matches!(e, DpopError::NonceMissing | DpopError::NonceInvalid);
        assert_eq!(e.is_nonce_problem(), nonce);
    }
}

#[test]
fn refusals_never_log_the_token_or_the_proof() {
    let proof = Proof::new(Alg::ES256).claim("htm", json!("POST")).compact();
    let signature = proof.rsplit('.').next().unwrap_or_default().to_owned();
    let line = Request::bound_to(p256())
        .check(&proof)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(line.contains("htm"), "{line}");
    assert!(
        !line.contains(TOKEN) && !line.contains(&signature),
        "{line}"
    );
}

// ---------- policy ----------

fn policy(options: &str) -> Result<DpopPolicy, String> {
    DpopPolicy::parse(&Options::parse(options))
}

#[test]
fn policy_defaults() {
    let p = policy("").expect("defaults");
    assert_eq!(p, DpopPolicy::default());
    assert_eq!(
        p.algs_header_value(),
        "ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"
    );
    assert_eq!(p.iat_verify, Requirement::Required);
    assert_eq!((p.iat_slack_before, p.iat_slack_after), (5, 5));
    assert_eq!(p.expiry, Duration::from_secs(10));
    assert_eq!(p.nonce_interval, None);
}

#[test]
fn policy_algs() {
    let p = policy("dpop.algs=ES256+PS256,EdDSA,ES256").expect("algs");
    assert_eq!(p.algs, vec![Alg::ES256, Alg::PS256, Alg::EdDSA]);
    assert_eq!(p.algs_header_value(), "ES256 PS256 EdDSA");
    assert_eq!(
        policy("dpop.algs=Ed25519").map(|p| p.algs),
        Ok(vec![Alg::EdDSA])
    );
    let hs = policy("dpop.algs=ES256+HS256").expect_err("symmetric");
    assert!(
        hs.contains("HS256 is symmetric") && hs.contains("private key") && hs.contains("ES256"),
        "{hs}"
    );
    let none = policy("dpop.algs=none").expect_err("none");
    assert!(none.contains("must be signed"), "{none}");
    let unknown = policy("dpop.algs=ES256K").expect_err("unknown");
    assert!(
        unknown.contains("\"ES256K\"") && unknown.contains("EdDSA"),
        "{unknown}"
    );
    let case = policy("dpop.algs=es256").expect_err("case");
    assert!(case.contains("case-sensitive: ES256"), "{case}");
    let empty = policy("dpop.algs=+,").expect_err("empty");
    assert!(empty.contains("empty"), "{empty}");
}

#[test]
fn policy_iat_and_expiry() {
    let p = policy("dpop.iat.verify=optional&dpop.iat.slack.before=30&dpop.iat.slack.after=10")
        .expect("iat");
    assert_eq!(p.iat_verify, Requirement::Optional);
    assert_eq!((p.iat_slack_before, p.iat_slack_after), (30, 10));
    assert_eq!(
        p.expiry,
        Duration::from_secs(40),
        "raised to the iat window"
    );
    assert_eq!(
        policy("dpop.iat.verify=SKIP").map(|p| p.iat_verify),
        Ok(Requirement::Skip)
    );
    assert_eq!(
        policy("dpop.iat.verify=bogus").map(|p| p.iat_verify),
        Ok(Requirement::Required)
    );
    assert_eq!(
        policy("dpop.expiry=60").map(|p| p.expiry),
        Ok(Duration::from_secs(60))
    );
    let short = policy("dpop.expiry=8").expect_err("below the window");
    assert!(short.contains("dpop.expiry to 10 or more"), "{short}");
    assert!(policy("dpop.expiry=0").is_err());
    assert_eq!(
        policy("dpop.iat.verify=skip&dpop.expiry=1").map(|p| p.expiry),
        Ok(Duration::from_secs(1))
    );
    for bad in [
        "dpop.iat.slack.before=-1",
        "dpop.iat.slack.after=ten",
        "dpop.iat.slack.before=3601",
        "dpop.expiry=1.5",
    ] {
        let err = policy(bad).expect_err(bad);
        assert!(err.contains("whole number of seconds"), "{err}");
    }
}

#[test]
fn policy_nonce() {
    assert_eq!(
        policy("dpop.nonce=on").map(|p| p.nonce_interval),
        Ok(Some(Duration::from_secs(300)))
    );
    assert_eq!(
        policy("dpop.nonce=on&dpop.nonce.interval=60").map(|p| p.nonce_interval),
        Ok(Some(Duration::from_secs(60)))
    );
    assert_eq!(
        policy("dpop.nonce=off&dpop.nonce.interval=60").map(|p| p.nonce_interval),
        Ok(None)
    );
    assert!(policy("dpop.nonce=maybe").is_err_and(|e| e.contains("dpop.nonce=maybe")));
    assert!(policy("dpop.nonce=on&dpop.nonce.interval=1").is_err_and(|e| e.contains("2 seconds")));
    assert!(policy("dpop.nonce=on&dpop.nonce.interval=2").is_ok());
}

/// `cargo test --release --lib dpop_microbench -- --ignored --nocapture`: where a proof's time
/// goes beside the signature verification (numbers for profiling, not assertions).
#[test]
#[ignore]
fn dpop_microbench() {
    const N: u32 = 3000;
    let request = Request::bound_to(p256());
    let proofs: Vec<String> = (0..N)
        .map(|i| {
            Proof::new(Alg::ES256)
                .claim("jti", json!(format!("jti-{i}")))
                .compact()
        })
        .collect();
    let keys = ProofKeys::default();
    let time = |what: &str, f: &mut dyn FnMut(&str)| {
        let start = Instant::now();
        for p in &proofs {
            f(p);
        }
        eprintln!("{what}: {:?} per proof", start.elapsed() / N);
    };
    let presented = |p: &'static str| Presented {
        proofs: std::slice::from_ref(Box::leak(Box::new(p))),
        method: "GET",
        url: URL,
        token: TOKEN,
    };
    time("check (key kept)", &mut |p| {
        let p: &'static str = Box::leak(p.to_owned().into_boxed_str());
        check(
            &request.policy,
            &presented(p),
            request.bound.as_deref(),
            None,
            &keys,
            NOW,
        )
        .expect("good proof");
    });
    time("Jws::parse", &mut |p| {
        Jws::parse(p).expect("parse");
    });
    let key = Key::from_jwk_map(public_jwk(p256()).as_object().expect("jwk")).expect("key");
    let parsed: Vec<Jws> = proofs
        .iter()
        .map(|p| Jws::parse(p).expect("parse"))
        .collect();
    let start = Instant::now();
    for jws in &parsed {
        key.verify(jws).expect("verify");
    }
    eprintln!("Key::verify alone: {:?} per proof", start.elapsed() / N);
    time("payload JSON", &mut |p| {
        let jws = Jws::parse(p).expect("parse");
        json::parse_object_as(&jws.payload, "payload").expect("json");
    });
    time("htu normalise x2", &mut |_| {
        htu::normalize(HTU).expect("htu");
        htu::request_url(&URL).expect("url");
    });
}
