//! Proof keys seen recently, imported once with their verification contexts. A client signs many
//! proofs with one key, and importing a JWK costs about as much as a verification (OpenSSL checks
//! an EC point with a multiplication by the group order), so a proof costs one verification, not
//! two. Keyed by a digest of the whole `jwk` (the key material and the members the import reads:
//! `alg`, `use`, `key_ops`), so what is kept is a function of the key: a copy of a client's key
//! with other members is another entry. Bounded, the least recently used key goes first (a flood
//! of new keys costs what it would without the cache).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::DpopError;
use crate::jose::Key;

/// An imported proof key and its RFC 7638 thumbprint, both computed once.
pub(crate) struct ProofKey {
    pub(crate) key: Key,
    pub(crate) jkt: String,
}

/// Keys kept per verifier: enough for the clients active at a time on one child.
const CAPACITY: usize = 64;

#[derive(Default)]
pub(crate) struct ProofKeys {
    recent: Mutex<VecDeque<(String, Arc<ProofKey>)>>,
}

impl ProofKeys {
    /// The key named `id` (see the module comment), imported by `import` if it is not kept.
    pub(crate) fn get_or_import(
        &self,
        id: &str,
        import: impl FnOnce() -> Result<ProofKey, DpopError>,
    ) -> Result<Arc<ProofKey>, DpopError> {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = recent.iter().position(|(t, _)| t == id) {
                let entry = recent
                    .remove(i)
                    .unwrap_or_else(|| unreachable!("found above"));
                let key = entry.1.clone();
                recent.push_front(entry);
                return Ok(key);
            }
        }
        // Imported without the lock: other requests go on meanwhile.
        let key = Arc::new(import()?);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if !recent.iter().any(|(t, _)| t == id) {
            recent.push_front((id.to_owned(), key.clone()));
            recent.truncate(CAPACITY);
        }
        Ok(key)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.recent.lock().unwrap().len()
    }
}

impl std::fmt::Debug for ProofKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofKeys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ProofKey {
        ProofKey {
            key: Key::from_secret(&[7; 32]).unwrap(),
            jkt: "jkt".to_owned(),
        }
    }

    #[test]
    fn imported_once_then_kept_and_bounded() {
        let keys = ProofKeys::default();
        let mut imports = 0;
        for _ in 0..3 {
            keys.get_or_import("a", || {
                imports += 1;
                Ok(key())
            })
            .unwrap();
        }
        assert_eq!(imports, 1);
        for i in 0..CAPACITY + 10 {
            keys.get_or_import(&format!("k{i}"), || Ok(key())).unwrap();
        }
        assert_eq!(keys.len(), CAPACITY);
        // "a" was the least recently used: imported again.
        keys.get_or_import("a", || {
            imports += 1;
            Ok(key())
        })
        .unwrap();
        assert_eq!(imports, 2);
        // A failed import keeps nothing.
        assert!(
            keys.get_or_import("bad", || Err(DpopError::JwkMissing))
                .is_err()
        );
        assert!(keys.get_or_import("bad", || Ok(key())).is_ok());
    }
}
