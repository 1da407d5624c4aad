//! `aws_alb`: tokens an AWS Application Load Balancer puts in `x-amzn-oidc-data`. They are ES256
//! JWS with `=` padding, whose header names the load balancer (`signer`), the key (`kid`) and the
//! expiry (`exp`); the payload holds the identity provider's user claims.

use serde_json::{Map, Value};

use super::claims::{ClaimError, numeric_date};
use super::{Accepted, Claims, ParsedToken, Verifier, VerifyError, verify_signature};
use crate::jose;
use crate::options::Requirement;
use crate::remote::alb::{AlbKeys, KeyFailure};

impl Verifier {
    /// The header first (no key is fetched for another load balancer's token), then the key its
    /// `kid` names, the signature over the segments exactly as sent, and the claims, with the
    /// header's `exp` as the token's expiry.
    pub(super) fn verify_alb(
        &self,
        token: &ParsedToken,
        alb: &AlbKeys,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let jws = token
            .padded_jws()
            .as_ref()
            .map_err(|e| VerifyError::Malformed(e.clone()))?;
        let kid = alb.check_header(&jws.header).map_err(VerifyError::Alb)?;
        let keys = alb.keys_for(kid).map_err(|failure| match failure {
            KeyFailure::Alb(e) => VerifyError::Alb(e),
            KeyFailure::Unavailable(e) => VerifyError::KeysUnavailable(e),
        })?;
        verify_signature(jws, &keys)?;
        let mut claims =
            jose::json::parse_object_as(&jws.payload, "payload").map_err(VerifyError::Payload)?;
        with_header_exp(&mut claims, &jws.header.raw, self.claims.exp)
            .map_err(VerifyError::Claims)?;
        self.claims
            .check(&claims, now)
            .map_err(VerifyError::Claims)?;
        Ok(Accepted::new(claims))
    }
}

/// The header's `exp` becomes the claim set's `exp` when the payload has none or a later one, so
/// that the claim checks, the result caches (never past `exp`) and the backend all see when the
/// token expires. `verify.exp=skip` leaves both alone.
fn with_header_exp(
    claims: &mut Map<String, Value>,
    header: &Map<String, Value>,
    rule: Requirement,
) -> Result<(), ClaimError> {
    if rule == Requirement::Skip {
        return Ok(());
    }
    let (Some(exp), Some(value)) = (numeric_date(header, "exp")?, header.get("exp")) else {
        return Ok(());
    };
    if numeric_date(claims, "exp")?.is_none_or(|payload_exp| exp < payload_exp) {
        claims.insert("exp".into(), value.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{Jws, Key};
    use serde_json::json;

    /// A token in the form an ALB sends (padded segments; `signer`, `kid`, `exp` and more in the
    /// header; no `exp` in the payload), from liboauth2's test suite, and the key it verifies with.
    const ALB_TOKEN: &str = concat!(
        "eyJ0eXAiOiJKV1QiLCJraWQiOiIwOWQ0ZmExNy0yMjNlLTQwZmEtYjI4MC04OTRlODQzZDcwMWYiLCJhbGciOiJFUzI1NiIsImlzcyI6",
        "Imh0dHBzOi8vYWNjb3VudHMuZ29vZ2xlLmNvbSIsImNsaWVudCI6IjY4NjMwMzIzMzEzMS1wZjA4b3J2YzVyY3BmaXQwdmxxNW82dWg0",
        "N3UyZW5mZy5hcHBzLmdvb2dsZXVzZXJjb250ZW50LmNvbSIsInNpZ25lciI6ImFybjphd3M6ZWxhc3RpY2xvYWRiYWxhbmNpbmc6ZXUt",
        "Y2VudHJhbC0xOjAwNjE3NTk0MDQ5NDpsb2FkYmFsYW5jZXIvYXBwL2JhbGFuY2VyMS8xODE3NThhZTJiMGMzZWRlIiwiZXhwIjoxNTQy",
        "MDQ1Mzk5fQ==.",
        "ewogICJzdWIiOiAiMTA5NzE2NDkyNjgxNjg2MTcyOTY5IiwKICAibmFtZSI6ICJIYW5zIFphbmRiZWx0IiwKICAiZ2l2ZW5fbmFtZSI6",
        "ICJIYW5zIiwKICAiZmFtaWx5X25hbWUiOiAiWmFuZGJlbHQiLAogICJwcm9maWxlIjogImh0dHBzOi8vcGx1cy5nb29nbGUuY29tLzEw",
        "OTcxNjQ5MjY4MTY4NjE3Mjk2OSIsCiAgInBpY3R1cmUiOiAiaHR0cHM6Ly9saDMuZ29vZ2xldXNlcmNvbnRlbnQuY29tLy1pOUc3U1V2",
        "S1FETS9BQUFBQUFBQUFBSS9BQUFBQUFBQUFBQS9zeEFzTk5FVlJWZy9waG90by5qcGciCn0=.",
        "AlH8PGya9avWoGVkWOFWbMNiLdpSDQZqP-OuGfIXHw1CZWjxfJInXYiRsKRZlvlXJA5fguaeNKZ1Q_RyDjNqRg=="
    );
    const ALB_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXJ+33eo/U6z4PGV0++Qdj1Ev2363\n\
                           47i7PxTx8Tr87RYHXIIXLRmH1aIz0OVLt4eM9iXDlDGB6ldBFsM8P61nqQ==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn a_token_as_alb_makes_it_verifies_read_padded_only() {
        let key = Key::from_pem_public_key(ALB_KEY).unwrap();
        let jws = Jws::parse_padded(ALB_TOKEN).unwrap();
        assert_eq!(key.verify(&jws), Ok(()));
        assert_eq!(
            jws.header.raw.get("signer").and_then(Value::as_str),
            Some(
                "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/balancer1/181758ae2b0c3ede"
            )
        );
        assert_eq!(
            jws.header.kid.as_deref(),
            Some("09d4fa17-223e-40fa-b280-894e843d701f")
        );
        assert!(
            Jws::parse(ALB_TOKEN).is_err(),
            "every other verifier stays strict"
        );
        // The signature covers the segments as sent: the same token without padding does not verify.
        let unpadded = ALB_TOKEN.replace('=', "");
        let jws = Jws::parse_padded(&unpadded).unwrap();
        assert!(key.verify(&jws).is_err());
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_header_exp_is_the_token_expiry() {
        let header = map(json!({"alg": "ES256", "exp": 1000}));
        let mut claims = map(json!({"sub": "a"}));
        with_header_exp(&mut claims, &header, Requirement::Required).unwrap();
        assert_eq!(
            claims["exp"],
            json!(1000),
            "added when the payload has none"
        );

        let mut claims = map(json!({"sub": "a", "exp": 2000}));
        with_header_exp(&mut claims, &header, Requirement::Optional).unwrap();
        assert_eq!(claims["exp"], json!(1000), "the earlier one wins");

        let mut claims = map(json!({"sub": "a", "exp": 500}));
        with_header_exp(&mut claims, &header, Requirement::Optional).unwrap();
        assert_eq!(claims["exp"], json!(500));

        let mut claims = map(json!({"sub": "a"}));
        with_header_exp(&mut claims, &header, Requirement::Skip).unwrap();
        assert!(!claims.contains_key("exp"), "verify.exp=skip");

        let bad = map(json!({"alg": "ES256", "exp": "1000"}));
        let mut claims = map(json!({"sub": "a"}));
        assert_eq!(
            with_header_exp(&mut claims, &bad, Requirement::Required),
            Err(ClaimError::NotANumber("exp"))
        );
    }
}
