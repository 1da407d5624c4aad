//! JWK import (RFC 7517, RFC 7518 §6, RFC 8037): public parts only, every
//! member validated, private members noted but never loaded.

use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::pkey::{Id, PKey};
use openssl::rsa::Rsa;
use serde_json::{Map, Value};

use super::{Curve, Key, Material, check_rsa, check_secret_len};
use crate::jose::alg::Alg;
use crate::jose::b64;
use crate::jose::error::{JoseError, sanitize};
use crate::jose::json;

const RSA_PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

impl Key {
    /// Import one JWK given as JSON text (duplicates anywhere are refused).
    pub(crate) fn from_jwk_json(json: &str) -> Result<Key, JoseError> {
        let jwk = json::parse_object_as(json.as_bytes(), "JWK")?;
        Key::from_jwk_map(&jwk)
    }

    /// Import one JWK already parsed with `json::parse_object` (e.g. a member
    /// of a JWKS `keys` array).
    pub(crate) fn from_jwk_map(jwk: &Map<String, Value>) -> Result<Key, JoseError> {
        let kty = string_member(jwk, "kty")?.ok_or_else(|| invalid("missing kty"))?;
        check_use(jwk)?;
        check_key_ops(jwk)?;
        let kid = string_member(jwk, "kid")?.map(str::to_owned);
        let (material, private_seen) = match kty {
            "RSA" => (rsa(jwk)?, has_any(jwk, RSA_PRIVATE)),
            "EC" => (ec(jwk)?, has_any(jwk, &["d"])),
            "OKP" => (okp(jwk)?, has_any(jwk, &["d"])),
            "oct" => (oct(jwk)?, false),
            other => {
                return Err(JoseError::KeyUnsupported(format!(
                    "kty \"{}\"",
                    sanitize(other)
                )));
            }
        };
        let mut key = Key::new(material);
        key.kid = kid;
        key.private_seen = private_seen;
        if let Some(name) = string_member(jwk, "alg")? {
            let alg = Alg::from_name(name).ok_or_else(|| {
                JoseError::KeyInvalid(format!("unknown alg \"{}\"", sanitize(name)))
            })?;
            if !key.fits(alg) {
                return Err(JoseError::KeyInvalid(format!(
                    "alg {alg} does not fit {}",
                    key.describe()
                )));
            }
            key.alg = Some(alg);
        }
        Ok(key)
    }
}

fn invalid(why: &str) -> JoseError {
    JoseError::KeyInvalid(why.to_owned())
}

fn has_any(jwk: &Map<String, Value>, names: &[&str]) -> bool {
    names.iter().any(|n| jwk.contains_key(*n))
}

fn string_member<'m>(
    jwk: &'m Map<String, Value>,
    name: &str,
) -> Result<Option<&'m str>, JoseError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::KeyInvalid(format!("{name} must be a string"))),
    }
}

/// A required base64url member, decoded strictly.
fn bytes_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JoseError> {
    let text = string_member(jwk, name)?
        .ok_or_else(|| JoseError::KeyInvalid(format!("missing {name}")))?;
    b64::decode_strict(text)
        .map_err(|()| JoseError::KeyInvalid(format!("{name} is not strict base64url")))
}

/// Base64urlUInt: big-endian, leading zero bytes tolerated (real JWKS pad `n`).
fn uint_member(jwk: &Map<String, Value>, name: &str) -> Result<BigNum, JoseError> {
    let bytes = bytes_member(jwk, name)?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = bytes.get(start..).unwrap_or_default();
    if digits.is_empty() {
        return Err(JoseError::KeyInvalid(format!("{name} is zero")));
    }
    BigNum::from_slice(digits).map_err(|_| JoseError::Crypto("BigNum"))
}

fn check_use(jwk: &Map<String, Value>) -> Result<(), JoseError> {
    match string_member(jwk, "use")? {
        None | Some("sig") => Ok(()),
        Some("enc") => Err(invalid("use=enc key cannot verify signatures")),
        Some(other) => Err(JoseError::KeyInvalid(format!(
            "use=\"{}\" is not sig",
            sanitize(other)
        ))),
    }
}

/// RFC 7517 §4.3: an array of unique strings; to verify it must list "verify".
fn check_key_ops(jwk: &Map<String, Value>) -> Result<(), JoseError> {
    let Some(ops) = jwk.get("key_ops") else {
        return Ok(());
    };
    let ops = ops
        .as_array()
        .ok_or_else(|| invalid("key_ops must be an array"))?;
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        let op = op
            .as_str()
            .ok_or_else(|| invalid("key_ops must contain strings"))?;
        if !seen.insert(op) {
            return Err(invalid("key_ops has duplicates"));
        }
    }
    if !seen.contains("verify") {
        return Err(invalid("key_ops does not allow verify"));
    }
    Ok(())
}

fn rsa(jwk: &Map<String, Value>) -> Result<Material, JoseError> {
    let n = uint_member(jwk, "n")?;
    let e = uint_member(jwk, "e")?;
    let bits = check_rsa(&n, &e)?;
    let rsa = Rsa::from_public_components(n, e).map_err(|_| invalid("bad RSA key"))?;
    let pkey = PKey::from_rsa(rsa).map_err(|_| JoseError::Crypto("PKey from RSA"))?;
    Ok(Material::Rsa { pkey, bits })
}

fn ec(jwk: &Map<String, Value>) -> Result<Material, JoseError> {
    let crv = string_member(jwk, "crv")?.ok_or_else(|| invalid("missing crv"))?;
    let curve = Curve::from_jwk_name(crv)
        .ok_or_else(|| JoseError::KeyUnsupported(format!("EC curve \"{}\"", sanitize(crv))))?;
    let coordinate = |name: &str| {
        let bytes = bytes_member(jwk, name)?;
        // RFC 7518 §6.2.1.2: the full coordinate length, no more, no less.
        if bytes.len() != curve.coord_len() {
            return Err(JoseError::KeyInvalid(format!(
                "{name} must be {} bytes for {}",
                curve.coord_len(),
                curve.jwk_name()
            )));
        }
        BigNum::from_slice(&bytes).map_err(|_| JoseError::Crypto("BigNum"))
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let group = EcGroup::from_curve_name(curve.nid()).map_err(|_| JoseError::Crypto("EC group"))?;
    // Refuses coordinates >= p and points off the curve (invalid-curve attacks).
    let ec = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
        .map_err(|_| invalid("EC point is not on the curve"))?;
    ec.check_key()
        .map_err(|_| invalid("EC point is not on the curve"))?;
    let pkey = PKey::from_ec_key(ec).map_err(|_| JoseError::Crypto("PKey from EC"))?;
    Ok(Material::Ec { pkey, curve })
}

fn okp(jwk: &Map<String, Value>) -> Result<Material, JoseError> {
    let crv = string_member(jwk, "crv")?.ok_or_else(|| invalid("missing crv"))?;
    if crv != "Ed25519" {
        return Err(JoseError::KeyUnsupported(format!(
            "OKP curve \"{}\"",
            sanitize(crv)
        )));
    }
    let x = bytes_member(jwk, "x")?;
    if x.len() != 32 {
        return Err(invalid("x must be 32 bytes for Ed25519"));
    }
    let pkey =
        PKey::public_key_from_raw_bytes(&x, Id::ED25519).map_err(|_| invalid("bad Ed25519 key"))?;
    Ok(Material::Ed25519(pkey))
}

fn oct(jwk: &Map<String, Value>) -> Result<Material, JoseError> {
    let k = bytes_member(jwk, "k")?;
    check_secret_len(k.len())?;
    Ok(Material::Oct(k))
}
