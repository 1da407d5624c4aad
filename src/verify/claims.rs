//! Checks of the registered JWT claims (`exp`, `nbf`, `iat`, `iss`, `aud`) against one verifier's
//! policy. Time claims must be JSON numbers when present: a string `exp` is never "absent".

use serde_json::{Map, Value};
use std::fmt;

use crate::options::Requirement;

/// Latest NumericDate we accept (9999-12-31T23:59:59Z): larger values are nonsense or an overflow attempt.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// The claim-validation settings of one `OAuth2TokenVerify` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClaimPolicy {
    pub(crate) exp: Requirement,
    pub(crate) nbf: Requirement,
    pub(crate) iat: Requirement,
    /// Reject `iat` older than now minus this many seconds (unset: no "too old" check).
    pub(crate) iat_slack_before: Option<i64>,
    /// Accept `iat` (and `nbf`) up to this many seconds in the future (clock skew).
    pub(crate) iat_slack_after: i64,
    pub(crate) iss: Requirement,
    pub(crate) expected_iss: Option<String>,
    pub(crate) aud: Requirement,
    pub(crate) expected_aud: Option<String>,
}

impl Default for ClaimPolicy {
    /// The newer liboauth2 defaults: `exp` required, `nbf`/`iat` checked when present.
    fn default() -> Self {
        ClaimPolicy {
            exp: Requirement::Required,
            nbf: Requirement::Optional,
            iat: Requirement::Optional,
            iat_slack_before: None,
            iat_slack_after: 10,
            iss: Requirement::Optional,
            expected_iss: None,
            aud: Requirement::Optional,
            expected_aud: None,
        }
    }
}

/// Why a claim check failed; shown in the log line of the refusal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClaimError {
    Missing(&'static str),
    NotANumber(&'static str),
    OutOfRange(&'static str),
    Expired { exp: i64, now: i64 },
    NotYetValid { nbf: i64, now: i64 },
    IssuedInFuture { iat: i64, now: i64 },
    IssuedTooLongAgo { iat: i64, now: i64 },
    IssuerMismatch,
    AudienceMismatch,
    NotAString(&'static str),
}

impl ClaimError {
    /// A short stable name for the reason (for metrics).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            ClaimError::Missing(_) => "claim_missing",
            ClaimError::NotANumber(_) | ClaimError::OutOfRange(_) | ClaimError::NotAString(_) => {
                "claim_invalid"
            }
            ClaimError::Expired { .. } => "expired",
            ClaimError::NotYetValid { .. } => "not_yet_valid",
            ClaimError::IssuedInFuture { .. } | ClaimError::IssuedTooLongAgo { .. } => "bad_iat",
            ClaimError::IssuerMismatch => "wrong_issuer",
            ClaimError::AudienceMismatch => "wrong_audience",
        }
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Missing(c) => write!(f, "required claim \"{c}\" is missing"),
            ClaimError::NotANumber(c) => write!(f, "claim \"{c}\" is not a JSON number"),
            ClaimError::OutOfRange(c) => write!(f, "claim \"{c}\" is out of range"),
            ClaimError::Expired { exp, now } => {
                write!(f, "token expired (exp {exp}, now {now})")
            }
            ClaimError::NotYetValid { nbf, now } => {
                write!(f, "token not yet valid (nbf {nbf}, now {now})")
            }
            ClaimError::IssuedInFuture { iat, now } => {
                write!(f, "token issued in the future (iat {iat}, now {now})")
            }
            ClaimError::IssuedTooLongAgo { iat, now } => {
                write!(f, "token issued too long ago (iat {iat}, now {now})")
            }
            ClaimError::IssuerMismatch => write!(f, "issuer (iss) is not the expected one"),
            ClaimError::AudienceMismatch => {
                write!(f, "audience (aud) does not contain the expected one")
            }
            ClaimError::NotAString(c) => write!(f, "claim \"{c}\" is not a string"),
        }
    }
}

/// A time claim: `None` when absent or null, an error when present but not a sane NumericDate.
pub(super) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, ClaimError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or(ClaimError::OutOfRange(name))?;
            if !v.is_finite() || v.abs() > MAX_NUMERIC_DATE {
                return Err(ClaimError::OutOfRange(name));
            }
            Ok(Some(v))
        }
        Some(_) => Err(ClaimError::NotANumber(name)),
    }
}

/// RFC 7519 4.1.4: the current time must be before exp.
fn check_exp(exp: f64, now: i64) -> Result<(), ClaimError> {
    if now as f64 >= exp {
        return Err(ClaimError::Expired {
            exp: exp as i64,
            now,
        });
    }
    Ok(())
}

fn present(
    claims: &Map<String, Value>,
    name: &'static str,
    rule: Requirement,
) -> Result<Option<f64>, ClaimError> {
    if rule == Requirement::Skip {
        return Ok(None);
    }
    match numeric_date(claims, name)? {
        None if rule == Requirement::Required => Err(ClaimError::Missing(name)),
        v => Ok(v),
    }
}

/// The time claims of an accepted claim set, read once: a cached result is checked against the
/// clock again on every use, without looking the claims up each time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Times {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
}

impl Times {
    /// Unusable values are left out: a policy that checks them refused the claims already.
    pub(crate) fn of(claims: &Map<String, Value>) -> Times {
        let read = |name| numeric_date(claims, name).ok().flatten();
        Times {
            exp: read("exp"),
            nbf: read("nbf"),
            iat: read("iat"),
        }
    }
}

impl ClaimPolicy {
    /// Checks the claims at time `now` (seconds since the epoch).
    pub(crate) fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<(), ClaimError> {
        if let Some(exp) = present(claims, "exp", self.exp)? {
            check_exp(exp, now)?;
        }
        if let Some(nbf) = present(claims, "nbf", self.nbf)? {
            self.check_nbf(nbf, now)?;
        }
        if let Some(iat) = present(claims, "iat", self.iat)? {
            self.check_iat(iat, now)?;
        }
        self.check_iss(claims)?;
        self.check_aud(claims)
    }

    /// For claims this policy accepted before: only the rules that depend on the time can have
    /// changed their answer.
    pub(crate) fn recheck_times(&self, times: &Times, now: i64) -> Result<(), ClaimError> {
        let checked = |rule: Requirement, v: Option<f64>| v.filter(|_| rule != Requirement::Skip);
        if let Some(exp) = checked(self.exp, times.exp) {
            check_exp(exp, now)?;
        }
        if let Some(nbf) = checked(self.nbf, times.nbf) {
            self.check_nbf(nbf, now)?;
        }
        if let Some(iat) = checked(self.iat, times.iat) {
            self.check_iat(iat, now)?;
        }
        Ok(())
    }

    fn check_nbf(&self, nbf: f64, now: i64) -> Result<(), ClaimError> {
        if (now as f64) + (self.iat_slack_after as f64) < nbf {
            return Err(ClaimError::NotYetValid {
                nbf: nbf as i64,
                now,
            });
        }
        Ok(())
    }

    fn check_iat(&self, iat: f64, now: i64) -> Result<(), ClaimError> {
        let nowf = now as f64;
        if nowf + (self.iat_slack_after as f64) < iat {
            return Err(ClaimError::IssuedInFuture {
                iat: iat as i64,
                now,
            });
        }
        if let Some(before) = self.iat_slack_before {
            if nowf - (before as f64) > iat {
                return Err(ClaimError::IssuedTooLongAgo {
                    iat: iat as i64,
                    now,
                });
            }
        }
        Ok(())
    }

    fn check_iss(&self, claims: &Map<String, Value>) -> Result<(), ClaimError> {
        if self.iss == Requirement::Skip {
            return Ok(());
        }
        match claims.get("iss") {
            None | Some(Value::Null) if self.iss == Requirement::Required => {
                Err(ClaimError::Missing("iss"))
            }
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(iss)) => match &self.expected_iss {
                Some(expected) if iss != expected => Err(ClaimError::IssuerMismatch),
                _ => Ok(()),
            },
            Some(_) if self.iss == Requirement::Required || self.expected_iss.is_some() => {
                Err(ClaimError::NotAString("iss"))
            }
            Some(_) => Ok(()),
        }
    }

    fn check_aud(&self, claims: &Map<String, Value>) -> Result<(), ClaimError> {
        if self.aud == Requirement::Skip {
            return Ok(());
        }
        let aud = match claims.get("aud") {
            None | Some(Value::Null) if self.aud == Requirement::Required => {
                return Err(ClaimError::Missing("aud"));
            }
            None | Some(Value::Null) => return Ok(()),
            Some(v) => v,
        };
        let Some(expected) = &self.expected_aud else {
            return Ok(());
        };
        let matches = match aud {
            Value::String(s) => s == expected,
            Value::Array(items) => items.iter().any(|i| i.as_str() == Some(expected)),
            _ => false,
        };
        if matches {
            Ok(())
        } else {
            Err(ClaimError::AudienceMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test claims are objects"),
        }
    }

    fn check(policy: &ClaimPolicy, v: Value) -> Result<(), ClaimError> {
        policy.check(&claims(v), NOW)
    }

    #[test]
    fn valid_token_passes() {
        let p = ClaimPolicy::default();
        assert_eq!(
            check(&p, json!({"exp": NOW + 60, "iat": NOW, "nbf": NOW})),
            Ok(())
        );
    }

    #[test]
    fn exp_is_required_by_default() {
        assert_eq!(
            check(&ClaimPolicy::default(), json!({})),
            Err(ClaimError::Missing("exp"))
        );
        let lax = ClaimPolicy {
            exp: Requirement::Optional,
            ..Default::default()
        };
        assert_eq!(check(&lax, json!({})), Ok(()));
    }

    #[test]
    fn expired_and_exactly_now_are_rejected() {
        let p = ClaimPolicy::default();
        assert!(matches!(
            check(&p, json!({"exp": NOW - 1})),
            Err(ClaimError::Expired { .. })
        ));
        assert!(matches!(
            check(&p, json!({"exp": NOW})),
            Err(ClaimError::Expired { .. })
        ));
    }

    #[test]
    fn fractional_exp_is_a_number() {
        let p = ClaimPolicy::default();
        assert_eq!(check(&p, json!({"exp": (NOW as f64) + 0.5})), Ok(()));
    }

    #[test]
    fn string_exp_is_rejected_even_when_optional() {
        let lax = ClaimPolicy {
            exp: Requirement::Optional,
            ..Default::default()
        };
        let e = check(&lax, json!({"exp": "9999999999"}));
        assert_eq!(e, Err(ClaimError::NotANumber("exp")));
    }

    #[test]
    fn absurd_exp_is_rejected() {
        let p = ClaimPolicy::default();
        assert_eq!(
            check(&p, json!({"exp": 1e300})),
            Err(ClaimError::OutOfRange("exp"))
        );
    }

    /// Time claims as a token carries them (the strict parser, then the check): every spelling of
    /// a number JSON allows reads as that number; what JSON does not allow, or what overflows,
    /// never reaches the check; milliseconds (a common issuer mistake) are out of range.
    #[test]
    fn time_claim_number_spellings() {
        let p = ClaimPolicy::default();
        let parse = |text: &str| crate::jose::json::parse_object_as(text.as_bytes(), "payload");
        let later = NOW + 60;
        for ok in [
            format!("{later}"),
            format!("{later}.0"),
            format!("{later}.999"),
            format!("{}e1", later / 10),
            format!("{}E+1", later / 10),
            format!("{later}000e-3"),
        ] {
            let claims = parse(&format!(r#"{{"exp":{ok}}}"#)).unwrap();
            assert_eq!(p.check(&claims, NOW), Ok(()), "{ok}");
        }
        for (spelling, want) in [
            ("-0", "expired"),
            ("-0.0", "expired"),
            ("1e-400", "expired"),
            ("-253402300799", "expired"),
            ("1800000060000", "claim_invalid"),
            ("253402300799.5", "claim_invalid"),
            ("18446744073709551616", "claim_invalid"),
            ("1e300", "claim_invalid"),
        ] {
            let claims = parse(&format!(r#"{{"exp":{spelling}}}"#)).unwrap();
            let got = p.check(&claims, NOW).map_err(|e| e.label());
            assert_eq!(got, Err(want), "{spelling}");
        }
        for not_json in [
            "1e400", "-1e400", "+1", ".5", "01", "NaN", "Infinity", "0x10",
        ] {
            assert!(
                parse(&format!(r#"{{"exp":{not_json}}}"#)).is_err(),
                "{not_json}"
            );
        }
    }

    #[test]
    fn skip_ignores_even_garbage() {
        let p = ClaimPolicy {
            exp: Requirement::Skip,
            ..Default::default()
        };
        assert_eq!(check(&p, json!({"exp": "garbage"})), Ok(()));
    }

    #[test]
    fn nbf_in_future_is_rejected_beyond_slack() {
        let p = ClaimPolicy::default();
        let base = json!({"exp": NOW + 600});
        let mut c = claims(base);
        c.insert("nbf".into(), json!(NOW + 120));
        assert!(matches!(
            p.check(&c, NOW),
            Err(ClaimError::NotYetValid { .. })
        ));
        c.insert("nbf".into(), json!(NOW + 5));
        assert_eq!(p.check(&c, NOW), Ok(()));
    }

    #[test]
    fn iat_too_new_and_too_old() {
        let p = ClaimPolicy {
            iat_slack_before: Some(60),
            ..Default::default()
        };
        assert!(matches!(
            check(&p, json!({"exp": NOW + 600, "iat": NOW + 12})),
            Err(ClaimError::IssuedInFuture { .. })
        ));
        assert_eq!(check(&p, json!({"exp": NOW + 600, "iat": NOW + 9})), Ok(()));
        assert!(matches!(
            check(&p, json!({"exp": NOW + 600, "iat": NOW - 61})),
            Err(ClaimError::IssuedTooLongAgo { .. })
        ));
    }

    /// A cached result meets the clock again: the same time rules as the full check, read from
    /// the times taken once; skipped rules stay skipped.
    #[test]
    fn recheck_times_agrees_with_check_as_time_passes() {
        let p = ClaimPolicy {
            iat_slack_before: Some(60),
            ..Default::default()
        };
        let c = claims(json!({"exp": NOW + 30, "nbf": NOW + 20, "iat": NOW + 15, "sub": "a"}));
        let times = Times::of(&c);
        for now in [NOW, NOW + 5, NOW + 10, NOW + 29, NOW + 30, NOW + 80] {
            assert_eq!(p.recheck_times(&times, now), p.check(&c, now), "at {now}");
        }
        assert!(matches!(
            p.recheck_times(&times, NOW + 30),
            Err(ClaimError::Expired { .. })
        ));
        let skip = ClaimPolicy {
            exp: Requirement::Skip,
            nbf: Requirement::Skip,
            iat: Requirement::Skip,
            ..Default::default()
        };
        assert_eq!(skip.recheck_times(&times, NOW + 1_000), Ok(()));
        assert_eq!(Times::of(&claims(json!({"exp": "soon"}))), Times::default());
    }

    #[test]
    fn iat_required_when_configured() {
        let p = ClaimPolicy {
            iat: Requirement::Required,
            ..Default::default()
        };
        assert_eq!(
            check(&p, json!({"exp": NOW + 600})),
            Err(ClaimError::Missing("iat"))
        );
    }

    #[test]
    fn issuer_is_matched_exactly() {
        let p = ClaimPolicy {
            iss: Requirement::Required,
            expected_iss: Some("https://as.example".into()),
            ..Default::default()
        };
        assert_eq!(
            check(&p, json!({"exp": NOW + 9, "iss": "https://as.example"})),
            Ok(())
        );
        assert_eq!(
            check(&p, json!({"exp": NOW + 9, "iss": "https://evil"})),
            Err(ClaimError::IssuerMismatch)
        );
        assert_eq!(
            check(&p, json!({"exp": NOW + 9})),
            Err(ClaimError::Missing("iss"))
        );
    }

    #[test]
    fn required_issuer_without_expected_value_needs_presence() {
        let p = ClaimPolicy {
            iss: Requirement::Required,
            ..Default::default()
        };
        assert_eq!(check(&p, json!({"exp": NOW + 9, "iss": "x"})), Ok(()));
        assert_eq!(
            check(&p, json!({"exp": NOW + 9})),
            Err(ClaimError::Missing("iss"))
        );
    }

    #[test]
    fn audience_string_or_array_membership() {
        let p = ClaimPolicy {
            aud: Requirement::Required,
            expected_aud: Some("api".into()),
            ..Default::default()
        };
        assert_eq!(check(&p, json!({"exp": NOW + 9, "aud": "api"})), Ok(()));
        assert_eq!(
            check(&p, json!({"exp": NOW + 9, "aud": ["x", "api"]})),
            Ok(())
        );
        assert_eq!(
            check(&p, json!({"exp": NOW + 9, "aud": ["x", ""]})),
            Err(ClaimError::AudienceMismatch)
        );
        assert_eq!(
            check(&p, json!({"exp": NOW + 9, "aud": "other"})),
            Err(ClaimError::AudienceMismatch)
        );
        assert_eq!(
            check(&p, json!({"exp": NOW + 9})),
            Err(ClaimError::Missing("aud"))
        );
    }
}
