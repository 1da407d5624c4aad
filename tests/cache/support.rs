//! Shared by the cache tests: the debug lines of accepted tokens, configuration helpers, counting
//! servers.

use super::common::remote::*;
use super::common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

pub(crate) const PASSPHRASE: &str = "cache-tests-passphrase-0123456789abcdef";
pub(crate) const OTHER_PASSPHRASE: &str = "another-hosts-passphrase-fedcba9876543210";
pub(crate) const FAILURE_MARK: &str = "continuing without it";

// The debug lines of accepted tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Verified,
    Process,
    Shared,
    /// The token of the connection's previous request.
    Connection,
}

#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) pid: u32,
    pub(crate) user: String,
    pub(crate) origin: Origin,
}

/// Every `token accepted by` line of `log`, in order.
pub(crate) fn accepted(log: &str) -> Vec<Accepted> {
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
pub(crate) fn accepted_for(log: &str, user: &str) -> Vec<Accepted> {
    accepted(log)
        .into_iter()
        .filter(|a| a.user == user)
        .collect()
}

pub(crate) fn origins(lines: &[Accepted]) -> Vec<Origin> {
    lines.iter().map(|a| a.origin).collect()
}

/// The origin of the single acceptance of `user` logged after `mark` (waits, bounded, for it).
pub(crate) fn origin_since(h: &Httpd, mark: usize, user: &str) -> Option<Origin> {
    let log = h.wait_log_since(mark, |t| !accepted_for(t, user).is_empty());
    let lines = accepted_for(&log, user);
    lines.last().map(|a| a.origin)
}

/// Cache-failure lines (`...; continuing without it (logged at most once a minute)`).
pub(crate) fn failure_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(FAILURE_MARK))
        .map(str::to_string)
        .collect()
}

/// Prints the oauth2 lines of the error log (tail) when something failed, then asserts.
pub(crate) fn finish(f: Failures, h: &Httpd) {
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

// Configuration helpers

pub(crate) fn cache_line(kind: &str, options: &str) -> String {
    if options.is_empty() {
        format!("OAuth2Cache {kind}\n")
    } else {
        format!("OAuth2Cache {kind} {}\n", apache_quote(options))
    }
}

pub(crate) fn passphrase_line(p: &str) -> String {
    format!("OAuth2CryptoPassphrase {}\n", apache_quote(p))
}

/// Several children that stay (prefork): `StartServers 4`, `MinSpareServers 4`, no recycling.
pub(crate) fn prefork_children() -> &'static str {
    "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestsPerChild 0\n"
}

// Counting servers

/// The `sub` the introspection server answers for a token (distinct per token, not the token).
pub(crate) fn sub_of(token: &str) -> String {
    format!("u-{}", &sha256_hex(token.as_bytes())[..16])
}

pub(crate) type Table = Arc<Mutex<Vec<(String, Value)>>>;

/// An introspection endpoint that records every call: the response for a token comes from
/// `table`, default `{"active":true,"sub":sub_of(token),"exp":now+300}`.
pub(crate) fn introspection_server(table: Table) -> MockServer {
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

pub(crate) fn calls_for(m: &MockServer, tok: &str) -> usize {
    m.seen()
        .iter()
        .filter(|s| s.param("token").as_deref() == Some(tok))
        .count()
}

pub(crate) fn introspect_line(m: &MockServer, opts: &Opts) -> String {
    verify_line("introspect", &m.url("/introspect"), opts)
}

/// Two locations with the same verifier line: /a verifies, /b shows whether the shared entry exists.
pub(crate) fn twin_locations(line: &str) -> String {
    [oauth2_location("/a", line), oauth2_location("/b", line)].concat()
}
