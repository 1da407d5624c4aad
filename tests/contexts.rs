//! Configuration contexts as Apache and the C module have them: per-directory merging of
//! verifiers, token sources and `OAuth2TargetPass`; `.htaccess` with and without
//! `AllowOverride AuthConfig`; internal redirects and sub-requests verified once; `AuthType` handling (`oauth2` in any case,
//! `auth-openidc` co-operation, others ignored); `OAuth2CryptoPassphrase` contexts.

mod common;

use common::redirects::*;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::fs;

const ACCEPTED: &str = "token accepted by";

fn env_get<'a>(env: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    env.get(k).map(String::as_str)
}

#[test]
fn child_locations_inherit_or_replace() {
    let a = TokenSigner::rsa("a");
    let b = TokenSigner::ec("b");
    let c = TokenSigner::rsa("c");
    let va = format!("OAuth2TokenVerify jwk {}", a.jwk_arg());
    let vb = format!("OAuth2TokenVerify jwk {}", b.jwk_arg());
    let vc = format!("OAuth2TokenVerify jwk {}", c.jwk_arg());
    let child = |path: &str, d: &str| format!("<Location {path}>\n{d}\n</Location>\n");
    let body = [
        // the harness maps only `/<one segment>/env|ok`; children are deeper
        "ScriptAliasMatch \"^/.+/env$\" \"@CGI@\"\nAliasMatch \"^/.+/ok$\" \"@HTDOCS@/ok.txt\"\n"
            .to_string(),
        oauth2_location(
            "/p",
            &format!(
                "{va}\nOAuth2AcceptTokenIn query\nOAuth2TargetPass remote_user_claim=email"
            ),
        ),
        child("/p/inherit", "SetEnv CHILD inherit"),
        child("/p/prefix", "OAuth2TargetPass prefix=CHILD_"),
        child("/p/key", &vb),
        child("/p/src", "OAuth2AcceptTokenIn cookie"),
        child("/p/user", "OAuth2TargetPass remote_user_claim=sub"),
        // sources are one unit: the parent's strip=on does not reach a child with its own sources
        oauth2_location(
            "/q",
            &format!(
                "{va}\nCGIPassAuth On\nOAuth2AcceptTokenIn query strip=on\nOAuth2AcceptTokenIn header"
            ),
        ),
        child("/q/hdr", "OAuth2AcceptTokenIn header"),
        // verifier lists are replaced, not concatenated
        oauth2_location("/v", &format!("{va}\n{vb}")),
        child("/v/c", &vc),
        child("/v/inh", "SetEnv CHILD v"),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let cl = with(claims("joe"), json!({ "email": "joe@example.com" }));
    let (ta, tb, tc) = (a.mint(&cl), b.mint(&cl), c.mint(&cl));
    let q = |t: &str| format!("?access_token={t}");

    /// One request and what it must get.
    struct Row<'a> {
        what: &'a str,
        path: String,
        /// Sent as `Authorization: Bearer`.
        bearer: Option<&'a str>,
        /// Sent as `Cookie: access_token=`.
        cookie: Option<&'a str>,
        expect_status: u16,
        expect_challenge: Option<&'a str>,
        /// Variables the CGI must see (None: must not see), for a 200.
        expect_vars: Vec<(&'a str, Option<String>)>,
    }
    let v = |s: &str| Some(s.to_string());
    let email = v("joe@example.com");
    let rows: Vec<Row> = vec![
        Row {
            what: "parent",
            path: format!("/p/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![
                ("REMOTE_USER", email.clone()),
                ("OAUTH2_CLAIM_sub", v("joe")),
            ],
        },
        Row {
            what: "parent, header token",
            path: "/p/env".into(),
            bearer: Some(&ta),
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(NO_TOKEN),
            expect_vars: vec![],
        },
        Row {
            what: "child without OAuth2 directives",
            path: format!("/p/inherit/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![("REMOTE_USER", email.clone()), ("CHILD", v("inherit"))],
        },
        Row {
            what: "child without OAuth2 directives, other key",
            path: format!("/p/inherit/env{}", q(&tb)),
            bearer: None,
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(INVALID_TOKEN),
            expect_vars: vec![],
        },
        Row {
            what: "child sets only prefix: inherits verifier, source and remote_user_claim",
            path: format!("/p/prefix/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![
                ("REMOTE_USER", email.clone()),
                ("CHILD_sub", v("joe")),
                ("CHILD_email", email.clone()),
                ("OAUTH2_CLAIM_sub", None),
            ],
        },
        Row {
            what: "child sets only prefix, header token",
            path: "/p/prefix/env".into(),
            bearer: Some(&ta),
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(NO_TOKEN),
            expect_vars: vec![],
        },
        Row {
            what: "child with its own verifier",
            path: format!("/p/key/env{}", q(&tb)),
            bearer: None,
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![
                ("REMOTE_USER", email.clone()),
                ("OAUTH2_CLAIM_sub", v("joe")),
            ],
        },
        Row {
            what: "child with its own verifier, parent's key",
            path: format!("/p/key/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(INVALID_TOKEN),
            expect_vars: vec![],
        },
        Row {
            what: "child with its own source",
            path: "/p/src/env".into(),
            bearer: None,
            cookie: Some(&ta),
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![("REMOTE_USER", email.clone())],
        },
        Row {
            what: "child with its own source, parent's source",
            path: format!("/p/src/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(NO_TOKEN),
            expect_vars: vec![],
        },
        Row {
            what: "child overrides remote_user_claim",
            path: format!("/p/user/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![("REMOTE_USER", v("joe"))],
        },
        Row {
            what: "parent with strip=on",
            path: "/q/env".into(),
            bearer: Some(&ta),
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![("REMOTE_USER", v("joe")), ("HTTP_AUTHORIZATION", None)],
        },
        Row {
            what: "child's own sources without strip",
            path: "/q/hdr/env".into(),
            bearer: Some(&ta),
            cookie: None,
            expect_status: 200,
            expect_challenge: None,
            expect_vars: vec![
                ("REMOTE_USER", v("joe")),
                ("HTTP_AUTHORIZATION", Some(format!("Bearer {ta}"))),
            ],
        },
        Row {
            what: "child's own sources: parent's query not accepted",
            path: format!("/q/hdr/env{}", q(&ta)),
            bearer: None,
            cookie: None,
            expect_status: 401,
            expect_challenge: Some(NO_TOKEN),
            expect_vars: vec![],
        },
    ];
    let mut f = Failures::new();
    let run = |f: &mut Failures, row: &Row| {
        let Row {
            what,
            path,
            bearer,
            cookie,
            expect_status: status,
            expect_challenge: challenge,
            expect_vars: vars,
        } = row;
        let mut req = h.https(path);
        if let Some(t) = bearer {
            req = req.bearer(t);
        }
        if let Some(t) = cookie {
            req = req.header(&format!("Cookie: access_token={t}"));
        }
        let r = req.send();
        f.expect(what, &r, *status, *challenge);
        if r.status == 200 && *status == 200 {
            let env = r.env();
            for (k, want) in vars {
                let want = want.as_deref();
                f.check(env_get(&env, k) == want, || {
                    format!("{what}: {k} = {:?}, expected {want:?}", env_get(&env, k))
                });
            }
        }
    };
    for row in &rows {
        run(&mut f, row);
    }
    // verifier lists: parent A+B, child C only, another child inherits A+B
    /// A token signed by key a, b or c, and whether `<path>/ok` accepts it.
    struct Verifier<'a> {
        path: &'a str,
        token: &'a String,
        accepted: bool,
    }
    let cases = [
        Verifier {
            path: "/v",
            token: &ta,
            accepted: true,
        },
        Verifier {
            path: "/v",
            token: &tb,
            accepted: true,
        },
        Verifier {
            path: "/v",
            token: &tc,
            accepted: false,
        },
        Verifier {
            path: "/v/c",
            token: &ta,
            accepted: false,
        },
        Verifier {
            path: "/v/c",
            token: &tb,
            accepted: false,
        },
        Verifier {
            path: "/v/c",
            token: &tc,
            accepted: true,
        },
        Verifier {
            path: "/v/inh",
            token: &ta,
            accepted: true,
        },
        Verifier {
            path: "/v/inh",
            token: &tb,
            accepted: true,
        },
        Verifier {
            path: "/v/inh",
            token: &tc,
            accepted: false,
        },
    ];
    for Verifier {
        path,
        token: tok,
        accepted: ok,
    } in cases
    {
        let r = h.https(&format!("{path}/ok")).bearer(tok).send();
        let kid = if tok == &ta {
            "a"
        } else if tok == &tb {
            "b"
        } else {
            "c"
        };
        if ok {
            f.expect(&format!("{path} token of key {kid}"), &r, 200, None);
        } else {
            f.expect(
                &format!("{path} token of key {kid}"),
                &r,
                401,
                Some(INVALID_TOKEN),
            );
        }
    }
    f.assert_none();
}

#[test]
fn htaccess_needs_allow_override_authconfig() {
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(
        "<Directory @HTDOCS@/ht>\nAllowOverride AuthConfig\n</Directory>\n\
         <Directory @HTDOCS@/noht>\nAllowOverride None\n</Directory>\n",
    ));
    let htaccess = format!(
        "AuthType oauth2\nOAuth2TokenVerify jwk {}\nOAuth2AcceptTokenIn query\n\
         OAuth2TargetPass remote_user_claim=email\nRequire valid-user\n",
        signer.jwk_arg()
    );
    for d in ["ht", "noht"] {
        let dir = h.dir.join("htdocs").join(d);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".htaccess"), &htaccess).unwrap();
        fs::write(dir.join("f.txt"), format!("{d}\n")).unwrap();
    }
    let tok = signer.mint(&with(claims("joe"), json!({ "email": "joe@example.com" })));
    let mut f = Failures::new();
    let r = h.https(&format!("/ht/f.txt?access_token={tok}")).send();
    f.expect("/ht with a query token", &r, 200, None);
    f.check(r.text() == "ht\n", || format!("/ht body {:?}", r.text()));
    // (the access log is written after the response: wait for it, bounded)
    let logged = poll(std::time::Duration::from_secs(3), || {
        h.access_log()
            .lines()
            .any(|l| l.contains(" joe@example.com [") && l.contains("GET /ht/f.txt?access_token="))
            .then_some(())
    });
    f.check(logged.is_some(), || {
        format!(
            "/ht: user joe@example.com not in the access log:\n{}",
            h.access_log()
        )
    });
    let r = h.https("/ht/f.txt").send();
    f.expect("/ht without a token", &r, 401, Some(NO_TOKEN));
    let r = h.https("/ht/f.txt").bearer(&tok).send();
    f.expect(
        "/ht with a header token (query only)",
        &r,
        401,
        Some(NO_TOKEN),
    );
    let r = h
        .https(&format!(
            "/ht/f.txt?access_token={}",
            tamper_signature(&tok)
        ))
        .send();
    f.expect("/ht with a bad token", &r, 401, Some(INVALID_TOKEN));
    let r = h.https("/noht/f.txt").send();
    f.expect("/noht without a token (.htaccess ignored)", &r, 200, None);
    f.check(r.text() == "noht\n", || {
        format!("/noht body {:?}", r.text())
    });
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn internal_redirects_and_subrequests_verify_once() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = start_httpd_with_internal_redirects(&verify);
    let tok = signer.mint(&claims("joe"));
    let mut f = Failures::new();
    for case in &REDIRECTS {
        let (what, path, status) = (case.what, case.path, case.expect_status);
        let mark = h.log_mark();
        let r = h.https(path).bearer(&tok).send();
        f.check(r.status == status, || {
            format!("{what} {path}: status {}, expected {status}", r.status)
        });
        case.check_cgi(&mut f, &r, "joe");
        let log = h.wait_log_since(mark, |l| l.contains(ACCEPTED));
        let n = log.lines().filter(|l| l.contains(ACCEPTED)).count();
        f.check(n == 1, || {
            format!("{what} {path}: `{ACCEPTED}` logged {n} times, expected 1:\n{log}")
        });
        // and without a token it is refused before any redirect
        let r = h.https(path).send();
        f.expect(
            &format!("{what} {path} without a token"),
            &r,
            401,
            Some(NO_TOKEN),
        );
    }
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn auth_types() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let loc = |path: &str, auth_type: &str| {
        format!("<Location {path}>\n{auth_type}\n{verify}\nRequire valid-user\n</Location>\n")
    };
    let body = [
        loc("/lower", "AuthType oauth2"),
        loc("/upper", "AuthType OAUTH2"),
        loc("/mixed", "AuthType OAuth2"),
        loc("/openidc", "AuthType auth-openidc"),
        loc("/openidc2", "AuthType Auth-OpenIDC"),
        loc("/basic", "AuthType Basic"),
        loc("/other", "AuthType Bearer"),
        loc("/none", ""),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let tok = signer.mint(&claims("joe"));
    let bad = tamper_signature(&tok);
    let mut f = Failures::new();
    for path in ["/lower", "/upper", "/mixed"] {
        let r = h.https(&format!("{path}/env")).bearer(&tok).send();
        f.expect(&format!("{path} valid token"), &r, 200, None);
        if r.status == 200 {
            let env = r.env();
            f.check(env_get(&env, "REMOTE_USER") == Some("joe"), || {
                format!("{path}: REMOTE_USER {:?}", env_get(&env, "REMOTE_USER"))
            });
        }
        let r = h.https(&format!("{path}/env")).send();
        f.expect(&format!("{path} no token"), &r, 401, Some(NO_TOKEN));
        let r = h.https(&format!("{path}/env")).bearer(&bad).send();
        f.expect(&format!("{path} bad token"), &r, 401, Some(INVALID_TOKEN));
    }
    // auth-openidc without mod_auth_openidc: we verify a present token, and decline otherwise
    for path in ["/openidc", "/openidc2"] {
        let r = h.https(&format!("{path}/env")).bearer(&tok).send();
        f.expect(&format!("{path} valid token"), &r, 200, None);
        if r.status == 200 {
            let env = r.env();
            f.check(env_get(&env, "REMOTE_USER") == Some("joe"), || {
                format!("{path}: REMOTE_USER {:?}", env_get(&env, "REMOTE_USER"))
            });
            f.check(env_get(&env, "OAUTH2_CLAIM_sub") == Some("joe"), || {
                format!(
                    "{path}: OAUTH2_CLAIM_sub {:?}",
                    env_get(&env, "OAUTH2_CLAIM_sub")
                )
            });
        }
        let mark = h.log_mark();
        let r = h.https(&format!("{path}/env")).send();
        f.expect(&format!("{path} no token"), &r, 500, None);
        f.check(r.header_all("WWW-Authenticate").is_empty(), || {
            format!(
                "{path} no token: WWW-Authenticate {:?}",
                r.header_all("WWW-Authenticate")
            )
        });
        let log = h.wait_log_since(mark, |l| l.contains("AH01796"));
        f.check(log.contains("AH01796"), || {
            format!("{path} no token: no AH01796 in the log:\n{log}")
        });
        let r = h.https(&format!("{path}/env")).bearer(&bad).send();
        f.expect(&format!("{path} bad token"), &r, 401, Some(INVALID_TOKEN));
    }
    // any other AuthType (or none): the module does nothing, nobody authenticates -> 500
    for path in ["/basic", "/other", "/none"] {
        for (what, token) in [("valid token", Some(&tok)), ("no token", None)] {
            let mark = h.log_mark();
            let mut req = h.https(&format!("{path}/env"));
            if let Some(t) = token {
                req = req.bearer(t);
            }
            let r = req.send();
            f.expect(&format!("{path} {what}"), &r, 500, None);
            f.check(r.header_all("WWW-Authenticate").is_empty(), || {
                format!(
                    "{path} {what}: WWW-Authenticate {:?}",
                    r.header_all("WWW-Authenticate")
                )
            });
            let log = h.wait_log_since(mark, |l| l.contains("AH0"));
            let ours: Vec<&str> = log.lines().filter(|l| l.contains("[oauth2:")).collect();
            f.check(ours.is_empty(), || {
                format!("{path} {what}: the module ran: {ours:?}")
            });
        }
    }
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn crypto_passphrase_contexts() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let mut f = Failures::new();
    let t = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/p", &verify)).server("OAuth2CryptoPassphrase secret"),
    );
    f.check(t.ok && t.output.contains("Syntax OK"), || {
        format!("server-level OAuth2CryptoPassphrase refused:\n{}", t.output)
    });
    let t = Httpd::config_test(HttpdConfig::new(oauth2_location(
        "/p",
        &format!("{verify}\nOAuth2CryptoPassphrase secret"),
    )));
    f.check(t.ok && t.output.contains("Syntax OK"), || {
        format!(
            "OAuth2CryptoPassphrase in a Location refused:\n{}",
            t.output
        )
    });
    let t = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/p", &verify)).server("OAuth2CryptoPassphrase \"\""),
    );
    match t.syntax_error("OAuth2CryptoPassphrase") {
        Ok(m) => f.check(!m.trim().is_empty(), || {
            "OAuth2CryptoPassphrase \"\": empty message".into()
        }),
        Err(e) => f.fail(format!("OAuth2CryptoPassphrase \"\": {e}")),
    }
    f.assert_none();
}

/// An internal redirect into another location (docs/compatibility.md, row "internal redirects and
/// sub-requests"): it keeps the user only when this module authenticated the request it came from
/// under the same `OAuth2TokenVerify` lines and `OAuth2TargetPass`. Otherwise it is scrubbed and
/// verified like any request: a lax location's token (another key, no certificate) does not run
/// the strict location's handler, and neither does a Basic user with spoofed claim headers.
#[test]
fn redirects_into_another_location_are_verified_there() {
    let lax = TokenSigner::rsa("lax");
    let strict = TokenSigner::ec("strict");
    let lax_verify = format!("OAuth2TokenVerify jwk {}", lax.jwk_arg());
    let strict_verify = format!(
        "OAuth2TokenVerify jwk {} type=mtls&mtls.policy=required",
        strict.jwk_arg()
    );
    let server = [
        load_module("auth_basic_module", "mod_auth_basic.so"),
        load_module("authn_file_module", "mod_authn_file.so"),
        load_module("dir_module", "mod_dir.so"),
    ]
    .concat();
    let body = [
        oauth2_location("/strict", &strict_verify),
        oauth2_location("/lax2", &lax_verify),
        // a 404 inside /lax is answered by the strict location's CGI (or by /lax2's)
        oauth2_location("/lax", &format!("{lax_verify}\nErrorDocument 404 /strict/env")),
        oauth2_location("/laxsame", &format!("{lax_verify}\nErrorDocument 404 /lax2/env")),
        // DirectoryIndex: a sub-request into the strict location
        oauth2_location("/dilax", &format!("{lax_verify}\nDirectoryIndex /strict/env")),
        "<Location /basic>\nAuthType Basic\nAuthName basic\nAuthBasicProvider file\n\
         AuthUserFile @DIR@/htpasswd\nErrorDocument 404 /lax2/env\nRequire valid-user\n</Location>\n"
            .to_string(),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(server));
    fs::create_dir_all(h.dir.join("htdocs/dilax")).unwrap();
    let made = std::process::Command::new("htpasswd")
        .args(["-bcB", "-C", "4"])
        .arg(h.dir.join("htpasswd"))
        .args(["basicuser", "pw"])
        .output()
        .expect("htpasswd");
    assert!(made.status.success(), "htpasswd: {made:?}");
    fs::set_permissions(
        h.dir.join("htpasswd"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let lax_tok = lax.mint(&claims("joe"));
    let strict_bound = strict.mint(&with(
        claims("carol"),
        json!({"cnf": {"x5t#S256": h.pki.thumb_a}}),
    ));

    /// A request to a missing file (answered by an ErrorDocument in another location), and
    /// whether that location's CGI runs, as whom.
    struct Redirect<'a> {
        what: &'a str,
        path: &'a str,
        authorization: Option<String>,
        cert: Option<ClientCert>,
        /// REMOTE_USER of the CGI the redirect reaches; None: the CGI must not run.
        expect_cgi_user: Option<&'a str>,
    }
    let basic = format!("Basic {}", openssl::base64::encode_block(b"basicuser:pw"));
    let rows = [
        Redirect {
            what: "lax token redirected into the strict location",
            path: "/lax/missing",
            authorization: Some(format!("Bearer {lax_tok}")),
            cert: Some(ClientCert::A),
            expect_cgi_user: None,
        },
        Redirect {
            what: "lax token redirected into a location with the same verifier",
            path: "/laxsame/missing",
            authorization: Some(format!("Bearer {lax_tok}")),
            cert: None,
            expect_cgi_user: Some("joe"),
        },
        Redirect {
            what: "lax token in a sub-request (DirectoryIndex) into the strict location",
            path: "/dilax/",
            authorization: Some(format!("Bearer {lax_tok}")),
            cert: Some(ClientCert::A),
            expect_cgi_user: None,
        },
        Redirect {
            what: "Basic user redirected into an oauth2 location",
            path: "/basic/missing",
            authorization: Some(basic.clone()),
            cert: None,
            expect_cgi_user: None,
        },
    ];
    let mut f = Failures::new();
    for row in &rows {
        let Redirect {
            what,
            path,
            authorization,
            cert,
            expect_cgi_user,
        } = row;
        let mut req = h
            .https(path)
            .maybe_cert(*cert)
            .header("OAUTH2_CLAIM_sub: spoofed")
            .header("OAUTH2-CLAIM-role: spoofed");
        if let Some(a) = authorization {
            req = req.header(&format!("Authorization: {a}"));
        }
        let r = req.send();
        let env = r.env_bytes();
        let ran = env.contains_key("GATEWAY_INTERFACE");
        match expect_cgi_user {
            None => f.check(!ran, || {
                format!(
                    "{what}: the CGI ran (status {}) as {:?}",
                    r.status,
                    env.get("REMOTE_USER")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                )
            }),
            Some(user) => {
                f.check(
                    ran && env.get("REMOTE_USER").map(Vec::as_slice) == Some(user.as_bytes()),
                    || format!("{what}: status {}, body {:?}", r.status, r.text()),
                );
            }
        }
        let spoofed: Vec<String> = env
            .iter()
            .filter(|(_, v)| v.as_slice() == b"spoofed")
            .map(|(k, _)| k.clone())
            .collect();
        f.check(spoofed.is_empty(), || {
            format!("{what}: spoofed headers reached the CGI: {spoofed:?}")
        });
    }
    // The strict location itself, and a redirect that verifies there: certificate-bound tokens.
    let r = h
        .https("/strict/env")
        .cert(ClientCert::A)
        .bearer(&strict_bound)
        .send();
    f.expect("strict location, bound token", &r, 200, None);
    let r = h
        .https("/strict/env")
        .cert(ClientCert::B)
        .bearer(&strict_bound)
        .send();
    f.expect(
        "strict location, other certificate",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    f.assert_none();
    h.assert_no_child_crash();
}
