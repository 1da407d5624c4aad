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

/// `path` with the bearer `token` on the TLS and the plain listener, each response named by its
/// listener.
fn on_both_listeners(h: &Httpd, path: &str, token: &str) -> [(&'static str, Response); 2] {
    [
        ("TLS", h.https(path).bearer(token).send()),
        ("plain", h.http(path).bearer(token).send()),
    ]
}

#[test]
fn claims_reach_cgi_environment() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let h = start(&signer, &backend);
    let c = rich_claims();
    let tok = signer.mint(&c);
    let mut f = Failures::new();
    for (listener, r) in on_both_listeners(&h, "/c/env", &tok) {
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

/// A spoofed header whose name is not UTF-8 (httpd takes any bytes in a name under
/// `HttpProtocolOptions Unsafe`) is removed all the same: the scrub removes the name it read, not
/// a lossy rewrite of it.
#[test]
fn spoofed_headers_with_non_utf8_names_are_scrubbed() {
    use std::io::{Read, Write};
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let body = [
        oauth2_location("/c", &verify),
        oauth2_location("/b", &format!("{verify}\nProxyPass {}", backend.url())),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server("HttpProtocolOptions Unsafe"));
    let tok = signer.mint(&claims("joe"));
    let mut f = Failures::new();
    for path in ["/c/env", "/b/x"] {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {tok}\r\n",
            h.http_port
        )
        .into_bytes();
        head.extend_from_slice(b"OAUTH2_CLAIM_sub\xff: admin\r\nOAUTH2_CLAIM_\xe9x: admin\r\n");
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        let mut c = std::net::TcpStream::connect(("127.0.0.1", h.http_port)).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        c.write_all(&head).expect("send");
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        f.check(text.starts_with("HTTP/1.1 200"), || {
            format!("{path}: not a 200: {text}")
        });
        f.check(!text.contains("admin"), || {
            format!("{path}: a spoofed header with a non-UTF-8 name got through:\n{text}")
        });
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
    for (listener, r) in on_both_listeners(&h, "/b/x", &tok) {
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

/// Spoofed claim headers are scrubbed on every request of an `AuthType oauth2` location, also when
/// authorization needs no user and no token is verified (docs/compatibility.md, row "header
/// scrubbing"): `Require method OPTIONS` beside `Require valid-user`, and `Require all granted`.
#[test]
fn spoofed_headers_are_scrubbed_when_no_user_is_needed() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let url = backend.url();
    let body = format!(
        "<Location /any>\nAuthType oauth2\n{verify}\nOAuth2TargetPass authn_header=X-Remote-User\n\
         <RequireAny>\nRequire valid-user\nRequire method OPTIONS\n</RequireAny>\nProxyPass {url}\n</Location>\n\
         <Location /pub>\nAuthType oauth2\n{verify}\nOAuth2TargetPass authn_header=X-Remote-User\nRequire all granted\nProxyPass {url}\n</Location>\n"
    );
    let h = Httpd::start(HttpdConfig::new(body));
    let tok = signer.mint(&claims("joe"));
    /// A request with spoofed headers (and a token, if any) and what the backend must see.
    struct Case<'a> {
        what: &'a str,
        method: &'a str,
        path: &'a str,
        token: Option<&'a str>,
        /// `OAUTH2_CLAIM_sub` at the backend (None: absent).
        expect_sub: Option<&'a str>,
    }
    let cases = [
        Case {
            what: "OPTIONS granted without a user",
            method: "OPTIONS",
            path: "/any/x",
            token: None,
            expect_sub: None,
        },
        Case {
            what: "GET with a token at the same location",
            method: "GET",
            path: "/any/x",
            token: Some(&tok),
            expect_sub: Some("joe"),
        },
        Case {
            what: "Require all granted",
            method: "GET",
            path: "/pub/x",
            token: None,
            expect_sub: None,
        },
    ];
    let mut f = Failures::new();
    for Case {
        what,
        method,
        path,
        token,
        expect_sub,
    } in cases
    {
        let mut req = h
            .https(path)
            .method(method)
            .header("OAUTH2_CLAIM_sub: admin")
            .header("oauth2-claim-role: admin")
            .header("X_Remote_User: admin")
            .header("X-Remote-User: admin");
        if let Some(t) = token {
            req = req.bearer(t);
        }
        let r = req.send();
        f.expect(what, &r, 200, None);
        let fields = raw_head_fields(&r.body);
        let spoofed: Vec<&(String, String)> = fields.iter().filter(|(_, v)| v == "admin").collect();
        f.check(spoofed.is_empty(), || {
            format!("{what}: spoofed headers reached the backend: {spoofed:?}")
        });
        let sub = fields_named(&fields, "OAUTH2_CLAIM_sub");
        let want: Vec<&str> = expect_sub.into_iter().collect();
        f.check(sub == want, || {
            format!("{what}: OAUTH2_CLAIM_sub at the backend {sub:?}, expected {want:?}")
        });
    }
    f.assert_none();
}

/// A client can make every request carry look-alike headers: the warning is one line per request
/// naming at most 4 of them, and at most one line every 10 s per child process.
#[test]
fn scrub_warnings_are_bounded() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/c", &verify)).server(common::remote::single_process()),
    );
    let tok = signer.mint(&claims("joe"));
    let mut f = Failures::new();
    let send = || {
        let mut req = h.https("/c/ok").bearer(&tok);
        for i in 0..6 {
            req = req.header(&format!("OAUTH2_CLAIM_x{i}: spoof"));
        }
        req.send()
    };
    let mark = h.log_mark();
    for i in 0..3 {
        let r = send();
        f.expect(&format!("request {i}"), &r, 200, None);
    }
    let log = h.wait_log_since(mark, |l| l.matches(ACCEPTED_LINE).count() >= 3);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("suspicious request header"))
        .collect();
    f.check(lines.len() == 1, || {
        format!(
            "{} scrub warnings for 3 requests, expected 1:\n{log}",
            lines.len()
        )
    });
    if let Some(line) = lines.first() {
        f.check(
            line.contains("removed 6 suspicious request header(s)")
                && line.matches("OAUTH2_CLAIM_x").count() == 4
                && line.contains("and 2 more"),
            || format!("scrub warning: {line}"),
        );
    }
    f.assert_none();
}

const ACCEPTED_LINE: &str = "token accepted by";
