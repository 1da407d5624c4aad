//! Verification that needs the authorization server: fetched key sets, discovery metadata and
//! token introspection, over a bounded, timed HTTP client.

pub mod auth;
pub mod fetch;
pub mod introspect;
pub mod keys;
pub mod metadata;
