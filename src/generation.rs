//! What one reading of the configuration sets up for the whole server, beside the per-directory
//! configurations: the `OAuth2Cache` lines, `OAuth2CryptoPassphrase`, and whether any
//! `Require oauth2_claim` needs the claims kept. Built while httpd reads its configuration,
//! started at post_config, and dropped as a whole when a restart reads the configuration again.
//! The core receives it as an argument; holding the current one is the Apache layer's job.

use crate::cache::registry::CacheRegistry;
use crate::resource_metadata::ResourceMetadata;

#[derive(Default)]
pub(crate) struct Generation {
    pub(crate) caches: CacheRegistry,
    /// `OAuth2ResourceMetadata` of each server, and what its other lines declare (RFC 9728).
    pub(crate) resource_metadata: ResourceMetadata,
    /// `OAuth2CryptoPassphrase`: the last one read wins, wherever it is written (as in the C module).
    passphrase: Option<String>,
    /// Signs DPoP nonces (RFC 9449 section 9): from the passphrase, so that every host sharing
    /// it accepts the others' nonces, else random; made by `start`, before the children are
    /// forked (zeros until then).
    dpop_nonce_secret: [u8; 32],
    /// Unix seconds at post_config (0 until then).
    started_at: i64,
}

impl Generation {
    pub(crate) fn set_crypto_passphrase(&mut self, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return Err(
                "OAuth2CryptoPassphrase must not be empty: configure a long random string".into(),
            );
        }
        self.passphrase = Some(value.to_string());
        Ok(())
    }

    /// Checks what spans directives (run by `apache2 -t` too).
    pub(crate) fn check(&self) -> Result<(), String> {
        self.caches.check(self.passphrase.as_deref())
    }

    /// Makes the DPoP nonce secret, the shared caches (before httpd forks its children) and the
    /// RFC 9728 documents; returns what could not be created (the server runs without it), or
    /// an error that must stop the start. No cache is added after this.
    pub(crate) fn start(&mut self) -> Result<Vec<String>, String> {
        self.started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.resource_metadata.finish();
        self.dpop_nonce_secret = match &self.passphrase {
            Some(passphrase) => crate::pop::dpop::nonce::secret_from_passphrase(passphrase),
            None => {
                // Never a predictable secret: nonces made with one could be forged.
                let mut secret = [0u8; 32];
                openssl::rand::rand_bytes(&mut secret).map_err(|e| {
                    format!(
                        "cannot make the DPoP nonce secret: OpenSSL's random generator failed ({e})"
                    )
                })?;
                secret
            }
        };
        Ok(self.caches.init_all(self.passphrase.as_deref()))
    }

    /// When this generation went into service: httpd loads the module afresh with each reading
    /// of the configuration, so shared memory made by an earlier one is not this one's.
    pub(crate) fn started_at(&self) -> i64 {
        self.started_at
    }

    #[cfg(test)]
    pub(crate) fn set_started_at(&mut self, at: i64) {
        self.started_at = at;
    }

    pub(crate) fn dpop_nonce_secret(&self) -> [u8; 32] {
        self.dpop_nonce_secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::config;

    #[test]
    fn last_passphrase_wins_and_empty_is_refused() {
        let mut generation = Generation::default();
        generation
            .caches
            .add(config::parse("redis", None).unwrap().0);
        assert!(generation.check().is_err(), "redis encrypts by default");
        generation.set_crypto_passphrase("one").unwrap();
        generation.set_crypto_passphrase("two").unwrap();
        assert!(generation.set_crypto_passphrase("").is_err());
        assert_eq!(generation.passphrase.as_deref(), Some("two"));
        assert!(generation.check().is_ok());
    }
}
