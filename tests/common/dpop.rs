//! RFC 9449 DPoP for the integration tests: proof keys of every kind the module accepts (and a
//! few it must refuse) with their RFC 7638 thumbprints, a proof builder that can also produce
//! broken proofs, a raw HTTPS/1.1 client (exact header names, repeated headers, any method and
//! request target, keep-alive connections), a `WWW-Authenticate` parser, and DPoP-bound tokens
//! from the real authorization server's `dpop-client`.

use super::client::Response;
use super::httpd::Httpd;
use super::jwt::b64url;
use super::remote::{RS, RealAs, run_limited};
use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The default `dpop.algs`, in the order the challenge lists them.
pub(crate) const DEFAULT_ALGS: &str = "ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA";

/// base64url(SHA-256(token)): the proof's `ath` for `token`.
pub(crate) fn ath_of(token: &str) -> String {
    b64url(&openssl::sha::sha256(token.as_bytes()))
}

/// A fresh random `jti`.
pub(crate) fn new_jti() -> String {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b64url(&b)
}

// ---------------------------------------------------------------------------------------------
// Proof keys
// ---------------------------------------------------------------------------------------------

enum Material {
    Ec {
        key: PKey<Private>,
        crv: &'static str,
    },
    Rsa(PKey<Private>),
    Ed25519(PKey<Private>),
    /// An RSA key made of several 2048-bit primes (fast to generate at any size): signs RS256
    /// by hand (EMSA-PKCS1-v1_5 and CRT), since only the public part (`n`, `e`) goes on the
    /// wire.
    MultiPrime {
        n: BigNum,
        e: BigNum,
        d: BigNum,
        primes: Vec<BigNum>,
    },
}

/// A DPoP proof key: its public JWK goes into the proof header, its thumbprint into the token's
/// `cnf.jkt`.
pub(crate) struct DpopKey {
    material: Material,
}

fn ec(nid: Nid, crv: &'static str) -> DpopKey {
    let group = EcGroup::from_curve_name(nid).unwrap();
    DpopKey {
        material: Material::Ec {
            key: PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap(),
            crv,
        },
    }
}

/// `bits` of the curve's field -> bytes of a coordinate / of r and s.
fn ec_len(crv: &str) -> usize {
    match crv {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        _ => unreachable!("curve {crv}"),
    }
}

impl DpopKey {
    pub(crate) fn p256() -> DpopKey {
        ec(Nid::X9_62_PRIME256V1, "P-256")
    }

    pub(crate) fn p384() -> DpopKey {
        ec(Nid::SECP384R1, "P-384")
    }

    pub(crate) fn p521() -> DpopKey {
        ec(Nid::SECP521R1, "P-521")
    }

    pub(crate) fn ed25519() -> DpopKey {
        DpopKey {
            material: Material::Ed25519(PKey::generate_ed25519().unwrap()),
        }
    }

    /// An ordinary two-prime RSA key (keep `bits` small: generation time grows fast).
    pub(crate) fn rsa(bits: u32) -> DpopKey {
        DpopKey {
            material: Material::Rsa(PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()),
        }
    }

    /// An RSA key of exactly `bits` bits (a multiple of 2048) made of 2048-bit primes: a
    /// 16384-bit key in a few seconds instead of minutes. Signs RS256 only.
    pub(crate) fn rsa_multi_prime(bits: i32) -> DpopKey {
        assert!(bits % 2048 == 0 && bits >= 4096, "{bits}");
        let mut ctx = BigNumContext::new().unwrap();
        let e = BigNum::from_u32(65537).unwrap();
        'attempt: loop {
            let mut primes: Vec<BigNum> = Vec::new();
            let mut n = BigNum::from_u32(1).unwrap();
            for _ in 0..bits / 2048 - 1 {
                let mut p = BigNum::new().unwrap();
                p.generate_prime(2048, false, None, None).unwrap();
                let mut m = BigNum::new().unwrap();
                m.checked_mul(&n, &p, &mut ctx).unwrap();
                n = m;
                primes.push(p);
            }
            // the last prime sized so that the product has exactly `bits` bits
            let mut last_bits = bits - n.num_bits();
            let mut tries = 0;
            let (p, full) = loop {
                tries += 1;
                if tries > 40 {
                    continue 'attempt;
                }
                let mut p = BigNum::new().unwrap();
                p.generate_prime(last_bits, false, None, None).unwrap();
                let mut m = BigNum::new().unwrap();
                m.checked_mul(&n, &p, &mut ctx).unwrap();
                match m.num_bits().cmp(&bits) {
                    std::cmp::Ordering::Equal => break (p, m),
                    std::cmp::Ordering::Less => last_bits += 1,
                    std::cmp::Ordering::Greater => last_bits -= 1,
                }
            };
            primes.push(p);
            if primes
                .iter()
                .enumerate()
                .any(|(i, p)| primes[..i].iter().any(|q| q == p))
            {
                continue;
            }
            let mut phi = BigNum::from_u32(1).unwrap();
            for p in &primes {
                let mut pm1 = BigNum::new().unwrap();
                pm1.checked_sub(p, &BigNum::from_u32(1).unwrap()).unwrap();
                let mut m = BigNum::new().unwrap();
                m.checked_mul(&phi, &pm1, &mut ctx).unwrap();
                phi = m;
            }
            let mut d = BigNum::new().unwrap();
            if d.mod_inverse(&e, &phi, &mut ctx).is_err() {
                continue;
            }
            let key = DpopKey {
                material: Material::MultiPrime {
                    n: full,
                    e,
                    d,
                    primes,
                },
            };
            // self-check: the signature verifies with (n, e)
            let sig = key.sign("RS256", b"self-check");
            assert!(
                verify_rs256_raw(&key, b"self-check", &sig),
                "multi-prime RSA self-check failed"
            );
            return key;
        }
    }

    /// The algorithm this key signs with by default.
    pub(crate) fn alg(&self) -> &'static str {
        match &self.material {
            Material::Ec { crv: "P-256", .. } => "ES256",
            Material::Ec { crv: "P-384", .. } => "ES384",
            Material::Ec { .. } => "ES512",
            Material::Rsa(_) | Material::MultiPrime { .. } => "RS256",
            Material::Ed25519(_) => "EdDSA",
        }
    }

    /// Size of an RSA modulus in bits (None for other key types).
    pub(crate) fn rsa_bits(&self) -> Option<i32> {
        match &self.material {
            Material::Rsa(k) => Some(k.rsa().unwrap().n().num_bits()),
            Material::MultiPrime { n, .. } => Some(n.num_bits()),
            _ => None,
        }
    }

    /// The public JWK (only the members RFC 7638 hashes, in lexicographic order).
    pub(crate) fn public_jwk(&self) -> Value {
        match &self.material {
            Material::Ec { key, crv } => {
                let ec = key.ec_key().unwrap();
                let mut ctx = BigNumContext::new().unwrap();
                let mut x = BigNum::new().unwrap();
                let mut y = BigNum::new().unwrap();
                ec.public_key()
                    .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                    .unwrap();
                let l = ec_len(crv) as i32;
                json!({
                    "crv": crv, "kty": "EC",
                    "x": b64url(&x.to_vec_padded(l).unwrap()),
                    "y": b64url(&y.to_vec_padded(l).unwrap()),
                })
            }
            Material::Rsa(key) => {
                let r = key.rsa().unwrap();
                json!({ "e": b64url(&r.e().to_vec()), "kty": "RSA", "n": b64url(&r.n().to_vec()) })
            }
            Material::MultiPrime { n, e, .. } => {
                json!({ "e": b64url(&e.to_vec()), "kty": "RSA", "n": b64url(&n.to_vec()) })
            }
            Material::Ed25519(key) => {
                json!({ "crv": "Ed25519", "kty": "OKP", "x": b64url(&key.raw_public_key().unwrap()) })
            }
        }
    }

    /// The JWK with its private member(s) too (`d`, and for two-prime RSA the CRT members).
    pub(crate) fn private_jwk(&self) -> Value {
        let mut j = self.public_jwk();
        let m = j.as_object_mut().unwrap();
        match &self.material {
            Material::Ec { key, crv } => {
                let ec = key.ec_key().unwrap();
                let l = ec_len(crv) as i32;
                m.insert(
                    "d".into(),
                    json!(b64url(&ec.private_key().to_vec_padded(l).unwrap())),
                );
            }
            Material::Rsa(key) => {
                let r = key.rsa().unwrap();
                let b = |v: Option<&BigNumRef>| json!(b64url(&v.unwrap().to_vec()));
                m.insert("d".into(), json!(b64url(&r.d().to_vec())));
                m.insert("p".into(), b(r.p()));
                m.insert("q".into(), b(r.q()));
                m.insert("dp".into(), b(r.dmp1()));
                m.insert("dq".into(), b(r.dmq1()));
                m.insert("qi".into(), b(r.iqmp()));
            }
            Material::MultiPrime { d, .. } => {
                m.insert("d".into(), json!(b64url(&d.to_vec())));
            }
            Material::Ed25519(key) => {
                m.insert("d".into(), json!(b64url(&key.raw_private_key().unwrap())));
            }
        }
        j
    }

    /// RFC 7638 JWK SHA-256 thumbprint (base64url): what `cnf.jkt` holds.
    pub(crate) fn thumbprint(&self) -> String {
        jwk_thumbprint(&self.public_jwk())
    }

    /// A JWS signature over `input` with `alg` (RS/PS with RSA keys, ES with the curve's own
    /// size, EdDSA with Ed25519), in JWS form (raw r||s for ECDSA).
    pub(crate) fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let md = |a: &str| match &a[2..] {
            "256" => MessageDigest::sha256(),
            "384" => MessageDigest::sha384(),
            "512" => MessageDigest::sha512(),
            other => panic!("no digest for {other}"),
        };
        match (&self.material, &alg[..2]) {
            (Material::Ec { key, crv }, "ES") => {
                let mut s = Signer::new(md(alg), key).unwrap();
                s.update(input).unwrap();
                let der = s.sign_to_vec().unwrap();
                let es = EcdsaSig::from_der(&der).unwrap();
                let l = ec_len(crv) as i32;
                let mut v = es.r().to_vec_padded(l).unwrap();
                v.extend(es.s().to_vec_padded(l).unwrap());
                v
            }
            (Material::Rsa(key), "RS" | "PS") => {
                let mut s = Signer::new(md(alg), key).unwrap();
                if alg.starts_with("PS") {
                    s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                    s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
                    s.set_rsa_mgf1_md(md(alg)).unwrap();
                }
                s.update(input).unwrap();
                s.sign_to_vec().unwrap()
            }
            (Material::MultiPrime { n, d, primes, .. }, "RS") => {
                assert_eq!(alg, "RS256", "the multi-prime key signs RS256 only");
                rs256_multi_prime(n, d, primes, input)
            }
            (Material::Ed25519(key), "Ed") => {
                let mut s = Signer::new_without_digest(key).unwrap();
                s.sign_oneshot_to_vec(input).unwrap()
            }
            _ => panic!("this key cannot sign {alg}"),
        }
    }
}

/// RFC 7638 thumbprint of a public JWK: SHA-256 over the required members in lexicographic
/// order, no whitespace, base64url.
pub(crate) fn jwk_thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("oct") => &["k", "kty"],
        other => panic!("kty {other:?}"),
    };
    let canonical = members
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                Value::from(*m),
                serde_json::to_string(&jwk[*m]).unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    b64url(&openssl::sha::sha256(format!("{{{canonical}}}").as_bytes()))
}

/// Verify a JWS signature with a public JWK through OpenSSL (a check of the harness's own keys,
/// JWKs and signatures, independent of the module).
pub(crate) fn verify_with_jwk(jwk: &Value, alg: &str, input: &[u8], sig: &[u8]) -> bool {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openssl::sign::Verifier;
    let bn = |m: &str| {
        let raw = URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap();
        BigNum::from_slice(&raw).unwrap()
    };
    let md = match alg.get(2..) {
        Some("256") => MessageDigest::sha256(),
        Some("384") => MessageDigest::sha384(),
        Some("512") => MessageDigest::sha512(),
        _ => MessageDigest::null(),
    };
    match jwk["kty"].as_str() {
        Some("EC") => {
            let nid = match jwk["crv"].as_str() {
                Some("P-256") => Nid::X9_62_PRIME256V1,
                Some("P-384") => Nid::SECP384R1,
                _ => Nid::SECP521R1,
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            let ec = EcKey::from_public_key_affine_coordinates(&group, &bn("x"), &bn("y")).unwrap();
            let key = PKey::from_ec_key(ec).unwrap();
            let half = sig.len() / 2;
            let es = EcdsaSig::from_private_components(
                BigNum::from_slice(&sig[..half]).unwrap(),
                BigNum::from_slice(&sig[half..]).unwrap(),
            )
            .unwrap();
            let mut v = Verifier::new(md, &key).unwrap();
            v.update(input).unwrap();
            v.verify(&es.to_der().unwrap()).unwrap_or(false)
        }
        Some("RSA") => {
            let rsa = Rsa::from_public_components(bn("n"), bn("e")).unwrap();
            let key = PKey::from_rsa(rsa).unwrap();
            let mut v = Verifier::new(md, &key).unwrap();
            if alg.starts_with("PS") {
                v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
                v.set_rsa_mgf1_md(md).unwrap();
            }
            v.update(input).unwrap();
            v.verify(sig).unwrap_or(false)
        }
        Some("OKP") => {
            let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
            let key = PKey::public_key_from_raw_bytes(&x, openssl::pkey::Id::ED25519).unwrap();
            let mut v = Verifier::new_without_digest(&key).unwrap();
            v.verify_oneshot(sig, input).unwrap_or(false)
        }
        _ => false,
    }
}

/// EMSA-PKCS1-v1_5 (RFC 8017 section 9.2) of SHA-256(`input`) for a modulus of `k` bytes.
fn emsa_pkcs1_sha256(input: &[u8], k: usize) -> Vec<u8> {
    const PREFIX: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let h = openssl::sha::sha256(input);
    let t_len = PREFIX.len() + h.len();
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, k - t_len - 3));
    em.push(0x00);
    em.extend(PREFIX);
    em.extend(h);
    em
}

fn rs256_multi_prime(n: &BigNum, d: &BigNum, primes: &[BigNum], input: &[u8]) -> Vec<u8> {
    let mut ctx = BigNumContext::new().unwrap();
    let k = n.num_bytes() as usize;
    let m = BigNum::from_slice(&emsa_pkcs1_sha256(input, k)).unwrap();
    let one = BigNum::from_u32(1).unwrap();
    // CRT over every prime (Garner): x = m^d mod n
    let mut x = BigNum::from_u32(0).unwrap();
    let mut modulus = BigNum::from_u32(1).unwrap();
    for p in primes {
        let mut pm1 = BigNum::new().unwrap();
        pm1.checked_sub(p, &one).unwrap();
        let mut dp = BigNum::new().unwrap();
        dp.nnmod(d, &pm1, &mut ctx).unwrap();
        let mut mp = BigNum::new().unwrap();
        mp.nnmod(&m, p, &mut ctx).unwrap();
        let mut si = BigNum::new().unwrap();
        si.mod_exp(&mp, &dp, p, &mut ctx).unwrap();
        // x' = x + modulus * ((si - x) * modulus^-1 mod p)
        let mut diff = BigNum::new().unwrap();
        diff.mod_sub(&si, &x, p, &mut ctx).unwrap();
        let mut inv = BigNum::new().unwrap();
        inv.mod_inverse(&modulus, p, &mut ctx).unwrap();
        let mut t = BigNum::new().unwrap();
        t.mod_mul(&diff, &inv, p, &mut ctx).unwrap();
        let mut step = BigNum::new().unwrap();
        step.checked_mul(&modulus, &t, &mut ctx).unwrap();
        let mut nx = BigNum::new().unwrap();
        nx.checked_add(&x, &step).unwrap();
        x = nx;
        let mut nm = BigNum::new().unwrap();
        nm.checked_mul(&modulus, p, &mut ctx).unwrap();
        modulus = nm;
    }
    x.to_vec_padded(k as i32).unwrap()
}

fn verify_rs256_raw(key: &DpopKey, input: &[u8], sig: &[u8]) -> bool {
    let Material::MultiPrime { n, e, .. } = &key.material else {
        return false;
    };
    let mut ctx = BigNumContext::new().unwrap();
    let s = BigNum::from_slice(sig).unwrap();
    let mut m = BigNum::new().unwrap();
    m.mod_exp(&s, e, n, &mut ctx).unwrap();
    m.to_vec_padded(n.num_bytes()).unwrap() == emsa_pkcs1_sha256(input, n.num_bytes() as usize)
}

// ---------------------------------------------------------------------------------------------
// Proofs
// ---------------------------------------------------------------------------------------------

/// A DPoP proof under construction: header `{typ, alg, jwk}`, claims `{jti, htm, htu, iat}`;
/// every member can be replaced or removed, and the result signed with any key and algorithm.
#[derive(Clone, Debug)]
pub(crate) struct Proof {
    pub(crate) header: Value,
    pub(crate) claims: Value,
}

impl Proof {
    /// A valid proof by `key` for `htm` `htu`, `iat` now, a fresh `jti`, no `ath`.
    pub(crate) fn new(key: &DpopKey, htm: &str, htu: &str) -> Proof {
        Proof {
            header: json!({ "typ": "dpop+jwt", "alg": key.alg(), "jwk": key.public_jwk() }),
            claims: json!({ "jti": new_jti(), "htm": htm, "htu": htu, "iat": super::now() }),
        }
    }

    /// `ath` for `token`.
    pub(crate) fn ath(self, token: &str) -> Proof {
        self.claim("ath", json!(ath_of(token)))
    }

    pub(crate) fn nonce(self, nonce: &str) -> Proof {
        self.claim("nonce", json!(nonce))
    }

    /// Set (or replace) a claim.
    pub(crate) fn claim(mut self, name: &str, v: Value) -> Proof {
        self.claims.as_object_mut().unwrap().insert(name.into(), v);
        self
    }

    pub(crate) fn without_claim(mut self, name: &str) -> Proof {
        self.claims.as_object_mut().unwrap().shift_remove(name);
        self
    }

    /// Set (or replace) a header member.
    pub(crate) fn header(mut self, name: &str, v: Value) -> Proof {
        self.header.as_object_mut().unwrap().insert(name.into(), v);
        self
    }

    pub(crate) fn without_header(mut self, name: &str) -> Proof {
        self.header.as_object_mut().unwrap().shift_remove(name);
        self
    }

    pub(crate) fn jti(&self) -> String {
        self.claims["jti"].as_str().unwrap_or_default().to_string()
    }

    /// `header.claims` base64url, the JWS signing input.
    pub(crate) fn signing_input(&self) -> String {
        format!(
            "{}.{}",
            b64url(self.header.to_string().as_bytes()),
            b64url(self.claims.to_string().as_bytes())
        )
    }

    /// Compact JWS signed by `key` with the algorithm the header names.
    pub(crate) fn sign(&self, key: &DpopKey) -> String {
        let alg = self.header["alg"].as_str().unwrap_or("ES256").to_string();
        self.sign_as(key, &alg)
    }

    /// Compact JWS signed by `key` with `alg`, whatever the header says.
    pub(crate) fn sign_as(&self, key: &DpopKey, alg: &str) -> String {
        let input = self.signing_input();
        let sig = key.sign(alg, input.as_bytes());
        format!("{input}.{}", b64url(&sig))
    }

    /// Compact JWS with an HMAC-SHA256 signature under `secret` (for `alg: HS256` proofs).
    pub(crate) fn sign_hs256(&self, secret: &[u8]) -> String {
        let input = self.signing_input();
        let k = PKey::hmac(secret).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
        s.update(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(&s.sign_to_vec().unwrap()))
    }

    /// `header.claims.` (no signature, for `alg: none`).
    pub(crate) fn unsigned(&self) -> String {
        format!("{}.", self.signing_input())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTPS client
// ---------------------------------------------------------------------------------------------

/// One request exactly as written: method, request target, header lines in order (repeated
/// names and any letter case kept). `Host: 127.0.0.1:<port>` is added unless a `Host` header is
/// given.
#[derive(Clone, Debug)]
pub(crate) struct RawReq {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Bytes sent right after `target`, as they are (a client may send any byte in a URI).
    pub(crate) target_tail: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

impl RawReq {
    pub(crate) fn new(method: &str, target: &str) -> RawReq {
        RawReq {
            method: method.into(),
            target: target.into(),
            target_tail: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// `bytes` appended to the target as sent, e.g. a byte that is not UTF-8.
    pub(crate) fn target_tail(mut self, bytes: &[u8]) -> RawReq {
        self.target_tail = bytes.to_vec();
        self
    }

    pub(crate) fn get(target: &str) -> RawReq {
        RawReq::new("GET", target)
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> RawReq {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `Authorization: DPoP <token>`.
    pub(crate) fn dpop_token(self, token: &str) -> RawReq {
        self.header("Authorization", &format!("DPoP {token}"))
    }

    /// `Authorization: Bearer <token>`.
    pub(crate) fn bearer(self, token: &str) -> RawReq {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// `DPoP: <proof>`.
    pub(crate) fn proof(self, proof: &str) -> RawReq {
        self.header("DPoP", proof)
    }

    /// The path of the request target (no query).
    pub(crate) fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    fn bytes(&self, port: u16, close: bool) -> Vec<u8> {
        let mut out = format!("{} {}", self.method, self.target).into_bytes();
        out.extend_from_slice(&self.target_tail);
        let mut s = " HTTP/1.1\r\n".to_string();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            s.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        if close {
            s.push_str("Connection: close\r\n");
        }
        s.push_str("\r\n");
        out.extend_from_slice(s.as_bytes());
        out
    }
}

fn connector() -> &'static SslConnector {
    static C: OnceLock<SslConnector> = OnceLock::new();
    C.get_or_init(|| {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_verify(SslVerifyMode::NONE); // the server is ours; the harness's curl checks trust
        b.build()
    })
}

/// A TLS connection to an httpd's TLS virtual host, for one or several requests (keep-alive).
pub(crate) struct Conn {
    port: u16,
    stream: SslStream<TcpStream>,
    buf: Vec<u8>,
    answered: usize,
}

impl Conn {
    pub(crate) fn open(h: &Httpd) -> Result<Conn, String> {
        Conn::open_port(h.https_port)
    }

    pub(crate) fn open_port(port: u16) -> Result<Conn, String> {
        let tcp = TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(5),
        )
        .map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let cfg = connector()
            .configure()
            .unwrap()
            .use_server_name_indication(false)
            .verify_hostname(false);
        let stream = cfg
            .connect("127.0.0.1", tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Conn {
            port,
            stream,
            buf: Vec::new(),
            answered: 0,
        })
    }

    /// Responses received on this connection so far.
    pub(crate) fn answered(&self) -> usize {
        self.answered
    }

    /// True when `err` (from [`Conn::send`]) means the server closed this idle keep-alive
    /// connection before reading the request: sending it again on a new connection is safe.
    pub(crate) fn closed_before_answering(&self, err: &str) -> bool {
        self.answered > 0
            && self.buf.is_empty()
            && (err.starts_with("connection closed after 0 byte")
                || err.starts_with("write:")
                || err.starts_with("read:"))
    }

    /// Send `req` on this connection and read the response (keep-alive).
    pub(crate) fn send(&mut self, req: &RawReq) -> Result<Response, String> {
        self.exchange(req, false)
    }

    fn exchange(&mut self, req: &RawReq, close: bool) -> Result<Response, String> {
        self.stream
            .write_all(&req.bytes(self.port, close))
            .map_err(|e| format!("write: {e}"))?;
        self.stream.flush().map_err(|e| format!("flush: {e}"))?;
        loop {
            let head_end = self.fill_until(|b| find(b, b"\r\n\r\n").map(|p| p + 4))?;
            let head: Vec<u8> = self.buf.drain(..head_end).collect();
            let head = String::from_utf8_lossy(&head).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.to_string(), v.trim().to_string()))
                .collect();
            if (100..200).contains(&status) {
                continue;
            }
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let body = if req.method == "HEAD" || status == 204 || status == 304 {
                Vec::new()
            } else if get("Transfer-Encoding").is_some_and(|t| t.contains("chunked")) {
                self.read_chunked()?
            } else if let Some(len) = get("Content-Length") {
                let len: usize = len.parse().map_err(|_| format!("Content-Length {len}"))?;
                self.fill_until(|b| (b.len() >= len).then_some(len))?;
                self.buf.drain(..len).collect()
            } else {
                self.read_to_end()?
            };
            self.answered += 1;
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
    }

    fn read_more(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            // a peer that closes without close_notify ends the stream too
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn fill_until<T>(&mut self, done: impl Fn(&[u8]) -> Option<T>) -> Result<T, String> {
        loop {
            if let Some(v) = done(&self.buf) {
                return Ok(v);
            }
            if self.read_more()? == 0 {
                return Err(format!(
                    "connection closed after {} byte(s): {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = self.fill_until(|b| find(b, b"\r\n"))?;
            let line: Vec<u8> = self.buf.drain(..line_end + 2).collect();
            let size_text = String::from_utf8_lossy(&line[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                // trailers, then the empty line
                let end = self.fill_until(|b| {
                    if b.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        find(b, b"\r\n\r\n").map(|p| p + 4)
                    }
                })?;
                self.buf.drain(..end);
                return Ok(body);
            }
            self.fill_until(|b| (b.len() >= size + 2).then_some(()))?;
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    fn read_to_end(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match self.read_more() {
                Ok(0) => break,
                Ok(_) => {}
                // a TLS stream cut without close_notify after data: the end
                Err(_) if !self.buf.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `req` on a new connection (`Connection: close`); panics when no response comes.
pub(crate) fn send_raw(h: &Httpd, req: &RawReq) -> Response {
    try_send_raw(h.https_port, req)
        .unwrap_or_else(|e| panic!("{} {} failed: {e}", req.method, req.target))
}

/// `req` on a new connection to 127.0.0.1:`port` (`Connection: close`).
pub(crate) fn try_send_raw(port: u16, req: &RawReq) -> Result<Response, String> {
    Conn::open_port(port)?.exchange(req, true)
}

// ---------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------

/// One `WWW-Authenticate` challenge: the scheme and its auth-params in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// Parse `Scheme name="value", name=token, ...` (one challenge per header value).
    pub(crate) fn parse(v: &str) -> Result<Challenge, String> {
        let v = v.trim();
        let (scheme, mut rest) = match v.find(' ') {
            Some(i) => (&v[..i], v[i..].trim_start()),
            None => (v, ""),
        };
        let mut params = Vec::new();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("no `=` in {rest:?} of {v:?}"))?;
            let name = rest[..eq].trim().to_string();
            let after = rest[eq + 1..].trim_start();
            let (value, tail) = if let Some(q) = after.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => out.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated quoted string in {v:?}"))?;
                (out, &q[end..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.push((name, value));
            let tail = tail.trim_start();
            rest = match tail.strip_prefix(',') {
                Some(t) => t.trim_start(),
                None if tail.is_empty() => "",
                None => return Err(format!("junk {tail:?} after a parameter in {v:?}")),
            };
        }
        Ok(Challenge {
            scheme: scheme.to_string(),
            params,
        })
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// What a DPoP refusal must look like.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DpopChallenge<'a> {
    /// The `algs` value.
    pub(crate) algs: &'a str,
    /// `realm` (then the first parameter), or none.
    pub(crate) realm: Option<&'a str>,
    /// Acceptable `error` values; empty: no `error` (and no `error_description`).
    pub(crate) errors: &'a [&'a str],
}

/// Every challenge of `r` (its `WWW-Authenticate` values, parsed).
pub(crate) fn challenges(r: &Response) -> Result<Vec<Challenge>, String> {
    r.header_all("WWW-Authenticate")
        .into_iter()
        .map(Challenge::parse)
        .collect()
}

/// Problems of `c` as the DPoP challenge `want` (empty: it is one).
pub(crate) fn dpop_challenge_problems(c: &Challenge, want: &DpopChallenge<'_>) -> Vec<String> {
    let mut p = Vec::new();
    if c.scheme != "DPoP" {
        p.push(format!("scheme {:?}, expected \"DPoP\"", c.scheme));
    }
    let names = c.names();
    if let Some(realm) = want.realm {
        if names.first() != Some(&"realm") || c.param("realm") != Some(realm) {
            p.push(format!(
                "expected realm=\"{realm}\" first, params {:?}",
                c.params
            ));
        }
    } else if c.param("realm").is_some() {
        p.push(format!("unexpected realm in {:?}", c.params));
    }
    if c.param("algs") != Some(want.algs) {
        p.push(format!(
            "algs {:?}, expected {:?}",
            c.param("algs"),
            want.algs
        ));
    }
    match (c.param("error"), want.errors.is_empty()) {
        (None, true) => {
            if c.param("error_description").is_some() {
                p.push("error_description without error".into());
            }
        }
        (Some(e), true) => p.push(format!("error {e:?}, expected none")),
        (None, false) => p.push(format!("no error, expected one of {:?}", want.errors)),
        (Some(e), false) => {
            if !want.errors.contains(&e) {
                p.push(format!("error {e:?}, expected one of {:?}", want.errors));
            }
            if c.param("error_description").is_none_or(str::is_empty) {
                p.push("error without error_description".into());
            }
        }
    }
    let mut seen = names.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != names.len() {
        p.push(format!("repeated parameter in {names:?}"));
    }
    p
}

/// Problems of `r` as a 401 with exactly one challenge, the DPoP one `want` (empty: it is).
pub(crate) fn dpop_refusal_problems(r: &Response, want: &DpopChallenge<'_>) -> Vec<String> {
    if r.status != 401 {
        return vec![format!(
            "status {}, expected 401 (WWW-Authenticate {:?})",
            r.status,
            r.header_all("WWW-Authenticate")
        )];
    }
    match challenges(r) {
        Err(e) => vec![format!("unparsable WWW-Authenticate: {e}")],
        Ok(cs) if cs.len() != 1 => vec![format!(
            "{} WWW-Authenticate headers, expected one: {:?}",
            cs.len(),
            r.header_all("WWW-Authenticate")
        )],
        Ok(cs) => dpop_challenge_problems(&cs[0], want)
            .into_iter()
            .map(|p| {
                format!(
                    "{p} (WWW-Authenticate {:?})",
                    r.header_all("WWW-Authenticate")
                )
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP-bound tokens from the real AS
// ---------------------------------------------------------------------------------------------

/// The token endpoint's JSON for `dpop-client` (client_credentials, `resource` a path under
/// [`RS`]), the token bound to `key`: the request carries a proof by `key` for `POST <AS>/token`.
/// Panics unless 200 with a `DPoP` token.
pub(crate) fn as_dpop_token_response(
    a: &RealAs,
    key: &DpopKey,
    resource: &str,
    scope: &str,
) -> Value {
    let token_url = a.url("/token");
    let proof = Proof::new(key, "POST", &token_url).sign(key);
    let mut c = Command::new(std::env::var("CURL_BIN").unwrap_or_else(|_| "curl".into()));
    c.arg("-q")
        .args(["-sS", "--max-time", "15", "--noproxy", "*"])
        .arg("--cacert")
        .arg(&a.pki.ca_cert)
        .args(["-w", "\n%{http_code}", "-u", "dpop-client:dpop-secret"])
        .arg("-H")
        .arg(format!("DPoP: {proof}"))
        .args(["--data-urlencode", "grant_type=client_credentials"])
        .arg("--data-urlencode")
        .arg(format!("resource={RS}{resource}"));
    if !scope.is_empty() {
        c.arg("--data-urlencode").arg(format!("scope={scope}"));
    }
    c.arg(&token_url);
    let (_, out, err) = run_limited(&mut c, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("DPoP token request: {e}"));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if code.trim() != "200" || !v["access_token"].is_string() || v["token_type"] != "DPoP" {
        panic!(
            "DPoP token request (dpop-client, {resource}) -> {code} {body} {err}\n--- AS log ---\n{}",
            a.log_tail(20)
        );
    }
    v
}

/// An access token of `dpop-client` bound to `key` (see [`as_dpop_token_response`]).
pub(crate) fn as_dpop_token(a: &RealAs, key: &DpopKey, resource: &str, scope: &str) -> String {
    as_dpop_token_response(a, key, resource, scope)["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}
