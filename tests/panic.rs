//! A panic inside the module, in a real httpd: every `extern "C"` entry of `src/entry.rs` wraps
//! its body in `catch_unwind`, so a panic must become a logged 500 (per request) or a
//! configuration error (directives, configuration hooks), never an unwind into C (which aborts
//! the process), and the worker that caught it must go on serving.
//!
//! The panics are made on demand by the module built with the test-only Cargo feature
//! `panic-probe` (src/panic_probe.rs): a request header `X-OAuth2-Test-Panic: <entry>` for the
//! per-request entries, the environment variable `OAUTH2_TEST_PANIC=<entry>` for the others. This
//! test builds that variant itself (`cargo build --features panic-probe` into
//! `target/panic-probe/`, apart from the module the other tests load), or loads
//! `$OAUTH2_PANIC_MODULE`; it is skipped, saying why, only when the variant cannot be built.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const HEADER: &str = "X-OAuth2-Test-Panic";

/// The `panic-probe` build of the module, built once per test binary; `None` (with the reason
/// printed) when it cannot be built.
fn variant() -> Option<&'static Path> {
    static VARIANT: OnceLock<Option<PathBuf>> = OnceLock::new();
    VARIANT
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("OAUTH2_PANIC_MODULE") {
                let p = PathBuf::from(p);
                assert!(
                    p.is_file(),
                    "OAUTH2_PANIC_MODULE={} is no file",
                    p.display()
                );
                return Some(p);
            }
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let target = root.join("target").join("panic-probe");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(&cargo)
                .args(["build", "--features", "panic-probe", "--target-dir"])
                .arg(&target)
                .current_dir(root)
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => Some(target.join("debug/libmod_oauth2.so")),
                Ok(o) => {
                    eprintln!(
                        "SKIPPED: `{cargo} build --features panic-probe` failed ({}):\n{}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    );
                    None
                }
                Err(e) => {
                    eprintln!("SKIPPED: cannot run `{cargo}` to build the panic-probe module: {e}");
                    None
                }
            }
        })
        .as_deref()
}

/// A configuration that loads the `panic-probe` module (the harness's own LoadModule is off).
fn probe_config(module: &Path, body: String) -> HttpdConfig {
    let mut cfg = HttpdConfig::new(body).without_oauth2();
    cfg.server = format!("LoadModule oauth2_module {}\n", module.display());
    cfg.log_level = Some("info ssl:warn oauth2:debug".into());
    cfg
}

/// `/p`: any valid token; `/c`: a token with `sub` joe (`Require oauth2_claim`); `/q/ok`: a
/// location nested in `/q` (as `/p`) with its own `OAuth2TargetPass` (a per-request merge of two
/// configurations); the RFC 9728 document at `/.well-known/oauth-protected-resource`.
fn body(jwk: &str) -> String {
    let verify = format!("OAuth2TokenVerify jwk {jwk}");
    format!(
        "{}<Location /c>\nAuthType oauth2\n{verify}\nRequire oauth2_claim sub:joe\n</Location>\n\
         {}<Location /q/ok>\nOAuth2TargetPass prefix=X_\n</Location>\n\
         OAuth2ResourceMetadata https://localhost/\n\
         <Location /metrics>\nSetHandler oauth2-metrics\n</Location>\n",
        oauth2_location("/p", &verify),
        oauth2_location("/q", &verify)
    )
}

/// One named check of a table test.
fn check(f: &mut Failures, what: &str, ok: bool, msg: impl FnOnce() -> String) {
    f.check(ok, || format!("{what}: {}", msg()));
}

/// Process ids in the access log's last field, per line.
fn pids(access_log: &str) -> Vec<String> {
    access_log
        .lines()
        .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
        .collect()
}

/// Lines of a child that died or a panic that escaped (not caught by `catch_unwind`).
fn crash_lines(error_log: &str) -> Vec<&str> {
    error_log
        .lines()
        .filter(|l| {
            l.contains("exit signal")
                || l.contains("Segmentation fault")
                || l.contains("AH00052")
                || l.contains("core dumped")
                || l.contains("panic in a function that cannot unwind")
        })
        .collect()
}

/// Per-request entries (check_authn, fixups, Require oauth2_claim, the RFC 9728 document): a 500 with the entry's log
/// line, then the very same process (prefork, one child, one thread) answers the next request
/// normally; no child ever dies.
#[test]
fn per_request_panics_answer_500_and_the_worker_serves_on() {
    let Some(module) = variant() else { return };
    let signer = TokenSigner::rsa("one");
    let mut cfg = probe_config(module, body(&signer.jwk_arg())).mpm(Mpm::Prefork);
    // One child with one thread: every request is served by the same worker.
    cfg.server
        .push_str("StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n");
    let h = Httpd::start(cfg);
    let token = signer.mint(&claims("joe"));
    let mut f = Failures::new();

    struct Case<'a> {
        entry: &'a str,
        path: &'a str,
        /// The line the entry's `catch_unwind` logs.
        expect_log: &'a str,
    }
    let cases = [
        Case {
            entry: "check_authn",
            path: "/p/ok",
            expect_log: "oauth2: internal error (panic) while authenticating; answering 500",
        },
        Case {
            entry: "fixups",
            path: "/p/ok",
            expect_log: "oauth2: internal error (panic) while scrubbing request headers; answering 500",
        },
        Case {
            entry: "authz_claim",
            path: "/c/ok",
            expect_log: "oauth2: internal error (panic) in Require oauth2_claim; answering 500",
        },
        Case {
            entry: "resource_metadata",
            path: "/.well-known/oauth-protected-resource",
            expect_log: "oauth2: internal error (panic) while answering the resource metadata; answering 500",
        },
        Case {
            entry: "metrics_text",
            path: "/metrics",
            expect_log: "oauth2: internal error (panic) while rendering the metrics",
        },
    ];
    // Before any panic: the worker serves; its pid is the one every later request must show.
    assert_200(&h.https("/p/ok").bearer(&token).send(), "before the panics");
    let first_pid = pids(&h.access_log()).pop().expect("access log line");
    for round in 0..2 {
        for c in &cases {
            let name = format!("{} (round {round})", c.entry);
            let mark = h.log_mark();
            let r = h
                .https(c.path)
                .bearer(&token)
                .header(&format!("{HEADER}: {}", c.entry))
                .send();
            check(&mut f, &format!("{name}: 500"), r.status == 500, || {
                format!("status {}", r.status)
            });
            let log = h.wait_log_since(mark, |l| l.contains(c.expect_log));
            check(
                &mut f,
                &format!("{name}: logged"),
                log.contains(c.expect_log),
                || format!("no `{}` in:\n{log}", c.expect_log),
            );
            check(
                &mut f,
                &format!("{name}: the panic itself reached the log"),
                log.contains(&format!("panic-probe: {HEADER}: {}", c.entry)),
                || log.clone(),
            );
            let next = h.https(c.path).bearer(&token).send();
            check(
                &mut f,
                &format!("{name}: next request 200"),
                next.status == 200,
                || format!("status {}", next.status),
            );
            // Another entry's name in the header does not trip this one.
            let other = h
                .https(c.path)
                .bearer(&token)
                .header(&format!("{HEADER}: dir_merge"))
                .send();
            check(
                &mut f,
                &format!("{name}: other entry's name 200"),
                other.status == 200,
                || format!("status {}", other.status),
            );
        }
    }
    // A per-request merge (nested location) under the probe header is served too.
    let nested = h.https("/q/ok").bearer(&token).send();
    check(&mut f, "nested location 200", nested.status == 200, || {
        format!("status {}", nested.status)
    });
    let access = h.access_log();
    let all = pids(&access);
    check(
        &mut f,
        "every request served by the first worker",
        all.len() > 2 * cases.len() * 3 && all.iter().all(|p| *p == first_pid),
        || format!("pids {all:?}, first {first_pid}:\n{access}"),
    );
    let log = h.error_log();
    let crashes = crash_lines(&log);
    check(&mut f, "no child died", crashes.is_empty(), || {
        format!("{crashes:?}")
    });
    f.assert_none();
}

/// The same under the event MPM (threads): after each panic the process keeps serving, also
/// concurrent requests, and no child dies.
#[test]
fn per_request_panics_under_event_mpm() {
    let Some(module) = variant() else { return };
    let signer = TokenSigner::rsa("one");
    let mut cfg = probe_config(module, body(&signer.jwk_arg()));
    cfg.server
        .push_str("StartServers 1\nServerLimit 1\nMaxRequestWorkers 8\n");
    let h = Httpd::start(cfg);
    let token = signer.mint(&claims("joe"));
    let mut f = Failures::new();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let (h, token) = (&h, &token);
                s.spawn(move || {
                    let mut statuses = vec![];
                    for n in 0..6 {
                        let (path, entry) = [
                            ("/p/ok", "check_authn"),
                            ("/p/ok", "fixups"),
                            ("/c/ok", "authz_claim"),
                            ("/metrics", "metrics_text"),
                        ][(i + n) % 4];
                        let bad = h
                            .https(path)
                            .bearer(token)
                            .header(&format!("{HEADER}: {entry}"))
                            .send();
                        let good = h.https(path).bearer(token).send();
                        statuses.push((entry, bad.status, good.status));
                    }
                    statuses
                })
            })
            .collect();
        for w in workers {
            for (entry, bad, good) in w.join().expect("client thread") {
                check(
                    &mut f,
                    &format!("{entry}: 500 then 200"),
                    (bad, good) == (500, 200),
                    || format!("got {bad} then {good}"),
                );
            }
        }
    });
    let access = h.access_log();
    let mut distinct = pids(&access);
    distinct.sort();
    distinct.dedup();
    check(
        &mut f,
        "one process served all",
        distinct.len() == 1,
        || format!("pids {distinct:?}"),
    );
    let log = h.error_log();
    let crashes = crash_lines(&log);
    check(&mut f, "no child died", crashes.is_empty(), || {
        format!("{crashes:?}")
    });
    f.assert_none();
}

/// `apache2 -f <conf>` with `OAUTH2_TEST_PANIC=<entry>`, bounded: (exit success, stdout+stderr).
fn apache_with_panic(conf: &Path, args: &[&str], entry: &str) -> (bool, String) {
    let dir = conf.parent().unwrap();
    let (so, se) = (
        dir.join(format!("{entry}.out")),
        dir.join(format!("{entry}.err")),
    );
    let mut child =
        Command::new(std::env::var("APACHE2_BIN").unwrap_or("/usr/sbin/apache2".into()))
            .arg("-f")
            .arg(conf)
            .args(args)
            .env("OAUTH2_TEST_PANIC", entry)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&so).unwrap())
            .stderr(fs::File::create(&se).unwrap())
            .spawn()
            .expect("spawn apache2");
    let status = poll(Duration::from_secs(30), || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("apache2 {args:?} with OAUTH2_TEST_PANIC={entry} did not exit within 30 s");
    };
    let text = format!(
        "{}{}{}",
        fs::read_to_string(&so).unwrap_or_default(),
        fs::read_to_string(&se).unwrap_or_default(),
        fs::read_to_string(dir.join("error_log")).unwrap_or_default()
    );
    assert!(
        status.code().is_some(),
        "apache2 {args:?} with OAUTH2_TEST_PANIC={entry} was killed by a signal ({status}):\n{text}"
    );
    (status.success(), text)
}

/// Directive and configuration entries: `apache2 -t` reports the panic as the directive's syntax
/// error (`OAuth2TokenVerify`, `Require oauth2_claim`) or as a failed configuration check; a
/// start whose post_config hook panics fails with its message, never a signal.
#[test]
fn configuration_panics_are_configuration_errors() {
    let Some(module) = variant() else { return };
    let signer = TokenSigner::rsa("one");
    let t = Httpd::config_test(probe_config(module, body(&signer.jwk_arg())));
    assert!(t.ok, "the configuration itself is valid:\n{}", t.output);
    let mut f = Failures::new();

    struct Case<'a> {
        entry: &'a str,
        /// The line whose syntax error it is, or None for an error of the whole configuration.
        line: Option<&'a str>,
        expect: &'a str,
    }
    for c in [
        Case {
            entry: "cmd",
            line: Some("OAuth2TokenVerify"),
            expect: "internal error (panic) while parsing this line",
        },
        Case {
            entry: "authz_parse",
            line: Some("Require oauth2_claim"),
            expect: "Require oauth2_claim: internal error (panic) while parsing",
        },
        Case {
            entry: "check_config",
            line: None,
            expect: "mod_oauth2: internal error (panic) while checking the configuration",
        },
    ] {
        let (ok, out) = apache_with_panic(&t.conf, &["-t"], c.entry);
        check(
            &mut f,
            &format!("{}: apache2 -t fails", c.entry),
            !ok,
            || out.clone(),
        );
        let expect = match c.line {
            Some(needle) => format!(
                "AH00526: Syntax error on line {} of {}:\n{}",
                t.line_of(needle),
                t.conf.display(),
                c.expect
            ),
            None => c.expect.to_string(),
        };
        check(
            &mut f,
            &format!("{}: message", c.entry),
            out.contains(&expect),
            || format!("no `{expect}` in:\n{out}"),
        );
    }
    // pre_config has no way to report an error: the panic is caught and `apache2 -t` still ends
    // with an exit status (checked in apache_with_panic), whatever it says.
    let (_, out) = apache_with_panic(&t.conf, &["-t"], "pre_config");
    check(
        &mut f,
        "pre_config: the panic was caught",
        out.contains("panic-probe: OAUTH2_TEST_PANIC=pre_config"),
        || out.clone(),
    );
    // post_config runs when the server starts (not under -t): the start fails with the message.
    let (ok, out) = apache_with_panic(&t.conf, &["-DFOREGROUND"], "post_config");
    check(&mut f, "post_config: the start fails", !ok, || out.clone());
    let expect = "mod_oauth2: internal error (panic) while creating caches";
    check(&mut f, "post_config: message", out.contains(expect), || {
        format!("no `{expect}` in:\n{out}")
    });
    f.assert_none();
}

/// A server started with `OAUTH2_TEST_PANIC=<entry>` for the entries that run without a request
/// or have no error to report (every directory merge, the merge of a virtual host's server
/// configuration, the release of a configuration generation at a graceful restart, the metrics'
/// shared memory at each reading of the configuration, a new child): it starts, answers 200 and
/// 401 as usual (the metrics handler a 500 when their memory could not be attached), survives a
/// graceful restart, and no child dies.
#[test]
fn merge_and_release_panics_leave_the_server_serving() {
    let Some(module) = variant() else { return };
    let signer = TokenSigner::rsa("one");
    let token = signer.mint(&claims("joe"));
    // OAuth2TrustedProxy in the main server and in each virtual host: httpd merges the two
    // server configurations (server_merge).
    let mut cfg = probe_config(
        module,
        body(&signer.jwk_arg()) + "OAuth2TrustedProxy 127.0.0.4\n",
    );
    cfg.server += "OAuth2TrustedProxy 127.0.0.3\n";
    let t = Httpd::config_test(cfg);
    assert!(t.ok, "the configuration itself is valid:\n{}", t.output);
    let http_port: u16 = t
        .conf_text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Listen 127.0.0.1:")?
                .strip_suffix(" http")?
                .parse()
                .ok()
        })
        .expect("plain Listen line");
    let mut f = Failures::new();
    for entry in [
        "dir_merge",
        "server_merge",
        "config_cleared",
        "metrics_attach",
        "metrics_child_init",
    ] {
        let dir = t.conf.parent().unwrap();
        let _ = fs::remove_file(dir.join("error_log"));
        let mut server = Server(
            Command::new(std::env::var("APACHE2_BIN").unwrap_or("/usr/sbin/apache2".into()))
                .arg("-f")
                .arg(&t.conf)
                .arg("-DFOREGROUND")
                .env("OAUTH2_TEST_PANIC", entry)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join(format!("{entry}.stderr"))).unwrap())
                .spawn()
                .expect("spawn apache2"),
        );
        let status = |path: &str, token: Option<&str>| -> u16 {
            let mut cmd = Command::new("curl");
            cmd.args([
                "-q",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ]);
            if let Some(t) = token {
                cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
            }
            cmd.arg(format!("http://127.0.0.1:{http_port}{path}"));
            let out = cmd.output().expect("curl");
            String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
        };
        let up = poll(Duration::from_secs(15), || {
            (status("/x/ok", None) == 200).then_some(())
        });
        check(&mut f, &format!("{entry}: starts"), up.is_some(), || {
            fs::read_to_string(dir.join("error_log")).unwrap_or_default()
        });
        for round in ["before", "after"] {
            for (path, tok, want) in [
                ("/p/ok", Some(token.as_str()), 200),
                // A failed merge keeps the inner location's own settings (no verifier): it fails
                // closed.
                (
                    "/q/ok",
                    Some(token.as_str()),
                    if entry == "dir_merge" { 401 } else { 200 },
                ),
                ("/c/ok", Some(token.as_str()), 200),
                ("/p/ok", None, 401),
                (
                    "/metrics",
                    None,
                    if entry == "metrics_attach" { 500 } else { 200 },
                ),
            ] {
                let got = status(path, tok);
                check(
                    &mut f,
                    &format!(
                        "{entry}: {path} token={} {round} a graceful restart",
                        tok.is_some()
                    ),
                    got == want,
                    || format!("got {got}, want {want}"),
                );
            }
            if round == "before" {
                let _ = Command::new("kill")
                    .args(["-USR1", &server.0.id().to_string()])
                    .status();
                let restarted = poll(Duration::from_secs(15), || {
                    let log = fs::read_to_string(dir.join("error_log")).unwrap_or_default();
                    (log.matches("resuming normal operations").count() >= 2).then_some(())
                });
                check(
                    &mut f,
                    &format!("{entry}: graceful restart"),
                    restarted.is_some(),
                    || fs::read_to_string(dir.join("error_log")).unwrap_or_default(),
                );
                poll(Duration::from_secs(10), || {
                    (status("/x/ok", None) == 200).then_some(())
                });
            }
        }
        // Before its error log is open, httpd writes to stderr.
        let log = fs::read_to_string(dir.join("error_log")).unwrap_or_default()
            + &fs::read_to_string(dir.join(format!("{entry}.stderr"))).unwrap_or_default();
        check(
            &mut f,
            &format!("{entry}: the panic happened and was caught"),
            log.contains(&format!("panic-probe: OAUTH2_TEST_PANIC={entry}")),
            || log.clone(),
        );
        let crashes = crash_lines(&log);
        check(
            &mut f,
            &format!("{entry}: no child died"),
            crashes.is_empty(),
            || format!("{crashes:?}"),
        );
        check(
            &mut f,
            &format!("{entry}: still running"),
            server.0.try_wait().ok().flatten().is_none(),
            || log.clone(),
        );
        drop(server);
    }
    f.assert_none();
}

/// A server started by a test: SIGTERM, then SIGKILL, on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        if poll(Duration::from_secs(10), || self.0.try_wait().ok().flatten()).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The module every other test loads (no feature) contains neither trigger and ignores the
/// header: a panic cannot be provoked in a normal build.
#[test]
fn a_normal_build_has_no_trigger() {
    let normal = module_path();
    let bytes = fs::read(&normal).expect("read the module");
    for needle in [HEADER, "OAUTH2_TEST_PANIC", "panic-probe"] {
        assert!(
            find_bytes(&bytes, needle.as_bytes()).is_none(),
            "{} contains `{needle}`: was it built with --features panic-probe?",
            normal.display()
        );
    }
    let signer = TokenSigner::rsa("one");
    let h = Httpd::start(HttpdConfig::new(body(&signer.jwk_arg())));
    let token = signer.mint(&claims("joe"));
    for (path, entry) in [
        ("/p/ok", "check_authn"),
        ("/p/ok", "fixups"),
        ("/c/ok", "authz_claim"),
    ] {
        let r = h
            .https(path)
            .bearer(&token)
            .header(&format!("{HEADER}: {entry}"))
            .send();
        assert_200(&r, &format!("normal build, {HEADER}: {entry}"));
    }
    h.assert_no_child_crash();
}
