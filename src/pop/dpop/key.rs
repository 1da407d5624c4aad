//! The proof key: the header's `jwk` (RFC 9449 section 4.2), chosen by the client and so by any
//! attacker. Everything that makes it unfit is refused before it is imported, from the JSON alone:
//! private members (section 4.3 check 7), symmetric keys, curves we do not verify, RSA moduli
//! outside 2048..=8192 bits (slow-verification denial of service, CVE-2023-29409) and weak
//! exponents, and a key type that cannot make `alg` signatures.

use std::sync::Arc;

use super::key_cache::{ProofKey, ProofKeys};
use serde_json::{Map, Value};

use super::DpopError;
use crate::jose::Key;
use crate::jose::alg::{Alg, Family};
use crate::jose::b64;
use crate::jose::error::{JoseError, sanitize};

/// Private members of RSA, EC and OKP keys (RFC 7518 section 6.3.2, 6.2.2; RFC 8037 section 2)
/// and the oct secret `k` (RFC 7518 section 6.4.1).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const MIN_RSA_BITS: usize = 2048;
/// Proof keys are attacker-chosen: RSA verification time grows with the modulus, so the ceiling
/// is lower than for the configured keys.
const MAX_RSA_BITS: usize = 8192;
/// Longest base64url `n` worth decoding: 8192 bits plus one leading zero byte (1025 bytes).
const MAX_N_CHARS: usize = (MAX_RSA_BITS / 8 + 1).div_ceil(3) * 4;

/// The verification key of a proof signed with `alg` and its thumbprint, from the protected
/// header's members.
pub(crate) fn proof_key(
    header: &Map<String, Value>,
    alg: Alg,
    keys: &ProofKeys,
) -> Result<Arc<ProofKey>, DpopError> {
    let jwk = match header.get("jwk") {
        None => return Err(DpopError::JwkMissing),
        Some(Value::Object(jwk)) => jwk,
        Some(_) => return Err(DpopError::JwkNotObject),
    };
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err(invalid("kty must be a string")),
        None => return Err(invalid("missing kty")),
    };
    if kty == "oct" {
        return Err(DpopError::JwkSymmetric);
    }
    if let Some(member) = PRIVATE_MEMBERS
        .iter()
        .copied()
        .find(|m| jwk.contains_key(*m))
    {
        return Err(DpopError::JwkPrivate(member));
    }
    let fits = match kty {
        "RSA" => {
            check_rsa(jwk)?;
            matches!(alg.family(), Family::RsaPkcs1 | Family::RsaPss)
        }
        "EC" => {
            let crv = curve(jwk)?;
            let alg_of_curve = match crv {
                "P-256" => Alg::ES256,
                "P-384" => Alg::ES384,
                "P-521" => Alg::ES512,
                other => return Err(unsupported("EC curve", other)),
            };
            alg == alg_of_curve
        }
        "OKP" => match curve(jwk)? {
            "Ed25519" => alg == Alg::EdDSA,
            other => return Err(unsupported("OKP curve", other)),
        },
        other => return Err(unsupported("kty", other)),
    };
    if !fits {
        return Err(DpopError::JwkAlgMismatch {
            alg,
            key: describe(kty, jwk),
        });
    }
    // Kept under the whole `jwk`, not the thumbprint: the import also reads `alg`, `use` and
    // `key_ops`, which anyone can set on a copy of a client's public key. The thumbprint is
    // computed with the import, once per key.
    let whole = serde_json::to_vec(jwk).map_err(|_| invalid("cannot be written as JSON"))?;
    let id = b64::encode(&crate::digest::sha256(&[&whole]));
    keys.get_or_import(&id, || {
        let jkt = thumbprint(kty, jwk)?;
        let key = Key::from_jwk_map(jwk).map_err(|e| match e {
            JoseError::Crypto(what) => DpopError::Internal(what),
            e => DpopError::JwkInvalid(e),
        })?;
        Ok(ProofKey { key, jkt })
    })
}

/// RFC 7638 section 3: SHA-256 over the required members, in lexicographic order, as JSON
/// without whitespace, base64url-encoded; what a token's `cnf.jkt` holds (RFC 9449 section 6.1).
fn thumbprint(kty: &str, jwk: &Map<String, Value>) -> Result<String, DpopError> {
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(unsupported("kty", other)),
    };
    let mut canonical = Vec::with_capacity(256);
    canonical.push(b'{');
    for (i, member) in members.iter().enumerate() {
        let Some(Value::String(value)) = jwk.get(*member) else {
            return Err(invalid(&format!("missing {member}")));
        };
        if i > 0 {
            canonical.push(b',');
        }
        canonical.push(b'"');
        canonical.extend_from_slice(member.as_bytes());
        canonical.extend_from_slice(b"\":");
        // JSON string escaping as RFC 7638 section 3.3 asks (serde_json writes the shortest form).
        serde_json::to_writer(&mut canonical, value)
            .map_err(|_| invalid(&format!("{member} cannot be written as JSON")))?;
    }
    canonical.push(b'}');
    Ok(b64::encode(&crate::digest::sha256(&[&canonical])))
}

fn invalid(why: &str) -> DpopError {
    DpopError::JwkInvalid(JoseError::KeyInvalid(why.to_owned()))
}

fn unsupported(what: &str, value: &str) -> DpopError {
    DpopError::JwkUnsupported(format!("{what} \"{}\"", sanitize(value)))
}

fn curve(jwk: &Map<String, Value>) -> Result<&str, DpopError> {
    match jwk.get("crv") {
        Some(Value::String(crv)) => Ok(crv),
        Some(_) => Err(invalid("crv must be a string")),
        None => Err(invalid("missing crv")),
    }
}

fn describe(kty: &str, jwk: &Map<String, Value>) -> String {
    match jwk.get("crv").and_then(Value::as_str) {
        Some(crv) if kty != "RSA" => format!("{kty} {}", sanitize(crv)),
        _ => kty.to_owned(),
    }
}

/// Modulus size and exponent, from the base64url text: the length of `n` is looked at before it
/// is decoded, so an oversized key costs nothing.
fn check_rsa(jwk: &Map<String, Value>) -> Result<(), DpopError> {
    let text = |name: &str| match jwk.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(invalid(&format!("{name} must be a string"))),
        None => Err(invalid(&format!("missing {name}"))),
    };
    let n = text("n")?;
    if n.len() > MAX_N_CHARS {
        return Err(DpopError::JwkRsaSize(format!(
            "of about {} bits",
            n.len().saturating_mul(6)
        )));
    }
    let n = unsigned(n, "n")?;
    let bits = n.first().map_or(0, |top| {
        (n.len() - 1) * 8 + (8 - usize::try_from(top.leading_zeros()).unwrap_or(8))
    });
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(DpopError::JwkRsaSize(format!("of {bits} bits")));
    }
    let e = unsigned(text("e")?, "e")?;
    // ring's rule (RSA_PKCS1_2048_8192_*): odd, 3 <= e < 2^32; e = 1 would make any
    // "signature" equal to its padded message verify.
    let value = match e.len() {
        0..=4 => e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)),
        _ => return Err(DpopError::JwkRsaExponent),
    };
    if value < 3 || value & 1 == 0 {
        return Err(DpopError::JwkRsaExponent);
    }
    Ok(())
}

/// A Base64urlUInt member without its leading zero bytes.
fn unsigned(text: &str, name: &str) -> Result<Vec<u8>, DpopError> {
    let mut bytes = b64::decode_strict(text)
        .map_err(|()| invalid(&format!("{name} is not strict base64url")))?;
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 section 3.1, and a member value that needs JSON escaping (section 3.3: the
    /// members are written as JSON strings, so `"` and `\` are escaped, nothing else).
    #[test]
    fn thumbprint_is_rfc7638s() {
        let jwk = |text: &str| -> Map<String, Value> { serde_json::from_str(text).unwrap() };
        let rfc = jwk(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        );
        assert_eq!(
            thumbprint("RSA", &rfc).as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        let odd = jwk(r#"{"kty":"OKP","crv":"Ed\"25519\\","x":"a/b"}"#);
        let expected = b64::encode(&crate::digest::sha256(&[
            br#"{"crv":"Ed\"25519\\","kty":"OKP","x":"a/b"}"#,
        ]));
        assert_eq!(thumbprint("OKP", &odd), Ok(expected));
        assert!(thumbprint("EC", &odd).is_err());
    }
}
