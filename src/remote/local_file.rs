//! `file://` URLs for `jwks_uri` and `metadata`: the document is a local file, read by us (never by
//! libcurl, whose protocols stay http and https, so no redirect can lead to a file). Reads are
//! bounded like HTTP bodies and refuse anything but a regular file (a FIFO or a device would block
//! or never end). A [`Stamp`] tells whether the file changed since it was read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::fetch::{FetchError, MAX_RESPONSE};

/// How often a request may look at the file's metadata (a `stat`) to notice a change.
pub(crate) const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The path of a `file://` URL: `file:///<absolute path>` or `file://localhost/<absolute path>`,
/// percent-escapes decoded. `None` when `url` is not a `file:` URL; `Err` says what is wrong.
pub(crate) fn path_of(url: &str) -> Option<Result<PathBuf, String>> {
    let scheme = url.get(..7)?;
    if !scheme.eq_ignore_ascii_case("file://") {
        return None;
    }
    let rest = &url[7..];
    let path = match rest.get(..9) {
        Some(host) if host.eq_ignore_ascii_case("localhost") => &rest[9..],
        _ => rest,
    };
    Some(decode(path))
}

fn decode(path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(
            "a file URL must name an absolute path on this host: file:///path/to/file".into(),
        );
    }
    if path.contains(['?', '#']) {
        return Err("a file URL has no query or fragment".into());
    }
    let bytes: Vec<u8> = crate::percent::decode(path.as_bytes())
        .ok_or("a file URL has a bad percent-escape (%XX with two hex digits)")?;
    if bytes.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err("a file URL must not contain control characters (also not as %XX)".into());
    }
    let text = String::from_utf8(bytes).map_err(|_| "a file URL must decode to UTF-8")?;
    Ok(PathBuf::from(text))
}

/// What identifies one version of a file: device, inode, size, modification and change times
/// (nanoseconds). Rewriting in place changes the times; replacing by rename changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The file's current stamp (following symbolic links, as reading does); `None` when it cannot be
/// looked at (then it counts as changed: the next read reports why).
pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The version of a local file last read, and when it was last looked at: whether to read it
/// again.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    read: Option<Stamp>,
    checked: Option<std::time::Instant>,
}

impl Watched {
    /// Records the version just read (which counts as a look at the file).
    pub(crate) fn read(&mut self, stamp: Option<Stamp>) {
        self.read = stamp;
        self.checked = Some(std::time::Instant::now());
    }

    /// Whether the file at `path` changed since it was read (a file that cannot be looked at
    /// counts as changed). Looks at most once per [`CHECK_INTERVAL`] unless `now`.
    pub(crate) fn changed(&mut self, path: &Path, now: bool) -> bool {
        if !now && self.checked.is_some_and(|t| t.elapsed() < CHECK_INTERVAL) {
            return false;
        }
        self.checked = Some(std::time::Instant::now());
        let current = stamp(path);
        current.is_none() || current != self.read
    }
}

/// The whole file, at most [`MAX_RESPONSE`] bytes, and the stamp of what was read.
pub(crate) fn read(path: &Path) -> Result<(Vec<u8>, Stamp), FetchError> {
    let cannot = |e: &dyn std::fmt::Display| {
        FetchError::Transport(format!("cannot read {}: {e}", path.display()))
    };
    // O_NONBLOCK: opening a FIFO does not wait for a writer (it is then refused below).
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| cannot(&e))?;
    let meta = file.metadata().map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    if meta.len() > MAX_RESPONSE as u64 {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_RESPONSE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| cannot(&e))?;
    if body.len() > MAX_RESPONSE {
        return Err(FetchError::TooLarge);
    }
    Ok((body, Stamp::of(&meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        let ok = |u: &str| path_of(u).unwrap().unwrap();
        assert_eq!(ok("file:///etc/keys.json"), PathBuf::from("/etc/keys.json"));
        assert_eq!(ok("FILE:///a"), PathBuf::from("/a"));
        assert_eq!(ok("file://localhost/a/b"), PathBuf::from("/a/b"));
        assert_eq!(ok("file:///a%20b/%C3%A9"), PathBuf::from("/a b/é"));
        assert!(path_of("https://as/jwks").is_none());
        assert!(path_of("fil").is_none());
        for bad in [
            "file://",
            "file://relative/path",
            "file://otherhost/a",
            "file:///a%0Ab",
            "file:///a%00",
            "file:///a%zz",
            "file:///a%2",
            "file:///a%+1",
            "file:///a?x=1",
            "file:///a#f",
            "file:///%FF",
            "file://ééééé/a",
            "file://localhostx/a",
        ] {
            assert!(path_of(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_regular_files_only_and_bounded() {
        let dir = std::env::temp_dir().join(format!("oauth2-local-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("doc.json");
        std::fs::write(&f, b"{\"keys\":[]}").unwrap();
        let (body, s1) = read(&f).unwrap();
        assert_eq!(body, b"{\"keys\":[]}");
        assert_eq!(stamp(&f), Some(s1));
        std::fs::write(&f, b"{\"keys\":[1]}").unwrap();
        assert_ne!(stamp(&f), Some(s1), "a rewrite changes the stamp");
        // Replaced by rename, same size and content: a new inode.
        let (_, s2) = read(&f).unwrap();
        let tmp = dir.join("doc.tmp");
        std::fs::write(&tmp, b"{\"keys\":[1]}").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert_ne!(stamp(&f), Some(s2), "a replacement changes the stamp");

        std::fs::write(&f, vec![b' '; MAX_RESPONSE + 1]).unwrap();
        assert_eq!(read(&f).unwrap_err(), FetchError::TooLarge);
        assert!(
            matches!(read(&dir), Err(FetchError::Transport(m)) if m.contains("not a regular file"))
        );
        let missing = dir.join("missing.json");
        assert!(
            matches!(read(&missing), Err(FetchError::Transport(m)) if m.contains("cannot read"))
        );
        assert_eq!(stamp(&missing), None);
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            matches!(read(&fifo), Err(FetchError::Transport(m)) if m.contains("not a regular file"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
