//! Resource-server DPoP nonces (RFC 9449 section 9, syntax of section 8.1) without server state:
//! a nonce is the number of a time interval and a MAC over it, so every child process and every
//! host that shares the secret issues and accepts the same nonces, and nothing has to be stored
//! or synchronised.
//!
//! Format: base64url(interval number, 8 bytes big-endian || HMAC-SHA256(secret, "dpop-nonce" 0x00
//! || interval number) cut to 16 bytes): 32 characters, unpredictable without the secret.

use std::fmt;
use std::time::Duration;

use openssl::sha::Sha256;

use crate::jose::b64;

/// MAC bytes kept in a nonce: 128 bits cannot be guessed within a nonce's lifetime.
const MAC_LEN: usize = 16;
const NONCE_BYTES: usize = 8 + MAC_LEN;
/// Characters of a nonce (24 bytes in base64url).
const NONCE_CHARS: usize = 32;
/// Domain separation: the same secret could key something else one day.
const LABEL: &[u8] = b"dpop-nonce\0";
/// Shortest "near rotation" window, so that a short interval still leaves clients time to pick
/// up the next nonce (and hosts some clock skew).
const MIN_ROTATION_WINDOW: i64 = 3;
/// SHA-256 block size, for HMAC (RFC 2104).
const BLOCK: usize = 64;

/// Issues and checks the nonces of one configuration.
#[derive(Clone)]
pub(crate) struct Nonces {
    /// SHA-256 states after absorbing the HMAC inner and outer padded keys (RFC 2104 section 2):
    /// each MAC then costs two compressions, and nothing here can fail.
    inner: Sha256,
    outer: Sha256,
    interval: i64,
}

impl fmt::Debug for Nonces {
    // The states are the secret in all but name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// `interval` is how long one nonce is issued for (at least a second); each stays valid for
    /// one more interval after that, so a client always has at least one interval to use it.
    pub(crate) fn new(secret: [u8; 32], interval: Duration) -> Nonces {
        let mut padded = [0u8; BLOCK];
        padded[..secret.len()].copy_from_slice(&secret);
        let keyed = |pad: u8| {
            let mut h = Sha256::new();
            h.update(&padded.map(|b| b ^ pad));
            h
        };
        Nonces {
            inner: keyed(0x36),
            outer: keyed(0x5c),
            interval: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// The nonce of the interval `now` (seconds since the epoch) falls in.
    pub(crate) fn issue(&self, now: i64) -> String {
        self.nonce_for(self.interval_of(now))
    }

    /// True for a nonce of the current or the previous interval, and for the next interval's
    /// once [`Nonces::next_if_near_rotation`] hands it out. The MAC is compared in constant time.
    pub(crate) fn is_valid(&self, nonce: &str, now: i64) -> bool {
        if nonce.len() != NONCE_CHARS {
            return false;
        }
        let Ok(bytes) = b64::decode_strict(nonce) else {
            return false;
        };
        let Some((number, mac)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let number = i64::from_be_bytes(*number);
        let current = self.interval_of(now);
        let acceptable = number == current
            || Some(number) == current.checked_sub(1)
            || (Some(number) == current.checked_add(1) && self.near_rotation(now));
        acceptable && bytes.len() == NONCE_BYTES && crate::ct::eq(&self.mac(number), mac)
    }

    /// Within the last tenth of an interval (at least 3 seconds): the next interval's nonce, for
    /// a `DPoP-Nonce` header on successful responses (RFC 9449 section 8.2), so that clients
    /// switch before their nonce goes stale.
    pub(crate) fn next_if_near_rotation(&self, now: i64) -> Option<String> {
        if !self.near_rotation(now) {
            return None;
        }
        self.interval_of(now)
            .checked_add(1)
            .map(|next| self.nonce_for(next))
    }

    fn near_rotation(&self, now: i64) -> bool {
        let window = (self.interval / 10)
            .max(MIN_ROTATION_WINDOW)
            .min(self.interval);
        let left = self.interval - now.rem_euclid(self.interval);
        left <= window
    }

    fn interval_of(&self, now: i64) -> i64 {
        now.div_euclid(self.interval)
    }

    fn nonce_for(&self, number: i64) -> String {
        let mut bytes = [0u8; NONCE_BYTES];
        bytes[..8].copy_from_slice(&number.to_be_bytes());
        bytes[8..].copy_from_slice(&self.mac(number));
        b64::encode(&bytes)
    }

    fn mac(&self, number: i64) -> [u8; MAC_LEN] {
        let mut inner = self.inner.clone();
        inner.update(LABEL);
        inner.update(&number.to_be_bytes());
        let mut outer = self.outer.clone();
        outer.update(&inner.finish());
        let full = outer.finish();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&full[..MAC_LEN]);
        mac
    }
}

/// PBKDF2 rounds for the nonce secret: every client receives nonces, so each can test guesses of
/// the passphrase offline; the rounds make each guess cost this many HMACs (about 0.1 s once at
/// startup here).
const PASSPHRASE_ROUNDS: usize = 200_000;

/// The nonce secret derived from `OAuth2CryptoPassphrase` with PBKDF2-HMAC-SHA256 (RFC 8018
/// section 5.2), so that all hosts configured alike accept each other's nonces, and a guess of
/// the passphrase is slow to check against a nonce. Its own salt keeps it apart from the cache
/// encryption key ("mod_oauth2 cache encryption v1"), so neither key reveals the other.
pub(crate) fn secret_from_passphrase(passphrase: &str) -> [u8; 32] {
    let mut secret = [0u8; 32];
    if openssl::pkcs5::pbkdf2_hmac(
        passphrase.as_bytes(),
        b"mod_oauth2 dpop nonce v2",
        PASSPHRASE_ROUNDS,
        openssl::hash::MessageDigest::sha256(),
        &mut secret,
    )
    .is_err()
    {
        // Only when OpenSSL cannot run HMAC-SHA256 at all; no signature check works then
        // either. Never a predictable constant: a random secret (no nonce shared across hosts).
        let _ = openssl::rand::rand_bytes(&mut secret);
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;

    const SECRET: [u8; 32] = [7; 32];

    fn nonces(interval: u64) -> Nonces {
        Nonces::new(SECRET, Duration::from_secs(interval))
    }

    fn openssl_hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = PKey::hmac(key).expect("hmac key");
        let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("signer");
        signer.sign_oneshot_to_vec(data).expect("hmac")
    }

    #[test]
    fn mac_is_openssl_hmac_sha256() {
        let n = nonces(300);
        for number in [0i64, 1, 5_764_607, -3, i64::MAX] {
            let mut data = LABEL.to_vec();
            data.extend_from_slice(&number.to_be_bytes());
            assert_eq!(n.mac(number)[..], openssl_hmac(&SECRET, &data)[..MAC_LEN]);
        }
    }

    #[test]
    fn nonce_shape() {
        let nonce = nonces(300).issue(1_700_000_000);
        assert_eq!(nonce.len(), NONCE_CHARS);
        assert!(
            nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(nonce, nonces(300).issue(1_700_000_300), "one per interval");
        assert_ne!(
            nonce,
            Nonces::new([8; 32], Duration::from_secs(300)).issue(1_700_000_000),
            "depends on the secret"
        );
    }

    #[test]
    fn current_and_previous_interval_accepted_older_refused() {
        let n = nonces(300);
        let start = 1_700_000_100; // a multiple of 300
        let nonce = n.issue(start);
        assert_eq!(n.issue(start + 299), nonce, "same interval, same nonce");
        assert!(n.is_valid(&nonce, start));
        assert!(n.is_valid(&nonce, start + 299));
        assert!(n.is_valid(&nonce, start + 300), "previous interval");
        assert!(n.is_valid(&nonce, start + 599));
        assert!(!n.is_valid(&nonce, start + 600), "two intervals old");
        assert!(!n.is_valid(&nonce, start - 31), "a future interval");
        assert!(
            n.is_valid(&nonce, start - 30),
            "handed out as the next nonce by now"
        );
        assert!(!n.is_valid(&nonce, start - 300));
    }

    #[test]
    fn next_nonce_near_rotation() {
        let n = nonces(300);
        let start = 1_700_000_100;
        assert_eq!(n.next_if_near_rotation(start), None);
        assert_eq!(n.next_if_near_rotation(start + 269), None);
        let next = n.next_if_near_rotation(start + 270);
        assert_eq!(next, Some(n.issue(start + 300)), "last 30 s of 300");
        assert_eq!(n.next_if_near_rotation(start + 299), next);
        // Usable as soon as it is handed out, and in the following two intervals.
        let next = next.unwrap_or_default();
        assert!(!n.is_valid(&next, start + 269));
        assert!(n.is_valid(&next, start + 270));
        assert!(n.is_valid(&next, start + 899));
        assert!(!n.is_valid(&next, start + 900));
        // Short intervals keep a window of 3 s.
        let short = nonces(10);
        assert_eq!(short.next_if_near_rotation(1_700_000_006), None);
        assert!(short.next_if_near_rotation(1_700_000_007).is_some());
    }

    #[test]
    fn forged_and_malformed_nonces_refused() {
        let n = nonces(300);
        let now = 1_700_000_100;
        let nonce = n.issue(now);
        // Another secret, a flipped MAC bit, a truncated or padded nonce, junk.
        assert!(!Nonces::new([8; 32], Duration::from_secs(300)).is_valid(&nonce, now));
        let mut bytes = b64::decode_strict(&nonce).expect("b64");
        bytes[NONCE_BYTES - 1] ^= 1;
        assert!(!n.is_valid(&b64::encode(&bytes), now));
        assert!(!n.is_valid(&nonce[..31], now));
        assert!(!n.is_valid(&format!("{nonce}A"), now));
        assert!(!n.is_valid("", now));
        assert!(!n.is_valid(&"A".repeat(NONCE_CHARS), now));
        assert!(!n.is_valid(&"*".repeat(NONCE_CHARS), now));
        // A MAC of the right interval moved onto another interval number.
        let mut moved = b64::decode_strict(&nonce).expect("b64");
        moved[7] ^= 1;
        assert!(!n.is_valid(&b64::encode(&moved), now));
    }

    #[test]
    fn zero_interval_is_one_second_and_times_near_limits_do_not_panic() {
        let n = Nonces::new(SECRET, Duration::ZERO);
        assert!(n.is_valid(&n.issue(5), 6));
        for now in [i64::MIN, -1, 0, i64::MAX] {
            let nonce = n.issue(now);
            assert!(n.is_valid(&nonce, now));
            let _ = n.next_if_near_rotation(now);
        }
    }

    #[test]
    fn passphrase_secret_is_separated() {
        let s = secret_from_passphrase("secret");
        // PBKDF2-HMAC-SHA256, 200,000 rounds, as Python's hashlib computes it.
        assert_eq!(
            crate::hex::lower(&s),
            "856450dc51d302c22582fc75dba24e46b0fa53f31aa6a0b48dbbeacf5083cd4a"
        );
        assert_eq!(s, secret_from_passphrase("secret"));
        assert_ne!(s, secret_from_passphrase("secret2"));
        assert_ne!(s, crate::digest::sha256(&[b"secret"]));
        assert_ne!(
            s,
            crate::digest::sha256(&[b"mod_oauth2 cache encryption v1\0", b"secret"])
        );
    }
}
