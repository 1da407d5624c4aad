//! mod_oauth2: an OAuth 2.0 resource-server module for Apache httpd 2.4, a drop-in replacement for
//! the C module of the same name, with RFC 8705 certificate-bound access tokens.
//!
//! The core (config, token, jose, verify, pop, pass, challenge, authn) never touches an Apache
//! type and is tested with `cargo test` alone. The Apache layer (ffi, apache, entry) is compiled
//! only into the module: its C shim needs httpd's symbols, which exist only inside httpd.

pub mod authn;
pub mod authz;
pub mod cache;
pub mod challenge;
pub mod config;
pub mod ct;
pub mod digest;
pub mod generation;
pub mod hex;
pub mod jose;
pub mod logsink;
pub mod options;
pub mod pass;
pub mod pop;
pub mod refusal;
pub mod remote;
pub mod token;
pub mod verify;

#[cfg(not(test))]
mod apache;
#[cfg(not(test))]
mod entry;
#[cfg(not(test))]
mod ffi;
#[cfg(not(test))]
mod serving;
