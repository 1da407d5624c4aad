//! Signature verification. The algorithm family is checked against the key
//! before any cryptography runs, so an RSA or EC public key can never be
//! used as an HMAC secret (key-confusion attacks).

use std::cmp::Ordering;

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

use super::contexts::VerifyContexts;
use super::{Curve, Key, Material};
use crate::digest::sha2;
use crate::jose::alg::{Alg, Family};
use crate::jose::error::JoseError;
use crate::jose::jws::Jws;

impl Key {
    /// Whether this key may verify `alg`: family fits kty/curve, HMAC secret
    /// at least the hash size, and equal to the JWK's own `alg` if it had one.
    #[cfg(test)]
    pub(crate) fn accepts(&self, alg: Alg) -> bool {
        self.check_alg(alg).is_ok()
    }

    /// Verify the signature of a parsed JWS with this key.
    pub(crate) fn verify(&self, jws: &Jws<'_>) -> Result<(), JoseError> {
        self.verify_signature(jws.header.alg, jws.signing_input.as_bytes(), &jws.signature)
    }

    /// Verify a raw JWS signature (`signature` as in the compact form, after
    /// base64url decoding) over `signing_input`.
    pub(crate) fn verify_signature(
        &self,
        alg: Alg,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), JoseError> {
        self.check_alg(alg)?;
        match &self.material {
            Material::Oct(secret) => hmac(alg, secret, signing_input, signature),
            Material::Rsa { pkey, bits } => {
                rsa(alg, pkey, *bits, &self.contexts, signing_input, signature)
            }
            Material::Ec { pkey, curve } => {
                ecdsa(alg, pkey, *curve, &self.contexts, signing_input, signature)
            }
            Material::Ed25519(pkey) => ed25519(pkey, signing_input, signature),
        }
    }

    fn check_alg(&self, alg: Alg) -> Result<(), JoseError> {
        if !self.fits(alg) {
            return Err(JoseError::AlgKeyMismatch {
                alg,
                key: self.describe(),
            });
        }
        match self.alg {
            Some(pinned) if pinned != alg => Err(JoseError::AlgNotAllowedByJwk),
            _ => Ok(()),
        }
    }
}

fn setup(what: &'static str) -> impl Fn(ErrorStack) -> JoseError {
    move |_| JoseError::Crypto(what)
}

/// Any OpenSSL failure during the final check means the signature is bad.
fn outcome(result: Result<bool, ErrorStack>) -> Result<(), JoseError> {
    match result {
        Ok(true) => Ok(()),
        _ => Err(JoseError::SignatureInvalid),
    }
}

fn hmac(alg: Alg, secret: &[u8], input: &[u8], signature: &[u8]) -> Result<(), JoseError> {
    if signature.len() != alg.hash_len() {
        return Err(JoseError::BadSignatureLength);
    }
    let key = PKey::hmac(secret).map_err(setup("HMAC key"))?;
    let mut signer = Signer::new(alg.digest(), &key).map_err(setup("HMAC"))?;
    let mac = signer.sign_oneshot_to_vec(input).map_err(setup("HMAC"))?;
    if crate::ct::eq(&mac, signature) {
        Ok(())
    } else {
        Err(JoseError::SignatureInvalid)
    }
}

fn rsa(
    alg: Alg,
    pkey: &PKey<Public>,
    bits: u32,
    contexts: &VerifyContexts,
    input: &[u8],
    signature: &[u8],
) -> Result<(), JoseError> {
    // RFC 8017 §8.2.2 / §8.1.2: the signature is exactly the modulus length.
    let modulus_len =
        usize::try_from(bits.div_ceil(8)).map_err(|_| JoseError::BadSignatureLength)?;
    if signature.len() != modulus_len {
        return Err(JoseError::BadSignatureLength);
    }
    let setup = |ctx: &mut PkeyCtx<Public>| {
        if alg.family() == Family::RsaPss {
            // RFC 7518 §3.5: MGF1 with the same hash, salt exactly the hash length.
            ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            ctx.set_rsa_mgf1_md(alg.md())?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
        } else {
            ctx.set_rsa_padding(Padding::PKCS1)?;
        }
        ctx.set_signature_md(alg.md())
    };
    let digest = sha2(alg.hash_len(), input);
    outcome(contexts.verify(pkey, alg, setup, digest.as_ref(), signature))
}

/// JWS ECDSA signatures are R||S, each exactly the coordinate length (RFC
/// 7518 §3.4); DER or any other length is refused. r and s must lie in
/// [1, n-1] (CVE-2022-21449 "psychic signatures"); OpenSSL checks this too.
fn ecdsa(
    alg: Alg,
    pkey: &PKey<Public>,
    curve: Curve,
    contexts: &VerifyContexts,
    input: &[u8],
    signature: &[u8],
) -> Result<(), JoseError> {
    if signature.len() != curve.coord_len().saturating_mul(2) {
        return Err(JoseError::BadSignatureLength);
    }
    let (r, s) = signature
        .split_at_checked(curve.coord_len())
        .ok_or(JoseError::BadSignatureLength)?;
    // Both fixed-length big-endian: byte order is number order. (No BigNum and no EC_KEY here:
    // taking the legacy EC_KEY out of an OpenSSL 3 key converts it on every call.)
    let order = curve.order();
    for v in [r, s] {
        if v.iter().all(|b| *b == 0) || v.cmp(order) != Ordering::Less {
            return Err(JoseError::SignatureInvalid);
        }
    }
    let der = ecdsa_der(r, s);
    let digest = sha2(alg.hash_len(), input);
    let setup = |ctx: &mut PkeyCtx<Public>| ctx.set_signature_md(alg.md());
    outcome(contexts.verify(pkey, alg, setup, digest.as_ref(), &der))
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` in DER (RFC 3279 section 2.2.3), from
/// the unsigned big-endian `r` and `s` (at most 66 bytes each, for P-521).
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let first = v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1);
        let v = &v[first..];
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        out.push(u8::try_from(v.len() + usize::from(pad)).unwrap_or(u8::MAX));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(2 * (r.len() + 3));
    integer(&mut body, r);
    integer(&mut body, s);
    let mut der = Vec::with_capacity(body.len() + 3);
    der.push(0x30);
    if body.len() >= 0x80 {
        der.push(0x81);
    }
    der.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
    der.extend_from_slice(&body);
    der
}

fn ed25519(pkey: &PKey<Public>, input: &[u8], signature: &[u8]) -> Result<(), JoseError> {
    if signature.len() != 64 {
        return Err(JoseError::BadSignatureLength);
    }
    let mut verifier = Verifier::new_without_digest(pkey).map_err(setup("Ed25519 verifier"))?;
    outcome(verifier.verify_oneshot(signature, input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::bn::BigNum;
    use openssl::ecdsa::EcdsaSig;

    #[test]
    fn ecdsa_der_is_openssls() {
        let cases: [(&[u8], &[u8]); 5] = [
            (&[0x01; 32], &[0x7f; 32]),
            (&[0x80; 32], &[0xff; 32]),
            (&[0x00, 0x00, 0x05, 0x80], &[0x00, 0x01]),
            (&[0x00; 32], &[0x00; 32]),
            (&[0x01; 66], &[0xc3; 66]),
        ];
        for (r, s) in cases {
            let want = EcdsaSig::from_private_components(
                BigNum::from_slice(r).unwrap(),
                BigNum::from_slice(s).unwrap(),
            )
            .unwrap()
            .to_der()
            .unwrap();
            assert_eq!(ecdsa_der(r, s), want, "r {r:02x?} s {s:02x?}");
        }
    }
}
