//! Common expectations: the module's exact challenges, 401/200 assertions, error-log refusals.

use super::client::Response;

pub(crate) const NO_TOKEN: &str =
    "Bearer error=\"invalid_request\", error_description=\"No bearer token found in the request.\"";

pub(crate) const INVALID_TOKEN: &str =
    "Bearer error=\"invalid_token\", error_description=\"Token could not be verified.\"";

pub(crate) const NO_REMOTE_USER: &str =
    "Bearer error=\"invalid_token\", error_description=\"Could not determine remote user.\"";

/// The same challenge with ` realm="<realm>",` after the scheme.
pub(crate) fn with_realm(challenge: &str, realm: &str) -> String {
    let (scheme, rest) = challenge.split_once(' ').unwrap();
    format!("{scheme} realm=\"{realm}\", {rest}")
}

/// Assert a 200.
#[track_caller]
pub(crate) fn assert_200(r: &Response, what: &str) {
    assert_eq!(
        r.status,
        200,
        "{what}: expected 200, got {} (WWW-Authenticate {:?})",
        r.status,
        r.header_all("WWW-Authenticate")
    );
}

/// Lines of `log` emitted by mod_oauth2 (`[oauth2:<level>]`) at a level other than debug/trace.
pub(crate) fn oauth2_refusal_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.find("[oauth2:").is_some_and(|i| {
                let lvl = &l[i + 8..];
                !(lvl.starts_with("debug") || lvl.starts_with("trace"))
            })
        })
        .map(str::to_string)
        .collect()
}
