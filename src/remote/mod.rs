//! Verification that needs the authorization server: fetched key sets, discovery metadata and
//! token introspection, AWS ALB keys, over a bounded, timed HTTP client.

pub(crate) mod alb;
pub(crate) mod auth;
pub(crate) mod endpoint;
pub(crate) mod fetch;
pub(crate) mod introspect;
pub(crate) mod keys;
pub(crate) mod local_file;
pub(crate) mod metadata;
pub(crate) mod single_flight;
