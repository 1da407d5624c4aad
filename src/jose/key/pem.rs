//! PEM import for keys written into Apache config lines.
//!
//! A config value may carry real newlines, the two characters `\n`, or one
//! line with spaces between base64 groups. Rather than hand that to OpenSSL's
//! strict PEM reader, take the base64 body between the markers, drop all
//! whitespace and literal `\n`/`\r`, and import the DER.

use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::X509;

use super::Key;
use crate::jose::b64;
use crate::jose::error::{JoseError, sanitize};

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

impl Key {
    /// The public key (RSA, EC P-256/384/521 or Ed25519) of a PEM X.509 certificate.
    pub(crate) fn from_pem_certificate(pem: &str) -> Result<Key, JoseError> {
        let der = certificate_der(pem)?;
        let cert = X509::from_der(&der).map_err(|_| invalid("certificate DER is invalid"))?;
        let pkey = cert
            .public_key()
            .map_err(|_| invalid("certificate public key is invalid"))?;
        Key::from_pkey(pkey)
    }

    /// A PEM "PUBLIC KEY" (SubjectPublicKeyInfo) or "RSA PUBLIC KEY" (PKCS#1).
    pub(crate) fn from_pem_public_key(pem: &str) -> Result<Key, JoseError> {
        let (label, der) = pem_block(pem)?;
        let pkey = match label.as_str() {
            "PUBLIC KEY" => PKey::public_key_from_der(&der),
            "RSA PUBLIC KEY" => Rsa::public_key_from_der_pkcs1(&der).and_then(PKey::from_rsa),
            other => return Err(wrong_label("PUBLIC KEY", other)),
        }
        .map_err(|_| invalid("public key DER is invalid"))?;
        Key::from_pkey(pkey)
    }
}

/// The DER of a PEM certificate (as mod_ssl exports client certificates, or as written in a config).
pub(crate) fn certificate_der(pem: &str) -> Result<Vec<u8>, JoseError> {
    let (label, der) = pem_block(pem)?;
    if label != "CERTIFICATE" && label != "X509 CERTIFICATE" {
        return Err(wrong_label("CERTIFICATE", &label));
    }
    Ok(der)
}

fn invalid(why: &str) -> JoseError {
    JoseError::KeyInvalid(why.to_owned())
}

fn wrong_label(want: &str, got: &str) -> JoseError {
    JoseError::KeyInvalid(format!(
        "expected a {want} PEM block, got \"{}\"",
        sanitize(got)
    ))
}

/// The label and decoded DER of the first PEM block in `pem`.
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), JoseError> {
    let start = pem
        .find(BEGIN)
        .ok_or_else(|| invalid("no -----BEGIN line"))?;
    let after_begin = pem
        .get(start.saturating_add(BEGIN.len())..)
        .unwrap_or_default();
    let label_len = after_begin
        .find(DASHES)
        .ok_or_else(|| invalid("unterminated BEGIN line"))?;
    let label = after_begin.get(..label_len).unwrap_or_default().trim();
    if label.is_empty()
        || label.len() > 40
        || !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
    {
        return Err(invalid("malformed PEM label"));
    }
    let rest = after_begin
        .get(label_len.saturating_add(DASHES.len())..)
        .unwrap_or_default();
    let end_marker = format!("-----END {label}-----");
    let body_len = rest
        .find(&end_marker)
        .ok_or_else(|| invalid("no matching -----END line"))?;
    let body: String = rest
        .get(..body_len)
        .unwrap_or_default()
        .replace("\\n", "")
        .replace("\\r", "")
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if body.contains(':') {
        return Err(invalid("PEM headers (encrypted PEM) are not supported"));
    }
    let der = b64::decode_pem_body(&body).map_err(|()| invalid("PEM body is not base64"))?;
    Ok((label.to_owned(), der))
}
