//! Configuration errors and name resolution: unknown cache types and names, which cache a
//! verifier uses when none or several are named.

use super::common::remote::*;
use super::common::*;
use super::support::*;
use serde_json::json;
use std::sync::Arc;

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

    // Two lines of one name (as two virtual hosts might each write): the second is warned about.
    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, ""))).server(
            cache_line("shm", "name=twice") + &cache_line("shm", "name=twice&max_entries=5"),
        ),
    );
    f.check(
        ct.ok
            && ct
                .output
                .contains("name=twice is already the name of an earlier shm cache"),
        || {
            format!(
                "a second OAuth2Cache name=twice: ok={} output:\n{}",
                ct.ok, ct.output
            )
        },
    );

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
