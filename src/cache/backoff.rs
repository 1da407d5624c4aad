//! A tiny circuit breaker for the network caches: after a failure, calls fail fast (no network)
//! for an interval, so a dead Redis or memcached costs one timeout per interval per process
//! instead of one per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::store::StoreError;

/// The default fail-fast interval after a network failure.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Backoff {
    base: Instant,
    interval_ms: u64,
    /// Milliseconds since `base` until which calls fail fast; 0 = closed (healthy).
    open_until: AtomicU64,
}

impl Backoff {
    pub(crate) fn new(interval: Duration) -> Backoff {
        Backoff {
            base: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Ok if a call may go to the network; Err(Unavailable) while backing off after a failure.
    pub(crate) fn check(&self, what: &str) -> Result<(), StoreError> {
        self.check_at(self.now_ms(), what)
    }

    fn check_at(&self, now: u64, what: &str) -> Result<(), StoreError> {
        let until = self.open_until.load(Ordering::Relaxed);
        if until != 0 && now < until {
            return Err(StoreError::Unavailable(format!(
                "{what}: not retried for {} ms after an earlier failure",
                until - now
            )));
        }
        Ok(())
    }

    /// Records a failure: calls fail fast for the interval from now.
    pub(crate) fn failure(&self) {
        self.failure_at(self.now_ms());
    }

    fn failure_at(&self, now: u64) {
        // Never store 0, which means "closed".
        self.open_until.store(
            now.saturating_add(self.interval_ms).max(1),
            Ordering::Relaxed,
        );
    }

    /// Records a success: the breaker closes.
    pub(crate) fn success(&self) {
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_until_a_failure() {
        let b = Backoff::new(Duration::from_secs(5));
        assert!(b.check_at(0, "x").is_ok());
        assert!(b.check_at(100_000, "x").is_ok());
    }

    #[test]
    fn fails_fast_for_the_interval_then_retries() {
        let b = Backoff::new(Duration::from_secs(5));
        b.failure_at(1_000);
        assert!(
            matches!(b.check_at(1_000, "redis"), Err(StoreError::Unavailable(m)) if m.contains("redis"))
        );
        assert!(b.check_at(5_999, "x").is_err());
        assert!(b.check_at(6_000, "x").is_ok());
        // A new failure re-opens it; a success closes it at once.
        b.failure_at(6_000);
        assert!(b.check_at(6_001, "x").is_err());
        b.success();
        assert!(b.check_at(6_001, "x").is_ok());
    }

    #[test]
    fn failure_at_time_zero_still_opens() {
        let b = Backoff::new(Duration::ZERO);
        b.failure_at(0);
        // A zero interval never blocks (open_until = 1 > 0 only for now = 0).
        assert!(b.check_at(1, "x").is_ok());
        let b = Backoff::new(Duration::from_millis(10));
        b.failure_at(0);
        assert!(b.check_at(0, "x").is_err());
    }

    #[test]
    fn real_clock() {
        let b = Backoff::new(Duration::from_millis(50));
        b.failure();
        assert!(b.check("x").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check("x").is_ok());
    }
}
