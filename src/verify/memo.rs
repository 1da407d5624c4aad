//! The last token accepted on one connection. A client sends the same token on every request of
//! a keep-alive connection, so the next request with the same bytes, for the same verifier, is
//! answered from here: no hash of the token, no lock shared by the threads of the process, no
//! cache lookup. The answer is never kept longer than the result cache would keep it, and the
//! time rules (`exp`, `nbf`, `iat`) are checked again on every request.

use std::sync::{Arc, Mutex, Weak};

use super::{Claims, Verifier};

#[derive(Default)]
pub(crate) struct ConnectionMemo(Mutex<Option<Memo>>);

struct Memo {
    /// The verifier list of the configuration that accepted the token. Weak: a memo does not keep
    /// a configuration alive, yet its address cannot be reused by another while this is held.
    verifiers: Weak<Vec<Verifier>>,
    /// Which of them accepted it.
    index: usize,
    token: Vec<u8>,
    claims: Claims,
    /// Unix seconds: the result cache would not answer for the token from then on.
    until: i64,
}

impl ConnectionMemo {
    /// The claims remembered for `token` accepted by `verifiers[index]`, if still reusable at `now`
    /// and still valid by that verifier's time rules.
    pub(crate) fn recall(
        &self,
        verifiers: &Arc<Vec<Verifier>>,
        index: usize,
        token: &str,
        now: i64,
    ) -> Option<Claims> {
        // Another request of this connection holding it (HTTP/2 streams): just verify as usual.
        let memo = self.0.try_lock().ok()?;
        let m = memo.as_ref()?;
        let same = m.index == index
            && now < m.until
            && std::ptr::eq(m.verifiers.as_ptr(), Arc::as_ptr(verifiers))
            && crate::ct::eq(&m.token, token.as_bytes());
        // Time rules are checked again on every request, as for a process cache hit.
        let verifier = verifiers.get(index)?;
        (same && verifier.claims.recheck_times(m.claims.times(), now).is_ok())
            .then(|| m.claims.clone())
    }

    /// Remembers `token`, accepted by `verifiers[index]`, until `until` (Unix seconds).
    pub(crate) fn remember(
        &self,
        verifiers: &Arc<Vec<Verifier>>,
        index: usize,
        token: &str,
        claims: &Claims,
        until: i64,
    ) {
        let Ok(mut memo) = self.0.try_lock() else {
            return;
        };
        match memo.as_mut() {
            // Reuses the token buffer: a connection that changes tokens does not allocate each time.
            Some(m) => {
                m.verifiers = Arc::downgrade(verifiers);
                m.index = index;
                m.token.clear();
                m.token.extend_from_slice(token.as_bytes());
                m.claims = claims.clone();
                m.until = until;
            }
            None => {
                *memo = Some(Memo {
                    verifiers: Arc::downgrade(verifiers),
                    index,
                    token: token.as_bytes().to_vec(),
                    claims: claims.clone(),
                    until,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::verifier::{self, Origin};
    use crate::verify::Accepted;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn verifiers() -> Arc<Vec<Verifier>> {
        let origin = Origin {
            file: "t.conf",
            line: 1,
        };
        let parsed = verifier::parse(
            "plain",
            "0123456789abcdef0123456789abcdef",
            None,
            &origin,
            &mut crate::cache::registry::CacheRegistry::default(),
        );
        Arc::new(vec![parsed.unwrap().verifier])
    }

    fn claims() -> Claims {
        let Some(map) = json!({"sub": "alice", "exp": NOW + 60})
            .as_object()
            .cloned()
        else {
            unreachable!()
        };
        Accepted::new(map)
    }

    #[test]
    fn only_the_same_bytes_for_the_same_verifier_until_the_deadline() {
        let (v, memo) = (verifiers(), ConnectionMemo::default());
        assert!(memo.recall(&v, 0, "tok", NOW).is_none(), "empty");
        memo.remember(&v, 0, "tok", &claims(), NOW + 10);
        assert!(memo.recall(&v, 0, "tok", NOW + 9).is_some());
        assert!(memo.recall(&v, 0, "tok", NOW + 10).is_none(), "deadline");
        assert!(memo.recall(&v, 0, "tom", NOW).is_none(), "other bytes");
        assert!(memo.recall(&v, 0, "to", NOW).is_none(), "a prefix");
        assert!(memo.recall(&v, 0, "tokk", NOW).is_none(), "longer");
        assert!(memo.recall(&v, 1, "tok", NOW).is_none(), "other verifier");
        assert!(
            memo.recall(&verifiers(), 0, "tok", NOW).is_none(),
            "other config"
        );
        assert!(memo.recall(&v, 0, "tok", NOW + 61).is_none(), "exp passed");
        memo.remember(&v, 0, "new", &claims(), NOW + 10);
        assert!(memo.recall(&v, 0, "tok", NOW).is_none(), "replaced");
        assert!(memo.recall(&v, 0, "new", NOW).is_some());
    }

    #[test]
    fn a_configuration_that_is_gone_is_never_matched() {
        let memo = ConnectionMemo::default();
        let gone = verifiers();
        memo.remember(&gone, 0, "tok", &claims(), NOW + 10);
        drop(gone);
        // Its address cannot be handed to a new configuration while the memo refers to it.
        for _ in 0..100 {
            assert!(memo.recall(&verifiers(), 0, "tok", NOW).is_none());
        }
    }
}
