//! Network caches (redis with a password or an ACL user, memcached) shared by two hosts, and what
//! is stored there: encrypted entries under keys that do not reveal the token.

use super::common::remote::*;
use super::common::servers::*;
use super::common::*;
use super::support::*;
use std::sync::Arc;

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
