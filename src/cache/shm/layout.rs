//! Where everything sits in the shared segment: sizes and offsets only, no memory access.
//!
//! `[mutex per segment][SlotHeader per slot][slots]`, every part 64-byte aligned (for
//! strict-alignment CPUs), and a slot is `[key: max_key bytes][value: max_val bytes]` rounded up
//! to 64 bytes. The slot headers sit together so that probing a window reads a few adjacent cache
//! lines, not one page per slot (a miss would otherwise cost 16 cache and TLB misses and make every
//! child touch every page).

use super::super::store::StoreError;

pub(super) const ALIGN: usize = 64;
const MAX_SEGMENTS: usize = 64;
/// Slots looked at per key: bounds the work under a lock whatever max_entries is.
const MAX_WINDOW: usize = 16;
const MAX_TOTAL: usize = 1 << 30;

/// The fixed-size part of a slot. Plain integers: every bit pattern (a zero-filled mapping, a
/// process that died half-way through a write) is a valid value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SlotHeader {
    /// Unix seconds; the entry is live while now < expiry.
    pub(crate) expiry: u64,
    pub(crate) last_access: u64,
    /// The keyed hash, compared before the key bytes.
    pub(crate) hash: u64,
    /// 0 = empty slot.
    pub(crate) key_len: u16,
    /// Non-zero when put by insert-if-absent (a DPoP proof's jti): never pushed out while live.
    pub(crate) pinned: u16,
    pub(crate) val_len: u32,
}

pub(super) const SLOT_HEADER: usize = std::mem::size_of::<SlotHeader>();

impl SlotHeader {
    pub(crate) const EMPTY: SlotHeader = SlotHeader {
        expiry: 0,
        last_access: 0,
        hash: 0,
        key_len: 0,
        pinned: 0,
        val_len: 0,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.key_len == 0
    }
}

/// The geometry of one shared segment, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(crate) segments: usize,
    pub(crate) slots_per_segment: usize,
    pub(crate) window: usize,
    pub(crate) slot_size: usize,
    pub(crate) max_key: usize,
    pub(crate) max_val: usize,
    pub(crate) mutex_stride: usize,
    pub(crate) headers_off: usize,
    pub(crate) slots_off: usize,
    /// Bytes of the whole mapping.
    pub(crate) len: usize,
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

impl Layout {
    pub(crate) fn new(
        max_key_size: usize,
        max_val_size: usize,
        max_entries: usize,
    ) -> Result<Layout, StoreError> {
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
        let headers_off = segments * mutex_stride;
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
        Ok(Layout {
            segments,
            slots_per_segment,
            window,
            slot_size,
            max_key: max_key_size,
            max_val: max_val_size,
            mutex_stride,
            headers_off,
            slots_off,
            len,
        })
    }

    /// Offset of a segment's mutex.
    pub(crate) fn mutex_off(&self, seg: usize) -> usize {
        seg * self.mutex_stride
    }

    /// Offset of a segment's first slot header; its `slots_per_segment` headers follow.
    pub(crate) fn segment_headers_off(&self, seg: usize) -> usize {
        self.headers_off + seg * self.slots_per_segment * SLOT_HEADER
    }

    /// Offset of a segment's first slot; its `slots_per_segment` slots follow.
    pub(crate) fn segment_slots_off(&self, seg: usize) -> usize {
        self.slots_off + seg * self.segment_slots_len()
    }

    /// Bytes of one segment's slots.
    pub(crate) fn segment_slots_len(&self) -> usize {
        self.slots_per_segment * self.slot_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        let l = Layout::new(192, 8192, 1000).unwrap();
        assert_eq!((l.segments, l.slots_per_segment, l.window), (32, 32, 16));
        assert_eq!(l.slot_size % ALIGN, 0);
        assert_eq!(l.slots_off % ALIGN, 0);
        assert_eq!(l.headers_off % ALIGN, 0);
        assert!(l.slot_size >= 192 + 8192);
        assert!(l.mutex_stride >= std::mem::size_of::<libc::pthread_mutex_t>());
        assert!(l.mutex_off(31) + l.mutex_stride <= l.headers_off);
        // The headers of a window are adjacent (probing reads them, not the slots), and the slots
        // start after all of them.
        assert_eq!(
            l.segment_headers_off(4),
            l.segment_headers_off(3) + 32 * SLOT_HEADER
        );
        assert!(l.slots_off >= l.segment_headers_off(31) + 32 * SLOT_HEADER);
        assert_eq!(l.segment_slots_off(31) + l.segment_slots_len(), l.len);
        let l = Layout::new(64, 16, 3).unwrap();
        assert_eq!((l.segments, l.slots_per_segment, l.window), (1, 3, 3));
        let l = Layout::new(64, 16, 1_000_000).unwrap();
        assert_eq!((l.segments, l.window), (64, 16));
        assert!(l.segments * l.slots_per_segment >= 1_000_000);
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(Layout::new(192, 1024 * 1024, 2000).is_err());
        assert!(Layout::new(192, usize::MAX - 10, 1).is_err());
        assert!(Layout::new(0, 10, 10).is_err());
        assert!(Layout::new(70_000, 10, 10).is_err());
        assert!(Layout::new(64, 10, 0).is_err());
    }
}
