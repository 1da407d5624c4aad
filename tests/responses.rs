//! Exact error responses (status + WWW-Authenticate bytes), where the token is taken from, and the
//! error-log contract: one line per refusal, never the token.

mod common;

use common::*;
use serde_json::json;

fn body(jwk: &str, static_env_token: &str) -> String {
    let verify = format!("OAuth2TokenVerify jwk {jwk}");
    [
        oauth2_location("/p", &verify),
        oauth2_location("/realm", &format!("AuthName \"my realm\"\n{verify}")),
        // token from the environment variable `access_token`, set by SetEnvIf from a header ...
        oauth2_location(
            "/envhdr",
            &format!("SetEnvIf X-Access-Token \"^(.+)$\" access_token=$1\n{verify}"),
        ),
        // ... and set statically by SetEnvIf on the URI
        oauth2_location(
            "/envstatic",
            &format!(
                "SetEnvIf Request_URI \"^/envstatic/\" access_token={static_env_token}\n{verify}"
            ),
        ),
    ]
    .concat()
}

#[test]
fn exact_challenges() {
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(body(&signer.jwk_arg(), "unused")));
    let realm = "my realm";
    let good = signer.mint(&claims("joe"));
    let bad_sig = tamper_signature(&good);
    let expired = signer.mint(&with(
        claims("joe"),
        json!({ "iat": now() - 600, "exp": now() - 60 }),
    ));
    let other_key = TokenSigner::rsa("one").mint(&claims("joe"));
    let no_sub = signer.mint(&without(claims("joe"), "sub"));
    let num_sub = signer.mint(&with(claims("joe"), json!({ "sub": 5 })));
    let null_sub = signer.mint(&with(claims("joe"), json!({ "sub": null })));
    let mut f = Failures::new();

    /// One request to `/p/ok` and to `/realm/ok` (where the challenge carries `realm="my realm"`).
    struct Case<'a> {
        name: &'a str,
        /// The `Authorization` header's value, if any.
        authorization: Option<String>,
        status: u16,
        /// The exact WWW-Authenticate value (without the realm) for a 401.
        challenge: Option<&'a str>,
    }
    let cases = [
        Case {
            name: "no token",
            authorization: None,
            status: 401,
            challenge: Some(NO_TOKEN),
        },
        Case {
            name: "wrong scheme Basic xyz",
            authorization: Some("Basic xyz".into()),
            status: 401,
            challenge: Some(NO_TOKEN),
        },
        Case {
            name: "bad signature",
            authorization: Some(format!("Bearer {bad_sig}")),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "expired",
            authorization: Some(format!("Bearer {expired}")),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "signed by another key with the same kid",
            authorization: Some(format!("Bearer {other_key}")),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "not a JWT",
            authorization: Some("Bearer abc".into()),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "empty bearer token",
            authorization: Some("Bearer".into()),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "trailing junk after the token",
            authorization: Some(format!("Bearer {good} junk")),
            status: 401,
            challenge: Some(INVALID_TOKEN),
        },
        Case {
            name: "sub missing",
            authorization: Some(format!("Bearer {no_sub}")),
            status: 401,
            challenge: Some(NO_REMOTE_USER),
        },
        Case {
            name: "numeric sub",
            authorization: Some(format!("Bearer {num_sub}")),
            status: 401,
            challenge: Some(NO_REMOTE_USER),
        },
        Case {
            name: "null sub",
            authorization: Some(format!("Bearer {null_sub}")),
            status: 401,
            challenge: Some(NO_REMOTE_USER),
        },
        Case {
            name: "good",
            authorization: Some(format!("Bearer {good}")),
            status: 200,
            challenge: None,
        },
    ];
    for case in &cases {
        let name = case.name;
        for (loc, with_realm_prefix) in [("/p", false), ("/realm", true)] {
            let mut req = h.https(&format!("{loc}/ok"));
            if let Some(v) = &case.authorization {
                req = req.header(&format!("Authorization: {v}"));
            }
            let r = req.send();
            let want = case.challenge.map(|c| {
                if with_realm_prefix {
                    with_realm(c, realm)
                } else {
                    c.to_string()
                }
            });
            f.expect(&format!("{loc} | {name}"), &r, case.status, want.as_deref());
            f.check(case.status != 200 || r.www_authenticate().is_none(), || {
                format!("{loc} | {name}: WWW-Authenticate on success")
            });
        }
    }
    // spell the realm variants out once, byte for byte
    let r = h.https("/realm/ok").send();
    f.check(
        r.www_authenticate()
            == Some(
                "Bearer realm=\"my realm\", error=\"invalid_request\", error_description=\"No bearer token found in the request.\"",
            ),
        || format!("realm no-token literal: {:?}", r.www_authenticate()),
    );
    let r = h.https("/realm/ok").bearer(&bad_sig).send();
    f.check(
        r.www_authenticate()
            == Some(
                "Bearer realm=\"my realm\", error=\"invalid_token\", error_description=\"Token could not be verified.\"",
            ),
        || format!("realm invalid-token literal: {:?}", r.www_authenticate()),
    );
    // the plain-HTTP listener answers the same way
    let r = h.http("/p/ok").send();
    f.expect("plain HTTP | no token", &r, 401, Some(NO_TOKEN));
    let r = h.http("/p/ok").bearer(&bad_sig).send();
    f.expect("plain HTTP | bad signature", &r, 401, Some(INVALID_TOKEN));
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(body(&signer.jwk_arg(), "unused")));
    let tok = signer.mint(&claims("joe"));
    let mut f = Failures::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = h
            .https("/p/env")
            .header(&format!("Authorization: {scheme} {tok}"))
            .send();
        f.expect(&format!("scheme {scheme}"), &r, 200, None);
        if r.status == 200 {
            let env = r.env();
            f.check(
                env.get("REMOTE_USER").map(String::as_str) == Some("joe"),
                || format!("scheme {scheme}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
            );
        }
    }
    // several spaces between scheme and token are skipped
    let r = h
        .https("/p/ok")
        .header(&format!("Authorization: Bearer   {tok}"))
        .send();
    f.expect("three spaces after the scheme", &r, 200, None);
    // header name is case-insensitive too
    let r = h
        .https("/p/ok")
        .header(&format!("authorization: bearer {tok}"))
        .send();
    f.expect("lower-case header name", &r, 200, None);
    // other schemes are "no token"
    for scheme in ["Bearerx", "Basic", "DPoP", "Token"] {
        let r = h
            .https("/p/ok")
            .header(&format!("Authorization: {scheme} {tok}"))
            .send();
        f.expect(&format!("scheme {scheme}"), &r, 401, Some(NO_TOKEN));
    }
    f.assert_none();
}

#[test]
fn token_from_environment_variable() {
    let signer = TokenSigner::rsa("one");
    let static_tok = signer.mint(&claims("static-user"));
    let h = Httpd::start(HttpdConfig::new(body(&signer.jwk_arg(), &static_tok)));
    let alice = signer.mint(&claims("alice"));
    let bob = signer.mint(&claims("bob"));
    let mut f = Failures::new();

    // SetEnvIf from a request header
    let r = h
        .https("/envhdr/env")
        .header(&format!("X-Access-Token: {alice}"))
        .send();
    f.expect("env from header", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("alice"),
            || format!("env from header: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
        // strip (default on) removes the environment variable once the token was taken from it
        f.check(!env.contains_key("access_token"), || {
            "env from header: access_token still in the backend's environment".into()
        });
    }
    // a bad token in the environment variable is refused like any other
    let r = h
        .https("/envhdr/ok")
        .header(&format!("X-Access-Token: {}", tamper_signature(&alice)))
        .send();
    f.expect("env bad signature", &r, 401, Some(INVALID_TOKEN));
    // the environment is consulted before the Authorization header
    let r = h
        .https("/envhdr/env")
        .header(&format!("X-Access-Token: {alice}"))
        .bearer(&bob)
        .send();
    f.expect("env and header", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("alice"),
            || {
                format!(
                    "env before header: REMOTE_USER {:?}",
                    env.get("REMOTE_USER")
                )
            },
        );
    }
    // without the environment variable the header is used
    let r = h.https("/envhdr/env").bearer(&bob).send();
    f.expect("header only on env location", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("bob"),
            || format!("header fallback: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
    }
    let r = h.https("/envhdr/ok").send();
    f.expect("env location, no token", &r, 401, Some(NO_TOKEN));

    // SetEnvIf with a fixed value
    let r = h.https("/envstatic/env").send();
    f.expect("static env token", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("static-user"),
            || format!("static env: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
    }
    let r = h.http("/envstatic/ok").send();
    f.expect("static env token over plain HTTP", &r, 200, None);
    f.assert_none();
}

#[test]
fn one_log_line_per_refusal_and_never_the_token() {
    let signer = TokenSigner::rsa("one");
    let jwk = signer.jwk_arg();
    let mut body = body(&jwk, "unused");
    body.push_str(&oauth2_location(
        "/mtls",
        &format!("OAuth2TokenVerify jwk {jwk} type=mtls&mtls.policy=required"),
    ));
    let h = Httpd::start(HttpdConfig::new(body));
    let good = signer.mint(&claims("joe"));
    let bad_sig = tamper_signature(&good);
    let expired = signer.mint(&with(
        claims("joe"),
        json!({ "iat": now() - 600, "exp": now() - 60 }),
    ));
    let bound_b = signer.mint(&with(
        claims("joe"),
        json!({ "cnf": { "x5t#S256": h.pki.thumb_b } }),
    ));
    let no_sub = signer.mint(&without(claims("joe"), "sub"));
    let all_tokens = [&good, &bad_sig, &expired, &bound_b, &no_sub];

    /// A request that is refused.
    struct Refusal<'a> {
        name: &'a str,
        path: &'a str,
        token: Option<&'a String>,
        cert: Option<ClientCert>,
    }
    let refusal = |name, path, token, cert| Refusal {
        name,
        path,
        token,
        cert,
    };
    let refusals = [
        refusal("no token", "/p/ok", None, None),
        refusal("bad signature", "/p/ok", Some(&bad_sig), None),
        refusal("expired", "/p/ok", Some(&expired), None),
        refusal(
            "certificate mismatch",
            "/mtls/ok",
            Some(&bound_b),
            Some(ClientCert::A),
        ),
        refusal("no certificate", "/mtls/ok", Some(&bound_b), None),
        refusal("unbound under required", "/mtls/ok", Some(&good), None),
        refusal("no remote user", "/p/ok", Some(&no_sub), None),
    ];
    let mut f = Failures::new();
    let mut marks = vec![];
    for Refusal {
        name,
        path,
        token,
        cert,
    } in &refusals
    {
        marks.push(h.log_mark());
        let mut req = h.https(path).maybe_cert(*cert);
        if let Some(t) = token {
            req = req.bearer(t);
        }
        let r = req.send();
        f.check(r.status == 401, || format!("{name}: status {}", r.status));
        // the refusal line is written before the response; allow a bounded wait anyway
        let _ = h.wait_log_since(*marks.last().unwrap(), |t| {
            !oauth2_refusal_lines(t).is_empty()
        });
    }
    // an accepted request in between must not be logged above debug
    let accepted_mark = h.log_mark();
    let r = h.https("/p/ok").bearer(&good).send();
    f.check(r.status == 200, || {
        format!("good token: status {}", r.status)
    });
    marks.push(accepted_mark);
    // a request outside any oauth2 Location closes the last window
    let _ = h.http("/none/ok").send();
    marks.push(h.log_mark());

    for (i, Refusal { name, .. }) in refusals.iter().enumerate() {
        let window = h.log_between(marks[i], marks[i + 1]);
        let lines = oauth2_refusal_lines(&window);
        f.check(lines.len() == 1, || {
            format!(
                "{name}: expected exactly one non-debug [oauth2:...] line, got {}:\n{window}",
                lines.len()
            )
        });
        if let Some(l) = lines.first() {
            f.check(l.contains("[client 127.0.0.1:"), || {
                format!("{name}: refusal line is not request-scoped: {l}")
            });
        }
    }
    let accepted_window = h.log_between(marks[refusals.len()], marks[refusals.len() + 1]);
    f.check(oauth2_refusal_lines(&accepted_window).is_empty(), || {
        format!("accepted request logged above debug:\n{accepted_window}")
    });

    let log = h.error_log();
    for t in all_tokens {
        f.check(!log.contains(t.as_str()), || {
            format!("a token appears in the error log: {t}")
        });
        f.check(!log.contains(signature_segment(t)), || {
            format!(
                "a token's signature segment appears in the error log: {}",
                signature_segment(t)
            )
        });
    }
    f.assert_none();
}
