//! Which configuration generation the process is reading or serving (Apache layer). httpd reads
//! its configuration in the parent, then forks children that serve it; a graceful restart reads
//! it again into a new generation. The core never reaches for this: the hooks pass the generation
//! (or its parts) down as arguments.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cache::registry::CacheRegistry;
use crate::generation::Generation;

enum Phase {
    /// Before the first reading, and after a generation was released.
    Idle,
    /// httpd is reading the configuration: directives build this generation.
    Reading(Generation),
    /// The configuration is read and the caches exist; later directive lines come from
    /// `.htaccess` files read per request.
    Serving(Arc<Generation>),
}

static PHASE: Mutex<Phase> = Mutex::new(Phase::Idle);
/// Counts generations put into service, so each thread refreshes its copy only when it changes.
static PUBLISHED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURRENT: RefCell<(u64, Option<Arc<Generation>>)> = const { RefCell::new((0, None)) };
}

fn phase() -> MutexGuard<'static, Phase> {
    PHASE.lock().unwrap_or_else(|e| e.into_inner())
}

/// pre_config: a new reading starts from nothing (the old generation's flags and caches go).
pub(crate) fn begin_reading() {
    *phase() = Phase::Reading(Generation::default());
}

/// The generation being read, or the one in service (then the lock is not held).
enum Access {
    Reading(MutexGuard<'static, Phase>),
    Serving(Arc<Generation>),
}

fn access() -> Access {
    let phase = phase();
    match &*phase {
        Phase::Serving(generation) => Access::Serving(generation.clone()),
        Phase::Idle | Phase::Reading(_) => Access::Reading(phase),
    }
}

/// The generation a reading builds (a directive outside pre_config starts one).
fn being_read(phase: &mut Phase) -> &mut Generation {
    if !matches!(phase, Phase::Reading(_)) {
        *phase = Phase::Reading(Generation::default());
    }
    match phase {
        Phase::Reading(generation) => generation,
        Phase::Idle | Phase::Serving(_) => unreachable!("set just above"),
    }
}

/// Runs `f` on the generation being read; `None` while serving (an `.htaccess` file may not
/// change server-wide settings).
pub(crate) fn reading<R>(f: impl FnOnce(&mut Generation) -> R) -> Option<R> {
    match access() {
        Access::Reading(mut phase) => Some(f(being_read(&mut phase))),
        Access::Serving(_) => None,
    }
}

/// The caches `OAuth2TokenVerify` lines resolve names against: the ones read so far, or, for an
/// `.htaccess` file read while serving, the generation's (which adds none).
pub(crate) fn caches<R>(f: impl FnOnce(&mut CacheRegistry) -> R) -> R {
    match access() {
        Access::Reading(mut phase) => f(&mut being_read(&mut phase).caches),
        Access::Serving(generation) => f(&mut generation.caches.clone()),
    }
}

/// Runs `f` on the generation being read or served.
pub(crate) fn with_generation<R>(f: impl FnOnce(&Generation) -> R) -> R {
    match access() {
        Access::Reading(mut phase) => f(being_read(&mut phase)),
        Access::Serving(generation) => f(&generation),
    }
}

/// check_config: what spans directives.
pub(crate) fn check() -> Result<(), String> {
    with_generation(Generation::check)
}

/// post_config: creates the caches and puts the generation into service; returns what could not
/// be created, or why the server must not start.
pub(crate) fn start() -> Result<Vec<String>, String> {
    let mut phase = phase();
    let mut generation = match std::mem::replace(&mut *phase, Phase::Idle) {
        Phase::Reading(generation) => generation,
        Phase::Serving(generation) => {
            // post_config without a new reading: keep serving what is there.
            *phase = Phase::Serving(generation);
            return Ok(Vec::new());
        }
        Phase::Idle => Generation::default(),
    };
    let errors = generation.start()?;
    *phase = Phase::Serving(Arc::new(generation));
    PUBLISHED.fetch_add(1, Ordering::Release);
    Ok(errors)
}

/// The configuration pool is cleared (restart or stop): the generation goes with it.
pub(crate) fn end() {
    *phase() = Phase::Idle;
    PUBLISHED.fetch_add(1, Ordering::Release);
}

/// Runs `f` on the generation in service (an empty one if none is: never the case once httpd
/// serves requests).
pub(crate) fn with_current<R>(f: impl FnOnce(&Generation) -> R) -> R {
    static NONE: std::sync::LazyLock<Generation> = std::sync::LazyLock::new(Generation::default);
    with_published(|generation| f(generation.unwrap_or(&NONE)))
}

/// Runs `f` on the generation in service, from this thread's copy (no lock on the request path).
fn with_published<R>(f: impl FnOnce(Option<&Generation>) -> R) -> R {
    let published = PUBLISHED.load(Ordering::Acquire);
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        if current.0 != published {
            let generation = match &*phase() {
                Phase::Serving(generation) => Some(generation.clone()),
                Phase::Idle | Phase::Reading(_) => None,
            };
            *current = (published, generation);
        }
        f(current.1.as_deref())
    })
}
