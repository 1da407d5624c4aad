//! The directory lock: an exclusive flock(2) on `<dir>/oauth2-cache.lock`, taken by every
//! process (and thread) that inserts an entry if absent or deletes a dead one, so that the check
//! and the change are one step. Plain `set` and `get` never take it.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{euid, io_err};
use crate::cache::store::StoreError;

pub(super) const LOCK_FILE: &str = "oauth2-cache.lock";

/// A held lock; released when dropped (closing the descriptor releases its flock).
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks the directory, waiting at most `timeout` (zero: one try). The lock file is created
    /// if missing and, like an entry, must be a regular file of ours that nobody else may write.
    pub(super) fn acquire(dir: &Path, timeout: Duration) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        // Each call opens its own descriptor: flock locks belong to the open file, so threads of
        // one process exclude each other as processes do.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| io_err("cannot open lock", &path, e))?;
        let m = file
            .metadata()
            .map_err(|e| io_err("cannot open lock", &path, e))?;
        if !m.is_file() || m.uid() != euid() || m.mode() & 0o022 != 0 {
            return Err(io_err(
                "cannot use lock",
                &path,
                io::Error::new(
                    ErrorKind::PermissionDenied,
                    "not a regular file owned by this user and writable only by it",
                ),
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a descriptor we own and keep open for the call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(DirLock { _file: file });
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted => continue,
                ErrorKind::WouldBlock if Instant::now() < deadline => {
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                ErrorKind::WouldBlock => {
                    return Err(StoreError::Unavailable(format!(
                        "file cache: {} is locked by another process for more than {} ms",
                        path.display(),
                        timeout.as_millis()
                    )));
                }
                _ => return Err(io_err("cannot lock", &path, e)),
            }
        }
    }
}
