//! Single flight: of the requests that find a fetched value (a key set, a discovery document)
//! due for refresh, one fetches while the others go on with the value they have, or wait
//! (bounded) for it when there is none. The value and its bookkeeping belong to the caller.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub(crate) struct SingleFlight<S> {
    state: Mutex<Flight<S>>,
    landed: Condvar,
    /// The longest a waiter waits: a fetch ends by its own timeout, and this keeps a waiter
    /// from hanging should that fail.
    wait_bound: Duration,
}

/// The caller's state `S`, and whether a fetch is running.
#[derive(Default)]
pub(crate) struct Flight<S> {
    in_flight: bool,
    state: S,
}

impl<S> Flight<S> {
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }
}

impl<S> Deref for Flight<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> DerefMut for Flight<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.state
    }
}

pub(crate) type Guard<'a, S> = MutexGuard<'a, Flight<S>>;

impl<S: Default> SingleFlight<S> {
    /// Waiters wait at most `wait_bound` for a running fetch.
    pub(crate) fn new(wait_bound: Duration) -> Self {
        SingleFlight {
            state: Mutex::default(),
            landed: Condvar::new(),
            wait_bound,
        }
    }
}

impl<S> SingleFlight<S> {
    pub(crate) fn lock(&self) -> Guard<'_, S> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the running fetch ends, at most the bound given to [`Self::new`].
    pub(crate) fn wait<'a>(&self, st: Guard<'a, S>) -> Guard<'a, S> {
        self.landed
            .wait_timeout_while(st, self.wait_bound, |f| f.in_flight)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Runs `fetch` as the one fetch, without the lock (the others read the state meanwhile),
    /// and returns the lock again with its result. The waiters are woken however `fetch` ends,
    /// a panic included: a flight that never lands would stop every later refresh.
    pub(crate) fn fly<'a, R>(
        &'a self,
        mut st: Guard<'a, S>,
        fetch: impl FnOnce() -> R,
    ) -> (Guard<'a, S>, R) {
        st.in_flight = true;
        drop(st);
        let landing = Landing(self);
        let result = fetch();
        std::mem::forget(landing);
        let mut st = self.lock();
        st.in_flight = false;
        self.landed.notify_all();
        (st, result)
    }
}

/// Ends a flight whose fetch unwound.
struct Landing<'a, S>(&'a SingleFlight<S>);

impl<S> Drop for Landing<'_, S> {
    fn drop(&mut self) {
        self.0.lock().in_flight = false;
        self.0.landed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn others_see_the_flight_and_a_waiter_wakes_when_it_lands() {
        let f = Arc::new(SingleFlight::<u32>::new(Duration::from_secs(10)));
        let (started, go) = (mpsc::channel(), mpsc::channel::<()>());
        let flier = {
            let f = f.clone();
            std::thread::spawn(move || {
                let (mut st, v) = f.fly(f.lock(), || {
                    started.0.send(()).unwrap();
                    go.1.recv().unwrap();
                    7
                });
                **st = v;
            })
        };
        started.1.recv().unwrap();
        let st = f.lock();
        assert!(
            st.in_flight(),
            "the lock is free during the fetch, the flight shows"
        );
        go.0.send(()).unwrap();
        let t = Instant::now();
        let st = f.wait(st);
        assert!(t.elapsed() < Duration::from_secs(5), "woken when it landed");
        assert!(!st.in_flight());
        drop(st);
        flier.join().unwrap();
        assert_eq!(**f.lock(), 7);
    }

    #[test]
    fn a_fetch_that_panics_still_lands() {
        let f = SingleFlight::<u32>::new(Duration::from_secs(10));
        let r = catch_unwind(AssertUnwindSafe(|| f.fly(f.lock(), || panic!("in fetch"))));
        assert!(r.is_err());
        assert!(!f.lock().in_flight(), "the next request may fetch again");
    }

    #[test]
    fn waiting_is_bounded() {
        let f = SingleFlight::<u32>::new(Duration::from_millis(100));
        let mut st = f.lock();
        st.in_flight = true; // a flight that does not end
        let t = Instant::now();
        let st = f.wait(st);
        assert!(st.in_flight());
        assert!(t.elapsed() >= Duration::from_millis(100));
    }
}
