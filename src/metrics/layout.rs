//! Where each figure sits in a stripe of counters (arithmetic only): one flat array of 64-bit
//! counters per stripe, so that a snapshot sums stripes word by word and a new figure is one more
//! range here.

use std::fmt::Write as _;

use super::reasons::REASONS;

/// Cache layers of token results, in counter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheLayer {
    /// The token accepted on the previous request of the same keep-alive connection.
    Connection,
    /// This process's result cache.
    Process,
    /// The `verify.cache` shared by children (and hosts).
    Shared,
}

impl CacheLayer {
    pub(crate) const ALL: [CacheLayer; 3] = [
        CacheLayer::Connection,
        CacheLayer::Process,
        CacheLayer::Shared,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            CacheLayer::Connection => "connection",
            CacheLayer::Process => "process",
            CacheLayer::Shared => "shared",
        }
    }
}

/// What an outgoing request fetched, in counter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchKind {
    /// A JWK Set (`jwks_uri`, or the one `metadata` names).
    Jwks,
    /// A discovery document (`metadata`).
    Metadata,
    /// RFC 7662 introspection.
    Introspect,
    /// One PEM key (`eckey_uri`, as AWS ALB publishes them).
    AwsAlb,
}

impl FetchKind {
    pub(crate) const ALL: [FetchKind; 4] = [
        FetchKind::Jwks,
        FetchKind::Metadata,
        FetchKind::Introspect,
        FetchKind::AwsAlb,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            FetchKind::Jwks => "jwks",
            FetchKind::Metadata => "metadata",
            FetchKind::Introspect => "introspect",
            FetchKind::AwsAlb => "aws_alb",
        }
    }
}

/// Upper bounds (nanoseconds) of the buckets of `oauth2_verify_seconds`: a cached token takes a
/// few microseconds, a new signature tens to hundreds, a remote round trip milliseconds to the
/// fetch timeout.
pub(crate) const VERIFY_BOUNDS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds (nanoseconds) of the buckets of `oauth2_remote_fetch_seconds`, up to the default
/// timeout (15 s) and beyond.
pub(crate) const FETCH_BOUNDS: &[u64] = &[
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    15_000_000_000,
    30_000_000_000,
];

/// A histogram's words: one counter per bucket (not cumulative; the last one is `+Inf`), then
/// the sum of the observations in nanoseconds. Its count is the sum of its buckets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Histogram {
    pub(crate) first: usize,
    pub(crate) bounds: &'static [u64],
}

impl Histogram {
    const fn words(bounds: &[u64]) -> usize {
        bounds.len() + 2
    }

    /// The word of the bucket that `ns` falls in (bounds are inclusive, as `le` says).
    pub(crate) fn bucket(&self, ns: u64) -> usize {
        self.first + self.bounds.partition_point(|b| *b < ns)
    }

    pub(crate) fn sum(&self) -> usize {
        self.first + self.bounds.len() + 1
    }

    /// The bucket words, `+Inf` last.
    pub(crate) fn buckets(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.bounds.len() + 1
    }
}

pub(crate) const ACCEPTED: usize = 0;
const REFUSED: usize = ACCEPTED + 1;
const CACHE: usize = REFUSED + REASONS.len();
const FETCHES: usize = CACHE + 2 * CacheLayer::ALL.len();
const FETCH_HISTOGRAMS: usize = FETCHES + 2 * FetchKind::ALL.len();
const VERIFY_HISTOGRAM: usize =
    FETCH_HISTOGRAMS + FetchKind::ALL.len() * Histogram::words(FETCH_BOUNDS);
pub(crate) const DPOP_REPLAYS: usize = VERIFY_HISTOGRAM + Histogram::words(VERIFY_BOUNDS);
/// Counters per stripe.
pub(crate) const WORDS: usize = DPOP_REPLAYS + 1;

/// The counter of refusals for the reason at `reason` in [`REASONS`].
pub(crate) fn refused(reason: usize) -> usize {
    REFUSED + reason.min(REASONS.len() - 1)
}

pub(crate) fn cache(layer: CacheLayer, hit: bool) -> usize {
    CACHE + 2 * layer as usize + usize::from(!hit)
}

pub(crate) fn fetches(kind: FetchKind, ok: bool) -> usize {
    FETCHES + 2 * kind as usize + usize::from(!ok)
}

pub(crate) fn fetch_seconds(kind: FetchKind) -> Histogram {
    Histogram {
        first: FETCH_HISTOGRAMS + kind as usize * Histogram::words(FETCH_BOUNDS),
        bounds: FETCH_BOUNDS,
    }
}

pub(crate) const VERIFY_SECONDS: Histogram = Histogram {
    first: VERIFY_HISTOGRAM,
    bounds: VERIFY_BOUNDS,
};

/// What a reader of a region relies on besides its size, as text: the words of a stripe and what
/// each one counts (reasons, cache layers and fetch kinds in counter order, bucket bounds), and
/// `shape`, the region's own geometry around them (see `region`). Two builds that differ in any
/// of these, even with regions of the same size, describe their layouts differently.
pub(crate) fn description(shape: &[(&str, usize)]) -> String {
    let mut d = format!("words={WORDS}");
    for (name, n) in shape {
        let _ = write!(d, " {name}={n}");
    }
    let layers: Vec<&str> = CacheLayer::ALL.iter().map(|l| l.label()).collect();
    let kinds: Vec<&str> = FetchKind::ALL.iter().map(|k| k.label()).collect();
    let bounds = |b: &[u64]| b.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let _ = write!(
        d,
        " reasons={} layers={} fetches={} verify_bounds={} fetch_bounds={}",
        REASONS.join(","),
        layers.join(","),
        kinds.join(","),
        bounds(VERIFY_BOUNDS),
        bounds(FETCH_BOUNDS)
    );
    d
}

/// What identifies a layout (its [`description`]): a region made by a build with another layout
/// (a module upgraded across a graceful restart) is not read as this one.
pub(crate) fn fingerprint(shape: &[(&str, usize)]) -> u64 {
    let mut h = Fnv::default();
    h.write(description(shape).as_bytes());
    h.0
}

/// FNV-1a, 64 bits: the same in every process and build (std's hashers promise neither).
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_do_not_overlap_and_fill_the_stripe() {
        let mut seen = vec![0u8; WORDS];
        let mut mark = |w: usize| seen[w] += 1;
        mark(ACCEPTED);
        (0..REASONS.len()).for_each(|r| mark(refused(r)));
        for layer in CacheLayer::ALL {
            mark(cache(layer, true));
            mark(cache(layer, false));
        }
        for kind in FetchKind::ALL {
            mark(fetches(kind, true));
            mark(fetches(kind, false));
            let h = fetch_seconds(kind);
            h.buckets().for_each(&mut mark);
            mark(h.sum());
        }
        VERIFY_SECONDS.buckets().for_each(&mut mark);
        mark(VERIFY_SECONDS.sum());
        mark(DPOP_REPLAYS);
        assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
    }

    #[test]
    fn the_fingerprint_covers_everything_a_reader_relies_on() {
        let d = description(&[("stripes", 64), ("key_sets", 64)]);
        assert!(
            d.starts_with(&format!("words={WORDS} stripes=64 key_sets=64 ")),
            "{d}"
        );
        for part in REASONS
            .iter()
            .copied()
            .chain(CacheLayer::ALL.iter().map(|l| l.label()))
            .chain(FetchKind::ALL.iter().map(|k| k.label()))
        {
            assert!(d.contains(part), "{part} missing from {d}");
        }
        assert!(d.contains(" layers=connection,process,shared "), "{d}");
        assert!(
            d.contains(" fetches=jwks,metadata,introspect,aws_alb "),
            "{d}"
        );
        assert!(d.contains(" verify_bounds=10000,25000,"), "{d}");
        assert!(d.ends_with(",15000000000,30000000000"), "{d}");
        assert_ne!(
            fingerprint(&[("stripes", 64), ("key_sets", 64)]),
            fingerprint(&[("stripes", 64), ("key_sets", 32)]),
            "a region of another shape is another layout"
        );
    }

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let h = VERIFY_SECONDS;
        assert_eq!(h.bucket(0), h.first);
        assert_eq!(h.bucket(10_000), h.first, "le is inclusive");
        assert_eq!(h.bucket(10_001), h.first + 1);
        assert_eq!(h.bucket(10_000_000_000), h.first + VERIFY_BOUNDS.len() - 1);
        assert_eq!(h.bucket(u64::MAX), h.first + VERIFY_BOUNDS.len(), "+Inf");
        assert_eq!(h.buckets().end, h.sum());
        assert!(VERIFY_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert!(FETCH_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(refused(usize::MAX), refused(REASONS.len() - 1));
    }
}
