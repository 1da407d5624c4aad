//! What a cached result may be reused for: not by a stricter verifier, not after the token's `exp`.

use super::common::remote::*;
use super::common::*;
use super::support::*;
use serde_json::json;
use std::time::Duration;

/// A token without `exp` accepted at a location with `verify.exp=optional` is still refused at a
/// location with the default (required), although both use the same cache (the C module accepted
/// it from its cache).
#[test]
fn lax_acceptance_is_not_reused_by_a_strict_verifier() {
    let signer = TokenSigner::ec("ls");
    let body = [
        oauth2_location("/lax", &jwk_verify(&signer, "verify.exp=optional")),
        oauth2_location("/strict", &jwk_verify(&signer, "")),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(cache_line("shm", "")));
    let mut f = Failures::new();
    let no_exp = signer.mint(&without(claims("lax-user"), "exp"));
    for i in 0..2 {
        let r = h.https("/lax/ok").bearer(&no_exp).send();
        f.expect(&format!("no exp at /lax #{i}"), &r, 200, None);
    }
    let r = h.https("/strict/ok").bearer(&no_exp).send();
    f.expect("no exp at /strict after /lax", &r, 401, Some(INVALID_TOKEN));
    let r = h.http("/strict/ok").bearer(&no_exp).send();
    f.expect(
        "no exp at /strict (other vhost) after /lax",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    // and the reverse order
    let other = signer.mint(&without(claims("lax-user2"), "exp"));
    let r = h.https("/strict/ok").bearer(&other).send();
    f.expect("no exp at /strict first", &r, 401, Some(INVALID_TOKEN));
    let r = h.https("/lax/ok").bearer(&other).send();
    f.expect("no exp at /lax after /strict", &r, 200, None);
    // a token with exp is accepted at both
    let good = signer.mint(&claims("lax-user3"));
    f.expect(
        "exp at /lax",
        &h.https("/lax/ok").bearer(&good).send(),
        200,
        None,
    );
    f.expect(
        "exp at /strict",
        &h.https("/strict/ok").bearer(&good).send(),
        200,
        None,
    );
    finish(f, &h);
}

#[test]
fn cached_token_is_refused_after_its_exp() {
    let signer = TokenSigner::ec("ex");
    let line = jwk_verify(&signer, "expiry=300");
    let body = [oauth2_location("/e", &line), oauth2_location("/e2", &line)].concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    let exp = now() + 3;
    let tok = signer.mint(&with(claims("short-lived"), json!({ "exp": exp })));
    let mark = h.log_mark();
    f.expect(
        "before exp /e",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e again",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e a third time",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e2",
        &h.https("/e2/ok").bearer(&tok).send(),
        200,
        None,
    );
    let o = origins(&accepted_for(&h.log_since(mark), "short-lived"));
    // Kept in shm first; this process's cache takes the token when it comes back.
    f.check(
        o == [
            Origin::Verified,
            Origin::Shared,
            Origin::Process,
            Origin::Shared,
        ],
        || {
            format!(
                "before exp: origins {o:?}, expected verified, shared cache, process cache, shared cache"
            )
        },
    );
    let after = poll(Duration::from_secs(6), || (now() > exp + 1).then_some(()));
    assert!(after.is_some(), "clock did not pass exp + 1 within 6 s");
    let r = h.https("/e/ok").bearer(&tok).send();
    f.expect(
        "after exp /e (front cache had it)",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/e2/ok").bearer(&tok).send();
    f.expect(
        "after exp /e2 (shared cache had it)",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.http("/e/ok").bearer(&tok).send();
    f.expect("after exp, other vhost", &r, 401, Some(INVALID_TOKEN));
    finish(f, &h);
}
