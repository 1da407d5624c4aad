//! [`ApacheRequest`]: the core's view of an httpd `request_rec`, through the shim's accessors, and
//! the code that carries a decision back into the request.

use serde_json::{Map, Value};
use std::cell::OnceCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Arc;

use super::log;
use crate::authn::{self, Granted, Outcome};
use crate::ffi;
use crate::pass::{self, Passed};
use crate::pop::mtls;
use crate::refusal::LogLevel;
use crate::token::{StripAction, TokenSource};
use crate::verify::memo::ConnectionMemo;
use crate::verify::{Accepted, Claims};

pub struct ApacheRequest {
    r: *mut ffi::request_rec,
    body: OnceCell<Option<&'static [u8]>>,
}

/// A C string owned by an APR pool that outlives the request (or NULL).
fn pool_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL strings from the shim are NUL-terminated and pool-owned for the request.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    // Tokens and header values are ASCII: checked a word at a time, cheaper than UTF-8 decoding.
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Releases the claims kept for `Require oauth2_claim` when the request pool goes.
unsafe extern "C" fn release_claims(data: *mut c_void) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Arc::into_raw in `keep_claims`.
        drop(unsafe { Arc::from_raw(data.cast_const().cast::<Accepted>()) });
    });
    0
}

unsafe extern "C" fn new_token_memo() -> *mut c_void {
    std::panic::catch_unwind(|| Box::into_raw(Box::<ConnectionMemo>::default()).cast::<c_void>())
        .unwrap_or(std::ptr::null_mut())
}

/// Frees a connection's token memo when the connection pool goes.
unsafe extern "C" fn release_token_memo(data: *mut c_void) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Box::into_raw in `new_token_memo`.
        drop(unsafe { Box::from_raw(data.cast::<ConnectionMemo>()) });
    });
    0
}

impl ApacheRequest {
    /// # Safety
    /// `r` must be the live request of the current hook, used on this thread only.
    pub unsafe fn new(r: *mut ffi::request_rec) -> ApacheRequest {
        ApacheRequest {
            r,
            body: OnceCell::new(),
        }
    }

    pub fn log(&self, level: c_int, msg: &str) {
        log::request(self.r, level, msg);
    }

    /// For sub-requests and internal redirects: the user the originating request authenticated.
    pub fn derived_from_user(&self) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_derived_from_user(self.r) })
    }

    pub fn inherit_user(&self) {
        // SAFETY: see `new`.
        unsafe { ffi::oauth2_inherit_user(self.r) }
    }

    pub fn user(&self) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_user(self.r) })
    }

    /// The claims verified for this request (or the one it derives from), for authorization.
    pub fn claims(&self) -> Option<&Map<String, Value>> {
        // SAFETY: see `new`; the pointer was stored by `keep_claims` and lives as long as the pool
        // of the request that stored it, which outlives this one.
        unsafe {
            ffi::oauth2_request_claims_get(self.r)
                .cast::<Accepted>()
                .as_ref()
                .map(Accepted::claims)
        }
    }

    fn keep_claims(&self, claims: Claims) {
        let raw = Arc::into_raw(claims).cast_mut().cast::<c_void>();
        // SAFETY: see `new`; the cleanup releases `raw` exactly once with the request pool.
        unsafe { ffi::oauth2_request_claims_set(self.r, raw, release_claims) };
    }

    pub fn set_env(&self, name: &str, value: &[u8]) {
        // SAFETY: see `new`; both are passed with lengths and copied by the shim.
        unsafe {
            ffi::oauth2_env_set(
                self.r,
                name.as_ptr().cast(),
                name.len(),
                value.as_ptr().cast(),
                value.len(),
            )
        }
    }

    /// Variables of `pass` as request headers and/or environment variables. `fresh_prefix_len`:
    /// see [`Passed::fresh_prefix_len`] (request headers with the prefix were scrubbed before).
    fn set_pairs(
        &self,
        pass: &Passed,
        pairs: &[[usize; 2]],
        (headers, envvars): (bool, bool),
        fresh_prefix_len: usize,
    ) {
        if pairs.is_empty() || !(headers || envvars) {
            return;
        }
        let text = pass.text();
        // SAFETY: see `new`; the shim copies `text` (NUL-terminated parts, checked to end in NUL)
        // into the request pool and reads only offsets below its length; `pairs` is `n` pairs of
        // usize laid out contiguously ([usize; 2] has no padding).
        unsafe {
            ffi::oauth2_pairs_set(
                self.r,
                text.as_ptr().cast(),
                text.len(),
                pairs.as_ptr().cast(),
                pairs.len(),
                c_int::from(headers),
                c_int::from(envvars),
                fresh_prefix_len,
            )
        }
    }

    fn set_header(&self, name: &str, value: &[u8]) {
        // SAFETY: see `new`; both are passed with lengths and copied by the shim.
        unsafe {
            ffi::oauth2_header_in_set(
                self.r,
                name.as_ptr().cast(),
                name.len(),
                value.as_ptr().cast(),
                value.len(),
            )
        }
    }

    fn unset_header(&self, name: &str) {
        // SAFETY: see `new`; the name is passed with its length.
        unsafe { ffi::oauth2_header_in_unset(self.r, name.as_ptr().cast(), name.len()) };
    }

    /// Removes incoming headers that look like ours (reference 5.3) before anything reads them:
    /// names starting with the claim prefix in any spelling, and the `authn_header` in any case.
    pub fn scrub_spoofed_headers(&self, prefix: &str, authn_header: Option<&str>) {
        let mut spoofed: Vec<String> = Vec::new();
        // SAFETY: see `new`; keys are collected before any unset changes the table.
        let count = unsafe { ffi::oauth2_headers_in_count(self.r) };
        for i in 0..count {
            let key = unsafe { ffi::oauth2_headers_in_key(self.r, i) };
            if key.is_null() {
                continue;
            }
            // SAFETY: table keys are NUL-terminated pool strings.
            let name = unsafe { CStr::from_ptr(key) }.to_bytes();
            let ours = pass::is_spoofed(prefix, name)
                || authn_header.is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(name));
            if ours {
                let name = String::from_utf8_lossy(name);
                if !spoofed.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                    spoofed.push(name.into_owned());
                }
            }
        }
        for name in spoofed {
            let shown: String = name.chars().take(32).collect();
            self.log(
                ffi::APLOG_WARNING,
                &format!(
                    "oauth2: removed suspicious request header \"{}\"",
                    shown.escape_default()
                ),
            );
            self.unset_header(&name);
        }
    }

    /// Carries the decision into httpd and returns the hook's status code.
    pub fn apply(&self, outcome: Outcome) -> c_int {
        match outcome {
            Outcome::Declined => ffi::DECLINED,
            Outcome::Refused { refusal, scheme } => {
                let response = refusal.response(scheme, authn::Request::auth_name(self));
                let level = match response.level {
                    LogLevel::Info => ffi::APLOG_INFO,
                    LogLevel::Warn => ffi::APLOG_WARNING,
                    LogLevel::Error => ffi::APLOG_ERR,
                };
                self.log(level, &format!("oauth2: {}", response.log_line));
                let challenge = response.www_authenticate;
                // SAFETY: see `new`; the value is copied into the request pool by the shim.
                unsafe {
                    ffi::oauth2_err_header_add(
                        self.r,
                        c"WWW-Authenticate".as_ptr(),
                        challenge.as_ptr().cast(),
                        challenge.len(),
                    )
                };
                c_int::from(response.status)
            }
            Outcome::Granted(granted) => {
                self.grant(granted);
                ffi::OK
            }
        }
    }

    fn grant(&self, g: Granted) {
        let Granted {
            pass,
            strip,
            claims,
            verifier,
            origin,
        } = g;
        if let Some(action) = strip {
            self.strip(action);
        }
        let user = pass.user();
        // SAFETY: see `new`; copied by the shim.
        unsafe { ffi::oauth2_set_user(self.r, user.as_ptr().cast(), user.len()) };
        let targets = (pass.headers, pass.envvars);
        self.set_pairs(&pass, pass.var_offsets(), targets, pass.fresh_prefix_len());
        if let Some(pair) = pass.authn_header_offsets() {
            self.set_pairs(&pass, &[pair], (true, false), 0);
        }
        if crate::serving::claims_required() {
            self.keep_claims(claims);
        }
        // SAFETY: see `new`. Checked first so the hot path does not format a line nobody reads.
        if unsafe { ffi::oauth2_log_enabled(self.r, ffi::APLOG_DEBUG) } == 0 {
            return;
        }
        self.log(
            ffi::APLOG_DEBUG,
            &format!(
                "oauth2: token accepted by {verifier} ({}) for user \"{}\"",
                origin.describe(),
                user.escape_default()
            ),
        );
    }

    fn strip(&self, action: StripAction) {
        // SAFETY (all arms): see `new`; values are passed with lengths or as NUL-terminated CStrings.
        match action {
            StripAction::UnsetEnv(name) => unsafe { ffi::oauth2_env_unset(self.r, name.as_ptr()) },
            StripAction::UnsetHeader(name) => self.unset_header(&name.to_string_lossy()),
            StripAction::SetQuery(q) => unsafe {
                ffi::oauth2_args_set(self.r, q.as_ptr().cast(), q.len())
            },
            StripAction::SetCookie(c) if c.is_empty() => self.unset_header("Cookie"),
            StripAction::SetCookie(c) => self.set_header("Cookie", c.as_bytes()),
            StripAction::SetBody(b) => unsafe {
                ffi::oauth2_body_replace(self.r, b.as_ptr().cast(), b.len())
            },
        }
    }

    /// The thumbprint memoised for this connection, without asking mod_ssl (which would export
    /// the certificate as PEM on every request); the first lookup on a connection fills the memo.
    /// Borrowed from the connection's pool, which outlives the request.
    fn memo_thumbprint(&self) -> Option<&str> {
        let (mut memo_pem, mut memo_thumb) = (std::ptr::null(), std::ptr::null());
        // SAFETY: see `new`; the shim fills both out-pointers.
        unsafe { ffi::oauth2_conn_memo_get(self.r, &mut memo_pem, &mut memo_thumb) };
        pool_str(memo_thumb).or_else(|| self.current_thumbprint())
    }

    /// The certificate mod_ssl has now; hashed only when it differs from the memo, which it updates.
    fn current_thumbprint(&self) -> Option<&str> {
        // SAFETY: see `new`.
        let pem_ptr = unsafe { ffi::oauth2_client_cert_pem(self.r) };
        let pem = pool_str(pem_ptr)?;
        let (mut memo_pem, mut memo_thumb) = (std::ptr::null(), std::ptr::null());
        // SAFETY: see `new`; the shim fills both out-pointers.
        unsafe { ffi::oauth2_conn_memo_get(self.r, &mut memo_pem, &mut memo_thumb) };
        if let (Some(seen), Some(thumb)) = (pool_str(memo_pem), pool_str(memo_thumb)) {
            if seen == pem {
                return Some(thumb);
            }
        }
        let thumb = mtls::thumbprint_of_pem(pem)?;
        // SAFETY: see `new`; pem_ptr is NUL-terminated, the thumbprint passed with its length; the
        // shim returns the connection pool's copy.
        pool_str(unsafe {
            ffi::oauth2_conn_memo_set(self.r, pem_ptr, thumb.as_ptr().cast(), thumb.len())
        })
    }
}

impl TokenSource for ApacheRequest {
    fn header(&self, name: &CStr) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_header_in_get(self.r, name.as_ptr()) })
    }

    fn env(&self, name: &CStr) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_env_get(self.r, name.as_ptr()) })
    }

    fn method(&self) -> &str {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_method(self.r) }).unwrap_or("")
    }

    fn query(&self) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_args(self.r) })
    }

    fn form_body(&self, limit: usize) -> Option<&[u8]> {
        *self.body.get_or_init(|| {
            let (mut data, mut len) = (std::ptr::null(), 0usize);
            // SAFETY: see `new`; on success the shim returns `len` bytes in the request pool,
            // which outlives this view.
            let rc = unsafe { ffi::oauth2_body_read(self.r, limit, &mut data, &mut len) };
            (rc == 0 && !data.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
        })
    }
}

impl authn::Request for ApacheRequest {
    fn auth_name(&self) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_auth_name(self.r) })
    }

    fn client_thumbprint(&self) -> Option<&str> {
        self.memo_thumbprint()
    }

    fn client_thumbprint_now(&self) -> Option<&str> {
        self.current_thumbprint()
    }

    fn connection_memo(&self) -> Option<&ConnectionMemo> {
        // SAFETY: see `new`; the memo is made once per connection and freed with the connection's
        // pool, which outlives this request. It is only used through its own lock.
        unsafe {
            ffi::oauth2_conn_token_memo(self.r, new_token_memo, release_token_memo)
                .cast::<ConnectionMemo>()
                .as_ref()
        }
    }
}
