//! The periodic sweep of the cache directory: at most once per `clean_interval` across every
//! process sharing it, deleting only expired or malformed entries and stale temporary files of
//! ours, never anything else.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use super::{Entry, FileStore, PREFIX, TMP_PREFIX, euid, random_suffix};
use crate::cache::store::{MAX_KEY_LEN, check_key};

const CLAIM_PREFIX: &str = "oauth2-cache.sweep-";
/// Its mtime is the time of the last sweep, shared by all processes.
const MARKER: &str = "oauth2-cache.swept";
/// Leftover temporary files (a process died between create and rename) older than this go.
const STALE_SECS: u64 = 300;

impl FileStore {
    /// Sweeps at most once per clean_interval across all processes sharing the directory. The
    /// marker file's mtime is the last sweep; a process claims a due sweep by renaming the marker
    /// away (only one rename can succeed) and puts it back, stamped, when done.
    pub(super) fn maybe_sweep(&self, now: u64) {
        if now < self.next_check.load(Ordering::Relaxed) {
            return;
        }
        let marker = self.dir.join(MARKER);
        let next = match fs::symlink_metadata(&marker) {
            Ok(m) => {
                let last = u64::try_from(m.mtime()).unwrap_or(0);
                let due = last.saturating_add(self.clean_interval);
                if due > now {
                    due
                } else {
                    let claim = self.dir.join(format!("{CLAIM_PREFIX}{}", random_suffix()));
                    if fs::rename(&marker, &claim).is_ok() {
                        self.sweep(now, &claim);
                        let stamped = File::options()
                            .write(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&claim)
                            .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(now)));
                        if stamped.is_err() || fs::rename(&claim, &marker).is_err() {
                            let _ = fs::remove_file(&claim);
                        }
                    }
                    now.saturating_add(self.clean_interval)
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // First use (or a sweep is running right now): start the interval.
                let created = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&marker);
                if let Ok(f) = created {
                    let _ = f.set_modified(UNIX_EPOCH + Duration::from_secs(now));
                }
                now.saturating_add(self.clean_interval)
            }
            Err(_) => now.saturating_add(self.clean_interval),
        };
        self.next_check.store(next, Ordering::Relaxed);
    }

    /// Deletes expired or malformed entries and stale temporary files of ours; nothing else.
    fn sweep(&self, now: u64, own_claim: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let stale = STALE_SECS.max(self.clean_interval);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if let Some(key) = name.strip_prefix(PREFIX) {
                if check_key(key, MAX_KEY_LEN).is_err() {
                    continue;
                }
                if let Ok(Entry::Dead(dev, ino)) = self.read_entry(&path, now, true) {
                    self.remove_dead(&path, dev, ino);
                }
            } else if (name.starts_with(TMP_PREFIX) || name.starts_with(CLAIM_PREFIX))
                && path != own_claim
            {
                let old = fs::symlink_metadata(&path).is_ok_and(|m| {
                    m.is_file()
                        && m.uid() == euid()
                        && u64::try_from(m.mtime()).unwrap_or(0).saturating_add(stale) < now
                });
                if old {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
}
