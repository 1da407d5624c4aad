//! RFC 7662 introspection against a real authorization server (npm `oidc-provider` in
//! `tests/realas/`, one per test binary): opaque tokens active and revoked, the claims of the
//! introspection response at the backend, certificate-bound opaque tokens (`cnf.x5t#S256` in the
//! response) under `type=mtls`, every endpoint authentication method (`client_secret_basic`,
//! `client_secret_post`, `client_secret_jwt`, `private_key_jwt`, `client_cert`, `basic`, `none`)
//! with right and wrong credentials, and `metadata` with both a JWKS and an introspection
//! endpoint.
//!
//! The AS's introspection responses for client_credentials tokens carry no `sub`: every location
//! takes REMOTE_USER from `client_id`.

mod common;

use common::remote::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const USER_FROM_CLIENT_ID: &str = "OAuth2TargetPass remote_user_claim=client_id";

/// `introspect.ca_file` + client_secret_basic as `rs-client`.
fn rs_opts(a: &RealAs) -> Opts {
    Opts::new()
        .path("introspect.ca_file", &a.pki.ca_cert)
        .kv("introspect.auth", "client_secret_basic")
        .kv("client_id", RS_CLIENT.0)
        .kv("client_secret", RS_CLIENT.1)
}

fn location(path: &str, verify: &str) -> String {
    oauth2_location(path, &format!("{verify}\n{USER_FROM_CLIENT_ID}"))
}

fn finish(f: Failures, a: &RealAs, h: &Httpd) {
    if !f.all_passed() {
        let log = h.error_log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("oauth2")).collect();
        eprintln!(
            "--- AS log (tail) ---\n{}\n--- httpd error_log (oauth2 lines, tail) ---\n{}",
            a.log_tail(30),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    f.assert_none();
}

/// Harness self-test (no httpd): the AS issues opaque and JWT tokens, introspects and revokes.
#[test]
fn real_as_issues_introspects_and_revokes() {
    let a = real_as();
    let t = a.token(AsClient::Basic, "/opaque", "read write");
    assert_eq!(t.split('.').count(), 1, "opaque token expected: {t}");
    let i = a.introspect(&t);
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "basic-client", "{i}");
    assert_eq!(i["scope"], "read write", "{i}");
    assert!(i.get("sub").is_none(), "{i}");
    a.revoke(&t);
    assert_eq!(a.introspect(&t), json!({ "active": false }));

    let t = a.token(AsClient::SelfSigned, "/opaque", "read");
    let i = a.introspect(&t);
    assert_eq!(i["cnf"]["x5t#S256"], a.pki.thumb_self.as_str(), "{i}");
    let t = a.token(AsClient::Pki, "/opaque", "read");
    let i = a.introspect(&t);
    assert_eq!(i["cnf"]["x5t#S256"], a.pki.thumb_pki.as_str(), "{i}");

    let j = a.token(AsClient::Basic, "/eddsa", "read");
    assert_eq!(jwt_header(&j)["alg"], "EdDSA");
    assert_eq!(jwt_payload(&j)["iss"], a.issuer.as_str());
}

#[test]
fn opaque_tokens_active_and_revoked() {
    let a = real_as();
    let body = [
        location(
            "/i",
            &verify_line("introspect", &a.introspection_url(), &rs_opts(a)),
        ),
        location(
            "/i1",
            &verify_line(
                "introspect",
                &a.introspection_url(),
                &rs_opts(a).kv("expiry", "1"),
            ),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();

    // active: 200 with the response's claims
    let t1 = a.token(AsClient::Basic, "/opaque", "read write");
    for n in 0..2 {
        let r = h.https("/i/env").bearer(&t1).send();
        f.expect(&format!("active opaque token (request {n})"), &r, 200, None);
        if r.status == 200 {
            let env = r.env();
            for (k, v) in [
                ("REMOTE_USER", "basic-client"),
                ("OAUTH2_CLAIM_client_id", "basic-client"),
                ("OAUTH2_CLAIM_scope", "read write"),
                ("OAUTH2_CLAIM_iss", a.issuer.as_str()),
                ("OAUTH2_CLAIM_aud", &format!("{RS}/opaque")),
            ] {
                f.check(env.get(k).map(String::as_str) == Some(v), || {
                    format!(
                        "active opaque token: {k} = {:?}, expected {v:?}",
                        env.get(k)
                    )
                });
            }
        }
    }
    // the same token over the plain-HTTP listener
    let r = h.http("/i/ok").bearer(&t1).send();
    f.expect("active opaque token, plain HTTP", &r, 200, None);

    // revoked before its first use: 401
    let t2 = a.token(AsClient::Basic, "/opaque", "read");
    a.revoke(&t2);
    let r = h.https("/i/ok").bearer(&t2).send();
    f.expect("revoked opaque token", &r, 401, Some(INVALID_TOKEN));

    // revoked after a successful use, result cache of 1 s: refused again within a few seconds
    let t3 = a.token(AsClient::Basic, "/opaque", "read");
    let r = h.https("/i1/ok").bearer(&t3).send();
    f.expect("opaque token before revocation (expiry=1)", &r, 200, None);
    a.revoke(&t3);
    let revoked_at = Instant::now();
    let refused = poll(Duration::from_secs(6), || {
        let r = h.https("/i1/ok").bearer(&t3).send();
        (r.status == 401).then_some(revoked_at.elapsed())
    });
    f.check(refused.is_some(), || {
        "token revoked after use at /i1 (expiry=1) still accepted 6 s later".into()
    });
    if let Some(d) = refused {
        eprintln!("revoked token refused {d:?} after revocation (expiry=1)");
    }

    // never issued / not introspectable
    let r = h.https("/i/ok").bearer(&random_id(32)).send();
    f.expect("unknown opaque token", &r, 401, Some(INVALID_TOKEN));
    // the AS refuses to introspect its JWTs (unsupported_token_type, HTTP 400)
    let jwt = a.token(AsClient::Basic, "/rs256", "read");
    let r = h.https("/i/ok").bearer(&jwt).send();
    f.expect(
        "AS JWT at an introspect-only location",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn certificate_bound_opaque_tokens() {
    let a = real_as();
    let body = [
        location(
            "/im",
            &verify_line(
                "introspect",
                &a.introspection_url(),
                &rs_opts(a).kv("type", "mtls"),
            ),
        ),
        location(
            "/ib",
            &verify_line("introspect", &a.introspection_url(), &rs_opts(a)),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    present_as_client_certs(&h, a);
    let self_tok = a.token(AsClient::SelfSigned, "/opaque", "read");
    let pki_tok = a.token(AsClient::Pki, "/opaque", "read");
    let plain_tok = a.token(AsClient::Basic, "/opaque", "read");
    use ClientCert::{A, B};
    let mut f = Failures::new();
    // the right certificate first (so that the later refusals also hold for a cached result)
    /// A certificate-bound opaque token: the status at `/im` (`type=mtls`) and at `/ib` (bearer),
    /// and the `REMOTE_USER` expected at `/im` when it is accepted.
    struct Bound<'a> {
        what: &'a str,
        token: &'a str,
        cert: Option<ClientCert>,
        expect_mtls: u16,
        expect_bearer: u16,
        expect_user: &'a str,
    }
    let cases = [
        Bound {
            what: "self-signed token, its cert",
            token: &self_tok,
            cert: Some(A),
            expect_mtls: 200,
            expect_bearer: 200,
            expect_user: "self-signed-mtls-client",
        },
        Bound {
            what: "self-signed token, other cert",
            token: &self_tok,
            cert: Some(B),
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
        Bound {
            what: "self-signed token, no cert",
            token: &self_tok,
            cert: None,
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
        Bound {
            what: "pki token, its cert",
            token: &pki_tok,
            cert: Some(B),
            expect_mtls: 200,
            expect_bearer: 200,
            expect_user: "pki-mtls-client",
        },
        Bound {
            what: "pki token, other cert",
            token: &pki_tok,
            cert: Some(A),
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
        Bound {
            what: "pki token, no cert",
            token: &pki_tok,
            cert: None,
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
        // type=mtls alone means mtls.policy=required: an unbound token is refused
        Bound {
            what: "unbound token, cert A",
            token: &plain_tok,
            cert: Some(A),
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
        Bound {
            what: "unbound token, no cert",
            token: &plain_tok,
            cert: None,
            expect_mtls: 401,
            expect_bearer: 200,
            expect_user: "",
        },
    ];
    for Bound {
        what,
        token: tok,
        cert,
        expect_mtls: im,
        expect_bearer: ib,
        expect_user: user,
    } in cases
    {
        for (loc, want) in [("/im", im), ("/ib", ib)] {
            let r = h
                .https(&format!("{loc}/env"))
                .maybe_cert(cert)
                .bearer(tok)
                .send();
            f.expect(
                &format!("{what} at {loc}"),
                &r,
                want,
                (want == 401).then_some(INVALID_TOKEN),
            );
            if loc == "/im" && want == 200 && r.status == 200 {
                let env = r.env();
                f.check(
                    env.get("REMOTE_USER").map(String::as_str) == Some(user),
                    || format!("{what}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
                );
            }
        }
    }
    let r = h.http("/im/ok").bearer(&self_tok).send();
    f.expect(
        "self-signed token over plain HTTP",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn introspection_endpoint_authentication_methods() {
    /// Options of one location's introspection verifier and the status a valid token gets there.
    struct AuthCase<'a> {
        what: &'a str,
        opts: Opts,
        expect_status: u16,
    }
    let a = real_as();
    let ca = Opts::new().path("introspect.ca_file", &a.pki.ca_cert);
    let auth = |method: &str| ca.clone().kv("introspect.auth", method);
    let wrong_key =
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let rows = vec![
        AuthCase {
            what: "client_secret_basic",
            opts: auth("client_secret_basic")
                .kv("client_id", RS_CLIENT.0)
                .kv("client_secret", RS_CLIENT.1),
            expect_status: 200,
        },
        AuthCase {
            what: "client_secret_basic, wrong secret",
            opts: auth("client_secret_basic")
                .kv("client_id", RS_CLIENT.0)
                .kv("client_secret", "nope"),
            expect_status: 401,
        },
        AuthCase {
            what: "client_secret_post",
            opts: auth("client_secret_post")
                .kv("client_id", POST_CLIENT.0)
                .kv("client_secret", POST_CLIENT.1),
            expect_status: 200,
        },
        AuthCase {
            what: "client_secret_post, wrong secret",
            opts: auth("client_secret_post")
                .kv("client_id", POST_CLIENT.0)
                .kv("client_secret", "nope"),
            expect_status: 401,
        },
        AuthCase {
            what: "client_secret_jwt (aud = issuer)",
            opts: auth("client_secret_jwt")
                .kv("client_id", SECRETJWT_CLIENT.0)
                .kv("client_secret", SECRETJWT_CLIENT.1)
                .kv("aud", &a.issuer),
            expect_status: 200,
        },
        AuthCase {
            what: "client_secret_jwt, wrong secret",
            opts: auth("client_secret_jwt")
                .kv("client_id", SECRETJWT_CLIENT.0)
                .kv(
                    "client_secret",
                    "secretjwt-secret-but-not-the-right-one-0123456789abcdef",
                )
                .kv("aud", &a.issuer),
            expect_status: 401,
        },
        AuthCase {
            what: "private_key_jwt (aud = introspection endpoint)",
            opts: auth("private_key_jwt")
                .kv("client_id", "pkjwt-client")
                .kv("jwk", a.pkjwt_jwk())
                .kv("aud", a.introspection_url()),
            expect_status: 200,
        },
        AuthCase {
            what: "private_key_jwt, wrong key",
            opts: auth("private_key_jwt")
                .kv("client_id", "pkjwt-client")
                .kv("jwk", rsa_private_jwk(&wrong_key, "pkjwt-1"))
                .kv("aud", a.introspection_url()),
            expect_status: 401,
        },
        AuthCase {
            what: "private_key_jwt, wrong aud",
            opts: auth("private_key_jwt")
                .kv("client_id", "pkjwt-client")
                .kv("jwk", a.pkjwt_jwk())
                .kv("aud", "https://elsewhere.example.test"),
            expect_status: 401,
        },
        AuthCase {
            what: "client_cert (tls_client_auth)",
            opts: auth("client_cert")
                .kv("client_id", "pki-mtls-client")
                .path("cert", &a.pki.client_pki_cert)
                .path("key", &a.pki.client_pki_key),
            expect_status: 200,
        },
        AuthCase {
            what: "client_cert, certificate of another subject",
            opts: auth("client_cert")
                .kv("client_id", "pki-mtls-client")
                .path("cert", &a.pki.client_other_cert)
                .path("key", &a.pki.client_other_key),
            expect_status: 401,
        },
        AuthCase {
            what: "client_cert (self_signed_tls_client_auth)",
            opts: auth("client_cert")
                .kv("client_id", "self-signed-mtls-client")
                .path("cert", &a.pki.client_self_cert)
                .path("key", &a.pki.client_self_key),
            expect_status: 200,
        },
        AuthCase {
            what: "basic",
            opts: auth("basic")
                .kv("username", RS_CLIENT.0)
                .kv("password", RS_CLIENT.1),
            expect_status: 200,
        },
        AuthCase {
            what: "basic, wrong password",
            opts: auth("basic")
                .kv("username", RS_CLIENT.0)
                .kv("password", "nope"),
            expect_status: 401,
        },
        AuthCase {
            what: "none",
            opts: auth("none").kv("client_id", RS_CLIENT.0),
            expect_status: 401,
        },
    ];
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(i, AuthCase { opts: o, .. })| {
            location(
                &format!("/a{i}"),
                &verify_line("introspect", &a.introspection_url(), o),
            )
        })
        .collect();
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();
    for (
        i,
        AuthCase {
            what,
            expect_status: want,
            ..
        },
    ) in rows.iter().enumerate()
    {
        // a fresh token per location: a result cached for one location must not decide another
        let tok = a.token(AsClient::Basic, "/opaque", "read");
        let r = h.https(&format!("/a{i}/env")).bearer(&tok).send();
        f.expect(what, &r, *want, (*want == 401).then_some(INVALID_TOKEN));
        if *want == 200 && r.status == 200 {
            let env = r.env();
            f.check(
                env.get("REMOTE_USER").map(String::as_str) == Some("basic-client"),
                || format!("{what}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
            );
        }
    }
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn metadata_with_jwks_and_introspection() {
    let a = real_as();
    let opts = rs_opts(a)
        .path("metadata.ca_file", &a.pki.ca_cert)
        .path("jwks_uri.ca_file", &a.pki.ca_cert);
    let body = location("/m", &verify_line("metadata", &a.discovery_url(), &opts));
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();

    let opaque = a.token(AsClient::Basic, "/opaque", "read write");
    let r = h.https("/m/env").bearer(&opaque).send();
    f.expect(
        "opaque token through the discovered introspection endpoint",
        &r,
        200,
        None,
    );
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("OAUTH2_CLAIM_scope").map(String::as_str) == Some("read write"),
            || {
                format!(
                    "opaque: OAUTH2_CLAIM_scope {:?}",
                    env.get("OAUTH2_CLAIM_scope")
                )
            },
        );
    }
    for res in ["/rs256", "/es256", "/eddsa"] {
        let jwt = a.token(AsClient::Basic, res, "read");
        let r = h.https("/m/env").bearer(&jwt).send();
        f.expect(
            &format!("JWT {res} through the discovered jwks_uri"),
            &r,
            200,
            None,
        );
        if r.status == 200 {
            let env = r.env();
            f.check(
                env.get("REMOTE_USER").map(String::as_str) == Some("basic-client"),
                || format!("JWT {res}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
            );
        }
    }
    let revoked = a.token(AsClient::Basic, "/opaque", "read");
    a.revoke(&revoked);
    let r = h.https("/m/ok").bearer(&revoked).send();
    f.expect("revoked opaque token", &r, 401, Some(INVALID_TOKEN));
    // signed by the AS's key but for another issuer: the JWKS path refuses it (iss), and the
    // introspection fallback cannot accept it either
    let real = jwt_payload(&a.token(AsClient::Basic, "/rs256", "read"));
    let other = a.mint_with_as_key(&with(real, json!({ "iss": "https://other.example.test" })));
    let r = h.https("/m/ok").bearer(&other).send();
    f.expect(
        "AS-signed JWT of another issuer",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/m/ok").bearer(&random_id(32)).send();
    f.expect("unknown opaque token", &r, 401, Some(INVALID_TOKEN));
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn introspection_results_are_not_shared_across_locations() {
    let a = real_as();
    let creds = |o: Opts| {
        o.kv("introspect.auth", "client_secret_basic")
            .kv("client_id", RS_CLIENT.0)
    };
    let body = [
        location(
            "/iv",
            &verify_line(
                "introspect",
                &a.introspection_url(),
                &creds(Opts::new().kv("introspect.ssl_verify", "false"))
                    .kv("client_secret", RS_CLIENT.1),
            ),
        ),
        // same endpoint, no CA file: cannot verify the AS's certificate
        location(
            "/inoca",
            &verify_line(
                "introspect",
                &a.introspection_url(),
                &creds(Opts::new()).kv("client_secret", RS_CLIENT.1),
            ),
        ),
        // same endpoint, trusted, wrong secret
        location(
            "/iwrong",
            &verify_line(
                "introspect",
                &a.introspection_url(),
                &creds(Opts::new().path("introspect.ca_file", &a.pki.ca_cert))
                    .kv("client_secret", "nope"),
            ),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();
    let t = a.token(AsClient::Basic, "/opaque", "read");
    let r = h.https("/iv/ok").bearer(&t).send();
    f.expect("/iv (ssl_verify=false)", &r, 200, None);
    for loc in ["/inoca", "/iwrong"] {
        let r = h.https(&format!("{loc}/ok")).bearer(&t).send();
        f.expect(
            &format!("{loc}, the token /iv accepted"),
            &r,
            401,
            Some(INVALID_TOKEN),
        );
    }
    h.assert_no_child_crash();
    finish(f, a, &h);
}
