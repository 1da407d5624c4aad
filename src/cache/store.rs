//! The storage-backend interface shared by the shm, file, Redis and memcached caches, and the few
//! rules every backend applies the same way (TTL rounding, key checks, the clock).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// The backend cannot serve now (server down, timeout, protocol error, backing off).
    Unavailable(String),
    KeyTooLong {
        len: usize,
        max: usize,
    },
    ValueTooLong {
        len: usize,
        max: usize,
    },
    /// A local failure or an invalid argument (bad key characters, file system error, ...).
    Io(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "unavailable: {m}"),
            StoreError::KeyTooLong { len, max } => write!(f, "key too long ({len} > {max} bytes)"),
            StoreError::ValueTooLong { len, max } => {
                write!(f, "value too long ({len} > {max} bytes)")
            }
            StoreError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A shared key-value store with per-entry TTL. Keys are short ASCII strings (already hashed by the
/// caller, hex, at most 200 bytes); values are opaque bytes. Implementations are Send + Sync,
/// never panic on input, and bound every network operation by `timeout`.
pub(crate) trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    /// Insert if absent, atomically across every process sharing the store (for DPoP replay
    /// detection): Ok(true) if inserted, Ok(false) if the key existed (and had not expired). Of
    /// two concurrent inserters of one key, exactly one gets Ok(true).
    fn insert_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
}

/// Longest key any backend accepts (the trait's contract; shm may allow less).
pub(crate) const MAX_KEY_LEN: usize = 200;

/// The TTL in whole seconds, rounded up; `None` for a zero TTL, which means "do not store".
/// With `None`, `set` is a no-op and `insert_if_absent` reports Ok(true) without storing anything.
pub(crate) fn ttl_secs(ttl: Duration) -> Option<u64> {
    if ttl.is_zero() {
        return None;
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    Some(secs.max(1))
}

/// Seconds since the Unix epoch (0 if the clock is before 1970, which only makes entries expire).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Common key check: non-empty, at most `max` bytes, and only `[0-9A-Za-z_-]` — the caller's keys
/// are hex digests, so anything else is a bug and is refused rather than passed to a path or a
/// text protocol.
pub(crate) fn check_key(key: &str, max: usize) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Io("empty cache key".into()));
    }
    if key.len() > max {
        return Err(StoreError::KeyTooLong {
            len: key.len(),
            max,
        });
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(StoreError::Io(
            "cache key contains characters other than [0-9A-Za-z_-]".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounding() {
        assert_eq!(ttl_secs(Duration::ZERO), None);
        assert_eq!(ttl_secs(Duration::from_millis(1)), Some(1));
        assert_eq!(ttl_secs(Duration::from_secs(1)), Some(1));
        assert_eq!(ttl_secs(Duration::from_millis(1001)), Some(2));
        assert_eq!(ttl_secs(Duration::from_secs(300)), Some(300));
        assert_eq!(ttl_secs(Duration::MAX), Some(u64::MAX));
    }

    #[test]
    fn key_checks() {
        assert!(check_key("abc-DEF_09", 200).is_ok());
        assert_eq!(
            check_key(&"a".repeat(201), 200),
            Err(StoreError::KeyTooLong { len: 201, max: 200 })
        );
        assert!(check_key(&"a".repeat(200), 200).is_ok());
        for bad in ["", "a b", "a/b", "../x", "a\r\nb", "é", "a.b"] {
            assert!(
                matches!(check_key(bad, 200), Err(StoreError::Io(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn display_is_short() {
        assert_eq!(
            StoreError::KeyTooLong { len: 3, max: 2 }.to_string(),
            "key too long (3 > 2 bytes)"
        );
        assert_eq!(
            StoreError::Unavailable("x".into()).to_string(),
            "unavailable: x"
        );
    }
}

/// Races of concurrent inserters, for every backend's tests.
#[cfg(test)]
pub(crate) mod race {
    use super::Store;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    pub(crate) const TTL: Duration = Duration::from_secs(60);

    pub(crate) fn key(round: &str, i: usize) -> String {
        format!("race-{round}-{i:04}")
    }

    /// `threads` inserters, each with its own store from `open` (as separate processes have), race
    /// on each of `keys` keys in turn; returns how many got Ok(true) per key.
    pub(crate) fn threads<S: Store + 'static>(
        open: impl Fn() -> S,
        round: &str,
        threads: usize,
        keys: usize,
    ) -> Vec<usize> {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = open();
                let barrier = barrier.clone();
                let round = round.to_string();
                std::thread::spawn(move || {
                    (0..keys)
                        .map(|i| {
                            barrier.wait();
                            let value = format!("thread {t}");
                            store
                                .insert_if_absent(&key(&round, i), value.as_bytes(), TTL)
                                .unwrap()
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        let mut inserted = vec![0; keys];
        for h in handles {
            for (i, ok) in h.join().unwrap().into_iter().enumerate() {
                inserted[i] += usize::from(ok);
            }
        }
        inserted
    }

    /// `procs` forked children race on `keys` keys (all released at once); returns how many
    /// inserts succeeded in all (each key once: `keys`).
    pub(crate) fn processes(store: &dyn Store, round: &str, procs: usize, keys: usize) -> usize {
        assert!(keys < 256, "counted in an exit status");
        // Made before forking: the children allocate as little as the store lets them.
        let names: Vec<String> = (0..keys).map(|i| key(round, i)).collect();
        let mut fds = [0; 2];
        // SAFETY: pipe(2) writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let children: Vec<libc::pid_t> = (0..procs)
            .map(|_| {
                // SAFETY: the child only waits on the pipe, uses the store and leaves with _exit
                // (no destructors, no test harness code).
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0);
                if pid == 0 {
                    let mut b = [0u8; 1];
                    // SAFETY: closing our copy of the write end, then a read into a local buffer:
                    // it returns (EOF) once the parent closes its write end.
                    unsafe {
                        libc::close(fds[1]);
                        libc::read(fds[0], b.as_mut_ptr().cast(), 1);
                    }
                    let n = names
                        .iter()
                        .filter(|k| store.insert_if_absent(k, b"child", TTL) == Ok(true))
                        .count();
                    // SAFETY: ends the child without running the parent's destructors.
                    unsafe { libc::_exit(n as i32) };
                }
                pid
            })
            .collect();
        // SAFETY: closing our own descriptors; the children, all forked, start now.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        children
            .into_iter()
            .map(|pid| {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status), "child died: {status}");
                libc::WEXITSTATUS(status) as usize
            })
            .sum()
    }
}
