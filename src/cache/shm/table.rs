//! The hash table on top of the mapping, in safe code: a key's keyed hash picks a segment and a
//! start slot, and the key only ever looks at a bounded probe window of that segment, under the
//! segment's lock.

use std::hash::Hasher;
use std::time::Duration;

use super::layout::{Layout, SlotHeader};
use super::mapping::{Mapping, Segment};
use super::mutex::LockError;
use crate::cache::store::StoreError;

/// How long to wait for a segment lock before giving up (a stuck process holding it).
pub(super) const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// What `put` does with a live entry of the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Put {
    Overwrite,
    /// Leave it, and report that nothing was inserted.
    IfAbsent,
}

pub(super) struct Table {
    map: Mapping,
    /// The SipHash key, drawn when the table is created and inherited by forked children along
    /// with the mapping.
    seed: [u64; 2],
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

/// Where a key was found in its window.
struct Probe {
    found: Option<usize>,
    /// The first free or expired slot (an expired copy of the key itself, if there is one).
    free: Option<usize>,
    /// The least recently used live slot that may be pushed out (none is pinned).
    lru: Option<usize>,
}

impl Table {
    pub(super) fn new(layout: Layout) -> Result<Table, StoreError> {
        Ok(Table {
            map: Mapping::new(layout)?,
            seed: random_seed(),
        })
    }

    pub(super) fn layout(&self) -> &Layout {
        self.map.layout()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        // SipHash-2-4 keyed with the random seed: keys an attacker chooses cannot be aimed at one
        // window. (std's keyed SipHasher is deprecated only in favour of crates we do not use.)
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.seed[0], self.seed[1]);
        h.write(key);
        h.finish()
    }

    /// (segment, first slot of the window).
    fn place(&self, hash: u64) -> (usize, usize) {
        let l = self.layout();
        let seg = ((hash >> 32) as usize) & (l.segments - 1);
        let start = (hash as u32 as usize) % l.slots_per_segment;
        (seg, start)
    }

    #[cfg(test)]
    pub(super) fn segment_of(&self, key: &[u8]) -> usize {
        self.place(self.hash(key)).0
    }

    pub(super) fn lock(&self, seg: usize) -> Result<Segment<'_>, StoreError> {
        match self.map.lock(seg, LOCK_TIMEOUT) {
            Ok(mut segment) => {
                if segment.owner_died() {
                    // A process died holding this lock, possibly half-way through a write: drop
                    // the segment's cached entries. Recorded DPoP jtis stay: a live pinned slot
                    // is never written (insert-if-absent leaves it, a put of another key never picks it),
                    // and forgetting them would let their proofs be replayed.
                    for h in segment.parts().0.iter_mut().filter(|h| h.pinned == 0) {
                        *h = SlotHeader::EMPTY;
                    }
                }
                Ok(segment)
            }
            Err(LockError::TimedOut) => Err(StoreError::Unavailable(
                "shm: segment lock timed out".into(),
            )),
            Err(LockError::Failed(e)) => Err(StoreError::Unavailable(format!(
                "shm: segment lock failed: errno {e}"
            ))),
        }
    }

    fn probe(
        &self,
        headers: &[SlotHeader],
        slots: &[u8],
        start: usize,
        hash: u64,
        key: &[u8],
        now: u64,
    ) -> Probe {
        let l = self.layout();
        let key_at = |idx: usize| &slots[idx * l.slot_size..][..key.len()];
        let mut free = None;
        let mut lru: Option<(u64, usize)> = None;
        for i in 0..l.window {
            let idx = (start + i) % l.slots_per_segment;
            let h = &headers[idx];
            let same_key = !h.is_empty()
                && h.hash == hash
                && usize::from(h.key_len) == key.len()
                && key_at(idx) == key;
            if h.is_empty() || h.expiry <= now {
                if same_key {
                    // An expired copy of this very key: reuse its slot.
                    return Probe {
                        found: None,
                        free: Some(idx),
                        lru: lru.map(|(_, idx)| idx),
                    };
                }
                free.get_or_insert(idx);
                continue;
            }
            if same_key {
                return Probe {
                    found: Some(idx),
                    free,
                    lru: lru.map(|(_, idx)| idx),
                };
            }
            if h.pinned == 0 && lru.is_none_or(|(at, _)| h.last_access < at) {
                lru = Some((h.last_access, idx));
            }
        }
        Probe {
            found: None,
            free,
            lru: lru.map(|(_, idx)| idx),
        }
    }

    /// The value of a live entry; `key` fits (checked by the caller).
    pub(super) fn get_at(&self, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let l = *self.layout();
        let hash = self.hash(key);
        let (seg, start) = self.place(hash);
        let mut segment = self.lock(seg)?;
        let (headers, slots) = segment.parts();
        let p = self.probe(headers, slots, start, hash, key, now);
        let Some(idx) = p.found else {
            if let Some(idx) = p.free {
                // Clearing an expired copy of this key (or an already empty slot).
                let h = &mut headers[idx];
                if !h.is_empty() && h.hash == hash {
                    *h = SlotHeader::EMPTY;
                }
            }
            return Ok(None);
        };
        let h = &mut headers[idx];
        h.last_access = now;
        let len = (h.val_len as usize).min(l.max_val);
        let value = &slots[idx * l.slot_size + l.max_key..][..len];
        Ok(Some(value.to_vec()))
    }

    /// Stores an entry for `ttl` seconds; false only for `Put::IfAbsent` on a live key. `key` and
    /// `value` fit (checked by the caller).
    pub(super) fn put_at(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: u64,
        now: u64,
        mode: Put,
    ) -> Result<bool, StoreError> {
        let l = *self.layout();
        let hash = self.hash(key);
        let (seg, start) = self.place(hash);
        let mut segment = self.lock(seg)?;
        let (headers, slots) = segment.parts();
        let p = self.probe(headers, slots, start, hash, key, now);
        if p.found.is_some() && mode == Put::IfAbsent {
            return Ok(false);
        }
        // What insert-if-absent records (a DPoP proof's jti) must not be forgotten while it is
        // live, nor make something else forgotten: with every slot of the window live, it fails.
        if mode == Put::IfAbsent && p.free.is_none() {
            return Err(StoreError::Unavailable(
                "full: every slot this key may use holds a live entry (raise max_entries)".into(),
            ));
        }
        // Nor may a plain put (a verified token, a flood of them) push out a pinned entry.
        let Some(idx) = p.found.or(p.free).or(p.lru) else {
            return Err(StoreError::Unavailable(
                "full: every slot this key may use holds a live DPoP jti (raise max_entries)"
                    .into(),
            ));
        };
        let slot = &mut slots[idx * l.slot_size..][..l.slot_size];
        slot[..key.len()].copy_from_slice(key);
        slot[l.max_key..][..value.len()].copy_from_slice(value);
        headers[idx] = SlotHeader {
            expiry: now.saturating_add(ttl),
            last_access: now,
            hash,
            key_len: key.len() as u16,
            pinned: u16::from(mode == Put::IfAbsent),
            val_len: value.len() as u32,
        };
        Ok(true)
    }
}
