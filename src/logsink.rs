//! Log lines that are not about one request (a key endpoint that stopped answering, ...). The
//! Apache layer installs a sink that writes to the main error log; without one (unit tests) they
//! go nowhere.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Debug,
}

static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

pub(crate) fn install(sink: fn(Level, &str)) {
    let _ = SINK.set(sink);
}

pub(crate) fn emit(level: Level, msg: &str) {
    if let Some(sink) = SINK.get() {
        sink(level, msg);
    }
}
