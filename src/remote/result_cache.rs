//! Verification results kept in this process: keyed by the SHA-256 of the token (never the token
//! itself), each entry expiring at the earlier of its TTL and the token's own expiry. Bounded.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Claims = Arc<Map<String, Value>>;

pub struct ResultCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, Claims)>>,
    max_entries: usize,
}

impl ResultCache {
    pub fn new(max_entries: usize) -> Self {
        ResultCache {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    pub fn key(token: &str) -> [u8; 32] {
        openssl::sha::sha256(token.as_bytes())
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Claims> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((until, claims)) if Instant::now() < *until => Some(claims.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `claims` for `ttl` (nothing is kept for a zero TTL).
    pub fn put(&self, key: [u8; 32], claims: Claims, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max_entries {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= self.max_entries {
                // Still full of live entries: make room by dropping an arbitrary one (bounded memory).
                if let Some(k) = map.keys().next().copied() {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (now + ttl, claims));
    }
}

/// How long a result may be kept: the configured TTL, but never past the claims' `exp`.
pub fn ttl_for(claims: &Map<String, Value>, configured: Duration, now: i64) -> Duration {
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp.is_finite() => {
            let left = exp - now as f64;
            if left <= 0.0 {
                Duration::ZERO
            } else {
                configured.min(Duration::from_secs_f64(left.min(1e9)))
            }
        }
        _ => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ttl_never_outlives_exp() {
        let now = 1_000;
        assert_eq!(
            ttl_for(
                &claims(json!({"exp": 1_010})),
                Duration::from_secs(300),
                now
            ),
            Duration::from_secs(10)
        );
        assert_eq!(
            ttl_for(&claims(json!({"exp": 999})), Duration::from_secs(300), now),
            Duration::ZERO
        );
        assert_eq!(
            ttl_for(&claims(json!({})), Duration::from_secs(300), now),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn bounded_and_keyed_by_hash() {
        let c = ResultCache::new(2);
        for t in ["a", "b", "c"] {
            c.put(
                ResultCache::key(t),
                Arc::new(Map::new()),
                Duration::from_secs(60),
            );
        }
        assert!(c.entries.lock().unwrap().len() <= 2);
        assert!(c.get(&ResultCache::key("c")).is_some());
        c.put(ResultCache::key("z"), Arc::new(Map::new()), Duration::ZERO);
        assert!(c.get(&ResultCache::key("z")).is_none());
    }
}
