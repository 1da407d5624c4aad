//! What a cached result passed to the backend the first time, kept with the result: a token
//! answered from cache then costs no rebuilding of headers and variables.

use std::sync::Arc;

use super::Passed;
use crate::config::target_pass::TargetPass;
use crate::verify::Accepted;

/// The first request's `OAuth2TargetPass` settings, whether it stripped the token, and what they
/// made of the claims (the token is part of the cache key, so it is the same too).
struct PassedOnce {
    target_pass: TargetPass,
    stripping: bool,
    passed: Arc<Passed>,
}

/// What goes to the backend under `target_pass`: built once, then reused for requests with the
/// same settings (another location with other settings builds its own each time). An error (no
/// remote user in these claims, names that clash) is not kept.
pub(crate) fn passed_once<E>(
    claims: &Accepted,
    target_pass: &TargetPass,
    stripping: bool,
    build: impl FnOnce() -> Result<Passed, E>,
) -> Result<Arc<Passed>, E> {
    if let Some(once) = claims
        .derived()
        .and_then(|d| d.downcast_ref::<PassedOnce>())
    {
        if once.target_pass == *target_pass && once.stripping == stripping {
            return Ok(once.passed.clone());
        }
        return build().map(Arc::new);
    }
    let passed = Arc::new(build()?);
    claims.keep_derived(Arc::new(PassedOnce {
        target_pass: target_pass.clone(),
        stripping,
        passed: passed.clone(),
    }));
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    /// A result whose first variable's value says which build made it.
    fn passed(tag: &str) -> Result<Passed, ()> {
        let claims = json!({ "tag": tag }).as_object().cloned().unwrap();
        super::super::build(&TargetPass::default(), &claims, "alice", None).map_err(|_| ())
    }

    fn tag(p: &Result<Arc<Passed>, ()>) -> String {
        let p = p.as_ref().unwrap();
        String::from_utf8(p.vars().next().unwrap().1.to_vec()).unwrap()
    }

    #[test]
    fn built_once_per_settings() {
        let a = Accepted::new(json!({"sub": "alice"}).as_object().cloned().unwrap());
        let tp = TargetPass::default();
        let mut builds = 0;
        for _ in 0..3 {
            let p = passed_once(&a, &tp, false, || {
                builds += 1;
                passed("first")
            });
            assert_eq!(tag(&p), "first");
        }
        assert_eq!(builds, 1, "the same settings reuse the first result");

        // Other settings (or stripping) never get the memo of the first.
        let mut other = TargetPass::default();
        other.apply("prefix=X_").unwrap();
        assert_eq!(
            tag(&passed_once(&a, &other, false, || passed("other"))),
            "other"
        );
        assert_eq!(
            tag(&passed_once(&a, &tp, true, || passed("stripped"))),
            "stripped"
        );
        assert_eq!(
            tag(&passed_once(&a, &tp, false, || passed("again"))),
            "first"
        );
        // No remote user: nothing is built, and nothing is kept.
        let b = Accepted::new(Map::new());
        assert!(passed_once(&b, &tp, false, || Err(())).is_err());
        assert_eq!(
            tag(&passed_once(&b, &tp, false, || passed("later"))),
            "later"
        );
        assert_eq!(a["sub"], "alice");
    }
}
