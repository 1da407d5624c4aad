//! The safe layer over the C shim: a request view for the core, and the code that carries an
//! [`Outcome`](crate::authn::Outcome) out into httpd's request.

pub(crate) mod log;
pub(crate) mod request;
