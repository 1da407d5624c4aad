//! Integration-test harness: a private Apache httpd with mod_ssl and mod_oauth2, a generated PKI,
//! a JWT signer, a curl-based TLS client, a CGI that dumps its environment and a raw-header backend.
//!
//! Everything is bound to 127.0.0.1, every wait is a bounded polling loop, and every process that
//! is started is stopped (also when a test panics).
//!
//! Environment knobs:
//! - `OAUTH2_MODULE`: path of the module to load (default: `target/<profile>/libmod_oauth2.so`,
//!   derived from the test executable; see [`module_path`]). Pointing it at the C module
//!   (`/usr/lib/apache2/modules/mod_oauth2.so` from `libapache2-mod-oauth2`) runs the same tests
//!   against the reference implementation.
//! - `OAUTH2_ALLOW_STALE=1`: use the derived module even when it is older than the sources.
//! - `APACHE2_BIN` (default `/usr/sbin/apache2`), `APACHE2_MODULES` (default
//!   `/usr/lib/apache2/modules`), `CURL_BIN` (default `curl`).
//! - `KEEP_HTTPD_DIR=1`: keep every server directory (config, logs, PKI) after the test; a
//!   directory is always kept when the test panics, and its path is printed.
#![allow(dead_code)]

pub(crate) mod dpop;
pub(crate) mod nginx;
pub(crate) mod redirects;
pub(crate) mod remote;
pub(crate) mod servers;

mod assertions;
mod backend;
mod client;
mod config_test;
mod failures;
mod httpd;
mod httpd_config;
mod jwt;
mod module_under_test;
mod pki;
mod prometheus;
mod sys;

// Each test binary uses a subset of the harness.
#[allow(unused_imports)]
pub(crate) use {
    assertions::*, backend::*, client::*, config_test::*, failures::*, httpd::*, httpd_config::*,
    jwt::*, module_under_test::*, pki::*, prometheus::*, sys::*,
};
