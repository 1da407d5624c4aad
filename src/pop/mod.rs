//! Proof of possession: the checks that bind a verified token to the presenting client.
pub(crate) mod dpop;
pub(crate) mod mtls;
