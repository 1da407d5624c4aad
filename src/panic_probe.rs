//! Test-only (Cargo feature `panic-probe`, off by default and never in a release or package build):
//! makes a chosen `extern "C"` entry point of `entry.rs` panic on demand, so that
//! `tests/panic.rs` can prove, in a real httpd, that every entry's `catch_unwind` turns a panic
//! into a logged 500 (or a configuration error) and that the process goes on serving.
//!
//! Per-request entries panic when the request carries `X-OAuth2-Test-Panic: <entry>`; entries
//! without a request (directives, configuration hooks, merges) when the process was started with
//! the environment variable `OAUTH2_TEST_PANIC=<entry>`. Without the feature this module does not
//! exist, so neither trigger is compiled into the module.

use std::ffi::CStr;

use crate::ffi;

/// Panics when the environment variable `OAUTH2_TEST_PANIC` names `entry`.
pub(crate) fn on_env(entry: &str) {
    if std::env::var("OAUTH2_TEST_PANIC").is_ok_and(|v| v == entry) {
        panic!("panic-probe: OAUTH2_TEST_PANIC={entry}");
    }
}

/// Panics when the request's `X-OAuth2-Test-Panic` header names `entry`.
pub(crate) fn on_header(r: *mut ffi::request_rec, entry: &str) {
    // SAFETY: r is the live request of the calling hook; the shim returns NULL or a
    // NUL-terminated header value owned by the request pool.
    let value = unsafe { ffi::oauth2_header_in_get(r, c"X-OAuth2-Test-Panic".as_ptr()) };
    if value.is_null() {
        return;
    }
    // SAFETY: see above: NULL was handled, the value lives as long as the request.
    if unsafe { CStr::from_ptr(value) }.to_bytes() == entry.as_bytes() {
        panic!("panic-probe: X-OAuth2-Test-Panic: {entry}");
    }
}
