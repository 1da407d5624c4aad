//! Shared-memory backend: an anonymous shared mapping created in the Apache parent before it forks,
//! inherited by every child. Unlike the C module (one global semaphore, a linear scan of every
//! slot), the table is split into segments, each with its own process-shared robust mutex, and a
//! key only ever looks at a bounded probe window of its own segment.
//!
//! Layout (every part 64-byte aligned, for strict-alignment CPUs):
//! `[header: magic, seed][mutex per segment][SlotHeader per slot][slots]`, and a slot is
//! `[key: max_key_size bytes][value: max_val_size bytes]` rounded up to 64 bytes. The slot headers
//! sit together so that probing a window reads a few adjacent cache lines, not one page per slot
//! (a miss would otherwise cost 16 cache and TLB misses and make every child touch every page).
//!
//! The mapping is shared with other processes, so it is only touched through raw pointers, and
//! only while holding the segment's mutex; no Rust reference to it outlives the lock.

use std::hash::Hasher;
use std::ptr;
use std::time::Duration;

use super::store::{Store, StoreError, check_key, now_unix, ttl_secs};

const ALIGN: usize = 64;
const HEADER_SIZE: usize = 64;
const MAGIC: u64 = 0x6d6f_645f_6f61_7532; // "mod_oau2"
const MAX_SEGMENTS: usize = 64;
/// Slots looked at per key: bounds the work under a lock whatever max_entries is.
const MAX_WINDOW: usize = 16;
const MAX_TOTAL: usize = 1 << 30;
/// How long to wait for a segment lock before giving up (a stuck process holding it).
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

#[repr(C)]
struct RegionHeader {
    magic: u64,
    seed: [u64; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SlotHeader {
    /// Unix seconds; the entry is live while now < expiry.
    expiry: u64,
    last_access: u64,
    /// The keyed hash, compared before the key bytes.
    hash: u64,
    /// 0 = empty slot.
    key_len: u16,
    _pad: u16,
    val_len: u32,
}

const SLOT_HEADER: usize = std::mem::size_of::<SlotHeader>();
const EMPTY: SlotHeader = SlotHeader {
    expiry: 0,
    last_access: 0,
    hash: 0,
    key_len: 0,
    _pad: 0,
    val_len: 0,
};

pub struct ShmStore {
    base: *mut u8,
    len: usize,
    segments: usize,
    slots_per_segment: usize,
    window: usize,
    slot_size: usize,
    max_key: usize,
    max_val: usize,
    mutex_stride: usize,
    headers_off: usize,
    slots_off: usize,
}

// SAFETY: the mapping is never moved or unmapped while `self` lives, and every access to its
// mutable parts happens under the owning segment's process-shared mutex.
unsafe impl Send for ShmStore {}
unsafe impl Sync for ShmStore {}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

fn random_seed() -> [u64; 2] {
    let mut b = [0u8; 16];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        // Fall back to std's per-process random hash keys (also seeded from the OS).
        let s =
            std::hash::BuildHasher::build_hasher(&std::collections::hash_map::RandomState::new())
                .finish();
        b[..8].copy_from_slice(&s.to_ne_bytes());
    }
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}

/// Unlocks a segment when dropped.
struct SegGuard {
    mutex: *mut libc::pthread_mutex_t,
}

impl Drop for SegGuard {
    fn drop(&mut self) {
        // SAFETY: we hold this mutex (SegGuard exists only after a successful lock).
        unsafe { libc::pthread_mutex_unlock(self.mutex) };
    }
}

impl ShmStore {
    pub fn new(
        max_key_size: usize,
        max_val_size: usize,
        max_entries: usize,
    ) -> Result<ShmStore, StoreError> {
        let invalid = |m: &str| StoreError::Io(format!("shm cache: {m}"));
        if max_key_size == 0 || max_key_size > usize::from(u16::MAX) {
            return Err(invalid("max_key_size must be between 1 and 65535"));
        }
        if max_entries == 0 {
            return Err(invalid("max_entries must be at least 1"));
        }
        // Power-of-two segment count, about 16 slots per segment, at most 64 segments.
        let target = (max_entries / 16).max(1);
        let segments = (1usize << (usize::BITS - 1 - target.leading_zeros())).min(MAX_SEGMENTS);
        let slots_per_segment = max_entries.div_ceil(segments);
        let window = slots_per_segment.min(MAX_WINDOW);
        let mutex_stride =
            round_up(std::mem::size_of::<libc::pthread_mutex_t>(), ALIGN).unwrap_or(ALIGN);
        let headers_off = HEADER_SIZE + segments * mutex_stride;
        let too_big = || invalid("max_entries * (max_key_size + max_val_size) exceeds 1 GiB");
        let total_slots = segments
            .checked_mul(slots_per_segment)
            .ok_or_else(too_big)?;
        let slots_off = total_slots
            .checked_mul(SLOT_HEADER)
            .and_then(|n| round_up(n, ALIGN))
            .and_then(|n| n.checked_add(headers_off))
            .ok_or_else(too_big)?;
        let slot_size = max_key_size
            .checked_add(max_val_size)
            .and_then(|n| round_up(n, ALIGN))
            .ok_or_else(too_big)?;
        let len = total_slots
            .checked_mul(slot_size)
            .and_then(|n| n.checked_add(slots_off))
            .filter(|&n| n <= MAX_TOTAL)
            .ok_or_else(too_big)?;
        if u32::try_from(max_val_size).is_err() {
            return Err(too_big());
        }

        // SAFETY: a fresh anonymous mapping; zero-filled, so every slot starts empty.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(invalid(&format!(
                "mmap of {len} bytes failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        let store = ShmStore {
            base: base.cast(),
            len,
            segments,
            slots_per_segment,
            window,
            slot_size,
            max_key: max_key_size,
            max_val: max_val_size,
            mutex_stride,
            headers_off,
            slots_off,
        };
        // SAFETY: the mapping is ours alone until the store is shared; header and mutexes are in
        // bounds and aligned.
        unsafe {
            ptr::write(
                store.base.cast::<RegionHeader>(),
                RegionHeader {
                    magic: MAGIC,
                    seed: random_seed(),
                },
            );
            for seg in 0..segments {
                store.init_mutex(seg)?;
            }
        }
        Ok(store)
    }

    /// # Safety
    /// Only during construction, before any other thread or process can use the segment.
    unsafe fn init_mutex(&self, seg: usize) -> Result<(), StoreError> {
        let fail =
            |what: &str, rc: i32| StoreError::Io(format!("shm cache: {what} failed: errno {rc}"));
        // SAFETY: attr is a local initialised by pthread_mutexattr_init before use; the mutex
        // pointer is in bounds and suitably aligned.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            let rc = libc::pthread_mutexattr_init(&mut attr);
            if rc != 0 {
                return Err(fail("pthread_mutexattr_init", rc));
            }
            let mut rc =
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(self.mutex(seg), &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                return Err(fail("process-shared robust mutex init", rc));
            }
        }
        Ok(())
    }

    fn mutex(&self, seg: usize) -> *mut libc::pthread_mutex_t {
        // In bounds: seg < segments, checked by callers (derived from the hash mask).
        self.base
            .wrapping_add(HEADER_SIZE + seg * self.mutex_stride)
            .cast()
    }

    /// The header of a slot (in bounds for seg < segments, idx < slots_per_segment).
    fn header(&self, seg: usize, idx: usize) -> *mut SlotHeader {
        self.base
            .wrapping_add(self.headers_off + (seg * self.slots_per_segment + idx) * SLOT_HEADER)
            .cast()
    }

    /// The key bytes of a slot, followed at `max_key` by its value.
    fn slot(&self, seg: usize, idx: usize) -> *mut u8 {
        self.base
            .wrapping_add(self.slots_off + (seg * self.slots_per_segment + idx) * self.slot_size)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        // SAFETY: the header is written once at creation and only read afterwards.
        let seed = unsafe { ptr::read(ptr::addr_of!((*self.base.cast::<RegionHeader>()).seed)) };
        // SipHash-2-4 keyed with the random seed: keys an attacker chooses cannot be aimed at one
        // window. (std's keyed SipHasher is deprecated only in favour of crates we do not use.)
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(seed[0], seed[1]);
        h.write(key);
        h.finish()
    }

    fn place(&self, hash: u64) -> (usize, usize) {
        let seg = ((hash >> 32) as usize) & (self.segments - 1);
        let start = (hash as u32 as usize) % self.slots_per_segment;
        (seg, start)
    }

    fn lock(&self, seg: usize) -> Result<SegGuard, StoreError> {
        let m = self.mutex(seg);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        ts.tv_sec = ts
            .tv_sec
            .saturating_add(LOCK_TIMEOUT.as_secs() as libc::time_t);
        // SAFETY: m points to a mutex initialised in new(), living as long as the mapping.
        let rc = unsafe { libc::pthread_mutex_timedlock(m, &ts) };
        match rc {
            0 => Ok(SegGuard { mutex: m }),
            libc::EOWNERDEAD => {
                // A process died holding this lock, possibly half-way through a write: make the
                // mutex usable again and drop the segment's entries (it is only a cache).
                // SAFETY: we now own the mutex; the slots are in bounds.
                unsafe {
                    libc::pthread_mutex_consistent(m);
                    for idx in 0..self.slots_per_segment {
                        ptr::write(self.header(seg, idx), EMPTY);
                    }
                }
                Ok(SegGuard { mutex: m })
            }
            libc::ETIMEDOUT => Err(StoreError::Unavailable(
                "shm: segment lock timed out".into(),
            )),
            e => Err(StoreError::Unavailable(format!(
                "shm: segment lock failed: errno {e}"
            ))),
        }
    }

    /// Finds the key in its window: (found slot, first free-or-expired slot, least recently used).
    ///
    /// # Safety
    /// The caller holds the segment's lock.
    unsafe fn probe(
        &self,
        seg: usize,
        start: usize,
        hash: u64,
        key: &[u8],
        now: u64,
    ) -> (Option<usize>, Option<usize>, usize) {
        let mut free = None;
        let mut lru = (u64::MAX, start);
        for i in 0..self.window {
            let idx = (start + i) % self.slots_per_segment;
            // SAFETY: in bounds; we hold the lock, so nobody writes concurrently.
            let h = unsafe { ptr::read(self.header(seg, idx)) };
            let p = self.slot(seg, idx);
            if h.key_len == 0 || h.expiry <= now {
                if h.key_len != 0 && h.hash == hash && usize::from(h.key_len) == key.len() {
                    // An expired copy of this very key: reuse its slot.
                    // SAFETY: key bytes are within the slot; the slice dies before the lock.
                    if unsafe { std::slice::from_raw_parts(p, key.len()) } == key {
                        return (None, Some(idx), lru.1);
                    }
                }
                free.get_or_insert(idx);
                continue;
            }
            if h.hash == hash && usize::from(h.key_len) == key.len() {
                // SAFETY: as above.
                if unsafe { std::slice::from_raw_parts(p, key.len()) } == key {
                    return (Some(idx), free, lru.1);
                }
            }
            if h.last_access < lru.0 {
                lru = (h.last_access, idx);
            }
        }
        (None, free, lru.1)
    }

    fn check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_key(key, self.max_key)?;
        if value.len() > self.max_val {
            return Err(StoreError::ValueTooLong {
                len: value.len(),
                max: self.max_val,
            });
        }
        Ok(())
    }

    /// # Safety
    /// The caller holds the segment's lock; key and value fit (checked by `check`).
    unsafe fn write_slot(
        &self,
        (seg, idx): (usize, usize),
        hash: u64,
        key: &[u8],
        value: &[u8],
        now: u64,
        ttl: u64,
    ) {
        let p = self.slot(seg, idx);
        // SAFETY: key/value lengths were checked against the slot's capacity.
        unsafe {
            ptr::copy_nonoverlapping(key.as_ptr(), p, key.len());
            ptr::copy_nonoverlapping(value.as_ptr(), p.add(self.max_key), value.len());
            ptr::write(
                self.header(seg, idx),
                SlotHeader {
                    expiry: now.saturating_add(ttl),
                    last_access: now,
                    hash,
                    key_len: key.len() as u16,
                    _pad: 0,
                    val_len: value.len() as u32,
                },
            );
        }
    }

    pub(crate) fn get_at(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key, self.max_key)?;
        let hash = self.hash(key.as_bytes());
        let (seg, start) = self.place(hash);
        let _guard = self.lock(seg)?;
        // SAFETY: we hold the segment lock for the rest of this function.
        unsafe {
            let (found, free, _) = self.probe(seg, start, hash, key.as_bytes(), now);
            let Some(idx) = found else {
                if let Some(idx) = free {
                    // Clearing an expired copy of this key (or an already empty slot).
                    let hp = self.header(seg, idx);
                    if (*hp).key_len != 0 && (*hp).hash == hash {
                        ptr::write(hp, EMPTY);
                    }
                }
                return Ok(None);
            };
            let hp = self.header(seg, idx);
            (*hp).last_access = now;
            let len = ((*hp).val_len as usize).min(self.max_val);
            let mut out = vec![0u8; len];
            let value = self.slot(seg, idx).add(self.max_key);
            ptr::copy_nonoverlapping(value, out.as_mut_ptr(), len);
            Ok(Some(out))
        }
    }

    /// `set` (add = false) or `add` (add = true) at a given time; Ok(false) only for add on a live key.
    pub(crate) fn store_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
        add: bool,
    ) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let Some(ttl) = ttl_secs(ttl) else {
            return Ok(true);
        };
        let hash = self.hash(key.as_bytes());
        let (seg, start) = self.place(hash);
        let _guard = self.lock(seg)?;
        // SAFETY: we hold the segment lock for the rest of this function.
        unsafe {
            let (found, free, lru) = self.probe(seg, start, hash, key.as_bytes(), now);
            if found.is_some() && add {
                return Ok(false);
            }
            let idx = found.or(free).unwrap_or(lru);
            self.write_slot((seg, idx), hash, key.as_bytes(), value, now, ttl);
        }
        Ok(true)
    }

    #[cfg(test)]
    fn segment_of(&self, key: &str) -> usize {
        self.place(self.hash(key.as_bytes())).0
    }

    /// Test hook: takes a segment lock and never releases it (as a process dying mid-write would).
    #[cfg(test)]
    fn lock_and_leak(&self, seg: usize) -> bool {
        match self.lock(seg) {
            Ok(g) => {
                std::mem::forget(g);
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for ShmStore {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping from new(); other processes keep their own mappings.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl Store for ShmStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_at(key, now_unix())
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.store_at(key, value, ttl, now_unix(), false)
            .map(|_| ())
    }

    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.store_at(key, value, ttl, now_unix(), true)
    }

    fn name(&self) -> &'static str {
        "shm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const NOW: u64 = 1_700_000_000;

    fn k(i: usize) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn geometry() {
        let s = ShmStore::new(192, 8192, 1000).unwrap();
        assert_eq!((s.segments, s.slots_per_segment, s.window), (32, 32, 16));
        assert_eq!(s.slot_size % 64, 0);
        assert_eq!(s.slots_off % 64, 0);
        assert!(s.slot_size >= 192 + 8192);
        // The headers of a window are adjacent (probing reads them, not the slots), and the slots
        // start after all of them.
        assert_eq!(s.headers_off % 64, 0);
        assert_eq!(
            s.header(3, 5) as usize + SLOT_HEADER,
            s.header(3, 6) as usize
        );
        assert!(s.slots_off >= s.headers_off + 32 * 32 * SLOT_HEADER);
        assert!(s.slot(31, 31) as usize + s.slot_size <= s.base as usize + s.len);
        let s = ShmStore::new(64, 16, 3).unwrap();
        assert_eq!((s.segments, s.slots_per_segment, s.window), (1, 3, 3));
        let s = ShmStore::new(64, 16, 1_000_000).unwrap();
        assert_eq!((s.segments, s.window), (64, 16));
        assert!(s.segments * s.slots_per_segment >= 1_000_000);
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(ShmStore::new(192, 1024 * 1024, 2000).is_err());
        assert!(ShmStore::new(192, usize::MAX - 10, 1).is_err());
        assert!(ShmStore::new(0, 10, 10).is_err());
        assert!(ShmStore::new(70_000, 10, 10).is_err());
        assert!(ShmStore::new(64, 10, 0).is_err());
    }

    #[test]
    fn get_set_overwrite_and_expiry() {
        let s = ShmStore::new(128, 100, 50).unwrap();
        assert_eq!(s.name(), "shm");
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), None);
        s.store_at(&k(1), b"one", S, NOW, false).unwrap();
        s.store_at(&k(2), b"two", Duration::from_secs(10), NOW, false)
            .unwrap();
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"one".to_vec()));
        assert_eq!(s.get_at(&k(2), NOW).unwrap(), Some(b"two".to_vec()));
        s.store_at(&k(1), b"uno", S, NOW, false).unwrap();
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"uno".to_vec()));
        // A TTL of 1 s: live during the second it was set, gone one second later.
        assert_eq!(s.get_at(&k(1), NOW + 1).unwrap(), None);
        assert_eq!(s.get_at(&k(2), NOW + 9).unwrap(), Some(b"two".to_vec()));
        assert_eq!(s.get_at(&k(2), NOW + 10).unwrap(), None);
        // Sub-second TTLs round up to one second; zero stores nothing.
        s.store_at(&k(3), b"x", Duration::from_millis(10), NOW, false)
            .unwrap();
        assert_eq!(s.get_at(&k(3), NOW).unwrap(), Some(b"x".to_vec()));
        s.store_at(&k(4), b"x", Duration::ZERO, NOW, false).unwrap();
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
            s.add(&k(2), &[0; 101], S),
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
        assert_eq!(s.window, 4);
        for i in 0..4 {
            s.store_at(&k(i), b"v", Duration::from_secs(100), NOW + i as u64, false)
                .unwrap();
        }
        // Touch key 0 so key 1 is now the least recently accessed.
        assert!(s.get_at(&k(0), NOW + 10).unwrap().is_some());
        s.store_at(&k(9), b"new", Duration::from_secs(100), NOW + 11, false)
            .unwrap();
        let present: Vec<bool> = (0..4)
            .map(|i| s.get_at(&k(i), NOW + 12).unwrap().is_some())
            .collect();
        assert_eq!(present, vec![true, false, true, true]);
        assert_eq!(s.get_at(&k(9), NOW + 12).unwrap(), Some(b"new".to_vec()));
        // An expired slot is reused before anything live is evicted.
        s.store_at(&k(20), b"short", S, NOW + 13, false).unwrap();
        s.store_at(&k(21), b"v", Duration::from_secs(100), NOW + 20, false)
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
            s.store_at(
                &k(i),
                &i.to_be_bytes(),
                Duration::from_secs(100),
                NOW,
                false,
            )
            .unwrap();
        }
        let hits = (0..500)
            .filter(|&i| s.get_at(&k(i), NOW).unwrap() == Some(i.to_be_bytes().to_vec()))
            .count();
        // Half full with bounded probing: only rare windows overflow.
        assert!(hits > 480, "{hits}");
    }

    #[test]
    fn add_semantics() {
        let s = ShmStore::new(64, 16, 10).unwrap();
        assert_eq!(s.store_at(&k(1), b"a", S, NOW, true), Ok(true));
        assert_eq!(s.store_at(&k(1), b"b", S, NOW, true), Ok(false));
        assert_eq!(s.get_at(&k(1), NOW).unwrap(), Some(b"a".to_vec()));
        // Expired: inserted again.
        assert_eq!(s.store_at(&k(1), b"c", S, NOW + 1, true), Ok(true));
        assert_eq!(s.get_at(&k(1), NOW + 1).unwrap(), Some(b"c".to_vec()));
        assert!(s.add(&k(2), b"x", S).unwrap());
        assert!(!s.add(&k(2), b"x", S).unwrap());
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
                && s.add(&k(1), b"x", Duration::from_secs(60)) == Ok(false);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert_eq!(wait_child(pid), 0);
        assert_eq!(s.get(&k(2)).unwrap(), Some(b"from child".to_vec()));
        assert_eq!(s.get(&k(1)).unwrap(), Some(b"from parent".to_vec()));
    }

    #[test]
    fn lock_of_a_dead_process_is_recovered() {
        let s = ShmStore::new(128, 64, 1000).unwrap();
        let a = k(1);
        let b = (2..)
            .map(k)
            .find(|x| s.segment_of(x) != s.segment_of(&a))
            .unwrap();
        s.set(&a, b"a", Duration::from_secs(60)).unwrap();
        s.set(&b, b"b", Duration::from_secs(60)).unwrap();
        let seg = s.segment_of(&a);
        // SAFETY: as in shared_across_fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = s.lock_and_leak(seg);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert_eq!(wait_child(pid), 0);
        let t = std::time::Instant::now();
        // The dead owner's segment was cleared (it might have been half-written) ...
        assert_eq!(s.get(&a).unwrap(), None);
        assert!(
            t.elapsed() < LOCK_TIMEOUT,
            "recovered via EOWNERDEAD, not a timeout"
        );
        // ... other segments were not touched, and the recovered segment works normally again.
        assert_eq!(s.get(&b).unwrap(), Some(b"b".to_vec()));
        s.set(&a, b"a2", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get(&a).unwrap(), Some(b"a2".to_vec()));
        assert_eq!(s.get(&a).unwrap(), Some(b"a2".to_vec()));
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
