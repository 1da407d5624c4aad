//! JOSE core: strict, bounded, panic-free parsing of compact JWS and import
//! of verification keys (JWK, PEM, shared secrets) over the system OpenSSL.
//!
//! Everything here treats its input as hostile: sizes are capped before any
//! work, JSON duplicates and deep nesting are refused, base64url must be
//! canonical, and a key only ever verifies the algorithm family it belongs to.
//! Key selection (`kid`) and claim checks live in the caller.

pub(crate) mod alg;
pub(crate) mod b64;
pub(crate) mod error;
pub(crate) mod json;
pub(crate) mod jws;
pub(crate) mod key;

pub(crate) use error::JoseError;
pub(crate) use jws::Jws;
pub(crate) use key::Key;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wycheproof;
