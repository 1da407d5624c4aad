//! JOSE core: strict, bounded, panic-free parsing of compact JWS and import
//! of verification keys (JWK, PEM, shared secrets) over the system OpenSSL.
//!
//! Everything here treats its input as hostile: sizes are capped before any
//! work, JSON duplicates and deep nesting are refused, base64url must be
//! canonical, and a key only ever verifies the algorithm family it belongs to.
//! Key selection (`kid`) and claim checks live in the caller.

pub mod alg;
pub mod b64;
pub mod error;
pub mod json;
pub mod jws;
pub mod key;

pub use alg::Alg;
pub use error::JoseError;
pub use jws::{Header, Jws};
pub use key::Key;

#[cfg(test)]
mod tests;
