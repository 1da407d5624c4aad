//! Failure collector for table tests: every row is checked and recorded, the test reports every
//! failing row at once, and a test cannot pass without having checked anything.

use super::client::Response;
use super::httpd::Httpd;

/// Collects the outcome of every check of a table test.
///
/// - [`Failures::check`] / [`Failures::expect`] / [`Failures::pass`] / [`Failures::fail`] record
///   one case each (passed or failed, with a message for a failure);
/// - [`Failures::assert_none`] ends the test: it panics when a case failed, and also when no case
///   was checked at all (an empty table or a loop that never ran asserts nothing);
/// - dropping a collector without calling [`Failures::assert_none`] panics too (unless the thread
///   is already panicking), so a forgotten final assertion cannot make a table test vacuous.
#[derive(Default)]
pub(crate) struct Failures {
    checked: usize,
    failed: Vec<String>,
    finished: bool,
}

impl Failures {
    pub(crate) fn new() -> Failures {
        Failures::default()
    }

    /// One case: passed when `ok`, else failed with `msg()`.
    pub(crate) fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.failed.push(msg());
        }
    }

    /// One case that passed.
    pub(crate) fn pass(&mut self) {
        self.checked += 1;
    }

    /// One case that failed.
    pub(crate) fn fail(&mut self, msg: impl Into<String>) {
        self.checked += 1;
        self.failed.push(msg.into());
    }

    /// Expect `status`, and for a 401 exactly `challenge` as WWW-Authenticate.
    pub(crate) fn expect(
        &mut self,
        what: &str,
        r: &Response,
        status: u16,
        challenge: Option<&str>,
    ) {
        let wa = r.header_all("WWW-Authenticate");
        let ok_status = r.status == status;
        let ok_wa = match challenge {
            Some(c) => wa == [c],
            None => true,
        };
        self.check(ok_status && ok_wa, || {
            format!(
                "{what}: expected {status}{}, got {} with WWW-Authenticate {wa:?}",
                challenge.map(|c| format!(" [{c}]")).unwrap_or_default(),
                r.status
            )
        });
    }

    /// True when no case has failed so far (e.g. to print diagnostics before
    /// [`Failures::assert_none`]).
    pub(crate) fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// [`Failures::assert_none`], after printing the tail of `h`'s mod_oauth2 log lines when a
    /// case failed (what the module said about the failed requests).
    #[track_caller]
    pub(crate) fn assert_none_showing(self, h: &Httpd) {
        if !self.all_passed() {
            let log = h.error_log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("oauth2")).collect();
            eprintln!(
                "--- httpd error_log (oauth2 lines, tail) ---\n{}",
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
        self.assert_none();
    }

    /// Ends the test: panics listing every failed case, or when no case was checked.
    #[track_caller]
    pub(crate) fn assert_none(mut self) {
        self.finished = true;
        assert!(
            self.checked > 0,
            "table test checked no case: nothing was asserted"
        );
        assert!(
            self.failed.is_empty(),
            "{} of {} case(s) failed:\n  {}",
            self.failed.len(),
            self.checked,
            self.failed.join("\n  ")
        );
    }
}

impl Drop for Failures {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!(
                "Failures dropped without assert_none() ({} case(s) checked, {} failed):\n  {}",
                self.checked,
                self.failed.len(),
                self.failed.join("\n  ")
            );
        }
    }
}
