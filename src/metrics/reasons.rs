//! The reason labels of refused requests: every value [`Refusal::label`] (and
//! [`ClaimNotSatisfied::label`], a refusal of `Require oauth2_claim`) can return, in one fixed
//! list, so that each reason has its own counter in shared memory (found by index, not by a string
//! kept anywhere) and the label values of the metrics are bounded. A test reads the `label`
//! functions' source and checks that this list is exactly what they can return.
//!
//! [`Refusal::label`]: crate::refusal::Refusal::label
//! [`ClaimNotSatisfied::label`]: crate::authz::ClaimNotSatisfied::label

pub(crate) const REASONS: &[&str] = &[
    // The request (src/refusal.rs)
    "no_token",
    "no_verifier",
    "token_too_long",
    "not_verified",
    "no_remote_user",
    "claim_name_clash",
    // One verifier's reason (src/verify/mod.rs)
    "malformed",
    "unknown_kid",
    "bad_signature",
    "bad_payload",
    "keys_unavailable",
    "metadata_unavailable",
    "not_introspectable",
    "issuer_mismatch",
    // Claims (src/verify/claims.rs)
    "claim_missing",
    "claim_invalid",
    "expired",
    "not_yet_valid",
    "bad_iat",
    "wrong_issuer",
    "wrong_audience",
    // AWS ALB tokens (src/remote/alb.rs; "unknown_kid" is above)
    "wrong_alg",
    "no_signer",
    "wrong_signer",
    "bad_kid",
    "kid_throttled",
    // Introspection (src/remote/introspect.rs)
    "inactive",
    "introspection_unavailable",
    "introspection_bad_response",
    // RFC 8705 certificate binding (src/pop/mtls.rs)
    "not_bound",
    "no_certificate",
    "certificate_mismatch",
    "binding_unreadable",
    "forwarded_certificate_invalid",
    // RFC 9449 DPoP (src/refusal.rs, src/pop/dpop/error.rs)
    "dpop_scheme_missing",
    "dpop_binding_unreadable",
    "dpop_nonce",
    "dpop_replay",
    "dpop_before_start",
    "dpop_replay_unknown",
    "dpop_no_proof",
    "dpop_several_proofs",
    "dpop_too_large",
    "dpop_malformed",
    "dpop_wrong_typ",
    "dpop_alg_not_allowed",
    "dpop_jwk_missing",
    "dpop_jwk_not_object",
    "dpop_jwk_symmetric",
    "dpop_jwk_private",
    "dpop_jwk_unsupported",
    "dpop_jwk_rsa_size",
    "dpop_jwk_rsa_exponent",
    "dpop_jwk_alg_mismatch",
    "dpop_jwk_invalid",
    "dpop_payload_malformed",
    "dpop_claim_missing",
    "dpop_claim_type",
    "dpop_jti_invalid",
    "dpop_htm_mismatch",
    "dpop_htu_invalid",
    "dpop_request_url_invalid",
    "dpop_htu_mismatch",
    "dpop_iat_too_old",
    "dpop_iat_in_future",
    "dpop_ath_mismatch",
    "dpop_signature_invalid",
    "dpop_nonce_missing",
    "dpop_nonce_invalid",
    "dpop_token_not_bound",
    "dpop_jkt_mismatch",
    "dpop_internal",
    // Authorization after authentication (src/authz.rs)
    "claim_not_satisfied",
    // A label missing from this list (the test below prevents it): counted, not lost.
    OTHER,
];

pub(crate) const OTHER: &str = "other";

/// The counter of `label`; a label this list lacks counts as [`OTHER`].
pub(crate) fn index(label: &str) -> usize {
    REASONS
        .iter()
        .position(|r| *r == label)
        .unwrap_or(REASONS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The sources of every `fn label(&self) -> &'static str` that a refusal's label comes from.
    const SOURCES: &[(&str, &str)] = &[
        ("src/refusal.rs", include_str!("../refusal.rs")),
        ("src/verify/mod.rs", include_str!("../verify/mod.rs")),
        ("src/verify/claims.rs", include_str!("../verify/claims.rs")),
        (
            "src/remote/introspect.rs",
            include_str!("../remote/introspect.rs"),
        ),
        ("src/pop/mtls.rs", include_str!("../pop/mtls.rs")),
        ("src/remote/alb.rs", include_str!("../remote/alb.rs")),
        (
            "src/pop/dpop/error.rs",
            include_str!("../pop/dpop/error.rs"),
        ),
        ("src/authz.rs", include_str!("../authz.rs")),
    ];

    /// The string literals of the body of `fn label(&self)` in `source`.
    fn label_literals(path: &str, source: &str) -> Vec<String> {
        let start = source
            .find("fn label(&self) -> &'static str {")
            .unwrap_or_else(|| panic!("{path}: no fn label(&self)"));
        let body = &source[start..];
        let end = body
            .find("\n    }\n")
            .unwrap_or_else(|| panic!("{path}: fn label has no end"));
        body[..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_list_is_exactly_what_label_functions_return() {
        let mut returned = BTreeSet::new();
        for (path, source) in SOURCES {
            let found = label_literals(path, source);
            assert!(!found.is_empty(), "{path}: no label literal found");
            returned.extend(found);
        }
        let listed: BTreeSet<String> = REASONS
            .iter()
            .filter(|r| **r != OTHER)
            .map(|r| r.to_string())
            .collect();
        let missing: Vec<_> = returned.difference(&listed).collect();
        let unused: Vec<_> = listed.difference(&returned).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "labels returned but not listed: {missing:?}; listed but never returned: {unused:?}"
        );
        assert_eq!(
            REASONS.len(),
            listed.len() + 1,
            "a label is listed twice, or `other` is not last"
        );
    }

    #[test]
    fn labels_are_metric_safe_and_index_round_trips() {
        for (i, r) in REASONS.iter().enumerate() {
            assert!(
                !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
            assert_eq!(index(r), i);
        }
        assert_eq!(index("no such label"), REASONS.len() - 1);
        assert_eq!(REASONS[REASONS.len() - 1], OTHER);
    }
}
