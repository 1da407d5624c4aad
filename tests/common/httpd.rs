//! A private `apache2 -DFOREGROUND`: start (bounded wait, port races retried), logs, graceful
//! restart, stop (also on drop and when a test panics).

use super::httpd_config::{
    HttpdConfig, READY_HEADER, READY_PATH, prepare_dir, ready_marker, render,
};
use super::module_under_test::module_path;
use super::pki::Pki;
use super::sys::{apache_bin, free_port, poll, signal, unique_dir, write_file};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private httpd: TLS virtual host (`SSLVerifyClient optional_no_ca`) and plain-HTTP virtual
/// host on free loopback ports. Stopped (SIGTERM, then SIGKILL of its process group) on drop.
pub(crate) struct Httpd {
    pub(crate) dir: PathBuf,
    pub(crate) pki: Pki,
    pub(crate) https_port: u16,
    pub(crate) http_port: u16,
    child: Option<Child>,
}

impl Httpd {
    /// Write the configuration, start `apache2 -DFOREGROUND`, wait (bounded) until it answers.
    /// Panics with the error log and stderr when it does not come up.
    pub(crate) fn start(config: HttpdConfig) -> Httpd {
        if config.load_oauth2 {
            module_path(); // fail early, with instructions, when the module is not built
        }
        let dir = unique_dir("httpd");
        let pki = Pki::new(&dir.join("pki"));
        prepare_dir(&dir);
        let conf = dir.join("httpd.conf");
        // One value across attempts: its drop removes the directory, which a retry still needs.
        let mut h = Httpd {
            dir,
            pki,
            https_port: 0,
            http_port: 0,
            child: None,
        };
        let mut last_err = String::new();
        for _attempt in 0..5 {
            h.https_port = free_port();
            h.http_port = free_port();
            while h.http_port == h.https_port {
                h.http_port = free_port();
            }
            let conf_text = render(&config, &h.dir, &h.pki, h.https_port, h.http_port);
            write_file(&conf, conf_text.as_bytes(), 0o644);
            let _ = fs::remove_file(h.dir.join("error_log"));
            h.child = Some(spawn(&h.dir));
            match h.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return h,
                Err(e) => {
                    let text = format!(
                        "{e}\n--- stderr ---\n{}\n--- error_log ---\n{}",
                        fs::read_to_string(h.dir.join("stderr.log")).unwrap_or_default(),
                        h.error_log()
                    );
                    h.stop();
                    if text.contains("Address already in use") {
                        last_err = text;
                        continue; // port race with another test: pick new ports
                    }
                    panic!(
                        "httpd did not start (config {}):\n{text}\n--- config ---\n{}",
                        conf.display(),
                        fs::read_to_string(&conf).unwrap_or_default()
                    );
                }
            }
        }
        panic!("httpd did not start after 5 port choices:\n{last_err}");
    }

    /// A full stop, then a start of the same configuration in the same directory (what
    /// `apache2ctl stop; apache2ctl start` does: a new parent process). Panics when it does not
    /// come up (the ports may have been taken in between).
    pub(crate) fn stop_and_start(&mut self) {
        self.stop();
        self.child = Some(spawn(&self.dir));
        if let Err(e) = self.wait_ready(Duration::from_secs(10)) {
            panic!(
                "httpd did not start again: {e}\n--- error_log ---\n{}",
                self.error_log()
            );
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("httpd not running").id()
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("apache2 exited during startup: {st}"));
            }
            if self.probe_http() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("apache2 did not answer within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// One raw HTTP/1.0 request on the plain port; true when the answer carries this httpd's
    /// ready marker (another test's server on a port taken in between answers HTTP too).
    fn probe_http(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.http_port).parse().unwrap(),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET {READY_PATH} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = s.take(16 * 1024).read_to_end(&mut answer);
        let head = String::from_utf8_lossy(&answer);
        let head = head.split("\r\n\r\n").next().unwrap_or_default();
        let want = format!("{READY_HEADER}: {}", ready_marker(&self.dir));
        head.starts_with("HTTP/1.")
            && head
                .lines()
                .any(|l| l.trim_end().eq_ignore_ascii_case(&want))
    }

    /// The error log so far.
    pub(crate) fn error_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.join("error_log")).unwrap_or_default())
            .into_owned()
    }

    /// The access log so far (`%h %l %u %t "%r" %>s %b %P`).
    pub(crate) fn access_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.join("access_log")).unwrap_or_default())
            .into_owned()
    }

    /// Current length of the error log, for [`Httpd::log_since`].
    pub(crate) fn log_mark(&self) -> usize {
        fs::metadata(self.dir.join("error_log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Error-log text written after `mark`.
    pub(crate) fn log_since(&self, mark: usize) -> String {
        let all = fs::read(self.dir.join("error_log")).unwrap_or_default();
        String::from_utf8_lossy(&all[mark.min(all.len())..]).into_owned()
    }

    /// Error-log text written between two marks.
    pub(crate) fn log_between(&self, from: usize, to: usize) -> String {
        let all = fs::read(self.dir.join("error_log")).unwrap_or_default();
        let to = to.min(all.len());
        String::from_utf8_lossy(&all[from.min(to)..to]).into_owned()
    }

    /// Wait (bounded, 3 s) until the log written after `mark` satisfies `pred`; returns that text
    /// (or the text at the deadline).
    pub(crate) fn wait_log_since(&self, mark: usize, pred: impl Fn(&str) -> bool) -> String {
        poll(Duration::from_secs(3), || {
            let t = self.log_since(mark);
            pred(&t).then_some(t)
        })
        .unwrap_or_else(|| self.log_since(mark))
    }

    /// Panics if the error log shows a child that died from a signal or a segfault/abort.
    pub(crate) fn assert_no_child_crash(&self) {
        let log = self.error_log();
        for l in log.lines() {
            let bad = l.contains("exit signal")
                || l.contains("Segmentation fault")
                || l.contains("AH00052")
                || l.contains("panicked")
                || l.contains("core dumped");
            assert!(
                !bad,
                "child crash in error log: {l}\n--- error_log ---\n{log}"
            );
        }
    }

    /// Graceful restart (SIGUSR1, what `apache2 -k graceful` sends); waits (bounded) until the
    /// parent has re-read the configuration ("resuming normal operations" logged once more) and
    /// the server answers again.
    pub(crate) fn graceful(&mut self) {
        let marker = "resuming normal operations";
        let before = self.error_log().matches(marker).count();
        signal(self.pid(), "USR1");
        let ok = poll(Duration::from_secs(15), || {
            (self.error_log().matches(marker).count() > before).then_some(())
        });
        if ok.is_none() || self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
            panic!(
                "graceful restart did not complete\n--- error_log ---\n{}",
                self.error_log()
            );
        }
        poll(Duration::from_secs(10), || self.probe_http().then_some(()))
            .expect("httpd does not answer after graceful restart");
    }

    /// Stop now (SIGTERM to the parent; SIGKILL to its process group after 10 s).
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            signal(child.id(), "TERM");
            let exited = poll(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().map(|_| ())
            });
            if exited.is_none() {
                // The parent is not reaped yet, so its pid (= process group id) is still ours.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.wait();
            }
        }
    }
}

/// `apache2 -f <dir>/httpd.conf -DFOREGROUND` in its own process group.
fn spawn(dir: &std::path::Path) -> Child {
    Command::new(apache_bin())
        .arg("-f")
        .arg(dir.join("httpd.conf"))
        .arg("-DFOREGROUND")
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
        .stderr(fs::File::create(dir.join("stderr.log")).unwrap())
        .process_group(0)
        .spawn()
        .expect("spawn apache2")
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("KEEP_HTTPD_DIR").is_some() {
            eprintln!("harness: kept httpd directory {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
