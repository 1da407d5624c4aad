//! `OAuth2Cache`: shared caches of verification results and fetched key sets, observed as a user
//! would: through counting servers (introspection, JWKS), the debug line each accepted token gets
//! (`oauth2: token accepted by <label> (verified|from this process's cache|from the shared cache)
//! for user "<sub>"`, with the `[pid N]` of the child that answered), the files of the `file`
//! backend, and the keys in a real `redis-server` / `memcached` (`common/servers.rs`).
//!
//! Every verifier's results live in a per-process front cache as well, so a shared-cache hit needs
//! a fresh front cache: another child (prefork, new connection per request), another httpd, or
//! another `<Location>` whose `OAuth2TokenVerify` line is identical (same verifier identity, so the
//! same shared entry, but its own front cache).
//!
//! Needs `redis-server` and `memcached` (Debian packages of those names).

mod common;

use common::remote::*;
use common::servers::*;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "cache-tests-passphrase-0123456789abcdef";
const OTHER_PASSPHRASE: &str = "another-hosts-passphrase-fedcba9876543210";
const FAILURE_MARK: &str = "continuing without it";

// ---------------------------------------------------------------------------------------------
// The debug lines of accepted tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Verified,
    Process,
    Shared,
    /// The token of the connection's previous request.
    Connection,
}

#[derive(Debug, Clone)]
struct Accepted {
    pid: u32,
    user: String,
    origin: Origin,
}

/// Every `token accepted by` line of `log`, in order.
fn accepted(log: &str) -> Vec<Accepted> {
    log.lines()
        .filter(|l| l.contains("oauth2: token accepted by "))
        .filter_map(|l| {
            let origin = if l.contains("(verified) for user \"") {
                Origin::Verified
            } else if l.contains("(from this process's cache) for user \"") {
                Origin::Process
            } else if l.contains("(from the shared cache) for user \"") {
                Origin::Shared
            } else if l.contains("(as on this connection's previous request) for user \"") {
                Origin::Connection
            } else {
                panic!("accepted line without a known origin: {l}");
            };
            let user = l
                .rsplit_once("for user \"")?
                .1
                .strip_suffix('"')?
                .to_string();
            let pid = l
                .split_once("[pid ")?
                .1
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()?;
            Some(Accepted { pid, user, origin })
        })
        .collect()
}

/// The acceptances of `user` in `log`.
fn accepted_for(log: &str, user: &str) -> Vec<Accepted> {
    accepted(log)
        .into_iter()
        .filter(|a| a.user == user)
        .collect()
}

fn origins(lines: &[Accepted]) -> Vec<Origin> {
    lines.iter().map(|a| a.origin).collect()
}

/// The origin of the single acceptance of `user` logged after `mark` (waits, bounded, for it).
fn origin_since(h: &Httpd, mark: usize, user: &str) -> Option<Origin> {
    let log = h.wait_log_since(mark, |t| !accepted_for(t, user).is_empty());
    let lines = accepted_for(&log, user);
    lines.last().map(|a| a.origin)
}

/// Cache-failure lines (`...; continuing without it (logged at most once a minute)`).
fn failure_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(FAILURE_MARK))
        .map(str::to_string)
        .collect()
}

/// Prints the oauth2 lines of the error log (tail) when something failed, then asserts.
fn finish(f: Failures, h: &Httpd) {
    if !f.all_passed() {
        let log = h.error_log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("oauth2")).collect();
        eprintln!(
            "--- httpd error_log (oauth2 lines, tail) ---\n{}",
            lines[lines.len().saturating_sub(60)..].join("\n")
        );
    }
    h.assert_no_child_crash();
    f.assert_none();
}

// ---------------------------------------------------------------------------------------------
// Configuration helpers
// ---------------------------------------------------------------------------------------------

fn cache_line(kind: &str, options: &str) -> String {
    if options.is_empty() {
        format!("OAuth2Cache {kind}\n")
    } else {
        format!("OAuth2Cache {kind} {}\n", apache_quote(options))
    }
}

fn passphrase_line(p: &str) -> String {
    format!("OAuth2CryptoPassphrase {}\n", apache_quote(p))
}

fn jwk_verify(signer: &TokenSigner, options: &str) -> String {
    if options.is_empty() {
        format!("OAuth2TokenVerify jwk {}", signer.jwk_arg())
    } else {
        format!(
            "OAuth2TokenVerify jwk {} {}",
            signer.jwk_arg(),
            apache_quote(options)
        )
    }
}

/// Several children that stay (prefork): `StartServers 4`, `MinSpareServers 4`, no recycling.
fn prefork_children() -> &'static str {
    "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestsPerChild 0\n"
}

// ---------------------------------------------------------------------------------------------
// Counting servers
// ---------------------------------------------------------------------------------------------

/// The `sub` the introspection server answers for a token (distinct per token, not the token).
fn sub_of(token: &str) -> String {
    format!("u-{}", &sha256_hex(token.as_bytes())[..16])
}

type Table = Arc<Mutex<Vec<(String, Value)>>>;

/// An introspection endpoint that records every call: the response for a token comes from
/// `table`, default `{"active":true,"sub":sub_of(token),"exp":now+300}`.
fn introspection_server(table: Table) -> MockServer {
    MockServer::start(move |req| {
        let tok = req.param("token").unwrap_or_default();
        let t = table.lock().unwrap();
        let v = t
            .iter()
            .find(|(k, _)| *k == tok)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| json!({ "active": true, "sub": sub_of(&tok), "exp": now() + 300 }));
        Reply::json(&v)
    })
}

fn calls_for(m: &MockServer, tok: &str) -> usize {
    m.seen()
        .iter()
        .filter(|s| s.param("token").as_deref() == Some(tok))
        .count()
}

fn introspect_line(m: &MockServer, opts: &Opts) -> String {
    verify_line("introspect", &m.url("/introspect"), opts)
}

// ---------------------------------------------------------------------------------------------
// 0. Configuration errors and name resolution
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_configuration_errors() {
    let signer = TokenSigner::ec("k");
    let m = MockServer::json(json!({ "keys": [signer.public_jwk_value()] }));
    let mut f = Failures::new();

    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, "")))
            .server(cache_line("disk", "")),
    );
    match ct.syntax_error("OAuth2Cache disk") {
        Ok(msg) => f.check(
            msg.starts_with("internal error: oauth2_cache_init returned null"),
            || format!("unknown cache type: message {msg:?}"),
        ),
        Err(e) => f.fail(format!("unknown cache type: {e}")),
    }

    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, "")))
            .server(cache_line("redis", "host=127.0.0.1&port=6390")),
    );
    f.check(
        !ct.ok && ct.output.contains("OAuth2CryptoPassphrase"),
        || {
            format!(
                "redis (encrypt on by default) without OAuth2CryptoPassphrase: ok={} output:\n{}",
                ct.ok, ct.output
            )
        },
    );

    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, "")))
            .server(cache_line("redis", "host=127.0.0.1&port=6390") + &passphrase_line(PASSPHRASE)),
    );
    f.check(ct.ok, || {
        format!("redis with OAuth2CryptoPassphrase refused:\n{}", ct.output)
    });

    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, "")))
            .server(cache_line("file", "encrypt=false&dir=/tmp")),
    );
    f.check(ct.ok, || {
        format!(
            "file with encrypt=false and no passphrase refused:\n{}",
            ct.output
        )
    });

    let line = verify_line(
        "jwks_uri",
        &m.url("/jwks"),
        &Opts::new().kv("jwks_uri.cache", "nosuchcache"),
    );
    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &line)).server(cache_line("shm", "name=mem")),
    );
    match ct.syntax_error("nosuchcache") {
        Ok(msg) => f.check(msg.contains("cache could not be found"), || {
            format!("jwks_uri.cache=<unknown>: message {msg:?}")
        }),
        Err(e) => f.fail(format!("jwks_uri.cache=<unknown>: {e}")),
    }
    let line = verify_line(
        "jwks_uri",
        &m.url("/jwks"),
        &Opts::new().kv("jwks_uri.cache", "mem"),
    );
    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &line)).server(cache_line("shm", "name=mem")),
    );
    f.check(ct.ok, || {
        format!("jwks_uri.cache=<existing name> refused:\n{}", ct.output)
    });
    f.assert_none();
}

/// `verify.cache=<name>` picks that cache; no name picks the last `OAuth2Cache` line (here a Redis
/// that is down: its failure shows in the log, the request still succeeds).
#[test]
fn cache_names_resolve_to_the_named_or_the_last_cache() {
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let dead = free_port();
    let server = format!(
        "{}{}{}{}",
        single_process(),
        cache_line("shm", "name=mem"),
        cache_line("redis", &format!("name=r&host=127.0.0.1&port={dead}")),
        passphrase_line(PASSPHRASE)
    );
    let body = [
        oauth2_location(
            "/named",
            &introspect_line(&m, &Opts::new().kv("verify.cache", "mem")),
        ),
        oauth2_location("/last", &introspect_line(&m, &Opts::new())),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(server));
    let mut f = Failures::new();

    let mark = h.log_mark();
    let t1 = random_id(24);
    for i in 0..3 {
        let r = h.https("/named/ok").bearer(&t1).send();
        f.expect(&format!("verify.cache=mem #{i}"), &r, 200, None);
    }
    let log = h.log_since(mark);
    f.check(failure_lines(&log).is_empty(), || {
        format!(
            "verify.cache=mem touched the (dead) redis cache: {:?}",
            failure_lines(&log)
        )
    });
    f.check(calls_for(&m, &t1) == 1, || {
        format!(
            "verify.cache=mem: {} introspection calls",
            calls_for(&m, &t1)
        )
    });

    let mark = h.log_mark();
    let t2 = random_id(24);
    let r = h.https("/last/ok").bearer(&t2).send();
    f.expect("no verify.cache (last = dead redis)", &r, 200, None);
    let log = h.wait_log_since(mark, |t| !failure_lines(t).is_empty());
    let lines = failure_lines(&log);
    f.check(
        lines.len() == 1 && lines[0].contains("redis cache \"r\""),
        || {
            format!(
                "no verify.cache: expected one failure line of redis cache \"r\", got {lines:?}"
            )
        },
    );
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 1. Network caches shared by hosts; encryption
// ---------------------------------------------------------------------------------------------

/// One introspected token through the cache `cache` (an `OAuth2Cache` line): 10 requests on
/// host 1 -> 1 call; host 2 (same cache, same passphrase) -> no call; host 3 (other passphrase)
/// -> cannot read the entry, 1 more call. `inspect` looks at the backend after host 1.
fn hosts_share(what: &str, cache: &str, inspect: &dyn Fn(&mut Failures, &str, &str)) {
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let body = oauth2_location("/i", &introspect_line(&m, &Opts::new()));
    let cfg = |pass: &str| {
        HttpdConfig::new(body.clone()).server(format!(
            "{}{cache}{}",
            single_process(),
            passphrase_line(pass)
        ))
    };
    let tok = random_id(32);
    let sub = sub_of(&tok);
    let mut f = Failures::new();

    let h1 = Httpd::start(cfg(PASSPHRASE));
    let mark = h1.log_mark();
    let statuses: Vec<u16> = (0..10)
        .map(|_| h1.https("/i/ok").bearer(&tok).send().status)
        .collect();
    f.check(statuses.iter().all(|s| *s == 200), || {
        format!("{what}: host 1, 10 requests: {statuses:?}")
    });
    let n = calls_for(&m, &tok);
    f.check(n == 1, || {
        format!("{what}: host 1, same token 10 times: {n} introspection calls, expected 1")
    });
    let log = h1.log_since(mark);
    let o = origins(&accepted_for(&log, &sub));
    f.check(
        o.len() == 10 && o[0] == Origin::Verified && o[1..].iter().all(|x| *x != Origin::Verified),
        || format!("{what}: host 1 origins {o:?}"),
    );
    let fl = failure_lines(&log);
    f.check(fl.is_empty(), || {
        format!("{what}: host 1 cache failures {fl:?}")
    });
    inspect(&mut f, &tok, &sub);

    // host 2: same cache, same passphrase (host 1 still running)
    let h2 = Httpd::start(cfg(PASSPHRASE));
    let mark = h2.log_mark();
    for i in 0..3 {
        let r = h2.https("/i/ok").bearer(&tok).send();
        f.expect(&format!("{what}: host 2 #{i}"), &r, 200, None);
    }
    let n = calls_for(&m, &tok);
    f.check(n == 1, || {
        format!(
            "{what}: host 2 (same passphrase): {n} introspection calls in total, expected still 1"
        )
    });
    let o = origins(&accepted_for(&h2.log_since(mark), &sub));
    f.check(o.first() == Some(&Origin::Shared), || {
        format!("{what}: host 2 origins {o:?}, expected the first from the shared cache")
    });
    drop(h2);
    h1.assert_no_child_crash();
    drop(h1);

    // host 3: same cache, another passphrase: the entry cannot be read
    let h3 = Httpd::start(cfg(OTHER_PASSPHRASE));
    let mark = h3.log_mark();
    for i in 0..2 {
        let r = h3.https("/i/ok").bearer(&tok).send();
        f.expect(&format!("{what}: host 3 #{i}"), &r, 200, None);
    }
    let n = calls_for(&m, &tok);
    f.check(n == 2, || {
        format!("{what}: host 3 (other passphrase): {n} introspection calls in total, expected 2")
    });
    let o = origins(&accepted_for(&h3.log_since(mark), &sub));
    f.check(o.first() == Some(&Origin::Verified), || {
        format!("{what}: host 3 origins {o:?}, expected the first verified")
    });
    eprintln!("{what}: introspection calls in total {}", m.count());
    finish(f, &h3);
}

/// What a Redis holds after host 1: hashed keys, encrypted values with a TTL <= 300 s.
fn inspect_redis(r: &Redis) -> impl Fn(&mut Failures, &str, &str) + '_ {
    move |f: &mut Failures, tok: &str, sub: &str| {
        let keys = r.keys();
        f.check(!keys.is_empty(), || "redis: no key stored".into());
        for k in &keys {
            f.check(
                k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()),
                || format!("redis key {k:?} is not 64 hex characters (sha256)"),
            );
            f.check(!k.contains(tok), || {
                format!("redis key {k} contains the token")
            });
            let v = r.get(k).unwrap_or_default();
            f.check(
                find_bytes(&v, tok.as_bytes()).is_none()
                    && find_bytes(&v, sub.as_bytes()).is_none(),
                || {
                    format!(
                        "redis value of {k} shows the token or its sub (not encrypted): {}",
                        String::from_utf8_lossy(&v)
                    )
                },
            );
            let ttl = r.ttl(k);
            f.check(ttl > 0 && ttl <= 300, || format!("redis TTL of {k}: {ttl}"));
        }
    }
}

#[test]
fn redis_with_password_is_shared_by_hosts_and_encrypted() {
    let r = Redis::start(RedisAuth::Password("s3cret-pw".into()));
    let cache = cache_line("redis", &r.cache_options());
    hosts_share("redis requirepass", &cache, &inspect_redis(&r));
}

#[test]
fn redis_with_acl_user_is_shared_by_hosts_and_encrypted() {
    let r = Redis::start(RedisAuth::User("oauth2".into(), "acl-pw-42".into()));
    let cache = cache_line("redis", &r.cache_options());
    hosts_share("redis ACL user", &cache, &inspect_redis(&r));

    // the same password without the username is refused by this server (`default` is off): the
    // module must have sent the username above; here requests still succeed, the failure is logged
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line(
                    "redis",
                    &format!("host=127.0.0.1&port={}&password=acl-pw-42", r.port)
                ),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();
    let mark = h.log_mark();
    let tok = random_id(32);
    for i in 0..2 {
        let resp = h.https("/i/ok").bearer(&tok).send();
        f.expect(&format!("ACL server, no username #{i}"), &resp, 200, None);
    }
    let log = h.wait_log_since(mark, |t| !failure_lines(t).is_empty());
    let fl = failure_lines(&log);
    f.check(fl.len() == 1, || {
        format!("ACL server, no username: failure lines {fl:?}, expected one (AUTH refused)")
    });
    eprintln!("ACL server, no username: {fl:?}");
    finish(f, &h);
}

#[test]
fn memcached_is_shared_by_hosts_and_encrypted() {
    let mc = Memcached::start();
    let cache = cache_line("memcache", &mc.cache_options());
    let inspect = |f: &mut Failures, _tok: &str, _sub: &str| {
        let items = mc.stat("curr_items");
        f.check(items >= 1, || {
            format!("memcached: curr_items {items} after host 1")
        });
    };
    hosts_share("memcached", &cache, &inspect);
    let hits = mc.stat("get_hits");
    assert!(hits >= 1, "memcached get_hits {hits}: host 2 read nothing");
}

// ---------------------------------------------------------------------------------------------
// 2. Prefork: one shared cache for all children
// ---------------------------------------------------------------------------------------------

/// Sends `token` to `path` on a new connection each time until `done(acceptances of user)` or
/// `max` requests; returns the statuses and the acceptances of `user` since `mark`.
fn spread(
    h: &Httpd,
    path: &str,
    token: &str,
    user: &str,
    mark: usize,
    max: usize,
    done: impl Fn(&[Accepted]) -> bool,
) -> (Vec<u16>, Vec<Accepted>) {
    let mut statuses = Vec::new();
    for _ in 0..max {
        statuses.push(h.https(path).bearer(token).send().status);
        let lines = accepted_for(&h.log_since(mark), user);
        if done(&lines) {
            return (statuses, lines);
        }
    }
    let lines = accepted_for(&h.log_since(mark), user);
    (statuses, lines)
}

fn pids(lines: &[Accepted]) -> BTreeSet<u32> {
    lines.iter().map(|a| a.pid).collect()
}

/// Under prefork with several children: a JWT verified in one child is a shared-cache hit in
/// another (implicit shm cache); an introspected token is introspected once whichever child
/// answers; a JWKS is fetched once for all children (`jwks_uri.cache`, implicit shm).
#[test]
fn prefork_children_share_the_shm_cache() {
    let signer = TokenSigner::rsa("pk");
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let jwks = MockServer::json(json!({ "keys": [signer.public_jwk_value()] }));
    let body = [
        oauth2_location("/j", &jwk_verify(&signer, "")),
        oauth2_location("/i", &introspect_line(&m, &Opts::new())),
        oauth2_location(
            "/k",
            &verify_line("jwks_uri", &jwks.url("/jwks"), &Opts::new()),
        ),
    ]
    .concat();
    let h = Httpd::start(
        HttpdConfig::new(body)
            .mpm(Mpm::Prefork)
            .server(prefork_children()),
    );
    let mut f = Failures::new();
    let other_pid_hit = |lines: &[Accepted]| {
        let first = lines.first().map(|a| a.pid);
        lines.len() >= 2 && lines.iter().any(|a| Some(a.pid) != first)
    };

    // JWT (local key): verified in one child, from the shared cache in another
    let mark = h.log_mark();
    let jwt = signer.mint(&claims("pf-jwt"));
    let (st, lines) = spread(&h, "/j/ok", &jwt, "pf-jwt", mark, 40, other_pid_hit);
    f.check(st.iter().all(|s| *s == 200), || {
        format!("JWT statuses {st:?}")
    });
    let ps = pids(&lines);
    f.check(ps.len() >= 2, || {
        format!("JWT: only pids {ps:?} answered {} requests", st.len())
    });
    let verified: Vec<&Accepted> = lines
        .iter()
        .filter(|a| a.origin == Origin::Verified)
        .collect();
    f.check(verified.len() == 1, || {
        format!(
            "JWT: verified {} times (lines {lines:?}), expected once",
            verified.len()
        )
    });
    if let Some(v) = verified.first() {
        for p in ps.iter().filter(|p| **p != v.pid) {
            let first = lines.iter().find(|a| a.pid == *p).map(|a| a.origin);
            f.check(first == Some(Origin::Shared), || {
                format!(
                    "JWT: first acceptance in child {p} (verified in {}) was {first:?}, expected from the shared cache",
                    v.pid
                )
            });
        }
    }
    eprintln!(
        "prefork JWT: {} requests, pids {ps:?}, origins {:?}",
        st.len(),
        origins(&lines)
    );

    // introspection: one call whichever children answer
    let mark = h.log_mark();
    let tok = random_id(32);
    let sub = sub_of(&tok);
    let (st, lines) = spread(&h, "/i/ok", &tok, &sub, mark, 40, |l| {
        pids(l).len() >= 3 || (pids(l).len() >= 2 && l.len() >= 10)
    });
    f.check(st.iter().all(|s| *s == 200), || {
        format!("introspection statuses {st:?}")
    });
    let ps = pids(&lines);
    f.check(ps.len() >= 2, || {
        format!("introspection: only pids {ps:?} answered")
    });
    let n = calls_for(&m, &tok);
    f.check(n == 1, || {
        format!(
            "introspection: {n} calls for one token over {} requests in children {ps:?}, expected 1",
            st.len()
        )
    });
    eprintln!(
        "prefork introspection: {} requests, pids {ps:?}, origins {:?}",
        st.len(),
        origins(&lines)
    );

    // jwks_uri: distinct tokens (no result reuse); the JWKS is fetched once for all children
    let mark = h.log_mark();
    let mut st = Vec::new();
    let mut verified_pids = BTreeSet::new();
    for i in 0..40 {
        let user = format!("pf-k{i}");
        let t = signer.mint(&claims(&user));
        st.push(h.https("/k/ok").bearer(&t).send().status);
        for a in accepted_for(&h.log_since(mark), &user) {
            verified_pids.insert(a.pid);
        }
        if verified_pids.len() >= 2 {
            break;
        }
    }
    f.check(st.iter().all(|s| *s == 200), || {
        format!("jwks_uri statuses {st:?}")
    });
    f.check(verified_pids.len() >= 2, || {
        format!("jwks_uri: only pids {verified_pids:?} answered")
    });
    let fetches = jwks.count();
    f.check(fetches == 1, || {
        format!("jwks_uri: {fetches} JWKS fetches for children {verified_pids:?}, expected 1 (shared via jwks_uri.cache)")
    });
    finish(f, &h);
}

/// Under prefork with a Redis cache: one introspection per token whichever child answers.
#[test]
fn prefork_children_share_a_redis_cache() {
    let r = Redis::start(RedisAuth::Password("pf-pw".into()));
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new())))
            .mpm(Mpm::Prefork)
            .server(format!(
                "{}{}{}",
                prefork_children(),
                cache_line("redis", &r.cache_options()),
                passphrase_line(PASSPHRASE)
            )),
    );
    let mut f = Failures::new();
    for round in 0..2 {
        let mark = h.log_mark();
        let tok = random_id(32);
        let sub = sub_of(&tok);
        let (st, lines) = spread(&h, "/i/ok", &tok, &sub, mark, 40, |l| {
            pids(l).len() >= 3 || (pids(l).len() >= 2 && l.len() >= 10)
        });
        f.check(st.iter().all(|s| *s == 200), || {
            format!("round {round}: statuses {st:?}")
        });
        let ps = pids(&lines);
        f.check(ps.len() >= 2, || {
            format!("round {round}: only pids {ps:?} answered")
        });
        let n = calls_for(&m, &tok);
        f.check(n == 1, || {
            format!(
                "round {round}: {n} introspection calls over {} requests in children {ps:?}, expected 1",
                st.len()
            )
        });
        let shared = lines.iter().filter(|a| a.origin == Origin::Shared).count();
        f.check(ps.len() < 2 || shared >= 1, || {
            format!(
                "round {round}: no shared-cache hit in {:?}",
                origins(&lines)
            )
        });
        eprintln!(
            "prefork redis round {round}: {} requests, pids {ps:?}, origins {:?}",
            st.len(),
            origins(&lines)
        );
    }
    let fl = failure_lines(&h.error_log());
    f.check(fl.is_empty(), || format!("redis failures logged: {fl:?}"));
    f.check(r.dbsize() >= 2, || format!("redis DBSIZE {}", r.dbsize()));
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 3. Lax then strict
// ---------------------------------------------------------------------------------------------

/// A token without `exp` accepted at a location with `verify.exp=optional` is still refused at a
/// location with the default (required), although both use the same cache (the C module accepted
/// it from its cache).
#[test]
fn lax_acceptance_is_not_reused_by_a_strict_verifier() {
    let signer = TokenSigner::ec("ls");
    let body = [
        oauth2_location("/lax", &jwk_verify(&signer, "verify.exp=optional")),
        oauth2_location("/strict", &jwk_verify(&signer, "")),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(cache_line("shm", "")));
    let mut f = Failures::new();
    let no_exp = signer.mint(&without(claims("lax-user"), "exp"));
    for i in 0..2 {
        let r = h.https("/lax/ok").bearer(&no_exp).send();
        f.expect(&format!("no exp at /lax #{i}"), &r, 200, None);
    }
    let r = h.https("/strict/ok").bearer(&no_exp).send();
    f.expect("no exp at /strict after /lax", &r, 401, Some(INVALID_TOKEN));
    let r = h.http("/strict/ok").bearer(&no_exp).send();
    f.expect(
        "no exp at /strict (other vhost) after /lax",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    // and the reverse order
    let other = signer.mint(&without(claims("lax-user2"), "exp"));
    let r = h.https("/strict/ok").bearer(&other).send();
    f.expect("no exp at /strict first", &r, 401, Some(INVALID_TOKEN));
    let r = h.https("/lax/ok").bearer(&other).send();
    f.expect("no exp at /lax after /strict", &r, 200, None);
    // a token with exp is accepted at both
    let good = signer.mint(&claims("lax-user3"));
    f.expect(
        "exp at /lax",
        &h.https("/lax/ok").bearer(&good).send(),
        200,
        None,
    );
    f.expect(
        "exp at /strict",
        &h.https("/strict/ok").bearer(&good).send(),
        200,
        None,
    );
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 4. A cached token after its exp
// ---------------------------------------------------------------------------------------------

#[test]
fn cached_token_is_refused_after_its_exp() {
    let signer = TokenSigner::ec("ex");
    let line = jwk_verify(&signer, "expiry=300");
    let body = [oauth2_location("/e", &line), oauth2_location("/e2", &line)].concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    let exp = now() + 3;
    let tok = signer.mint(&with(claims("short-lived"), json!({ "exp": exp })));
    let mark = h.log_mark();
    f.expect(
        "before exp /e",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e again",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e a third time",
        &h.https("/e/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "before exp /e2",
        &h.https("/e2/ok").bearer(&tok).send(),
        200,
        None,
    );
    let o = origins(&accepted_for(&h.log_since(mark), "short-lived"));
    // Kept in shm first; this process's cache takes the token when it comes back.
    f.check(
        o == [
            Origin::Verified,
            Origin::Shared,
            Origin::Process,
            Origin::Shared,
        ],
        || {
            format!(
                "before exp: origins {o:?}, expected verified, shared cache, process cache, shared cache"
            )
        },
    );
    let after = poll(Duration::from_secs(6), || (now() > exp + 1).then_some(()));
    assert!(after.is_some(), "clock did not pass exp + 1 within 6 s");
    let r = h.https("/e/ok").bearer(&tok).send();
    f.expect(
        "after exp /e (front cache had it)",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.https("/e2/ok").bearer(&tok).send();
    f.expect(
        "after exp /e2 (shared cache had it)",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let r = h.http("/e/ok").bearer(&tok).send();
    f.expect("after exp, other vhost", &r, 401, Some(INVALID_TOKEN));
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 5. Redis going away and coming back
// ---------------------------------------------------------------------------------------------

#[test]
fn redis_failure_never_breaks_authentication() {
    let mut r = Redis::start(RedisAuth::Password("kill-pw".into()));
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("redis", &r.cache_options()),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();
    let bound = Duration::from_secs(2);

    // healthy
    let t0 = random_id(32);
    for i in 0..3 {
        f.expect(
            &format!("redis up #{i}"),
            &h.https("/i/ok").bearer(&t0).send(),
            200,
            None,
        );
    }
    f.check(calls_for(&m, &t0) == 1, || {
        format!("redis up: {} calls", calls_for(&m, &t0))
    });
    f.check(r.dbsize() >= 1, || "redis up: nothing stored".into());

    // killed: every request still succeeds, quickly; one failure line
    r.kill();
    let mark = h.log_mark();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t = random_id(32);
        let t_req = Instant::now();
        let resp = h.https("/i/ok").bearer(&t).send();
        let took = t_req.elapsed();
        slowest = slowest.max(took);
        f.expect(&format!("redis killed, new token #{i}"), &resp, 200, None);
        f.check(took < bound, || {
            format!("redis killed, new token #{i}: took {took:?}")
        });
        f.check(calls_for(&m, &t) == 1, || {
            format!("redis killed, new token #{i}: {} calls", calls_for(&m, &t))
        });
    }
    let r0 = h.https("/i/ok").bearer(&t0).send();
    f.expect("redis killed, token cached before", &r0, 200, None);
    let phase = start.elapsed();
    let log = h.wait_log_since(mark, |t| !failure_lines(t).is_empty());
    let fl = failure_lines(&log);
    f.check(fl.len() == 1, || {
        format!(
            "redis killed: {} failure lines in {phase:?} (expected exactly one): {fl:?}",
            fl.len()
        )
    });
    f.check(fl.iter().all(|l| l.contains("redis")), || {
        format!("failure lines do not name redis: {fl:?}")
    });
    eprintln!("redis killed: 11 requests in {phase:?}, slowest {slowest:?}, failure lines {fl:?}");

    // restarted on the same port: caching resumes (after the module's back-off)
    r.restart();
    let resumed = poll(Duration::from_secs(20), || {
        let t = random_id(32);
        let resp = h.https("/i/ok").bearer(&t).send();
        if resp.status != 200 {
            return Some(Err(format!("after restart: status {}", resp.status)));
        }
        (r.dbsize() >= 1).then_some(Ok(()))
    });
    match resumed {
        Some(Ok(())) => f.pass(),
        Some(Err(e)) => f.fail(e),
        None => f.fail("redis restarted: nothing stored within 20 s"),
    }

    // frozen (SIGSTOP: connections accepted, no answers): bounded by the network timeout
    r.pause();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let t = random_id(32);
        let t_req = Instant::now();
        let resp = h.https("/i/ok").bearer(&t).send();
        let took = t_req.elapsed();
        slowest = slowest.max(took);
        f.expect(&format!("redis frozen, new token #{i}"), &resp, 200, None);
        f.check(took < bound, || {
            format!("redis frozen, new token #{i}: took {took:?}")
        });
    }
    r.resume();
    eprintln!("redis frozen: slowest request {slowest:?}");
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 6. shm limits
// ---------------------------------------------------------------------------------------------

/// Two locations with the same verifier line: /a verifies, /b shows whether the shared entry exists.
fn twin_locations(line: &str) -> String {
    [oauth2_location("/a", line), oauth2_location("/b", line)].concat()
}

/// Spec: `max_key_size=16` is too small for the module's keys, so results are not stored (one
/// cache error logged) and tokens are still accepted. The module currently rounds 16 up to 128
/// (`div_ceil(64) * 64 + 64` in src/cache/config.rs), so its 64-hex-character keys fit and this
/// fails: decide whether the spec or the module changes.
#[test]
fn shm_max_key_size_too_small() {
    let signer = TokenSigner::ec("mk");
    let h = Httpd::start(
        HttpdConfig::new(twin_locations(&jwk_verify(&signer, ""))).server(format!(
            "{}{}",
            single_process(),
            cache_line("shm", "max_key_size=16&key_hash_algo=sha512")
        )),
    );
    let mut f = Failures::new();
    let mark = h.log_mark();
    let tok = signer.mint(&claims("mk-user"));
    f.expect(
        "max_key_size=16 /a",
        &h.https("/a/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "max_key_size=16 /a again",
        &h.https("/a/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        "max_key_size=16 /b",
        &h.https("/b/ok").bearer(&tok).send(),
        200,
        None,
    );
    let log = h.log_since(mark);
    let o = origins(&accepted_for(&log, "mk-user"));
    let fl = failure_lines(&log);
    eprintln!("max_key_size=16: origins {o:?}, cache failures {fl:?}");
    // 16 rounds up to 64 as in the C module; sha512 keys are 128 hex characters: too long -> an error is logged and nothing is shared.
    f.check(!fl.is_empty(), || {
        format!("max_key_size=16: no cache error logged (origins {o:?}); the key fitted")
    });
    f.check(o.get(2) == Some(&Origin::Verified), || {
        format!(
            "max_key_size=16: /b origin {:?}, expected verified (nothing stored)",
            o.get(2)
        )
    });
    finish(f, &h);
}

#[test]
fn shm_max_val_size_too_small() {
    let signer = TokenSigner::ec("mv");
    let h = Httpd::start(
        HttpdConfig::new(twin_locations(&jwk_verify(&signer, ""))).server(format!(
            "{}{}",
            single_process(),
            cache_line("shm", "max_val_size=300")
        )),
    );
    let mut f = Failures::new();

    // control: short claims fit in 300 bytes
    let mark = h.log_mark();
    let short = signer.mint(&claims("mv-short"));
    f.expect(
        "short claims /a",
        &h.https("/a/ok").bearer(&short).send(),
        200,
        None,
    );
    f.expect(
        "short claims /b",
        &h.https("/b/ok").bearer(&short).send(),
        200,
        None,
    );
    let o = origins(&accepted_for(&h.log_since(mark), "mv-short"));
    f.check(o == [Origin::Verified, Origin::Shared], || {
        format!("short claims (fit): origins {o:?}, expected verified then shared")
    });

    // a long claim does not fit: accepted, not stored, one error logged
    let mark = h.log_mark();
    let long = signer.mint(&with(
        claims("mv-long"),
        json!({ "blob": "x".repeat(2000) }),
    ));
    f.expect(
        "long claim /a",
        &h.https("/a/ok").bearer(&long).send(),
        200,
        None,
    );
    f.expect(
        "long claim /a again",
        &h.https("/a/ok").bearer(&long).send(),
        200,
        None,
    );
    f.expect(
        "long claim /b",
        &h.https("/b/ok").bearer(&long).send(),
        200,
        None,
    );
    let log = h.log_since(mark);
    let o = origins(&accepted_for(&log, "mv-long"));
    f.check(
        o == [Origin::Verified, Origin::Process, Origin::Verified],
        || format!("long claim: origins {o:?}, expected verified, process cache, verified"),
    );
    let fl = failure_lines(&log);
    f.check(fl.len() == 1 && fl[0].contains("too long"), || {
        format!("long claim: cache failure lines {fl:?}, expected one `value too long`")
    });
    eprintln!("max_val_size=300: failure lines {fl:?}");
    finish(f, &h);
}

#[test]
fn shm_max_entries_evicts_early_tokens() {
    let signer = TokenSigner::ec("me");
    let h = Httpd::start(
        HttpdConfig::new(twin_locations(&jwk_verify(&signer, ""))).server(format!(
            "{}{}",
            single_process(),
            cache_line("shm", "max_entries=2")
        )),
    );
    let mut f = Failures::new();
    let users: Vec<String> = (1..=5).map(|i| format!("me-{i}")).collect();
    let tokens: Vec<String> = users.iter().map(|u| signer.mint(&claims(u))).collect();
    // One token per clock second: the least recently used entry is then unambiguous (the store's
    // access times have a resolution of one second).
    let mut last_second = 0;
    for (u, t) in users.iter().zip(&tokens) {
        poll(Duration::from_secs(2), || {
            (now() > last_second).then_some(())
        })
        .expect("clock did not advance");
        let mark = h.log_mark();
        f.expect(
            &format!("{u} at /a"),
            &h.https("/a/ok").bearer(t).send(),
            200,
            None,
        );
        // read after the response: the entry was stored at or before this second
        last_second = now();
        let o = origin_since(&h, mark, u);
        f.check(o == Some(Origin::Verified), || format!("{u} at /a: {o:?}"));
    }
    // at /b (own front cache): the two most recent are shared hits, the early ones are gone
    let mut seen = Vec::new();
    for i in [4usize, 3, 0, 1, 2] {
        let mark = h.log_mark();
        let r = h.https("/b/ok").bearer(&tokens[i]).send();
        f.expect(&format!("{} at /b", users[i]), &r, 200, None);
        let o = origin_since(&h, mark, &users[i]);
        seen.push((users[i].clone(), o));
        let want = if i >= 3 {
            Origin::Shared
        } else {
            Origin::Verified
        };
        f.check(o == Some(want), || {
            format!(
                "{} at /b: {o:?}, expected {want:?} (max_entries=2)",
                users[i]
            )
        });
    }
    eprintln!("max_entries=2 at /b: {seen:?}");
    finish(f, &h);
}

/// A keep-alive client sends its token on every request: from the second request on, the
/// connection's memo answers (no hash, no cache lookup). A new connection, another token, or a
/// token bound to another certificate does not get the memo's answer.
#[test]
fn keep_alive_requests_with_the_same_token_use_the_connection_memo() {
    let signer = TokenSigner::rsa("ka");
    let bound_line = format!(
        "{}\n",
        jwk_verify(&signer, "type=mtls&mtls.policy=optional")
    );
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/ka", &bound_line)).server(single_process()),
    );
    let mut f = Failures::new();
    let alice = signer.mint(&claims("ka-alice"));
    let bob = signer.mint(&claims("ka-bob"));
    let bound = signer.mint(&with(
        claims("ka-carol"),
        json!({"cnf": {"x5t#S256": h.pki.thumb(ClientCert::A)}}),
    ));

    let mut run =
        |what: &str, tokens: &[&str], cert, statuses: &[u16], users: &[(&str, &[Origin])]| {
            let mark = h.log_mark();
            let answers = h.keep_alive("/ka/ok", tokens, cert);
            let got: Vec<u16> = answers.iter().map(|a| a.0).collect();
            f.check(got == statuses, || {
                format!("{what}: statuses {got:?}, expected {statuses:?}")
            });
            let opened = answers.iter().filter(|a| a.1).count();
            f.check(opened == 1, || {
                format!("{what}: {opened} connections opened, expected 1")
            });
            let log = h.wait_log_since(mark, |t| {
                users
                    .iter()
                    .all(|(u, want)| accepted_for(t, u).len() >= want.len())
            });
            for (user, want) in users {
                let o = origins(&accepted_for(&log, user));
                f.check(o == *want, || {
                    format!("{what}: {user} {o:?}, expected {want:?}")
                });
            }
        };
    use Origin::*;
    run(
        "same token three times",
        &[&alice, &alice, &alice],
        None,
        &[200, 200, 200],
        &[("ka-alice", &[Verified, Connection, Connection])],
    );
    run(
        "the same token on a new connection",
        &[&alice],
        None,
        &[200],
        // with shm, a result enters this process's cache on its second use from there
        &[("ka-alice", &[Shared])],
    );
    run(
        "tokens changing on one connection",
        &[&bob, &bob, &alice, &bob],
        None,
        &[200, 200, 200, 200],
        &[
            ("ka-bob", &[Verified, Connection, Shared]),
            ("ka-alice", &[Process]),
        ],
    );
    run(
        "a bound token with its certificate",
        &[&bound, &bound],
        Some(ClientCert::A),
        &[200, 200],
        &[("ka-carol", &[Verified, Connection])],
    );
    // The binding is checked on every request, memo or not: another certificate gets nothing.
    run(
        "a bound token with another certificate",
        &[&bound, &bound],
        Some(ClientCert::B),
        &[401, 401],
        &[],
    );
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 7. Graceful restarts
// ---------------------------------------------------------------------------------------------

/// Shared mappings of a process: `/dev/zero (deleted)` or anonymous with the `s` flag and inode 0.
/// Returns (count, total bytes).
fn shared_anon_mappings(pid: u32) -> (usize, u64) {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/maps: {e}"));
    let mut n = 0;
    let mut bytes = 0;
    for l in maps.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let shared = cols[1].ends_with('s');
        let path = cols[5..].join(" ");
        let anon = path.is_empty() && cols[4] == "0";
        if shared && (path.starts_with("/dev/zero") || anon) {
            n += 1;
            if let Some((a, b)) = cols[0].split_once('-') {
                let a = u64::from_str_radix(a, 16).unwrap_or(0);
                let b = u64::from_str_radix(b, 16).unwrap_or(0);
                bytes += b.saturating_sub(a);
            }
        }
    }
    (n, bytes)
}

fn parent_pid(h: &Httpd) -> u32 {
    let text = fs::read_to_string(h.dir.join("httpd.pid")).expect("httpd.pid");
    text.trim().parse().expect("pid in httpd.pid")
}

/// A new token: verified at /a, then a shared hit at /b.
fn shm_round_trip(h: &Httpd, signer: &TokenSigner, f: &mut Failures, when: &str) {
    let user = format!("gr-{}", random_id(6));
    let tok = signer.mint(&claims(&user));
    let mark = h.log_mark();
    f.expect(
        &format!("{when}: /a"),
        &h.https("/a/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        &format!("{when}: /b"),
        &h.https("/b/ok").bearer(&tok).send(),
        200,
        None,
    );
    let log = h.wait_log_since(mark, |t| accepted_for(t, &user).len() >= 2);
    let o = origins(&accepted_for(&log, &user));
    f.check(o == [Origin::Verified, Origin::Shared], || {
        format!("{when}: origins {o:?}, expected verified at /a then shared at /b")
    });
}

#[test]
fn graceful_restarts_keep_shm_usable_and_do_not_leak() {
    let signer = TokenSigner::ec("gr");
    let mut h = Httpd::start(
        HttpdConfig::new(twin_locations(&jwk_verify(&signer, ""))).server(format!(
            "{}{}",
            single_process(),
            cache_line("shm", "max_entries=2000")
        )),
    );
    let mut f = Failures::new();
    shm_round_trip(&h, &signer, &mut f, "before restarts");
    let pid = parent_pid(&h);
    let before = shared_anon_mappings(pid);
    let mut counts = vec![before];
    let old = signer.mint(&claims("gr-old"));
    f.expect(
        "old token before",
        &h.https("/a/ok").bearer(&old).send(),
        200,
        None,
    );
    for i in 1..=3 {
        h.graceful();
        assert_eq!(
            parent_pid(&h),
            pid,
            "the parent changed across a graceful restart"
        );
        shm_round_trip(&h, &signer, &mut f, &format!("after graceful #{i}"));
        let r = h.https("/a/ok").bearer(&old).send();
        f.expect(&format!("old token after graceful #{i}"), &r, 200, None);
        counts.push(shared_anon_mappings(pid));
    }
    let after = *counts.last().unwrap();
    eprintln!("parent {pid}: shared anonymous mappings (count, bytes) per generation: {counts:?}");
    f.check(after.0 <= before.0, || {
        format!(
            "shared mappings of the parent grew over 3 graceful restarts: {counts:?} (count, bytes)"
        )
    });
    finish(f, &h);
}

// ---------------------------------------------------------------------------------------------
// 8. file cache
// ---------------------------------------------------------------------------------------------

/// A directory the httpd children (www-data when root) own; removed on drop.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new() -> CacheDir {
        let d = std::env::temp_dir().join(format!(
            "mod_oauth2-it-filecache-{}-{}",
            std::process::id(),
            random_id(6)
        ));
        fs::create_dir_all(&d).unwrap();
        if let Some((uid, gid)) = www_data_ids() {
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
        }
        CacheDir(d)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("oauth2-cache-"))
            .collect();
        v.sort();
        v
    }

    fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn www_data_ids() -> Option<(u32, u32)> {
    let running_as_root = fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        == "0";
    if !running_as_root {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let l = passwd.lines().find(|l| l.starts_with("www-data:"))?;
    let cols: Vec<&str> = l.split(':').collect();
    Some((cols.get(2)?.parse().ok()?, cols.get(3)?.parse().ok()?))
}

fn new_entry(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|n| !before.contains(n))
        .cloned()
        .collect()
}

fn check_entry_file(f: &mut Failures, dir: &Path, name: &str, tok: &str, sub: &str) {
    let hex = name.strip_prefix("oauth2-cache-").unwrap_or("");
    f.check(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        || format!("file cache entry name {name:?} is not oauth2-cache-<64 hex>"),
    );
    f.check(!name.contains(tok), || {
        format!("file name {name} contains the token")
    });
    let content = fs::read(dir.join(name)).unwrap_or_default();
    f.check(
        find_bytes(&content, tok.as_bytes()).is_none()
            && find_bytes(&content, sub.as_bytes()).is_none(),
        || format!("file {name} shows the token or its sub (not encrypted)"),
    );
}

#[test]
fn file_cache_entries_are_opaque_and_expired_ones_are_swept() {
    let dir = CacheDir::new();
    let table: Table = Arc::default();
    let m = introspection_server(table.clone());
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("file", &format!("dir={}&clean_interval=1", dir.0.display())),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();

    // a live entry (exp in 300 s)
    let live = random_id(32);
    let e0 = dir.entries();
    for i in 0..3 {
        f.expect(
            &format!("live token #{i}"),
            &h.https("/i/ok").bearer(&live).send(),
            200,
            None,
        );
    }
    f.check(calls_for(&m, &live) == 1, || {
        format!("live token: {} calls", calls_for(&m, &live))
    });
    let e1 = dir.entries();
    let live_files = new_entry(&e0, &e1);
    f.check(live_files.len() == 1, || {
        format!("live token: new files {live_files:?}")
    });
    for n in &live_files {
        check_entry_file(&mut f, &dir.0, n, &live, &sub_of(&live));
    }

    // a short-lived entry (exp in 2 s)
    let short = random_id(32);
    let exp = now() + 2;
    table.lock().unwrap().push((
        short.clone(),
        json!({ "active": true, "sub": sub_of(&short), "exp": exp }),
    ));
    f.expect(
        "short-lived token",
        &h.https("/i/ok").bearer(&short).send(),
        200,
        None,
    );
    let e2 = dir.entries();
    let short_files = new_entry(&e1, &e2);
    f.check(short_files.len() == 1, || {
        format!("short-lived token: new files {short_files:?}")
    });
    for n in &short_files {
        check_entry_file(&mut f, &dir.0, n, &short, &sub_of(&short));
    }
    eprintln!("file cache after two tokens: {:?}", dir.all());

    // after its exp and the clean interval, a request with another token (another key) triggers
    // the sweep: the expired file goes, the live one stays
    poll(Duration::from_secs(6), || (now() > exp + 1).then_some(())).expect("clock");
    let swept = poll(Duration::from_secs(8), || {
        let t = random_id(32);
        let st = h.https("/i/ok").bearer(&t).send().status;
        let gone = short_files.iter().all(|n| !dir.path(n).exists());
        (st != 200 || gone).then_some(st)
    });
    match swept {
        Some(200) => f.pass(),
        Some(st) => f.fail(format!("sweep trigger request: status {st}")),
        None => f.fail(format!(
            "expired entry {short_files:?} still there 8 s after exp + 1: {:?}",
            dir.all()
        )),
    }
    for n in &live_files {
        f.check(dir.path(n).exists(), || {
            format!("live entry {n} was removed by the sweep: {:?}", dir.all())
        });
    }
    // another host using the same directory (and passphrase) reads the live entry
    let h2 = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("file", &format!("dir={}&clean_interval=1", dir.0.display())),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mark = h2.log_mark();
    f.expect(
        "live token on host 2",
        &h2.https("/i/ok").bearer(&live).send(),
        200,
        None,
    );
    let o = origin_since(&h2, mark, &sub_of(&live));
    f.check(o == Some(Origin::Shared), || {
        format!("live token on host 2 (same dir): {o:?}, expected from the shared cache")
    });
    f.check(calls_for(&m, &live) == 1, || {
        format!("live token: {} calls after host 2", calls_for(&m, &live))
    });
    h2.assert_no_child_crash();
    drop(h2);
    // nothing in the directory carries a token
    for name in dir.all() {
        for t in [&live, &short] {
            f.check(!name.contains(t.as_str()), || {
                format!("{name} contains a token")
            });
        }
    }
    eprintln!("file cache at the end: {:?}", dir.all());
    finish(f, &h);
}
