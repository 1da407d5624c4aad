//! "Log this at most once per interval": a lock-free limiter for problems that would otherwise be
//! logged on every request (a dead cache backend, a failing key refresh).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct LogLimit {
    base: Instant,
    interval_ms: u64,
    /// Milliseconds since `base`, plus 1, of the last allowed line; 0 = never.
    last: AtomicU64,
}

impl LogLimit {
    pub(crate) fn new(interval: Duration) -> LogLimit {
        LogLimit {
            base: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    /// True at most once per interval (the first time, then once the interval has passed); among
    /// threads asking at the same moment, only one gets true.
    pub(crate) fn allow(&self) -> bool {
        self.allow_at(u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn allow_at(&self, now_ms: u64) -> bool {
        let stamp = now_ms.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && stamp < last.saturating_add(self.interval_ms) {
            return false;
        }
        self.last
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval() {
        let l = LogLimit::new(Duration::from_secs(60));
        assert!(l.allow_at(0));
        assert!(!l.allow_at(1));
        assert!(!l.allow_at(59_999));
        assert!(l.allow_at(60_000));
        assert!(!l.allow_at(60_001));
        assert!(l.allow_at(200_000));
    }

    #[test]
    fn real_clock_and_one_winner_among_threads() {
        let l = std::sync::Arc::new(LogLimit::new(Duration::from_secs(3600)));
        let winners: usize = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || l.allow())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
        assert!(!l.allow());
        let zero = LogLimit::new(Duration::ZERO);
        assert!(zero.allow());
    }
}
