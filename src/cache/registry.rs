//! The `OAuth2Cache` lines of one configuration generation and the C module's name resolution:
//! a name matches the first cache with that name; no name means the last cache; `default` means
//! the first cache named `default`, else the last unnamed one; with no cache at all, an unnamed
//! `shm` cache with default options is created on the spot (not once the generation is sealed:
//! an `.htaccess` file read per request would add a cache per request).

use std::sync::Arc;

use super::config::{self, CacheSpec};
use super::shared::Cache;

#[derive(Default, Clone)]
pub(crate) struct CacheRegistry {
    caches: Vec<Arc<Cache>>,
    sealed: bool,
}

impl CacheRegistry {
    pub(crate) fn add(&mut self, spec: CacheSpec) -> Arc<Cache> {
        let cache = Arc::new(Cache::new(spec));
        self.caches.push(cache.clone());
        cache
    }

    /// A warning for a line whose `name=` an earlier `OAuth2Cache` line has: OAuth2Cache is
    /// server-wide (also inside a `<VirtualHost>`), and the name means the first of them, so the
    /// lines naming it would send their entries to the first cache's server.
    pub(crate) fn shadowed_name(&self, spec: &CacheSpec) -> Option<String> {
        let name = spec.name.as_deref()?;
        let first = self
            .caches
            .iter()
            .find(|c| c.spec.name.as_deref() == Some(name))?;
        Some(format!(
            "OAuth2Cache {}: name={name} is already the name of an earlier {}: OAuth2Cache lines \
             are server-wide, also inside <VirtualHost>, and verify.cache={name}, \
             <prefix>.cache={name} and dpop.cache={name} mean the first one; give this one another name",
            spec.backend.kind(),
            first.describe()
        ))
    }

    /// Resolves a cache name as the C module does; `None` when a given name matches no cache.
    pub(crate) fn resolve(&mut self, name: Option<&str>) -> Option<Arc<Cache>> {
        if self.caches.is_empty() && !self.sealed {
            if let Ok((spec, _)) = config::parse("shm", None) {
                self.caches.push(Arc::new(Cache::new(spec)));
            }
        }
        let list = &self.caches;
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
    pub(crate) fn check(&self, passphrase: Option<&str>) -> Result<(), String> {
        for cache in &self.caches {
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

    /// Creates every backend (in the parent process, before the children are forked) and seals
    /// the list; returns what could not be created.
    pub(crate) fn init_all(&mut self, passphrase: Option<&str>) -> Vec<String> {
        self.sealed = true;
        self.caches
            .iter()
            .filter_map(|c| {
                c.init(passphrase)
                    .err()
                    .map(|e| format!("{}: {e}", c.describe()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> CacheSpec {
        config::parse("shm", Some(text)).unwrap().0
    }

    #[test]
    fn name_resolution_follows_the_c_module() {
        let implicit = CacheRegistry::default().resolve(None).unwrap();
        assert_eq!(implicit.spec.name, None, "an implicit unnamed shm cache");
        let mut registry = CacheRegistry::default();
        let a = registry.add(spec("name=a"));
        let _unnamed = registry.add(spec(""));
        let d = registry.add(spec("name=default"));
        let _unnamed = registry.add(spec(""));
        let last = registry.add(spec("name=z"));
        assert!(Arc::ptr_eq(&registry.resolve(Some("a")).unwrap(), &a));
        assert!(
            Arc::ptr_eq(&registry.resolve(None).unwrap(), &last),
            "no name: the last cache"
        );
        assert!(Arc::ptr_eq(&registry.resolve(Some("default")).unwrap(), &d));
        assert!(registry.resolve(Some("missing")).is_none());
        let mut registry = CacheRegistry::default();
        let _ = registry.add(spec(""));
        let u = registry.add(spec(""));
        let _ = registry.add(spec("name=x"));
        assert!(
            Arc::ptr_eq(&registry.resolve(Some("default")).unwrap(), &u),
            "default: the last unnamed one"
        );
    }

    #[test]
    fn a_second_cache_of_one_name_is_warned_about() {
        let mut registry = CacheRegistry::default();
        assert_eq!(registry.shadowed_name(&spec("name=shared")), None);
        let first = registry.add(spec("name=shared"));
        assert_eq!(registry.shadowed_name(&spec("")), None);
        let w = registry.shadowed_name(&spec("name=shared")).unwrap();
        assert!(w.contains("name=shared") && w.contains("first"), "{w}");
        registry.add(spec("name=shared"));
        assert!(Arc::ptr_eq(
            &registry.resolve(Some("shared")).unwrap(),
            &first
        ));
    }

    #[test]
    fn a_sealed_registry_creates_no_implicit_cache() {
        let mut registry = CacheRegistry::default();
        assert!(registry.init_all(None).is_empty());
        assert!(registry.resolve(None).is_none());
    }

    #[test]
    fn encrypted_cache_without_passphrase_is_a_config_error() {
        let mut registry = CacheRegistry::default();
        registry.add(config::parse("redis", None).unwrap().0);
        assert!(
            registry
                .check(None)
                .unwrap_err()
                .contains("OAuth2CryptoPassphrase")
        );
        assert!(registry.check(Some("p")).is_ok());
    }
}
