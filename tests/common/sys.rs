//! Processes, ports, files and time: the plumbing every harness piece shares.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as i64
}

pub(super) fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub(super) fn apache_bin() -> String {
    std::env::var("APACHE2_BIN").unwrap_or_else(|_| "/usr/sbin/apache2".into())
}

pub(super) fn apache_modules_dir() -> String {
    std::env::var("APACHE2_MODULES").unwrap_or_else(|_| "/usr/lib/apache2/modules".into())
}

pub(super) fn curl_bin() -> String {
    std::env::var("CURL_BIN").unwrap_or_else(|_| "curl".into())
}

pub(super) fn unique_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!(
        "mod_oauth2-it-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&d).expect("create temp dir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub(super) fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A free TCP port on 127.0.0.1 (bound, read, released), never one this process was given
/// before: the kernel may hand a just-released port out again, and two listeners of one httpd
/// (or two servers of one test) on the same port fail to start.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0")
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether process `pid` holds the listening TCP socket of `127.0.0.1:port`. A port that
/// answers is not proof enough: a port chosen free may be taken by another test's server
/// before the process under test binds it.
pub(crate) fn listens_on(pid: u32, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address rem_address st ... inode (field 9); 0A is LISTEN
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// Poll `f` every 20 ms until it returns `Some`, at most `limit`.
pub(crate) fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Run a command with a time bound; returns (success, stdout+stderr). Kills it on timeout.
pub(super) fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let out_path = unique_dir("cmd");
    let so = out_path.join("out");
    let se = out_path.join("err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&so).unwrap())
        .stderr(fs::File::create(&se).unwrap())
        .spawn()
        .expect("spawn");
    let st = poll(limit, || child.try_wait().ok().flatten());
    let st = match st {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    };
    let text = format!(
        "{}{}",
        fs::read_to_string(&so).unwrap_or_default(),
        fs::read_to_string(&se).unwrap_or_default()
    );
    let _ = fs::remove_dir_all(&out_path);
    (st.success(), text)
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    openssl::sha::sha256(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Position of `needle` in `hay`.
pub(crate) fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    find(hay, needle)
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
