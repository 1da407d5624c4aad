//! A verified claim set as the caches keep it and requests share it, with what the first request
//! passed on to its backend: a token answered from cache then costs no rebuilding of headers.

use serde_json::{Map, Value};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use super::claims::Times;
use crate::config::target_pass::TargetPass;
use crate::pass::Passed;

pub type Claims = Arc<Accepted>;

#[derive(Debug)]
pub struct Accepted {
    claims: Map<String, Value>,
    /// `exp`, `nbf`, `iat`, for re-checking the result on every use.
    times: Times,
    /// `cnf["x5t#S256"]`, for checking the certificate binding on every use.
    bound_thumbprint: Option<Box<str>>,
    /// The first request's `OAuth2TargetPass` settings, whether it stripped the token, and what
    /// they made of these claims (the token is part of the cache key, so it is the same too).
    passed: OnceLock<(TargetPass, bool, Arc<Passed>)>,
}

impl Accepted {
    pub fn new(claims: Map<String, Value>) -> Claims {
        Arc::new(Accepted {
            times: Times::of(&claims),
            bound_thumbprint: crate::pop::mtls::bound_thumbprint(&claims).map(Box::from),
            claims,
            passed: OnceLock::new(),
        })
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub fn times(&self) -> &Times {
        &self.times
    }

    pub fn bound_thumbprint(&self) -> Option<&str> {
        self.bound_thumbprint.as_deref()
    }

    /// What goes to the backend under `target_pass`: built once, then reused for requests with
    /// the same settings (another location with other settings builds its own each time). `None`
    /// (no remote user in these claims) is not kept.
    pub fn passed(
        &self,
        target_pass: &TargetPass,
        stripping: bool,
        build: impl FnOnce() -> Option<Passed>,
    ) -> Option<Arc<Passed>> {
        if let Some((tp, strip, passed)) = self.passed.get() {
            if tp == target_pass && *strip == stripping {
                return Some(passed.clone());
            }
            return build().map(Arc::new);
        }
        let passed = Arc::new(build()?);
        // A concurrent first request may have won; either result is the same.
        let _ = self
            .passed
            .set((target_pass.clone(), stripping, passed.clone()));
        Some(passed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A result whose first variable's value says which build made it.
    fn passed(tag: &str) -> Option<Passed> {
        let claims = json!({ "tag": tag }).as_object().cloned().unwrap();
        Some(crate::pass::build(
            &TargetPass::default(),
            &claims,
            "alice",
            None,
        ))
    }

    fn tag(p: &Option<Arc<Passed>>) -> String {
        let p = p.as_ref().unwrap();
        String::from_utf8(p.vars().next().unwrap().1.to_vec()).unwrap()
    }

    #[test]
    fn built_once_per_settings() {
        let a = Accepted::new(json!({"sub": "alice"}).as_object().cloned().unwrap());
        let tp = TargetPass::default();
        let mut builds = 0;
        for _ in 0..3 {
            let p = a.passed(&tp, false, || {
                builds += 1;
                passed("first")
            });
            assert_eq!(tag(&p), "first");
        }
        assert_eq!(builds, 1, "the same settings reuse the first result");

        // Other settings (or stripping) never get the memo of the first.
        let mut other = TargetPass::default();
        other.apply("prefix=X_").unwrap();
        assert_eq!(tag(&a.passed(&other, false, || passed("other"))), "other");
        assert_eq!(tag(&a.passed(&tp, true, || passed("stripped"))), "stripped");
        assert_eq!(tag(&a.passed(&tp, false, || passed("again"))), "first");
        // No remote user: nothing is built, and nothing is kept.
        let b = Accepted::new(Map::new());
        assert!(b.passed(&tp, false, || None).is_none());
        assert_eq!(tag(&b.passed(&tp, false, || passed("later"))), "later");
        assert_eq!(a["sub"], "alice");
    }
}
