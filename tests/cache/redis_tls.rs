//! Redis over TLS (`OAuth2Cache redis ...&tls=on`) against a real `redis-server` with a TLS port
//! and a generated PKI: entries stored and read back through TLS on one reused connection, the
//! server certificate checked (CA, name) unless `ssl_verify=off`, client certificates, a frozen
//! server, and the configuration errors `apache2 -t` reports.

use super::common::remote::*;
use super::common::servers::*;
use super::common::*;
use super::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One cache line of a table: a location uses only it; `expect_failure` is a part of the
/// cache-failure line that must be logged for it (then nothing may be stored).
struct Row {
    name: &'static str,
    options: String,
    expect_stored: bool,
    expect_failure: Option<&'static str>,
}

/// `host`, the TLS port, `tls=on`, the password, then `extra` (no `ca_file` unless given there).
fn tls_options(r: &Redis, host: &str, extra: &str) -> String {
    let port = r.tls.as_ref().expect("TLS redis").port;
    let RedisAuth::Password(pw) = &r.auth else {
        panic!("these tests use a password")
    };
    format!("host={host}&port={port}&tls=on&password={pw}{extra}")
}

fn ca_of(r: &Redis) -> PathBuf {
    r.tls.as_ref().expect("TLS redis").pki.ca_cert.clone()
}

fn file_opt(name: &str, p: &Path) -> String {
    format!("&{name}={}", p.display())
}

/// One httpd with a named cache and a location per row; each row's location gets a new token in
/// turn: the request always succeeds (a broken cache never breaks authentication), and the
/// server's key count and the error log show whether the entry went through TLS.
fn check_rows(r: &Redis, rows: &[Row]) {
    let m = introspection_server(Table::default());
    let mut server = format!("{}{}", single_process(), passphrase_line(PASSPHRASE));
    let mut body = String::new();
    for row in rows {
        server.push_str(&cache_line(
            "redis",
            &format!("name={}&{}", row.name, row.options),
        ));
        body.push_str(&oauth2_location(
            &format!("/{}", row.name),
            &introspect_line(&m, &Opts::new().kv("verify.cache", row.name)),
        ));
    }
    let h = Httpd::start(HttpdConfig::new(body).server(server));
    let mut f = Failures::new();
    for row in rows {
        let before = r.dbsize();
        let mark = h.log_mark();
        let tok = random_id(32);
        let t = Instant::now();
        let resp = h.https(&format!("/{}/ok", row.name)).bearer(&tok).send();
        let took = t.elapsed();
        f.expect(row.name, &resp, 200, None);
        f.check(took < Duration::from_secs(2), || {
            format!("{}: took {took:?}", row.name)
        });
        let stored = r.dbsize() - before;
        f.check(stored == i64::from(row.expect_stored), || {
            format!(
                "{}: {stored} entries stored, expected {}",
                row.name,
                i64::from(row.expect_stored)
            )
        });
        let tag = format!("redis cache \"{}\"", row.name);
        let log = match row.expect_failure {
            Some(_) => {
                h.wait_log_since(mark, |l| failure_lines(l).iter().any(|x| x.contains(&tag)))
            }
            None => h.log_since(mark),
        };
        let lines: Vec<String> = failure_lines(&log)
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect();
        match row.expect_failure {
            None => f.check(lines.is_empty(), || {
                format!("{}: unexpected cache failure {lines:?}", row.name)
            }),
            Some(reason) => f.check(
                lines.len() == 1 && lines[0].contains(reason) && lines[0].contains("(TLS)"),
                || {
                    format!(
                        "{}: failure lines {lines:?}, expected one with {reason:?}",
                        row.name
                    )
                },
            ),
        }
        if !lines.is_empty() {
            eprintln!("{}: {}", row.name, lines[0]);
        }
    }
    finish(f, &h);
}

#[test]
fn redis_over_tls_stores_reads_back_and_reuses_one_connection() {
    let r = Redis::start_tls(RedisAuth::Password("tls-pw".into()), TlsClients::NotAsked);
    let tls_port = r.tls.as_ref().unwrap().port;
    let m = introspection_server(Table::default());
    let line = introspect_line(&m, &Opts::new());
    let options = tls_options(&r, "localhost", &file_opt("ca_file", &ca_of(&r)));
    let h = Httpd::start(HttpdConfig::new(twin_locations(&line)).server(format!(
        "{}{}{}",
        single_process(),
        cache_line("redis", &options),
        passphrase_line(PASSPHRASE)
    )));
    let mut f = Failures::new();

    // set through TLS: /a verifies and stores
    let tok = random_id(32);
    let sub = sub_of(&tok);
    f.expect("/a", &h.https("/a/ok").bearer(&tok).send(), 200, None);
    f.check(r.dbsize() == 1, || {
        format!("{} entries after the first token, expected 1", r.dbsize())
    });
    // get through TLS: /b (same verifier, its own front cache) finds the entry in Redis
    let mark = h.log_mark();
    f.expect("/b", &h.https("/b/ok").bearer(&tok).send(), 200, None);
    let origin = origin_since(&h, mark, &sub);
    f.check(origin == Some(Origin::Shared), || {
        format!("/b: origin {origin:?}, expected the shared cache")
    });
    f.check(calls_for(&m, &tok) == 1, || {
        format!("{} introspection calls, expected 1", calls_for(&m, &tok))
    });

    // one TLS connection, kept: 10 more tokens (a get and a set each) open no other
    let first = r.client_ids_on(tls_port);
    f.check(first.len() == 1, || {
        format!("TLS connections after two requests: {first:?}, expected one")
    });
    for i in 0..10 {
        let t = random_id(32);
        f.expect(
            &format!("token #{i}"),
            &h.https("/a/ok").bearer(&t).send(),
            200,
            None,
        );
    }
    let later = r.client_ids_on(tls_port);
    f.check(later == first, || {
        format!("TLS connections after 12 requests: {later:?}, expected the same one {first:?}")
    });
    f.check(r.dbsize() == 11, || {
        format!("{} entries after 11 tokens, expected 11", r.dbsize())
    });
    let fl = failure_lines(&h.error_log());
    f.check(fl.is_empty(), || format!("cache failures {fl:?}"));

    // frozen server: a TLS connection is bounded by the network timeout like a plain one
    r.pause();
    let t = Instant::now();
    let resp = h.https("/a/ok").bearer(&random_id(32)).send();
    let took = t.elapsed();
    r.resume();
    f.expect("redis frozen", &resp, 200, None);
    f.check(took < Duration::from_secs(2), || {
        format!("redis frozen: took {took:?}")
    });
    eprintln!("redis over TLS: connection ids {later:?}, frozen request {took:?}");
    finish(f, &h);
}

#[test]
fn redis_server_certificate_is_verified_unless_ssl_verify_is_off() {
    let r = Redis::start_tls(RedisAuth::Password("tls-pw".into()), TlsClients::NotAsked);
    let other = Pki::new(&r.dir.join("other-pki"));
    let ca = file_opt("ca_file", &ca_of(&r));
    let wrong_ca = file_opt("ca_file", &other.ca_cert);
    let plain_to_tls_port = {
        let port = r.tls.as_ref().unwrap().port;
        format!("host=localhost&port={port}&password=tls-pw")
    };
    check_rows(
        &r,
        &[
            Row {
                name: "by_name",
                options: tls_options(&r, "localhost", &ca),
                expect_stored: true,
                expect_failure: None,
            },
            Row {
                name: "by_ip",
                options: tls_options(&r, "127.0.0.1", &ca),
                expect_stored: true,
                expect_failure: None,
            },
            Row {
                name: "wrong_ca",
                options: tls_options(&r, "localhost", &wrong_ca),
                expect_stored: false,
                expect_failure: Some("server certificate not accepted"),
            },
            Row {
                name: "system_store",
                options: tls_options(&r, "localhost", ""),
                expect_stored: false,
                expect_failure: Some("server certificate not accepted"),
            },
            Row {
                name: "wrong_name",
                options: tls_options(&r, "127.0.0.2", &ca),
                expect_stored: false,
                expect_failure: Some("server certificate not accepted"),
            },
            Row {
                name: "wrong_ca_unverified",
                options: tls_options(&r, "localhost", &format!("{wrong_ca}&ssl_verify=off")),
                expect_stored: true,
                expect_failure: None,
            },
            Row {
                name: "wrong_name_unverified",
                options: tls_options(&r, "127.0.0.2", &format!("{ca}&ssl_verify=false")),
                expect_stored: true,
                expect_failure: None,
            },
        ],
    );
    // Plain RESP to the TLS port does not work (so the rows above really spoke TLS).
    let m = introspection_server(Table::default());
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/p", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("redis", &plain_to_tls_port),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();
    let before = r.dbsize();
    let mark = h.log_mark();
    f.expect(
        "plain to the TLS port",
        &h.https("/p/ok").bearer(&random_id(32)).send(),
        200,
        None,
    );
    f.check(r.dbsize() == before, || {
        "plain to the TLS port: stored".into()
    });
    let log = h.wait_log_since(mark, |l| !failure_lines(l).is_empty());
    f.check(failure_lines(&log).len() == 1, || {
        format!(
            "plain to the TLS port: failure lines {:?}",
            failure_lines(&log)
        )
    });
    finish(f, &h);
}

#[test]
fn redis_client_certificate_when_the_server_requires_one() {
    let r = Redis::start_tls(RedisAuth::Password("tls-pw".into()), TlsClients::RequireA);
    let pki = r.tls.as_ref().unwrap().pki.clone();
    let ca = file_opt("ca_file", &pki.ca_cert);
    let with =
        |cert: &Path, key: &Path| format!("{ca}{}{}", file_opt("cert", cert), file_opt("key", key));
    check_rows(
        &r,
        &[
            Row {
                name: "cert_a",
                options: tls_options(
                    &r,
                    "localhost",
                    &with(&pki.client_a_cert, &pki.client_a_key),
                ),
                expect_stored: true,
                expect_failure: None,
            },
            Row {
                name: "no_cert",
                options: tls_options(&r, "localhost", &ca),
                expect_stored: false,
                // The server's alert or its reset, during or right after the handshake.
                expect_failure: Some("(TLS)"),
            },
            Row {
                name: "untrusted_cert_b",
                options: tls_options(
                    &r,
                    "localhost",
                    &with(&pki.client_b_cert, &pki.client_b_key),
                ),
                expect_stored: false,
                expect_failure: Some("(TLS)"),
            },
        ],
    );
}

#[test]
fn redis_tls_configuration_errors() {
    let dir = std::env::temp_dir().join(format!("mod_oauth2-it-redis-tls-conf-{}", random_id(12)));
    let pki = Pki::new(&dir);
    let signer = TokenSigner::ec("k");
    let (a_cert, a_key) = (
        file_opt("cert", &pki.client_a_cert),
        file_opt("key", &pki.client_a_key),
    );
    // The key of client A, encrypted: refused at once, not asked for on the terminal.
    let encrypted_key = dir.join("client-a-encrypted.key");
    let a_pkey =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&pki.client_a_key).unwrap())
            .unwrap();
    std::fs::write(
        &encrypted_key,
        a_pkey
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .unwrap(),
    )
    .unwrap();
    let rows: Vec<(&str, &str, String, &str)> = vec![
        (
            "encrypted key",
            "redis",
            format!("tls=on{a_cert}{}", file_opt("key", &encrypted_key)),
            "not an unencrypted PEM private key",
        ),
        (
            "cert without key",
            "redis",
            format!("tls=on{a_cert}"),
            "cert= needs key=",
        ),
        (
            "key without cert",
            "redis",
            format!("tls=on{a_key}"),
            "key= needs cert=",
        ),
        (
            "unreadable ca_file",
            "redis",
            "tls=on&ca_file=/nonexistent/redis-ca.pem".into(),
            "ca_file=/nonexistent/redis-ca.pem: cannot read this file",
        ),
        (
            "ca_file without a certificate",
            "redis",
            format!("tls=on{}", file_opt("ca_file", &pki.client_a_key)),
            "contains no PEM certificate",
        ),
        (
            "key of another certificate",
            "redis",
            format!("tls=on{a_cert}{}", file_opt("key", &pki.client_b_key)),
            "is not the private key of cert=",
        ),
        (
            "tls not a switch",
            "redis",
            "tls=maybe".into(),
            "write tls=on or tls=off",
        ),
        (
            "ssl_verify not a switch",
            "redis",
            "tls=on&ssl_verify=ture".into(),
            "write ssl_verify=on or ssl_verify=off",
        ),
        (
            "TLS option without tls=on",
            "redis",
            file_opt("ca_file", &pki.ca_cert)
                .trim_start_matches('&')
                .to_string(),
            "add tls=on",
        ),
        (
            "tls on memcache",
            "memcache",
            "tls=on".into(),
            "redis cache only",
        ),
    ];
    let mut f = Failures::new();
    for (what, kind, options, expect) in &rows {
        let ct = Httpd::config_test(
            HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, "")))
                .server(cache_line(kind, options) + &passphrase_line(PASSPHRASE)),
        );
        match ct.syntax_error(&format!("OAuth2Cache {kind}")) {
            Ok(msg) => f.check(msg.contains(expect), || {
                format!("{what}: message {msg:?}, expected it to contain {expect:?}")
            }),
            Err(e) => f.fail(format!("{what}: {e}")),
        }
    }
    // A complete client certificate configuration passes.
    let ct = Httpd::config_test(
        HttpdConfig::new(oauth2_location("/a", &jwk_verify(&signer, ""))).server(
            cache_line(
                "redis",
                &format!("tls=on{}{a_cert}{a_key}", file_opt("ca_file", &pki.ca_cert)),
            ) + &passphrase_line(PASSPHRASE),
        ),
    );
    f.check(ct.ok, || {
        format!("a valid TLS line refused:\n{}", ct.output)
    });
    let _ = std::fs::remove_dir_all(&dir);
    f.assert_none();
}
