//! `OAuth2Cache`: caches shared across Apache children (`shm`, `file`) and hosts (`memcache`,
//! `redis`) for verification results, fetched key sets, and (later) DPoP replay detection.

pub(crate) mod backoff;
pub(crate) mod config;
pub(crate) mod crypto;
pub(crate) mod file;
pub(crate) mod memcache;
pub(crate) mod net;
pub(crate) mod reader;
pub(crate) mod redis;
pub(crate) mod registry;
pub(crate) mod shared;
pub(crate) mod shm;
pub(crate) mod store;
pub(crate) mod tls;

pub(crate) use shared::Cache;
