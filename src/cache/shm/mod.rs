//! Shared-memory backend: an anonymous shared mapping created in the Apache parent before it forks,
//! inherited by every child. Unlike the C module (one global semaphore, a linear scan of every
//! slot), the table is split into segments, each with its own process-shared robust mutex, and a
//! key only ever looks at a bounded probe window of its own segment.
//!
//! - `layout`: where the mutexes, slot headers and slots sit (arithmetic only);
//! - `mapping`: the mapping itself, the only code touching its memory, which it hands out per
//!   segment while that segment's lock is held;
//! - `mutex`: the process-shared robust mutex (a holder that dies does not wedge the segment);
//! - `table`: the hash table on top, in safe code.

mod layout;
mod mapping;
mod mutex;
mod table;

use std::time::Duration;

use super::store::{Store, StoreError, check_key, now_unix, ttl_secs};
use layout::Layout;
use table::{Put, Table};

/// Whether a cache of these sizes can be laid out (checked when the configuration is read).
pub(crate) fn check_sizes(
    max_key_size: usize,
    max_val_size: usize,
    max_entries: usize,
) -> Result<(), StoreError> {
    Layout::new(max_key_size, max_val_size, max_entries).map(|_| ())
}

pub(crate) struct ShmStore {
    table: Table,
}

impl ShmStore {
    pub(crate) fn new(
        max_key_size: usize,
        max_val_size: usize,
        max_entries: usize,
    ) -> Result<ShmStore, StoreError> {
        let layout = Layout::new(max_key_size, max_val_size, max_entries)?;
        Ok(ShmStore {
            table: Table::new(layout)?,
        })
    }

    fn check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let l = self.table.layout();
        check_key(key, l.max_key)?;
        if value.len() > l.max_val {
            return Err(StoreError::ValueTooLong {
                len: value.len(),
                max: l.max_val,
            });
        }
        Ok(())
    }

    pub(crate) fn get_at(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key, self.table.layout().max_key)?;
        self.table.get_at(key.as_bytes(), now)
    }

    /// Stores at a given time; Ok(false) only for `Put::IfAbsent` on a live key.
    fn put_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
        mode: Put,
    ) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let Some(ttl) = ttl_secs(ttl) else {
            return Ok(true);
        };
        self.table.put_at(key.as_bytes(), value, ttl, now, mode)
    }

    pub(crate) fn set_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        self.put_at(key, value, ttl, now, Put::Overwrite)
            .map(|_| ())
    }

    /// Insert if absent, under the segment's lock.
    pub(crate) fn insert_if_absent_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.put_at(key, value, ttl, now, Put::IfAbsent)
    }
}

impl Store for ShmStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_at(key, now_unix())
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.set_at(key, value, ttl, now_unix())
    }

    fn insert_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.insert_if_absent_at(key, value, ttl, now_unix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::race;

    const S: Duration = Duration::from_secs(1);
    const NOW: u64 = 1_700_000_000;

    fn k(i: usize) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn get_set_overwrite_and_expiry() {
        let s = ShmStore::new(128, 100, 50).unwrap();
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), None);
        s.set_at(&k(1), b"one", S, NOW).unwrap();
        s.set_at(&k(2), b"two", Duration::from_secs(10), NOW)
            .unwrap();
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"one".to_vec()));
        assert_eq!(s.get_at(&k(2), NOW).unwrap(), Some(b"two".to_vec()));
        s.set_at(&k(1), b"uno", S, NOW).unwrap();
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"uno".to_vec()));
        // A TTL of 1 s: live during the second it was set, gone one second later.
        assert_eq!(s.get_at(&k(1), NOW + 1).unwrap(), None);
        assert_eq!(s.get_at(&k(2), NOW + 9).unwrap(), Some(b"two".to_vec()));
        assert_eq!(s.get_at(&k(2), NOW + 10).unwrap(), None);
        // Sub-second TTLs round up to one second; zero stores nothing.
        s.set_at(&k(3), b"x", Duration::from_millis(10), NOW)
            .unwrap();
        assert_eq!(s.get_at(&k(3), NOW).unwrap(), Some(b"x".to_vec()));
        s.set_at(&k(4), b"x", Duration::ZERO, NOW).unwrap();
        assert_eq!(s.get_at(&k(4), NOW).unwrap(), None);
        // Empty values and real-clock use.
        s.set(&k(5), b"", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get(&k(5)).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn sizes_are_enforced_without_truncation() {
        let s = ShmStore::new(64, 100, 10).unwrap();
        let full: Vec<u8> = (0..100u8).collect();
        s.set(&k(1), &full, S).unwrap();
        assert_eq!(s.get(&k(1)).unwrap(), Some(full));
        assert_eq!(
            s.set(&k(2), &[0; 101], S),
            Err(StoreError::ValueTooLong { len: 101, max: 100 })
        );
        assert_eq!(
            s.insert_if_absent(&k(2), &[0; 101], S),
            Err(StoreError::ValueTooLong { len: 101, max: 100 })
        );
        assert_eq!(s.get(&k(2)).unwrap(), None);
        let long = "a".repeat(65);
        assert_eq!(
            s.set(&long, b"v", S),
            Err(StoreError::KeyTooLong { len: 65, max: 64 })
        );
        assert_eq!(
            s.get(&long),
            Err(StoreError::KeyTooLong { len: 65, max: 64 })
        );
        let exact = "b".repeat(64);
        s.set(&exact, b"v", S).unwrap();
        assert_eq!(s.get(&exact).unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn evicts_least_recently_accessed_in_a_full_window() {
        let s = ShmStore::new(64, 16, 4).unwrap();
        assert_eq!(s.table.layout().window, 4);
        for i in 0..4 {
            s.set_at(&k(i), b"v", Duration::from_secs(100), NOW + i as u64)
                .unwrap();
        }
        // Touch key 0 so key 1 is now the least recently accessed.
        assert!(s.get_at(&k(0), NOW + 10).unwrap().is_some());
        s.set_at(&k(9), b"new", Duration::from_secs(100), NOW + 11)
            .unwrap();
        let present: Vec<bool> = (0..4)
            .map(|i| s.get_at(&k(i), NOW + 12).unwrap().is_some())
            .collect();
        assert_eq!(present, vec![true, false, true, true]);
        assert_eq!(s.get_at(&k(9), NOW + 12).unwrap(), Some(b"new".to_vec()));
        // An expired slot is reused before anything live is evicted.
        s.set_at(&k(20), b"short", S, NOW + 13).unwrap();
        s.set_at(&k(21), b"v", Duration::from_secs(100), NOW + 20)
            .unwrap();
        let live = [0, 2, 3, 9, 21]
            .iter()
            .filter(|&&i| s.get_at(&k(i), NOW + 21).unwrap().is_some())
            .count();
        assert_eq!(
            live, 4,
            "four slots: k(20) expired and was replaced, one older key was evicted by it"
        );
    }

    #[test]
    fn many_keys_mostly_stay() {
        let s = ShmStore::new(64, 16, 1000).unwrap();
        for i in 0..500 {
            s.set_at(&k(i), &i.to_be_bytes(), Duration::from_secs(100), NOW)
                .unwrap();
        }
        let hits = (0..500)
            .filter(|&i| s.get_at(&k(i), NOW).unwrap() == Some(i.to_be_bytes().to_vec()))
            .count();
        // Half full with bounded probing: only rare windows overflow.
        assert!(hits > 480, "{hits}");
    }

    #[test]
    fn insert_if_absent_never_evicts_a_live_entry() {
        let s = ShmStore::new(128, 16, 4).unwrap();
        let mut inserted = 0;
        let mut full = 0;
        for i in 0..64 {
            match s.insert_if_absent_at(&k(i), b"x", S, NOW) {
                Ok(true) => inserted += 1,
                Err(StoreError::Unavailable(why)) if why.starts_with("full") => full += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            inserted >= 4 && full > 0,
            "inserted {inserted}, full {full}"
        );
        // Every key that went in is still there: nothing live was pushed out.
        let kept = (0..64)
            .filter(|i| s.get_at(&k(*i), NOW).unwrap().is_some())
            .count();
        assert_eq!(kept, inserted);
        // Once they expire, their slots are used again.
        assert_eq!(
            s.insert_if_absent_at(&k(100), b"x", S, NOW + 3600),
            Ok(true)
        );
    }

    /// A DPoP proof's jti shares the default cache with verified tokens: a flood of `set`s (a
    /// client with many tokens) must not push a live jti out, or its proof could be replayed.
    #[test]
    fn set_never_evicts_what_insert_if_absent_recorded() {
        let s = ShmStore::new(128, 16, 4).unwrap();
        let recorded: Vec<usize> = (0..8)
            .filter(|i| s.insert_if_absent_at(&k(*i), b"x", S * 60, NOW) == Ok(true))
            .collect();
        assert!(!recorded.is_empty());
        for i in 1000..1200 {
            let _ = s.set_at(&k(i), b"token", S * 60, NOW + 1);
        }
        for i in &recorded {
            assert_eq!(
                s.insert_if_absent_at(&k(*i), b"x", S * 60, NOW + 2),
                Ok(false),
                "jti {i} was pushed out by set"
            );
        }
        // Once it expires, its slot is used again.
        assert_eq!(s.set_at(&k(2000), b"token", S, NOW + 3600), Ok(()));
    }

    #[test]
    fn insert_if_absent_semantics() {
        let s = ShmStore::new(64, 16, 10).unwrap();
        assert_eq!(s.insert_if_absent_at(&k(1), b"a", S, NOW), Ok(true));
        assert_eq!(s.insert_if_absent_at(&k(1), b"b", S, NOW), Ok(false));
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"a".to_vec()));
        // Expired: inserted again.
        assert_eq!(s.insert_if_absent_at(&k(1), b"c", S, NOW + 1), Ok(true));
        assert_eq!(s.get_at(&k(1), NOW + 1).unwrap(), Some(b"c".to_vec()));
        assert!(s.insert_if_absent(&k(2), b"x", S).unwrap());
        assert!(!s.insert_if_absent(&k(2), b"x", S).unwrap());
    }

    #[test]
    fn concurrent_inserters_of_one_key_get_one_true() {
        let s = std::sync::Arc::new(ShmStore::new(64, 64, 4096).unwrap());
        let inserted = race::threads(|| Shared(s.clone()), "threads", 8, 200);
        assert!(inserted.iter().all(|&n| n == 1), "{inserted:?}");
        // Processes sharing the mapping, as Apache's children do.
        assert_eq!(race::processes(&*s, "procs", 4, 200), 200);
    }

    /// One mapping used through several handles, as threads of a child use it.
    struct Shared(std::sync::Arc<ShmStore>);

    impl Store for Shared {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
            self.0.set(key, value, ttl)
        }
        fn insert_if_absent(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
        ) -> Result<bool, StoreError> {
            self.0.insert_if_absent(key, value, ttl)
        }
    }

    fn wait_child(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status),
            "child did not exit normally: {status}"
        );
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn shared_across_fork() {
        let s = ShmStore::new(128, 64, 100).unwrap();
        s.set(&k(1), b"from parent", Duration::from_secs(60))
            .unwrap();
        // SAFETY: the child only uses the store (no allocation on success, no locks other than the
        // store's own, which no other thread holds) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = s.set(&k(2), b"from child", Duration::from_secs(60)).is_ok()
                && s.insert_if_absent(&k(1), b"x", Duration::from_secs(60)) == Ok(false);
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert_eq!(wait_child(pid), 0);
        assert_eq!(s.get(&k(2)).unwrap(), Some(b"from child".to_vec()));
        assert_eq!(s.get(&k(1)).unwrap(), Some(b"from parent".to_vec()));
    }

    /// A forked child takes the lock of `key`'s segment and exits without releasing it, as a
    /// process dying mid-write would.
    fn die_holding_the_lock_of(s: &ShmStore, key: &str) {
        let seg = s.table.segment_of(key.as_bytes());
        // SAFETY: as in shared_across_fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = s.table.lock(seg).map(std::mem::forget).is_ok();
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert_eq!(wait_child(pid), 0);
    }

    #[test]
    fn lock_of_a_dead_process_is_recovered() {
        let s = ShmStore::new(128, 64, 1000).unwrap();
        let a = k(1);
        let b = (2..)
            .map(k)
            .find(|x| s.table.segment_of(x.as_bytes()) != s.table.segment_of(a.as_bytes()))
            .unwrap();
        s.set(&a, b"a", Duration::from_secs(60)).unwrap();
        s.set(&b, b"b", Duration::from_secs(60)).unwrap();
        die_holding_the_lock_of(&s, &a);
        let t = std::time::Instant::now();
        // The dead owner's segment was cleared (it might have been half-written) ...
        assert_eq!(s.get(&a).unwrap(), None);
        assert!(
            t.elapsed() < table::LOCK_TIMEOUT,
            "recovered via EOWNERDEAD, not a timeout"
        );
        // ... other segments were not touched, and the recovered segment works normally again.
        assert_eq!(s.get(&b).unwrap(), Some(b"b".to_vec()));
        s.set(&a, b"a2", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get(&a).unwrap(), Some(b"a2".to_vec()));
        assert_eq!(s.get(&a).unwrap(), Some(b"a2".to_vec()));
    }

    #[test]
    fn a_dead_lock_holder_does_not_make_recorded_jtis_forgotten() {
        let s = ShmStore::new(128, 64, 1000).unwrap();
        let jti = k(1);
        let cached = (2..)
            .map(k)
            .find(|x| s.table.segment_of(x.as_bytes()) == s.table.segment_of(jti.as_bytes()))
            .unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(s.insert_if_absent(&jti, b"", ttl), Ok(true));
        s.set(&cached, b"result", ttl).unwrap();
        die_holding_the_lock_of(&s, &jti);
        // The plain entry may have been half-written and goes; the recorded jti (never written
        // while live) stays, or its proof could be replayed.
        assert_eq!(s.get(&cached).unwrap(), None);
        assert_eq!(s.insert_if_absent(&jti, b"", ttl), Ok(false));
    }

    #[test]
    fn concurrent_threads() {
        let s = std::sync::Arc::new(ShmStore::new(64, 64, 4096).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let key = k(t * 1000 + i);
                        s.set(&key, key.as_bytes(), Duration::from_secs(60))
                            .unwrap();
                        let v = s.get(&key).unwrap();
                        assert!(v.is_none() || v.as_deref() == Some(key.as_bytes()));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
