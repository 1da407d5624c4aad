//! Which `mod_oauth2.so` the tests load, and the refusal to load a stale one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Path of the module under test: `$OAUTH2_MODULE`, else the newer of
/// `target/<profile>/libmod_oauth2.so` (what `cargo build` writes) and
/// `target/<profile>/deps/libmod_oauth2.so` (what `cargo test` writes when the crate is also an
/// rlib), derived from the test executable. Panics with instructions when neither exists, or when
/// the derived module is older than the crate's sources (a stale module would make the tests lie;
/// set `OAUTH2_ALLOW_STALE=1` to skip that check).
pub(crate) fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("OAUTH2_MODULE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "OAUTH2_MODULE={} does not exist: build the module (`cargo build`) or fix the path",
            p.display()
        );
        return p.canonicalize().unwrap_or(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe
        .parent()
        .expect("test executable has no parent directory");
    let profile = deps.parent().expect("test executable has no grandparent");
    let candidates = [
        profile.join("libmod_oauth2.so"),
        deps.join("libmod_oauth2.so"),
    ];
    let p = candidates
        .iter()
        .filter_map(|c| Some((fs::metadata(c).ok()?.modified().ok()?, c)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| {
            panic!(
                "mod_oauth2 not found at {}: run `cargo build` (or `cargo build --release` for \
                 `cargo test --release`) before the integration tests, or set OAUTH2_MODULE to \
                 the module's path",
                candidates[0].display()
            )
        });
    if std::env::var_os("OAUTH2_ALLOW_STALE").is_none() {
        let built = fs::metadata(&p).and_then(|m| m.modified()).unwrap();
        if let Some((newest, file)) = newest_source() {
            assert!(
                newest <= built,
                "{} is older than {}: run `cargo build` again (or set OAUTH2_ALLOW_STALE=1)",
                p.display(),
                file.display()
            );
        }
    }
    p.canonicalize().unwrap_or(p)
}

/// The most recently modified file among the module's sources (src/, c-shim/, build.rs,
/// Cargo.toml).
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    fn walk(p: &Path, best: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(md) = fs::metadata(p) else { return };
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), best);
                }
            }
        } else if let Ok(t) = md.modified() {
            if best.as_ref().is_none_or(|(b, _)| t > *b) {
                *best = Some((t, p.to_path_buf()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut best = None;
    for sub in ["src", "c-shim", "build.rs", "Cargo.toml"] {
        walk(&root.join(sub), &mut best);
    }
    best
}
