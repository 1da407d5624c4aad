//! Every function httpd (through the shim) calls into Rust. Each body runs inside `catch_unwind`:
//! a panic becomes a logged error (a 500 for requests, a config error for directives) instead of
//! unwinding into C, which would abort the whole child process and every request on it.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::apache::{log, request::ApacheRequest};
use crate::authn::{self, Mode};
use crate::config::{DirConfig, verifier};
use crate::ffi;
use crate::pass;

/// Releases a DirConfig when its pool is cleared (config reload, graceful restart, end of request).
unsafe extern "C" fn drop_dir_config(data: *mut c_void) -> c_int {
    let _ = catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Box::into_raw in `own_in_pool`.
        drop(unsafe { Box::from_raw(data.cast::<DirConfig>()) });
    });
    0
}

/// Hands a DirConfig to `pool`: it lives exactly as long as the pool.
fn own_in_pool(pool: *mut ffi::apr_pool_t, cfg: DirConfig) -> *mut c_void {
    let raw = Box::into_raw(Box::new(cfg)).cast::<c_void>();
    // SAFETY: pool is a live APR pool; the cleanup frees `raw` exactly once.
    unsafe { ffi::oauth2_pool_cleanup_register(pool, raw, drop_dir_config) };
    raw
}

fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: Apache passes NUL-terminated directive arguments that live for the config pass.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// A pool-allocated copy of `msg` for httpd to print as the directive's error.
fn pool_message(pool: *mut ffi::apr_pool_t, msg: &str) -> *const c_char {
    let msg = msg.replace('\0', " ");
    // SAFETY: the shim copies exactly `len` bytes into the pool and NUL-terminates.
    unsafe { ffi::oauth2_pstrmemdup(pool, msg.as_ptr().cast(), msg.len()) }
}

#[unsafe(no_mangle)]
pub extern "C" fn oauth2_rs_cmd_token_verify(
    pool: *mut ffi::apr_pool_t,
    server: *mut ffi::server_rec,
    file: *const c_char,
    line: c_uint,
    rs: *mut *mut c_void,
    kind: *const c_char,
    value: *const c_char,
    options: *const c_char,
) -> *const c_char {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let kind = c_str(kind).ok_or("OAuth2TokenVerify: the type must be UTF-8 text")?;
        let value = c_str(value).ok_or("OAuth2TokenVerify: the value must be UTF-8 text")?;
        let options = match options.is_null() {
            true => None,
            false => {
                Some(c_str(options).ok_or("OAuth2TokenVerify: the options must be UTF-8 text")?)
            }
        };
        let origin = verifier::Origin {
            file: c_str(file).unwrap_or("?"),
            line,
        };
        let parsed = verifier::parse(kind, value, options, &origin)?;
        for w in &parsed.warnings {
            log::server(server, ffi::APLOG_WARNING, w);
        }
        for d in &parsed.debug {
            log::server(server, ffi::APLOG_DEBUG, d);
        }
        // SAFETY: rs points into this context's shim config; *rs is NULL or a DirConfig we own.
        let slot = unsafe { &mut *rs };
        if slot.is_null() {
            *slot = own_in_pool(pool, DirConfig::default());
        }
        // SAFETY: config parsing is single-threaded and nothing else holds this DirConfig yet.
        let cfg = unsafe { &mut *slot.cast::<DirConfig>() };
        cfg.add_verifier(parsed.verifier);
        Ok(())
    }));
    match result {
        Ok(Ok(())) => std::ptr::null(),
        Ok(Err(msg)) => pool_message(pool, &msg),
        Err(_) => pool_message(
            pool,
            "OAuth2TokenVerify: internal error (panic) while parsing this line",
        ),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn oauth2_rs_dir_merge(
    pool: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // Nothing configured on one side: share the other (both live at least as long as `pool`).
    if add.is_null() {
        return base;
    }
    if base.is_null() {
        return add;
    }
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both are DirConfigs owned by pools that outlive this merge.
        let (base, add) = unsafe { (&*base.cast::<DirConfig>(), &*add.cast::<DirConfig>()) };
        own_in_pool(pool, DirConfig::merge(base, add))
    }))
    .unwrap_or(add) // on a panic the child's own settings are the safer choice
}

#[unsafe(no_mangle)]
pub extern "C" fn oauth2_rs_check_authn(
    r: *mut ffi::request_rec,
    rs: *mut c_void,
    mode: c_int,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: r is the live request of this hook, on this thread.
        let req = unsafe { ApacheRequest::new(r) };
        // A sub-request or internal redirect of an authenticated request: no second verification.
        if req.derived_from_user().is_some() {
            req.inherit_user();
            return ffi::OK;
        }
        req.scrub_spoofed_headers(pass::DEFAULT_PREFIX);
        let empty = DirConfig::default();
        // SAFETY: rs is NULL or a DirConfig owned by a pool that outlives the request.
        let cfg = unsafe { rs.cast::<DirConfig>().as_ref() }.unwrap_or(&empty);
        let mode = if mode == ffi::OAUTH2_MODE_OPENIDC {
            Mode::OpenIdc
        } else {
            Mode::OAuth2
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        req.apply(authn::authenticate(cfg, &req, mode, now))
    }));
    result.unwrap_or_else(|_| {
        log::request(
            r,
            ffi::APLOG_ERR,
            "oauth2: internal error (panic) while authenticating; answering 500",
        );
        ffi::HTTP_INTERNAL_SERVER_ERROR
    })
}
