//! The `file` cache: opaque entry files, expired ones swept.

use super::common::remote::*;
use super::common::*;
use super::support::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A directory the httpd children (www-data when root) own; removed on drop.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new() -> CacheDir {
        let d = std::env::temp_dir().join(format!(
            "mod_oauth2-it-filecache-{}-{}",
            std::process::id(),
            random_id(6)
        ));
        fs::create_dir_all(&d).unwrap();
        if let Some((uid, gid)) = www_data_ids() {
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
        }
        CacheDir(d)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("oauth2-cache-"))
            .collect();
        v.sort();
        v
    }

    fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn www_data_ids() -> Option<(u32, u32)> {
    let running_as_root = fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        == "0";
    if !running_as_root {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let l = passwd.lines().find(|l| l.starts_with("www-data:"))?;
    let cols: Vec<&str> = l.split(':').collect();
    Some((cols.get(2)?.parse().ok()?, cols.get(3)?.parse().ok()?))
}

fn new_entry(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|n| !before.contains(n))
        .cloned()
        .collect()
}

fn check_entry_file(f: &mut Failures, dir: &Path, name: &str, tok: &str, sub: &str) {
    let hex = name.strip_prefix("oauth2-cache-").unwrap_or("");
    f.check(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        || format!("file cache entry name {name:?} is not oauth2-cache-<64 hex>"),
    );
    f.check(!name.contains(tok), || {
        format!("file name {name} contains the token")
    });
    let content = fs::read(dir.join(name)).unwrap_or_default();
    f.check(
        find_bytes(&content, tok.as_bytes()).is_none()
            && find_bytes(&content, sub.as_bytes()).is_none(),
        || format!("file {name} shows the token or its sub (not encrypted)"),
    );
}

#[test]
fn file_cache_entries_are_opaque_and_expired_ones_are_swept() {
    let dir = CacheDir::new();
    let table: Table = Arc::default();
    let m = introspection_server(table.clone());
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("file", &format!("dir={}&clean_interval=1", dir.0.display())),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();

    // a live entry (exp in 300 s)
    let live = random_id(32);
    let e0 = dir.entries();
    for i in 0..3 {
        f.expect(
            &format!("live token #{i}"),
            &h.https("/i/ok").bearer(&live).send(),
            200,
            None,
        );
    }
    f.check(calls_for(&m, &live) == 1, || {
        format!("live token: {} calls", calls_for(&m, &live))
    });
    let e1 = dir.entries();
    let live_files = new_entry(&e0, &e1);
    f.check(live_files.len() == 1, || {
        format!("live token: new files {live_files:?}")
    });
    for n in &live_files {
        check_entry_file(&mut f, &dir.0, n, &live, &sub_of(&live));
    }

    // a short-lived entry (exp in 2 s)
    let short = random_id(32);
    let exp = now() + 2;
    table.lock().unwrap().push((
        short.clone(),
        json!({ "active": true, "sub": sub_of(&short), "exp": exp }),
    ));
    f.expect(
        "short-lived token",
        &h.https("/i/ok").bearer(&short).send(),
        200,
        None,
    );
    let e2 = dir.entries();
    let short_files = new_entry(&e1, &e2);
    f.check(short_files.len() == 1, || {
        format!("short-lived token: new files {short_files:?}")
    });
    for n in &short_files {
        check_entry_file(&mut f, &dir.0, n, &short, &sub_of(&short));
    }
    eprintln!("file cache after two tokens: {:?}", dir.all());

    // after its exp and the clean interval, a request with another token (another key) triggers
    // the sweep: the expired file goes, the live one stays
    poll(Duration::from_secs(6), || (now() > exp + 1).then_some(())).expect("clock");
    let swept = poll(Duration::from_secs(8), || {
        let t = random_id(32);
        let st = h.https("/i/ok").bearer(&t).send().status;
        let gone = short_files.iter().all(|n| !dir.path(n).exists());
        (st != 200 || gone).then_some(st)
    });
    match swept {
        Some(200) => f.pass(),
        Some(st) => f.fail(format!("sweep trigger request: status {st}")),
        None => f.fail(format!(
            "expired entry {short_files:?} still there 8 s after exp + 1: {:?}",
            dir.all()
        )),
    }
    for n in &live_files {
        f.check(dir.path(n).exists(), || {
            format!("live entry {n} was removed by the sweep: {:?}", dir.all())
        });
    }
    // another host using the same directory (and passphrase) reads the live entry
    let h2 = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("file", &format!("dir={}&clean_interval=1", dir.0.display())),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mark = h2.log_mark();
    f.expect(
        "live token on host 2",
        &h2.https("/i/ok").bearer(&live).send(),
        200,
        None,
    );
    let o = origin_since(&h2, mark, &sub_of(&live));
    f.check(o == Some(Origin::Shared), || {
        format!("live token on host 2 (same dir): {o:?}, expected from the shared cache")
    });
    f.check(calls_for(&m, &live) == 1, || {
        format!("live token: {} calls after host 2", calls_for(&m, &live))
    });
    h2.assert_no_child_crash();
    drop(h2);
    // nothing in the directory carries a token
    for name in dir.all() {
        for t in [&live, &short] {
            f.check(!name.contains(t.as_str()), || {
                format!("{name} contains a token")
            });
        }
    }
    eprintln!("file cache at the end: {:?}", dir.all());
    finish(f, &h);
}
