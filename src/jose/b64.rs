//! Base64 codecs: strict base64url for JOSE, lenient standard base64 for PEM.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// RFC 7515 §2 base64url: no padding, no whitespace, and unused trailing bits
/// must be zero, so each byte string has exactly one accepted encoding (a
/// token string can then safely key caches and deny lists).
const URL_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The form AWS ALB signs (`x-amzn-oidc-data`): base64url with `=` padding. Padding is
/// optional here, everything else as strict as `URL_STRICT`; used for `aws_alb` tokens only.
const URL_PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// PEM bodies come from config files; accept them with or without padding.
const PEM_BODY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode strict base64url (see `URL_STRICT`). A length of 1 modulo 4 is invalid.
/// The error carries no detail on purpose: callers know which part failed.
#[allow(clippy::result_unit_err)]
pub(crate) fn decode_strict(s: &str) -> Result<Vec<u8>, ()> {
    URL_STRICT.decode(s).map_err(|_| ())
}

/// Decode base64url that may carry `=` padding (AWS ALB tokens); otherwise as strict as
/// [`decode_strict`].
#[allow(clippy::result_unit_err)]
pub(crate) fn decode_padded(s: &str) -> Result<Vec<u8>, ()> {
    URL_PADDED.decode(s).map_err(|_| ())
}

/// Encode as base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_STRICT.encode(bytes)
}

/// Decode a PEM body that has already had its whitespace removed.
pub(crate) fn decode_pem_body(s: &str) -> Result<Vec<u8>, ()> {
    PEM_BODY.decode(s).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = encode(&bytes);
            assert!(!enc.contains('='));
            assert_eq!(decode_strict(&enc), Ok(bytes));
        }
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn rejects_non_canonical() {
        assert_eq!(decode_strict("QQ"), Ok(b"A".to_vec()));
        assert!(decode_strict("QR").is_err(), "unused bits set");
        assert!(decode_strict("QUI").is_ok());
        assert!(decode_strict("QUJ").is_err(), "unused bits set");
        assert!(decode_strict("QQ==").is_err(), "padding");
        assert!(decode_strict("QQ=").is_err(), "padding");
        assert!(decode_strict("Q").is_err(), "len % 4 == 1");
        assert!(decode_strict("QUJD RA").is_err(), "space");
        assert!(decode_strict("QUJD\nRA").is_err(), "newline");
        assert!(decode_strict("+/8").is_err(), "standard alphabet");
        assert!(decode_strict("QUJDRA\0").is_err());
    }

    #[test]
    fn padded_form_allows_padding_only() {
        assert_eq!(decode_padded("QQ=="), Ok(b"A".to_vec()));
        assert_eq!(decode_padded("QQ"), Ok(b"A".to_vec()));
        assert_eq!(decode_padded("QUI="), Ok(b"AB".to_vec()));
        assert!(decode_padded("QR==").is_err(), "unused bits set");
        assert!(decode_padded("Q===").is_err(), "len % 4 == 1");
        assert!(decode_padded("QQ=a").is_err(), "data after padding");
        assert!(decode_padded("+/8=").is_err(), "standard alphabet");
        assert!(decode_padded("QUJD RA==").is_err(), "space");
    }

    #[test]
    fn pem_body_padding_optional() {
        assert_eq!(decode_pem_body("QUI="), Ok(b"AB".to_vec()));
        assert_eq!(decode_pem_body("QUI"), Ok(b"AB".to_vec()));
        assert!(decode_pem_body("QU-_").is_err());
    }
}
