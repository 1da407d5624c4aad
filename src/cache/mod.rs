//! `OAuth2Cache`: caches shared across Apache children (`shm`, `file`) and hosts (`memcache`,
//! `redis`) for verification results, fetched key sets, and (later) DPoP replay detection.
//!
//! The lead owns this file; the backend modules are added as they land.

pub mod backoff;
pub mod config;
pub mod crypto;
pub mod net;
pub mod registry;
pub mod shared;
pub mod store;

pub use shared::Cache;
