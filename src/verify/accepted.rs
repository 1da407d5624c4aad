//! A verified claim set as the caches keep it and requests share it, with a slot for what a
//! later stage derived from it once (what the first request passed on to its backend: a token
//! answered from cache then costs no rebuilding of headers).

use serde_json::{Map, Value};
use std::any::Any;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use super::claims::Times;

pub(crate) type Claims = Arc<Accepted>;

#[derive(Debug)]
pub(crate) struct Accepted {
    claims: Map<String, Value>,
    /// `exp`, `nbf`, `iat`, for re-checking the result on every use.
    times: Times,
    /// `cnf["x5t#S256"]`, for checking the certificate binding on every use.
    bound_thumbprint: Option<Box<str>>,
    /// `cnf.jkt` (RFC 9449 section 6), for checking DPoP proofs on every use.
    bound_jkt: Jkt,
    /// Derived once by a later stage and kept with the result; opaque here (verification knows
    /// nothing of the backend).
    derived: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Accepted {
    pub(crate) fn new(claims: Map<String, Value>) -> Claims {
        Arc::new(Accepted {
            times: Times::of(&claims),
            bound_thumbprint: crate::pop::mtls::bound_thumbprint(&claims).map(Box::from),
            bound_jkt: Jkt::of(&claims),
            claims,
            derived: OnceLock::new(),
        })
    }

    pub(crate) fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub(crate) fn times(&self) -> &Times {
        &self.times
    }

    pub(crate) fn bound_thumbprint(&self) -> Option<&str> {
        self.bound_thumbprint.as_deref()
    }

    pub(crate) fn bound_jkt(&self) -> &Jkt {
        &self.bound_jkt
    }

    /// What a later stage derived from these claims, if it did.
    pub(crate) fn derived(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.derived.get().map(|d| &**d)
    }

    /// Keeps `value` with the result; the first one kept stays (concurrent first requests derive
    /// the same thing).
    pub(crate) fn keep_derived(&self, value: Arc<dyn Any + Send + Sync>) {
        let _ = self.derived.set(value);
    }
}

/// A claim set's DPoP key binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Jkt {
    /// No `cnf.jkt`: not bound to a DPoP key.
    None,
    Bound(Box<str>),
    /// `cnf.jkt` present but not a non-empty string (RFC 9449 section 6.1): bound to something
    /// that cannot be checked, so never accepted (fail closed).
    Unreadable,
}

impl Jkt {
    fn of(claims: &Map<String, Value>) -> Jkt {
        match claims.get("cnf").and_then(|cnf| cnf.get("jkt")) {
            None => Jkt::None,
            Some(Value::String(jkt)) if !jkt.is_empty() => Jkt::Bound(jkt.as_str().into()),
            Some(_) => Jkt::Unreadable,
        }
    }

    pub(crate) fn is_bound(&self) -> bool {
        !matches!(self, Jkt::None)
    }
}

impl Deref for Accepted {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        &self.claims
    }
}

impl PartialEq for Accepted {
    fn eq(&self, other: &Accepted) -> bool {
        self.claims == other.claims
    }
}
