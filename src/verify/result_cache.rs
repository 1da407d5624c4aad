//! Accepted tokens kept in this process: keyed by a SHA-256 over the verifier identity and the
//! token (never the token itself), each entry expiring at the earlier of its TTL and the token's
//! own expiry. Bounded in entries; when full, the oldest insertion goes first (O(1) per insert,
//! also under a flood of new tokens).

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accepted::Claims;

pub(crate) struct ResultCache {
    entries: Mutex<Entries>,
    max_entries: usize,
}

#[derive(Default)]
struct Entries {
    /// key -> (valid until, claims, insertion number)
    map: HashMap<[u8; 32], (Instant, Claims, u64), BuildHasherDefault<DigestHasher>>,
    /// Insertion order; an item whose number no longer matches the map's entry is stale.
    order: VecDeque<([u8; 32], u64)>,
    next: u64,
}

/// Keys are SHA-256 digests already, so their first bytes serve as the table's hash (no SipHash
/// over 32 bytes per lookup). Only verified tokens are inserted, so nobody can choose keys to
/// collide.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(first);
    }

    /// The length prefix of the key array: the same for every key.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

impl ResultCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        ResultCache {
            entries: Mutex::new(Entries::default()),
            max_entries,
        }
    }

    /// The claims kept for `key`, and how much longer they are kept.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<(Claims, Duration)> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match entries.map.get(key) {
            Some((until, claims, _)) if now < *until => Some((claims.clone(), *until - now)),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `claims` for `ttl` (nothing is kept for a zero TTL).
    pub(crate) fn put(&self, key: [u8; 32], claims: Claims, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = &mut *entries;
        while e.map.len() >= self.max_entries && !e.map.contains_key(&key) {
            let Some((oldest, number)) = e.order.pop_front() else {
                break;
            };
            if e.map.get(&oldest).is_some_and(|(_, _, n)| *n == number) {
                e.map.remove(&oldest);
            }
        }
        let number = e.next;
        e.next += 1;
        e.map.insert(key, (now + ttl, claims, number));
        e.order.push_back((key, number));
        // Stale order items (overwritten keys) are dropped once they dominate, keeping it bounded.
        if e.order.len() > 2 * self.max_entries.max(1) {
            let map = &e.map;
            e.order
                .retain(|(k, n)| map.get(k).is_some_and(|(_, _, m)| m == n));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a result may be kept: the configured TTL, but never past the claims' `exp`.
pub(crate) fn ttl_for(claims: &Map<String, Value>, configured: Duration, now: i64) -> Duration {
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

    fn key(i: u32) -> [u8; 32] {
        openssl::sha::sha256(&i.to_be_bytes())
    }

    #[test]
    fn ttl_never_outlives_exp() {
        let now = 1_000;
        let five_min = Duration::from_secs(300);
        assert_eq!(
            ttl_for(&claims(json!({"exp": 1_010})), five_min, now),
            Duration::from_secs(10)
        );
        assert_eq!(
            ttl_for(&claims(json!({"exp": 999})), five_min, now),
            Duration::ZERO
        );
        assert_eq!(ttl_for(&claims(json!({})), five_min, now), five_min);
    }

    #[test]
    fn overwriting_one_key_does_not_grow_the_order() {
        let c = ResultCache::new(4);
        for _ in 0..1000 {
            c.put(
                key(1),
                crate::verify::Accepted::new(Map::new()),
                Duration::from_secs(60),
            );
        }
        let order = c.entries.lock().unwrap().order.len();
        assert!(order <= 8, "{order}");
        assert!(c.get(&key(1)).is_some());
    }

    #[test]
    fn bounded_and_zero_ttl_not_stored() {
        let c = ResultCache::new(100);
        for i in 0..10_000 {
            c.put(
                key(i),
                crate::verify::Accepted::new(Map::new()),
                Duration::from_secs(60),
            );
        }
        assert!(c.len() <= 100, "{}", c.len());
        assert!(c.get(&key(9_999)).is_some(), "the newest entry is kept");
        assert!(c.get(&key(0)).is_none(), "the oldest went first");
        c.put(
            key(1_000_000),
            crate::verify::Accepted::new(Map::new()),
            Duration::ZERO,
        );
        assert!(c.get(&key(1_000_000)).is_none());
    }
}
