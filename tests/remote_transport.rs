//! How remote documents are reached: `file://` key sets and discovery documents (read again when
//! the file changes; a missing file refused like an unreachable server; never reached through a
//! redirect), and `<prefix>.http_retries` / `<prefix>.http_retry_interval` against small scripted
//! HTTP servers that fail once, always, or with 4xx (attempts counted by the server; the total
//! bounded by `http_timeout`).

mod common;

use common::remote::*;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ISSUER: &str = "https://as.example.test";

fn jwks_of(signers: &[&TokenSigner]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.public_jwk_value()).collect::<Vec<_>>() })
}

/// A private directory for the files of one test, removed on drop (kept when the test failed).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "mod_oauth2-it-{tag}-{}-{}",
            std::process::id(),
            random_id(8)
        ));
        std::fs::create_dir_all(&d).unwrap();
        // The children of a root httpd run as www-data: they must be able to read the files.
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn write_json(p: &Path, v: &Value) {
    std::fs::write(p, v.to_string()).unwrap();
}

/// A new token (a fresh `jti`: results are cached per token) for `sub`.
fn fresh(s: &TokenSigner, sub: &str) -> String {
    s.mint(&with(claims(sub), json!({ "jti": random_id(12) })))
}

/// `path` with a [`fresh`] token by `signer` for `sub`.
fn send_fresh(h: &Httpd, path: &str, signer: &TokenSigner, sub: &str) -> Response {
    h.https(path).bearer(&fresh(signer, sub)).send()
}

// ---------------------------------------------------------------------------------------------
// file:// URLs
// ---------------------------------------------------------------------------------------------

#[test]
fn file_key_set_is_read_again_when_it_changes() {
    let dir = Dir::new("jwks-file");
    let jwks = dir.path("jwks.json");
    let (k1, k2) = (TokenSigner::ec("k1"), TokenSigner::ec("k2"));
    write_json(&jwks, &jwks_of(&[&k1]));
    let down = free_port();
    let body = [
        verify_location("/f", "jwks_uri", &file_url(&jwks), &Opts::new()),
        verify_location(
            "/missing",
            "jwks_uri",
            &file_url(&dir.path("never-written.json")),
            &Opts::new(),
        ),
        verify_location(
            "/down",
            "jwks_uri",
            &format!("http://127.0.0.1:{down}/jwks"),
            &Opts::new().kv("jwks_uri.http_retries", "0"),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();

    f.expect(
        "k1 from the file",
        &send_fresh(&h, "/f/ok", &k1, "joe"),
        200,
        None,
    );

    // Rotation: the file now holds k2 only (rewritten in place).
    write_json(&jwks, &jwks_of(&[&k2]));
    f.expect(
        "k2 right after the rewrite (unknown kid: the file is looked at)",
        &send_fresh(&h, "/f/ok", &k2, "ann"),
        200,
        None,
    );
    f.expect(
        "k1 after the rewrite (a new token)",
        &send_fresh(&h, "/f/ok", &k1, "joe"),
        401,
        Some(INVALID_TOKEN),
    );

    // The same kid with new key material: noticed by the modification check (once a second).
    let k2_new = TokenSigner::ec("k2");
    let tmp = dir.path("jwks.json.tmp");
    write_json(&tmp, &jwks_of(&[&k2_new]));
    std::fs::rename(&tmp, &jwks).unwrap(); // replaced atomically
    std::thread::sleep(Duration::from_millis(1200));
    f.expect(
        "new k2 after the replacement",
        &send_fresh(&h, "/f/ok", &k2_new, "bob"),
        200,
        None,
    );
    f.expect(
        "old k2 after the replacement",
        &send_fresh(&h, "/f/ok", &k2, "ann"),
        401,
        Some(INVALID_TOKEN),
    );

    // A missing file is refused like an unreachable key server.
    let mark = h.log_mark();
    let missing = send_fresh(&h, "/missing/ok", &k1, "joe");
    let down = send_fresh(&h, "/down/ok", &k1, "joe");
    f.expect("missing file", &missing, 401, Some(INVALID_TOKEN));
    f.expect("unreachable server", &down, 401, Some(INVALID_TOKEN));
    let log = h.wait_log_since(mark, |l| {
        l.matches("oauth2: fetching keys from").count() >= 2
    });
    for (what, needle) in [
        ("missing file", "never-written.json failed: cannot read "),
        ("unreachable server", "/jwks failed: "),
    ] {
        f.check(
            log.lines()
                .any(|l| l.contains("oauth2: fetching keys from") && l.contains(needle)),
            || format!("{what}: no `fetching keys from ... {needle}` line in\n{log}"),
        );
    }
    let refusals: Vec<String> = oauth2_refusal_lines(&log)
        .into_iter()
        .filter(|l| !l.contains("fetching keys from"))
        .collect();
    f.check(refusals.len() == 2, || {
        format!("expected one refusal line per request: {refusals:?}")
    });
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

#[test]
fn file_metadata_names_a_local_key_set_and_is_read_again_when_it_changes() {
    let dir = Dir::new("metadata-file");
    let (jwks, md) = (dir.path("jwks.json"), dir.path("openid-configuration"));
    let k1 = TokenSigner::ec("k1");
    write_json(&jwks, &jwks_of(&[&k1]));
    write_json(
        &md,
        &json!({ "issuer": ISSUER, "jwks_uri": file_url(&jwks) }),
    );
    // A fetched document naming the same local file.
    let remote_md = MockServer::json(json!({ "issuer": ISSUER, "jwks_uri": file_url(&jwks) }));
    let body = [
        verify_location("/m", "metadata", &file_url(&md), &Opts::new()),
        verify_location(
            "/r",
            "metadata",
            &remote_md.url("/.well-known/openid-configuration"),
            &Opts::new(),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();

    f.expect(
        "local metadata, local keys",
        &send_fresh(&h, "/m/ok", &k1, "joe"),
        200,
        None,
    );

    // A new issuer in the file: the old one is refused once the change is seen.
    let other = "https://other-as.example.test";
    write_json(
        &md,
        &json!({ "issuer": other, "jwks_uri": file_url(&jwks) }),
    );
    std::thread::sleep(Duration::from_millis(1200));
    let new_iss = k1.mint(&with(
        claims("ann"),
        json!({ "iss": other, "jti": random_id(12) }),
    ));
    f.expect(
        "new issuer after the change",
        &h.https("/m/ok").bearer(&new_iss).send(),
        200,
        None,
    );
    f.expect(
        "old issuer after the change",
        &send_fresh(&h, "/m/ok", &k1, "joe"),
        401,
        Some(INVALID_TOKEN),
    );

    // A fetched document cannot make the module read a local file.
    let mark = h.log_mark();
    f.expect(
        "fetched metadata naming a file",
        &send_fresh(&h, "/r/ok", &k1, "joe"),
        401,
        Some(INVALID_TOKEN),
    );
    let log = h.wait_log_since(mark, |l| l.contains("\"jwks_uri\" ignored"));
    f.check(
        log.contains("\"jwks_uri\" ignored: not an http(s) URL"),
        || format!("no `jwks_uri ignored` warning in\n{log}"),
    );
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

#[test]
fn redirects_never_lead_to_a_local_file() {
    let dir = Dir::new("redirect-file");
    let k1 = TokenSigner::ec("k1");
    let (jwks, md) = (dir.path("jwks.json"), dir.path("openid-configuration"));
    write_json(&jwks, &jwks_of(&[&k1]));
    write_json(
        &md,
        &json!({ "issuer": ISSUER, "jwks_uri": file_url(&jwks) }),
    );
    let keys = MockServer::json(jwks_of(&[&k1]));
    let (to_jwks, to_md) = (file_url(&jwks), file_url(&md));
    let to_file = MockServer::start(move |s| {
        Reply::Redirect(if s.path().contains("openid") {
            to_md.clone()
        } else {
            to_jwks.clone()
        })
    });
    let to_http_url = keys.url("/jwks");
    let to_http = MockServer::start(move |_| Reply::Redirect(to_http_url.clone()));
    let body = [
        verify_location("/jf", "jwks_uri", &to_file.url("/jwks"), &Opts::new()),
        verify_location(
            "/mf",
            "metadata",
            &to_file.url("/.well-known/openid-configuration"),
            &Opts::new(),
        ),
        verify_location("/jh", "jwks_uri", &to_http.url("/jwks"), &Opts::new()),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    // Redirects are followed (to http), so the refusals below are about the scheme.
    f.expect(
        "redirect to http",
        &send_fresh(&h, "/jh/ok", &k1, "joe"),
        200,
        None,
    );
    let mark = h.log_mark();
    f.expect(
        "jwks_uri redirected to file://",
        &send_fresh(&h, "/jf/ok", &k1, "joe"),
        401,
        Some(INVALID_TOKEN),
    );
    f.expect(
        "metadata redirected to file://",
        &send_fresh(&h, "/mf/ok", &k1, "joe"),
        401,
        Some(INVALID_TOKEN),
    );
    // Refused by the protocols allowed for redirects (libcurl's "Unsupported protocol"), and
    // not retried (a refused protocol is not a transport failure).
    let log = h.wait_log_since(mark, |l| l.matches("Unsupported protocol").count() >= 2);
    for what in ["fetching keys from", "fetching metadata"] {
        f.check(
            log.lines()
                .any(|l| l.contains(what) && l.contains("failed: Unsupported protocol")),
            || format!("no `{what} ... failed: Unsupported protocol` line in\n{log}"),
        );
    }
    let seen = to_file.count();
    f.check(seen == 2, || {
        format!("the redirecting server saw {seen} requests, expected 2")
    });
    f.check(!log.contains("trying again"), || {
        format!("a redirect to a file was retried:\n{log}")
    });
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

// ---------------------------------------------------------------------------------------------
// http_retries / http_retry_interval
// ---------------------------------------------------------------------------------------------

/// A server that answers `fail(n)` to its n-th request (from 1), `ok` otherwise.
fn scripted(ok: Reply, fail: impl Fn(usize) -> Option<Reply> + Send + 'static) -> MockServer {
    let n = Arc::new(AtomicUsize::new(0));
    MockServer::start(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        fail(i).unwrap_or_else(|| ok.clone())
    })
}

fn json_reply(v: &Value) -> Reply {
    Reply::json(v)
}

fn introspection_ok() -> Reply {
    json_reply(&json!({ "active": true, "sub": "joe", "exp": now() + 300 }))
}

/// One endpoint of a retry table: the location's verifier line, what the request must get, and
/// how many requests its server must have seen.
struct Row {
    name: &'static str,
    server: MockServer,
    kind: &'static str,
    path: &'static str,
    options: Opts,
    expect_status: u16,
    expect_attempts: usize,
}

#[test]
fn only_transport_errors_and_5xx_are_tried_again() {
    let k1 = TokenSigner::ec("k1");
    let keys = json_reply(&jwks_of(&[&k1]));
    let s500 = || Some(Reply::raw(500, "text/plain", "down"));
    let md_keys = MockServer::json(jwks_of(&[&k1]));
    let md_doc = json_reply(&json!({ "issuer": ISSUER, "jwks_uri": md_keys.url("/jwks") }));
    let rows = vec![
        Row {
            name: "jwks_500_once",
            server: scripted(keys.clone(), move |n| (n == 1).then(s500).flatten()),
            kind: "jwks_uri",
            path: "/jwks",
            options: Opts::new(),
            expect_status: 200,
            expect_attempts: 2,
        },
        Row {
            name: "jwks_closed_once",
            server: scripted(keys.clone(), |n| (n == 1).then_some(Reply::Close)),
            kind: "jwks_uri",
            path: "/jwks",
            options: Opts::new(),
            expect_status: 200,
            expect_attempts: 2,
        },
        Row {
            name: "jwks_500_always",
            server: scripted(keys.clone(), move |_| s500()),
            kind: "jwks_uri",
            path: "/jwks",
            options: Opts::new()
                .kv("jwks_uri.http_retries", "2")
                .kv("jwks_uri.http_retry_interval", "100"),
            expect_status: 401,
            expect_attempts: 3,
        },
        Row {
            name: "jwks_500_no_retries",
            server: scripted(keys.clone(), move |_| s500()),
            kind: "jwks_uri",
            path: "/jwks",
            options: Opts::new().kv("jwks_uri.http_retries", "0"),
            expect_status: 401,
            expect_attempts: 1,
        },
        Row {
            name: "jwks_404",
            server: scripted(keys.clone(), |_| Some(Reply::raw(404, "text/plain", "no"))),
            kind: "jwks_uri",
            path: "/jwks",
            options: Opts::new().kv("jwks_uri.http_retries", "3"),
            expect_status: 401,
            expect_attempts: 1,
        },
        Row {
            name: "metadata_503_once",
            server: scripted(md_doc.clone(), |n| {
                (n == 1).then(|| Reply::raw(503, "text/plain", "busy"))
            }),
            kind: "metadata",
            path: "/.well-known/openid-configuration",
            options: Opts::new(),
            expect_status: 200,
            expect_attempts: 2,
        },
        Row {
            name: "metadata_502_always",
            server: scripted(md_doc, |_| {
                Some(Reply::raw(502, "text/plain", "bad gateway"))
            }),
            kind: "metadata",
            path: "/.well-known/openid-configuration",
            options: Opts::new()
                .kv("metadata.http_retries", "3")
                .kv("metadata.http_retry_interval", "50"),
            expect_status: 401,
            expect_attempts: 4,
        },
        Row {
            name: "introspect_500_once",
            server: scripted(introspection_ok(), move |n| (n == 1).then(s500).flatten()),
            kind: "introspect",
            path: "/introspect",
            options: Opts::new(),
            expect_status: 200,
            expect_attempts: 2,
        },
        Row {
            name: "introspect_closed_always",
            server: scripted(introspection_ok(), |_| Some(Reply::Close)),
            kind: "introspect",
            path: "/introspect",
            options: Opts::new()
                .kv("introspect.http_retries", "2")
                .kv("introspect.http_retry_interval", "0"),
            expect_status: 401,
            expect_attempts: 3,
        },
        Row {
            name: "introspect_400",
            server: scripted(introspection_ok(), |_| {
                Some(Reply::raw(
                    400,
                    "application/json",
                    "{\"error\":\"invalid_request\"}",
                ))
            }),
            kind: "introspect",
            path: "/introspect",
            options: Opts::new().kv("introspect.http_retries", "3"),
            expect_status: 401,
            expect_attempts: 1,
        },
        Row {
            name: "introspect_401",
            server: scripted(introspection_ok(), |_| {
                Some(Reply::raw(
                    401,
                    "application/json",
                    "{\"error\":\"invalid_client\"}",
                ))
            }),
            kind: "introspect",
            path: "/introspect",
            options: Opts::new().kv("introspect.http_retries", "3"),
            expect_status: 401,
            expect_attempts: 1,
        },
    ];
    let body: String = rows
        .iter()
        .map(|r| {
            verify_location(
                &format!("/{}", r.name),
                r.kind,
                &r.server.url(r.path),
                &r.options,
            )
        })
        .collect();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    for r in &rows {
        let token = if r.kind == "introspect" {
            random_id(32)
        } else {
            fresh(&k1, "joe")
        };
        let t = Instant::now();
        let resp = h.https(&format!("/{}/ok", r.name)).bearer(&token).send();
        let took = t.elapsed();
        let challenge = (r.expect_status == 401).then_some(INVALID_TOKEN);
        f.expect(r.name, &resp, r.expect_status, challenge);
        let seen = r.server.count();
        f.check(seen == r.expect_attempts, || {
            format!(
                "{}: the server saw {seen} requests, expected {}",
                r.name, r.expect_attempts
            )
        });
        f.check(took < Duration::from_secs(3), || {
            format!("{}: took {took:?}", r.name)
        });
        eprintln!(
            "{}: {} after {seen} attempt(s) in {took:?}",
            r.name, resp.status
        );
    }
    // Each retry is logged with the attempt and the reason.
    let log = h.error_log();
    f.check(
        log.contains("/jwks: attempt 1 of 2 failed: HTTP status 500; trying again in 300 ms"),
        || "no retry line for jwks_500_once".into(),
    );
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

#[test]
fn retries_never_take_longer_than_http_timeout() {
    let k1 = TokenSigner::ec("k1");
    let always_500 = MockServer::start(|_| Reply::raw(500, "text/plain", "down"));
    let hang = MockServer::start(|_| Reply::Hang);
    let body = [
        verify_location(
            "/many",
            "jwks_uri",
            &always_500.url("/jwks"),
            &Opts::new()
                .kv("jwks_uri.http_timeout", "2")
                .kv("jwks_uri.http_retries", "100")
                .kv("jwks_uri.http_retry_interval", "300"),
        ),
        verify_location(
            "/hang",
            "introspect",
            &hang.url("/introspect"),
            &Opts::new()
                .kv("introspect.http_timeout", "2")
                .kv("introspect.http_retries", "5")
                .kv("introspect.http_retry_interval", "10"),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    for (path, token, server, attempts) in [
        ("/many", fresh(&k1, "joe"), &always_500, 2..=8),
        ("/hang", random_id(32), &hang, 1..=1),
    ] {
        let t = Instant::now();
        let resp = h.https(&format!("{path}/ok")).bearer(&token).send();
        let took = t.elapsed();
        f.expect(path, &resp, 401, Some(INVALID_TOKEN));
        f.check(took < Duration::from_millis(2600), || {
            format!("{path}: took {took:?}, expected at most http_timeout=2 s (and the request)")
        });
        let seen = server.count();
        f.check(attempts.contains(&seen), || {
            format!("{path}: the server saw {seen} requests, expected {attempts:?}")
        });
        eprintln!(
            "{path}: {} after {seen} attempt(s) in {took:?}",
            resp.status
        );
    }
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}
