//! The shared memory that holds the metrics, and the only code that touches it unsafely: an
//! anonymous shared mapping made in the Apache parent (so every child inherits it) and kept for
//! the life of the parent process. httpd unloads and reloads the module on every restart, which
//! resets Rust statics; the Apache layer keeps the mapping's address in httpd's retained data and
//! hands it back to [`attach`] after the reload, so the counts carry on. It is never unmapped
//! while in use: children that finish their requests after a graceful restart still count in it.
//!
//! Everything in it is an atomic integer (all-zero bytes are a valid value for each), so the
//! mapping is read and written through shared references only; a zero-filled new mapping is a
//! valid empty region.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

use super::layout::{self, WORDS};

/// Stripes of counters: each thread adds to its own stripe (assigned round robin), so threads
/// and children rarely write the same cache line; a reader sums them.
pub(crate) const STRIPES: usize = 64;
/// Key sets whose age is kept (distinct URLs over the life of the parent process).
pub(crate) const KEY_SETS: usize = 64;
/// The longest key-set URL kept (longer ones have no age gauge).
pub(crate) const URL_MAX: usize = 1024;

/// Identifies a region made by this code, before the layout fingerprint is compared.
const MAGIC: u64 = u64::from_le_bytes(*b"oa2metr1");

/// The geometry of the region around the words of a stripe: a region of another geometry has
/// another fingerprint, even when its size happens to be the same (key-set slots and counters
/// would be read at other offsets, with other labels).
fn shape() -> [(&'static str, usize); 5] {
    [
        ("stripes", STRIPES),
        ("key_sets", KEY_SETS),
        ("url_max", URL_MAX),
        ("key_set_slot", size_of::<KeySetSlot>()),
        ("size", size_of::<Shared>()),
    ]
}

/// This build's layout, stamped in every region it makes.
fn fingerprint() -> u64 {
    layout::fingerprint(&shape())
}

#[repr(C, align(64))]
pub(crate) struct Header {
    magic: AtomicU64,
    fingerprint: AtomicU64,
    /// Configuration readings so far: which key sets the current one uses.
    pub(crate) generation: AtomicU64,
    /// The next stripe to hand out.
    pub(crate) next_stripe: AtomicU64,
}

#[repr(C, align(64))]
pub(crate) struct Stripe(pub(crate) [AtomicU64; WORDS]);

/// One key-set URL and when it was last obtained. `hash` is 0 while free, [`CLAIMING`] while a
/// process writes the URL, then the URL's hash (published last, with Release ordering: whoever
/// reads the hash with Acquire ordering reads the whole URL).
#[repr(C, align(64))]
pub(crate) struct KeySetSlot {
    pub(crate) hash: AtomicU64,
    /// The latest configuration generation that uses or fetched the key set.
    pub(crate) generation: AtomicU64,
    /// Unix seconds of the last time the key set was obtained (0: never).
    pub(crate) obtained: AtomicU64,
    pub(crate) len: AtomicU64,
    pub(crate) url: [AtomicU8; URL_MAX],
}

pub(crate) const CLAIMING: u64 = u64::MAX;

#[repr(C)]
pub(crate) struct Shared {
    pub(crate) header: Header,
    pub(crate) stripes: [Stripe; STRIPES],
    pub(crate) key_sets: [KeySetSlot; KEY_SETS],
}

/// Where a region is, for the next load of the module to find it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) base: NonNull<u8>,
    pub(crate) len: usize,
}

/// The region this process counts in; null until [`install`].
static INSTALLED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

/// The region this process counts in, if any.
pub(crate) fn installed() -> Option<&'static Shared> {
    // SAFETY: INSTALLED is null or a region made by `map_new`, which is never unmapped while
    // installed (see `attach`); every field is an atomic valid for any bytes.
    unsafe { INSTALLED.load(Ordering::Acquire).as_ref() }
}

/// Counts in `shared` from now on.
pub(crate) fn install(shared: &'static Shared) {
    INSTALLED.store(std::ptr::from_ref(shared).cast_mut(), Ordering::Release);
}

/// The region at `previous` when it is one of this layout, else a new one (the old one is then
/// unmapped in this process; children that still use it keep their own mapping). Returns the
/// region and where it is.
///
/// # Safety
/// `previous` is `None` or the place returned by an earlier `attach` in this process or a parent
/// it was forked from, not unmapped since, and not installed in this process when `attach`
/// decides to replace it.
pub(crate) unsafe fn attach(previous: Option<Place>) -> Result<(&'static Shared, Place), String> {
    if let Some(p) = previous {
        if p.len == size_of::<Shared>() {
            // SAFETY: the caller's contract: a live mapping of at least `p.len` bytes from an
            // earlier attach, page-aligned; Shared is atomics only, valid for any bytes.
            let shared = unsafe { &*p.base.as_ptr().cast::<Shared>() };
            if shared.header.magic.load(Ordering::Acquire) == MAGIC
                && shared.header.fingerprint.load(Ordering::Acquire) == fingerprint()
            {
                return Ok((shared, p));
            }
        }
        // SAFETY: the caller's contract: the mapping came from `map_new` and nothing in this
        // process uses it any more.
        unsafe { libc::munmap(p.base.as_ptr().cast(), p.len) };
    }
    let (shared, place) = map_new()?;
    Ok((shared, place))
}

/// A new zero-filled region (every counter 0), stamped with this layout.
pub(crate) fn map_new() -> Result<(&'static Shared, Place), String> {
    let len = size_of::<Shared>();
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!(
            "metrics: mmap of {len} bytes failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let Some(base) = NonNull::new(base.cast::<u8>()) else {
        return Err("metrics: mmap returned null".into());
    };
    // SAFETY: `len` zero-filled bytes, page-aligned (more than Shared's 64), never unmapped while
    // referenced (only `attach` unmaps, and only a region that is not installed); Shared is
    // atomics only, for which zero bytes are valid.
    let shared = unsafe { &*base.as_ptr().cast::<Shared>() };
    shared
        .header
        .fingerprint
        .store(fingerprint(), Ordering::Relaxed);
    shared.header.magic.store(MAGIC, Ordering::Release);
    Ok((shared, Place { base, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_found_again_and_a_foreign_one_replaced() {
        let (first, place) = map_new().unwrap();
        first.stripes[3].0[7].fetch_add(5, Ordering::Relaxed);
        // SAFETY: `place` is the live mapping made just above, not installed.
        let (again, same) = unsafe { attach(Some(place)) }.unwrap();
        assert_eq!(same, place);
        assert_eq!(again.stripes[3].0[7].load(Ordering::Relaxed), 5);
        // Another layout (here: a damaged fingerprint) is not read as this one.
        again.header.fingerprint.store(1, Ordering::Relaxed);
        // SAFETY: as above; after this call `place` is unmapped and no longer used.
        let (fresh, other) = unsafe { attach(Some(place)) }.unwrap();
        assert_eq!(fresh.stripes[3].0[7].load(Ordering::Relaxed), 0);
        assert_eq!(other.len, size_of::<Shared>());
        // SAFETY: no place at all: a new mapping.
        let (_, new) = unsafe { attach(None) }.unwrap();
        assert_ne!(new.base, other.base);
    }

    #[test]
    fn the_fingerprint_covers_the_geometry() {
        let d = layout::description(&shape());
        for part in [
            format!(" stripes={STRIPES} "),
            format!(" key_sets={KEY_SETS} "),
            format!(" url_max={URL_MAX} "),
            format!(" key_set_slot={} ", size_of::<KeySetSlot>()),
            format!(" size={} ", size_of::<Shared>()),
        ] {
            assert!(d.contains(&part), "{part} missing from {d}");
        }
        let (shared, _) = map_new().unwrap();
        assert_eq!(
            shared.header.fingerprint.load(Ordering::Relaxed),
            layout::fingerprint(&shape())
        );
    }

    #[test]
    fn shared_with_a_forked_child() {
        let (shared, _) = map_new().unwrap();
        // SAFETY: the child only adds to atomics and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            shared.stripes[1].0[0].fetch_add(3, Ordering::Relaxed);
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(shared.stripes[1].0[0].load(Ordering::Relaxed), 3);
    }
}
