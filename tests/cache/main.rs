//! `OAuth2Cache`: shared caches of verification results and fetched key sets, observed as a user
//! would: through counting servers (introspection, JWKS), the debug line each accepted token gets
//! (`oauth2: token accepted by <label> (verified|from this process's cache|from the shared cache)
//! for user "<sub>"`, with the `[pid N]` of the child that answered), the files of the `file`
//! backend, and the keys in a real `redis-server` / `memcached` (`common/servers.rs`).
//!
//! Every verifier's results live in a per-process front cache as well, so a shared-cache hit needs
//! a fresh front cache: another child (prefork, new connection per request), another httpd, or
//! another `<Location>` whose `OAuth2TokenVerify` line is identical (same verifier identity, so the
//! same shared entry, but its own front cache).
//!
//! Needs `redis-server` and `memcached` (Debian packages of those names).

#[path = "../common/mod.rs"]
mod common;

mod support;

mod config;
mod connection;
mod file;
mod hosts;
mod prefork;
mod redis;
mod redis_tls;
mod restarts;
mod reuse;
mod shm;
