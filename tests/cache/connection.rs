//! Keep-alive requests with the same token are answered from the connection's memo.

use super::common::remote::*;
use super::common::*;
use super::support::*;
use serde_json::json;

/// A keep-alive client sends its token on every request: from the second request on, the
/// connection's memo answers (no hash, no cache lookup). A new connection, another token, or a
/// token bound to another certificate does not get the memo's answer.
#[test]
fn keep_alive_requests_with_the_same_token_use_the_connection_memo() {
    let signer = TokenSigner::rsa("ka");
    let bound_line = format!(
        "{}\n",
        jwk_verify(&signer, "type=mtls&mtls.policy=optional")
    );
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/ka", &bound_line)).server(single_process()),
    );
    let mut f = Failures::new();
    let alice = signer.mint(&claims("ka-alice"));
    let bob = signer.mint(&claims("ka-bob"));
    let bound = signer.mint(&with(
        claims("ka-carol"),
        json!({"cnf": {"x5t#S256": h.pki.thumb(ClientCert::A)}}),
    ));

    let mut run =
        |what: &str, tokens: &[&str], cert, statuses: &[u16], users: &[(&str, &[Origin])]| {
            let mark = h.log_mark();
            let answers = h.keep_alive("/ka/ok", tokens, cert);
            let got: Vec<u16> = answers.iter().map(|a| a.0).collect();
            f.check(got == statuses, || {
                format!("{what}: statuses {got:?}, expected {statuses:?}")
            });
            let opened = answers.iter().filter(|a| a.1).count();
            f.check(opened == 1, || {
                format!("{what}: {opened} connections opened, expected 1")
            });
            let log = h.wait_log_since(mark, |t| {
                users
                    .iter()
                    .all(|(u, want)| accepted_for(t, u).len() >= want.len())
            });
            for (user, want) in users {
                let o = origins(&accepted_for(&log, user));
                f.check(o == *want, || {
                    format!("{what}: {user} {o:?}, expected {want:?}")
                });
            }
        };
    use Origin::*;
    run(
        "same token three times",
        &[&alice, &alice, &alice],
        None,
        &[200, 200, 200],
        &[("ka-alice", &[Verified, Connection, Connection])],
    );
    run(
        "the same token on a new connection",
        &[&alice],
        None,
        &[200],
        // with shm, a result enters this process's cache on its second use from there
        &[("ka-alice", &[Shared])],
    );
    run(
        "tokens changing on one connection",
        &[&bob, &bob, &alice, &bob],
        None,
        &[200, 200, 200, 200],
        &[
            ("ka-bob", &[Verified, Connection, Shared]),
            ("ka-alice", &[Process]),
        ],
    );
    run(
        "a bound token with its certificate",
        &[&bound, &bound],
        Some(ClientCert::A),
        &[200, 200],
        &[("ka-carol", &[Verified, Connection])],
    );
    // The binding is checked on every request, memo or not: another certificate gets nothing.
    run(
        "a bound token with another certificate",
        &[&bound, &bound],
        Some(ClientCert::B),
        &[401, 401],
        &[],
    );
    finish(f, &h);
}
