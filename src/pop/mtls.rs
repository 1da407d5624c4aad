//! RFC 8705 certificate-bound access tokens: the token's `cnf["x5t#S256"]` must equal the SHA-256
//! thumbprint of the client certificate that the TLS layer (mod_ssl) saw on this connection.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use std::fmt;

use crate::proxy::CertHeaderError;

/// `mtls.policy`: whether unbound tokens are acceptable where `type=mtls` is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MtlsPolicy {
    /// A bound token must match the certificate; an unbound token is accepted.
    Optional,
    /// Every token must be bound and match.
    Required,
}

impl MtlsPolicy {
    /// As the C module reads it: exactly `optional`, anything else (or nothing) means `required`.
    pub(crate) fn parse(value: Option<&str>) -> MtlsPolicy {
        match value {
            Some("optional") => MtlsPolicy::Optional,
            _ => MtlsPolicy::Required,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindingError {
    NotBound,
    NoCertificate,
    Mismatch,
    /// `cnf` present but not an object, or `cnf["x5t#S256"]` present but not a non-empty string:
    /// a binding that cannot be checked is a refusal under every policy (fail closed).
    Unreadable,
    /// The certificate a trusted proxy forwarded (`mtls.header`) cannot be read.
    ForwardedCertificate(CertHeaderError),
}

impl BindingError {
    /// A short stable name for the reason (for metrics).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            BindingError::NotBound => "not_bound",
            BindingError::NoCertificate => "no_certificate",
            BindingError::Mismatch => "certificate_mismatch",
            BindingError::Unreadable => "binding_unreadable",
            BindingError::ForwardedCertificate(_) => "forwarded_certificate_invalid",
        }
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            BindingError::NotBound => {
                "token is not certificate-bound (no cnf[\"x5t#S256\"] string) and mtls.policy=required"
            }
            BindingError::NoCertificate => {
                "token is certificate-bound but the client presented no certificate"
            }
            BindingError::Mismatch => {
                "thumbprint of the client certificate does not match the token's cnf[\"x5t#S256\"]"
            }
            BindingError::Unreadable => {
                "token's cnf is not an object or its cnf[\"x5t#S256\"] is not a non-empty string: a binding that cannot be checked"
            }
            BindingError::ForwardedCertificate(e) => {
                return write!(
                    f,
                    "the client certificate forwarded by the trusted proxy (mtls.header) is unusable: {e}"
                );
            }
        };
        f.write_str(text)
    }
}

/// A claim set's certificate binding (RFC 8705 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum X5t<T> {
    /// No `cnf`, or a `cnf` object without `x5t#S256`: not certificate-bound.
    None,
    Bound(T),
    /// Present but unreadable (see [`BindingError::Unreadable`]).
    Unreadable,
}

impl<T> X5t<T> {
    pub(crate) fn as_deref(&self) -> X5t<&T::Target>
    where
        T: std::ops::Deref,
    {
        match self {
            X5t::None => X5t::None,
            X5t::Bound(t) => X5t::Bound(t),
            X5t::Unreadable => X5t::Unreadable,
        }
    }
}

/// The `x5t#S256` confirmation of a claim set. A `cnf` that is not an object is unreadable, as
/// for `cnf.jkt` (src/verify/accepted.rs): a token cannot count as unbound by malforming it.
pub(crate) fn bound_thumbprint(claims: &Map<String, Value>) -> X5t<&str> {
    match claims.get("cnf") {
        None => X5t::None,
        Some(Value::Object(cnf)) => match cnf.get("x5t#S256") {
            None => X5t::None,
            Some(Value::String(t)) if !t.is_empty() => X5t::Bound(t.as_str()),
            Some(_) => X5t::Unreadable,
        },
        Some(_) => X5t::Unreadable,
    }
}

/// Applies the decision table of RFC 8705 section 3 to the token's
/// [`bound_thumbprint`]. `client_thumbprint` is only asked for when the token is bound.
pub(crate) fn check<'a>(
    bound: X5t<&str>,
    policy: MtlsPolicy,
    client_thumbprint: impl FnOnce() -> Option<&'a str>,
) -> Result<(), BindingError> {
    let expected = match bound {
        X5t::Bound(expected) => expected,
        X5t::Unreadable => return Err(BindingError::Unreadable),
        X5t::None => {
            return match policy {
                MtlsPolicy::Optional => Ok(()),
                MtlsPolicy::Required => Err(BindingError::NotBound),
            };
        }
    };
    let actual = client_thumbprint().ok_or(BindingError::NoCertificate)?;
    // Lengths are public (43 characters); the contents are compared in constant time.
    if crate::ct::eq(expected.as_bytes(), actual.as_bytes()) {
        Ok(())
    } else {
        Err(BindingError::Mismatch)
    }
}

/// base64url(SHA-256(DER)) without padding, of a PEM certificate as mod_ssl exports it.
/// `None` when the PEM cannot be decoded (then no binding can match).
pub(crate) fn thumbprint_of_pem(pem: &str) -> Option<String> {
    let der = crate::jose::key::certificate_der(pem).ok()?;
    Some(thumbprint_of_der(&der))
}

pub(crate) fn thumbprint_of_der(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(crate::digest::sha256(&[der]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";
    const OTHER: &str = "W_DFDhcqA-DnpEb8jNgGx0tIU-ZIe5wVMzdYl0nSJ6w";

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn run(cnf: Value, policy: MtlsPolicy, cert: Option<&str>) -> Result<(), BindingError> {
        let c = if cnf.is_null() {
            claims(json!({}))
        } else {
            claims(json!({ "cnf": cnf }))
        };
        check(bound_thumbprint(&c), policy, || cert)
    }

    #[test]
    fn decision_table_optional() {
        use MtlsPolicy::Optional as P;
        assert_eq!(run(json!({"x5t#S256": GOOD}), P, Some(GOOD)), Ok(()));
        assert_eq!(
            run(json!({"x5t#S256": GOOD}), P, Some(OTHER)),
            Err(BindingError::Mismatch)
        );
        assert_eq!(
            run(json!({"x5t#S256": GOOD}), P, None),
            Err(BindingError::NoCertificate)
        );
        assert_eq!(run(Value::Null, P, Some(GOOD)), Ok(()));
        assert_eq!(run(Value::Null, P, None), Ok(()));
        assert_eq!(run(json!({"jkt": "abc"}), P, None), Ok(()));
    }

    /// A binding that is there but cannot be read never counts as "unbound" (docs/compatibility.md,
    /// row "malformed `cnf`").
    #[test]
    fn unreadable_bindings_fail_closed_under_every_policy() {
        for policy in [MtlsPolicy::Optional, MtlsPolicy::Required] {
            for cnf in [
                json!({"x5t#S256": 5}),
                json!({"x5t#S256": [GOOD]}),
                json!({"x5t#S256": {"v": GOOD}}),
                json!({"x5t#S256": null}),
                json!({"x5t#S256": true}),
                json!({"x5t#S256": ""}),
                json!("x5t#S256"),
                json!([{"x5t#S256": GOOD}]),
                json!(7),
            ] {
                for cert in [None, Some(GOOD)] {
                    assert_eq!(
                        run(cnf.clone(), policy, cert),
                        Err(BindingError::Unreadable),
                        "{cnf} {policy:?} {cert:?}"
                    );
                }
            }
        }
        // `"cnf": null` is present too.
        let c = claims(json!({"cnf": null}));
        assert_eq!(bound_thumbprint(&c), X5t::Unreadable);
    }

    #[test]
    fn decision_table_required() {
        use MtlsPolicy::Required as P;
        assert_eq!(run(json!({"x5t#S256": GOOD}), P, Some(GOOD)), Ok(()));
        assert_eq!(
            run(json!({"x5t#S256": GOOD}), P, Some(OTHER)),
            Err(BindingError::Mismatch)
        );
        assert_eq!(
            run(json!({"x5t#S256": GOOD}), P, None),
            Err(BindingError::NoCertificate)
        );
        assert_eq!(run(Value::Null, P, Some(GOOD)), Err(BindingError::NotBound));
        assert_eq!(
            run(json!({"jkt": "abc"}), P, Some(GOOD)),
            Err(BindingError::NotBound)
        );
    }

    #[test]
    fn padded_thumbprint_does_not_match() {
        let padded = format!("{GOOD}=");
        assert_eq!(
            run(
                json!({"x5t#S256": padded}),
                MtlsPolicy::Required,
                Some(GOOD)
            ),
            Err(BindingError::Mismatch)
        );
    }

    #[test]
    fn policy_parsing_follows_the_c_module() {
        assert_eq!(MtlsPolicy::parse(Some("optional")), MtlsPolicy::Optional);
        assert_eq!(MtlsPolicy::parse(Some("Optional")), MtlsPolicy::Required);
        assert_eq!(MtlsPolicy::parse(Some("required")), MtlsPolicy::Required);
        assert_eq!(MtlsPolicy::parse(None), MtlsPolicy::Required);
    }

    #[test]
    fn thumbprint_of_a_generated_certificate() {
        use openssl::hash::MessageDigest;
        let cert = crate::test_support::self_signed_cert("client");
        let pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
        let expected = URL_SAFE_NO_PAD.encode(cert.digest(MessageDigest::sha256()).unwrap());
        assert_eq!(thumbprint_of_pem(&pem).as_deref(), Some(expected.as_str()));
        assert_eq!(expected.len(), 43);
        assert_eq!(thumbprint_of_pem("not a pem"), None);
    }
}
