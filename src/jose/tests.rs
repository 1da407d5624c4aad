//! End-to-end tests of parsing plus verification, one per rejection reason.
//! Tokens are minted here with OpenSSL from keys generated at test time;
//! only the RFC known-answer vectors are hard-coded.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use openssl::x509::{X509, X509NameBuilder};

use super::jws::MAX_TOKEN_LEN;
use super::*;
use crate::jose::alg::Alg;

// ---------- key fixtures (generated once per test run) ----------

fn rsa_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey"))
}

fn attacker_rsa_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey"))
}

fn ec_key(nid: Nid) -> &'static PKey<Private> {
    static P256: OnceLock<PKey<Private>> = OnceLock::new();
    static P384: OnceLock<PKey<Private>> = OnceLock::new();
    static P521: OnceLock<PKey<Private>> = OnceLock::new();
    let cell = match nid {
        Nid::X9_62_PRIME256V1 => &P256,
        Nid::SECP384R1 => &P384,
        _ => &P521,
    };
    cell.get_or_init(|| {
        let group = EcGroup::from_curve_name(nid).expect("group");
        PKey::from_ec_key(EcKey::generate(&group).expect("ec")).expect("pkey")
    })
}

fn p256() -> &'static PKey<Private> {
    ec_key(Nid::X9_62_PRIME256V1)
}

fn ed_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| PKey::generate_ed25519().expect("ed25519"))
}

fn crv_name(nid: Nid) -> &'static str {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256",
        Nid::SECP384R1 => "P-384",
        _ => "P-521",
    }
}

fn coord_len(nid: Nid) -> i32 {
    match nid {
        Nid::X9_62_PRIME256V1 => 32,
        Nid::SECP384R1 => 48,
        _ => 66,
    }
}

/// The public JWK members (without braces) of a generated key.
fn public_jwk_members(pkey: &PKey<Private>) -> String {
    match pkey.id() {
        Id::RSA => {
            let rsa = pkey.rsa().expect("rsa");
            format!(
                r#""kty":"RSA","n":"{}","e":"{}""#,
                b64::encode(&rsa.n().to_vec()),
                b64::encode(&rsa.e().to_vec())
            )
        }
        Id::EC => {
            let ec = pkey.ec_key().expect("ec");
            let nid = ec.group().curve_name().expect("named");
            let (x, y) = affine(&ec, coord_len(nid));
            format!(
                r#""kty":"EC","crv":"{}","x":"{}","y":"{}""#,
                crv_name(nid),
                b64::encode(&x),
                b64::encode(&y)
            )
        }
        _ => format!(
            r#""kty":"OKP","crv":"Ed25519","x":"{}""#,
            b64::encode(&pkey.raw_public_key().expect("raw"))
        ),
    }
}

fn affine(ec: &EcKey<Private>, len: i32) -> (Vec<u8>, Vec<u8>) {
    let mut x = BigNum::new().expect("bn");
    let mut y = BigNum::new().expect("bn");
    let mut ctx = BigNumContext::new().expect("ctx");
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
        .expect("xy");
    (
        x.to_vec_padded(len).expect("pad"),
        y.to_vec_padded(len).expect("pad"),
    )
}

fn public_jwk(pkey: &PKey<Private>) -> String {
    format!("{{{}}}", public_jwk_members(pkey))
}

fn jwk_key(pkey: &PKey<Private>) -> Key {
    Key::from_jwk_json(&public_jwk(pkey)).expect("jwk import")
}

fn public_pem(pkey: &PKey<Private>) -> String {
    String::from_utf8(pkey.public_key_to_pem().expect("pem")).expect("utf8")
}

// ---------- signing helpers ----------

fn sign_hmac(md: MessageDigest, secret: &[u8], data: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(secret).expect("hmac key");
    let mut signer = Signer::new(md, &key).expect("signer");
    signer.sign_oneshot_to_vec(data).expect("hmac")
}

fn sign_rsa(
    md: MessageDigest,
    key: &PKey<Private>,
    pss: Option<RsaPssSaltlen>,
    data: &[u8],
) -> Vec<u8> {
    let mut signer = Signer::new(md, key).expect("signer");
    if let Some(salt) = pss {
        signer.set_rsa_padding(Padding::PKCS1_PSS).expect("pss");
        signer.set_rsa_mgf1_md(md).expect("mgf1");
        signer.set_rsa_pss_saltlen(salt).expect("salt");
    }
    signer.sign_oneshot_to_vec(data).expect("sign")
}

fn sign_ec_der(md: MessageDigest, key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let mut signer = Signer::new(md, key).expect("signer");
    signer.sign_oneshot_to_vec(data).expect("sign")
}

/// JOSE form: fixed-length R||S.
fn sign_ec(md: MessageDigest, key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let nid = key
        .ec_key()
        .expect("ec")
        .group()
        .curve_name()
        .expect("named");
    let sig = EcdsaSig::from_der(&sign_ec_der(md, key, data)).expect("der");
    let mut out = sig.r().to_vec_padded(coord_len(nid)).expect("r");
    out.extend(sig.s().to_vec_padded(coord_len(nid)).expect("s"));
    out
}

fn sign_ed(key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let mut signer = Signer::new_without_digest(key).expect("signer");
    signer.sign_oneshot_to_vec(data).expect("sign")
}

const CLAIMS: &str = r#"{"iss":"https://as.example","sub":"alice","aud":"rs"}"#;

/// Build a compact JWS from a header and payload JSON text.
fn mint(header: &str, payload: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

fn verify(key: &Key, token: &str) -> Result<(), JoseError> {
    key.verify(&Jws::parse(token)?)
}

fn header(alg: &str) -> String {
    format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#)
}

/// Replace the last character of a segment with the next alphabet character,
/// which sets unused low bits when the segment does not end on a byte boundary.
fn bump_last_char(segment: &str) -> String {
    let mut s = segment.to_owned();
    let last = s.pop().expect("non-empty");
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = ALPHABET.find(last).expect("alphabet");
    s.push(ALPHABET.as_bytes()[(idx + 1) % 64] as char);
    s
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

// ---------- RFC 7515 Appendix A known-answer vectors ----------

const RFC_PAYLOAD: &[u8] =
    b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

#[test]
fn rfc7515_a1_hs256() {
    let key = Key::from_jwk_json(
        r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#,
    )
    .expect("A.1 key");
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let jws = Jws::parse(token).expect("parse");
    assert_eq!(jws.header.alg, Alg::HS256);
    assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
    assert_eq!(jws.payload, RFC_PAYLOAD);
    assert_eq!(key.verify(&jws), Ok(()));
    assert!(json::parse_object(&jws.payload).is_ok());
    // The MAC is deterministic: minting the same input reproduces it.
    let k = b64::decode_strict(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    )
    .expect("k");
    assert_eq!(
        sign_hmac(MessageDigest::sha256(), &k, jws.signing_input.as_bytes()),
        jws.signature
    );
}

const RFC_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const RFC_A2_D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
const RFC_A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

#[test]
fn rfc7515_a2_rs256() {
    // The appendix JWK includes the private exponent: it must be ignored but flagged.
    let jwk = format!(r#"{{"kty":"RSA","n":"{RFC_A2_N}","e":"AQAB","d":"{RFC_A2_D}"}}"#);
    let key = Key::from_jwk_json(&jwk).expect("A.2 key");
    assert!(key.has_private_material());
    assert_eq!(key.describe(), "RSA 2048-bit");
    let jws = Jws::parse(RFC_A2_TOKEN).expect("parse");
    assert_eq!(jws.payload, RFC_PAYLOAD);
    assert_eq!(key.verify(&jws), Ok(()));
    // PKCS#1 v1.5 is deterministic: the appendix private key reproduces the signature.
    let bn = |s: &str| BigNum::from_slice(&b64::decode_strict(s).expect("b64")).expect("bn");
    let private = Rsa::from_private_components(
        bn(RFC_A2_N),
        bn("AQAB"),
        bn(RFC_A2_D),
        bn(RFC_A2_P),
        bn(RFC_A2_Q),
        bn(RFC_A2_DP),
        bn(RFC_A2_DQ),
        bn(RFC_A2_QI),
    )
    .and_then(PKey::from_rsa)
    .expect("A.2 private key");
    assert_eq!(
        sign_rsa(
            MessageDigest::sha256(),
            &private,
            None,
            jws.signing_input.as_bytes()
        ),
        jws.signature
    );
}

const RFC_A2_P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
const RFC_A2_Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
const RFC_A2_DP: &str = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0";
const RFC_A2_DQ: &str = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU";
const RFC_A2_QI: &str = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U";

#[test]
fn rfc7515_a3_es256_and_a4_es512() {
    let p256 = Key::from_jwk_json(
        r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
    )
    .expect("A.3 key");
    assert!(p256.has_private_material());
    let a3 = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    assert_eq!(verify(&p256, a3), Ok(()));

    let p521 = Key::from_jwk_json(
        r#"{"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}"#,
    )
    .expect("A.4 key");
    let a4 = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
    let jws = Jws::parse(a4).expect("parse");
    assert_eq!(jws.payload, b"Payload");
    assert_eq!(p521.verify(&jws), Ok(()));
}

#[test]
fn rfc7638_thumbprint() {
    let key = Key::from_jwk_json(
        r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
    )
    .expect("RFC 7638 key");
    assert_eq!(key.kid(), Some("2011-04-29"));
    assert_eq!(
        key.jwk_thumbprint().as_deref(),
        Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    // The same key imported from PEM has the same thumbprint; EC and OKP work too.
    for pkey in [rsa_key(), p256(), ec_key(Nid::SECP521R1), ed_key()] {
        let from_pem = Key::from_pem_public_key(&public_pem(pkey)).expect("pem");
        assert_eq!(from_pem.jwk_thumbprint(), jwk_key(pkey).jwk_thumbprint());
    }
}

// ---------- successful verification, every algorithm ----------

#[test]
fn rsa_pkcs1_and_pss_verify() {
    let key = jwk_key(rsa_key());
    for (alg, md) in [
        ("RS256", MessageDigest::sha256()),
        ("RS384", MessageDigest::sha384()),
        ("RS512", MessageDigest::sha512()),
    ] {
        let token = mint(&header(alg), CLAIMS, |d| sign_rsa(md, rsa_key(), None, d));
        assert_eq!(verify(&key, &token), Ok(()), "{alg}");
    }
    for (alg, md) in [
        ("PS256", MessageDigest::sha256()),
        ("PS384", MessageDigest::sha384()),
        ("PS512", MessageDigest::sha512()),
    ] {
        let token = mint(&header(alg), CLAIMS, |d| {
            sign_rsa(md, rsa_key(), Some(RsaPssSaltlen::DIGEST_LENGTH), d)
        });
        assert_eq!(verify(&key, &token), Ok(()), "{alg}");
    }
}

/// Set-up contexts are reused between tokens: each keeps its algorithm's padding and digest, a
/// context that failed is not reused, and several threads can verify with one key at once.
#[test]
fn reused_verification_contexts_keep_algorithms_apart() {
    let key = jwk_key(rsa_key());
    let pkcs1 = |alg: &str, md| mint(&header(alg), CLAIMS, |d| sign_rsa(md, rsa_key(), None, d));
    let pss = |alg: &str, md| {
        mint(&header(alg), CLAIMS, |d| {
            sign_rsa(md, rsa_key(), Some(RsaPssSaltlen::DIGEST_LENGTH), d)
        })
    };
    let rs256 = pkcs1("RS256", MessageDigest::sha256());
    let rs512 = pkcs1("RS512", MessageDigest::sha512());
    let ps256 = pss("PS256", MessageDigest::sha256());
    // Signed as PKCS#1 v1.5 SHA-256 but labelled PS256, and labelled RS512: must fail although
    // contexts for both algorithms are idle.
    let pkcs1_as_pss = mint(&header("PS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    let rs256_as_rs512 = format!(
        "{}.{}",
        b64::encode(header("RS512").as_bytes()),
        segments(&rs256)[1..].join(".")
    );
    for round in 0..3 {
        for good in [&rs256, &ps256, &rs512] {
            assert_eq!(verify(&key, good), Ok(()), "round {round}");
        }
        // Each failure takes an idle context of its algorithm and drops it.
        assert_eq!(
            verify(&key, &pkcs1_as_pss),
            Err(JoseError::SignatureInvalid)
        );
        assert_eq!(
            verify(&key, &rs256_as_rs512),
            Err(JoseError::SignatureInvalid)
        );
        assert_eq!(
            verify(&key, &bump_sig(&rs256)),
            Err(JoseError::SignatureInvalid)
        );
        assert_eq!(key.idle_contexts(), 0, "round {round}");
    }
    for good in [&rs256, &ps256, &rs512, &rs256, &ps256] {
        assert_eq!(verify(&key, good), Ok(()));
    }
    assert_eq!(
        key.idle_contexts(),
        3,
        "one idle context per algorithm used"
    );

    let shared = key.clone();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(verify(&shared, &rs256), Ok(()));
                    assert_eq!(verify(&shared, &ps256), Ok(()));
                }
            });
        }
    });
    // At most one per thread and algorithm: 4 threads x (RS256, PS256) + RS512.
    assert!(
        (3..=9).contains(&key.idle_contexts()),
        "{}",
        key.idle_contexts()
    );
}

/// The same token with one signature byte changed.
fn bump_sig(token: &str) -> String {
    let parts = segments(token);
    let mut sig = b64::decode_strict(&parts[2]).expect("signature");
    sig[7] ^= 1;
    format!("{}.{}.{}", parts[0], parts[1], b64::encode(&sig))
}

#[test]
fn pss_with_other_salt_length_rejected() {
    let key = jwk_key(rsa_key());
    for salt in [
        RsaPssSaltlen::custom(20),
        RsaPssSaltlen::custom(0),
        RsaPssSaltlen::MAXIMUM_LENGTH,
    ] {
        let token = mint(&header("PS256"), CLAIMS, |d| {
            sign_rsa(MessageDigest::sha256(), rsa_key(), Some(salt), d)
        });
        assert_eq!(verify(&key, &token), Err(JoseError::SignatureInvalid));
    }
}

#[test]
fn pkcs1_token_under_pss_alg_rejected() {
    let key = jwk_key(rsa_key());
    let token = mint(&header("PS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    assert_eq!(verify(&key, &token), Err(JoseError::SignatureInvalid));
}

#[test]
fn ecdsa_verify_each_curve() {
    for (nid, alg, md) in [
        (Nid::X9_62_PRIME256V1, "ES256", MessageDigest::sha256()),
        (Nid::SECP384R1, "ES384", MessageDigest::sha384()),
        (Nid::SECP521R1, "ES512", MessageDigest::sha512()),
    ] {
        let pkey = ec_key(nid);
        let key = jwk_key(pkey);
        let token = mint(&header(alg), CLAIMS, |d| sign_ec(md, pkey, d));
        assert_eq!(verify(&key, &token), Ok(()), "{alg}");
    }
}

#[test]
fn eddsa_verify() {
    let key = jwk_key(ed_key());
    assert_eq!(key.describe(), "OKP Ed25519");
    for alg in ["EdDSA", "Ed25519"] {
        let token = mint(&header(alg), CLAIMS, |d| sign_ed(ed_key(), d));
        assert_eq!(verify(&key, &token), Ok(()), "{alg}");
    }
    let bad = mint(&header("EdDSA"), CLAIMS, |d| {
        let mut s = sign_ed(ed_key(), d);
        s[10] ^= 1;
        s
    });
    assert_eq!(verify(&key, &bad), Err(JoseError::SignatureInvalid));
}

#[test]
fn hmac_verify_and_secret_length_per_alg() {
    let s32 = [7u8; 32];
    let s48 = [8u8; 48];
    let s64 = [9u8; 64];
    for (alg, md, secret) in [
        ("HS256", MessageDigest::sha256(), &s32[..]),
        ("HS384", MessageDigest::sha384(), &s48[..]),
        ("HS512", MessageDigest::sha512(), &s64[..]),
    ] {
        let key = Key::from_secret(secret).expect("secret");
        let token = mint(&header(alg), CLAIMS, |d| sign_hmac(md, secret, d));
        assert_eq!(verify(&key, &token), Ok(()), "{alg}");
    }
    let short = Key::from_secret(&s32).expect("secret");
    assert!(!short.accepts(Alg::HS384));
    let token = mint(&header("HS384"), CLAIMS, |d| {
        sign_hmac(MessageDigest::sha384(), &s32, d)
    });
    assert!(matches!(
        verify(&short, &token),
        Err(JoseError::AlgKeyMismatch {
            alg: Alg::HS384,
            ..
        })
    ));
    let token = mint(&header("HS512"), CLAIMS, |d| {
        sign_hmac(MessageDigest::sha512(), &s32, d)
    });
    assert!(matches!(
        verify(&short, &token),
        Err(JoseError::AlgKeyMismatch { .. })
    ));
}

#[test]
fn tampered_payload_and_wrong_key_rejected() {
    let key = jwk_key(rsa_key());
    let token = mint(&header("RS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    let mut parts = segments(&token);
    parts[1] = b64::encode(br#"{"iss":"https://as.example","sub":"admin","aud":"rs"}"#);
    assert_eq!(
        verify(&key, &parts.join(".")),
        Err(JoseError::SignatureInvalid)
    );
    let other = jwk_key(attacker_rsa_key());
    assert_eq!(verify(&other, &token), Err(JoseError::SignatureInvalid));
    let secret_key = Key::from_secret(&[1u8; 32]).expect("secret");
    let hs = mint(&header("HS256"), CLAIMS, |d| {
        sign_hmac(MessageDigest::sha256(), &[2u8; 32], d)
    });
    assert_eq!(verify(&secret_key, &hs), Err(JoseError::SignatureInvalid));
}

#[test]
fn rsa_signature_of_wrong_length_rejected() {
    let key = jwk_key(rsa_key());
    let token = mint(&header("RS256"), CLAIMS, |d| {
        let mut s = sign_rsa(MessageDigest::sha256(), rsa_key(), None, d);
        s.insert(0, 0);
        s
    });
    assert_eq!(verify(&key, &token), Err(JoseError::BadSignatureLength));
    let token = mint(&header("HS256"), CLAIMS, |_| vec![0u8; 31]);
    assert_eq!(
        verify(&Key::from_secret(&[0u8; 32]).expect("k"), &token),
        Err(JoseError::BadSignatureLength)
    );
}

// ---------- algorithm attacks ----------

#[test]
fn alg_none_in_any_spelling_rejected() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let input = format!(
            "{}.{}",
            b64::encode(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
            b64::encode(CLAIMS.as_bytes())
        );
        assert_eq!(
            Jws::parse(&format!("{input}.")).err(),
            Some(JoseError::AlgNone),
            "{alg} empty sig"
        );
        let with_sig = format!(
            "{input}.{}",
            b64::encode(&sign_hmac(MessageDigest::sha256(), b"x", input.as_bytes()))
        );
        assert_eq!(
            Jws::parse(&with_sig).err(),
            Some(JoseError::AlgNone),
            "{alg} with sig"
        );
    }
}

#[test]
fn unknown_missing_and_non_string_alg_rejected() {
    let sig = |_: &[u8]| vec![1u8; 32];
    assert!(matches!(
        Jws::parse(&mint(r#"{"alg":"HS1"}"#, CLAIMS, sig)),
        Err(JoseError::UnknownAlg(_))
    ));
    assert!(matches!(
        Jws::parse(&mint(r#"{"alg":"hs256"}"#, CLAIMS, sig)),
        Err(JoseError::UnknownAlg(_))
    ));
    assert_eq!(
        Jws::parse(&mint(r#"{"typ":"JWT"}"#, CLAIMS, sig)).err(),
        Some(JoseError::MissingAlg)
    );
    assert_eq!(
        Jws::parse(&mint(r#"{"alg":["HS256"]}"#, CLAIMS, sig)).err(),
        Some(JoseError::HeaderMemberType("alg"))
    );
    assert_eq!(
        Jws::parse(&mint(r#"{"alg":null}"#, CLAIMS, sig)).err(),
        Some(JoseError::HeaderMemberType("alg"))
    );
    // A long hostile alg is cut short in the error.
    let long = format!(r#"{{"alg":"{}\r\n"}}"#, "A".repeat(2000));
    let err = Jws::parse(&mint(&long, CLAIMS, sig))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.len() < 120 && !err.contains('\n'), "{err}");
}

#[test]
fn hs256_with_rsa_public_key_bytes_as_secret_rejected() {
    let pkey = rsa_key();
    let pem = pkey.public_key_to_pem().expect("pem");
    let der = pkey.public_key_to_der().expect("der");
    let n = pkey.rsa().expect("rsa").n().to_vec();
    let pkcs1 = pkey
        .rsa()
        .expect("rsa")
        .public_key_to_pem_pkcs1()
        .expect("pkcs1");
    let keys = [
        jwk_key(pkey),
        Key::from_pem_public_key(std::str::from_utf8(&pem).expect("utf8")).expect("pem key"),
    ];
    for secret in [&pem, &der, &n, &pkcs1] {
        let token = mint(&header("HS256"), CLAIMS, |d| {
            sign_hmac(MessageDigest::sha256(), secret, d)
        });
        for key in &keys {
            assert!(!key.accepts(Alg::HS256));
            assert!(matches!(
                verify(key, &token),
                Err(JoseError::AlgKeyMismatch {
                    alg: Alg::HS256,
                    ..
                })
            ));
        }
    }
}

#[test]
fn hs256_with_ec_public_key_bytes_as_secret_rejected() {
    let pkey = p256();
    let key = jwk_key(pkey);
    for secret in [
        pkey.public_key_to_pem().expect("pem"),
        pkey.public_key_to_der().expect("der"),
    ] {
        let token = mint(&header("HS256"), CLAIMS, |d| {
            sign_hmac(MessageDigest::sha256(), &secret, d)
        });
        assert!(matches!(
            verify(&key, &token),
            Err(JoseError::AlgKeyMismatch { .. })
        ));
    }
}

#[test]
fn cross_family_algorithms_rejected() {
    let rsa = jwk_key(rsa_key());
    let ec = jwk_key(p256());
    let ed = jwk_key(ed_key());
    let oct = Key::from_secret(&[3u8; 64]).expect("oct");
    for (key, bad) in [
        (&rsa, [Alg::ES256, Alg::EdDSA, Alg::HS512]),
        (&ec, [Alg::RS256, Alg::PS256, Alg::EdDSA]),
        (&ed, [Alg::ES256, Alg::RS256, Alg::HS256]),
        (&oct, [Alg::RS256, Alg::ES256, Alg::EdDSA]),
    ] {
        for alg in bad {
            assert!(!key.accepts(alg), "{} {alg}", key.describe());
            let r = key.verify_signature(alg, b"x.y", &[0u8; 64]);
            assert!(
                matches!(r, Err(JoseError::AlgKeyMismatch { .. })),
                "{} {alg}",
                key.describe()
            );
        }
    }
}

#[test]
fn es256_against_p384_key_rejected() {
    let key = jwk_key(ec_key(Nid::SECP384R1));
    let token = mint(&header("ES256"), CLAIMS, |d| {
        sign_ec(MessageDigest::sha256(), p256(), d)
    });
    assert!(matches!(
        verify(&key, &token),
        Err(JoseError::AlgKeyMismatch {
            alg: Alg::ES256,
            ..
        })
    ));
    // Same key, token signed with it but labelled ES256 (SHA-256 over P-384).
    let token = mint(&header("ES256"), CLAIMS, |d| {
        sign_ec(MessageDigest::sha256(), ec_key(Nid::SECP384R1), d)
    });
    assert!(matches!(
        verify(&key, &token),
        Err(JoseError::AlgKeyMismatch { .. })
    ));
}

#[test]
fn es256_der_signature_rejected() {
    let key = jwk_key(p256());
    let token = mint(&header("ES256"), CLAIMS, |d| {
        sign_ec_der(MessageDigest::sha256(), p256(), d)
    });
    assert!(verify(&key, &token).is_err());
}

#[test]
fn es256_signature_of_63_or_65_bytes_rejected() {
    let key = jwk_key(p256());
    let short = mint(&header("ES256"), CLAIMS, |d| {
        let mut s = sign_ec(MessageDigest::sha256(), p256(), d);
        s.pop();
        s
    });
    assert_eq!(verify(&key, &short), Err(JoseError::BadSignatureLength));
    let long = mint(&header("ES256"), CLAIMS, |d| {
        let mut s = sign_ec(MessageDigest::sha256(), p256(), d);
        s.push(0);
        s
    });
    assert_eq!(verify(&key, &long), Err(JoseError::BadSignatureLength));
}

#[test]
fn ecdsa_psychic_and_out_of_range_signatures_rejected() {
    let key = jwk_key(p256());
    let zero = mint(&header("ES256"), CLAIMS, |_| vec![0u8; 64]);
    assert_eq!(verify(&key, &zero), Err(JoseError::SignatureInvalid));
    // r = n (the group order) and s = 1; and r = 1, s = 0.
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let mut order = BigNum::new().expect("bn");
    group
        .order(&mut order, &mut BigNumContext::new().expect("ctx"))
        .expect("order");
    let mut r_is_n = order.to_vec_padded(32).expect("pad");
    r_is_n.extend([0u8; 31]);
    r_is_n.push(1);
    let mut s_is_zero = vec![0u8; 31];
    s_is_zero.push(1);
    s_is_zero.extend([0u8; 32]);
    for sig in [r_is_n, s_is_zero] {
        let token = mint(&header("ES256"), CLAIMS, |_| sig.clone());
        assert_eq!(verify(&key, &token), Err(JoseError::SignatureInvalid));
    }
}

#[test]
fn embedded_jwk_header_is_ignored() {
    let configured = jwk_key(rsa_key());
    let attacker = attacker_rsa_key();
    let hdr = format!(
        r#"{{"alg":"RS256","jwk":{},"jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x5u"}}"#,
        public_jwk(attacker)
    );
    let token = mint(&hdr, CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), attacker, None, d)
    });
    let jws = Jws::parse(&token).expect("parse");
    assert!(jws.header.raw.contains_key("jwk"));
    assert_eq!(configured.verify(&jws), Err(JoseError::SignatureInvalid));
}

#[test]
fn jwk_alg_pins_the_algorithm() {
    let jwk = format!(r#"{{{},"alg":"RS512"}}"#, public_jwk_members(rsa_key()));
    let key = Key::from_jwk_json(&jwk).expect("jwk");
    assert_eq!(key.alg(), Some(Alg::RS512));
    assert!(key.accepts(Alg::RS512));
    assert!(!key.accepts(Alg::RS256));
    let token = mint(&header("RS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    assert_eq!(verify(&key, &token), Err(JoseError::AlgNotAllowedByJwk));
    let token = mint(&header("RS512"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha512(), rsa_key(), None, d)
    });
    assert_eq!(verify(&key, &token), Ok(()));
}

// ---------- header rules ----------

fn hs_key() -> Key {
    Key::from_secret(&[5u8; 32]).expect("secret")
}

fn hs_token(header: &str) -> String {
    mint(header, CLAIMS, |d| {
        sign_hmac(MessageDigest::sha256(), &[5u8; 32], d)
    })
}

#[test]
fn crit_rejected_in_every_form() {
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","crit":["x-foo"],"x-foo":1}"#)).err(),
        Some(JoseError::CritUnsupported("x-foo".into()))
    );
    for bad in [
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":["alg"]}"#,
        r#"{"alg":"HS256","crit":["x-foo"]}"#,
        r#"{"alg":"HS256","crit":["x-foo","x-foo"],"x-foo":1}"#,
        r#"{"alg":"HS256","crit":[1],"x-foo":1}"#,
        r#"{"alg":"HS256","crit":"x-foo","x-foo":1}"#,
        r#"{"alg":"HS256","crit":null}"#,
    ] {
        assert_eq!(
            Jws::parse(&hs_token(bad)).err(),
            Some(JoseError::CritInvalid),
            "{bad}"
        );
    }
    // The key alone would have accepted the token.
    assert_eq!(verify(&hs_key(), &hs_token(r#"{"alg":"HS256"}"#)), Ok(()));
}

#[test]
fn b64_and_zip_headers_rejected() {
    for hdr in [
        r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"HS256","b64":false}"#,
        r#"{"alg":"HS256","b64":true}"#,
    ] {
        assert_eq!(
            Jws::parse(&hs_token(hdr)).err(),
            Some(JoseError::B64False),
            "{hdr}"
        );
    }
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","zip":"DEF"}"#)).err(),
        Some(JoseError::ZipNotAllowed)
    );
}

#[test]
fn kid_and_typ_must_be_strings() {
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","kid":1}"#)).err(),
        Some(JoseError::HeaderMemberType("kid"))
    );
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","kid":null}"#)).err(),
        Some(JoseError::HeaderMemberType("kid"))
    );
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","typ":{}}"#)).err(),
        Some(JoseError::HeaderMemberType("typ"))
    );
    let token = hs_token(r#"{"alg":"HS256","kid":"../../dev/null","typ":"at+jwt"}"#);
    let jws = Jws::parse(&token).expect("parse");
    assert_eq!(jws.header.kid.as_deref(), Some("../../dev/null"));
    assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
}

#[test]
fn header_must_be_a_json_object() {
    for hdr in [
        "[]",
        r#""x""#,
        "1",
        "null",
        "",
        "\u{feff}{\"alg\":\"HS256\"}",
    ] {
        let token = hs_token(hdr);
        let r = Jws::parse(&token).err();
        assert_eq!(r, Some(JoseError::NotJsonObject("header")), "{hdr}");
    }
    // Insignificant JSON whitespace is fine.
    assert!(Jws::parse(&hs_token(" {\"alg\":\"HS256\"}\r\n")).is_ok());
    assert!(matches!(
        Jws::parse(&hs_token(r#"{"alg":"HS256""#)),
        Err(JoseError::Json("header", _))
    ));
    assert!(matches!(
        Jws::parse(&hs_token(r#"{"alg":"HS256"}x"#)),
        Err(JoseError::Json("header", _))
    ));
}

#[test]
fn duplicate_header_member_rejected() {
    assert_eq!(
        Jws::parse(&hs_token(r#"{"alg":"HS256","alg":"none"}"#)).err(),
        Some(JoseError::DuplicateMember("alg".into()))
    );
}

#[test]
fn duplicate_claim_rejected_by_parse_object() {
    let token = mint(&header("HS256"), r#"{"sub":"alice","sub":"admin"}"#, |d| {
        sign_hmac(MessageDigest::sha256(), &[5u8; 32], d)
    });
    let jws = Jws::parse(&token).expect("payload is opaque to parse");
    assert_eq!(hs_key().verify(&jws), Ok(()));
    assert_eq!(
        json::parse_object_as(&jws.payload, "payload"),
        Err(JoseError::DuplicateMember("sub".into()))
    );
}

#[test]
fn deeply_nested_payload_fails_without_stack_overflow() {
    for payload in [
        "[".repeat(10_000),
        format!("{{\"a\":{}", "[".repeat(10_000)),
    ] {
        let token = mint(&header("HS256"), &payload, |d| {
            sign_hmac(MessageDigest::sha256(), &[5u8; 32], d)
        });
        let jws = Jws::parse(&token).expect("parse");
        assert!(json::parse_object(&jws.payload).is_err());
    }
}

// ---------- compact-form and base64url rules ----------

#[test]
fn segment_count_must_be_three() {
    let token = hs_token(r#"{"alg":"HS256"}"#);
    let parts = segments(&token);
    assert_eq!(
        Jws::parse(&parts[..2].join(".")).err(),
        Some(JoseError::SegmentCount(2))
    );
    assert_eq!(
        Jws::parse(&format!("{token}.{}", parts[2])).err(),
        Some(JoseError::SegmentCount(4))
    );
    assert_eq!(Jws::parse("").err(), Some(JoseError::SegmentCount(1)));
    // JWE compact (5 segments) is refused too.
    assert_eq!(
        Jws::parse("a.b.c.d.e").err(),
        Some(JoseError::SegmentCount(5))
    );
    // JSON serialization is not a compact token.
    let json_form = format!(r#"{{"payload":"{}","signatures":[]}}"#, parts[1]);
    assert_eq!(
        Jws::parse(&json_form).err(),
        Some(JoseError::SegmentCount(1))
    );
}

#[test]
fn empty_signature_rejected() {
    let token = hs_token(r#"{"alg":"HS256"}"#);
    let (input, _) = token.rsplit_once('.').expect("dot");
    assert_eq!(
        Jws::parse(&format!("{input}.")).err(),
        Some(JoseError::EmptySignature)
    );
}

#[test]
fn non_strict_base64url_rejected() {
    let token = hs_token(r#"{"alg":"HS256","kid":"k1"}"#);
    let parts = segments(&token);
    // HMAC-SHA256 signature = 32 bytes = 43 chars: last char has 2 unused bits.
    let cases = [
        (
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            "signature",
        ),
        (
            format!("{}.{}.{} ", parts[0], parts[1], parts[2]),
            "signature",
        ),
        (
            format!(
                "{}.{}.{}{}",
                parts[0],
                parts[1],
                &parts[2][..10],
                &parts[2][10..].replacen("", " ", 2)
            ),
            "signature",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], bump_last_char(&parts[2])),
            "signature",
        ),
        (format!("{}=.{}.{}", parts[0], parts[1], parts[2]), "header"),
        (
            format!("{}.{}\n.{}", parts[0], parts[1], parts[2]),
            "payload",
        ),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                parts[2].replace('-', "+").replace('_', "/")
            ),
            "signature",
        ),
    ];
    for (bad, part) in &cases {
        if bad == &token {
            continue; // the alphabet swap is a no-op when no '-' or '_' occurs
        }
        assert_eq!(
            Jws::parse(bad).err(),
            Some(JoseError::Base64(part)),
            "{part}: {bad}"
        );
    }
    assert_eq!(verify(&hs_key(), &token), Ok(()));
}

#[test]
fn non_canonical_payload_rejected() {
    // Pick a payload whose base64url length is 2 mod 4 so the last char has 4 unused bits.
    let payload = r#"{"sub":"alice!"}"#;
    assert_eq!(b64::encode(payload.as_bytes()).len() % 4, 2);
    let token = mint(&header("HS256"), payload, |d| {
        sign_hmac(MessageDigest::sha256(), &[5u8; 32], d)
    });
    let mut parts = segments(&token);
    parts[1] = bump_last_char(&parts[1]);
    assert_eq!(
        Jws::parse(&parts.join(".")).err(),
        Some(JoseError::Base64("payload"))
    );
}

#[test]
fn oversized_token_rejected_fast() {
    let big = format!("{}.{}.{}", "e".repeat(MAX_TOKEN_LEN), "e", "e");
    let start = Instant::now();
    assert_eq!(Jws::parse(&big).err(), Some(JoseError::TooLarge));
    let dots = ".".repeat(100_000);
    assert_eq!(Jws::parse(&dots).err(), Some(JoseError::TooLarge));
    let one_mb = "A".repeat(1 << 20);
    assert_eq!(Jws::parse(&one_mb).err(), Some(JoseError::TooLarge));
    assert!(start.elapsed() < Duration::from_secs(1));
    // Within the size bound, many dots are still one cheap scan.
    let dots = ".".repeat(MAX_TOKEN_LEN);
    assert_eq!(
        Jws::parse(&dots).err(),
        Some(JoseError::SegmentCount(MAX_TOKEN_LEN + 1))
    );
    // Exactly at the bound is parsed normally.
    let hdr = b64::encode(br#"{"alg":"HS256"}"#);
    let exact = format!("{hdr}.{}.AA", "A".repeat(MAX_TOKEN_LEN - hdr.len() - 4));
    assert_eq!(exact.len(), MAX_TOKEN_LEN);
    assert!(!matches!(Jws::parse(&exact), Err(JoseError::TooLarge)));
}

// ---------- JWK import ----------

#[test]
fn jwk_use_and_key_ops() {
    let m = public_jwk_members(rsa_key());
    assert_eq!(
        Key::from_jwk_json(&format!(r#"{{{m},"use":"enc"}}"#)).err(),
        Some(JoseError::KeyInvalid(
            "use=enc key cannot verify signatures".into()
        ))
    );
    assert!(Key::from_jwk_json(&format!(r#"{{{m},"use":"sig"}}"#)).is_ok());
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{{m},"use":1}}"#)),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(Key::from_jwk_json(&format!(r#"{{{m},"key_ops":["verify"]}}"#)).is_ok());
    for ops in [
        r#"["encrypt"]"#,
        r#"["sign"]"#,
        "[]",
        r#""verify""#,
        r#"["verify","verify"]"#,
    ] {
        assert!(
            matches!(
                Key::from_jwk_json(&format!(r#"{{{m},"key_ops":{ops}}}"#)),
                Err(JoseError::KeyInvalid(_))
            ),
            "{ops}"
        );
    }
}

#[test]
fn rsa_jwk_size_and_exponent_checks() {
    let small = PKey::from_rsa(Rsa::generate(1024).expect("rsa")).expect("pkey");
    assert!(matches!(
        Key::from_jwk_json(&public_jwk(&small)),
        Err(JoseError::KeyTooWeak(_))
    ));
    assert!(matches!(
        Key::from_pem_public_key(&public_pem(&small)),
        Err(JoseError::KeyTooWeak(_))
    ));
    let n = b64::encode(&rsa_key().rsa().expect("rsa").n().to_vec());
    for e in ["AQ", "Aw", "AQAA", "AQAAAAAB", ""] {
        // e = 1, e = 3 (fine), even e, e >= 2^32, empty
        let r = Key::from_jwk_json(&format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#));
        if e == "Aw" {
            assert!(r.is_ok());
        } else {
            assert!(matches!(r, Err(JoseError::KeyInvalid(_))), "e={e}: {r:?}");
        }
    }
    // A redundant leading zero byte in n (common in real JWKS) is accepted.
    let mut padded = vec![0u8];
    padded.extend(rsa_key().rsa().expect("rsa").n().to_vec());
    let key = Key::from_jwk_json(&format!(
        r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#,
        b64::encode(&padded)
    ))
    .expect("padded n");
    assert_eq!(key.describe(), "RSA 2048-bit");
    let token = mint(&header("RS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    assert_eq!(verify(&key, &token), Ok(()));
    // n given with padding or in the standard alphabet is not strict base64url.
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{"kty":"RSA","n":"{n}=","e":"AQAB"}}"#)),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(matches!(
        Key::from_jwk_json(r#"{"kty":"RSA","e":"AQAB"}"#),
        Err(JoseError::KeyInvalid(_))
    ));
}

#[test]
fn rsa_private_members_ignored_but_flagged() {
    let m = public_jwk_members(rsa_key());
    let key = Key::from_jwk_json(&format!(r#"{{{m},"d":"AQAB","p":"AQAB"}}"#)).expect("jwk");
    assert!(key.has_private_material());
    assert!(!jwk_key(rsa_key()).has_private_material());
    assert!(
        Key::from_jwk_json(&format!(r#"{{{},"d":"AQAB"}}"#, public_jwk_members(p256())))
            .expect("ec")
            .has_private_material()
    );
}

#[test]
fn ec_jwk_point_and_length_checks() {
    let ec = p256().ec_key().expect("ec");
    let (x, mut y) = affine(&ec, 32);
    y[31] ^= 1;
    let modified = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        b64::encode(&x),
        b64::encode(&y)
    );
    assert!(matches!(
        Key::from_jwk_json(&modified),
        Err(JoseError::KeyInvalid(_))
    ));
    let (x, y) = affine(&ec, 32);
    let x31 = x.get(1..).expect("31");
    let mut x33 = vec![0u8];
    x33.extend(&x);
    for bad_x in [x31, &x33[..]] {
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64::encode(bad_x),
            b64::encode(&y)
        );
        assert!(
            matches!(Key::from_jwk_json(&jwk), Err(JoseError::KeyInvalid(_))),
            "len {}",
            bad_x.len()
        );
    }
    // Right point, wrong curve label.
    let wrong_crv = format!(
        r#"{{"kty":"EC","crv":"P-384","x":"{}","y":"{}"}}"#,
        b64::encode(&x),
        b64::encode(&y)
    );
    assert!(Key::from_jwk_json(&wrong_crv).is_err());
    // Coordinates >= p (all 0xff) are refused.
    let big = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        b64::encode(&[0xff; 32]),
        b64::encode(&y)
    );
    assert!(matches!(
        Key::from_jwk_json(&big),
        Err(JoseError::KeyInvalid(_))
    ));
    for crv in ["secp256k1", "X25519", "P-192"] {
        let jwk = format!(
            r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}"}}"#,
            b64::encode(&x),
            b64::encode(&y)
        );
        assert!(
            matches!(Key::from_jwk_json(&jwk), Err(JoseError::KeyUnsupported(_))),
            "{crv}"
        );
    }
}

#[test]
fn jwk_alg_must_fit_the_key() {
    let ec = public_jwk_members(p256());
    assert!(Key::from_jwk_json(&format!(r#"{{{ec},"alg":"ES256"}}"#)).is_ok());
    for alg in ["ES384", "RS256", "HS256", "none", "ES256K", ""] {
        let r = Key::from_jwk_json(&format!(r#"{{{ec},"alg":"{alg}"}}"#));
        assert!(matches!(r, Err(JoseError::KeyInvalid(_))), "{alg}");
    }
    let k32 = b64::encode(&[1u8; 32]);
    assert!(Key::from_jwk_json(&format!(r#"{{"kty":"oct","k":"{k32}","alg":"HS256"}}"#)).is_ok());
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{"kty":"oct","k":"{k32}","alg":"HS512"}}"#)),
        Err(JoseError::KeyInvalid(_))
    ));
}

#[test]
fn oct_jwk_too_short() {
    let jwk = format!(r#"{{"kty":"oct","k":"{}"}}"#, b64::encode(&[1u8; 16]));
    match Key::from_jwk_json(&jwk) {
        Err(JoseError::KeyTooWeak(why)) => assert!(why.contains("32 bytes"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Key::from_secret(b"short"),
        Err(JoseError::KeyTooWeak(_))
    ));
    let key = Key::from_secret(&[0u8; 32]).expect("32");
    assert_eq!(key.describe(), "oct 32 bytes");
    assert!(!key.has_private_material());
}

#[test]
fn okp_and_unknown_kty() {
    let x = b64::encode(&ed_key().raw_public_key().expect("raw"));
    assert!(
        Key::from_jwk_json(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","alg":"EdDSA"}}"#
        ))
        .is_ok()
    );
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{"kty":"OKP","crv":"Ed448","x":"{x}"}}"#)),
        Err(JoseError::KeyUnsupported(_))
    ));
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}AA"}}"#)),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(matches!(
        Key::from_jwk_json(r#"{"kty":"AKP","pub":"x"}"#),
        Err(JoseError::KeyUnsupported(_))
    ));
    assert!(matches!(
        Key::from_jwk_json(r#"{"n":"x"}"#),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(matches!(
        Key::from_jwk_json(r#"{"kty":1}"#),
        Err(JoseError::KeyInvalid(_))
    ));
}

#[test]
fn jwk_duplicates_kid_and_unknown_members() {
    let m = public_jwk_members(rsa_key());
    assert_eq!(
        Key::from_jwk_json(&format!(r#"{{{m},"kty":"RSA"}}"#)).err(),
        Some(JoseError::DuplicateMember("kty".into()))
    );
    let mut key =
        Key::from_jwk_json(&format!(r#"{{{m},"kid":"k1","x-unknown":{{"a":[1]}}}}"#)).expect("jwk");
    assert_eq!(key.kid(), Some("k1"));
    key.set_kid("k2".into());
    assert_eq!(key.kid(), Some("k2"));
    assert!(matches!(
        Key::from_jwk_json(&format!(r#"{{{m},"kid":7}}"#)),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(matches!(
        Key::from_jwk_json("[]"),
        Err(JoseError::NotJsonObject("JWK"))
    ));
}

// ---------- PEM import ----------

#[test]
fn pem_public_key_in_config_line_forms() {
    let pem = public_pem(rsa_key());
    let token = mint(&header("RS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    let forms = [
        pem.clone(),
        pem.replace('\n', "\\n"),
        pem.replace('\n', " "),
        pem.trim_end().replace('\n', " "),
        format!("  {}  \n\t", pem.trim_end()),
        pem.replace('\n', "\r\n"),
        pem.replace('\n', "\\n").trim_end_matches("\\n").to_owned(),
    ];
    for form in &forms {
        let key = Key::from_pem_public_key(form).unwrap_or_else(|e| panic!("{e}: {form:?}"));
        assert_eq!(verify(&key, &token), Ok(()));
    }
    for pkey in [p256(), ec_key(Nid::SECP384R1), ed_key()] {
        let key = Key::from_pem_public_key(&public_pem(pkey).replace('\n', "\\n")).expect("pem");
        assert_eq!(key.describe(), jwk_key(pkey).describe());
    }
}

#[test]
fn pem_pkcs1_rsa_public_key() {
    let pkcs1 = String::from_utf8(
        rsa_key()
            .rsa()
            .expect("rsa")
            .public_key_to_pem_pkcs1()
            .expect("pem"),
    )
    .expect("utf8");
    assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let token = mint(&header("PS384"), CLAIMS, |d| {
        sign_rsa(
            MessageDigest::sha384(),
            rsa_key(),
            Some(RsaPssSaltlen::DIGEST_LENGTH),
            d,
        )
    });
    for form in [pkcs1.clone(), pkcs1.replace('\n', " ")] {
        let key = Key::from_pem_public_key(&form).expect("pkcs1");
        assert_eq!(verify(&key, &token), Ok(()));
    }
}

fn self_signed(pkey: &PKey<Private>) -> String {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "as.example").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(
        &BigNum::from_u32(1)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(pkey).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("t"))
        .expect("na");
    let md = if pkey.id() == Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    };
    b.sign(pkey, md).expect("sign");
    String::from_utf8(b.build().to_pem().expect("pem")).expect("utf8")
}

#[test]
fn pem_certificates() {
    let rsa_cert = self_signed(rsa_key());
    let token = mint(&header("RS256"), CLAIMS, |d| {
        sign_rsa(MessageDigest::sha256(), rsa_key(), None, d)
    });
    for form in [
        rsa_cert.clone(),
        rsa_cert.replace('\n', "\\n"),
        rsa_cert.replace('\n', " "),
    ] {
        let key = Key::from_pem_certificate(&form).expect("rsa cert");
        assert_eq!(verify(&key, &token), Ok(()));
    }
    let ec_cert = self_signed(p256());
    let key = Key::from_pem_certificate(&ec_cert).expect("ec cert");
    assert_eq!(key.describe(), "EC P-256");
    let token = mint(&header("ES256"), CLAIMS, |d| {
        sign_ec(MessageDigest::sha256(), p256(), d)
    });
    assert_eq!(verify(&key, &token), Ok(()));
    let ed_cert = self_signed(ed_key());
    let key = Key::from_pem_certificate(&ed_cert).expect("ed cert");
    let token = mint(&header("EdDSA"), CLAIMS, |d| sign_ed(ed_key(), d));
    assert_eq!(verify(&key, &token), Ok(()));
    // Wrong block type for each reader.
    assert!(matches!(
        Key::from_pem_certificate(&public_pem(rsa_key())),
        Err(JoseError::KeyInvalid(_))
    ));
    assert!(matches!(
        Key::from_pem_public_key(&rsa_cert),
        Err(JoseError::KeyInvalid(_))
    ));
}

#[test]
fn malformed_pem_rejected() {
    let pem = public_pem(rsa_key());
    let bad = [
        String::new(),
        "not a pem".to_owned(),
        pem.replace("-----END PUBLIC KEY-----", ""),
        pem.replace("-----END PUBLIC KEY-----", "-----END CERTIFICATE-----"),
        pem.replacen("MII", "M*I", 1),
        pem.replacen("MII", "Proc-Type: 4,ENCRYPTED\nMII", 1),
        "-----BEGIN PUBLIC KEY----------END PUBLIC KEY-----".to_owned(),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".to_owned(),
        String::from_utf8(rsa_key().private_key_to_pem_pkcs8().expect("pem")).expect("utf8"),
    ];
    for form in &bad {
        assert!(Key::from_pem_public_key(form).is_err(), "{form:?}");
    }
}

// ---------- type properties ----------

#[test]
fn key_is_send_sync_clone_and_debug_hides_secrets() {
    fn assert_traits<T: Send + Sync + Clone>() {}
    assert_traits::<Key>();
    let key = Key::from_secret(b"0123456789abcdef0123456789abcdefSECRET").expect("secret");
    let dbg = format!("{key:?}");
    assert!(!dbg.contains("SECRET") && !dbg.contains("0123"), "{dbg}");
    let token = hs_token(r#"{"alg":"HS256"}"#);
    let jws = Jws::parse(&token).expect("parse");
    assert!(!format!("{jws:?}").contains("alice"));
}

#[test]
fn rsa_modulus_above_16384_bits_rejected_before_import() {
    // An odd 16392-bit number: refused on size alone, no key is built.
    let mut n = vec![0xffu8; 16392 / 8];
    n[0] = 0x80;
    let jwk = format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, b64::encode(&n));
    match Key::from_jwk_json(&jwk) {
        Err(JoseError::KeyInvalid(why)) => assert!(why.contains("16384"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(Alg::HS256.is_symmetric() && !Alg::RS256.is_symmetric());
}

/// The encodings of an EC public key that name no usable point: a real point's x written as x + p
/// (the same point modulo p, so an on-curve check alone would pass it), the point at infinity,
/// and a point off the curve, in a JWK and in a PEM SubjectPublicKeyInfo.
#[test]
fn ec_point_non_canonical_infinity_and_off_curve_refused() {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let mut ctx = BigNumContext::new().expect("ctx");
    let (mut p, mut a, mut b) = (
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
    );
    group
        .components_gfp(&mut p, &mut a, &mut b, &mut ctx)
        .expect("p");
    // A point with a small x (5 is the first on P-256), so that x + p still fits 32 bytes.
    let point = (1u32..50)
        .find_map(|x| {
            let mut compressed = vec![2u8];
            compressed.extend(BigNum::from_u32(x).ok()?.to_vec_padded(32).ok()?);
            openssl::ec::EcPoint::from_bytes(&group, &compressed, &mut ctx).ok()
        })
        .expect("a point with a small x");
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    point
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .expect("affine");
    let jwk = |x: &BigNum| {
        format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64::encode(&x.to_vec_padded(32).unwrap()),
            b64::encode(&y.to_vec_padded(32).unwrap())
        )
    };
    assert!(Key::from_jwk_json(&jwk(&x)).is_ok(), "the point itself");
    let mut x_plus_p = BigNum::new().unwrap();
    x_plus_p.checked_add(&x, &p).expect("add");
    assert!(matches!(
        Key::from_jwk_json(&jwk(&x_plus_p)),
        Err(JoseError::KeyInvalid(_))
    ));

    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }
    const ALGORITHM: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let spki = |point: &[u8]| {
        let bits = u8::try_from(point.len() + 1).unwrap();
        let mut der = vec![0x30, 0x17 + bits];
        der.extend(ALGORITHM);
        der.extend([0x03, bits, 0x00]);
        der.extend(point);
        let body = openssl::base64::encode_block(&der);
        format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
    };
    let mut off_curve = vec![0x04];
    off_curve.extend([1u8; 64]);
    for (what, point) in [("infinity", vec![0x00]), ("off the curve", off_curve)] {
        assert!(
            matches!(
                Key::from_pem_public_key(&spki(&point)),
                Err(JoseError::KeyInvalid(_))
            ),
            "{what}"
        );
    }
    let mut on_curve = vec![0x04];
    on_curve.extend(x.to_vec_padded(32).unwrap());
    on_curve.extend(y.to_vec_padded(32).unwrap());
    assert!(
        Key::from_pem_public_key(&spki(&on_curve)).is_ok(),
        "the DER is well formed"
    );
}
