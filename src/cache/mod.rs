//! `OAuth2Cache`: caches shared across Apache children (`shm`, `file`) and hosts (`memcache`,
//! `redis`) for verification results, fetched key sets, and (later) DPoP replay detection.

pub mod backoff;
pub mod config;
pub mod crypto;
pub mod file;
pub mod log_limit;
pub mod memcache;
pub mod net;
pub mod reader;
pub mod redis;
pub mod registry;
pub mod shared;
pub mod shm;
pub mod store;

pub use shared::Cache;
