//! RFC 9728 protected-resource metadata (`OAuth2ResourceMetadata`) against a real httpd: the
//! document at the well-known URL per configuration (`OAuth2AcceptTokenIn` methods, mTLS, DPoP,
//! the main server's sections), the URL with and without a path, GET/HEAD/other methods, no
//! authentication needed for it, `resource_metadata` in every challenge of the host that has the
//! directive (Bearer, Basic, DPoP, the insufficient_scope one) and in none of a host without it,
//! and `apache2 -t` refusing bad lines with their line and reason.
//!
//! The directive goes into the TLS virtual host (`tls_body`); the plain-HTTP virtual host has
//! none and serves as the host without it.

mod common;

use common::dpop::{Challenge, challenges};
use common::*;
use serde_json::{Value, json};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// `OAuth2TokenVerify jwk <signer's JWK> "<options>"`.
fn verify(signer: &TokenSigner, options: &str) -> String {
    format!(
        "OAuth2TokenVerify jwk {} {}",
        signer.jwk_arg(),
        apache_quote(options)
    )
}

/// The configuration of one document row: the directive in the TLS virtual host, `locations`
/// in both virtual hosts, `main` in the main server.
fn config(directive: &str, locations: &str, main: &str) -> HttpdConfig {
    let mut cfg = HttpdConfig::new(locations).server(main);
    cfg.tls_body = directive.to_string();
    cfg
}

/// The document for each configuration: what the directive says and what the host's
/// `OAuth2TokenVerify` and `OAuth2AcceptTokenIn` lines declare.
#[test]
fn the_document_follows_the_configuration() {
    let signer = TokenSigner::ec("rm-doc");
    let v = |options: &str| verify(&signer, options);
    let mut f = Failures::new();

    /// One httpd, one document request.
    struct Row {
        what: &'static str,
        cfg: HttpdConfig,
        path: &'static str,
        expect: Value,
    }
    let rows = [
        Row {
            what: "identifier without a path, a bearer verifier, no OAuth2AcceptTokenIn",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com",
                &oauth2_location("/api", &v("")),
                "",
            ),
            path: WELL_KNOWN,
            expect: json!({
                "resource": "https://api.example.com",
                "bearer_methods_supported": ["header"],
                "tls_client_certificate_bound_access_tokens": false,
                "dpop_bound_access_tokens_required": false,
            }),
        },
        Row {
            what: "mTLS, and every OAuth2AcceptTokenIn method (cookie has no RFC 9728 name)",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com/v1",
                &[
                    oauth2_location(
                        "/a",
                        &format!(
                            "{}\nOAuth2AcceptTokenIn header\nOAuth2AcceptTokenIn cookie",
                            v("type=mtls&mtls.policy=optional")
                        ),
                    ),
                    oauth2_location(
                        "/b",
                        &format!(
                            "{}\nOAuth2AcceptTokenIn post\nOAuth2AcceptTokenIn query",
                            v("")
                        ),
                    ),
                ]
                .concat(),
                "",
            ),
            path: "/.well-known/oauth-protected-resource/v1",
            expect: json!({
                "resource": "https://api.example.com/v1",
                "bearer_methods_supported": ["header", "body", "query"],
                "tls_client_certificate_bound_access_tokens": true,
                "dpop_bound_access_tokens_required": false,
            }),
        },
        Row {
            what: "only DPoP verifiers: their algorithms, DPoP required",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com/v1",
                &[
                    oauth2_location("/a", &v("type=dpop&dpop.algs=ES256 EdDSA")),
                    oauth2_location("/b", &v("type=dpop&dpop.algs=PS256 ES256")),
                ]
                .concat(),
                "",
            ),
            path: "/.well-known/oauth-protected-resource/v1",
            expect: json!({
                "resource": "https://api.example.com/v1",
                "bearer_methods_supported": ["header"],
                "tls_client_certificate_bound_access_tokens": false,
                "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "PS256"],
                "dpop_bound_access_tokens_required": true,
            }),
        },
        Row {
            what: "bearer and DPoP verifiers, tokens only in a cookie and a custom header",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com/v1",
                &oauth2_location(
                    "/m",
                    &format!(
                        "{}\n{}\nOAuth2AcceptTokenIn cookie\nOAuth2AcceptTokenIn header name=X-Token",
                        v(""),
                        v("type=dpop&dpop.algs=ES384")
                    ),
                ),
                "",
            ),
            path: "/.well-known/oauth-protected-resource/v1",
            expect: json!({
                "resource": "https://api.example.com/v1",
                "tls_client_certificate_bound_access_tokens": false,
                "dpop_signing_alg_values_supported": ["ES384"],
                "dpop_bound_access_tokens_required": false,
            }),
        },
        Row {
            what: "every configured member; a trailing slash and a query in the identifier",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com/v1/?tenant=a \
                 \"authorization_servers=https://as.example.com https://as2.example.com/t1\
                 &scopes_supported=read write admin:all\
                 &resource_name=Example API (v1)\
                 &resource_documentation=https://docs.example.com/api%3Flang%3Den%26v%3D1\"",
                &oauth2_location("/api", &v("")),
                "",
            ),
            path: "/.well-known/oauth-protected-resource/v1/",
            expect: json!({
                "resource": "https://api.example.com/v1/?tenant=a",
                "authorization_servers": ["https://as.example.com", "https://as2.example.com/t1"],
                "scopes_supported": ["read", "write", "admin:all"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example API (v1)",
                "resource_documentation": "https://docs.example.com/api?lang=en&v=1",
                "tls_client_certificate_bound_access_tokens": false,
                "dpop_bound_access_tokens_required": false,
            }),
        },
        Row {
            what: "the main server's sections apply in the virtual host: its mTLS verifier and query line count",
            cfg: config(
                "OAuth2ResourceMetadata https://api.example.com/v1\n\
                 OAuth2AcceptTokenIn header",
                &oauth2_location("/api", &v("type=dpop")),
                &oauth2_location(
                    "/main",
                    &format!("{}\nOAuth2AcceptTokenIn query", v("type=mtls")),
                ),
            ),
            path: "/.well-known/oauth-protected-resource/v1",
            expect: json!({
                "resource": "https://api.example.com/v1",
                "bearer_methods_supported": ["header", "query"],
                "tls_client_certificate_bound_access_tokens": true,
                "dpop_signing_alg_values_supported": [
                    "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
                    "RS256", "RS384", "RS512", "EdDSA"
                ],
                "dpop_bound_access_tokens_required": false,
            }),
        },
    ];
    for row in rows {
        let h = Httpd::start(row.cfg);
        let r = h.https(row.path).send();
        let doc: Result<Value, _> = serde_json::from_slice(&r.body);
        f.check(
            r.status == 200 && doc.as_ref().is_ok_and(|d| *d == row.expect),
            || {
                format!(
                    "{}: GET {} gave {} {}, expected 200 {}",
                    row.what,
                    row.path,
                    r.status,
                    r.text(),
                    row.expect
                )
            },
        );
        // The plain virtual host has no directive: the path is an ordinary one there.
        let plain = h.http(row.path).send();
        f.check(plain.status == 404, || {
            format!(
                "{}: plain vhost GET {} gave {}, expected 404",
                row.what, row.path, plain.status
            )
        });
    }
    f.assert_none();
}

const METADATA_URL: &str = "https://api.example.com/.well-known/oauth-protected-resource/v1/";

/// The document's URL with and without the path's trailing slash, GET, HEAD and other methods,
/// the response headers, no token needed where `<Location />` asks for one, and what is not the
/// metadata URL.
#[test]
fn the_document_is_public_json_and_cacheable() {
    let signer = TokenSigner::rsa("rm-req");
    let mut cfg = HttpdConfig::new(oauth2_location("/", &verify(&signer, "")));
    cfg.tls_body =
        "OAuth2ResourceMetadata https://api.example.com/v1/ resource_name=Example".into();
    let h = Httpd::start(cfg);
    let mut f = Failures::new();
    let expect = json!({
        "resource": "https://api.example.com/v1/",
        "bearer_methods_supported": ["header"],
        "resource_name": "Example",
        "tls_client_certificate_bound_access_tokens": false,
        "dpop_bound_access_tokens_required": false,
    });

    for path in [
        "/.well-known/oauth-protected-resource/v1/",
        "/.well-known/oauth-protected-resource/v1",
        "/.well-known/oauth-protected-resource/v1/?cache-buster=1",
    ] {
        let r = h.https(path).send();
        let doc: Result<Value, _> = serde_json::from_slice(&r.body);
        f.check(
            r.status == 200
                && doc.as_ref().is_ok_and(|d| *d == expect)
                && r.header("Content-Type") == Some("application/json")
                && r.header("Cache-Control") == Some("max-age=3600")
                && r.header("Content-Length") == Some(&r.body.len().to_string())
                && r.header("WWW-Authenticate").is_none(),
            || format!("GET {path}: {} {:?} {}", r.status, r.headers, r.text()),
        );
    }
    let get = h.https("/.well-known/oauth-protected-resource/v1/").send();
    let head = common::dpop::send_raw(
        &h,
        &common::dpop::RawReq::new("HEAD", "/.well-known/oauth-protected-resource/v1/"),
    );
    f.check(
        head.status == 200
            && head.body.is_empty()
            && head.header("Content-Type") == Some("application/json")
            && head.header("Content-Length") == Some(&get.body.len().to_string()),
        || format!("HEAD: {} {:?} {:?}", head.status, head.headers, head.text()),
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = h
            .https("/.well-known/oauth-protected-resource/v1/")
            .method(method)
            .send();
        let allow: Vec<&str> = r
            .header("Allow")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        f.check(
            r.status == 405
                && allow.contains(&"GET")
                && allow.contains(&"HEAD")
                && !allow.contains(&method),
            || format!("{method}: {} Allow {allow:?}", r.status),
        );
    }
    // Not the metadata URL of this host: `<Location />` asks for a token, with the challenge
    // naming the metadata URL.
    for path in [
        WELL_KNOWN,
        "/.well-known/oauth-protected-resource/v1/x",
        "/.well-known/oauth-protected-resource/v2/",
        "/v1/ok",
    ] {
        let r = h.https(path).send();
        let www = r.header_all("WWW-Authenticate");
        f.check(
            r.status == 401 && www == [format!("{NO_TOKEN}, resource_metadata=\"{METADATA_URL}\"")],
            || format!("GET {path}: {} {www:?}", r.status),
        );
    }
    // An encoded slash is not the path's slash (httpd refuses it: AllowEncodedSlashes Off).
    let encoded = h
        .https("/.well-known/oauth-protected-resource%2Fv1/")
        .send();
    f.check(encoded.status == 404, || {
        format!("encoded slash: {} {}", encoded.status, encoded.text())
    });
    // The host without the directive: the same URL is an ordinary protected one.
    let plain = h.http("/.well-known/oauth-protected-resource/v1/").send();
    f.expect("plain vhost", &plain, 401, Some(NO_TOKEN));
    // A token still works everywhere else.
    let token = signer.mint(&claims("joe"));
    assert_200(&h.https("/v1/ok").bearer(&token).send(), "a valid token");
    f.assert_none();
}

/// A request at each kind of location, with the schemes of its challenges.
struct ChallengeRow {
    what: &'static str,
    path: &'static str,
    /// The `Authorization` header, if any.
    authorization: Option<String>,
    schemes: &'static [&'static str],
}

/// Every 401 challenge of the host with the directive ends with `resource_metadata="<URL>"`
/// (Bearer, Basic, DPoP, both of a mixed location), and is otherwise the very challenge of the
/// host without it; the insufficient_scope challenge left for mod_headers carries it too.
#[test]
fn every_challenge_of_the_host_names_the_metadata() {
    let signer = TokenSigner::ec("rm-challenge");
    let show_scope_error = "Header always set X-Scope-Error \"%{OAUTH2_BEARER_SCOPE_ERROR}e\" \
                            \"expr=-n reqenv('OAUTH2_BEARER_SCOPE_ERROR')\"";
    let body = [
        oauth2_location("/b", &verify(&signer, "")),
        oauth2_location(
            "/r",
            &format!("AuthName \"my api\"\n{}", verify(&signer, "")),
        ),
        oauth2_location(
            "/basic",
            &format!("{}\nOAuth2AcceptTokenIn basic", verify(&signer, "")),
        ),
        oauth2_location("/d", &verify(&signer, "type=dpop&dpop.algs=ES256")),
        oauth2_location(
            "/m",
            &format!(
                "{}\n{}",
                verify(&signer, ""),
                verify(&signer, "type=dpop&dpop.algs=EdDSA")
            ),
        ),
        format!(
            "<Location /c>\nAuthType oauth2\n{}\n{show_scope_error}\nRequire oauth2_claim sub:alice\n</Location>\n",
            verify(&signer, "")
        ),
    ]
    .concat();
    let mut cfg = HttpdConfig::new(body);
    cfg.tls_body = "OAuth2ResourceMetadata https://api.example.com/v1/".into();
    let h = Httpd::start(cfg);
    let good = signer.mint(&claims("joe"));
    let bad = tamper_signature(&good);
    let mut f = Failures::new();

    let rows = [
        ChallengeRow {
            what: "Bearer, no token",
            path: "/b/ok",
            authorization: None,
            schemes: &["Bearer"],
        },
        ChallengeRow {
            what: "Bearer, bad token",
            path: "/b/ok",
            authorization: Some(format!("Bearer {bad}")),
            schemes: &["Bearer"],
        },
        ChallengeRow {
            what: "Bearer with AuthName, bad token",
            path: "/r/ok",
            authorization: Some(format!("Bearer {bad}")),
            schemes: &["Bearer"],
        },
        ChallengeRow {
            what: "Basic only, no token",
            path: "/basic/ok",
            authorization: None,
            schemes: &["Basic"],
        },
        ChallengeRow {
            what: "DPoP, no token",
            path: "/d/ok",
            authorization: None,
            schemes: &["DPoP"],
        },
        ChallengeRow {
            what: "DPoP, a token without a proof",
            path: "/d/ok",
            authorization: Some(format!("DPoP {good}")),
            schemes: &["DPoP"],
        },
        ChallengeRow {
            what: "bearer and DPoP, bad token",
            path: "/m/ok",
            authorization: Some(format!("Bearer {bad}")),
            schemes: &["Bearer", "DPoP"],
        },
    ];
    let suffix = format!(", resource_metadata=\"{METADATA_URL}\"");
    for row in &rows {
        let send = |tls: bool| {
            let req = if tls {
                h.https(row.path)
            } else {
                h.http(row.path)
            };
            match &row.authorization {
                Some(a) => req.header(&format!("Authorization: {a}")),
                None => req,
            }
            .send()
        };
        let (with, without) = (send(true), send(false));
        let (www, plain) = (
            with.header_all("WWW-Authenticate"),
            without.header_all("WWW-Authenticate"),
        );
        let parsed: Vec<Challenge> = challenges(&with).unwrap_or_default();
        let ok = with.status == 401
            && without.status == 401
            && parsed
                .iter()
                .map(|c| c.scheme.as_str())
                .eq(row.schemes.iter().copied())
            && parsed.iter().all(|c| {
                c.params.last().map(|(n, v)| (n.as_str(), v.as_str()))
                    == Some(("resource_metadata", METADATA_URL))
            })
            && www.len() == plain.len()
            && www
                .iter()
                .zip(&plain)
                .all(|(w, p)| *w == format!("{p}{suffix}") && !p.contains("resource_metadata"));
        f.check(ok, || {
            format!(
                "{}: with the directive {} {www:?}; without {} {plain:?}",
                row.what, with.status, without.status
            )
        });
    }
    // insufficient_scope, left in OAUTH2_BEARER_SCOPE_ERROR for mod_headers
    let scope_error = "Bearer error=\"insufficient_scope\", error_description=\"Different scope(s) or other claims required.\"";
    let with = h.https("/c/ok").bearer(&good).send();
    let without = h.http("/c/ok").bearer(&good).send();
    f.check(
        with.header("X-Scope-Error") == Some(&format!("{scope_error}{suffix}"))
            && without.header("X-Scope-Error") == Some(scope_error),
        || {
            format!(
                "insufficient_scope: {:?} / {:?}",
                with.header("X-Scope-Error"),
                without.header("X-Scope-Error")
            )
        },
    );
    f.assert_none();
}

/// The document and the challenges survive a graceful restart (the configuration is read again).
#[test]
fn a_graceful_restart_keeps_serving_the_document() {
    let signer = TokenSigner::rsa("rm-restart");
    let mut cfg = HttpdConfig::new(oauth2_location("/api", &verify(&signer, "type=mtls")));
    cfg.tls_body = "OAuth2ResourceMetadata https://api.example.com/v1/".into();
    let mut h = Httpd::start(cfg);
    let before = h.https("/.well-known/oauth-protected-resource/v1/").send();
    h.graceful();
    let after = h.https("/.well-known/oauth-protected-resource/v1/").send();
    assert_eq!((before.status, after.status), (200, 200));
    assert_eq!(before.body, after.body);
    let challenge = h.https("/api/ok").send();
    assert_eq!(
        challenge.www_authenticate(),
        Some(format!("{NO_TOKEN}, resource_metadata=\"{METADATA_URL}\"").as_str())
    );
    h.assert_no_child_crash();
}

/// `apache2 -t` refuses a bad line at its line number, saying why and what to write.
#[test]
fn bad_directives_fail_the_configuration_test() {
    let mut f = Failures::new();

    /// A TLS virtual host body and the message for the line holding `needle`.
    struct Row {
        tls_body: &'static str,
        needle: &'static str,
        message: &'static str,
    }
    let rows = [
        Row {
            tls_body: "OAuth2ResourceMetadata http://api.example.com/v1",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: the resource identifier \"http://api.example.com/v1\" must be an https:// URL, e.g. https://api.example.com/v1 (RFC 9728 section 1.2)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1#top",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: the resource identifier \"https://api.example.com/v1#top\" must not contain a fragment (#...): remove it (RFC 9728 section 1.2)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://user@api.example.com/v1",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: the resource identifier \"https://user@api.example.com/v1\" must not contain user information (user@ or user:password@): write https://<host>[/<path>] (RFC 9728 section 1.2)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/a/../v1",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: the resource identifier \"https://api.example.com/a/../v1\" has a \".\" or \"..\" path segment, which clients remove before they request a URL: write the path without it (RFC 9728 section 1.2)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 authorization_servers=http://as.example.com",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: authorization_servers: \"http://as.example.com\" must be an https:// URL, e.g. https://api.example.com/v1; name each authorization server by its issuer identifier, separated by spaces",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 authorization_servers=https://as.example.com/%3Ftenant%3Da",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: authorization_servers: \"https://as.example.com/?tenant=a\" must not contain a query (?...): remove it, an issuer identifier has none (RFC 8414 section 2); name each authorization server by its issuer identifier, separated by spaces",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 authorization_servers=",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: authorization_servers= is empty: give a value or leave the option out",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 scopes_supported=read+wr%22ite",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: scopes_supported: \"wr\"ite\" contains '\"', which a scope cannot contain (RFC 6749 section 3.3): separate scopes with spaces, each of printable ASCII characters other than the double quote and the backslash",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 resource_documentation=docs.example.com",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: resource_documentation \"docs.example.com\" must be an https:// or http:// URL, e.g. https://docs.example.com/api (an & in its query is written %26 in the options)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 authorisation_servers=https://as.example.com",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: unknown option \"authorisation_servers\": the options are authorization_servers, scopes_supported, resource_name, resource_documentation (names are case-sensitive)",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1 bearer_methods_supported=header",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata: bearer_methods_supported is derived from the OAuth2AcceptTokenIn lines; leave it out of the options",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata https://api.example.com/v1\nOAuth2ResourceMetadata https://api.example.com/v2",
            needle: "/v2",
            message: "OAuth2ResourceMetadata is already set for this virtual host at @CONF@:@LINE@: write one per server (each <VirtualHost> names its own resource)",
        },
        Row {
            tls_body: "<Location /api>\nOAuth2ResourceMetadata https://api.example.com/v1\n</Location>",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata not allowed in <Location> context",
        },
        Row {
            tls_body: "OAuth2ResourceMetadata",
            needle: "OAuth2ResourceMetadata",
            message: "OAuth2ResourceMetadata takes 1-2 arguments, OAuth2ResourceMetadata <resource identifier URL> [<options>]: RFC 9728 metadata",
        },
    ];
    for row in rows {
        let mut cfg = HttpdConfig::new("");
        cfg.tls_body = row.tls_body.into();
        let t = Httpd::config_test(cfg);
        let mut expected = row.message.replace("@CONF@", &t.conf.display().to_string());
        if expected.contains("@LINE@") {
            let first = t.line_of("OAuth2ResourceMetadata https://api.example.com/v1");
            expected = expected.replace("@LINE@", &first.to_string());
        }
        match t.syntax_error(row.needle) {
            Ok(message) => f.check(message == expected, || {
                format!(
                    "{:?}:\n  got      {message}\n  expected {expected}",
                    row.tls_body
                )
            }),
            Err(e) => f.fail(format!("{:?}: {e}", row.tls_body)),
        }
    }
    f.assert_none();
}

/// Valid lines: in each virtual host and the main server (one each), a query in the identifier
/// (RFC 9728 section 1.2 discourages it but allows it), every option.
#[test]
fn valid_directives_pass_the_configuration_test() {
    let mut cfg = HttpdConfig::new("OAuth2ResourceMetadata https://api.example.com/v1?tenant=a")
        .server("OAuth2ResourceMetadata https://main.example.com");
    cfg.tls_body = String::new();
    let t = Httpd::config_test(cfg);
    assert!(
        t.ok && t.output.contains("Syntax OK"),
        "{}\n--- config ---\n{}",
        t.output,
        t.conf_text
    );
    let mut cfg = HttpdConfig::new("");
    cfg.tls_body = "OAuth2ResourceMetadata https://[::1]:8443/v1 \"authorization_servers=https://as.example.com&scopes_supported=a b&resource_name=R&resource_documentation=http://docs.example.com/\"".into();
    let t = Httpd::config_test(cfg);
    assert!(t.ok && t.output.contains("Syntax OK"), "{}", t.output);
}
