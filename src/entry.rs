//! Every function httpd (through the shim) calls into Rust. Each body runs inside `catch_unwind`:
//! a panic becomes a logged error (a 500 for requests, a config error for directives) instead of
//! unwinding into C, which would abort the whole child process and every request on it.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::time::Instant;

use crate::apache::{log, request::ApacheRequest};
use crate::authn::{self, Mode, Outcome};
use crate::authz;
use crate::cache;
use crate::challenge::{self, Scheme, www_authenticate};
use crate::config::server::ServerConfig;
use crate::config::{DirConfig, verifier};
use crate::ffi;
use crate::metrics::{self, Decided, region, render};
use crate::resource_metadata::{self, Answer, HostKey, HostSite};
use crate::serving;

/// Releases a configuration value when its pool is cleared (config reload, graceful restart,
/// end of request).
unsafe extern "C" fn drop_in_pool<T>(data: *mut c_void) -> c_int {
    let _ = catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Box::into_raw in `own_in_pool::<T>`.
        drop(unsafe { Box::from_raw(data.cast::<T>()) });
    });
    0
}

/// Hands a configuration value to `pool`: it lives exactly as long as the pool.
fn own_in_pool<T>(pool: *mut ffi::apr_pool_t, cfg: T) -> *mut c_void {
    let raw = Box::into_raw(Box::new(cfg)).cast::<c_void>();
    // SAFETY: pool is a live APR pool; the cleanup frees `raw` exactly once, as a T.
    unsafe { ffi::oauth2_pool_cleanup_register(pool, raw, drop_in_pool::<T>) };
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

/// One directive line. `which` is the directive (ffi::OAUTH2_CMD_*); returns NULL or the message
/// that `apache2 -t` prints after "Syntax error on line N of FILE:".
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_cmd(
    site: *const ffi::oauth2_cmd_site,
    rs: *mut *mut c_void,
    which: c_int,
    a1: *const c_char,
    a2: *const c_char,
    a3: *const c_char,
) -> *const c_char {
    // SAFETY: the shim passes a pointer to a site struct on its stack, valid for this call.
    let site = unsafe { &*site };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("cmd");
        let arg = |p: *const c_char| match p.is_null() {
            true => Ok(None),
            false => c_str(p)
                .map(Some)
                .ok_or_else(|| "arguments must be UTF-8 text".to_string()),
        };
        let (a1, a2, a3) = (arg(a1)?.unwrap_or(""), arg(a2)?, arg(a3)?);
        if which == ffi::OAUTH2_CMD_RESOURCE_METADATA {
            return resource_metadata_cmd(site, a1, a2);
        }
        if which == ffi::OAUTH2_CMD_CRYPTO_PASSPHRASE || which == ffi::OAUTH2_CMD_CACHE {
            let read = serving::reading(|generation| {
                if which == ffi::OAUTH2_CMD_CRYPTO_PASSPHRASE {
                    return generation.set_crypto_passphrase(a1);
                }
                let (spec, mut warnings) = cache::config::parse(a1, a2)?;
                warnings.extend(generation.caches.shadowed_name(&spec));
                for w in &warnings {
                    log::server(site.server, ffi::APLOG_WARNING, w);
                }
                generation.caches.add(spec);
                Ok(())
            });
            // None: an .htaccess file read per request; server-wide settings are not its to change.
            return read.unwrap_or_else(|| {
                log::server(
                    site.server,
                    ffi::APLOG_WARNING,
                    "OAuth2Cache and OAuth2CryptoPassphrase in .htaccess have no effect: set them in the server configuration",
                );
                Ok(())
            });
        }
        // SAFETY: rs points into this context's shim config; for a server-context directive it
        // is the server config's slot, NULL or a ServerConfig we own.
        let slot = unsafe { &mut *rs };
        if which == ffi::OAUTH2_CMD_TRUSTED_PROXY {
            if slot.is_null() {
                *slot = own_in_pool(site.pool, ServerConfig::default());
            }
            // SAFETY: config parsing is single-threaded; nothing else holds this ServerConfig yet.
            let server = unsafe { &mut *slot.cast::<ServerConfig>() };
            return server.add_trusted_proxy(a1);
        }
        // SAFETY: rs points into this context's shim config; *rs is NULL or a DirConfig we own.
        if slot.is_null() {
            *slot = own_in_pool(site.pool, DirConfig::default());
        }
        // SAFETY: config parsing is single-threaded and nothing else holds this DirConfig yet.
        let cfg = unsafe { &mut *slot.cast::<DirConfig>() };
        match which {
            ffi::OAUTH2_CMD_TOKEN_VERIFY => {
                let origin = verifier::Origin {
                    file: c_str(site.file).unwrap_or("?"),
                    line: site.line,
                };
                let parsed = serving::caches(|caches| {
                    verifier::parse(a1, a2.unwrap_or(""), a3, &origin, caches)
                })?;
                for w in &parsed.warnings {
                    log::server(site.server, ffi::APLOG_WARNING, w);
                }
                for d in &parsed.debug {
                    log::server(site.server, ffi::APLOG_DEBUG, d);
                }
                serving::reading(|generation| {
                    generation
                        .resource_metadata
                        .declare_verifier(host_site(site), &parsed.verifier)
                });
                cfg.add_verifier(parsed.verifier);
            }
            ffi::OAUTH2_CMD_ACCEPT_TOKEN_IN => {
                cfg.add_source(a1, a2)?;
                serving::reading(|generation| {
                    generation
                        .resource_metadata
                        .declare_sources(host_site(site), cfg.sources())
                });
            }
            ffi::OAUTH2_CMD_TARGET_PASS => {
                for w in cfg.target_pass.apply(a1)? {
                    log::server(site.server, ffi::APLOG_WARNING, &w);
                }
            }
            _ => return Err(format!("internal error: unknown directive number {which}")),
        }
        Ok(())
    }));
    match result {
        Ok(Ok(())) => std::ptr::null(),
        Ok(Err(msg)) => pool_message(site.pool, &msg),
        Err(_) => pool_message(site.pool, "internal error (panic) while parsing this line"),
    }
}

/// The server (main or virtual host) a directive line was written in.
fn host_site(site: &ffi::oauth2_cmd_site) -> HostSite {
    HostSite {
        key: HostKey(site.server as usize),
        // SAFETY: site.server is the live server_rec httpd is configuring.
        is_virtual: unsafe { ffi::oauth2_server_is_virtual(site.server) } != 0,
    }
}

/// `OAuth2ResourceMetadata <identifier> [<options>]`: server-wide, read once at startup.
fn resource_metadata_cmd(
    site: &ffi::oauth2_cmd_site,
    identifier: &str,
    options: Option<&str>,
) -> Result<(), String> {
    let parsed = resource_metadata::directive::parse(identifier, options)?;
    let origin = format!("{}:{}", c_str(site.file).unwrap_or("?"), site.line);
    serving::reading(|generation| {
        generation
            .resource_metadata
            .publish(host_site(site), parsed, &origin)
    })
    // None: an .htaccess file, which httpd refuses for a server-config directive already.
    .unwrap_or(Ok(()))
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_pre_config() {
    let _ = catch_unwind(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("pre_config");
        serving::begin_reading();
        crate::logsink::install(log::process);
    });
}

/// Checks that span directives (run by `apache2 -t` too); NULL or the error to print.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_check_config(ptemp: *mut ffi::apr_pool_t) -> *const c_char {
    match catch_unwind(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("check_config");
        serving::check()
    }) {
        Ok(Ok(())) => std::ptr::null(),
        Ok(Err(e)) => pool_message(ptemp, &e),
        Err(_) => pool_message(
            ptemp,
            "internal error (panic) while checking the configuration",
        ),
    }
}

/// Creates the shared caches in the parent, before the children are forked. A cache that cannot
/// be created is logged and left out: authentication works without it.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_post_config(ptemp: *mut ffi::apr_pool_t) -> *const c_char {
    match catch_unwind(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("post_config");
        serving::start()
    }) {
        Ok(Ok(errors)) => {
            for e in errors {
                crate::logsink::emit(
                    crate::logsink::Level::Error,
                    &format!("oauth2: {e}; running without it"),
                );
            }
            std::ptr::null()
        }
        Ok(Err(fatal)) => pool_message(ptemp, &fatal),
        Err(_) => pool_message(ptemp, "internal error (panic) while creating caches"),
    }
}

/// The configuration generation is being released (restart or stop).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_config_cleared() {
    let _ = catch_unwind(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("config_cleared");
        serving::end()
    });
}

/// Parses `Require oauth2_claim ...` once, at configuration time.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_authz_parse(
    pool: *mut ffi::apr_pool_t,
    line: *const c_char,
    parsed: *mut *const c_void,
) -> *const c_char {
    let result = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("authz_parse");
        let line = match line.is_null() {
            true => &[][..],
            // SAFETY: httpd passes the NUL-terminated rest of the Require line, live for the call.
            false => unsafe { CStr::from_ptr(line) }.to_bytes(),
        };
        let requirement = authz::Requirement::parse_bytes(line)?;
        let raw = Box::into_raw(Box::new(requirement)).cast::<c_void>();
        // SAFETY: pool is the configuration pool; the cleanup frees `raw` exactly once.
        unsafe {
            ffi::oauth2_pool_cleanup_register(pool, raw, drop_requirement);
            *parsed = raw;
        }
        Ok::<(), String>(())
    }));
    match result {
        Ok(Ok(())) => std::ptr::null(),
        Ok(Err(msg)) => pool_message(pool, &msg),
        Err(_) => pool_message(
            pool,
            "Require oauth2_claim: internal error (panic) while parsing",
        ),
    }
}

unsafe extern "C" fn drop_requirement(data: *mut c_void) -> c_int {
    let _ = catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Box::into_raw in `oauth2_rs_authz_parse`.
        drop(unsafe { Box::from_raw(data.cast::<authz::Requirement>()) });
    });
    0
}

/// `Require oauth2_claim`: `OAUTH2_AUTHZ_DENIED_NO_USER` when no user was authenticated (so that
/// httpd asks for authentication), `OAUTH2_AUTHZ_GRANTED` when the verified claims satisfy the
/// line, `OAUTH2_AUTHZ_DENIED` otherwise (then the C module's insufficient_scope challenge is left
/// in `OAUTH2_BEARER_SCOPE_ERROR` for mod_headers), `OAUTH2_AUTHZ_GENERAL_ERROR` (a 500) on a panic.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_authz_claim(
    r: *mut ffi::request_rec,
    parsed: *const c_void,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_header(r, "authz_claim");
        // SAFETY: r is the live request of this hook, on this thread, until it returns.
        let req = unsafe { ApacheRequest::new(r) };
        if !req.has_user() {
            return ffi::OAUTH2_AUTHZ_DENIED_NO_USER;
        }
        // SAFETY: parsed is NULL or the Requirement made by oauth2_rs_authz_parse, owned by the
        // configuration pool, which outlives the request.
        let Some(requirement) = (unsafe { parsed.cast::<authz::Requirement>().as_ref() }) else {
            return ffi::OAUTH2_AUTHZ_DENIED;
        };
        if req.claims().is_some_and(|c| requirement.is_satisfied(c)) {
            return ffi::OAUTH2_AUTHZ_GRANTED;
        }
        let metadata = serving::with_current(|generation| {
            generation
                .resource_metadata
                .challenge_url(authn::Request::host(&req))
        });
        let challenge = www_authenticate(
            Scheme::Bearer,
            authn::Request::auth_name(&req),
            challenge::INSUFFICIENT_SCOPE,
            metadata.as_deref(),
        );
        req.set_env("OAUTH2_BEARER_SCOPE_ERROR", challenge.as_bytes());
        if let Some(took) = req.take_uncounted() {
            metrics::decided(Decided::claim_not_satisfied(), took);
        }
        req.log(
            ffi::APLOG_INFO,
            &format!(
                "oauth2: user \"{}\": claims do not satisfy Require oauth2_claim {}",
                req.user().unwrap_or("").escape_default(),
                requirement.describe().escape_default()
            ),
        );
        ffi::OAUTH2_AUTHZ_DENIED
    }));
    result.unwrap_or_else(|_| {
        log::request(
            r,
            ffi::APLOG_ERR,
            "oauth2: internal error (panic) in Require oauth2_claim; answering 500",
        );
        ffi::OAUTH2_AUTHZ_GENERAL_ERROR
    })
}

/// Merges a child's configuration (`add`) over its parent's (`base`), both `T`s owned by pools
/// that outlive `pool`, into a new `T` owned by `pool`. Nothing configured on one side: the
/// other is shared. On a panic the child's own settings are kept: the safer choice (a nested
/// location keeps its own verifiers; a virtual host its own trusted proxies).
fn merge_in_pool<T: 'static>(
    pool: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
    #[cfg_attr(not(feature = "panic-probe"), allow(unused_variables))] entry: &str,
    merge: fn(&T, &T) -> T,
) -> *mut c_void {
    if add.is_null() {
        return base;
    }
    if base.is_null() {
        return add;
    }
    catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env(entry);
        // SAFETY: both are `T`s (the caller's shim slot says which) owned by pools that outlive
        // this merge.
        let (base, add) = unsafe { (&*base.cast::<T>(), &*add.cast::<T>()) };
        own_in_pool(pool, merge(base, add))
    }))
    .unwrap_or(add)
}

/// Merges a directory configuration over its parent's (see [`DirConfig::merge`]).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_dir_merge(
    pool: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    merge_in_pool(pool, base, add, "dir_merge", DirConfig::merge)
}

/// Merges a virtual host's server config over the main server's (see [`ServerConfig::merge`]).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_server_merge(
    pool: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    merge_in_pool(pool, base, add, "server_merge", ServerConfig::merge)
}

/// The AuthType names this module handles, in any case: `oauth2`, and `auth-openidc` for the
/// co-operation with mod_auth_openidc (a request without a token is left to it).
fn auth_type_mode(auth_type: &CStr) -> Option<Mode> {
    let name = auth_type.to_bytes();
    if name.eq_ignore_ascii_case(b"oauth2") {
        Some(Mode::OAuth2)
    } else if name.eq_ignore_ascii_case(b"auth-openidc") {
        Some(Mode::OpenIdc)
    } else {
        None
    }
}

/// The request's configuration: `rs` is NULL or a DirConfig owned by a pool that outlives the
/// request (a location without our directives has the defaults).
fn dir_config<'a>(rs: *mut c_void) -> &'a DirConfig {
    static EMPTY: std::sync::LazyLock<DirConfig> = std::sync::LazyLock::new(DirConfig::default);
    // SAFETY: rs is NULL or a DirConfig owned by a pool that outlives the request.
    unsafe { rs.cast::<DirConfig>().as_ref() }.unwrap_or(&EMPTY)
}

/// The fixups hook, for every request: scrubs the look-alikes of our headers at an oauth2 or
/// auth-openidc location where check_authn did not (docs/compatibility.md, row "header
/// scrubbing"), and counts a request check_authn granted as accepted (fixups run once httpd has
/// authorized it). Never changes the request's fate.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_fixups(
    r: *mut ffi::request_rec,
    rs: *mut c_void,
    auth_type: *const c_char,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: auth_type is NULL or httpd's NUL-terminated AuthType, valid for this call.
        let auth_type = (!auth_type.is_null()).then(|| unsafe { CStr::from_ptr(auth_type) });
        if auth_type.and_then(auth_type_mode).is_none() {
            return;
        }
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_header(r, "fixups");
        // SAFETY: r is the live request of this hook, on this thread, until it returns.
        let req = unsafe { ApacheRequest::new(r) };
        req.scrub_if_not_yet(dir_config(rs));
        // Past authorization: a request this module granted is accepted.
        if let Some(took) = req.take_uncounted() {
            metrics::decided(Decided::Accepted, took);
        }
    }));
    match result {
        Ok(()) => ffi::DECLINED,
        Err(_) => {
            log::request(
                r,
                ffi::APLOG_ERR,
                "oauth2: internal error (panic) while scrubbing request headers; answering 500",
            );
            ffi::HTTP_INTERNAL_SERVER_ERROR
        }
    }
}

/// The check_authn hook, for every request: `auth_type` is the request's AuthType (or NULL).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_check_authn(
    r: *mut ffi::request_rec,
    rs: *mut c_void,
    auth_type: *const c_char,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: auth_type is NULL or httpd's NUL-terminated AuthType, valid for this call.
        let auth_type = (!auth_type.is_null()).then(|| unsafe { CStr::from_ptr(auth_type) });
        let Some(mode) = auth_type.and_then(auth_type_mode) else {
            return ffi::DECLINED;
        };
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_header(r, "check_authn");
        let started = Instant::now();
        // SAFETY: r is the live request of this hook, on this thread, until it returns.
        let req = unsafe { ApacheRequest::new(r) };
        let cfg = dir_config(rs);
        // A sub-request or internal redirect of a request this module authenticated under the
        // same settings: no second verification. Anything else is scrubbed and verified.
        if req.inherit_user(cfg) {
            return ffi::OK;
        }
        req.scrub_spoofed_headers(cfg);
        // Whole seconds are what the time rules use: time(2), a vDSO read, is the cheapest clock.
        #[allow(clippy::useless_conversion)] // time_t is 32 bits on some targets
        // SAFETY: a NULL argument is allowed; the value is returned.
        let now = i64::from(unsafe { libc::time(std::ptr::null_mut()) });
        let outcome = serving::with_current(|generation| {
            authn::authenticate(cfg, &req, mode, now, generation)
        });
        let decided = match &outcome {
            Outcome::Granted(_) => Some(Decided::Accepted),
            Outcome::Refused { refusal, .. } => Some(Decided::refused(refusal)),
            Outcome::Declined => None,
        };
        let status = req.apply(cfg, outcome);
        match decided {
            // Not yet: `Require oauth2_claim` may still refuse it (see oauth2_rs_authz_claim).
            Some(Decided::Accepted) => req.count_when_authorized(started.elapsed()),
            Some(refused) => metrics::decided(refused, started.elapsed()),
            None => {}
        }
        status
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

/// The quick handler, for every request before any access control: answers GET and HEAD on the
/// RFC 9728 metadata URL of the request's host (the document is public), 405 for other methods,
/// and declines every other request.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_resource_metadata(r: *mut ffi::request_rec) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: r is the live request of this hook, on this thread, until it returns.
        let path = unsafe { ffi::oauth2_request_path(r) };
        // SAFETY: the path lives in the request pool for the whole hook.
        let path = (!path.is_null()).then(|| unsafe { CStr::from_ptr(path) }.to_bytes());
        // The common case, every request of the server: one prefix comparison.
        let Some(path) = path
            .filter(|p| p.starts_with(resource_metadata::identifier::WELL_KNOWN.as_bytes()))
            .and_then(|p| std::str::from_utf8(p).ok())
        else {
            return ffi::DECLINED;
        };
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_header(r, "resource_metadata");
        // SAFETY: as above.
        let host = HostKey(unsafe { ffi::oauth2_request_server(r) } as usize);
        // SAFETY: as above; the method is a NUL-terminated string in the request.
        let method = c_str(unsafe { ffi::oauth2_method(r) }).unwrap_or("");
        serving::with_current(|generation| {
            match generation.resource_metadata.answer(host, method, path) {
                Answer::NotOurs => ffi::DECLINED,
                Answer::MethodNotAllowed => ffi::HTTP_METHOD_NOT_ALLOWED,
                Answer::Document(document) => {
                    // SAFETY: r is live; the shim keeps only the two static strings past this
                    // call and passes `document` to the output filters now (which copy it).
                    unsafe {
                        ffi::oauth2_respond(
                            r,
                            c"application/json".as_ptr(),
                            resource_metadata::CACHE_CONTROL.as_ptr(),
                            document.as_ptr().cast(),
                            document.len(),
                        )
                    }
                }
            }
        })
    }));
    result.unwrap_or_else(|_| {
        log::request(
            r,
            ffi::APLOG_ERR,
            "oauth2: internal error (panic) while answering the resource metadata; answering 500",
        );
        ffi::HTTP_INTERNAL_SERVER_ERROR
    })
}

// ---------------------------------------------------------------- metrics

/// pre_config, in the parent before any directive of a configuration reading: the metrics'
/// shared memory, found again at `place` (httpd's retained data, which outlives the unloading of
/// the module on a restart) or made and recorded there. NULL or why there are no metrics.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_metrics_attach(
    ptemp: *mut ffi::apr_pool_t,
    place: *mut ffi::oauth2_metrics_place,
) -> *const c_char {
    let result = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("metrics_attach");
        // SAFETY: the shim passes its retained data: valid, writable and used by no one else
        // while the parent reads its configuration.
        let place = unsafe { &mut *place };
        let previous = NonNull::new(place.base.cast::<u8>()).map(|base| region::Place {
            base,
            len: place.len,
        });
        // SAFETY: the retained place is written only below, with what `attach` returned, in this
        // process or the parent it was forked from, and only `attach` unmaps a metrics region, so
        // it is still mapped. `attach` unmaps it only when its layout is not this build's, and
        // this build installs regions of its own layout only (`start_generation` below): a
        // region it replaces is not installed here (a build of another layout that installed it
        // was unloaded, its statics with it). Children keep their own mapping of it.
        let (shared, now) = unsafe { region::attach(previous) }?;
        place.base = now.base.as_ptr().cast();
        place.len = now.len;
        metrics::start_generation(shared);
        Ok::<(), String>(())
    }));
    match result {
        Ok(Ok(())) => std::ptr::null(),
        Ok(Err(e)) => pool_message(ptemp, &format!("no metrics: {e}")),
        Err(_) => pool_message(
            ptemp,
            "no metrics: internal error (panic) while attaching their shared memory",
        ),
    }
}

/// child_init: the new child's threads take stripes of their own.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_metrics_child_init() {
    let _ = catch_unwind(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_env("metrics_child_init");
        metrics::child_started();
    });
}

/// The metrics as `form` (`OAUTH2_METRICS_*`), copied into `pool`, with their length and content
/// type; NULL (logged) when there are none or on a panic.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn oauth2_rs_metrics_text(
    r: *mut ffi::request_rec,
    pool: *mut ffi::apr_pool_t,
    form: c_int,
    len: *mut usize,
    content_type: *mut *const c_char,
) -> *const c_char {
    let result = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-probe")]
        crate::panic_probe::on_header(r, "metrics_text");
        let snapshot = metrics::snapshot()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(match form {
            ffi::OAUTH2_METRICS_PROMETHEUS => render::prometheus(&snapshot, now),
            ffi::OAUTH2_METRICS_STATUS_AUTO => render::status_auto(&snapshot, now),
            _ => render::status_html(&snapshot, now),
        })
    }));
    match result {
        Ok(Some(text)) => {
            // SAFETY: the shim passes pointers to its locals, valid for this call.
            unsafe {
                *len = text.len();
                *content_type = render::CONTENT_TYPE.as_ptr();
            }
            // SAFETY: the shim copies exactly `len` bytes into the pool and NUL-terminates.
            unsafe { ffi::oauth2_pstrmemdup(pool, text.as_ptr().cast(), text.len()) }
        }
        Ok(None) => {
            log::request(
                r,
                ffi::APLOG_ERR,
                "oauth2: no metrics: their shared memory could not be made at start (see the error log then)",
            );
            std::ptr::null()
        }
        Err(_) => {
            log::request(
                r,
                ffi::APLOG_ERR,
                "oauth2: internal error (panic) while rendering the metrics",
            );
            std::ptr::null()
        }
    }
}
