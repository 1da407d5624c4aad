//! The shared anonymous mapping, created in the Apache parent before it forks and inherited by
//! every child, and the only way into it: a segment's headers and slots, handed out as slices while
//! that segment's robust mutex is held. No other code touches the mapping's memory.

use std::ptr::{self, NonNull};
use std::time::Duration;

use super::layout::{Layout, SlotHeader};
use super::mutex::{LockError, RobustGuard, RobustMutex};
use crate::cache::store::StoreError;

pub(super) struct Mapping {
    base: NonNull<u8>,
    layout: Layout,
    /// One per segment, each inside the mapping.
    mutexes: Vec<RobustMutex>,
}

// SAFETY: the mapping is never moved or unmapped while `self` lives, and its mutable parts are
// only reachable through `lock`, under the owning segment's process-shared mutex.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `&Mapping` gives no access to the memory except under a segment's mutex.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `layout.len` zero-filled bytes (every slot starts empty) and initialises the mutexes.
    pub(super) fn new(layout: Layout) -> Result<Mapping, StoreError> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(StoreError::Io(format!(
                "shm cache: mmap of {} bytes failed: {}",
                layout.len,
                std::io::Error::last_os_error()
            )));
        }
        let Some(base) = NonNull::new(base.cast::<u8>()) else {
            return Err(StoreError::Io("shm cache: mmap returned null".into()));
        };
        // From here on, dropping `map` unmaps (also when a mutex fails to initialise).
        let mut map = Mapping {
            base,
            layout,
            mutexes: Vec::with_capacity(layout.segments),
        };
        for seg in 0..layout.segments {
            let raw = map
                .base
                .as_ptr()
                .wrapping_add(layout.mutex_off(seg))
                .cast::<libc::pthread_mutex_t>();
            // SAFETY: the layout puts each mutex in bounds, 64-byte aligned and apart from
            // everything else; the mapping is ours alone until `new` returns, and the handle lives
            // in `map`, which unmaps only when dropped.
            let mutex = unsafe { RobustMutex::init(raw) }.map_err(StoreError::Io)?;
            map.mutexes.push(mutex);
        }
        Ok(map)
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Locks segment `seg` (< segments) and gives access to its slot headers and slots.
    pub(super) fn lock(&self, seg: usize, timeout: Duration) -> Result<Segment<'_>, LockError> {
        let guard = self.mutexes[seg].lock(timeout)?;
        let l = &self.layout;
        // SAFETY: the layout puts the segment's headers and slots in bounds, disjoint from each
        // other, from other segments and from the mutexes, with SlotHeader's alignment (64);
        // SlotHeader is plain integers, valid for any bytes. Only the holder of this segment's
        // mutex (us, until `guard` drops) creates these slices, and Segment hands them out only
        // for borrows of itself, so they never outlive the lock.
        let (headers, slots) = unsafe {
            let base = self.base.as_ptr();
            (
                std::slice::from_raw_parts_mut(
                    base.add(l.segment_headers_off(seg)).cast::<SlotHeader>(),
                    l.slots_per_segment,
                ),
                std::slice::from_raw_parts_mut(
                    base.add(l.segment_slots_off(seg)),
                    l.segment_slots_len(),
                ),
            )
        };
        Ok(Segment {
            headers,
            slots,
            guard,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping from new(), and no Segment borrows it any more (they
        // borrow `self`). Other processes keep their own mappings.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.layout.len) };
    }
}

/// One locked segment; unlocks when dropped.
pub(super) struct Segment<'a> {
    headers: &'a mut [SlotHeader],
    slots: &'a mut [u8],
    guard: RobustGuard<'a>,
}

impl Segment<'_> {
    /// The segment's slot headers and its slots (`slot_size` bytes each), borrowed from the lock.
    pub(super) fn parts(&mut self) -> (&mut [SlotHeader], &mut [u8]) {
        (&mut *self.headers, &mut *self.slots)
    }

    /// Whether a process died holding this segment's lock (its slots may be half-written).
    pub(super) fn owner_died(&self) -> bool {
        self.guard.owner_died()
    }
}
