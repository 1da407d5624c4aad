//! Verification keys: one `Key` holds exactly one public key or HMAC secret,
//! already validated (size, curve, point on curve) when it was built.
//! Import lives in `key/jwk.rs` and `key/pem.rs`, signature checks in
//! `key/verify.rs`.

mod contexts;
mod jwk;
mod pem;
pub(crate) use pem::certificate_der;
mod verify;

use std::fmt;
use std::sync::Arc;

use openssl::bn::BigNumRef;
#[cfg(test)]
use openssl::bn::{BigNum, BigNumContext};
#[cfg(test)]
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};

use super::alg::{Alg, Family};
#[cfg(test)]
use super::b64;
use super::error::JoseError;

/// Shortest HMAC secret accepted at all: RFC 7518 §3.2, key >= hash size, HS256.
pub(crate) const MIN_HMAC_SECRET: usize = 32;
const MIN_RSA_BITS: i32 = 2048;
/// Verification cost grows with the modulus; refuse absurd keys (CVE-2023-29409).
const MAX_RSA_BITS: i32 = 16384;

/// A verification key. Cheap to clone (OpenSSL keys are reference counted)
/// and safe to share between threads.
#[derive(Clone)]
pub(crate) struct Key {
    material: Material,
    kid: Option<String>,
    /// The `alg` the JWK pinned, if any (RFC 8725 §3.1: one key, one algorithm).
    alg: Option<Alg>,
    private_seen: bool,
    /// Set-up verification contexts, shared by the clones of this key.
    contexts: Arc<contexts::VerifyContexts>,
}

#[derive(Clone)]
enum Material {
    Oct(Vec<u8>),
    Rsa { pkey: PKey<Public>, bits: u32 },
    Ec { pkey: PKey<Public>, curve: Curve },
    Ed25519(PKey<Public>),
}

/// The NIST curves of RFC 7518 §3.4, each tied to exactly one ES* algorithm.
const P256_ORDER: [u8; 32] =
    hex32(*b"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
const P384_ORDER: [u8; 48] = hex48(
    *b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
);
const P521_ORDER: [u8; 66] = hex66(
    *b"01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
);

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not an upper-case hex digit"),
    }
}

macro_rules! hex_array {
    ($name:ident, $n:expr) => {
        const fn $name(text: [u8; 2 * $n]) -> [u8; $n] {
            let mut out = [0u8; $n];
            let mut i = 0;
            while i < $n {
                out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
                i += 1;
            }
            out
        }
    };
}
hex_array!(hex32, 32);
hex_array!(hex48, 48);
hex_array!(hex66, 66);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_jwk_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    fn from_nid(nid: Nid) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| c.nid() == nid)
    }

    /// The group order n, big-endian, `coord_len` bytes (SEC 2 section 2.4, FIPS 186-4 D.1.2).
    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &P256_ORDER,
            Curve::P384 => &P384_ORDER,
            Curve::P521 => &P521_ORDER,
        }
    }

    fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P384 => Nid::SECP384R1,
            Curve::P521 => Nid::SECP521R1,
        }
    }

    /// Bytes of one coordinate, and of r and s in a JWS signature.
    fn coord_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn alg(self) -> Alg {
        match self {
            Curve::P256 => Alg::ES256,
            Curve::P384 => Alg::ES384,
            Curve::P521 => Alg::ES512,
        }
    }
}

impl Key {
    /// A shared HMAC secret (oct key) of at least 32 bytes.
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Key, JoseError> {
        check_secret_len(secret.len())?;
        Ok(Key::new(Material::Oct(secret.to_vec())))
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub(crate) fn set_kid(&mut self, kid: String) {
        self.kid = Some(kid);
    }

    /// The `alg` the JWK pinned, if it had one.
    #[cfg(test)]
    pub(crate) fn alg(&self) -> Option<Alg> {
        self.alg
    }

    /// Idle verification contexts kept for the next token (tests of their reuse).
    #[cfg(test)]
    pub(crate) fn idle_contexts(&self) -> usize {
        self.contexts.idle()
    }

    /// True when an asymmetric JWK carried private members (d, p, q, ...).
    /// They were ignored; the caller may warn that a secret was published.
    pub(crate) fn has_private_material(&self) -> bool {
        self.private_seen
    }

    /// Short description for logs, e.g. "RSA 2048-bit", "EC P-256", "oct 32 bytes".
    pub(crate) fn describe(&self) -> String {
        match &self.material {
            Material::Oct(secret) => format!("oct {} bytes", secret.len()),
            Material::Rsa { bits, .. } => format!("RSA {bits}-bit"),
            Material::Ec { curve, .. } => format!("EC {}", curve.jwk_name()),
            Material::Ed25519(_) => "OKP Ed25519".to_owned(),
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url) of the public part, as
    /// used by DPoP `jkt` (RFC 9449) confirmation claims.
    #[cfg(test)]
    pub(crate) fn jwk_thumbprint(&self) -> Result<String, JoseError> {
        let crypto = |_| JoseError::Crypto("thumbprint");
        // Required members only, in lexicographic order, no whitespace.
        let canonical = match &self.material {
            Material::Oct(secret) => format!(r#"{{"k":"{}","kty":"oct"}}"#, b64::encode(secret)),
            Material::Rsa { pkey, .. } => {
                let rsa = pkey.rsa().map_err(crypto)?;
                format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    b64::encode(&rsa.e().to_vec()),
                    b64::encode(&rsa.n().to_vec())
                )
            }
            Material::Ec { pkey, curve } => {
                let ec = pkey.ec_key().map_err(crypto)?;
                let mut x = BigNum::new().map_err(crypto)?;
                let mut y = BigNum::new().map_err(crypto)?;
                let mut ctx = BigNumContext::new().map_err(crypto)?;
                ec.public_key()
                    .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                    .map_err(crypto)?;
                let pad = |n: &BigNumRef| {
                    i32::try_from(curve.coord_len())
                        .map_err(|_| JoseError::Crypto("thumbprint"))
                        .and_then(|len| n.to_vec_padded(len).map_err(crypto))
                };
                format!(
                    r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                    curve.jwk_name(),
                    b64::encode(&pad(&x)?),
                    b64::encode(&pad(&y)?)
                )
            }
            Material::Ed25519(pkey) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64::encode(&pkey.raw_public_key().map_err(crypto)?)
            ),
        };
        let digest = hash(MessageDigest::sha256(), canonical.as_bytes()).map_err(crypto)?;
        Ok(b64::encode(&digest))
    }

    fn new(material: Material) -> Key {
        Key {
            material,
            kid: None,
            alg: None,
            private_seen: false,
            contexts: Arc::default(),
        }
    }

    /// Wrap an OpenSSL public key (from PEM/DER), enforcing the same limits
    /// as JWK import.
    fn from_pkey(pkey: PKey<Public>) -> Result<Key, JoseError> {
        let material = match pkey.id() {
            Id::RSA => {
                let rsa = pkey
                    .rsa()
                    .map_err(|_| JoseError::KeyInvalid("bad RSA key".into()))?;
                let bits = check_rsa(rsa.n(), rsa.e())?;
                Material::Rsa { pkey, bits }
            }
            Id::EC => {
                let ec = pkey
                    .ec_key()
                    .map_err(|_| JoseError::KeyInvalid("bad EC key".into()))?;
                // Named curves only: explicit parameters could smuggle a weak curve.
                let curve = ec
                    .group()
                    .curve_name()
                    .and_then(Curve::from_nid)
                    .ok_or_else(|| {
                        JoseError::KeyUnsupported("EC curve must be P-256, P-384 or P-521".into())
                    })?;
                ec.check_key()
                    .map_err(|_| JoseError::KeyInvalid("EC point is not on the curve".into()))?;
                Material::Ec { pkey, curve }
            }
            Id::ED25519 => Material::Ed25519(pkey),
            Id::ED448 => return Err(JoseError::KeyUnsupported("Ed448".into())),
            _ => return Err(JoseError::KeyUnsupported("public key type".into())),
        };
        Ok(Key::new(material))
    }

    /// Whether the key material can serve `alg` at all (ignores a pinned JWK alg).
    fn fits(&self, alg: Alg) -> bool {
        match (&self.material, alg.family()) {
            (Material::Oct(secret), Family::Hmac) => secret.len() >= alg.hash_len(),
            (Material::Rsa { .. }, Family::RsaPkcs1 | Family::RsaPss) => true,
            (Material::Ec { curve, .. }, Family::Ecdsa) => curve.alg() == alg,
            (Material::Ed25519(_), Family::EdDSA) => true,
            _ => false,
        }
    }
}

impl fmt::Debug for Key {
    // Never print the secret of an oct key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("key", &self.describe())
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("has_private_material", &self.private_seen)
            .finish()
    }
}

fn check_secret_len(len: usize) -> Result<(), JoseError> {
    if len < MIN_HMAC_SECRET {
        return Err(JoseError::KeyTooWeak(format!(
            "HMAC secret is {len} bytes; it must be at least 32 bytes (256 bits) for HS256, \
             48 for HS384, 64 for HS512"
        )));
    }
    Ok(())
}

/// RFC 7518 §3.3 size floor, a ceiling against slow verification, and the
/// exponent sanity rules ring uses (odd, 3 <= e < 2^32). Returns the bit size.
fn check_rsa(n: &BigNumRef, e: &BigNumRef) -> Result<u32, JoseError> {
    let bits = n.num_bits();
    if bits < MIN_RSA_BITS {
        return Err(JoseError::KeyTooWeak(format!(
            "RSA modulus is {bits} bits; at least {MIN_RSA_BITS} required"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(JoseError::KeyInvalid(format!(
            "RSA modulus is {bits} bits; at most {MAX_RSA_BITS} supported"
        )));
    }
    if !n.is_bit_set(0) {
        return Err(JoseError::KeyInvalid("RSA modulus is even".into()));
    }
    if !e.is_bit_set(0) || e.num_bits() < 2 || e.num_bits() > 32 {
        return Err(JoseError::KeyInvalid(
            "RSA exponent must be odd, >= 3 and < 2^32".into(),
        ));
    }
    u32::try_from(bits).map_err(|_| JoseError::KeyInvalid("RSA modulus size".into()))
}

#[cfg(test)]
mod curve_tests {
    use super::*;
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::EcGroup;

    #[test]
    fn orders_are_openssls() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let group = EcGroup::from_curve_name(curve.nid()).unwrap();
            let mut order = BigNum::new().unwrap();
            group
                .order(&mut order, &mut BigNumContext::new().unwrap())
                .unwrap();
            let want = order
                .to_vec_padded(i32::try_from(curve.coord_len()).unwrap())
                .unwrap();
            assert_eq!(curve.order(), &want[..], "{curve:?}");
        }
    }
}
