//! RFC 8705 certificate-bound tokens (`type=mtls`) through a real TLS client with client
//! certificates: the decision table for `mtls.policy=optional`, `required`, `type=mtls` without a
//! policy and no type (bearer), the plain-HTTP listener, and the seed configuration verbatim.

mod common;

use common::*;
use serde_json::{Value, json};

/// One row of the decision table: the token's `cnf` (None = no `cnf` claim), the certificate
/// presented, and the expected status per column.
struct Row {
    name: &'static str,
    cnf: Option<Value>,
    cert: Option<ClientCert>,
    optional: u16,
    required: u16,
    bearer: u16,
}

fn rows(pki: &Pki) -> Vec<Row> {
    let a = pki.thumb_a.clone();
    vec![
        Row {
            name: "x5t#S256 matches the presented cert",
            cnf: Some(json!({ "x5t#S256": a })),
            cert: Some(ClientCert::A),
            optional: 200,
            required: 200,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 of A, cert B presented",
            cnf: Some(json!({ "x5t#S256": a })),
            cert: Some(ClientCert::B),
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 of A, no cert",
            cnf: Some(json!({ "x5t#S256": a })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "no cnf, cert A presented",
            cnf: None,
            cert: Some(ClientCert::A),
            optional: 200,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "no cnf, no cert",
            cnf: None,
            cert: None,
            optional: 200,
            required: 401,
            bearer: 200,
        },
        // a DPoP-bound token is never accepted without its proof, whatever the verifier
        // (docs/compatibility.md, row "DPoP-bound token")
        Row {
            name: "cnf with only jkt, cert A",
            cnf: Some(json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" })),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 401,
        },
        Row {
            name: "cnf with only jkt, no cert",
            cnf: Some(json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 401,
        },
        // a binding that is present but cannot be read is a refusal under every policy, never
        // "unbound" (docs/compatibility.md, row "malformed `cnf`"); a bearer verifier does not
        // look at x5t#S256, but a `cnf` that is not an object is unreadable for cnf.jkt too
        Row {
            name: "x5t#S256 is a number, cert A",
            cnf: Some(json!({ "x5t#S256": 5 })),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 is a number, no cert",
            cnf: Some(json!({ "x5t#S256": 5 })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 is an array with A's thumbprint, cert A",
            cnf: Some(json!({ "x5t#S256": [a] })),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 is an object, no cert",
            cnf: Some(json!({ "x5t#S256": { "v": a } })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 is null, no cert",
            cnf: Some(json!({ "x5t#S256": null })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 is true, no cert",
            cnf: Some(json!({ "x5t#S256": true })),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "cnf is a string, no cert",
            cnf: Some(json!("x5t#S256")),
            cert: None,
            optional: 401,
            required: 401,
            bearer: 401,
        },
        Row {
            name: "cnf is an array, cert A",
            cnf: Some(json!([{ "x5t#S256": a }])),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 401,
        },
        // beyond the table: the comparison is exact (padding and case matter)
        Row {
            name: "x5t#S256 of A with '=' padding, cert A",
            cnf: Some(json!({ "x5t#S256": format!("{a}=") })),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "x5t#S256 of A upper-cased, cert A",
            cnf: Some(json!({ "x5t#S256": a.to_uppercase() })),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 200,
        },
        Row {
            name: "cnf with jkt and matching x5t#S256, cert A",
            cnf: Some(
                json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "x5t#S256": a }),
            ),
            cert: Some(ClientCert::A),
            optional: 401,
            required: 401,
            bearer: 401,
        },
    ]
}

fn token_for(signer: &TokenSigner, row: &Row) -> String {
    let mut c = claims("joe");
    if let Some(cnf) = &row.cnf {
        c = with(c, json!({ "cnf": cnf }));
    }
    signer.mint(&c)
}

fn expected_challenge(status: u16) -> Option<&'static str> {
    (status == 401).then_some(INVALID_TOKEN)
}

#[test]
fn decision_table_optional_required_default_and_bearer() {
    let signer = TokenSigner::rsa("one");
    let jwk = signer.jwk_arg();
    let body = [
        oauth2_location(
            "/opt",
            &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=optional"),
        ),
        oauth2_location(
            "/req",
            &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=required"),
        ),
        oauth2_location("/def", &format!("OAuth2TokenVerify jwk {jwk} type=mtls")),
        oauth2_location("/bearer", &format!("OAuth2TokenVerify jwk {jwk}")),
        oauth2_location(
            "/bearer-explicit",
            &format!("OAuth2TokenVerify jwk {jwk} type=bearer"),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();
    for row in rows(&h.pki) {
        let tok = token_for(&signer, &row);
        for (loc, want) in [
            ("/opt", row.optional),
            ("/req", row.required),
            ("/def", row.required),
            ("/bearer", row.bearer),
            ("/bearer-explicit", row.bearer),
        ] {
            let r = h
                .https(&format!("{loc}/ok"))
                .maybe_cert(row.cert)
                .bearer(&tok)
                .send();
            f.expect(
                &format!("{loc} | {}", row.name),
                &r,
                want,
                expected_challenge(want),
            );
        }
    }
    // sanity: without any token every location asks for one, whatever the certificate
    for loc in ["/opt", "/req", "/def", "/bearer"] {
        for cert in [None, Some(ClientCert::A)] {
            let r = h.https(&format!("{loc}/ok")).maybe_cert(cert).send();
            f.expect(
                &format!("{loc} | no token, {cert:?}"),
                &r,
                401,
                Some(NO_TOKEN),
            );
        }
    }
    // a bound token with a bad signature is refused even when the binding matches
    let row = &rows(&h.pki)[0];
    let bad = tamper_signature(&token_for(&signer, row));
    for loc in ["/opt", "/req", "/def", "/bearer"] {
        let r = h
            .https(&format!("{loc}/ok"))
            .cert(ClientCert::A)
            .bearer(&bad)
            .send();
        f.expect(
            &format!("{loc} | bad signature, matching cert"),
            &r,
            401,
            Some(INVALID_TOKEN),
        );
    }
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn plain_http_listener_has_no_certificate() {
    let signer = TokenSigner::rsa("one");
    let jwk = signer.jwk_arg();
    let body = [
        oauth2_location(
            "/opt",
            &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=optional"),
        ),
        oauth2_location(
            "/req",
            &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=required"),
        ),
        oauth2_location("/def", &format!("OAuth2TokenVerify jwk {jwk} type=mtls")),
        oauth2_location("/bearer", &format!("OAuth2TokenVerify jwk {jwk}")),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let bound = signer.mint(&with(
        claims("joe"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_a } }),
    ));
    let unbound = signer.mint(&claims("joe"));
    let jkt_only = signer.mint(&with(claims("joe"), json!({ "cnf": { "jkt": "abc" } })));
    let mut f = Failures::new();
    /// A token (described by `name`) sent to `<loc>/ok`.
    struct Case<'a> {
        loc: &'a str,
        token: &'a str,
        name: &'a str,
        expect_status: u16,
    }
    let cases = [
        Case {
            loc: "/opt",
            token: &bound,
            name: "bound",
            expect_status: 401,
        },
        Case {
            loc: "/opt",
            token: &unbound,
            name: "unbound",
            expect_status: 200,
        },
        // DPoP-bound: never without its proof (docs/compatibility.md, row "DPoP-bound token")
        Case {
            loc: "/opt",
            token: &jkt_only,
            name: "cnf.jkt only",
            expect_status: 401,
        },
        Case {
            loc: "/req",
            token: &bound,
            name: "bound",
            expect_status: 401,
        },
        Case {
            loc: "/req",
            token: &unbound,
            name: "unbound",
            expect_status: 401,
        },
        Case {
            loc: "/def",
            token: &bound,
            name: "bound",
            expect_status: 401,
        },
        Case {
            loc: "/def",
            token: &unbound,
            name: "unbound",
            expect_status: 401,
        },
        Case {
            loc: "/bearer",
            token: &bound,
            name: "bound",
            expect_status: 200,
        },
        Case {
            loc: "/bearer",
            token: &unbound,
            name: "unbound",
            expect_status: 200,
        },
    ];
    for Case {
        loc,
        token: tok,
        name,
        expect_status: want,
    } in cases
    {
        let r = h.http(&format!("{loc}/ok")).bearer(tok).send();
        f.expect(
            &format!("plain HTTP {loc} | {name}"),
            &r,
            want,
            expected_challenge(want),
        );
    }
    // the same tokens over TLS with the matching certificate are fine (the listener made the
    // difference)
    for loc in ["/opt", "/req", "/def"] {
        let r = h
            .https(&format!("{loc}/ok"))
            .cert(ClientCert::A)
            .bearer(&bound)
            .send();
        f.expect(&format!("TLS {loc} | bound, cert A"), &r, 200, None);
    }
    f.assert_none();
    h.assert_no_child_crash();
}

/// The seed configuration, verbatim, with the harness's RSA JWK (kid "one") in the seed's quoting.
fn seed_body(signer: &TokenSigner) -> String {
    let seed = r#"AuthType oauth2
OAuth2TokenVerify jwk "{\"kty\":\"RSA\",\"kid\":\"one\",\"use\":\"sig\",\"n\":\"...\",\"e\":\"AQAB\" }" type=mtls&mtls.policy=optional
Require valid-user"#;
    let n = signer.public_jwk_value()["n"].as_str().unwrap().to_string();
    let seed = seed.replacen("...", &n, 1);
    // the harness's own rendering of the same argument must be identical
    assert!(
        seed.contains(&format!(
            "OAuth2TokenVerify jwk {} type=mtls",
            signer.seed_jwk_arg()
        )),
        "seed quoting mismatch"
    );
    format!("<Location /seed>\n{seed}\n</Location>\n")
}

#[test]
fn seed_configuration_verbatim() {
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(seed_body(&signer)));
    let mut f = Failures::new();
    for row in rows(&h.pki) {
        let tok = token_for(&signer, &row);
        let r = h.https("/seed/ok").maybe_cert(row.cert).bearer(&tok).send();
        f.expect(
            &format!("seed | {}", row.name),
            &r,
            row.optional,
            expected_challenge(row.optional),
        );
    }
    // success reaches the backend with REMOTE_USER = sub
    let tok = signer.mint(&with(
        claims("alice"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_a } }),
    ));
    let r = h.https("/seed/env").cert(ClientCert::A).bearer(&tok).send();
    f.expect("seed | CGI with bound token", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("alice"),
            || format!("seed | REMOTE_USER: {:?}", env.get("REMOTE_USER")),
        );
    }
    // no token, and a token for another key with the same kid
    let r = h.https("/seed/ok").cert(ClientCert::A).send();
    f.expect("seed | no token", &r, 401, Some(NO_TOKEN));
    let other = TokenSigner::rsa("one");
    let r = h
        .https("/seed/ok")
        .cert(ClientCert::A)
        .bearer(&other.mint(&claims("joe")))
        .send();
    f.expect("seed | other key, same kid", &r, 401, Some(INVALID_TOKEN));
    // plain listener, same Location
    let r = h.http("/seed/ok").bearer(&tok).send();
    f.expect("seed | plain HTTP, bound", &r, 401, Some(INVALID_TOKEN));
    let r = h
        .http("/seed/ok")
        .bearer(&signer.mint(&claims("joe")))
        .send();
    f.expect("seed | plain HTTP, unbound", &r, 200, None);
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn policy_value_is_case_sensitive_and_invalid_means_required() {
    // `type` is case-insensitive; `mtls.policy` is case-sensitive and anything but
    // optional/required is treated as required, as in the C module.
    let signer = TokenSigner::rsa("one");
    let jwk = signer.jwk_arg();
    let body = [
        oauth2_location(
            "/upper-type",
            &format!("OAuth2TokenVerify jwk {jwk} type=MTLS&mtls.policy=optional"),
        ),
        oauth2_location(
            "/odd-policy",
            &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=Optional"),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();
    let unbound = signer.mint(&claims("joe"));
    let bound_b = signer.mint(&with(
        claims("joe"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_b } }),
    ));
    /// A token (described by `name`) sent to `<loc>/ok` with certificate A.
    struct Case<'a> {
        loc: &'a str,
        token: &'a str,
        name: &'a str,
        expect_status: u16,
    }
    let cases = [
        Case {
            loc: "/upper-type",
            token: &unbound,
            name: "unbound",
            expect_status: 200,
        },
        Case {
            loc: "/upper-type",
            token: &bound_b,
            name: "bound to B, cert A",
            expect_status: 401,
        },
        Case {
            loc: "/odd-policy",
            token: &unbound,
            name: "unbound",
            expect_status: 401,
        },
        Case {
            loc: "/odd-policy",
            token: &bound_b,
            name: "bound to B, cert A",
            expect_status: 401,
        },
    ];
    for Case {
        loc,
        token: tok,
        name,
        expect_status: want,
    } in cases
    {
        let r = h
            .https(&format!("{loc}/ok"))
            .cert(ClientCert::A)
            .bearer(tok)
            .send();
        f.expect(
            &format!("{loc} | {name}"),
            &r,
            want,
            expected_challenge(want),
        );
    }
    let r = h
        .https("/odd-policy/ok")
        .cert(ClientCert::B)
        .bearer(&bound_b)
        .send();
    f.expect("/odd-policy | bound to B, cert B", &r, 200, None);
    f.assert_none();
}

/// One HTTP/1.1 request on a TLS stream that stays open; the response status.
fn exchange(
    tls: &mut openssl::ssl::SslStream<std::net::TcpStream>,
    path: &str,
    token: &str,
) -> u16 {
    use std::io::{Read, Write};
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n");
    tls.write_all(req.as_bytes()).expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find_bytes(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = tls.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .expect("Content-Length");
    while buf.len() < head_end + len {
        let n = tls.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    status
}

/// docs/compatibility.md, row "certificate thumbprint comparison": the connection's memo of the
/// client certificate's thumbprint never answers for a certificate the connection no longer has.
/// A TLS 1.2 renegotiation (forced by a per-directory `SSLVerifyClient require`) in which the
/// client presents certificate B instead of A: a token bound to A is refused from then on, one
/// bound to B accepted.
#[test]
fn a_renegotiation_that_replaces_the_certificate_replaces_the_memo() {
    renegotiation_replaces_the_memo(false);
}

/// The same with TLS 1.3, where mod_ssl's renegotiation is post-handshake authentication: it is
/// refused on a connection that already has a certificate, so the certificate cannot change.
#[test]
fn post_handshake_authentication_cannot_replace_a_certificate() {
    renegotiation_replaces_the_memo(true);
}

fn renegotiation_replaces_the_memo(tls13: bool) {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslRef, SslVerifyMode, SslVersion};
    let signer = TokenSigner::rsa("one");
    let verify = format!(
        "OAuth2TokenVerify jwk {} type=mtls&mtls.policy=required",
        signer.jwk_arg()
    );
    let mut cfg = HttpdConfig::new(oauth2_location("/m", &verify));
    // B is self-signed: its own trust anchor for `require`; A (never verified) stays acceptable
    // to the virtual host's `optional_no_ca`.
    cfg.tls_body = format!(
        "SSLCACertificateFile @DIR@/pki/client-b.crt\n{}",
        oauth2_location("/reneg", &format!("{verify}\nSSLVerifyClient require"))
    );
    let h = Httpd::start(cfg);
    let bound = |thumb: &str| {
        signer.mint(&with(
            claims("joe"),
            json!({ "cnf": { "x5t#S256": thumb } }),
        ))
    };
    let (to_a, to_b) = (bound(&h.pki.thumb_a), bound(&h.pki.thumb_b));

    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    if tls13 {
        b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
        // SAFETY: the builder's own context, live for this call.
        unsafe { openssl_sys::SSL_CTX_set_post_handshake_auth(b.as_ptr(), 1) };
    } else {
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    }
    b.set_verify(SslVerifyMode::NONE);
    b.set_certificate_file(&h.pki.client_a_cert, SslFiletype::PEM)
        .unwrap();
    b.set_private_key_file(&h.pki.client_a_key, SslFiletype::PEM)
        .unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", h.https_port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = b
        .build()
        .configure()
        .unwrap()
        .verify_hostname(false)
        .connect("localhost", tcp)
        .unwrap();
    let mut f = Failures::new();
    let status = exchange(&mut tls, "/m/ok", &to_a);
    f.check(status == 200, || {
        format!("certificate A, token bound to A: {status}")
    });
    // The next handshake on this connection presents B.
    let cert_b =
        openssl::x509::X509::from_pem(&std::fs::read(&h.pki.client_b_cert).unwrap()).unwrap();
    let key_b =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&h.pki.client_b_key).unwrap())
            .unwrap();
    let ssl = tls.ssl() as *const SslRef as *mut openssl_sys::SSL;
    let cert_b_ptr = &*cert_b as *const openssl::x509::X509Ref as *mut openssl_sys::X509;
    let key_b_ptr = &*key_b as *const openssl::pkey::PKeyRef<openssl::pkey::Private>
        as *mut openssl_sys::EVP_PKEY;
    // SAFETY: the pointers are the live objects behind these references (a foreign-types
    // reference is the C pointer itself); SSL_use_* take their own references, and nothing else
    // uses the stream meanwhile.
    let (c, k) = unsafe {
        (
            openssl_sys::SSL_use_certificate(ssl, cert_b_ptr),
            openssl_sys::SSL_use_PrivateKey(ssl, key_b_ptr),
        )
    };
    assert!(
        c == 1 && k == 1,
        "SSL_use_certificate {c}, SSL_use_PrivateKey {k}"
    );
    /// A request on the connection after the switch to B, and its expected status.
    struct Step {
        path: &'static str,
        token_bound_to: &'static str,
        expect_status: u16,
    }
    let steps = if tls13 {
        // mod_ssl cannot ask for another certificate once the connection has one (OpenSSL:
        // "invalid config"), so `require` answers 403 and the connection keeps A.
        [
            Step {
                path: "/reneg/ok",
                token_bound_to: "A",
                expect_status: 403,
            },
            Step {
                path: "/reneg/ok",
                token_bound_to: "B",
                expect_status: 403,
            },
            Step {
                path: "/m/ok",
                token_bound_to: "A",
                expect_status: 200,
            },
        ]
    } else {
        // B's token accepted proves the renegotiation happened on this connection.
        [
            Step {
                path: "/reneg/ok",
                token_bound_to: "A",
                expect_status: 401,
            },
            Step {
                path: "/reneg/ok",
                token_bound_to: "B",
                expect_status: 200,
            },
            Step {
                path: "/m/ok",
                token_bound_to: "A",
                expect_status: 401,
            },
        ]
    };
    for Step {
        path,
        token_bound_to,
        expect_status,
    } in steps
    {
        let token = if token_bound_to == "A" { &to_a } else { &to_b };
        let status = exchange(&mut tls, path, token);
        f.check(status == expect_status, || {
            format!(
                "after presenting B (TLS 1.3: {tls13}): {path}, token bound to {token_bound_to}: {status}, expected {expect_status}"
            )
        });
    }
    f.assert_none();
    h.assert_no_child_crash();
}
