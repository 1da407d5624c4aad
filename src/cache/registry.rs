//! The process-wide list of `OAuth2Cache` lines and the C module's name resolution (reference 7.2):
//! a name matches the first cache with that name; no name means the last cache; `default` means the
//! first cache named `default`, else the last unnamed one; with no cache at all, an unnamed `shm`
//! cache with default options is created on the spot. The list is rebuilt on every (re)read of
//! the configuration.

use std::sync::{Arc, Mutex, MutexGuard};

use super::config::{self, CacheSpec};
use super::shared::Cache;
use crate::config::global;

static CACHES: Mutex<Vec<Arc<Cache>>> = Mutex::new(Vec::new());

fn caches() -> MutexGuard<'static, Vec<Arc<Cache>>> {
    CACHES.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn reset() {
    caches().clear();
}

pub fn add(spec: CacheSpec) -> Arc<Cache> {
    let cache = Arc::new(Cache::new(spec));
    caches().push(cache.clone());
    cache
}

/// Resolves a cache name as the C module does; `None` when a given name matches no cache.
pub fn resolve(name: Option<&str>) -> Option<Arc<Cache>> {
    let mut list = caches();
    // Not from an .htaccess file read per request: that would add a cache per request.
    if list.is_empty() && !global::started() {
        if let Ok((spec, _)) = config::parse("shm", None) {
            list.push(Arc::new(Cache::new(spec)));
        }
    }
    match name {
        None | Some("") => list.last().cloned(),
        Some("default") => list
            .iter()
            .find(|c| c.spec.name.as_deref() == Some("default"))
            .or_else(|| list.iter().rev().find(|c| c.spec.name.is_none()))
            .cloned(),
        Some(n) => list
            .iter()
            .find(|c| c.spec.name.as_deref() == Some(n))
            .cloned(),
    }
}

/// After the configuration is read: encrypted caches need a passphrase (config-time error).
pub fn check() -> Result<(), String> {
    let passphrase = global::crypto_passphrase();
    for cache in caches().iter() {
        if cache.spec.encrypt && passphrase.is_none() {
            return Err(format!(
                "{} encrypts its values (encrypt defaults to on for file, memcache and redis) but no \
                 OAuth2CryptoPassphrase is configured: add `OAuth2CryptoPassphrase <long random string>` \
                 (the same on every host that shares the cache), or set encrypt=false",
                cache.describe()
            ));
        }
    }
    Ok(())
}

/// Creates every backend in the parent process, before the children are forked.
pub fn init_all() -> Vec<String> {
    caches()
        .iter()
        .filter_map(|c| c.init().err().map(|e| format!("{}: {e}", c.describe())))
        .collect()
}

#[cfg(test)]
pub(crate) fn test_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> CacheSpec {
        config::parse("shm", Some(text)).unwrap().0
    }

    #[test]
    fn name_resolution_follows_the_c_module() {
        let _guard = test_lock();
        reset();
        let implicit = resolve(None).unwrap();
        assert_eq!(implicit.spec.name, None, "an implicit unnamed shm cache");
        reset();
        let a = add(spec("name=a"));
        let unnamed1 = add(spec(""));
        let d = add(spec("name=default"));
        let unnamed2 = add(spec(""));
        let last = add(spec("name=z"));
        assert!(Arc::ptr_eq(&resolve(Some("a")).unwrap(), &a));
        assert!(
            Arc::ptr_eq(&resolve(None).unwrap(), &last),
            "no name: the last cache"
        );
        assert!(Arc::ptr_eq(&resolve(Some("default")).unwrap(), &d));
        assert!(resolve(Some("missing")).is_none());
        reset();
        let _ = add(spec(""));
        let u = add(spec(""));
        let _ = add(spec("name=x"));
        assert!(
            Arc::ptr_eq(&resolve(Some("default")).unwrap(), &u),
            "default: the last unnamed one"
        );
        let _ = (unnamed1, unnamed2);
        reset();
    }

    #[test]
    fn encrypted_cache_without_passphrase_is_a_config_error() {
        let _guard = test_lock();
        reset();
        global::reset();
        add(config::parse("redis", None).unwrap().0);
        assert!(check().unwrap_err().contains("OAuth2CryptoPassphrase"));
        global::set_crypto_passphrase("p").unwrap();
        assert!(check().is_ok());
        global::reset();
        reset();
    }
}
