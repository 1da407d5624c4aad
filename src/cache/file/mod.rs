//! File backend: one file per key, `<dir>/oauth2-cache-<key>`, holding an 8-byte big-endian expiry
//! (Unix seconds) and the value. Files are written to a temporary name and renamed into place, so
//! readers never see a partial entry. Unlike the C module, the periodic sweep (`sweep`) deletes
//! only expired entries, and only files of our own naming pattern; paths are never built from
//! anything but a checked `[0-9A-Za-z_-]` key.
//!
//! The directory may be shared (the C default is /tmp): symlinks are never followed, and a file not
//! owned by us or writable by others is refused, so another local user cannot plant an entry.
//!
//! Insert-if-absent, and deleting a dead entry, happen under the directory lock (`lock`), so two
//! inserters of one key, in any processes, never both succeed.

mod lock;
mod sweep;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::store::{MAX_KEY_LEN, Store, StoreError, check_key, now_unix, ttl_secs};
use lock::DirLock;

const PREFIX: &str = "oauth2-cache-";
const TMP_PREFIX: &str = "oauth2-cache.tmp-";
/// Refuse to read entries larger than this (the caches hold tokens' results and key sets).
const MAX_FILE: u64 = 64 * 1024 * 1024;
/// How long an insert waits for the directory lock before giving up (a stuck process holding it).
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct FileStore {
    dir: PathBuf,
    clean_interval: u64,
    /// Before this Unix second this process does not even look at the marker.
    next_check: AtomicU64,
}

enum Entry {
    Missing,
    Live(Vec<u8>),
    /// Expired or malformed: may be replaced or deleted; carries (dev, ino) of what was read.
    Dead(u64, u64),
}

pub(super) fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("file cache: {what} {}: {e}", path.display()))
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17)).to_be_bytes();
    }
    crate::hex::lower(&b)
}

pub(super) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Opens without following symlinks and checks that the file is a regular file of ours that
/// nobody else may write.
fn open_trusted(path: &Path) -> std::io::Result<(File, fs::Metadata)> {
    // O_NONBLOCK: a FIFO planted at the path must not hang the worker (it is refused below).
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.uid() != euid() || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            ErrorKind::PermissionDenied,
            "not a regular file owned by this user and writable only by it; ignored",
        ));
    }
    Ok((f, m))
}

/// Removes `path` only if it is still the file we examined (not a fresh one renamed in since).
fn remove_if_same(path: &Path, dev: u64, ino: u64) {
    // (No let-chains: the crate's rust-version is 1.85.)
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.dev() == dev && m.ino() == ino {
            let _ = fs::remove_file(path);
        }
    }
}

impl FileStore {
    pub(crate) fn new(dir: PathBuf, clean_interval: Duration) -> Result<FileStore, StoreError> {
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::Io(format!(
                    "file cache: {} is not a directory",
                    dir.display()
                )));
            }
            Err(e) => return Err(io_err("cannot use directory", &dir, e)),
        }
        Ok(FileStore {
            dir,
            clean_interval: clean_interval.as_secs().max(1),
            next_check: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key, MAX_KEY_LEN)?;
        Ok(self.dir.join(format!("{PREFIX}{key}")))
    }

    /// Reads an entry; `only_header` stops after the expiry (for the sweep).
    fn read_entry(&self, path: &Path, now: u64, only_header: bool) -> Result<Entry, StoreError> {
        let (mut f, m) = match open_trusted(path) {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) => return Err(io_err("cannot read", path, e)),
        };
        if m.len() > MAX_FILE {
            return Err(StoreError::Io(format!(
                "file cache: {} is larger than 64 MiB",
                path.display()
            )));
        }
        let mut data = Vec::with_capacity(if only_header { 8 } else { m.len() as usize });
        let r = if only_header {
            (&mut f).take(8).read_to_end(&mut data)
        } else {
            f.read_to_end(&mut data)
        };
        r.map_err(|e| io_err("cannot read", path, e))?;
        if data.len() < 8 {
            return Ok(Entry::Dead(m.dev(), m.ino()));
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&data[..8]);
        if u64::from_be_bytes(exp) <= now {
            return Ok(Entry::Dead(m.dev(), m.ino()));
        }
        data.drain(..8);
        Ok(Entry::Live(data))
    }

    /// Writes expiry + value to a new private temporary file in the directory; returns its path.
    fn write_temp(&self, value: &[u8], expiry: u64) -> Result<PathBuf, StoreError> {
        let tmp = self.dir.join(format!("{TMP_PREFIX}{}", random_suffix()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| io_err("cannot create", &tmp, e))?;
        let mut buf = Vec::with_capacity(8 + value.len());
        buf.extend_from_slice(&expiry.to_be_bytes());
        buf.extend_from_slice(value);
        if let Err(e) = f.write_all(&buf) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("cannot write", &tmp, e));
        }
        Ok(tmp)
    }

    fn install(&self, tmp: &Path, path: &Path) -> Result<(), StoreError> {
        // rename replaces a symlink at `path` itself, never its target.
        fs::rename(tmp, path).map_err(|e| {
            let _ = fs::remove_file(tmp);
            io_err("cannot rename into", path, e)
        })
    }

    pub(crate) fn get_at(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        self.maybe_sweep(now);
        match self.read_entry(&path, now, false)? {
            Entry::Missing => Ok(None),
            Entry::Live(v) => Ok(Some(v)),
            Entry::Dead(dev, ino) => {
                self.remove_dead(&path, dev, ino);
                Ok(None)
            }
        }
    }

    pub(crate) fn set_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let Some(ttl) = ttl_secs(ttl) else {
            return Ok(());
        };
        self.maybe_sweep(now);
        let tmp = self.write_temp(value, now.saturating_add(ttl))?;
        self.install(&tmp, &path)
    }

    /// Deletes a dead entry if it is still the file that was read, under the directory lock so
    /// that it cannot delete an entry an insert put in place meanwhile. Only if the lock is free
    /// now: otherwise the entry stays for a later reader or the sweep.
    fn remove_dead(&self, path: &Path, dev: u64, ino: u64) {
        if let Ok(_lock) = DirLock::acquire(&self.dir, Duration::ZERO) {
            remove_if_same(path, dev, ino);
        }
    }

    /// Insert if absent: Ok(true) if inserted, Ok(false) if a live entry exists. The complete
    /// entry is written to a temporary file first, then renamed into place if, under the directory
    /// lock, no live entry is there (readers never see a half-written file).
    pub(crate) fn insert_if_absent_at(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
    ) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        let Some(ttl) = ttl_secs(ttl) else {
            return Ok(true);
        };
        self.maybe_sweep(now);
        // A live entry stays live until it expires (only a dead one is ever deleted): no lock needed
        // to say it is there.
        if let Entry::Live(_) = self.read_entry(&path, now, true)? {
            return Ok(false);
        }
        let tmp = self.write_temp(value, now.saturating_add(ttl))?;
        let inserted = self.install_if_absent(&tmp, &path, now);
        if !matches!(inserted, Ok(true)) {
            let _ = fs::remove_file(&tmp);
        }
        inserted
    }

    fn install_if_absent(&self, tmp: &Path, path: &Path, now: u64) -> Result<bool, StoreError> {
        let _lock = DirLock::acquire(&self.dir, LOCK_TIMEOUT)?;
        if let Entry::Live(_) = self.read_entry(path, now, true)? {
            return Ok(false);
        }
        self.install(tmp, path)?;
        Ok(true)
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_at(key, now_unix())
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.set_at(key, value, ttl, now_unix())
    }

    fn insert_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.insert_if_absent_at(key, value, ttl, now_unix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::race;
    use std::os::unix::fs::PermissionsExt;

    const S: Duration = Duration::from_secs(1);

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "oauth2-file-test-{}-{}",
                std::process::id(),
                random_suffix()
            ));
            fs::create_dir(&p).unwrap();
            TempDir(p)
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn k(i: usize) -> String {
        format!("{i:064x}")
    }

    fn store(d: &TempDir) -> FileStore {
        FileStore::new(d.0.clone(), Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn round_trip_format_and_permissions() {
        let d = TempDir::new();
        let s = store(&d);
        let now = now_unix();
        assert_eq!(s.get_at(&k(1), now).unwrap(), None);
        let v = b"any\r\nbytes\0\xff".to_vec();
        s.set_at(&k(1), &v, Duration::from_secs(30), now).unwrap();
        assert_eq!(s.get_at(&k(1), now).unwrap(), Some(v.clone()));
        let path = d.0.join(format!("oauth2-cache-{}", k(1)));
        let raw = fs::read(&path).unwrap();
        assert_eq!(&raw[..8], &(now + 30).to_be_bytes());
        assert_eq!(&raw[8..], &v[..]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        s.set_at(&k(1), b"second", Duration::from_secs(30), now)
            .unwrap();
        assert_eq!(s.get_at(&k(1), now).unwrap(), Some(b"second".to_vec()));
        s.set_at(&k(2), b"", Duration::ZERO, now).unwrap();
        assert_eq!(s.get_at(&k(2), now).unwrap(), None);
        // No temporary files left behind; only the entry and the sweep marker.
        assert_eq!(
            d.names(),
            vec![
                format!("oauth2-cache-{}", k(1)),
                "oauth2-cache.swept".to_string()
            ]
        );
        // The real-clock API.
        s.set(&k(3), b"x", S).unwrap();
        assert_eq!(s.get(&k(3)).unwrap(), Some(b"x".to_vec()));
    }

    #[test]
    fn expired_entries_are_deleted_on_read() {
        let d = TempDir::new();
        let s = store(&d);
        let now = now_unix();
        s.set_at(&k(1), b"v", S, now).unwrap();
        assert_eq!(s.get_at(&k(1), now).unwrap(), Some(b"v".to_vec()));
        let path = d.0.join(format!("oauth2-cache-{}", k(1)));
        assert!(path.exists());
        assert_eq!(s.get_at(&k(1), now + 1).unwrap(), None);
        assert!(!path.exists());
    }

    #[test]
    fn keys_never_become_arbitrary_paths() {
        let d = TempDir::new();
        let s = store(&d);
        for bad in ["../x", "a/b", "a b", "", ".", "a.b", "x\0"] {
            assert!(
                matches!(s.set(bad, b"v", S), Err(StoreError::Io(_))),
                "{bad:?}"
            );
            assert!(matches!(s.get(bad), Err(StoreError::Io(_))), "{bad:?}");
        }
        assert!(matches!(
            s.get(&"a".repeat(201)),
            Err(StoreError::KeyTooLong { .. })
        ));
        assert!(FileStore::new(d.0.join("missing"), S).is_err());
        assert!(FileStore::new(d.0.join("oauth2-cache.swept"), S).is_err());
    }

    #[test]
    fn insert_if_absent_semantics() {
        let d = TempDir::new();
        let s = store(&d);
        let now = now_unix();
        assert!(s.insert_if_absent_at(&k(1), b"a", S, now).unwrap());
        assert!(!s.insert_if_absent_at(&k(1), b"b", S, now).unwrap());
        assert_eq!(s.get_at(&k(1), now).unwrap(), Some(b"a".to_vec()));
        // Expired: replaced.
        assert!(s.insert_if_absent_at(&k(1), b"c", S, now + 1).unwrap());
        assert_eq!(s.get_at(&k(1), now + 1).unwrap(), Some(b"c".to_vec()));
        // A malformed (truncated) entry counts as absent.
        fs::write(d.0.join(format!("oauth2-cache-{}", k(2))), b"abc").unwrap();
        assert!(s.insert_if_absent_at(&k(2), b"d", S, now).unwrap());
        assert_eq!(s.get_at(&k(2), now).unwrap(), Some(b"d".to_vec()));
        assert!(
            d.names()
                .iter()
                .all(|n| !n.starts_with("oauth2-cache.tmp-")),
            "{:?}",
            d.names()
        );
    }

    #[test]
    fn concurrent_inserters_of_one_key_get_one_true() {
        let d = TempDir::new();
        let inserted = race::threads(|| store(&d), "threads", 8, 100);
        assert!(inserted.iter().all(|&n| n == 1), "{inserted:?}");
        // Replacing expired entries races too: only one inserter may replace each.
        let now = now_unix();
        let s = store(&d);
        for i in 0..100 {
            s.set_at(&race::key("expired", i), b"old", S, now - 10)
                .unwrap();
        }
        let inserted = race::threads(|| store(&d), "expired", 8, 100);
        assert!(inserted.iter().all(|&n| n == 1), "{inserted:?}");
        // Processes sharing the directory.
        assert_eq!(race::processes(&s, "procs", 4, 100), 100);
        for i in 0..100 {
            s.set_at(&race::key("procs-expired", i), b"old", S, now - 10)
                .unwrap();
        }
        assert_eq!(race::processes(&s, "procs-expired", 4, 100), 100);
        assert!(
            d.names()
                .iter()
                .all(|n| !n.starts_with("oauth2-cache.tmp-")),
            "{:?}",
            d.names()
        );
    }

    #[test]
    fn a_foreign_lock_file_is_refused() {
        let d = TempDir::new();
        let s = store(&d);
        let lock = d.0.join(lock::LOCK_FILE);
        fs::write(&lock, b"").unwrap();
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            s.insert_if_absent(&k(1), b"v", S),
            Err(StoreError::Io(_))
        ));
        fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(d.0.join("elsewhere"), &lock).unwrap();
        assert!(matches!(
            s.insert_if_absent(&k(1), b"v", S),
            Err(StoreError::Io(_))
        ));
        assert!(!d.0.join("elsewhere").exists());
        fs::remove_file(&lock).unwrap();
        assert!(s.insert_if_absent(&k(1), b"v", S).unwrap());
    }

    #[test]
    fn a_held_lock_times_out_as_unavailable() {
        let d = TempDir::new();
        let s = store(&d);
        let held = DirLock::acquire(&d.0, Duration::ZERO).unwrap();
        let t = std::time::Instant::now();
        assert!(matches!(
            s.insert_if_absent(&k(1), b"v", S),
            Err(StoreError::Unavailable(_))
        ));
        assert!(t.elapsed() >= LOCK_TIMEOUT);
        drop(held);
        assert!(s.insert_if_absent(&k(1), b"v", S).unwrap());
    }

    #[test]
    fn foreign_symlinked_or_writable_files_are_refused() {
        let d = TempDir::new();
        let s = store(&d);
        let now = now_unix();
        let outside = d.0.join("outside");
        let mut content = (now + 100).to_be_bytes().to_vec();
        content.extend_from_slice(b"planted");
        fs::write(&outside, &content).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.0.join(format!("oauth2-cache-{}", k(1)));
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(matches!(s.get_at(&k(1), now), Err(StoreError::Io(_))));
        // set replaces the link itself and never writes through it.
        s.set_at(&k(1), b"mine", S, now).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), content);
        assert_eq!(s.get_at(&k(1), now).unwrap(), Some(b"mine".to_vec()));
        // Group/world-writable: anyone could have written it.
        let planted = d.0.join(format!("oauth2-cache-{}", k(2)));
        fs::write(&planted, &content).unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(s.get_at(&k(2), now), Err(StoreError::Io(_))));
        // A FIFO at the path neither blocks the reader nor is read.
        let fifo = d.0.join(format!("oauth2-cache-{}", k(3)));
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(s.get_at(&k(3), now), Err(StoreError::Io(_))));
        if euid() == 0 {
            fs::set_permissions(&planted, fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
            assert!(matches!(s.get_at(&k(2), now), Err(StoreError::Io(_))));
        }
    }

    #[test]
    fn sweep_deletes_only_expired_entries_of_ours() {
        let d = TempDir::new();
        let s = FileStore::new(d.0.clone(), Duration::from_secs(10)).unwrap();
        let now = now_unix();
        // First use creates the marker; nothing is due yet.
        s.set_at(&k(1), b"short", S, now).unwrap();
        s.set_at(&k(2), b"long", Duration::from_secs(3600), now)
            .unwrap();
        fs::write(d.0.join("unrelated"), b"x").unwrap();
        fs::write(d.0.join("oauth2-cache-not.a.key"), b"x").unwrap();
        let stale_tmp = d.0.join("oauth2-cache.tmp-deadbeef");
        fs::write(&stale_tmp, b"x").unwrap();
        File::options()
            .write(true)
            .open(&stale_tmp)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(now - 1000))
            .unwrap();
        let fresh_tmp = d.0.join("oauth2-cache.tmp-cafe");
        fs::write(&fresh_tmp, b"x").unwrap();
        let file1 = d.0.join(format!("oauth2-cache-{}", k(1)));
        // Not due: k(1) expired but stays (until read or swept).
        s.set_at(&k(3), b"v", Duration::from_secs(3600), now + 5)
            .unwrap();
        assert!(file1.exists());
        // Another process (a second store) sees the marker and does not sweep early either.
        let other = FileStore::new(d.0.clone(), Duration::from_secs(10)).unwrap();
        other
            .set_at(&k(4), b"v", Duration::from_secs(3600), now + 9)
            .unwrap();
        assert!(file1.exists());
        // Due: one sweep, by whichever process comes first.
        other
            .set_at(&k(5), b"v", Duration::from_secs(3600), now + 10)
            .unwrap();
        assert!(!file1.exists());
        assert!(!stale_tmp.exists());
        assert!(fresh_tmp.exists());
        assert_eq!(s.get_at(&k(2), now + 10).unwrap(), Some(b"long".to_vec()));
        for i in 3..=5 {
            assert_eq!(
                s.get_at(&k(i), now + 10).unwrap(),
                Some(b"v".to_vec()),
                "{i}"
            );
        }
        assert!(d.0.join("unrelated").exists());
        assert!(d.0.join("oauth2-cache-not.a.key").exists());
        // The marker is back, stamped with the sweep time: the next sweep is 10 s later.
        let m = fs::metadata(d.0.join("oauth2-cache.swept")).unwrap();
        assert_eq!(m.mtime() as u64, now + 10);
        assert!(
            d.names()
                .iter()
                .all(|n| !n.starts_with("oauth2-cache.sweep-")),
            "{:?}",
            d.names()
        );
        s.set_at(&k(6), b"v", S, now + 10).unwrap();
        other.set_at(&k(7), b"v", S, now + 19).unwrap();
        assert!(d.0.join(format!("oauth2-cache-{}", k(6))).exists());
        s.get_at(&k(2), now + 20).unwrap();
        assert!(!d.0.join(format!("oauth2-cache-{}", k(6))).exists());
        assert!(!d.0.join(format!("oauth2-cache-{}", k(7))).exists());
    }
}
