//! Token minting: claim sets, a signing key (RS256/ES256) with its public JWK, tampering.

use super::httpd_config::apache_quote;
use super::pki::ec_key;
use super::sys::now;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{Value, json};

/// `OAuth2TokenVerify jwk <signer's public JWK> "<options>"` (no options argument when `options`
/// is empty).
pub(crate) fn jwk_verify(signer: &TokenSigner, options: &str) -> String {
    if options.is_empty() {
        format!("OAuth2TokenVerify jwk {}", signer.jwk_arg())
    } else {
        format!(
            "OAuth2TokenVerify jwk {} {}",
            signer.jwk_arg(),
            apache_quote(options)
        )
    }
}

/// base64url without padding.
pub(crate) fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Standard claims for a valid token: `sub`, `iss`, `iat = now`, `exp = now + 300`.
pub(crate) fn claims(sub: &str) -> Value {
    let n = now();
    json!({ "sub": sub, "iss": "https://as.example.test", "iat": n, "exp": n + 300 })
}

/// `base` with the members of `extra` added (or replaced), keeping `base`'s order first.
pub(crate) fn with(base: Value, extra: Value) -> Value {
    let mut b = base;
    let m = b.as_object_mut().expect("base claims must be an object");
    for (k, v) in extra.as_object().expect("extra claims must be an object") {
        m.insert(k.clone(), v.clone());
    }
    b
}

/// `base` without the named member.
pub(crate) fn without(base: Value, name: &str) -> Value {
    let mut b = base;
    b.as_object_mut()
        .expect("claims must be an object")
        .shift_remove(name);
    b
}

/// A token whose signature segment was altered in the middle (so the signed bits change).
pub(crate) fn tamper_signature(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let mut sig: Vec<u8> = parts[2].as_bytes().to_vec();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    )
}

/// The signature segment of a compact JWS.
pub(crate) fn signature_segment(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

/// A token-signing key (RSA -> RS256, EC P-256 -> ES256) with a `kid`.
pub(crate) struct TokenSigner {
    pub(crate) kid: String,
    key: PKey<Private>,
    rsa: bool,
}

impl TokenSigner {
    /// RSA 2048, RS256.
    pub(crate) fn rsa(kid: &str) -> TokenSigner {
        Self::rsa_bits(kid, 2048)
    }

    /// RSA of the given size (for key-size configuration tests), RS256.
    pub(crate) fn rsa_bits(kid: &str, bits: u32) -> TokenSigner {
        let rsa = Rsa::generate(bits).unwrap();
        TokenSigner {
            kid: kid.into(),
            key: PKey::from_rsa(rsa).unwrap(),
            rsa: true,
        }
    }

    /// EC P-256, ES256.
    pub(crate) fn ec(kid: &str) -> TokenSigner {
        TokenSigner {
            kid: kid.into(),
            key: ec_key(),
            rsa: false,
        }
    }

    pub(crate) fn alg(&self) -> &'static str {
        if self.rsa { "RS256" } else { "ES256" }
    }

    /// The public JWK as a JSON value, members in the order kty, kid, use, then key material.
    pub(crate) fn public_jwk_value(&self) -> Value {
        if self.rsa {
            let r = self.key.rsa().unwrap();
            json!({
                "kty": "RSA", "kid": self.kid, "use": "sig",
                "n": b64url(&r.n().to_vec()), "e": b64url(&r.e().to_vec()),
            })
        } else {
            let ec = self.key.ec_key().unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let mut x = BigNum::new().unwrap();
            let mut y = BigNum::new().unwrap();
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .unwrap();
            json!({
                "kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256",
                "x": b64url(&x.to_vec_padded(32).unwrap()),
                "y": b64url(&y.to_vec_padded(32).unwrap()),
            })
        }
    }

    /// The public key as PEM (`BEGIN PUBLIC KEY`), as AWS ALB and `eckey_uri` servers publish it.
    pub(crate) fn public_pem(&self) -> String {
        String::from_utf8(self.key.public_key_to_pem().unwrap()).unwrap()
    }

    /// The public JWK as compact JSON text.
    pub(crate) fn public_jwk(&self) -> String {
        serde_json::to_string(&self.public_jwk_value()).unwrap()
    }

    /// The public JWK as one quoted Apache argument (`"{\"kty\":...}"`).
    pub(crate) fn jwk_arg(&self) -> String {
        apache_quote(&self.public_jwk())
    }

    /// The JWK argument exactly in the seed configuration's quoting style (RSA only):
    /// `"{\"kty\":\"RSA\",\"kid\":\"one\",\"use\":\"sig\",\"n\":\"...\",\"e\":\"AQAB\" }"`.
    pub(crate) fn seed_jwk_arg(&self) -> String {
        assert!(self.rsa, "the seed JWK is RSA");
        let r = self.key.rsa().unwrap();
        let e = b64url(&r.e().to_vec());
        assert_eq!(e, "AQAB");
        format!(
            "\"{{\\\"kty\\\":\\\"RSA\\\",\\\"kid\\\":\\\"{}\\\",\\\"use\\\":\\\"sig\\\",\\\"n\\\":\\\"{}\\\",\\\"e\\\":\\\"{}\\\" }}\"",
            self.kid,
            b64url(&r.n().to_vec()),
            e
        )
    }

    /// The default JOSE header: `{"alg":..., "kid":..., "typ":"at+jwt"}`.
    pub(crate) fn header(&self) -> Value {
        json!({ "alg": self.alg(), "kid": self.kid, "typ": "at+jwt" })
    }

    /// Compact JWS over `claims` with the default header.
    pub(crate) fn mint(&self, claims: &Value) -> String {
        self.mint_with_header(&self.header(), claims)
    }

    /// Compact JWS with an arbitrary header (signed with this key using the key's algorithm,
    /// whatever the header says).
    pub(crate) fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let h = serde_json::to_string(header).unwrap();
        let c = serde_json::to_string(claims).unwrap();
        self.mint_raw(h.as_bytes(), c.as_bytes())
    }

    /// Compact JWS over raw header/payload bytes.
    pub(crate) fn mint_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64url(header), b64url(payload));
        let mut s = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        s.update(input.as_bytes()).unwrap();
        let der_or_raw = s.sign_to_vec().unwrap();
        let sig = if self.rsa {
            der_or_raw
        } else {
            let es = EcdsaSig::from_der(&der_or_raw).unwrap();
            let mut v = es.r().to_vec_padded(32).unwrap();
            v.extend(es.s().to_vec_padded(32).unwrap());
            v
        };
        format!("{input}.{}", b64url(&sig))
    }
}
