//! Prefork: one shared cache for all children (shm and redis).

use super::common::remote::*;
use super::common::servers::*;
use super::common::*;
use super::support::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

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

/// A new opaque token sent to `/i/ok` until at least two children answered (three, or two over ten
/// requests): checks that every answer was 200, that two children or more answered, and that the
/// introspection server `m` was asked once. Returns the statuses, the acceptances and their pids.
fn introspect_once_across_children(
    f: &mut Failures,
    h: &Httpd,
    m: &MockServer,
    what: &str,
) -> (Vec<u16>, Vec<Accepted>, BTreeSet<u32>) {
    let mark = h.log_mark();
    let tok = random_id(32);
    let sub = sub_of(&tok);
    let (st, lines) = spread(h, "/i/ok", &tok, &sub, mark, 40, |l| {
        pids(l).len() >= 3 || (pids(l).len() >= 2 && l.len() >= 10)
    });
    f.check(st.iter().all(|s| *s == 200), || {
        format!("{what}: statuses {st:?}")
    });
    let ps = pids(&lines);
    f.check(ps.len() >= 2, || {
        format!("{what}: only pids {ps:?} answered")
    });
    let n = calls_for(m, &tok);
    f.check(n == 1, || {
        format!(
            "{what}: {n} introspection calls for one token over {} requests in children {ps:?}, expected 1",
            st.len()
        )
    });
    (st, lines, ps)
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
        verify_location("/k", "jwks_uri", &jwks.url("/jwks"), &Opts::new()),
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
    let (st, lines, ps) = introspect_once_across_children(&mut f, &h, &m, "introspection");
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
        let (st, lines, ps) =
            introspect_once_across_children(&mut f, &h, &m, &format!("round {round}"));
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
