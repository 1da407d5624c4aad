//! A process-shared, robust pthread mutex living in the shared mapping: if its owner dies, the
//! next locker gets the lock anyway and is told so (its data may be half-written).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockError {
    TimedOut,
    /// Another errno from pthread_mutex_timedlock.
    Failed(i32),
}

/// A handle to a mutex inside a shared mapping; the owner of the mapping keeps it alive.
pub(super) struct RobustMutex {
    raw: *mut libc::pthread_mutex_t,
}

// SAFETY: a process-shared pthread mutex is made to be locked and unlocked from any thread (and
// process); the handle is only a pointer to it.
unsafe impl Send for RobustMutex {}
// SAFETY: as for Send: every operation on the mutex goes through pthread, which synchronises.
unsafe impl Sync for RobustMutex {}

impl RobustMutex {
    /// Initialises a process-shared robust mutex at `raw`.
    ///
    /// # Safety
    /// `raw` is aligned for `pthread_mutex_t`, writable, not yet used by anyone (no other thread or
    /// process can reach it yet) and stays valid for as long as the handle is used.
    pub(super) unsafe fn init(raw: *mut libc::pthread_mutex_t) -> Result<RobustMutex, String> {
        let fail = |what: &str, rc: i32| format!("shm cache: {what} failed: errno {rc}");
        // SAFETY: attr is a local initialised by pthread_mutexattr_init before any other use and
        // destroyed once; `raw` is valid and unused by anyone else (the caller's contract).
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
                rc = libc::pthread_mutex_init(raw, &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                return Err(fail("process-shared robust mutex init", rc));
            }
        }
        Ok(RobustMutex { raw })
    }

    /// Locks, waiting at most `timeout` (a stuck process holding it). The mutex is the default
    /// (non-recursive) kind: locking it twice from one thread never succeeds.
    pub(super) fn lock(&self, timeout: Duration) -> Result<RobustGuard<'_>, LockError> {
        // pthread_mutex_timedlock takes an absolute CLOCK_REALTIME time, which SystemTime reads.
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(timeout);
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(deadline.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: deadline.subsec_nanos().into(),
        };
        // SAFETY: `raw` points to a mutex initialised by `init`, valid while the handle is used
        // (init's contract); ts is a valid timespec.
        let rc = unsafe { libc::pthread_mutex_timedlock(self.raw, &ts) };
        match rc {
            0 => Ok(RobustGuard {
                mutex: self,
                owner_died: false,
            }),
            libc::EOWNERDEAD => {
                // SAFETY: EOWNERDEAD means we now own the mutex; marking it consistent makes it
                // usable again after we unlock it.
                unsafe { libc::pthread_mutex_consistent(self.raw) };
                Ok(RobustGuard {
                    mutex: self,
                    owner_died: true,
                })
            }
            libc::ETIMEDOUT => Err(LockError::TimedOut),
            e => Err(LockError::Failed(e)),
        }
    }
}

/// A held lock; unlocks when dropped.
pub(super) struct RobustGuard<'a> {
    mutex: &'a RobustMutex,
    owner_died: bool,
}

impl RobustGuard<'_> {
    /// Whether the previous owner died holding the lock (what it protects may be half-written).
    pub(super) fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for RobustGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only after a successful lock by this thread, and only once.
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw) };
    }
}
