//! [`ApacheRequest`]: the core's view of an httpd `request_rec`, through the shim's accessors.

use std::cell::OnceCell;
use std::ffi::{CStr, c_char};

use super::log;
use crate::authn::{self, LogLevel, Outcome};
use crate::ffi;
use crate::pass;
use crate::pop::mtls;
use crate::token::TokenSource;

pub struct ApacheRequest {
    r: *mut ffi::request_rec,
    thumbprint: OnceCell<Option<String>>,
}

/// A C string owned by an APR pool that outlives the request (or NULL).
fn pool_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL strings from the shim are NUL-terminated and pool-owned for the request.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

impl ApacheRequest {
    /// # Safety
    /// `r` must be the live request of the current hook, used on this thread only.
    pub unsafe fn new(r: *mut ffi::request_rec) -> ApacheRequest {
        ApacheRequest {
            r,
            thumbprint: OnceCell::new(),
        }
    }

    pub fn log(&self, level: std::ffi::c_int, msg: &str) {
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

    /// Removes incoming headers that look like ours (reference 5.3), before anything reads them.
    pub fn scrub_spoofed_headers(&self, prefix: &str) {
        let mut spoofed: Vec<String> = Vec::new();
        // SAFETY: see `new`; keys are read before any unset changes the table.
        let count = unsafe { ffi::oauth2_headers_in_count(self.r) };
        for i in 0..count {
            let key = unsafe { ffi::oauth2_headers_in_key(self.r, i) };
            if key.is_null() {
                continue;
            }
            // SAFETY: table keys are NUL-terminated pool strings.
            let name = unsafe { CStr::from_ptr(key) }.to_string_lossy();
            if pass::is_spoofed(prefix, &name)
                && !spoofed.iter().any(|s| s.eq_ignore_ascii_case(&name))
            {
                spoofed.push(name.into_owned());
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
            // SAFETY: see `new`; name is passed with its length.
            unsafe { ffi::oauth2_header_in_unset(self.r, name.as_ptr().cast(), name.len()) };
        }
    }

    /// Carries the decision into httpd and returns the hook's status code.
    pub fn apply(&self, outcome: Outcome) -> std::ffi::c_int {
        match outcome {
            Outcome::Declined => ffi::DECLINED,
            Outcome::Refused {
                status,
                www_authenticate,
                reason,
                level,
            } => {
                let level = match level {
                    LogLevel::Info => ffi::APLOG_INFO,
                    LogLevel::Warn => ffi::APLOG_WARNING,
                    LogLevel::Error => ffi::APLOG_ERR,
                };
                self.log(level, &format!("oauth2: {reason}"));
                // SAFETY: see `new`; the value is copied into the request pool by the shim.
                unsafe {
                    ffi::oauth2_err_header_add(
                        self.r,
                        c"WWW-Authenticate".as_ptr(),
                        www_authenticate.as_ptr().cast(),
                        www_authenticate.len(),
                    )
                };
                std::ffi::c_int::from(status)
            }
            Outcome::Granted {
                user,
                pass,
                verifier,
            } => {
                // SAFETY: see `new`; all strings are passed with lengths and copied by the shim.
                unsafe { ffi::oauth2_set_user(self.r, user.as_ptr().cast(), user.len()) };
                for (name, value) in &pass {
                    unsafe {
                        ffi::oauth2_header_in_set(
                            self.r,
                            name.as_ptr().cast(),
                            name.len(),
                            value.as_ptr().cast(),
                            value.len(),
                        );
                        ffi::oauth2_env_set(
                            self.r,
                            name.as_ptr().cast(),
                            name.len(),
                            value.as_ptr().cast(),
                            value.len(),
                        );
                    }
                }
                self.log(
                    ffi::APLOG_DEBUG,
                    &format!(
                        "oauth2: token accepted by {verifier} for user \"{}\"",
                        user.escape_default()
                    ),
                );
                ffi::OK
            }
        }
    }

    /// The client certificate's thumbprint, memoised per connection: mod_ssl's PEM is compared
    /// with the one seen last on this connection, and hashed only when it changed.
    fn compute_thumbprint(&self) -> Option<String> {
        // SAFETY: see `new`.
        let pem_ptr = unsafe { ffi::oauth2_client_cert_pem(self.r) };
        let pem = pool_str(pem_ptr)?;
        let (mut memo_pem, mut memo_thumb) = (std::ptr::null(), std::ptr::null());
        // SAFETY: see `new`; the shim fills both out-pointers.
        unsafe { ffi::oauth2_conn_memo_get(self.r, &mut memo_pem, &mut memo_thumb) };
        if let (Some(seen), Some(thumb)) = (pool_str(memo_pem), pool_str(memo_thumb)) {
            if seen == pem {
                return Some(thumb.to_string());
            }
        }
        let thumb = mtls::thumbprint_of_pem(pem)?;
        // SAFETY: see `new`; pem_ptr is NUL-terminated, the thumbprint passed with its length.
        unsafe { ffi::oauth2_conn_memo_set(self.r, pem_ptr, thumb.as_ptr().cast(), thumb.len()) };
        Some(thumb)
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
}

impl authn::Request for ApacheRequest {
    fn auth_name(&self) -> Option<&str> {
        // SAFETY: see `new`.
        pool_str(unsafe { ffi::oauth2_auth_name(self.r) })
    }

    fn client_thumbprint(&self) -> Option<String> {
        self.thumbprint
            .get_or_init(|| self.compute_thumbprint())
            .clone()
    }
}
