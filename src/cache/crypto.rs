//! Encryption of shared cache values: AES-256-GCM with a fresh random nonce per value and the
//! storage key as associated data (a value cannot be moved to another key). The key is derived from
//! `OAuth2CryptoPassphrase`; the C module used the same key for HMAC and AES with fixed layouts.

use openssl::hash::{MessageDigest, hash};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// What sealing adds to a value: version byte, nonce and tag.
pub(crate) const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

#[derive(Clone)]
pub(crate) struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// `passphrase_hash_algo` names the digest applied to the passphrase first (`none`: as it is).
    pub(crate) fn new(
        passphrase: &str,
        passphrase_hash_algo: Option<MessageDigest>,
    ) -> Result<Sealer, String> {
        let material = match passphrase_hash_algo {
            Some(md) => hash(md, passphrase.as_bytes())
                .map_err(|e| e.to_string())?
                .to_vec(),
            None => passphrase.as_bytes().to_vec(),
        };
        let mut input = b"mod_oauth2 cache encryption v1\0".to_vec();
        input.extend_from_slice(&material);
        let digest = hash(MessageDigest::sha256(), &input).map_err(|e| e.to_string())?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&digest);
        Ok(Sealer { key })
    }

    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| e.to_string())?;
        let mut tag = [0u8; TAG_LEN];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            aad,
            plain,
            &mut tag,
        )
        .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// `None` for anything that does not decrypt and authenticate (treated as a cache miss).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            aad,
            body,
            tag,
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let s = Sealer::new("secret", Some(MessageDigest::sha256())).unwrap();
        let a = s.seal(b"k", b"value").unwrap();
        let b = s.seal(b"k", b"value").unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(s.open(b"k", &a).as_deref(), Some(&b"value"[..]));
    }

    #[test]
    fn wrong_key_aad_or_tampering_fails() {
        let s = Sealer::new("secret", Some(MessageDigest::sha256())).unwrap();
        let other = Sealer::new("other", Some(MessageDigest::sha256())).unwrap();
        let mut v = s.seal(b"k", b"value").unwrap();
        assert_eq!(other.open(b"k", &v), None);
        assert_eq!(s.open(b"k2", &v), None);
        let last = v.len() - 1;
        v[last] ^= 1;
        assert_eq!(s.open(b"k", &v), None);
        assert_eq!(s.open(b"k", &[]), None);
        assert_eq!(s.open(b"k", &[1, 2, 3]), None);
    }

    #[test]
    fn passphrase_hash_algo_changes_the_key() {
        let a = Sealer::new("secret", Some(MessageDigest::sha256())).unwrap();
        let b = Sealer::new("secret", None).unwrap();
        let v = a.seal(b"k", b"x").unwrap();
        assert_eq!(b.open(b"k", &v), None);
    }
}
