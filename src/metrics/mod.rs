//! What the module did, counted for every child and thread of the server in one shared region
//! (see [`region`]): requests accepted and refused (by reason), cache hits and misses, remote
//! fetches, time spent, key-set ages and DPoP replays. Shown in the Prometheus text format by
//! `SetHandler oauth2-metrics` and on mod_status's page ([`render`]).
//!
//! Like the log sink, this is a process-wide sink rather than per-configuration state: the counts
//! outlive configuration generations (graceful restarts), and they are recorded where the work is
//! done, deep in the core. Recording is a relaxed atomic add to this thread's stripe (no lock);
//! before the Apache layer installs a region (unit tests, `apache2 -t`) it does nothing.

pub(crate) mod layout;
pub(crate) mod reasons;
pub(crate) mod region;
pub(crate) mod render;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::authz::ClaimNotSatisfied;
use crate::refusal::Refusal;
pub(crate) use layout::{CacheLayer, FetchKind};
use region::{CLAIMING, KEY_SETS, KeySetSlot, STRIPES, Shared, URL_MAX};

thread_local! {
    /// This thread's stripe (`usize::MAX`: none yet).
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The configuration generation this process serves (see [`KeySetSlot::generation`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Installs `shared` for this process, in the parent as httpd starts reading a configuration
/// (before any directive): a new configuration generation begins.
pub(crate) fn start_generation(shared: &'static Shared) {
    let generation = shared.header.generation.fetch_add(1, Ordering::Relaxed) + 1;
    GENERATION.store(generation, Ordering::Relaxed);
    region::install(shared);
}

/// A new child process: its threads take stripes of their own, not the one the parent's thread
/// may have had (prefork children run on the thread they were forked from).
pub(crate) fn child_started() {
    STRIPE.with(|s| s.set(usize::MAX));
}

fn stripe(shared: &Shared) -> &[AtomicU64] {
    let i = STRIPE.with(|s| {
        let mut i = s.get();
        if i >= STRIPES {
            let next = shared.header.next_stripe.fetch_add(1, Ordering::Relaxed);
            i = usize::try_from(next % STRIPES as u64).unwrap_or(0);
            s.set(i);
        }
        i
    });
    &shared.stripes[i].0
}

fn add(word: usize, n: u64) {
    if let Some(shared) = region::installed() {
        stripe(shared)[word].fetch_add(n, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How the request ended that the hook decided (`None`: not ours to count, e.g. declined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decided {
    Accepted,
    /// The index of the reason in [`reasons::REASONS`], and whether it was a DPoP replay.
    Refused {
        reason: usize,
        replay: bool,
    },
}

impl Decided {
    pub(crate) fn refused(refusal: &Refusal) -> Decided {
        Decided::Refused {
            reason: reasons::index(refusal.label()),
            replay: matches!(refusal, Refusal::DpopReplay { .. }),
        }
    }

    /// Authenticated, then refused by `Require oauth2_claim`.
    pub(crate) fn claim_not_satisfied() -> Decided {
        Decided::Refused {
            reason: reasons::index(ClaimNotSatisfied.label()),
            replay: false,
        }
    }
}

/// One request decided: refused by the check_authn hook, which took `took`, or accepted by it (or
/// refused by `Require oauth2_claim` after it) once httpd's authorization is known.
pub(crate) fn decided(decided: Decided, took: Duration) {
    let Some(shared) = region::installed() else {
        return;
    };
    let stripe = stripe(shared);
    match decided {
        Decided::Accepted => {
            stripe[layout::ACCEPTED].fetch_add(1, Ordering::Relaxed);
        }
        Decided::Refused { reason, replay } => {
            stripe[layout::refused(reason)].fetch_add(1, Ordering::Relaxed);
            if replay {
                stripe[layout::DPOP_REPLAYS].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let ns = nanos(took);
    let h = layout::VERIFY_SECONDS;
    stripe[h.bucket(ns)].fetch_add(1, Ordering::Relaxed);
    stripe[h.sum()].fetch_add(ns, Ordering::Relaxed);
}

/// A lookup of a token's result in a cache layer.
pub(crate) fn cache(layer: CacheLayer, hit: bool) {
    add(layout::cache(layer, hit), 1);
}

/// One outgoing request (`ok`: a usable answer), which took `took`.
pub(crate) fn remote_fetch(kind: FetchKind, ok: bool, took: Duration) {
    let Some(shared) = region::installed() else {
        return;
    };
    let stripe = stripe(shared);
    stripe[layout::fetches(kind, ok)].fetch_add(1, Ordering::Relaxed);
    let ns = nanos(took);
    let h = layout::fetch_seconds(kind);
    stripe[h.bucket(ns)].fetch_add(1, Ordering::Relaxed);
    stripe[h.sum()].fetch_add(ns, Ordering::Relaxed);
}

/// A key set this configuration uses (its age is shown from now on, even before a first fetch).
pub(crate) fn key_set_used(url: &str) {
    if let Some(slot) = region::installed().and_then(|s| key_set_slot(s, url)) {
        slot.generation
            .fetch_max(GENERATION.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// The key set at `url` was obtained (fetched, or read from a shared cache) at Unix time `now`.
pub(crate) fn key_set_obtained(url: &str, now: u64) {
    if let Some(slot) = region::installed().and_then(|s| key_set_slot(s, url)) {
        slot.generation
            .fetch_max(GENERATION.load(Ordering::Relaxed), Ordering::Relaxed);
        slot.obtained.fetch_max(now, Ordering::Relaxed);
    }
}

fn url_hash(url: &str) -> u64 {
    let mut h = layout::Fnv::default();
    h.write(url.as_bytes());
    // Never 0 (free) nor CLAIMING.
    (h.0 >> 1) | 1
}

fn slot_url(slot: &KeySetSlot) -> Option<String> {
    let len = usize::try_from(slot.len.load(Ordering::Relaxed)).ok()?;
    let bytes: Vec<u8> = slot
        .url
        .get(..len)?
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    String::from_utf8(bytes).ok()
}

/// `url` without user information (`user:password@` before the host): a label value is shown to
/// whoever reads the metrics or mod_status's page, and stored by monitoring systems.
fn without_userinfo(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..start], &url[start + at + 1..])),
        None => Cow::Borrowed(url),
    }
}

/// The slot of `url` (without its credentials), claimed if it has none yet; `None` when the URL
/// is too long or every slot is taken.
fn key_set_slot<'a>(shared: &'a Shared, url: &str) -> Option<&'a KeySetSlot> {
    let url = &*without_userinfo(url);
    if url.is_empty() || url.len() > URL_MAX {
        return None;
    }
    let hash = url_hash(url);
    let start = usize::try_from(hash % KEY_SETS as u64).unwrap_or(0);
    for i in 0..KEY_SETS {
        let slot = &shared.key_sets[(start + i) % KEY_SETS];
        let mut seen = slot.hash.load(Ordering::Acquire);
        if seen == 0 {
            match slot
                .hash
                .compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    for (cell, b) in slot.url.iter().zip(url.bytes()) {
                        cell.store(b, Ordering::Relaxed);
                    }
                    slot.len.store(url.len() as u64, Ordering::Relaxed);
                    slot.hash.store(hash, Ordering::Release);
                    return Some(slot);
                }
                Err(now) => seen = now,
            }
        }
        // Another process claiming a slot (CLAIMING) may be writing this very URL: a second slot
        // for it is possible in that race; the snapshot shows one of them.
        if seen == hash && slot_url(slot).as_deref() == Some(url) {
            return Some(slot);
        }
    }
    None
}

/// Every counter summed over the stripes, and the key sets of this configuration generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) words: Vec<u64>,
    /// (URL, Unix seconds it was last obtained, if ever), sorted by URL, each URL once.
    pub(crate) key_sets: Vec<(String, Option<u64>)>,
}

impl Snapshot {
    pub(crate) fn word(&self, w: usize) -> u64 {
        self.words.get(w).copied().unwrap_or(0)
    }
}

/// The counts so far; `None` when no region is installed.
pub(crate) fn snapshot() -> Option<Snapshot> {
    region::installed().map(|shared| snapshot_of(shared, GENERATION.load(Ordering::Relaxed)))
}

fn snapshot_of(shared: &Shared, generation: u64) -> Snapshot {
    let mut words = vec![0u64; layout::WORDS];
    for stripe in &shared.stripes {
        for (sum, counter) in words.iter_mut().zip(stripe.0.iter()) {
            *sum = sum.wrapping_add(counter.load(Ordering::Relaxed));
        }
    }
    let mut key_sets: Vec<(String, Option<u64>)> = Vec::new();
    for slot in &shared.key_sets {
        let hash = slot.hash.load(Ordering::Acquire);
        if hash == 0 || hash == CLAIMING || slot.generation.load(Ordering::Relaxed) < generation {
            continue;
        }
        let Some(url) = slot_url(slot) else {
            continue;
        };
        let obtained = Some(slot.obtained.load(Ordering::Relaxed)).filter(|t| *t > 0);
        key_sets.push((url, obtained));
    }
    key_sets.sort();
    // A URL in two slots (a claiming race): the latest time wins (sorted: None < Some, older first).
    key_sets.reverse();
    key_sets.dedup_by(|later, kept| later.0 == kept.0);
    key_sets.reverse();
    Snapshot { words, key_sets }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::Refusal;

    fn fresh() -> &'static Shared {
        region::map_new().unwrap().0
    }

    #[test]
    fn stripes_are_summed_and_threads_spread_over_them() {
        let shared = fresh();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stripe(shared)[layout::ACCEPTED].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let used = shared
            .stripes
            .iter()
            .filter(|s| s.0[layout::ACCEPTED].load(Ordering::Relaxed) > 0)
            .count();
        assert_eq!(used, 8, "one stripe per thread");
        assert_eq!(snapshot_of(shared, 0).word(layout::ACCEPTED), 8000);
    }

    #[test]
    fn a_refusal_counts_its_reason_and_a_replay_also_as_a_replay() {
        let replay = Decided::refused(&Refusal::DpopReplay {
            verifier: "v".into(),
        });
        assert_eq!(
            replay,
            Decided::Refused {
                reason: reasons::index("dpop_replay"),
                replay: true
            }
        );
        assert_eq!(
            Decided::refused(&Refusal::NoToken),
            Decided::Refused {
                reason: reasons::index("no_token"),
                replay: false
            }
        );
        let claim = Decided::claim_not_satisfied();
        assert_eq!(
            claim,
            Decided::Refused {
                reason: reasons::index("claim_not_satisfied"),
                replay: false
            }
        );
        assert_ne!(
            claim,
            Decided::Refused {
                reason: reasons::index(reasons::OTHER),
                replay: false
            }
        );
    }

    #[test]
    fn key_sets_are_found_again_and_shown_for_the_current_generation() {
        let shared = fresh();
        let a = "https://as.example/jwks";
        let b = "https://other.example/keys";
        let first = key_set_slot(shared, a).unwrap();
        first.generation.store(2, Ordering::Relaxed);
        first.obtained.store(1_000, Ordering::Relaxed);
        assert!(std::ptr::eq(key_set_slot(shared, a).unwrap(), first));
        let second = key_set_slot(shared, b).unwrap();
        assert!(!std::ptr::eq(first, second));
        second.generation.store(1, Ordering::Relaxed);
        let snap = snapshot_of(shared, 2);
        assert_eq!(snap.key_sets, vec![(a.to_string(), Some(1_000))]);
        let snap = snapshot_of(shared, 1);
        assert_eq!(
            snap.key_sets,
            vec![(a.to_string(), Some(1_000)), (b.to_string(), None)]
        );
        assert!(key_set_slot(shared, "").is_none());
        assert!(key_set_slot(shared, &"x".repeat(URL_MAX + 1)).is_none());
        assert!(key_set_slot(shared, &"x".repeat(URL_MAX)).is_some());
    }

    #[test]
    fn credentials_in_a_key_set_url_are_never_shown() {
        let shared = fresh();
        let with = key_set_slot(shared, "https://user:s3cret@as.example/jwks?a=b@c").unwrap();
        with.generation.store(1, Ordering::Relaxed);
        let without = key_set_slot(shared, "https://as.example/jwks?a=b@c").unwrap();
        assert!(std::ptr::eq(with, without), "one series per key set");
        let other = key_set_slot(shared, "HTTP://other:pw@h:8080").unwrap();
        other.generation.store(1, Ordering::Relaxed);
        assert_eq!(
            snapshot_of(shared, 1).key_sets,
            vec![
                ("HTTP://h:8080".to_string(), None),
                ("https://as.example/jwks?a=b@c".to_string(), None)
            ]
        );
    }

    #[test]
    fn key_set_slots_run_out_without_harm() {
        let shared = fresh();
        for i in 0..KEY_SETS {
            assert!(key_set_slot(shared, &format!("https://k{i}.example/")).is_some());
        }
        assert!(key_set_slot(shared, "https://one-too-many.example/").is_none());
        assert!(key_set_slot(shared, "https://k7.example/").is_some());
    }

    #[test]
    fn a_url_claimed_twice_is_shown_once_with_the_latest_time() {
        let shared = fresh();
        let url = "https://as.example/jwks";
        for (i, obtained) in [(5, 100), (6, 300)] {
            let slot = &shared.key_sets[i];
            for (cell, b) in slot.url.iter().zip(url.bytes()) {
                cell.store(b, Ordering::Relaxed);
            }
            slot.len.store(url.len() as u64, Ordering::Relaxed);
            slot.obtained.store(obtained, Ordering::Relaxed);
            slot.generation.store(1, Ordering::Relaxed);
            slot.hash.store(url_hash(url), Ordering::Release);
        }
        assert_eq!(
            snapshot_of(shared, 1).key_sets,
            vec![(url.to_string(), Some(300))]
        );
    }
}
