//! `Require oauth2_claim <spec> [<spec> ...]` as the C module has it: exact values, integers,
//! booleans, array membership, nested objects, regexes, quoting, OR-ed specs; the denial responses
//! (401 without a challenge, 403 with `AuthzSendForbiddenOnFailure On`, `OAUTH2_BEARER_SCOPE_ERROR`);
//! `RequireAny` with `Require all granted` not verifying at all; a bad regex refused by
//! `apache2 -t`.

mod common;

use common::*;
use serde_json::{Value, json};

const SCOPE_ERROR: &str = "Bearer error=\"insufficient_scope\", error_description=\"Different scope(s) or other claims required.\"";

/// mod_headers copies the module's challenge into a response header when the variable is set.
const SHOW_SCOPE_ERROR: &str = "Header always set X-Scope-Error \"%{OAUTH2_BEARER_SCOPE_ERROR}e\" \
                                \"expr=-n reqenv('OAUTH2_BEARER_SCOPE_ERROR')\"";

/// `<Location path>` with `AuthType oauth2`, the verifier, `extra` and the require line(s).
fn claim_location(path: &str, verify: &str, extra: &str, require: &str) -> String {
    format!("<Location {path}>\nAuthType oauth2\n{verify}\n{extra}\n{require}\n</Location>\n")
}

fn rich(sub: &str) -> Value {
    with(
        claims(sub),
        json!({
            "scope": "read write",
            "level": 3,
            "admin": true,
            "off": false,
            "roles": ["user", "admin"],
            "nested": { "level": 3, "name": "x y" },
            "a": { "b": { "c": "v" } },
            "scopes": ["one", "three"],
            "num_str": "42",
        }),
    )
}

#[test]
fn claim_specs() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    /// The specs after `Require oauth2_claim`, and whether the rich token is granted.
    struct Spec {
        spec: &'static str,
        granted: bool,
    }
    let granted = |spec| Spec {
        spec,
        granted: true,
    };
    let denied = |spec| Spec {
        spec,
        granted: false,
    };
    let specs: Vec<Spec> = vec![
        // exact string equality, whitespace included
        granted("\"scope:read write\""),
        granted("'scope:read write'"),
        denied("scope:readwrite"),
        denied("scope:read"),
        denied("\"scope:read  write\""),
        denied("\"scope: read write\""),
        denied("scope:READ"),
        granted("sub:joe"),
        denied("sub:Joe"),
        denied("sub:jo"),
        granted("num_str:42"),
        // integers
        granted("level:3"),
        denied("level:4"),
        denied("level:abc"),
        // booleans
        granted("admin:true"),
        denied("admin:false"),
        granted("off:false"),
        denied("off:true"),
        // arrays: membership
        granted("roles:admin"),
        granted("roles:user"),
        denied("roles:root"),
        denied("roles:adm"),
        granted("roles.admin"),
        denied("roles.root"),
        granted("scopes:one"),
        // nested objects
        granted("nested.level:3"),
        denied("nested.level:4"),
        granted("\"nested.name:x y\""),
        denied("nested.name:x"),
        granted("a.b.c:v"),
        denied("a.b.c:w"),
        denied("a.b:v"),
        denied("a.x.c:v"),
        // regexes on strings and string arrays
        granted(r"scope~(^|\s)read($|\s)"),
        granted(r"scope~(^|\s)write($|\s)"),
        denied(r"scope~(^|\s)delete($|\s)"),
        denied("scope~^read$"),
        granted("scopes~^three$"),
        denied("scopes~^thr$"),
        granted("scopes~^t"),
        denied("level~3"),
        // unknown claims
        denied("nosuch:x"),
        denied("nosuch~."),
        // several specs are OR-ed
        granted("level:9 roles:admin"),
        denied("level:9 roles:root"),
        granted("nosuch:1 \"scope:read write\""),
        granted("scope:read scope:write sub:joe"),
    ];
    let mut body = String::new();
    for (i, Spec { spec, .. }) in specs.iter().enumerate() {
        body.push_str(&claim_location(
            &format!("/r{i}"),
            &verify,
            "",
            &format!("Require oauth2_claim {spec}"),
        ));
    }
    // several Require lines: Apache's RequireAll / RequireAny semantics
    body.push_str(&claim_location(
        "/all",
        &verify,
        "",
        "<RequireAll>\nRequire oauth2_claim level:3\nRequire oauth2_claim admin:true\n</RequireAll>",
    ));
    body.push_str(&claim_location(
        "/all-no",
        &verify,
        "",
        "<RequireAll>\nRequire oauth2_claim level:3\nRequire oauth2_claim admin:false\n</RequireAll>",
    ));
    body.push_str(&claim_location(
        "/any",
        &verify,
        "",
        "<RequireAny>\nRequire oauth2_claim level:9\nRequire oauth2_claim admin:true\n</RequireAny>",
    ));
    let h = Httpd::start(HttpdConfig::new(body));
    let tok = signer.mint(&rich("joe"));
    let mut f = Failures::new();
    let expect = |f: &mut Failures, what: &str, r: &Response, granted: bool| {
        if granted {
            f.expect(what, r, 200, None);
        } else {
            f.check(
                r.status == 401 && r.header_all("WWW-Authenticate").is_empty(),
                || {
                    format!(
                        "{what}: expected 401 without WWW-Authenticate, got {} with {:?}",
                        r.status,
                        r.header_all("WWW-Authenticate")
                    )
                },
            );
        }
    };
    for (i, Spec { spec, granted }) in specs.iter().enumerate() {
        let r = h.https(&format!("/r{i}/ok")).bearer(&tok).send();
        expect(
            &mut f,
            &format!("Require oauth2_claim {spec}"),
            &r,
            *granted,
        );
    }
    for (loc, granted) in [("/all", true), ("/all-no", false), ("/any", true)] {
        let r = h.https(&format!("{loc}/ok")).bearer(&tok).send();
        expect(&mut f, loc, &r, granted);
    }
    // other tokens against some of the same locations
    let idx = |s: &str| specs.iter().position(|x| x.spec == s).unwrap();
    /// One of the specs above, another token's claims, and whether they are granted.
    struct Variant {
        spec: &'static str,
        claims: Value,
        granted: bool,
    }
    let variants: Vec<Variant> = vec![
        Variant {
            spec: "nested.level:3",
            claims: with(claims("joe"), json!({ "nested": { "level": "3" } })),
            granted: true,
        },
        Variant {
            spec: "level:3",
            claims: claims("joe"),
            granted: false,
        },
        Variant {
            spec: "level:3",
            claims: with(claims("joe"), json!({ "level": "3" })),
            granted: true,
        },
        Variant {
            spec: "roles:admin",
            claims: with(claims("joe"), json!({ "roles": "admin" })),
            granted: true,
        },
        Variant {
            spec: "roles:admin",
            claims: with(claims("joe"), json!({ "roles": [] })),
            granted: false,
        },
        Variant {
            spec: "\"scope:read write\"",
            claims: with(claims("joe"), json!({ "scope": "readwrite" })),
            granted: false,
        },
        Variant {
            spec: r"scope~(^|\s)read($|\s)",
            claims: with(claims("joe"), json!({ "scope": "openid read" })),
            granted: true,
        },
        Variant {
            spec: r"scope~(^|\s)read($|\s)",
            claims: with(claims("joe"), json!({ "scope": "reader" })),
            granted: false,
        },
        Variant {
            spec: "scopes~^three$",
            claims: with(claims("joe"), json!({ "scopes": "three" })),
            granted: true,
        },
        Variant {
            spec: "admin:true",
            claims: with(claims("joe"), json!({ "admin": "true" })),
            granted: true,
        },
        Variant {
            spec: "admin:true",
            claims: with(claims("joe"), json!({ "admin": 1 })),
            granted: false,
        },
        Variant {
            spec: "sub:joe",
            claims: claims("ann"),
            granted: false,
        },
    ];
    for Variant {
        spec,
        claims: c,
        granted,
    } in &variants
    {
        let r = h
            .https(&format!("/r{}/ok", idx(spec)))
            .bearer(&signer.mint(c))
            .send();
        expect(
            &mut f,
            &format!("Require oauth2_claim {spec} with {c}"),
            &r,
            *granted,
        );
    }
    // authentication comes first: no token or a bad token is the authn challenge
    let r = h.https(&format!("/r{}/ok", idx("sub:joe"))).send();
    f.expect("no token", &r, 401, Some(NO_TOKEN));
    let r = h
        .https(&format!("/r{}/ok", idx("sub:joe")))
        .bearer(&tamper_signature(&tok))
        .send();
    f.expect("bad token", &r, 401, Some(INVALID_TOKEN));
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn denial_responses() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let req = "Require oauth2_claim level:3";
    let body = [
        claim_location("/deny", &verify, SHOW_SCOPE_ERROR, req),
        claim_location(
            "/realm",
            &verify,
            &format!("AuthName \"my realm\"\n{SHOW_SCOPE_ERROR}"),
            req,
        ),
        claim_location(
            "/forbid",
            &verify,
            &format!("AuthzSendForbiddenOnFailure On\n{SHOW_SCOPE_ERROR}"),
            req,
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body));
    let good = signer.mint(&with(claims("joe"), json!({ "level": 3 })));
    let low = signer.mint(&with(claims("joe"), json!({ "level": 1 })));
    let realm_error = with_realm(SCOPE_ERROR, "my realm");
    let mut f = Failures::new();
    /// A location that denies the low token: its status and `OAUTH2_BEARER_SCOPE_ERROR`.
    struct Denial<'a> {
        loc: &'a str,
        expect_status: u16,
        expect_scope_error: &'a str,
    }
    let cases = [
        Denial {
            loc: "/deny",
            expect_status: 401,
            expect_scope_error: SCOPE_ERROR,
        },
        Denial {
            loc: "/realm",
            expect_status: 401,
            expect_scope_error: realm_error.as_str(),
        },
        Denial {
            loc: "/forbid",
            expect_status: 403,
            expect_scope_error: SCOPE_ERROR,
        },
    ];
    for Denial {
        loc,
        expect_status: status,
        expect_scope_error: scope_error,
    } in cases
    {
        let mark = h.log_mark();
        let r = h.https(&format!("{loc}/ok")).bearer(&low).send();
        f.check(r.status == status, || {
            format!("{loc} denied: status {}, expected {status}", r.status)
        });
        f.check(r.header_all("WWW-Authenticate").is_empty(), || {
            format!(
                "{loc} denied: WWW-Authenticate {:?}, expected none",
                r.header_all("WWW-Authenticate")
            )
        });
        f.check(r.header_all("X-Scope-Error") == [scope_error], || {
            format!(
                "{loc} denied: OAUTH2_BEARER_SCOPE_ERROR {:?}, expected {scope_error:?}",
                r.header_all("X-Scope-Error")
            )
        });
        let log = h.wait_log_since(mark, |l| {
            l.contains("claims do not satisfy Require oauth2_claim")
        });
        f.check(
            log.lines()
                .filter(|l| l.contains("claims do not satisfy Require oauth2_claim"))
                .count()
                == 1,
            || format!("{loc} denied: log line missing or repeated:\n{log}"),
        );
        // granted: no scope error
        let r = h.https(&format!("{loc}/ok")).bearer(&good).send();
        f.expect(&format!("{loc} granted"), &r, 200, None);
        f.check(r.header_all("X-Scope-Error").is_empty(), || {
            format!(
                "{loc} granted: X-Scope-Error {:?}",
                r.header_all("X-Scope-Error")
            )
        });
        f.check(r.text() == "ok\n", || {
            format!("{loc} granted: body {:?}", r.text())
        });
        // no token: the authn challenge, no scope error
        let r = h.https(&format!("{loc}/ok")).send();
        let challenge = if loc == "/realm" {
            with_realm(NO_TOKEN, "my realm")
        } else {
            NO_TOKEN.to_string()
        };
        f.expect(&format!("{loc} no token"), &r, 401, Some(&challenge));
        f.check(r.header_all("X-Scope-Error").is_empty(), || {
            format!(
                "{loc} no token: X-Scope-Error {:?}",
                r.header_all("X-Scope-Error")
            )
        });
    }
    f.assert_none();
}

#[test]
fn require_any_with_all_granted_does_not_verify() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = Httpd::start(HttpdConfig::new(claim_location(
        "/open",
        &verify,
        "",
        "<RequireAny>\nRequire oauth2_claim x:y\nRequire all granted\n</RequireAny>",
    )));
    let good = signer.mint(&with(claims("joe"), json!({ "x": "y" })));
    let mut f = Failures::new();
    for (what, token) in [
        ("no token", None),
        ("valid token", Some(good.clone())),
        ("bad token", Some(tamper_signature(&good))),
        ("not a JWT", Some("garbage".to_string())),
    ] {
        let mark = h.log_mark();
        let mut req = h.https("/open/env");
        if let Some(t) = &token {
            req = req.bearer(t);
        }
        let r = req.send();
        f.expect(what, &r, 200, None);
        if r.status == 200 {
            let env = r.env();
            f.check(!env.contains_key("REMOTE_USER"), || {
                format!("{what}: REMOTE_USER {:?}", env.get("REMOTE_USER"))
            });
            let claims: Vec<&String> = env
                .keys()
                .filter(|k| k.starts_with("OAUTH2_CLAIM"))
                .collect();
            f.check(claims.is_empty(), || {
                format!("{what}: claims passed: {claims:?}")
            });
        }
        let log = h.log_since(mark);
        let ours: Vec<&str> = log.lines().filter(|l| l.contains("[oauth2:")).collect();
        f.check(ours.is_empty(), || {
            format!("{what}: the module ran (log lines {ours:?})")
        });
    }
    f.assert_none();
}

#[test]
fn bad_regex_fails_the_configuration_test() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let mut f = Failures::new();
    for spec in ["scope~(", "scope~[a-", "sub:joe scopes~(?<x"] {
        let t = Httpd::config_test(HttpdConfig::new(claim_location(
            "/p",
            &verify,
            "",
            &format!("Require oauth2_claim {spec}"),
        )));
        f.check(
            !t.ok && t.output.contains("invalid regular expression"),
            || {
                format!(
                    "Require oauth2_claim {spec}: apache2 -t {} with:\n{}",
                    if t.ok { "accepted it" } else { "failed" },
                    t.output
                )
            },
        );
        if !t.ok {
            f.check(
                t.output.contains(&format!(
                    "Syntax error on line {}",
                    t.line_of("Require oauth2_claim")
                )),
                || {
                    format!(
                        "Require oauth2_claim {spec}: error not on its line:\n{}",
                        t.output
                    )
                },
            );
        }
    }
    // a `~` inside a value is not a regex
    let t = Httpd::config_test(HttpdConfig::new(claim_location(
        "/p",
        &verify,
        "",
        "Require oauth2_claim name:a~(b",
    )));
    f.check(t.ok, || format!("name:a~(b refused:\n{}", t.output));
    f.assert_none();
}

/// A `.` in a spec descends into the member named before it: a top-level member literally named
/// `realm_access.roles` does not satisfy `realm_access.roles:admin`, beside a real
/// `realm_access` or not in front of it (docs/compatibility.md, row "`Require oauth2_claim a.b`").
#[test]
fn dotted_specs_descend_by_member_names() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = Httpd::start(HttpdConfig::new(claim_location(
        "/kc",
        &verify,
        "",
        "Require oauth2_claim realm_access.roles:admin",
    )));
    /// The token's extra claims, and whether `/kc` grants.
    struct Case {
        what: &'static str,
        extra: Value,
        expect_status: u16,
    }
    let cases = [
        Case {
            what: "literal member beside a real realm_access without admin",
            extra: json!({"realm_access.roles": ["admin"], "realm_access": {"roles": ["user"]}}),
            expect_status: 401,
        },
        Case {
            what: "real realm_access first, then the literal member",
            extra: json!({"realm_access": {"roles": ["user"]}, "realm_access.roles": "admin"}),
            expect_status: 401,
        },
        Case {
            what: "real realm_access with admin",
            extra: json!({"realm_access": {"roles": ["user", "admin"]}}),
            expect_status: 200,
        },
    ];
    let mut f = Failures::new();
    for Case {
        what,
        extra,
        expect_status,
    } in cases
    {
        let tok = signer.mint(&with(claims("joe"), extra));
        let r = h.https("/kc/ok").bearer(&tok).send();
        f.expect(what, &r, expect_status, None);
    }
    f.assert_none();
}
