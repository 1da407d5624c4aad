//! Remote key sets against a real authorization server (npm `oidc-provider` in `tests/realas/`,
//! one per test binary): JWTs signed RS256, PS256, ES256 and EdDSA verified through `jwks_uri`
//! and through `metadata` (the token's `iss` bound to the metadata's `issuer`), TLS trust of the
//! key fetches (`ca_file`, `ssl_verify`), and certificate-bound JWTs (RFC 8705) of the AS's mTLS
//! clients under `type=mtls`.

mod common;

use common::remote::*;
use common::*;
use serde_json::json;

/// `jwks_uri.ca_file=<AS CA>`
fn jwks_opts(a: &RealAs) -> Opts {
    Opts::new().path("jwks_uri.ca_file", &a.pki.ca_cert)
}

/// `metadata.ca_file` and `jwks_uri.ca_file` = the AS's CA.
fn meta_opts(a: &RealAs) -> Opts {
    Opts::new()
        .path("metadata.ca_file", &a.pki.ca_cert)
        .path("jwks_uri.ca_file", &a.pki.ca_cert)
}

fn finish(f: Failures, a: &RealAs, h: &Httpd) {
    if !f.all_passed() {
        eprintln!(
            "--- AS log (tail) ---\n{}\n--- httpd error_log (oauth2 lines, tail) ---\n{}",
            a.log_tail(30),
            h.error_log()
                .lines()
                .filter(|l| l.contains("oauth2"))
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    f.assert_none();
}

#[test]
fn jwts_of_every_algorithm_through_jwks_uri_and_metadata() {
    let a = real_as();
    let body = [
        verify_location("/jwks", "jwks_uri", &a.jwks_url(), &jwks_opts(a)),
        verify_location(
            "/jwksiss",
            "jwks_uri",
            &a.jwks_url(),
            &jwks_opts(a).kv("iss", &a.issuer),
        ),
        verify_location("/meta", "metadata", &a.discovery_url(), &meta_opts(a)),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();

    /// An AS resource (`res`) whose tokens the AS signs with `alg` under `kid`.
    struct AsAlg<'a> {
        res: &'a str,
        alg: &'a str,
        kid: &'a str,
    }
    let cases = [
        AsAlg {
            res: "/rs256",
            alg: "RS256",
            kid: "rsa-1",
        },
        AsAlg {
            res: "/ps256",
            alg: "PS256",
            kid: "rsa-1",
        },
        AsAlg {
            res: "/es256",
            alg: "ES256",
            kid: "ec-p256-1",
        },
        AsAlg {
            res: "/eddsa",
            alg: "EdDSA",
            kid: "ed25519-1",
        },
    ];
    for AsAlg { res, alg, kid } in cases {
        let tok = a.token(AsClient::Basic, res, "read write");
        let hd = jwt_header(&tok);
        assert_eq!(hd["alg"], alg, "AS token header for {res}: {hd}");
        assert_eq!(hd["kid"], kid, "AS token header for {res}: {hd}");
        for loc in ["/jwks", "/jwksiss", "/meta"] {
            let what = format!("{alg} token at {loc}");
            let r = h.https(&format!("{loc}/env")).bearer(&tok).send();
            f.expect(&what, &r, 200, None);
            if r.status != 200 {
                continue;
            }
            let env = r.env();
            for (k, v) in [
                ("REMOTE_USER", "basic-client"),
                ("OAUTH2_CLAIM_sub", "basic-client"),
                ("OAUTH2_CLAIM_client_id", "basic-client"),
                ("OAUTH2_CLAIM_scope", "read write"),
                ("OAUTH2_CLAIM_iss", a.issuer.as_str()),
                ("OAUTH2_CLAIM_aud", &format!("{RS}{res}")),
            ] {
                f.check(env.get(k).map(String::as_str) == Some(v), || {
                    format!("{what}: {k} = {:?}, expected {v:?}", env.get(k))
                });
            }
        }
        // the signature is checked against the fetched key
        let bad = tamper_signature(&tok);
        for loc in ["/jwks", "/meta"] {
            let r = h.https(&format!("{loc}/env")).bearer(&bad).send();
            f.expect(
                &format!("{alg} token, tampered signature, at {loc}"),
                &r,
                401,
                Some(INVALID_TOKEN),
            );
        }
    }

    // Tokens the AS did not issue.
    let real = jwt_payload(&a.token(AsClient::Basic, "/rs256", "read"));
    // (1) signed with the AS's own key and kid, but another issuer: only iss binding refuses it
    let other_iss = a.mint_with_as_key(&with(
        real.clone(),
        json!({ "iss": "https://other.example.test" }),
    ));
    // (2) the same, with the AS's issuer: a control that harness-minted tokens verify
    let same_iss = a.mint_with_as_key(&real);
    // (3) another key under the AS's kid, the AS's issuer
    let impostor = TokenSigner::rsa("rsa-1").mint(&real);
    // (4) another key with its own kid, another issuer
    let foreign = TokenSigner::ec("other-1").mint(&with(
        real.clone(),
        json!({ "iss": "https://other.example.test" }),
    ));
    /// A token and its status at `/jwks`, `/jwksiss` and `/meta`.
    struct IssCase<'a> {
        what: &'a str,
        token: &'a str,
        jwks: u16,
        jwksiss: u16,
        meta: u16,
    }
    let cases = [
        IssCase {
            what: "AS key, other iss",
            token: &other_iss,
            jwks: 200,
            jwksiss: 401,
            meta: 401,
        },
        IssCase {
            what: "AS key, AS iss (control)",
            token: &same_iss,
            jwks: 200,
            jwksiss: 200,
            meta: 200,
        },
        IssCase {
            what: "other key under kid rsa-1",
            token: &impostor,
            jwks: 401,
            jwksiss: 401,
            meta: 401,
        },
        IssCase {
            what: "other key and kid, other iss",
            token: &foreign,
            jwks: 401,
            jwksiss: 401,
            meta: 401,
        },
    ];
    for IssCase {
        what,
        token: tok,
        jwks,
        jwksiss,
        meta,
    } in cases
    {
        for (loc, want) in [("/jwks", jwks), ("/jwksiss", jwksiss), ("/meta", meta)] {
            let r = h.https(&format!("{loc}/env")).bearer(tok).send();
            f.expect(
                &format!("{what} at {loc}"),
                &r,
                want,
                (want == 401).then_some(INVALID_TOKEN),
            );
        }
    }
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn key_fetch_tls_trust() {
    let a = real_as();
    // Each jwks_uri location gets its own URL (a distinct query, ignored by the AS) so that what
    // one location fetched cannot decide another; only /meta-noverify fetches the plain /jwks
    // (discovered), and after /meta-jwks-noca. Sharing is tested explicitly below.
    let own = |loc: &str| format!("{}?loc={loc}", a.jwks_url());
    let other_ca = Opts::new().path("jwks_uri.ca_file", &a.pki.client_self_cert);
    let no_verify = Opts::new().kv("jwks_uri.ssl_verify", "false");
    let body = [
        // the AS's CA is not in the system store: no ca_file, no trust
        verify_location("/noca", "jwks_uri", &own("noca"), &Opts::new()),
        // a CA file that does not contain the AS's CA
        verify_location("/wrongca", "jwks_uri", &own("wrongca"), &other_ca),
        verify_location("/ca", "jwks_uri", &own("ca"), &jwks_opts(a)),
        verify_location("/noverify", "jwks_uri", &own("noverify"), &no_verify),
        verify_location("/meta-noca", "metadata", &a.discovery_url(), &Opts::new()),
        // metadata trusted, but the discovered jwks_uri without a CA
        verify_location(
            "/meta-jwks-noca",
            "metadata",
            &a.discovery_url(),
            &Opts::new().path("metadata.ca_file", &a.pki.ca_cert),
        ),
        verify_location(
            "/meta-noverify",
            "metadata",
            &a.discovery_url(),
            &Opts::new()
                .kv("metadata.ssl_verify", "false")
                .kv("jwks_uri.ssl_verify", "false"),
        ),
        // the same URL at two locations: one without TLS verification, one verifying
        verify_location("/x-noverify", "jwks_uri", &own("shared"), &no_verify),
        verify_location(
            "/x-meta",
            "metadata",
            &a.discovery_url(),
            &Opts::new().path("metadata.ca_file", &a.pki.ca_cert),
        ),
        verify_location("/x-meta-noca", "metadata", &a.discovery_url(), &Opts::new()),
        verify_location("/x-noca", "jwks_uri", &own("shared"), &Opts::new()),
    ]
    .concat();
    // one child process: what one location fetched is visible to the others whenever the module
    // shares it within a process (the cross-location checks below must not depend on which
    // process a request lands in)
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let fresh = || a.token(AsClient::Basic, "/es256", "read");
    let mut f = Failures::new();
    for (loc, want) in [
        ("/noca", 401),
        ("/wrongca", 401),
        ("/ca", 200),
        ("/noverify", 200),
        ("/meta-noca", 401),
        ("/meta-jwks-noca", 401),
        ("/meta-noverify", 200),
    ] {
        let r = h.https(&format!("{loc}/ok")).bearer(&fresh()).send();
        f.expect(loc, &r, want, (want == 401).then_some(INVALID_TOKEN));
    }
    // What a location that does not verify TLS fetched (or accepted) must not be trusted by a
    // location that does: neither the key set nor the verification result.
    let t1 = fresh();
    let r = h.https("/x-noverify/ok").bearer(&t1).send();
    f.expect("/x-noverify (ssl_verify=false)", &r, 200, None);
    let r = h.https("/x-noca/ok").bearer(&fresh()).send();
    f.expect(
        "/x-noca, new token, after /x-noverify fetched the same URL without verification",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/x-noca/ok").bearer(&t1).send();
    f.expect(
        "/x-noca, the token /x-noverify accepted",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    // the same through metadata: /meta-noverify has fetched the discovered /jwks without
    // verification; a location that has not fetched anything yet and cannot verify the AS
    let r = h.https("/x-meta/ok").bearer(&fresh()).send();
    f.expect(
        "/x-meta (no jwks_uri CA), after /meta-noverify fetched /jwks without verification",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/x-meta-noca/ok").bearer(&fresh()).send();
    f.expect(
        "/x-meta-noca (no CA at all), after /meta-noverify fetched the discovery document \
         without verification",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    h.assert_no_child_crash();
    finish(f, a, &h);
}

#[test]
fn certificate_bound_jwts_from_the_real_as() {
    let a = real_as();
    let mtls = jwks_opts(a).kv("type", "mtls");
    let body = [
        verify_location("/mtls", "jwks_uri", &a.jwks_url(), &mtls),
        verify_location(
            "/mtlsopt",
            "jwks_uri",
            &a.jwks_url(),
            &mtls.clone().kv("mtls.policy", "optional"),
        ),
        verify_location(
            "/meta",
            "metadata",
            &a.discovery_url(),
            &meta_opts(a).kv("type", "mtls"),
        ),
        verify_location("/bearer", "jwks_uri", &a.jwks_url(), &jwks_opts(a)),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    // client certificate A = the AS's self-signed client cert, B = the AS's CA-issued one
    present_as_client_certs(&h, a);

    let self_tok = a.token(AsClient::SelfSigned, "/rs256", "read");
    let pki_tok = a.token(AsClient::Pki, "/es256", "read");
    let plain_tok = a.token(AsClient::Basic, "/rs256", "read");
    assert_eq!(
        jwt_payload(&self_tok)["cnf"]["x5t#S256"],
        a.pki.thumb_self.as_str(),
        "AS token of self-signed-mtls-client"
    );
    assert_eq!(
        jwt_payload(&pki_tok)["cnf"]["x5t#S256"],
        a.pki.thumb_pki.as_str(),
        "AS token of pki-mtls-client"
    );
    assert!(jwt_payload(&plain_tok).get("cnf").is_none());

    let tampered = tamper_signature(&self_tok);
    let mut f = Failures::new();
    use ClientCert::{A, B};
    /// A token, the certificate presented, and the status at each location; `type=mtls` alone
    /// means `mtls.policy=required`.
    struct Bound<'a> {
        what: &'a str,
        token: &'a str,
        cert: Option<ClientCert>,
        mtls: u16,
        mtlsopt: u16,
        meta: u16,
        bearer: u16,
    }
    let rows = [
        Bound {
            what: "self-signed token, its cert",
            token: &self_tok,
            cert: Some(A),
            mtls: 200,
            mtlsopt: 200,
            meta: 200,
            bearer: 200,
        },
        Bound {
            what: "self-signed token, other cert",
            token: &self_tok,
            cert: Some(B),
            mtls: 401,
            mtlsopt: 401,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "self-signed token, no cert",
            token: &self_tok,
            cert: None,
            mtls: 401,
            mtlsopt: 401,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "pki token, its cert",
            token: &pki_tok,
            cert: Some(B),
            mtls: 200,
            mtlsopt: 200,
            meta: 200,
            bearer: 200,
        },
        Bound {
            what: "pki token, other cert",
            token: &pki_tok,
            cert: Some(A),
            mtls: 401,
            mtlsopt: 401,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "pki token, no cert",
            token: &pki_tok,
            cert: None,
            mtls: 401,
            mtlsopt: 401,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "unbound token, cert A",
            token: &plain_tok,
            cert: Some(A),
            mtls: 401,
            mtlsopt: 200,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "unbound token, no cert",
            token: &plain_tok,
            cert: None,
            mtls: 401,
            mtlsopt: 200,
            meta: 401,
            bearer: 200,
        },
        Bound {
            what: "self-signed token, its cert, tampered",
            token: &tampered,
            cert: Some(A),
            mtls: 401,
            mtlsopt: 401,
            meta: 401,
            bearer: 401,
        },
    ];
    for row in &rows {
        let Bound {
            what,
            token: tok,
            cert,
            ..
        } = row;
        for (loc, w) in [
            ("/mtls", &row.mtls),
            ("/mtlsopt", &row.mtlsopt),
            ("/meta", &row.meta),
            ("/bearer", &row.bearer),
        ] {
            let r = h
                .https(&format!("{loc}/env"))
                .maybe_cert(*cert)
                .bearer(tok)
                .send();
            f.expect(
                &format!("{what} at {loc}"),
                &r,
                *w,
                (*w == 401).then_some(INVALID_TOKEN),
            );
            if *w == 200 && r.status == 200 && loc == "/mtls" {
                let env = r.env();
                let want_user = jwt_payload(tok)["client_id"].as_str().unwrap().to_string();
                f.check(env.get("REMOTE_USER") == Some(&want_user), || {
                    format!("{what}: REMOTE_USER {:?}", env.get("REMOTE_USER"))
                });
            }
        }
    }
    // the plain-HTTP listener has no certificate: a bound token is refused under type=mtls
    let r = h.http("/mtls/ok").bearer(&self_tok).send();
    f.expect(
        "self-signed token over plain HTTP",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    h.assert_no_child_crash();
    finish(f, a, &h);
}
