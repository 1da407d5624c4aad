//! `OAuth2TokenVerify <type> <value> [<options>]` -> a validated [`Verifier`], or the message that
//! `apache2 -t` prints. Messages that the C module has are kept word for word; ours also say what
//! to write instead.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::options::{Options, Requirement, parse_number};
use crate::jose::Key;
use crate::pop::mtls::MtlsPolicy;
use crate::verify::claims::ClaimPolicy;
use crate::verify::{Binding, Verifier};

pub const UNKNOWN_TYPE: &str = "Invalid value, must be one of: plain, base64, base64url, hex, pem, pubkey, jwk, jwks_uri, eckey_uri, introspect or metadata.";
pub const UNKNOWN_BINDING: &str =
    "Invalid value, must be one of: \"bearer\", \"dpop\" or \"mtls\".";

/// Options this version acts on.
const ACTIVE_OPTIONS: &[&str] = &[
    "kid",
    "type",
    "mtls.policy",
    "verify.exp",
    "verify.iat",
    "verify.iat.slack_before",
    "verify.iat.slack_after",
    "verify.nbf",
    "verify.iss",
    "verify.aud",
    "iss",
    "aud",
];

/// Options the C module reads that have no effect here (yet): accepted, noted at debug level.
const INERT_OPTIONS: &[&str] = &[
    "verify.cache",
    "cache",
    "expiry",
    "mtls.env_var_name",
    "dpop.cache",
    "dpop.expiry",
    "dpop.iat.verify",
    "dpop.iat.slack.before",
    "dpop.iat.slack.after",
];

/// What the directive produced: the verifier and notes for the error log.
pub struct Parsed {
    pub verifier: Verifier,
    pub warnings: Vec<String>,
    pub debug: Vec<String>,
}

/// Where the directive was written, for log lines about the verifier.
pub struct Origin<'a> {
    pub file: &'a str,
    pub line: u32,
}

pub fn parse(
    kind: &str,
    value: &str,
    options: Option<&str>,
    origin: &Origin,
) -> Result<Parsed, String> {
    let options = Options::parse(options.unwrap_or(""));
    let mut warnings = Vec::new();
    let mut debug = Vec::new();

    let mut key = match kind {
        "plain" => secret_key(kind, value.as_bytes())?,
        "base64" => secret_key(kind, &decode_base64(value, alphabet::STANDARD, "oauth2_base64_decode failed")?)?,
        "base64url" => secret_key(
            kind,
            &decode_base64(value, alphabet::URL_SAFE, "oauth2_base64url_decode failed")?,
        )?,
        "hex" => secret_key(kind, &decode_hex(value)?)?,
        "pem" => Key::from_pem_certificate(value).map_err(|e| {
            format!("OAuth2TokenVerify pem: {e}. The value must be a PEM X.509 certificate (\"-----BEGIN CERTIFICATE-----...\"); line breaks may be written as \\n")
        })?,
        "pubkey" => Key::from_pem_public_key(value).map_err(|e| {
            format!("OAuth2TokenVerify pubkey: {e}. The value must be a PEM public key (\"-----BEGIN PUBLIC KEY-----...\"); line breaks may be written as \\n")
        })?,
        "jwk" => Key::from_jwk_json(value).map_err(|e| {
            format!("OAuth2TokenVerify jwk: {e}. The value must be one public JWK as JSON, quoted, with inner quotes escaped as \\\"")
        })?,
        "jwks_uri" | "eckey_uri" | "introspect" | "metadata" => {
            return Err(format!(
                "OAuth2TokenVerify {kind}: remote verification is not available in this version of the module yet; \
                 use a local key type (jwk, pem, pubkey, plain, base64, base64url, hex)"
            ));
        }
        _ => return Err(UNKNOWN_TYPE.to_string()),
    };
    if let Some(kid) = options.get("kid") {
        key.set_kid(kid.to_string());
    }
    if key.has_private_material() {
        warnings.push(format!(
            "OAuth2TokenVerify {kind} at {}:{}: the JWK contains private key material; only its public part is used. \
             Configure the public key only and keep the private key off this server",
            origin.file, origin.line
        ));
    }

    let binding = parse_binding(&options)?;
    let claims = parse_claim_policy(&options);

    for name in options.unknown(ACTIVE_OPTIONS) {
        if INERT_OPTIONS.contains(&name) {
            debug.push(format!(
                "OAuth2TokenVerify at {}:{}: option \"{name}\" has no effect in this version",
                origin.file, origin.line
            ));
        } else {
            warnings.push(format!(
                "OAuth2TokenVerify at {}:{}: unknown option \"{name}\" is ignored (option names are case-sensitive)",
                origin.file, origin.line
            ));
        }
    }

    let label = format!(
        "{kind} ({} at {}:{})",
        key.describe(),
        origin.file,
        origin.line
    );
    Ok(Parsed {
        verifier: Verifier {
            label,
            keys: vec![key],
            claims,
            binding,
        },
        warnings,
        debug,
    })
}

fn secret_key(kind: &str, secret: &[u8]) -> Result<Key, String> {
    Key::from_secret(secret).map_err(|e| {
        format!(
            "OAuth2TokenVerify {kind}: {e}. An HMAC secret must be at least 32 bytes (256 bits) for HS256 \
             (RFC 7518 section 3.2): configure a longer secret"
        )
    })
}

fn decode_base64(
    value: &str,
    alphabet: alphabet::Alphabet,
    c_message: &str,
) -> Result<Vec<u8>, String> {
    let engine = GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine
        .decode(value.trim())
        .map_err(|e| format!("{c_message}: {e}"))
}

/// Hex as the C module reads it: pairs of hex digits; an odd trailing digit is ignored.
fn decode_hex(value: &str) -> Result<Vec<u8>, String> {
    value
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| "sscanf failed: the value must be hexadecimal digits".to_string())
        })
        .collect()
}

fn parse_binding(options: &Options) -> Result<Binding, String> {
    match options.get("type") {
        None => Ok(Binding::Bearer),
        Some(t) if t.eq_ignore_ascii_case("bearer") => Ok(Binding::Bearer),
        Some(t) if t.eq_ignore_ascii_case("mtls") => {
            Ok(Binding::Mtls(MtlsPolicy::parse(options.get("mtls.policy"))))
        }
        Some(t) if t.eq_ignore_ascii_case("dpop") => Err(
            "type=dpop (RFC 9449 DPoP) is not supported by this version of the module yet; \
             use type=bearer or type=mtls"
                .to_string(),
        ),
        Some(_) => Err(UNKNOWN_BINDING.to_string()),
    }
}

fn parse_claim_policy(options: &Options) -> ClaimPolicy {
    let defaults = ClaimPolicy::default();
    let expected_iss = options.get("iss").map(str::to_string);
    let expected_aud = options.get("aud").map(str::to_string);
    // Setting iss= or aud= makes the matching check required unless verify.* says otherwise.
    let default_for = |expected: &Option<String>| {
        if expected.is_some() {
            Requirement::Required
        } else {
            Requirement::Optional
        }
    };
    ClaimPolicy {
        exp: Requirement::parse_or(options.get("verify.exp"), defaults.exp),
        nbf: Requirement::parse_or(options.get("verify.nbf"), defaults.nbf),
        iat: Requirement::parse_or(options.get("verify.iat"), defaults.iat),
        iat_slack_before: options
            .get("verify.iat.slack_before")
            .map(|v| parse_number(v).max(0)),
        iat_slack_after: options
            .get("verify.iat.slack_after")
            .map_or(defaults.iat_slack_after, |v| parse_number(v).max(0)),
        iss: Requirement::parse_or(options.get("verify.iss"), default_for(&expected_iss)),
        expected_iss,
        aud: Requirement::parse_or(options.get("verify.aud"), default_for(&expected_aud)),
        expected_aud,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin = Origin {
        file: "test.conf",
        line: 1,
    };
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn err(kind: &str, value: &str, options: Option<&str>) -> String {
        match parse(kind, value, options, &ORIGIN) {
            Ok(_) => panic!("expected an error for {kind} {value}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_type_has_the_c_message() {
        assert_eq!(err("foo", "bar", None), UNKNOWN_TYPE);
        assert_eq!(
            err("JWK", "{}", None),
            UNKNOWN_TYPE,
            "types are case-sensitive"
        );
    }

    #[test]
    fn unknown_binding_has_the_c_message() {
        assert_eq!(err("plain", SECRET, Some("type=foo")), UNKNOWN_BINDING);
    }

    #[test]
    fn binding_is_case_insensitive_and_policy_defaults_to_required() {
        let p = parse("plain", SECRET, Some("type=MTLS"), &ORIGIN).unwrap();
        assert_eq!(p.verifier.binding, Binding::Mtls(MtlsPolicy::Required));
        let p = parse(
            "plain",
            SECRET,
            Some("type=mtls&mtls.policy=optional"),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(p.verifier.binding, Binding::Mtls(MtlsPolicy::Optional));
        let p = parse("plain", SECRET, None, &ORIGIN).unwrap();
        assert_eq!(p.verifier.binding, Binding::Bearer);
    }

    #[test]
    fn dpop_is_refused_with_advice() {
        assert!(err("plain", SECRET, Some("type=dpop")).contains("not supported"));
    }

    #[test]
    fn short_secret_is_refused_with_advice() {
        let e = err("plain", "tooshort", None);
        assert!(e.contains("at least 32 bytes"), "{e}");
    }

    #[test]
    fn secrets_in_every_encoding() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        assert!(parse("base64", &STANDARD.encode(SECRET), None, &ORIGIN).is_ok());
        assert!(parse("base64url", &URL_SAFE_NO_PAD.encode(SECRET), None, &ORIGIN).is_ok());
        let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(parse("hex", &hex, None, &ORIGIN).is_ok());
        assert!(
            parse("hex", &format!("{hex}f"), None, &ORIGIN).is_ok(),
            "odd digit ignored"
        );
        assert!(err("hex", &format!("zz{hex}"), None).starts_with("sscanf failed"));
        assert!(err("base64", "!!!", None).starts_with("oauth2_base64_decode failed"));
    }

    #[test]
    fn remote_types_say_they_are_not_available() {
        assert!(err("jwks_uri", "https://as/jwks", None).contains("not available"));
    }

    #[test]
    fn claim_policy_from_options() {
        let p = parse(
            "plain",
            SECRET,
            Some("verify.exp=skip&verify.iat=required&verify.iat.slack_before=60&iss=https://as&aud=api&verify.aud=optional"),
            &ORIGIN,
        )
        .unwrap();
        let c = p.verifier.claims;
        assert_eq!(c.exp, Requirement::Skip);
        assert_eq!(c.iat, Requirement::Required);
        assert_eq!(c.iat_slack_before, Some(60));
        assert_eq!(c.iss, Requirement::Required);
        assert_eq!(c.expected_iss.as_deref(), Some("https://as"));
        assert_eq!(c.aud, Requirement::Optional);
        assert_eq!(c.expected_aud.as_deref(), Some("api"));
    }

    #[test]
    fn kid_option_overrides_the_key_kid() {
        let p = parse("plain", SECRET, Some("kid=mykid"), &ORIGIN).unwrap();
        assert_eq!(p.verifier.keys[0].kid(), Some("mykid"));
    }

    #[test]
    fn unknown_options_warn_and_inert_ones_are_debug() {
        let p = parse("plain", SECRET, Some("bogus=1&expiry=30"), &ORIGIN).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("bogus"));
        assert_eq!(p.debug.len(), 1);
        assert!(p.debug[0].contains("expiry"));
    }
}
