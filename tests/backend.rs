//! What the backend receives after a successful verification: REMOTE_USER and OAUTH2_CLAIM_* in a
//! CGI's environment, OAUTH2_CLAIM_* request headers at a proxied backend (raw request head),
//! spoofed claim headers scrubbed, and no header injection through claim values.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn start(signer: &TokenSigner, backend: &RawBackend) -> Httpd {
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let body = [
        oauth2_location("/c", &verify),
        oauth2_location("/b", &format!("{verify}\nProxyPass {}", backend.url())),
    ]
    .concat();
    Httpd::start(HttpdConfig::new(body))
}

fn rich_claims() -> Value {
    with(
        claims("joe"),
        json!({
            "client_id": "cli-1",
            "str": "hello world",
            "empty": "",
            "num": 5,
            "neg": -7,
            "flt": 1.5,
            "yes": true,
            "no": false,
            "nul": null,
            "arr": ["a", "b"],
            "obj": { "k": "v" },
            "obj2": { "k": "v", "n": [1, 2] },
            "x y": "sp",
        }),
    )
}

/// (claim header name, expected value) as the module must pass them.
fn expected_claims(c: &Value) -> Vec<(String, String)> {
    let mut v = vec![
        ("OAUTH2_CLAIM_sub".to_string(), "joe".to_string()),
        ("OAUTH2_CLAIM_iss".into(), "https://as.example.test".into()),
        ("OAUTH2_CLAIM_iat".into(), c["iat"].to_string()),
        ("OAUTH2_CLAIM_exp".into(), c["exp"].to_string()),
        ("OAUTH2_CLAIM_client_id".into(), "cli-1".into()),
        ("OAUTH2_CLAIM_str".into(), "hello world".into()),
        ("OAUTH2_CLAIM_empty".into(), "".into()),
        ("OAUTH2_CLAIM_num".into(), "5".into()),
        ("OAUTH2_CLAIM_neg".into(), "-7".into()),
        ("OAUTH2_CLAIM_flt".into(), "1.5".into()),
        ("OAUTH2_CLAIM_yes".into(), "true".into()),
        ("OAUTH2_CLAIM_no".into(), "false".into()),
        ("OAUTH2_CLAIM_nul".into(), "null".into()),
        ("OAUTH2_CLAIM_arr".into(), "[\"a\", \"b\"]".into()),
        ("OAUTH2_CLAIM_obj".into(), "{\"k\": \"v\"}".into()),
        (
            "OAUTH2_CLAIM_obj2".into(),
            "{\"k\": \"v\", \"n\": [1, 2]}".into(),
        ),
    ];
    v.push(("OAUTH2_CLAIM_x-y".into(), "sp".into()));
    v
}

/// Apache's CGI mapping of an environment-variable name (non-alphanumerics become `_`).
fn cgi_name(n: &str) -> String {
    n.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Header name normalised like an environment variable name (alnum upper-cased, rest `_`).
fn env_norm(n: &str) -> String {
    n.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn fields_named<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn claims_reach_cgi_environment() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let h = start(&signer, &backend);
    let c = rich_claims();
    let tok = signer.mint(&c);
    let mut f = Failures::new();
    for (listener, r) in [
        ("TLS", h.https("/c/env").bearer(&tok).send()),
        ("plain", h.http("/c/env").bearer(&tok).send()),
    ] {
        f.expect(&format!("{listener} CGI"), &r, 200, None);
        if r.status != 200 {
            continue;
        }
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("joe"),
            || format!("{listener}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
        for (name, value) in expected_claims(&c) {
            let n = cgi_name(&name);
            f.check(env.get(&n) == Some(&value), || {
                format!(
                    "{listener}: env {n}: expected {value:?}, got {:?}",
                    env.get(&n)
                )
            });
        }
    }
    f.assert_none();
}

#[test]
fn claims_reach_proxied_backend_as_headers() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let h = start(&signer, &backend);
    let c = rich_claims();
    let tok = signer.mint(&c);
    let mut f = Failures::new();
    let r = h.https("/b/x?q=1").bearer(&tok).send();
    assert_200(&r, "proxied backend");
    assert!(
        r.text().starts_with("GET /x?q=1 HTTP/1.1\r\n"),
        "{}",
        r.text()
    );
    let fields = raw_head_fields(&r.body);
    for (name, value) in expected_claims(&c) {
        let got = fields_named(&fields, &name);
        f.check(got == [value.as_str()], || {
            format!("header {name}: expected exactly [{value:?}], got {got:?}")
        });
    }
    // the original Authorization header is still forwarded (no `strip` configured)
    let auth = fields_named(&fields, "Authorization");
    f.check(auth == [format!("Bearer {tok}").as_str()], || {
        format!("Authorization at the backend: {auth:?}")
    });
    // nothing passes for a refused request
    let before = backend.heads().len();
    let r = h.https("/b/x").bearer(&tamper_signature(&tok)).send();
    f.expect("refused proxied request", &r, 401, Some(INVALID_TOKEN));
    f.check(backend.heads().len() == before, || {
        "a refused request reached the backend".into()
    });
    f.assert_none();
}

#[test]
fn spoofed_claim_headers_never_reach_the_backend() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let h = start(&signer, &backend);
    let tok = signer.mint(&claims("joe"));
    let spoof = [
        "OAUTH2_CLAIM_sub: admin",
        "OAUTH2-CLAIM-SUB: admin",
        "oauth2_claim_sub: admin",
        "OAUTH2_CLAIM_role: admin",
        "Oauth2-Claim-Role: admin",
        "oauth2-claim-evil: admin",
        "OAUTH2_CLAIM_: admin",
    ];
    let mut f = Failures::new();

    // proxied backend: the raw request head
    let mut req = h.https("/b/x").bearer(&tok);
    for s in spoof {
        req = req.header(s);
    }
    let r = req.header("OAUTH2CLAIMX: keep").send();
    assert_200(&r, "proxied backend with spoofed headers");
    let fields = raw_head_fields(&r.body);
    for (n, v) in &fields {
        f.check(
            !(env_norm(n).starts_with("OAUTH2_CLAIM_") && v == "admin"),
            || format!("spoofed header reached the backend: {n}: {v}"),
        );
        f.check(!v.contains("admin"), || {
            format!("spoofed value reached the backend: {n}: {v}")
        });
    }
    let sub = fields
        .iter()
        .filter(|(n, _)| env_norm(n) == "OAUTH2_CLAIM_SUB")
        .map(|(n, v)| format!("{n}: {v}"))
        .collect::<Vec<_>>();
    f.check(sub == ["OAUTH2_CLAIM_sub: joe"], || {
        format!("sub headers at the backend: {sub:?}")
    });
    f.check(
        fields
            .iter()
            .all(|(n, _)| !env_norm(n).starts_with("OAUTH2_CLAIM_ROLE")),
        || "a role header reached the backend".into(),
    );
    // not over-scrubbed: a header merely resembling the prefix stays
    f.check(fields_named(&fields, "OAUTH2CLAIMX") == ["keep"], || {
        format!("OAUTH2CLAIMX: {:?}", fields_named(&fields, "OAUTH2CLAIMX"))
    });

    // CGI: neither as HTTP_* nor as a claim variable
    let mut req = h.https("/c/env").bearer(&tok);
    for s in spoof {
        req = req.header(s);
    }
    let r = req.send();
    f.expect("CGI with spoofed headers", &r, 200, None);
    if r.status == 200 {
        let env: BTreeMap<String, String> = r.env();
        for (k, v) in &env {
            f.check(!v.contains("admin"), || {
                format!("spoofed value in the CGI environment: {k}={v}")
            });
        }
        f.check(
            env.get("OAUTH2_CLAIM_sub").map(String::as_str) == Some("joe"),
            || format!("OAUTH2_CLAIM_sub: {:?}", env.get("OAUTH2_CLAIM_sub")),
        );
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("joe"),
            || format!("REMOTE_USER: {:?}", env.get("REMOTE_USER")),
        );
    }
    f.assert_none();
}

#[test]
fn control_characters_in_claims_do_not_inject_headers() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let h = start(&signer, &backend);
    let c = with(
        claims("joe"),
        json!({
            "crlf": "x\r\nInjected-Crlf: 1",
            "lf": "y\nInjected-Lf: 1",
            "cr": "z\rInjected-Cr: 1",
            "nul": "a\u{0}\r\nInjected-Nul: 1",
            "arr": ["b\r\nInjected-Arr: 1"],
            "obj": { "k": "c\r\nInjected-Obj: 1" },
            "evil\r\nInjected-Name: 1": "v",
        }),
    );
    let tok = signer.mint(&c);
    let mut f = Failures::new();
    for (listener, r) in [
        ("TLS", h.https("/b/x").bearer(&tok).send()),
        ("plain", h.http("/b/x").bearer(&tok).send()),
    ] {
        f.expect(&format!("{listener}: proxied"), &r, 200, None);
        if r.status != 200 {
            continue;
        }
        let head = &r.body;
        // the head is CRLF-separated lines only: no bare CR or LF, no NUL
        let text = String::from_utf8_lossy(head);
        let stripped = text.replace("\r\n", "");
        f.check(!stripped.contains('\r') && !stripped.contains('\n'), || {
            format!("{listener}: bare CR/LF in the request head:\n{text:?}")
        });
        f.check(!head.contains(&0), || {
            format!("{listener}: NUL in the request head")
        });
        let fields = raw_head_fields(head);
        for (n, v) in &fields {
            f.check(!n.to_ascii_lowercase().starts_with("injected"), || {
                format!("{listener}: injected header arrived: {n}: {v}")
            });
            f.check(!n.is_empty(), || {
                format!("{listener}: header line without a name: {v:?}")
            });
        }
        // the claims themselves still arrive (with the control characters replaced)
        for (name, start) in [
            ("OAUTH2_CLAIM_crlf", "x"),
            ("OAUTH2_CLAIM_lf", "y"),
            ("OAUTH2_CLAIM_cr", "z"),
            ("OAUTH2_CLAIM_nul", "a"),
        ] {
            let got = fields_named(&fields, name);
            f.check(got.len() == 1 && got[0].starts_with(start), || {
                format!("{listener}: {name}: {got:?}")
            });
        }
        f.check(fields_named(&fields, "OAUTH2_CLAIM_sub") == ["joe"], || {
            format!("{listener}: sub header missing")
        });
    }
    f.assert_none();
    h.assert_no_child_crash();
}
