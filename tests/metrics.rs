//! Metrics in a real httpd: `SetHandler oauth2-metrics` (the Prometheus text format, read by the
//! strict reader in common/prometheus.rs) and mod_status's page. The counts of every prefork child
//! and every event thread add up to what was sent, reason by reason; they survive a graceful
//! restart (httpd reloads the module) and start again from 0 after a full stop. Remote fetches
//! are counted against what the mock server saw; key-set ages; DPoP replays; the handler answers
//! GET only and is protected like any location.

mod common;

use common::dpop::*;
use common::remote::*;
use common::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics location of every test: loopback only.
const METRICS: &str =
    "<Location /metrics>\nSetHandler oauth2-metrics\nRequire ip 127.0.0.1\n</Location>\n";

/// A configuration with `body` in both virtual hosts and mod_authz_host (`Require ip`) loaded.
fn config(body: impl Into<String>) -> HttpdConfig {
    HttpdConfig::new(body).server(load_module("authz_host_module", "mod_authz_host.so"))
}

/// Several prefork children that stay.
const PREFORK_CHILDREN: &str =
    "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestsPerChild 0\n";

/// Every refusal reason the module can count (the series it shows with result="refused").
fn reasons(e: &Exposition) -> BTreeSet<String> {
    e.series("oauth2_requests_total")
        .iter()
        .filter_map(|s| s.label("reason").map(str::to_string))
        .collect()
}

/// Scrapes /metrics over plain HTTP, reads it strictly and checks what holds in every scrape.
fn scrape(h: &Httpd) -> Exposition {
    let r = h.http("/metrics").send();
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some(CONTENT_TYPE));
    let text = r.text();
    let e = parse_exposition(&text).unwrap_or_else(|err| panic!("{err}\n--- /metrics ---\n{text}"));
    // Each decided request is timed once; each fetch is timed once.
    assert_eq!(
        e.get("oauth2_verify_seconds_count", &[]),
        e.sum("oauth2_requests_total", &[]),
        "verify histogram count vs requests\n{text}"
    );
    for kind in ["jwks", "metadata", "introspect", "aws_alb"] {
        assert_eq!(
            e.get("oauth2_remote_fetch_seconds_count", &[("kind", kind)]),
            e.sum("oauth2_remote_fetches_total", &[("kind", kind)]),
            "fetch histogram count vs fetches of {kind}\n{text}"
        );
    }
    e
}

/// (result, reason) -> count, for every series of oauth2_requests_total.
fn requests(e: &Exposition) -> BTreeMap<String, f64> {
    e.series("oauth2_requests_total")
        .iter()
        .map(|s| {
            let key = match s.label("reason") {
                Some(reason) => reason.to_string(),
                None => s.label("result").unwrap_or("?").to_string(),
            };
            (key, s.value)
        })
        .collect()
}

/// Checks every series of oauth2_requests_total: `accepted`, the reasons of `refused`, all others 0.
fn expect_requests(
    f: &mut Failures,
    when: &str,
    e: &Exposition,
    accepted: f64,
    refused: &[(&str, f64)],
) {
    let got = requests(e);
    f.check(got.get("accepted") == Some(&accepted), || {
        format!(
            "{when}: accepted {:?}, expected {accepted}",
            got.get("accepted")
        )
    });
    for reason in reasons(e) {
        let want = refused
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0.0, |(_, n)| *n);
        f.check(got.get(&reason) == Some(&want), || {
            format!(
                "{when}: refused {reason}: {:?}, expected {want}",
                got.get(&reason)
            )
        });
    }
    for (reason, _) in refused {
        f.check(got.contains_key(*reason), || {
            format!("{when}: no series for reason {reason}")
        });
    }
}

/// The pids (last access-log field) that answered requests to `path`.
fn pids_for(h: &Httpd, path: &str) -> BTreeSet<String> {
    h.access_log()
        .lines()
        .filter(|l| l.contains(&format!("GET {path} ")))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

fn jwk_location(path: &str, signer: &TokenSigner) -> String {
    oauth2_location(path, &format!("OAuth2TokenVerify jwk {}", signer.jwk_arg()))
}

/// Sends each refusal of the fixed mix (`reason`, count); returns what was sent.
fn send_refusals(h: &Httpd, signer: &TokenSigner, f: &mut Failures) -> Vec<(&'static str, f64)> {
    let expired = signer.mint(&with(claims("m-old"), json!({ "exp": now() - 600 })));
    let stranger = TokenSigner::ec("stranger").mint(&claims("m-stranger"));
    let good = signer.mint(&claims("m-tampered"));
    /// One refused request per row.
    struct Row {
        reason: &'static str,
        token: Option<String>,
        times: usize,
    }
    let rows = [
        Row {
            reason: "no_token",
            token: None,
            times: 3,
        },
        Row {
            reason: "expired",
            token: Some(expired),
            times: 2,
        },
        Row {
            reason: "bad_signature",
            token: Some(tamper_signature(&good)),
            times: 2,
        },
        Row {
            reason: "malformed",
            token: Some("not-a-jwt".into()),
            times: 1,
        },
        Row {
            reason: "unknown_kid",
            token: Some(stranger),
            times: 1,
        },
    ];
    for row in &rows {
        for i in 0..row.times {
            let req = h.https("/j/ok");
            let req = match &row.token {
                Some(t) => req.bearer(t),
                None => req,
            };
            f.expect(&format!("{} #{i}", row.reason), &req.send(), 401, None);
        }
    }
    rows.iter().map(|r| (r.reason, r.times as f64)).collect()
}

#[test]
fn prefork_children_add_up_keep_counting_over_a_graceful_restart_and_start_from_zero_after_a_stop()
{
    let signer = TokenSigner::ec("metrics");
    let mut h = Httpd::start(
        HttpdConfig::new(format!("{}{METRICS}", jwk_location("/j", &signer)))
            .mpm(Mpm::Prefork)
            .server(format!(
                "{PREFORK_CHILDREN}{}",
                load_module("authz_host_module", "mod_authz_host.so")
            )),
    );
    let mut f = Failures::new();
    let start = scrape(&h);
    expect_requests(&mut f, "at start", &start, 0.0, &[]);

    // Accepted: one token on a new connection each time, until two children have answered.
    let token = signer.mint(&claims("m-user"));
    let mut sent = 0;
    while sent < 40 && (sent < 10 || pids_for(&h, "/j/ok").len() < 2) {
        f.expect(
            "accepted",
            &h.https("/j/ok").bearer(&token).send(),
            200,
            None,
        );
        sent += 1;
    }
    let pids = pids_for(&h, "/j/ok");
    f.check(pids.len() >= 2, || {
        format!("only children {pids:?} answered {sent} requests")
    });
    // Five requests on one keep-alive connection: four answered from the connection's memo.
    let kept = signer.mint(&claims("m-keepalive"));
    let ka = h.keep_alive("/j/ok", &[kept.as_str(); 5], None);
    let want: Vec<(u16, bool)> = (0..5).map(|i| (200, i == 0)).collect();
    f.check(ka == want, || format!("keep-alive: {ka:?}"));
    let refused = send_refusals(&h, &signer, &mut f);
    let with_token: f64 = refused
        .iter()
        .filter(|(r, _)| *r != "no_token")
        .map(|(_, n)| n)
        .sum();

    let e = scrape(&h);
    let accepted = sent as f64 + 5.0;
    expect_requests(&mut f, "after the requests", &e, accepted, &refused);
    let cache = |layer: &str, result: &str| {
        e.get(
            "oauth2_cache_total",
            &[("layer", layer), ("result", result)],
        )
    };
    // Every request with a token asks its connection's memo; the memo's misses are looked up in
    // this process, its misses in the shared cache (shm). Only new tokens miss there: the first
    // request of `token` and of `kept`, and each refused one.
    let checks = [
        ("connection hits", cache("connection", "hit"), 4.0),
        (
            "connection misses",
            cache("connection", "miss"),
            sent as f64 + 1.0 + with_token,
        ),
        (
            "process lookups",
            cache("process", "hit") + cache("process", "miss"),
            sent as f64 + 1.0 + with_token,
        ),
        (
            "shared lookups",
            cache("shared", "hit") + cache("shared", "miss"),
            cache("process", "miss"),
        ),
        ("shared misses", cache("shared", "miss"), 2.0 + with_token),
        (
            "repeats of the token answered by a cache",
            cache("process", "hit") + cache("shared", "hit"),
            sent as f64 - 1.0,
        ),
    ];
    for (what, got, want) in checks {
        f.check(got == want, || format!("{what}: {got}, expected {want}"));
    }
    f.check(cache("shared", "hit") >= 1.0, || {
        "another child found the token in the shared cache: no shared hit".into()
    });

    // A graceful restart (httpd unloads and reloads the module): the same counts, and on from there.
    h.graceful();
    let after = scrape(&h);
    f.check(after.samples == e.samples, || {
        "the counts changed over a graceful restart".into()
    });
    f.expect(
        "accepted after the restart",
        &h.https("/j/ok").bearer(&token).send(),
        200,
        None,
    );
    let after = scrape(&h);
    expect_requests(
        &mut f,
        "after a graceful restart",
        &after,
        accepted + 1.0,
        &refused,
    );

    // A full stop: a new parent process starts from 0.
    h.stop_and_start();
    let reset = scrape(&h);
    expect_requests(&mut f, "after a stop and a start", &reset, 0.0, &[]);
    f.check(
        reset.sum("oauth2_cache_total", &[]) == 0.0
            && reset.get("oauth2_verify_seconds_sum", &[]) == 0.0,
        || "cache counts or time not reset by a stop".into(),
    );
    h.assert_no_child_crash();
    f.assert_none();
}

#[test]
fn event_threads_of_several_children_add_up() {
    let signer = TokenSigner::rsa("metrics-event");
    let h = Httpd::start(config(format!("{}{METRICS}", jwk_location("/j", &signer))));
    let token = signer.mint(&claims("m-event"));
    let (clients, each) = (12, 8);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let token = &token;
                let h = &h;
                s.spawn(move || {
                    (0..each)
                        .map(|_| {
                            let req = h.https("/j/ok");
                            let req = if i % 2 == 0 { req.bearer(token) } else { req };
                            req.try_send().map_or(0, |r| r.status)
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|j| j.join().unwrap())
            .collect()
    });
    let ok = statuses.iter().filter(|s| **s == 200).count() as f64;
    let no_token = statuses.iter().filter(|s| **s == 401).count() as f64;
    let half = (clients / 2 * each) as f64;
    assert_eq!((ok, no_token), (half, half), "statuses {statuses:?}");
    let mut f = Failures::new();
    let e = scrape(&h);
    expect_requests(&mut f, "event", &e, half, &[("no_token", half)]);
    eprintln!("children that answered: {:?}", pids_for(&h, "/j/ok"));
    h.assert_no_child_crash();
    f.assert_none();
}

#[test]
fn the_handler_answers_get_is_protected_like_any_location_and_mod_status_shows_the_same_figures() {
    let signer = TokenSigner::ec("metrics-status");
    let body = format!(
        "{}{METRICS}<Location /closed-metrics>\nSetHandler oauth2-metrics\nRequire ip 10.255.255.1\n</Location>\n\
         <Location /server-status>\nSetHandler server-status\nRequire ip 127.0.0.1\n</Location>\n",
        jwk_location("/j", &signer)
    );
    let h = Httpd::start(HttpdConfig::new(body).server(format!(
        "{}{}",
        load_module("authz_host_module", "mod_authz_host.so"),
        load_module("status_module", "mod_status.so")
    )));
    let mut f = Failures::new();
    let token = signer.mint(&claims("m-status"));
    for i in 0..2 {
        f.expect(
            &format!("accepted #{i}"),
            &h.https("/j/ok").bearer(&token).send(),
            200,
            None,
        );
    }
    f.expect("no token", &h.https("/j/ok").send(), 401, None);

    let r = h.http("/closed-metrics").send();
    f.expect("Require ip of another address", &r, 403, None);
    f.check(!r.text().contains("oauth2_"), || {
        format!("a refused scrape shows metrics: {}", r.text())
    });
    let r = h.http("/metrics").method("POST").body("x=1").send();
    f.expect("POST", &r, 405, None);
    f.check(r.header("Allow").is_some_and(|a| a.contains("GET")), || {
        format!("405 without Allow: GET: {:?}", r.headers)
    });
    let r = send_raw(&h, &RawReq::new("HEAD", "/metrics"));
    f.expect("HEAD", &r, 200, None);
    f.check(
        r.body.is_empty() && r.header("Content-Type") == Some(CONTENT_TYPE),
        || format!("HEAD: {:?} {:?}", r.headers, r.text()),
    );

    let e = scrape(&h);
    expect_requests(&mut f, "scrape", &e, 2.0, &[("no_token", 1.0)]);

    // ?auto: one `series: value` line for each series but the histogram buckets.
    let r = h.http("/server-status?auto").send();
    f.expect("server-status?auto", &r, 200, None);
    let auto: BTreeMap<String, String> = r
        .text()
        .lines()
        .filter(|l| l.starts_with("oauth2_"))
        .filter_map(|l| l.rsplit_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut expected = BTreeMap::new();
    for s in e.samples.iter().filter(|s| !s.name.ends_with("_bucket")) {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let key = if labels.is_empty() {
            s.name.clone()
        } else {
            format!("{}{{{}}}", s.name, labels.join(","))
        };
        expected.insert(key, s.value);
    }
    f.check(auto.len() == expected.len(), || {
        format!(
            "?auto has {} oauth2 lines, /metrics {} series besides buckets",
            auto.len(),
            expected.len()
        )
    });
    for (key, value) in &expected {
        let shown = auto.get(key).and_then(|v| v.parse::<f64>().ok());
        f.check(shown == Some(*value), || {
            format!("?auto {key}: {:?}, /metrics {value}", auto.get(key))
        });
    }
    let r = h.http("/server-status").send();
    f.expect("server-status", &r, 200, None);
    let html = r.text();
    f.check(
        html.contains("<h2>mod_oauth2</h2>")
            && html.contains("oauth2_requests_total{result=&quot;accepted&quot;} 2\n")
            && !html.contains("_bucket"),
        || format!("the HTML page lacks the mod_oauth2 section: {html}"),
    );
    h.assert_no_child_crash();
    f.assert_none();
}

#[test]
fn remote_fetches_are_counted_and_key_sets_show_their_age() {
    let signer = TokenSigner::ec("metrics-remote");
    let m = MockServer::start(|_| Reply::raw(500, "text/plain", "not yet"));
    let issuer = m.url("");
    let (jwks, pem, discovery) = (
        json!({ "keys": [signer.public_jwk_value()] }),
        signer.public_pem(),
        json!({ "issuer": issuer, "jwks_uri": m.url("/jwks2") }),
    );
    m.set(move |req| match req.path() {
        "/jwks" | "/jwks2" => Reply::json(&jwks),
        "/key.pem" => Reply::raw(200, "application/x-pem-file", &pem),
        "/.well-known/openid-configuration" => Reply::json(&discovery),
        "/introspect" => match req.param("token").as_deref() {
            Some("inactive") => Reply::json(&json!({ "active": false })),
            Some("broken") => Reply::raw(500, "text/plain", "down"),
            _ => Reply::json(&json!({ "active": true, "sub": "m-i", "exp": now() + 300 })),
        },
        _ => Reply::raw(500, "text/plain", "down"),
    });
    let body = [
        verify_location("/k", "jwks_uri", &m.url("/jwks"), &Opts::new()),
        verify_location("/e", "eckey_uri", &m.url("/key.pem"), &Opts::new()),
        verify_location(
            "/md",
            "metadata",
            &m.url("/.well-known/openid-configuration"),
            &Opts::new(),
        ),
        oauth2_location(
            "/i",
            // No retry after the broken endpoint's 5xx (see /dead below).
            &verify_line(
                "introspect",
                &m.url("/introspect"),
                &Opts::new().kv("introspect.http_retries", "0"),
            ),
        ),
        oauth2_location(
            "/dead",
            // No retry: one fetch is one attempt the mock server sees (a retry after the 5xx
            // would be a second attempt of the same fetch).
            &verify_line(
                "jwks_uri",
                &m.url("/dead-jwks"),
                &Opts::new().kv("jwks_uri.http_retries", "0"),
            ),
        ),
        METRICS.to_string(),
    ]
    .concat();
    let h = Httpd::start(config(body));
    let mut f = Failures::new();
    let age = |e: &Exposition, path: &str| {
        e.value("oauth2_key_set_age_seconds", &[("url", &m.url(path))])
    };

    // Before any request: the configured key sets, never obtained; the discovered one unknown.
    let e = scrape(&h);
    for path in ["/jwks", "/key.pem", "/dead-jwks"] {
        f.check(age(&e, path) == Some(f64::INFINITY), || {
            format!("at start, age of {path}: {:?}", age(&e, path))
        });
    }
    f.check(age(&e, "/jwks2").is_none(), || {
        "a key set shown before its discovery".into()
    });
    f.check(e.sum("oauth2_remote_fetches_total", &[]) == 0.0, || {
        "fetches counted before any request".into()
    });

    let token = signer.mint(&with(claims("m-remote"), json!({ "iss": issuer })));
    for (what, path, token, status) in [
        ("jwks_uri", "/k/ok", token.as_str(), 200),
        ("eckey_uri", "/e/ok", token.as_str(), 200),
        ("metadata", "/md/ok", token.as_str(), 200),
        ("introspect", "/i/ok", "opaque-active", 200),
        ("introspect, inactive", "/i/ok", "inactive", 401),
        ("introspect, endpoint down", "/i/ok", "broken", 401),
        ("jwks_uri down", "/dead/ok", token.as_str(), 401),
    ] {
        f.expect(what, &h.https(path).bearer(token).send(), status, None);
    }
    let e = scrape(&h);
    let seen = |pred: &dyn Fn(&Seen) -> bool| m.seen().iter().filter(|s| pred(s)).count() as f64;
    let fetches = |kind: &str, result: &str| {
        e.get(
            "oauth2_remote_fetches_total",
            &[("kind", kind), ("result", result)],
        )
    };
    let introspected = |s: &Seen| s.path() == "/introspect";
    let broken =
        |s: &Seen| s.path() == "/introspect" && s.param("token").as_deref() == Some("broken");
    for (what, got, want) in [
        (
            "jwks ok",
            fetches("jwks", "ok"),
            seen(&|s| s.path() == "/jwks" || s.path() == "/jwks2"),
        ),
        (
            "jwks error",
            fetches("jwks", "error"),
            seen(&|s| s.path() == "/dead-jwks"),
        ),
        (
            "aws_alb ok",
            fetches("aws_alb", "ok"),
            seen(&|s| s.path() == "/key.pem"),
        ),
        ("aws_alb error", fetches("aws_alb", "error"), 0.0),
        (
            "metadata ok",
            fetches("metadata", "ok"),
            seen(&|s| s.path() == "/.well-known/openid-configuration"),
        ),
        ("metadata error", fetches("metadata", "error"), 0.0),
        (
            "introspect ok (active or not)",
            fetches("introspect", "ok"),
            seen(&|s| introspected(s) && !broken(s)),
        ),
        (
            "introspect error",
            fetches("introspect", "error"),
            seen(&broken),
        ),
    ] {
        f.check(
            got == want && (want >= 1.0 || what.ends_with("error")),
            || format!("{what}: {got}, the mock server saw {want}"),
        );
    }
    for path in ["/jwks", "/key.pem", "/jwks2"] {
        let a = age(&e, path);
        f.check(a.is_some_and(|a| (0.0..60.0).contains(&a)), || {
            format!("age of {path} after fetching it: {a:?}")
        });
    }
    f.check(age(&e, "/dead-jwks") == Some(f64::INFINITY), || {
        format!(
            "age of a key set never obtained: {:?}",
            age(&e, "/dead-jwks")
        )
    });
    expect_requests(
        &mut f,
        "remote",
        &e,
        4.0,
        &[
            ("inactive", 1.0),
            ("introspection_unavailable", 1.0),
            ("keys_unavailable", 1.0),
        ],
    );
    h.assert_no_child_crash();
    f.assert_none();
}

#[test]
fn dpop_replays_are_counted() {
    let signer = TokenSigner::ec("metrics-dpop");
    let h = Httpd::start(config(format!(
        "{}{METRICS}",
        oauth2_location(
            "/d",
            &format!("OAuth2TokenVerify jwk {} type=dpop", signer.jwk_arg())
        )
    )));
    let key = DpopKey::p256();
    let token = signer.mint(&with(
        claims("m-dpop"),
        json!({ "cnf": { "jkt": key.thumbprint() } }),
    ));
    let htu = format!("https://127.0.0.1:{}/d/ok", h.https_port);
    let proof = Proof::new(&key, "GET", &htu).ath(&token).sign(&key);
    let req = RawReq::get("/d/ok").dpop_token(&token).proof(&proof);
    let mut f = Failures::new();
    f.expect("first use", &send_raw(&h, &req), 200, None);
    f.expect("replayed", &send_raw(&h, &req), 401, None);
    let e = scrape(&h);
    expect_requests(&mut f, "dpop", &e, 1.0, &[("dpop_replay", 1.0)]);
    let replays = e.get("oauth2_dpop_replays_total", &[]);
    f.check(replays == 1.0, || {
        format!("oauth2_dpop_replays_total {replays}")
    });
    f.assert_none();
}

#[test]
fn require_oauth2_claim_refusals_are_counted_as_refused_not_accepted() {
    let signer = TokenSigner::ec("metrics-claim");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let location = |path: &str, require: &str| {
        format!("<Location {path}>\nAuthType oauth2\n{verify}\n{require}\n</Location>\n")
    };
    let body = [
        location("/c", "Require oauth2_claim sub:alice"),
        // mod_authz_user refuses after this module authenticated: the token was accepted.
        location("/u", "Require user alice"),
        METRICS.to_string(),
    ]
    .concat();
    let h = Httpd::start(config(body));
    let mut f = Failures::new();
    let alice = signer.mint(&claims("alice"));
    let bob = signer.mint(&claims("bob"));
    f.expect(
        "alice at /c",
        &h.https("/c/ok").bearer(&alice).send(),
        200,
        None,
    );
    f.expect(
        "bob at /c",
        &h.https("/c/ok").bearer(&bob).send(),
        401,
        None,
    );
    f.expect("no token at /c", &h.https("/c/ok").send(), 401, None);
    // Counted before the response is sent: at once.
    let e = scrape(&h);
    expect_requests(
        &mut f,
        "Require oauth2_claim",
        &e,
        1.0,
        &[("claim_not_satisfied", 1.0), ("no_token", 1.0)],
    );

    f.expect(
        "bob at /u",
        &h.https("/u/ok").bearer(&bob).send(),
        401,
        None,
    );
    // Counted when the request ends, which may be just after its response reached the client.
    let mut e = scrape(&h);
    for _ in 0..50 {
        if requests(&e).get("accepted") == Some(&2.0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        e = scrape(&h);
    }
    expect_requests(
        &mut f,
        "Require user after authentication",
        &e,
        2.0,
        &[("claim_not_satisfied", 1.0), ("no_token", 1.0)],
    );
    h.assert_no_child_crash();
    f.assert_none();
}

/// The reader of the format is strict: each row is text it must refuse.
#[test]
fn the_reader_refuses_what_the_format_does_not_allow() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let e = parse_exposition(good).unwrap();
    assert_eq!(e.get("a_total", &[("x", "1")]), 3.0);
    assert_eq!(e.get("h_count", &[]), 2.0);
    /// Text the reader must refuse, and why.
    struct Bad {
        why: &'static str,
        text: &'static str,
    }
    let bad = [
        Bad {
            why: "no final line feed",
            text: "a 1",
        },
        Bad {
            why: "bad metric name",
            text: "1a 1\n",
        },
        Bad {
            why: "bad label name",
            text: "a{1x=\"v\"} 1\n",
        },
        Bad {
            why: "unquoted label value",
            text: "a{x=v} 1\n",
        },
        Bad {
            why: "unknown escape",
            text: "a{x=\"\\t\"} 1\n",
        },
        Bad {
            why: "unterminated label value",
            text: "a{x=\"v} 1\n",
        },
        Bad {
            why: "not a float",
            text: "a 1,5\n",
        },
        Bad {
            why: "Inf without sign",
            text: "a Inf\n",
        },
        Bad {
            why: "two spaces",
            text: "a  1\n",
        },
        Bad {
            why: "series twice",
            text: "a{x=\"1\"} 1\na{x=\"1\"} 2\n",
        },
        Bad {
            why: "TYPE after a sample",
            text: "a 1\n# TYPE a counter\n",
        },
        Bad {
            why: "TYPE twice",
            text: "# TYPE a counter\n# TYPE a gauge\n",
        },
        Bad {
            why: "unknown type",
            text: "# TYPE a meter\n",
        },
        Bad {
            why: "family not contiguous",
            text: "a 1\nb 1\na{x=\"2\"} 1\n",
        },
        Bad {
            why: "negative counter",
            text: "# TYPE a counter\na -1\n",
        },
        Bad {
            why: "buckets not cumulative",
            text: "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        },
        Bad {
            why: "count is not the +Inf bucket",
            text: "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        },
        Bad {
            why: "no +Inf bucket",
            text: "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
        },
    ];
    let accepted: Vec<&str> = bad
        .iter()
        .filter(|b| parse_exposition(b.text).is_ok())
        .map(|b| b.why)
        .collect();
    assert!(accepted.is_empty(), "the reader accepted: {accepted:?}");
}
