//! Failure collector for table tests.

use super::client::Response;

/// Collects failed expectations so that a table test reports every failing row at once.
#[derive(Default)]
pub(crate) struct Failures(pub Vec<String>);

impl Failures {
    pub(crate) fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
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

    #[track_caller]
    pub(crate) fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} failed expectation(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}
