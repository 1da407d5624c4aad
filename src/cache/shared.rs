//! One configured cache: a backend store plus key hashing, optional encryption, and the rule
//! that a broken backend never breaks authentication (a failure is a miss, logged once per
//! interval).

use openssl::hash::hash;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::config::{Backend, CacheSpec};
use super::crypto::Sealer;
use super::file::FileStore;
use super::memcache::MemcacheStore;
use super::redis::RedisStore;
use super::shm::ShmStore;
use super::store::Store;
use crate::digest::sha256;
use crate::log_limit::LogLimit;
use crate::logsink::{self, Level};

/// Network caches must answer quickly: a slow Redis only delays a request this much.
pub(crate) const NETWORK_TIMEOUT: Duration = Duration::from_millis(500);
/// A failing backend is reported at most once per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Why a cache could not answer (backend down or unusable, encryption not configured, value too
/// large, ...); already logged, at most once per interval.
#[allow(
    dead_code,
    reason = "DPoP replay detection (next) is the first caller of insert_if_absent"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

pub(crate) struct Cache {
    pub spec: CacheSpec,
    store: OnceLock<Result<Arc<dyn Store>, String>>,
    sealer: OnceLock<Result<Option<Sealer>, String>>,
    log_limit: LogLimit,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cache({} {:?})",
            self.spec.backend.kind(),
            self.spec.name
        )
    }
}

impl Cache {
    pub(crate) fn new(spec: CacheSpec) -> Cache {
        Cache {
            spec,
            store: OnceLock::new(),
            sealer: OnceLock::new(),
            log_limit: LogLimit::new(LOG_INTERVAL),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match &self.spec.name {
            Some(n) => format!("{} cache \"{n}\"", self.spec.backend.kind()),
            None => format!("{} cache", self.spec.backend.kind()),
        }
    }

    /// Creates the backend now (shared memory must exist before httpd forks its children) and
    /// the encryption key from `OAuth2CryptoPassphrase`.
    pub(crate) fn init(&self, passphrase: Option<&str>) -> Result<(), String> {
        let _ = self.sealer.set(self.make_sealer(passphrase));
        self.store().map(|_| ())
    }

    /// Whether lookups are cheap enough to be worth it for locally verifiable tokens.
    pub(crate) fn is_local_memory(&self) -> bool {
        matches!(self.spec.backend, Backend::Shm { .. })
    }

    fn store(&self) -> Result<&Arc<dyn Store>, String> {
        self.store
            .get_or_init(|| open(&self.spec.backend))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn make_sealer(&self, passphrase: Option<&str>) -> Result<Option<Sealer>, String> {
        if !self.spec.encrypt {
            return Ok(None);
        }
        let passphrase = passphrase.ok_or_else(|| {
            format!(
                "{} has encrypt on but no OAuth2CryptoPassphrase is configured",
                self.describe()
            )
        })?;
        Sealer::new(passphrase, self.spec.passphrase_hash).map(Some)
    }

    /// The encryption of this cache; one that was never initialised has no passphrase.
    fn sealer(&self) -> Result<Option<&Sealer>, String> {
        let sealer = self.sealer.get_or_init(|| self.make_sealer(None));
        sealer.as_ref().map(Option::as_ref).map_err(Clone::clone)
    }

    /// The key as stored: the namespace and key material, hashed with `key_hash_algo`, in hex.
    fn storage_key(&self, namespace: &str, key: &[u8]) -> String {
        let parts: [&[u8]; 3] = [namespace.as_bytes(), b"\0", key];
        let digest = match self.spec.key_hash {
            // The default, on the hot path.
            Some(md) if md.type_() == openssl::nid::Nid::SHA256 => sha256(&parts).to_vec(),
            Some(md) => hash(md, &parts.concat())
                .map(|d| d.to_vec())
                .unwrap_or_else(|_| sha256(&parts).to_vec()),
            // `none`: callers pass hashed key material, so the stored key is still not a token; long
            // material (a URL) is hashed anyway to fit every backend's key limit.
            None if namespace.len() + 1 + key.len() <= 64 => parts.concat(),
            None => sha256(&parts).to_vec(),
        };
        crate::hex::lower(&digest)
    }

    pub(crate) fn get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        let k = self.storage_key(namespace, key);
        let store = self.usable_store()?;
        let raw = match store.get(&k) {
            Ok(v) => v?,
            Err(e) => {
                self.report(&format!("get failed: {e}"));
                return None;
            }
        };
        match self.sealer() {
            Ok(Some(sealer)) => sealer.open(k.as_bytes(), &raw),
            Ok(None) => Some(raw),
            Err(e) => {
                self.report(&e);
                None
            }
        }
    }

    /// Stores `value` for `ttl`; whether it was stored (a full, broken or unusable backend, a
    /// value too long for it or a zero TTL store nothing).
    pub(crate) fn set(&self, namespace: &str, key: &[u8], value: &[u8], ttl: Duration) -> bool {
        if ttl.is_zero() {
            return false;
        }
        let k = self.storage_key(namespace, key);
        let Some(store) = self.usable_store() else {
            return false;
        };
        let value = match self.sealed(&k, value) {
            Ok(v) => v,
            Err(e) => {
                self.report(&e);
                return false;
            }
        };
        match store.set(&k, &value, ttl) {
            Ok(()) => true,
            Err(e) => {
                self.report(&format!("set failed: {e}"));
                false
            }
        }
    }

    /// Stores `value` for `ttl` unless a live entry of this key exists, sealed as `set` seals it:
    /// Ok(true) inserted, Ok(false) already present. Atomic in every backend, across processes
    /// and hosts sharing it: of concurrent inserters of one key exactly one gets Ok(true) (DPoP
    /// replay detection). A zero TTL stores nothing and gives Ok(true). Err when the backend (or
    /// the encryption) cannot answer; the problem is logged (at most once per interval).
    #[allow(dead_code, reason = "DPoP replay detection (next) is its first caller")]
    pub(crate) fn insert_if_absent(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let k = self.storage_key(namespace, key);
        let store = self.store().map_err(|e| self.unavailable(e))?;
        let value = self.sealed(&k, value).map_err(|e| self.unavailable(e))?;
        store
            .insert_if_absent(&k, &value, ttl)
            .map_err(|e| self.unavailable(format!("insert failed: {e}")))
    }

    /// The value as stored: sealed when the cache encrypts (the same for `set` and
    /// `insert_if_absent`, so `get` opens what either stored).
    fn sealed<'v>(&self, k: &str, value: &'v [u8]) -> Result<Cow<'v, [u8]>, String> {
        Ok(match self.sealer()? {
            Some(sealer) => Cow::Owned(sealer.seal(k.as_bytes(), value)?),
            None => Cow::Borrowed(value),
        })
    }

    /// The bytes stored for a key as the backend holds them (sealed, when the cache encrypts):
    /// what a cache server, or anyone on the path to it, sees and can send back later.
    #[cfg(test)]
    pub(crate) fn raw_get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        let k = self.storage_key(namespace, key);
        self.store().ok()?.get(&k).ok()?
    }

    /// Stores bytes as they are (a cache server answering with a value it kept).
    #[cfg(test)]
    pub(crate) fn raw_set(&self, namespace: &str, key: &[u8], raw: &[u8], ttl: Duration) {
        let k = self.storage_key(namespace, key);
        self.store().unwrap().set(&k, raw, ttl).unwrap();
    }

    fn unavailable(&self, problem: String) -> Unavailable {
        self.report(&problem);
        Unavailable(problem)
    }

    fn usable_store(&self) -> Option<&Arc<dyn Store>> {
        match self.store() {
            Ok(s) => Some(s),
            Err(e) => {
                self.report(&e);
                None
            }
        }
    }

    /// Logs a backend problem at most once per interval; the request goes on uncached.
    fn report(&self, problem: &str) {
        if self.log_limit.allow() {
            logsink::emit(
                Level::Error,
                &format!(
                    "oauth2: {}: {problem}; continuing without it (logged at most once a minute)",
                    self.describe()
                ),
            );
        }
    }
}

fn open(backend: &Backend) -> Result<Arc<dyn Store>, String> {
    let store: Arc<dyn Store> = match backend {
        Backend::Shm {
            max_key_size,
            max_val_size,
            max_entries,
        } => Arc::new(
            ShmStore::new(*max_key_size, *max_val_size, *max_entries).map_err(|e| e.to_string())?,
        ),
        Backend::File {
            dir,
            clean_interval,
        } => Arc::new(FileStore::new(dir.clone(), *clean_interval).map_err(|e| e.to_string())?),
        Backend::Memcache { config_string } => {
            Arc::new(MemcacheStore::new(config_string, NETWORK_TIMEOUT).map_err(|e| e.to_string())?)
        }
        Backend::Redis {
            host,
            port,
            username,
            password,
            tls,
        } => Arc::new(RedisStore::new(
            host.clone(),
            *port,
            username.clone(),
            password.clone(),
            // Built before httpd forks: key files readable by root only work.
            tls.as_ref().map(|t| t.client_context()).transpose()?,
            NETWORK_TIMEOUT,
        )),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_fast_path_equals_the_evp_digest() {
        let (spec, _) = super::super::config::parse("shm", None).unwrap();
        let cache = Cache::new(spec);
        let input = b"result\0key";
        let evp = hash(openssl::hash::MessageDigest::sha256(), input).unwrap();
        assert_eq!(cache.storage_key("result", b"key"), crate::hex::lower(&evp));
    }

    #[test]
    fn insert_if_absent_seals_like_set() {
        let (spec, _) = super::super::config::parse("shm", Some("encrypt=true")).unwrap();
        let cache = Cache::new(spec);
        cache.init(Some("p")).unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            cache.insert_if_absent("dpop", b"jti", b"seen", ttl),
            Ok(true)
        );
        assert_eq!(
            cache.insert_if_absent("dpop", b"jti", b"again", ttl),
            Ok(false)
        );
        assert_eq!(cache.insert_if_absent("other", b"jti", b"x", ttl), Ok(true));
        assert_eq!(cache.get("dpop", b"jti").as_deref(), Some(&b"seen"[..]));
        let stored = cache.storage_key("dpop", b"jti");
        let raw = cache.store().unwrap().get(&stored).unwrap().unwrap();
        assert_ne!(raw, b"seen");
        assert_eq!(
            raw.len(),
            1 + 12 + 4 + 16,
            "version, nonce, sealed value, tag"
        );
        // Encryption on but no passphrase: an error, not an unsealed insert.
        let (spec, _) = super::super::config::parse("shm", Some("encrypt=true")).unwrap();
        let cache = Cache::new(spec);
        cache.init(None).unwrap();
        assert!(cache.insert_if_absent("dpop", b"jti", b"v", ttl).is_err());
        assert!(!cache.set("dpop", b"jti", b"v", ttl));
    }
}
