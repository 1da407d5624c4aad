//! The seed configuration under each MPM (event, worker, prefork), with concurrent requests, and
//! across graceful restarts (the module is unloaded and reloaded by httpd each time).

mod common;

use common::*;
use serde_json::json;

fn seed_body(signer: &TokenSigner) -> String {
    format!(
        "<Location /seed>\nAuthType oauth2\nOAuth2TokenVerify jwk {} type=mtls&mtls.policy=optional\nRequire valid-user\n</Location>\n",
        signer.seed_jwk_arg()
    )
}

/// Good and bad requests against /seed; every expectation is collected into `f`.
fn exercise(h: &Httpd, signer: &TokenSigner, f: &mut Failures, when: &str) {
    let bound = signer.mint(&with(
        claims("joe"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_a } }),
    ));
    let unbound = signer.mint(&claims("ann"));
    let r = h
        .https("/seed/env")
        .cert(ClientCert::A)
        .bearer(&bound)
        .send();
    f.expect(&format!("{when}: bound token, cert A"), &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("joe"),
            || format!("{when}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
    }
    let r = h.https("/seed/ok").bearer(&unbound).send();
    f.expect(&format!("{when}: unbound token"), &r, 200, None);
    let r = h
        .https("/seed/ok")
        .cert(ClientCert::B)
        .bearer(&bound)
        .send();
    f.expect(
        &format!("{when}: bound token, cert B"),
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h
        .https("/seed/ok")
        .cert(ClientCert::A)
        .bearer(&tamper_signature(&bound))
        .send();
    f.expect(
        &format!("{when}: bad signature"),
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.http("/seed/ok").bearer(&bound).send();
    f.expect(
        &format!("{when}: bound token over plain HTTP"),
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/seed/ok").send();
    f.expect(&format!("{when}: no token"), &r, 401, Some(NO_TOKEN));
}

/// 12 concurrent clients, alternating good and bad tokens.
fn concurrent(h: &Httpd, signer: &TokenSigner, f: &mut Failures, when: &str) {
    let good = signer.mint(&with(
        claims("joe"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_a } }),
    ));
    let bad = tamper_signature(&good);
    let results: Vec<(usize, Result<Response, String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let tok = if i % 2 == 0 { &good } else { &bad };
                s.spawn(move || {
                    (
                        i,
                        h.https("/seed/ok")
                            .cert(ClientCert::A)
                            .bearer(tok)
                            .try_send(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (i, r) in results {
        match r {
            Ok(r) => {
                let want = if i % 2 == 0 { 200 } else { 401 };
                f.expect(&format!("{when}: concurrent #{i}"), &r, want, None);
            }
            Err(e) => f.check(false, || format!("{when}: concurrent #{i}: {e}")),
        }
    }
}

fn run_mpm(mpm: Mpm) {
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(seed_body(&signer)).mpm(mpm));
    let mut f = Failures::new();
    exercise(&h, &signer, &mut f, &format!("{mpm:?}"));
    concurrent(&h, &signer, &mut f, &format!("{mpm:?}"));
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn seed_under_event() {
    run_mpm(Mpm::Event);
}

#[test]
fn seed_under_worker() {
    run_mpm(Mpm::Worker);
}

#[test]
fn seed_under_prefork() {
    run_mpm(Mpm::Prefork);
}

fn run_graceful(mpm: Mpm) {
    let signer = TokenSigner::rsa("one");
    let mut h = Httpd::start(HttpdConfig::new(seed_body(&signer)).mpm(mpm));
    let mut f = Failures::new();
    exercise(&h, &signer, &mut f, &format!("{mpm:?} before graceful"));
    for i in 1..=3 {
        h.graceful();
        exercise(&h, &signer, &mut f, &format!("{mpm:?} after graceful #{i}"));
    }
    concurrent(&h, &signer, &mut f, &format!("{mpm:?} after 3 gracefuls"));
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn graceful_restarts_event() {
    run_graceful(Mpm::Event);
}

#[test]
fn graceful_restarts_prefork() {
    run_graceful(Mpm::Prefork);
}
