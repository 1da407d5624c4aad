//! `OAuth2TargetPass` as the C module has it: `envvars`/`headers` flags (independent),
//! `authn_header`, `prefix`, `remote_user_claim`, `json_payload_claim`, `encoding`, one line setting
//! only what it names, spoofed headers scrubbed on every path, and the configuration errors.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;

/// For each `(name, directives)`: `<Location /name>` (CGI: `/name/env`) and `<Location /px-name>`
/// proxied to `backend` (`/px-name/x` arrives as `/x`), both with `verify` and `directives`.
fn pairs(verify: &str, backend: &RawBackend, locations: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (name, d) in locations {
        s.push_str(&oauth2_location(
            &format!("/{name}"),
            &format!("{verify}\n{d}"),
        ));
        s.push_str(&oauth2_location(
            &format!("/px-{name}"),
            &format!("{verify}\n{d}\nProxyPass {}", backend.url()),
        ));
    }
    s
}

/// Raw values of the header fields called `name` (case-insensitive) in a raw request head.
fn head_values(head: &[u8], name: &str) -> Vec<Vec<u8>> {
    let end = find_bytes(head, b"\r\n\r\n").unwrap_or(head.len());
    head[..end]
        .split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let i = l.iter().position(|b| *b == b':')?;
            let n = String::from_utf8_lossy(&l[..i]);
            let mut v = &l[i + 1..];
            while let [b' ' | b'\t', rest @ ..] = v {
                v = rest;
            }
            n.eq_ignore_ascii_case(name).then(|| v.to_vec())
        })
        .collect()
}

/// Names of the header fields in a raw request head.
fn head_names(head: &[u8]) -> Vec<String> {
    raw_head_fields(head).into_iter().map(|(n, _)| n).collect()
}

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(b) => format!("\"{}\"", b.escape_ascii()),
        None => "absent".into(),
    }
}

/// Expected CGI variables and proxied headers for one location: `Some(bytes)` = exactly this
/// value, `None` = absent.
struct Expect {
    user: &'static str,
    env: Vec<(&'static str, Option<Vec<u8>>)>,
    headers: Vec<(&'static str, Option<Vec<u8>>)>,
    /// no CGI variable / proxied header name starts with this (case-insensitive)
    env_none_with: Vec<&'static str>,
    headers_none_with: Vec<&'static str>,
}

fn b(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

/// Runs `/name/env` and `/px-name/x` with `token` and checks `e`.
fn check(f: &mut Failures, h: &Httpd, name: &str, token: &str, e: &Expect) {
    let r = h.https(&format!("/{name}/env")).bearer(token).send();
    f.expect(&format!("/{name} CGI"), &r, 200, None);
    if r.status == 200 {
        let env: BTreeMap<String, Vec<u8>> = r.env_bytes();
        let user = env.get("REMOTE_USER").cloned();
        f.check(user == b(e.user), || {
            format!(
                "/{name} CGI: REMOTE_USER {}, expected {:?}",
                show(&user),
                e.user
            )
        });
        for (k, want) in &e.env {
            let got = env.get(*k).cloned();
            f.check(got == *want, || {
                format!("/{name} CGI: {k} = {}, expected {}", show(&got), show(want))
            });
        }
        for p in &e.env_none_with {
            let bad: Vec<&String> = env
                .keys()
                .filter(|k| k.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()))
                .collect();
            f.check(bad.is_empty(), || {
                format!("/{name} CGI: unexpected variables {bad:?}")
            });
        }
    }
    let r = h.https(&format!("/px-{name}/x")).bearer(token).send();
    f.expect(&format!("/px-{name} proxied"), &r, 200, None);
    if r.status == 200 {
        for (k, want) in &e.headers {
            let got = head_values(&r.body, k);
            let ok = match want {
                Some(w) => got == [w.clone()],
                None => got.is_empty(),
            };
            f.check(ok, || {
                format!(
                    "/px-{name}: header {k} = {:?}, expected {}",
                    got.iter()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect::<Vec<_>>(),
                    show(want)
                )
            });
        }
        for p in &e.headers_none_with {
            let bad: Vec<String> = head_names(&r.body)
                .into_iter()
                .filter(|n| n.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()))
                .collect();
            f.check(bad.is_empty(), || {
                format!("/px-{name}: unexpected headers {bad:?}")
            });
        }
    }
}

#[test]
fn flags_prefix_and_authn_header() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let tp = |o: &str| format!("OAuth2TargetPass {o}");
    let locations = [
        ("dflt", String::new()),
        ("envoff", tp("envvars=off")),
        ("hdroff", tp("headers=off")),
        ("bothoff", tp("envvars=off&headers=off")),
        (
            "bothoff2",
            format!("{}\n{}", tp("headers=0"), tp("envvars=false")),
        ),
        ("on", tp("envvars=on&headers=true")),
        ("authn", tp("authn_header=X-Remote-User")),
        ("prefix", tp("prefix=X-C-")),
        // each line sets only the options it names
        (
            "twolines",
            format!("{}\n{}", tp("prefix=X-C-"), tp("remote_user_claim=email")),
        ),
        (
            "twolines2",
            format!("{}\n{}", tp("prefix=A_&envvars=off"), tp("headers=on")),
        ),
    ];
    let h = Httpd::start(HttpdConfig::new(pairs(&verify, &backend, &locations)));
    let c = with(claims("joe"), json!({ "email": "joe@example.com", "n": 5 }));
    let tok = signer.mint(&c);
    let iat = c["iat"].to_string();
    let claim_env = || -> Vec<(&'static str, Option<Vec<u8>>)> {
        vec![
            ("OAUTH2_CLAIM_sub", b("joe")),
            ("OAUTH2_CLAIM_iss", b("https://as.example.test")),
            ("OAUTH2_CLAIM_iat", b(&iat)),
            ("OAUTH2_CLAIM_email", b("joe@example.com")),
            ("OAUTH2_CLAIM_n", b("5")),
            ("OAUTH2_CLAIM_access_token", b(&tok)),
        ]
    };
    let mut f = Failures::new();
    // defaults: both variables and headers
    check(
        &mut f,
        &h,
        "dflt",
        &tok,
        &Expect {
            user: "joe",
            env: claim_env(),
            headers: vec![
                ("OAUTH2_CLAIM_sub", b("joe")),
                ("OAUTH2_CLAIM_email", b("joe@example.com")),
                ("OAUTH2_CLAIM_n", b("5")),
                ("OAUTH2_CLAIM_access_token", b(&tok)),
            ],
            env_none_with: vec![],
            headers_none_with: vec![],
        },
    );
    check(
        &mut f,
        &h,
        "on",
        &tok,
        &Expect {
            user: "joe",
            env: claim_env(),
            headers: vec![("OAUTH2_CLAIM_sub", b("joe"))],
            env_none_with: vec![],
            headers_none_with: vec![],
        },
    );
    // envvars=off alone stops the variables (the C module's bug is fixed), headers still go
    check(
        &mut f,
        &h,
        "envoff",
        &tok,
        &Expect {
            user: "joe",
            env: vec![],
            headers: vec![
                ("OAUTH2_CLAIM_sub", b("joe")),
                ("OAUTH2_CLAIM_access_token", b(&tok)),
            ],
            env_none_with: vec!["OAUTH2_CLAIM"],
            headers_none_with: vec![],
        },
    );
    // headers=off: variables only
    check(
        &mut f,
        &h,
        "hdroff",
        &tok,
        &Expect {
            user: "joe",
            env: claim_env(),
            headers: vec![],
            env_none_with: vec![],
            headers_none_with: vec!["OAUTH2_CLAIM", "OAUTH2-CLAIM"],
        },
    );
    for name in ["bothoff", "bothoff2"] {
        check(
            &mut f,
            &h,
            name,
            &tok,
            &Expect {
                user: "joe",
                env: vec![],
                headers: vec![],
                env_none_with: vec!["OAUTH2_CLAIM"],
                headers_none_with: vec!["OAUTH2_CLAIM", "OAUTH2-CLAIM"],
            },
        );
    }
    // authn_header: a header with the remote user (not a variable), claims as usual
    check(
        &mut f,
        &h,
        "authn",
        &tok,
        &Expect {
            user: "joe",
            env: vec![
                ("HTTP_X_REMOTE_USER", b("joe")),
                ("X_Remote_User", None),
                ("X-Remote-User", None),
                ("OAUTH2_CLAIM_sub", b("joe")),
            ],
            headers: vec![("X-Remote-User", b("joe")), ("OAUTH2_CLAIM_sub", b("joe"))],
            env_none_with: vec![],
            headers_none_with: vec![],
        },
    );
    // prefix: variables X-C-<claim> (X_C_<claim> in a CGI), headers X-C-<claim>
    check(
        &mut f,
        &h,
        "prefix",
        &tok,
        &Expect {
            user: "joe",
            env: vec![
                ("X_C_sub", b("joe")),
                ("X_C_email", b("joe@example.com")),
                ("X_C_access_token", b(&tok)),
                ("HTTP_X_C_SUB", b("joe")),
                ("HTTP_X_C_N", b("5")),
            ],
            headers: vec![
                ("X-C-sub", b("joe")),
                ("X-C-email", b("joe@example.com")),
                ("X-C-access_token", b(&tok)),
            ],
            env_none_with: vec!["OAUTH2_CLAIM"],
            headers_none_with: vec!["OAUTH2_CLAIM", "OAUTH2-CLAIM"],
        },
    );
    check(
        &mut f,
        &h,
        "twolines",
        &tok,
        &Expect {
            user: "joe@example.com",
            env: vec![("X_C_sub", b("joe")), ("X_C_email", b("joe@example.com"))],
            headers: vec![("X-C-sub", b("joe"))],
            env_none_with: vec!["OAUTH2_CLAIM"],
            headers_none_with: vec!["OAUTH2_CLAIM"],
        },
    );
    check(
        &mut f,
        &h,
        "twolines2",
        &tok,
        &Expect {
            user: "joe",
            env: vec![],
            headers: vec![("A_sub", b("joe")), ("A_email", b("joe@example.com"))],
            env_none_with: vec!["A_", "OAUTH2_CLAIM"],
            headers_none_with: vec!["OAUTH2_CLAIM"],
        },
    );
    f.assert_none();
}

#[test]
fn remote_user_claim_and_json_payload_claim() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let mut body = pairs(
        &verify,
        &backend,
        &[
            ("email", "OAuth2TargetPass remote_user_claim=email".into()),
            ("json", "OAuth2TargetPass json_payload_claim=payload".into()),
            (
                "jsonpfx",
                "OAuth2TargetPass json_payload_claim=all&prefix=P_".into(),
            ),
        ],
    );
    // without `exp` required, a token can be exactly {"sub":"joe","n":1}
    body.push_str(&pairs(
        &format!("{verify} verify.exp=optional"),
        &backend,
        &[("jsonmin", "OAuth2TargetPass json_payload_claim=n".into())],
    ));
    let h = Httpd::start(HttpdConfig::new(body));
    let mut f = Failures::new();

    // remote_user_claim
    let with_email = signer.mint(&with(claims("joe"), json!({ "email": "joe@example.com" })));
    let r = h.https("/email/env").bearer(&with_email).send();
    f.expect("email claim present", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("joe@example.com"),
            || format!("REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
        f.check(
            env.get("OAUTH2_CLAIM_sub").map(String::as_str) == Some("joe"),
            || format!("OAUTH2_CLAIM_sub {:?}", env.get("OAUTH2_CLAIM_sub")),
        );
    }
    for (what, c) in [
        ("email claim missing", claims("joe")),
        (
            "email claim numeric",
            with(claims("joe"), json!({ "email": 5 })),
        ),
        (
            "email claim null",
            with(claims("joe"), json!({ "email": null })),
        ),
        (
            "email claim an array",
            with(claims("joe"), json!({ "email": ["joe@example.com"] })),
        ),
    ] {
        for path in ["/email/env", "/px-email/x"] {
            let r = h.https(path).bearer(&signer.mint(&c)).send();
            f.expect(&format!("{path}: {what}"), &r, 401, Some(NO_REMOTE_USER));
        }
    }
    let before = backend.heads().len();
    let _ = h
        .https("/px-email/x")
        .bearer(&signer.mint(&claims("joe")))
        .send();
    f.check(backend.heads().len() == before, || {
        "a request without the remote user claim reached the backend".into()
    });

    // json_payload_claim: compact JSON of all claims, in token order
    let c = with(
        claims("joe"),
        json!({
            "n": 1,
            "name": "Cem \u{d6}zdemir",
            "nested": { "z": [1, "x", true, null], "a": 1.5 },
            "empty": "",
        }),
    );
    let tok = signer.mint(&c);
    let compact = serde_json::to_string(&c).unwrap();
    assert!(
        compact.starts_with("{\"sub\":\"joe\",\"iss\":"),
        "{compact}"
    );
    for (loc, var) in [("json", "OAUTH2_CLAIM_payload"), ("jsonpfx", "P_all")] {
        let r = h.https(&format!("/{loc}/env")).bearer(&tok).send();
        f.expect(&format!("/{loc} CGI"), &r, 200, None);
        if r.status == 200 {
            let env = r.env_bytes();
            let got = env.get(var).cloned();
            f.check(got.as_deref() == Some(compact.as_bytes()), || {
                format!("/{loc}: {var} = {}, expected {compact}", show(&got))
            });
        }
        let r = h.https(&format!("/px-{loc}/x")).bearer(&tok).send();
        f.expect(&format!("/px-{loc}"), &r, 200, None);
        if r.status == 200 {
            let got = head_values(&r.body, var);
            f.check(got == [compact.as_bytes().to_vec()], || {
                format!(
                    "/px-{loc}: header {var} = {:?}, expected {compact}",
                    got.iter()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect::<Vec<_>>()
                )
            });
        }
    }
    // the literal form, and the claim of the same name is replaced by the payload
    let min = signer.mint(&json!({ "sub": "joe", "n": 1 }));
    let r = h.https("/jsonmin/env").bearer(&min).send();
    f.expect("/jsonmin CGI", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("OAUTH2_CLAIM_n").map(String::as_str) == Some("{\"sub\":\"joe\",\"n\":1}"),
            || format!("/jsonmin: OAUTH2_CLAIM_n = {:?}", env.get("OAUTH2_CLAIM_n")),
        );
        f.check(
            env.get("OAUTH2_CLAIM_sub").map(String::as_str) == Some("joe"),
            || {
                format!(
                    "/jsonmin: OAUTH2_CLAIM_sub = {:?}",
                    env.get("OAUTH2_CLAIM_sub")
                )
            },
        );
    }
    let r = h.https("/px-jsonmin/x").bearer(&min).send();
    f.expect("/px-jsonmin", &r, 200, None);
    if r.status == 200 {
        let got = head_values(&r.body, "OAUTH2_CLAIM_n");
        f.check(got == [b"{\"sub\":\"joe\",\"n\":1}".to_vec()], || {
            format!(
                "/px-jsonmin: OAUTH2_CLAIM_n = {:?}",
                got.iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
            )
        });
    }
    f.assert_none();
}

#[test]
fn encodings() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let tp = |o: &str| format!("OAuth2TargetPass {o}");
    let h = Httpd::start(HttpdConfig::new(pairs(
        &verify,
        &backend,
        &[
            ("dflt", String::new()),
            ("none", tp("encoding=none")),
            ("latin1", tp("encoding=latin1")),
            ("b64", tp("encoding=base64url")),
            // the last line naming encoding wins; other lines leave it alone
            (
                "later",
                format!(
                    "{}\n{}\n{}",
                    tp("encoding=base64url"),
                    tp("encoding=latin1"),
                    tp("prefix=E_")
                ),
            ),
        ],
    )));
    let c = with(
        claims("joe"),
        json!({ "name": "Cem \u{d6}zdemir", "city": "\u{6771}\u{4eac}", "plain": "plain" }),
    );
    let tok = signer.mint(&c);
    let utf8 = "Cem \u{d6}zdemir".as_bytes().to_vec();
    assert_eq!(utf8, b"Cem \xc3\x96zdemir");
    let city_utf8 = "\u{6771}\u{4eac}".as_bytes().to_vec();
    /// A location (`/<loc>/env` and `/px-<loc>/x`), the prefix of its variables, and the claim
    /// values (after the location's `encoding`) the backend must get.
    struct Row {
        loc: &'static str,
        prefix: &'static str,
        expect: Vec<(&'static str, Vec<u8>)>,
    }
    let rows: Vec<Row> = vec![
        Row {
            loc: "dflt",
            prefix: "OAUTH2_CLAIM_",
            expect: vec![
                ("name", utf8.clone()),
                ("city", city_utf8.clone()),
                ("plain", b"plain".to_vec()),
            ],
        },
        Row {
            loc: "none",
            prefix: "OAUTH2_CLAIM_",
            expect: vec![
                ("name", utf8.clone()),
                ("city", city_utf8.clone()),
                ("plain", b"plain".to_vec()),
            ],
        },
        Row {
            loc: "latin1",
            prefix: "OAUTH2_CLAIM_",
            expect: vec![
                ("name", b"Cem \xd6zdemir".to_vec()),
                ("city", b"??".to_vec()),
                ("plain", b"plain".to_vec()),
            ],
        },
        Row {
            loc: "b64",
            prefix: "OAUTH2_CLAIM_",
            expect: vec![
                ("name", b"Q2VtIMOWemRlbWly".to_vec()),
                ("city", b64url(&city_utf8).into_bytes()),
                ("plain", b"cGxhaW4".to_vec()),
            ],
        },
        Row {
            loc: "later",
            prefix: "E_",
            expect: vec![
                ("name", b"Cem \xd6zdemir".to_vec()),
                ("plain", b"plain".to_vec()),
            ],
        },
    ];
    let mut f = Failures::new();
    for Row {
        loc,
        prefix,
        expect,
    } in &rows
    {
        let r = h.https(&format!("/{loc}/env")).bearer(&tok).send();
        f.expect(&format!("/{loc} CGI"), &r, 200, None);
        if r.status == 200 {
            let env = r.env_bytes();
            f.check(
                env.get("REMOTE_USER").map(Vec::as_slice) == Some(b"joe"),
                || format!("/{loc}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
            );
            for (claim, want) in expect {
                let var = format!("{prefix}{claim}");
                let got = env.get(&var).cloned();
                f.check(got.as_ref() == Some(want), || {
                    format!(
                        "/{loc} CGI: {var} = {}, expected {}",
                        show(&got),
                        show(&Some(want.clone()))
                    )
                });
            }
        }
        let r = h.https(&format!("/px-{loc}/x")).bearer(&tok).send();
        f.expect(&format!("/px-{loc}"), &r, 200, None);
        if r.status == 200 {
            for (claim, want) in expect {
                let name = format!("{prefix}{claim}");
                let got = head_values(&r.body, &name);
                f.check(got == [want.clone()], || {
                    format!(
                        "/px-{loc}: header {name} = {:?}, expected \"{}\"",
                        got.iter()
                            .map(|v| v.escape_ascii().to_string())
                            .collect::<Vec<_>>(),
                        want.escape_ascii()
                    )
                });
            }
        }
    }
    f.assert_none();
}

/// Every variable reaches the backend once, with the module's value: when a variable of the same
/// name is already there (SetEnvIf ran before authentication) and when two claims make the same
/// name (the request tables ignore case), the later value replaces the earlier, as in the C module.
#[test]
fn each_variable_arrives_once_with_the_verified_value() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    // mod_headers reads the variable as most modules do (the first of that name in the table);
    // the CGI environment would hide a duplicate (httpd merges it, keeping the last).
    let echo = "RequestHeader set X-Env-Sub %{OAUTH2_CLAIM_sub}e";
    let preset =
        format!("SetEnvIf Request_URI . OAUTH2_CLAIM_sub=preset oauth2_claim_role=preset\n{echo}");
    let h = Httpd::start(HttpdConfig::new(pairs(
        &verify,
        &backend,
        &[("preset", preset), ("plain", echo.to_string())],
    )));
    let mut f = Failures::new();
    let distinct = signer.mint(&with(claims("joe"), json!({"role": "admin"})));
    let colliding = signer.mint(&with(
        claims("joe"),
        json!({"role": "admin", "SUB": "other"}),
    ));
    /// A token sent to `/<name>/env`, and the `OAUTH2_CLAIM_sub` value that must win (None: the
    /// token is refused, its `sub` and `SUB` would be one variable).
    struct Collision<'a> {
        name: &'a str,
        token: &'a str,
        sub: Option<&'a str>,
    }
    let cases = [
        Collision {
            name: "preset",
            token: &distinct,
            sub: Some("joe"),
        },
        Collision {
            name: "preset",
            token: &colliding,
            sub: None,
        },
        Collision {
            name: "plain",
            token: &colliding,
            sub: None,
        },
    ];
    for Collision {
        name,
        token: tok,
        sub,
    } in cases
    {
        let r = h.https(&format!("/{name}/env")).bearer(tok).send();
        let Some(sub) = sub else {
            f.expect(&format!("/{name} CGI"), &r, 401, Some(INVALID_TOKEN));
            let r = h.https(&format!("/px-{name}/x")).bearer(tok).send();
            f.expect(&format!("/px-{name} proxied"), &r, 401, Some(INVALID_TOKEN));
            continue;
        };
        f.expect(&format!("/{name} CGI"), &r, 200, None);
        let entries: Vec<String> = r
            .body
            .split(|b| *b == 0)
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .filter(|e| e.to_ascii_lowercase().starts_with("oauth2_claim_"))
            .collect();
        for (var, want) in [("oauth2_claim_sub=", sub), ("oauth2_claim_role=", "admin")] {
            let got: Vec<&String> = entries
                .iter()
                .filter(|e| e.to_ascii_lowercase().starts_with(var))
                .collect();
            f.check(
                got.len() == 1 && got[0].ends_with(&format!("={want}")),
                || format!("/{name} CGI: {var}... {got:?}, expected one with {want:?}"),
            );
        }
        let r = h.https(&format!("/px-{name}/x")).bearer(tok).send();
        f.expect(&format!("/px-{name} proxied"), &r, 200, None);
        for (header, want) in [
            ("OAUTH2_CLAIM_sub", sub),
            ("OAUTH2_CLAIM_role", "admin"),
            ("X-Env-Sub", sub),
        ] {
            let got = head_values(&r.body, header);
            f.check(got == [want.as_bytes().to_vec()], || {
                format!("/px-{name}: {header} {got:?}, expected once {want:?}")
            });
        }
    }
    h.assert_no_child_crash();
    f.assert_none();
}

#[test]
fn spoofed_headers_are_scrubbed_on_every_path() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    // A refused request is answered by an ErrorDocument proxied to the same backend (request line
    // `GET /refused`): it carries the original request's headers, so the backend shows what
    // survived the scrubbing also when there is no token or a bad one.
    let url = backend.url();
    let body = format!(
        "<Location /errpx>\nProxyPass {url}\n</Location>\n{}{}",
        oauth2_location(
            "/sp",
            &format!(
                "{verify}\nOAuth2TargetPass prefix=X-C-&authn_header=X-Remote-User\n\
                 ProxyPass {url}\nErrorDocument 401 /errpx/refused"
            ),
        ),
        oauth2_location(
            "/dflt",
            &format!("{verify}\nProxyPass {url}\nErrorDocument 401 /errpx/refused"),
        ),
    );
    let h = Httpd::start(HttpdConfig::new(body));
    let tok = signer.mint(&claims("joe"));
    let spoofs_sp = [
        "X-C-sub: spoof1",
        "x_c_sub: spoof2",
        "X-C-Role: spoof3",
        "x-c-evil: spoof4",
        "X_C_iss: spoof5",
        "x-remote-user: spoof6",
        "X-REMOTE-USER: spoof7",
        "X-Remote-User: spoof8",
        // `-` and `_` alike: a WSGI backend reads both as HTTP_X_REMOTE_USER
        "X_Remote_User: spoof9",
        "x_remote-USER: spoof10",
    ];
    let spoofs_dflt = [
        "OAUTH2_CLAIM_sub: spoof1",
        "oauth2-claim-sub: spoof2",
        "Oauth2_Claim_Role: spoof3",
    ];
    let mut f = Failures::new();
    /// A request with spoofed headers (and `token`, if any) to `<loc>/x`.
    struct Case<'a> {
        loc: &'a str,
        spoofs: &'a [&'a str],
        token: Option<String>,
        expect_status: u16,
    }
    let cases: Vec<Case> = vec![
        Case {
            loc: "/sp",
            spoofs: &spoofs_sp,
            token: Some(tok.clone()),
            expect_status: 200,
        },
        Case {
            loc: "/sp",
            spoofs: &spoofs_sp,
            token: None,
            expect_status: 401,
        },
        Case {
            loc: "/sp",
            spoofs: &spoofs_sp,
            token: Some(tamper_signature(&tok)),
            expect_status: 401,
        },
        Case {
            loc: "/sp",
            spoofs: &spoofs_sp,
            token: Some("not-a-jwt".into()),
            expect_status: 401,
        },
        Case {
            loc: "/dflt",
            spoofs: &spoofs_dflt,
            token: Some(tok.clone()),
            expect_status: 200,
        },
        Case {
            loc: "/dflt",
            spoofs: &spoofs_dflt,
            token: None,
            expect_status: 401,
        },
        Case {
            loc: "/dflt",
            spoofs: &spoofs_dflt,
            token: Some(tamper_signature(&tok)),
            expect_status: 401,
        },
    ];
    for Case {
        loc,
        spoofs,
        token,
        expect_status: status,
    } in &cases
    {
        let what = format!(
            "{loc} {}",
            match (token, status) {
                (None, _) => "without a token",
                (Some(_), 200) => "with a valid token",
                _ => "with a refused token",
            }
        );
        let before = backend.heads().len();
        let mut req = h.https(&format!("{loc}/x")).header("X-CX: keep");
        for s in spoofs.iter() {
            req = req.header(s);
        }
        if let Some(t) = token {
            req = req.bearer(t);
        }
        let r = req.send();
        // (a proxied ErrorDocument answers with the backend's status: only the request line at
        // the backend tells a refused request from an accepted one)
        f.check(r.status == 200, || {
            format!("{what}: status {}, expected 200 from the backend", r.status)
        });
        let heads = backend.heads();
        f.check(heads.len() == before + 1, || {
            format!(
                "{what}: {} requests reached the backend, expected 1 (the request or its ErrorDocument)",
                heads.len() - before
            )
        });
        let Some(head) = heads.last().filter(|_| heads.len() > before) else {
            continue;
        };
        let text = String::from_utf8_lossy(head);
        let line = text.lines().next().unwrap_or("");
        let want_line = if *status == 200 {
            "GET /x HTTP/1.1"
        } else {
            "GET /refused HTTP/1.1"
        };
        f.check(line == want_line, || {
            format!("{what}: backend request line {line:?}, expected {want_line:?}")
        });
        f.check(!text.contains("spoof"), || {
            format!(
                "{what}: spoofed header reached the backend: {:?}",
                text.lines()
                    .filter(|l| l.contains("spoof"))
                    .collect::<Vec<_>>()
            )
        });
        f.check(head_values(head, "X-CX") == [b"keep".to_vec()], || {
            format!("{what}: X-CX (not the prefix) was not kept")
        });
        if *loc == "/sp" {
            let users = head_values(head, "X-Remote-User");
            let subs = head_values(head, "X-C-sub");
            let (want_users, want_subs): (Vec<Vec<u8>>, Vec<Vec<u8>>) = if *status == 200 {
                (vec![b"joe".to_vec()], vec![b"joe".to_vec()])
            } else {
                (vec![], vec![])
            };
            f.check(users == want_users, || {
                format!("{what}: X-Remote-User at the backend {users:?}")
            });
            f.check(subs == want_subs, || {
                format!("{what}: X-C-sub at the backend {subs:?}")
            });
        }
    }
    f.assert_none();
}

#[test]
fn configuration_errors() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let flag = "value must be \"true\", \"false\", \"1\", \"0\",  \"on\" or \"off\"";
    let enc = "unknown value for encoding: must be one of \"latin1\", \"base64url\" or \"none\"";
    let mut f = Failures::new();
    for (line, want) in [
        ("OAuth2TargetPass encoding=utf8", enc),
        ("OAuth2TargetPass encoding=LATIN1", enc),
        ("OAuth2TargetPass headers=maybe", flag),
        ("OAuth2TargetPass envvars=yes", flag),
        ("OAuth2TargetPass prefix=P_&envvars=", flag),
    ] {
        let t = Httpd::config_test(HttpdConfig::new(oauth2_location(
            "/p",
            &format!("{verify}\n{line}"),
        )));
        match t.syntax_error(line) {
            Ok(m) => f.check(m == want, || {
                format!("{line}: message {m:?}, expected {want:?}")
            }),
            Err(e) => f.fail(format!("{line}: {e}")),
        }
    }
    // valid values pass
    let t = Httpd::config_test(HttpdConfig::new(oauth2_location(
        "/p",
        &format!(
            "{verify}\nOAuth2TargetPass envvars=TRUE&headers=Off&encoding=base64url\n\
             OAuth2TargetPass authn_header=X-User&prefix=&remote_user_claim=email\n\
             OAuth2TargetPass json_payload_claim=all&encoding=none"
        ),
    )));
    f.check(t.ok && t.output.contains("Syntax OK"), || {
        format!("valid OAuth2TargetPass lines refused:\n{}", t.output)
    });
    f.assert_none();
}

/// Two claims passed under one name (any letter case, `-` and `_` alike) refuse the token: one
/// would overwrite the other, and `OAUTH2_CLAIM_sub` could say `admin` while `REMOTE_USER` says
/// `alice` (docs/compatibility.md, row "claim names that differ only in case").
#[test]
fn claims_passed_under_one_name_refuse_the_token() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = Httpd::start(HttpdConfig::new(oauth2_location("/c", &verify)));
    /// Extra claims beside `sub: alice`, and whether the token is refused for them.
    struct Case {
        what: &'static str,
        extra: serde_json::Value,
        expect_status: u16,
        /// In the refusal's log line.
        expect_log: Option<&'static str>,
    }
    let cases = [
        Case {
            what: "sub and SUB",
            extra: json!({"SUB": "admin"}),
            expect_status: 401,
            expect_log: Some(
                r#"claims "sub" and "SUB" would both be passed as "OAUTH2_CLAIM_sub""#,
            ),
        },
        Case {
            what: "a-b and a_b",
            extra: json!({"a-b": "1", "a_b": "2"}),
            expect_status: 401,
            expect_log: Some(r#"claims "a-b" and "a_b""#),
        },
        Case {
            what: "distinct names",
            extra: json!({"subject": "x", "Sub2": "y"}),
            expect_status: 200,
            expect_log: None,
        },
    ];
    let mut f = Failures::new();
    for Case {
        what,
        extra,
        expect_status,
        expect_log,
    } in cases
    {
        let tok = signer.mint(&with(claims("alice"), extra));
        let mark = h.log_mark();
        let r = h.https("/c/env").bearer(&tok).send();
        let challenge = (expect_status == 401).then_some(INVALID_TOKEN);
        f.expect(what, &r, expect_status, challenge);
        if r.status == 200 {
            let env = r.env();
            f.check(
                env.get("OAUTH2_CLAIM_sub").map(String::as_str) == Some("alice"),
                || format!("{what}: OAUTH2_CLAIM_sub {:?}", env.get("OAUTH2_CLAIM_sub")),
            );
        }
        if let Some(want) = expect_log {
            let log = h.wait_log_since(mark, |l| l.contains(want));
            f.check(log.contains(want), || {
                format!("{what}: no log line with {want:?}:\n{log}")
            });
        }
    }
    f.assert_none();
}

/// With `prefix=` (empty), claims named like framing or hop-by-hop headers never become request
/// headers (mod_proxy would wait for a body that never comes, or drop other headers); they stay
/// variables (docs/compatibility.md, row "claims named like framing headers").
#[test]
fn framing_and_hop_by_hop_claims_never_become_headers() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = Httpd::start(HttpdConfig::new(pairs(
        &verify,
        &backend,
        &[("np", "OAuth2TargetPass prefix=".to_string())],
    )));
    let reserved = [
        "Transfer-Encoding",
        "Content-Length",
        "Connection",
        "Host",
        "TE",
        "Upgrade",
        "Trailer",
        "Expect",
        "Keep-Alive",
        "Proxy-Authorization",
        "proxy_connection",
        "HTTP2-Settings",
    ];
    let mut extra = serde_json::Map::new();
    for (i, name) in reserved.iter().enumerate() {
        let value = match *name {
            "Transfer-Encoding" => "chunked".to_string(),
            "Content-Length" => "10".to_string(),
            _ => format!("from-claim-{i}"),
        };
        extra.insert(name.to_string(), json!(value));
    }
    extra.insert("X-Team".into(), json!("blue"));
    let tok = signer.mint(&with(claims("joe"), serde_json::Value::Object(extra)));
    let mut f = Failures::new();
    let started = std::time::Instant::now();
    let r = h.https("/px-np/x").bearer(&tok).send();
    f.expect("proxied", &r, 200, None);
    f.check(
        started.elapsed() < std::time::Duration::from_secs(5),
        || format!("the proxied request took {:?}", started.elapsed()),
    );
    if r.status == 200 {
        let head = String::from_utf8_lossy(&r.body).into_owned();
        for line in head.lines() {
            f.check(
                !line.contains("from-claim") && !line.to_ascii_lowercase().contains("chunked"),
                || format!("a reserved claim reached the backend as a header: {line:?}"),
            );
        }
        f.check(head_values(&r.body, "Content-Length").is_empty(), || {
            format!("Content-Length at the backend: {head:?}")
        });
        f.check(head_values(&r.body, "X-Team") == [b"blue".to_vec()], || {
            format!("X-Team (an ordinary claim) missing at the backend: {head:?}")
        });
    }
    // Still variables for a CGI (whose environment names turn `-` into `_`).
    let r = h.https("/np/env").bearer(&tok).send();
    f.expect("CGI", &r, 200, None);
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("Connection").map(String::as_str) == Some("from-claim-2"),
            || format!("Connection variable: {:?}", env.get("Connection")),
        );
        f.check(
            env.get("HTTP_CONNECTION").map(String::as_str) != Some("from-claim-2"),
            || "Connection became a request header".into(),
        );
    }
    f.assert_none();
}
