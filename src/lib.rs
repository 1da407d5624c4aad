//! mod_oauth2: an OAuth 2.0 resource-server module for Apache httpd 2.4, a drop-in replacement for
//! the C module of the same name, with RFC 8705 certificate-bound access tokens.
//!
//! The core (config, token, jose, verify, pop, pass, challenge, authn) never touches an Apache
//! type and is tested with `cargo test` alone. The Apache layer (ffi, apache, entry) is compiled
//! only into the module: its C shim needs httpd's symbols, which exist only inside httpd.

// Unit tests build the core without the Apache layer, which is what uses much of it.
#![cfg_attr(test, allow(dead_code))]

mod authn;
mod authz;
mod cache;
mod challenge;
mod config;
mod ct;
mod digest;
mod generation;
mod header_name;
mod hex;
mod jose;
mod log_limit;
mod logsink;
mod metrics;
mod options;
mod pass;
mod percent;
mod pop;
mod proxy;
mod refusal;
mod remote;
mod request_url;
mod resource_metadata;
mod token;
mod verify;

#[cfg(test)]
mod test_support;

#[cfg(not(test))]
mod apache;
#[cfg(not(test))]
mod entry;
#[cfg(not(test))]
mod ffi;
#[cfg(not(test))]
mod serving;
// Test-only: entry points that panic on demand (tests/panic.rs); never in a release build.
#[cfg(all(feature = "panic-probe", not(test)))]
mod panic_probe;
