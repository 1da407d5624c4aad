//! [`ApacheRequest`]: the core's view of an httpd `request_rec`, through the shim's accessors, and
//! the code that carries a decision back into the request.

use serde_json::{Map, Value};
use std::cell::{Cell, OnceCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::time::Duration;

use super::log;
use crate::authn::{self, Granted, Outcome};
use crate::config::DirConfig;
use crate::config::server::ServerConfig;
use crate::ffi;
use crate::log_limit::LogLimit;
use crate::metrics::{self, Decided};
use crate::pass::{self, Passed};
use crate::pop::mtls;
use crate::refusal::LogLevel;
use crate::request_url::RequestUrl;
use crate::resource_metadata::HostKey;
use crate::token::{StripAction, TokenSource};
use crate::verify::Claims;
use crate::verify::memo::ConnectionMemo;

/// The request of the current hook. `'r` is the request's lifetime: every string, body and memo
/// it hands out lives in the request's pool, or in a pool that outlives it (the connection's, the
/// pool of a request this one derives from), so borrows of `'r` are valid until the hook returns.
pub(crate) struct ApacheRequest<'r> {
    r: *mut ffi::request_rec,
    body: OnceCell<Option<&'r [u8]>>,
    /// The claim prefix whose look-alike request headers [`ApacheRequest::scrub_spoofed_headers`]
    /// removed, as long as no header with such a name was set since: the claims with exactly that
    /// prefix can then be added to the request headers without a search for an earlier value.
    scrubbed: Cell<Option<&'r str>>,
    /// Whether the connection's peer is an `OAuth2TrustedProxy` (asked at most once).
    trusted_peer: OnceCell<bool>,
    _request: PhantomData<&'r ffi::request_rec>,
}

/// What [`ffi::oauth2_pairs_put`] does with the pairs in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    /// Leave the table alone.
    None,
    /// Replace any value of the same name (`apr_table_setn`).
    Set,
    /// Append without searching (`apr_table_addn`): only when no such name can be in the table.
    Add,
}

impl Put {
    fn raw(self) -> c_int {
        match self {
            Put::None => ffi::OAUTH2_PUT_NONE,
            Put::Set => ffi::OAUTH2_PUT_SET,
            Put::Add => ffi::OAUTH2_PUT_ADD,
        }
    }
}

/// The tables of a request whose keys Rust reads.
#[derive(Debug, Clone, Copy)]
enum Table {
    HeadersIn,
    /// `subprocess_env`.
    Env,
}

impl Table {
    fn raw(self) -> c_int {
        match self {
            Table::HeadersIn => ffi::OAUTH2_TABLE_HEADERS_IN,
            Table::Env => ffi::OAUTH2_TABLE_ENV,
        }
    }
}

/// A NUL-terminated C string that lives for `'r` (or NULL), as text: None when it is not UTF-8.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays unchanged for `'r`.
unsafe fn pool_str<'r>(p: *const c_char) -> Option<&'r str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller promises a NUL-terminated string that lives for 'r.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    // Tokens and header values are ASCII: checked a word at a time, cheaper than UTF-8 decoding.
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// The request `r` derives from: the main request of a sub-request, else the request an internal
/// redirect came from (NULL for an initial request: `ap_is_initial_req`).
///
/// # Safety
/// `r` must be a live request.
unsafe fn derived_from(r: *mut ffi::request_rec) -> *mut ffi::request_rec {
    // SAFETY: the caller promises a live request; the shim only reads r->main.
    let main = unsafe { ffi::oauth2_main(r) };
    if !main.is_null() {
        return main;
    }
    // SAFETY: as above, for r->prev.
    unsafe { ffi::oauth2_prev(r) }
}

/// This module's note on a request it granted: which configuration and verifier accepted, the
/// user it set, and the claims (for `Require oauth2_claim`, and for requests derived from this one).
struct Authenticated {
    /// The location's configuration: owned by the configuration pool or by the pool of this
    /// request, which outlives every request derived from it.
    cfg: *const DirConfig,
    /// The accepting verifier's place in `cfg`'s list.
    index: usize,
    /// `r->user` as set by this module: a request whose user is another string was not
    /// authenticated by it (mod_auth_basic in between, for one).
    user: *const c_char,
    claims: Claims,
    /// How long check_authn took, until the request is counted in the metrics: as accepted once
    /// httpd has authorized it, or as refused by `Require oauth2_claim` (see
    /// [`ApacheRequest::take_uncounted`]).
    uncounted: Cell<Option<Duration>>,
}

/// Releases the note when the request pool goes; a grant not counted yet (another module refused
/// the request after authentication, say `Require ip`) counts as accepted now.
unsafe extern "C" fn release_authenticated(data: *mut c_void) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: registered once for a pointer made by Box::into_raw in `grant`.
        let note = unsafe { Box::from_raw(data.cast::<Authenticated>()) };
        if let Some(took) = note.uncounted.take() {
            metrics::decided(Decided::Accepted, took);
        }
    });
    0
}

/// The note of the authentication that gave `r` its user, when this module gave it: on `r`
/// itself, or on a request `r` derives from that has the very same user string (shared by
/// [`ApacheRequest::inherit_user`], or by httpd for a sub-request or redirect under the same
/// configuration). A request in between with another user string ends the search.
///
/// # Safety
/// `r` must be a live request; the note borrowed lives as long as the pool of the request that
/// holds it, which outlives `r`.
unsafe fn authenticated_of<'a>(r: *mut ffi::request_rec) -> Option<&'a Authenticated> {
    // SAFETY: the caller promises a live request.
    let user = unsafe { ffi::oauth2_user(r) };
    if user.is_null() {
        return None;
    }
    let mut at = r;
    while !at.is_null() {
        // SAFETY: `at` is `r` or a request it derives from, all live.
        if unsafe { ffi::oauth2_user(at) } != user {
            return None;
        }
        // SAFETY: as above; a non-NULL note was stored by `grant` and lives with its pool.
        let note = unsafe {
            ffi::oauth2_request_auth_get(at)
                .cast::<Authenticated>()
                .as_ref()
        };
        if let Some(note) = note {
            return (note.user == user).then_some(note);
        }
        // SAFETY: `at` is live (see above).
        at = unsafe { derived_from(at) };
    }
    None
}

/// Scrub warnings an attacker can cause on every request: at most one line per interval per
/// process, naming at most [`SCRUB_LOG_NAMES`] headers.
static SCRUB_LOG: std::sync::LazyLock<LogLimit> = std::sync::LazyLock::new(|| {
    LogLimit::new(std::time::Duration::from_secs(SCRUB_LOG_INTERVAL_SECS))
});
const SCRUB_LOG_INTERVAL_SECS: u64 = 10;

/// Forwarded-certificate headers from a peer that is not trusted: one line per interval.
static UNTRUSTED_CERT_LOG: std::sync::LazyLock<LogLimit> = std::sync::LazyLock::new(|| {
    LogLimit::new(std::time::Duration::from_secs(SCRUB_LOG_INTERVAL_SECS))
});
const SCRUB_LOG_NAMES: usize = 4;

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

impl<'r> ApacheRequest<'r> {
    /// # Safety
    /// `r` must be the live request of the current hook, used on this thread only, and `'r` must
    /// end before the hook returns.
    pub(crate) unsafe fn new(r: *mut ffi::request_rec) -> ApacheRequest<'r> {
        ApacheRequest {
            r,
            body: OnceCell::new(),
            scrubbed: Cell::new(None),
            trusted_peer: OnceCell::new(),
            _request: PhantomData,
        }
    }

    /// A string of the shim about this request: NULL or owned by a pool that lives for `'r`.
    fn str(&self, p: *const c_char) -> Option<&'r str> {
        // SAFETY: the shim's strings about a request live in its pool, its connection's pool or
        // the pool of a request it derives from, all of which outlive `'r` (see `new`).
        unsafe { pool_str(p) }
    }

    pub(crate) fn log(&self, level: c_int, msg: &str) {
        log::request(self.r, level, msg);
    }

    /// A sub-request or an internal redirect gets the user this module granted to the request it
    /// derives from, without a second verification, when [`authn::inherits`] says the two
    /// locations verify alike. Whether it did; if not, the request is scrubbed and verified.
    pub(crate) fn inherit_user(&self, cfg: &DirConfig) -> bool {
        // SAFETY: see `new`.
        let from = unsafe { derived_from(self.r) };
        if from.is_null() {
            return false;
        }
        // SAFETY: `from` outlives this request (a main request outlives its sub-requests, and an
        // internal redirect keeps the request it came from as `prev`).
        let Some(note) = (unsafe { authenticated_of(from) }) else {
            return false;
        };
        // SAFETY: the note's configuration lives at least as long as `from` (see `Authenticated`).
        let parent = unsafe { &*note.cfg };
        if !authn::inherits(cfg, parent, note.index, &note.claims, self) {
            return false;
        }
        // SAFETY: both are live requests; the user string is in the pool of `from`, which outlives
        // this request.
        unsafe { ffi::oauth2_user_share(self.r, from) };
        true
    }

    /// Whether this request's user is one this module granted (here or to a request it derives
    /// from): then the headers with the claim prefix are the ones it set.
    fn user_is_ours(&self) -> bool {
        // SAFETY: see `new`.
        unsafe { authenticated_of(self.r) }.is_some()
    }

    pub(crate) fn user(&self) -> Option<&'r str> {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_user(self.r) })
    }

    /// Whether httpd has a user for this request at all (any bytes, not only UTF-8).
    pub(crate) fn has_user(&self) -> bool {
        // SAFETY: see `new`.
        let user = unsafe { ffi::oauth2_user(self.r) };
        // SAFETY: a non-NULL r->user is a NUL-terminated pool string, at least one byte long.
        !user.is_null() && unsafe { *user } != 0
    }

    /// The claims verified for this request's user, here or for the request it derives from
    /// (sub-requests and internal redirects are authorized with the claims of their origin), for
    /// authorization; none when another module set the user.
    pub(crate) fn claims(&self) -> Option<&'r Map<String, Value>> {
        // SAFETY: see `new`; the note lives with a pool that outlives this request.
        unsafe { authenticated_of(self.r) }.map(|note| note.claims.claims())
    }

    /// Leaves the note of this grant on the request.
    fn keep_authenticated(&self, cfg: *const DirConfig, index: usize, claims: Claims) {
        // SAFETY: see `new`.
        let user = unsafe { ffi::oauth2_user(self.r) };
        let note = Authenticated {
            cfg,
            index,
            user,
            claims,
            uncounted: Cell::new(None),
        };
        let raw = Box::into_raw(Box::new(note)).cast::<c_void>();
        // SAFETY: see `new`; the cleanup releases `raw` exactly once with the request pool.
        unsafe { ffi::oauth2_request_auth_set(self.r, raw, release_authenticated) };
    }

    /// The note this module left on this very request, not on one it derives from.
    fn own_note(&self) -> Option<&'r Authenticated> {
        // SAFETY: see `new`; a non-NULL note was stored by `keep_authenticated` and lives with
        // the request pool.
        unsafe {
            ffi::oauth2_request_auth_get(self.r)
                .cast::<Authenticated>()
                .as_ref()
        }
    }

    /// check_authn granted this request in `took`: it is counted once httpd's authorization is
    /// known (fixups, `Require oauth2_claim`, or the end of the request: see
    /// [`Self::take_uncounted`]), so a request `Require oauth2_claim` refuses is not accepted.
    pub(crate) fn count_when_authorized(&self, took: Duration) {
        match self.own_note() {
            Some(note) => note.uncounted.set(Some(took)),
            None => metrics::decided(Decided::Accepted, took),
        }
    }

    /// The check_authn time of a grant on this very request not counted yet, taken: the caller
    /// counts it (once).
    pub(crate) fn take_uncounted(&self) -> Option<Duration> {
        self.own_note()?.uncounted.take()
    }

    pub(crate) fn set_env(&self, name: &str, value: &[u8]) {
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

    /// Puts pairs of `pass` (offsets into its text) into the request headers and the environment.
    fn put_pairs(&self, pass: &Passed, pairs: &[[usize; 2]], headers: Put, env: Put) {
        if pairs.is_empty() || (headers == Put::None && env == Put::None) {
            return;
        }
        let text = pass.text();
        // SAFETY: see `new`; the shim copies `text` (NUL-terminated parts, checked to end in NUL)
        // into the request pool and reads only offsets below its length; `pairs` is `n` pairs of
        // usize laid out contiguously ([usize; 2] has no padding).
        unsafe {
            ffi::oauth2_pairs_put(
                self.r,
                text.as_ptr().cast(),
                text.len(),
                pairs.as_ptr().cast(),
                pairs.len(),
                headers.raw(),
                env.raw(),
            )
        }
    }

    /// How the claim variables of `pass` go into each table. Added (no search for an earlier value
    /// of each name, which `apr_table_setn` does) only where no variable's name can be there yet:
    /// the names are distinct in any case and share a prefix ([`Passed::fresh_prefix_len`]), and
    /// for the headers this request's look-alikes of exactly that prefix were scrubbed, for the
    /// environment no variable starts with it. Replaced otherwise.
    fn put_modes(&self, pass: &Passed) -> (Put, Put) {
        let n = pass.fresh_prefix_len();
        let prefix = (n > 0)
            .then(|| pass.vars().next().and_then(|(name, _)| name.get(..n)))
            .flatten();
        let headers = match prefix {
            _ if !pass.headers => Put::None,
            Some(p) if self.scrubbed.get() == Some(p) => Put::Add,
            _ => Put::Set,
        };
        let env = match prefix {
            _ if !pass.envvars => Put::None,
            Some(p) if !self.has_key_with_prefix(Table::Env, p) => Put::Add,
            _ => Put::Set,
        };
        (headers, env)
    }

    /// The keys of one of the request's tables, as bytes. They are pool strings that outlive the
    /// request (an unset takes a key out of the table, not out of its pool).
    fn keys(&self, table: Table) -> impl Iterator<Item = &'r [u8]> + '_ {
        self.indexed_keys(table).map(|(_, key)| key)
    }

    /// The keys of `table` with their entry index, for [`Self::value_at`].
    fn indexed_keys(&self, table: Table) -> impl Iterator<Item = (c_int, &'r [u8])> + '_ {
        // SAFETY: see `new`.
        let count = unsafe { ffi::oauth2_table_count(self.r, table.raw()) };
        (0..count).filter_map(move |i| {
            // SAFETY: see `new`; i is below the count, and the shim checks it again.
            let key = unsafe { ffi::oauth2_table_key(self.r, table.raw(), i) };
            // SAFETY: non-NULL table keys are NUL-terminated strings in the request's pool.
            (!key.is_null()).then(|| (i, unsafe { CStr::from_ptr(key) }.to_bytes()))
        })
    }

    /// The value of entry `i` of `table` (`None` past the end).
    fn value_at(&self, table: Table, i: c_int) -> Option<&'r [u8]> {
        // SAFETY: see `new`; the shim checks `i` against the table's length.
        let value = unsafe { ffi::oauth2_table_val(self.r, table.raw(), i) };
        // SAFETY: non-NULL table values are NUL-terminated strings in the request's pool.
        (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes())
    }

    /// Whether a key of `table` starts with `prefix`, in any case (tables are case-insensitive).
    fn has_key_with_prefix(&self, table: Table, prefix: &str) -> bool {
        // SAFETY: see `new`; the shim reads `prefix.len()` bytes of `prefix` at most.
        unsafe {
            ffi::oauth2_table_has_prefix(self.r, table.raw(), prefix.as_ptr().cast(), prefix.len())
                != 0
        }
    }

    fn set_header(&self, name: &str, value: &[u8]) {
        if self
            .scrubbed
            .get()
            .is_some_and(|prefix| pass::is_spoofed(prefix, name.as_bytes()))
        {
            self.scrubbed.set(None); // a header with the prefix is there again
        }
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

    /// Unsets the header of exactly these bytes: a name read from the table is passed as read
    /// (not as a lossy UTF-8 rewrite, which would name another header and leave this one).
    fn unset_header(&self, name: &[u8]) {
        // SAFETY: see `new`; the name is passed with its length.
        unsafe { ffi::oauth2_header_in_unset(self.r, name.as_ptr().cast(), name.len()) };
    }

    /// Unsets the header `name` and each spelling a backend reads as the same name
    /// ([`pass::same_env_name`]): stripping the token's header must not leave it under `X_Token`.
    fn unset_header_and_look_alikes(&self, name: &[u8]) {
        // The keys are all read before the first unset changes the table.
        let names: Vec<&[u8]> = self
            .keys(Table::HeadersIn)
            .filter(|key| pass::same_env_name(name, key))
            .collect();
        for key in names {
            self.unset_header(key);
        }
    }

    /// Removes incoming headers that look like the ones this module passes to the backend, before
    /// anything reads them, so that a client cannot forge a claim or the remote user for the
    /// backend (docs/compatibility.md, row "header scrubbing", says where this goes further than
    /// the C module): names that start with the claim prefix in any spelling
    /// ([`pass::is_spoofed`]), and the `authn_header` in any letter case.
    pub(crate) fn scrub_spoofed_headers(&self, cfg: &'r DirConfig) {
        self.drop_untrusted_cert_headers(cfg);
        let prefix = cfg.target_pass.prefix();
        let authn_header = cfg.target_pass.authn_header.as_deref();
        let mut spoofed: Vec<&[u8]> = Vec::new();
        // The keys are all read before the first unset changes the table.
        for name in self.keys(Table::HeadersIn) {
            // `-` and `_` alike: CGI and WSGI backends read both as one variable.
            let ours = pass::is_spoofed(prefix, name)
                || authn_header.is_some_and(|h| pass::same_env_name(h.as_bytes(), name));
            if ours && !spoofed.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                spoofed.push(name);
            }
        }
        if !spoofed.is_empty() && SCRUB_LOG.allow() {
            let shown: Vec<String> = spoofed
                .iter()
                .take(SCRUB_LOG_NAMES)
                .map(|name| {
                    let short: String = String::from_utf8_lossy(name).chars().take(32).collect();
                    format!("\"{}\"", short.escape_default())
                })
                .collect();
            let more = spoofed.len().saturating_sub(SCRUB_LOG_NAMES);
            self.log(
                ffi::APLOG_WARNING,
                &format!(
                    "oauth2: removed {} suspicious request header(s): {}{} (logged at most every {} s)",
                    spoofed.len(),
                    shown.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() },
                    SCRUB_LOG_INTERVAL_SECS
                ),
            );
        }
        for name in spoofed {
            self.unset_header(name);
        }
        self.scrubbed.set(Some(prefix));
        // SAFETY: see `new`.
        unsafe { ffi::oauth2_request_scrubbed_set(self.r) };
    }

    /// The fixups hook: scrubs a request of an oauth2 location that check_authn did not scrub
    /// (authorization granted without a user, a sub-request httpd did not authenticate), unless
    /// its user is one this module granted under the same settings (the claim headers are ours).
    pub(crate) fn scrub_if_not_yet(&self, cfg: &'r DirConfig) {
        // SAFETY: see `new`.
        if unsafe { ffi::oauth2_request_scrubbed(self.r) } != 0 || self.user_is_ours() {
            return;
        }
        self.scrub_spoofed_headers(cfg);
    }

    /// This server's (virtual host's) configuration, if it has one.
    fn server_config(&self) -> Option<&'r ServerConfig> {
        // SAFETY: see `new`; the server config lives as long as the configuration.
        unsafe {
            ffi::oauth2_server_rs(self.r)
                .cast::<ServerConfig>()
                .as_ref()
        }
    }

    /// Whether the connection's peer (its TCP address, not a header) is an `OAuth2TrustedProxy`
    /// of this server.
    fn trusted_peer(&self) -> bool {
        *self.trusted_peer.get_or_init(|| {
            let Some(server) = self.server_config() else {
                return false;
            };
            // SAFETY: see `new`; the address lives in the connection's pool.
            let peer = self.str(unsafe { ffi::oauth2_client_ip(self.r) });
            peer.is_some_and(|ip| server.trusts(ip))
        })
    }

    /// A forwarded-certificate header (`mtls.header`) is believed only from a trusted proxy, under
    /// its exact name. Removed, so that no backend or later module takes it for the proxy's: every
    /// such header from a peer that is not trusted (whatever its value, valid UTF-8 or not), and
    /// from any peer the look-alikes a backend reads as the same name (`X_SSL_Client_Cert` for
    /// `X-SSL-Client-Cert`: CGI and WSGI map both to one variable), which a trusted proxy that
    /// overwrites its own header name may pass through from the client.
    fn drop_untrusted_cert_headers(&self, cfg: &DirConfig) {
        let names: Vec<&CStr> = cfg.cert_headers().collect();
        if names.is_empty() {
            return;
        }
        let mut removed: Vec<&[u8]> = Vec::new();
        // The keys are all read before the first unset changes the table.
        for key in self.keys(Table::HeadersIn) {
            let Some(name) = names
                .iter()
                .find(|n| pass::same_env_name(n.to_bytes(), key))
            else {
                continue;
            };
            let exact = name.to_bytes().eq_ignore_ascii_case(key);
            if exact && self.trusted_peer() {
                continue;
            }
            if !removed.iter().any(|r| r.eq_ignore_ascii_case(key)) {
                removed.push(key);
            }
        }
        if removed.is_empty() {
            return;
        }
        if UNTRUSTED_CERT_LOG.allow() {
            // SAFETY: see `new`.
            let peer = self
                .str(unsafe { ffi::oauth2_client_ip(self.r) })
                .unwrap_or("?");
            let shown: Vec<String> = removed
                .iter()
                .map(|n| {
                    format!(
                        "\"{}\"",
                        String::from_utf8_lossy(n)
                            .chars()
                            .take(64)
                            .collect::<String>()
                            .escape_default()
                    )
                })
                .collect();
            self.log(
                ffi::APLOG_WARNING,
                &format!(
                    "oauth2: removed the request header(s) {} from {peer}: a forwarded client certificate is only believed from an OAuth2TrustedProxy of this server, under the exact name of mtls.header (logged at most every {SCRUB_LOG_INTERVAL_SECS} s)",
                    shown.join(", ")
                ),
            );
        }
        for name in removed {
            self.unset_header(name);
        }
    }

    /// Carries the decision into httpd and returns the hook's status code; `cfg` is the
    /// configuration that decided (see [`Authenticated`]).
    pub(crate) fn apply(&self, cfg: *const DirConfig, outcome: Outcome) -> c_int {
        match outcome {
            Outcome::Declined => ffi::DECLINED,
            Outcome::Refused {
                refusal,
                challenges,
            } => {
                let response = refusal.response(&challenges, authn::Request::auth_name(self));
                let level = match response.level {
                    LogLevel::Info => ffi::APLOG_INFO,
                    LogLevel::Warn => ffi::APLOG_WARNING,
                    LogLevel::Error => ffi::APLOG_ERR,
                };
                self.log(level, &format!("oauth2: {}", response.log_line));
                for challenge in &response.www_authenticate {
                    self.add_response_header(c"WWW-Authenticate", challenge);
                }
                if let Some(nonce) = &response.dpop_nonce {
                    self.add_response_header(c"DPoP-Nonce", nonce);
                }
                c_int::from(response.status)
            }
            Outcome::Granted(granted) => {
                self.grant(cfg, granted);
                ffi::OK
            }
        }
    }

    /// A response header that is sent with errors and successes alike (`err_headers_out`).
    fn add_response_header(&self, name: &CStr, value: &str) {
        // SAFETY: see `new`; the value is copied into the request pool by the shim.
        unsafe {
            ffi::oauth2_err_header_add(self.r, name.as_ptr(), value.as_ptr().cast(), value.len())
        };
    }

    fn grant(&self, cfg: *const DirConfig, g: Granted) {
        let Granted {
            pass,
            strip,
            claims,
            verifier,
            index,
            origin,
            dpop_nonce,
        } = g;
        if let Some(nonce) = &dpop_nonce {
            self.add_response_header(c"DPoP-Nonce", nonce);
        }
        if let Some(action) = strip {
            self.strip(action);
        }
        let user = pass.user();
        // SAFETY: see `new`; copied by the shim.
        unsafe { ffi::oauth2_set_user(self.r, user.as_ptr().cast(), user.len()) };
        let (headers, env) = self.put_modes(&pass);
        self.put_pairs(&pass, pass.var_offsets(), headers, env);
        // Framing and hop-by-hop names: variables only (docs/compatibility.md, row "claims named
        // like framing headers").
        let env_only = if pass.envvars { Put::Set } else { Put::None };
        self.put_pairs(&pass, pass.env_only_offsets(), Put::None, env_only);
        if let Some(pair) = pass.authn_header_offsets() {
            self.put_pairs(&pass, &[pair], Put::Set, Put::None);
        }
        // Always: requests derived from this one (and `Require oauth2_claim`) read it.
        self.keep_authenticated(cfg, index, claims);
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
        match action {
            // SAFETY: see `new`; the name is a NUL-terminated CString.
            StripAction::UnsetEnv(name) => unsafe { ffi::oauth2_env_unset(self.r, name.as_ptr()) },
            StripAction::UnsetHeader(name) => self.unset_header_and_look_alikes(name.to_bytes()),
            // SAFETY: see `new`; passed with its length and copied by the shim.
            StripAction::SetQuery(q) => unsafe {
                ffi::oauth2_args_set(self.r, q.as_ptr().cast(), q.len())
            },
            StripAction::SetCookie(c) if c.is_empty() => self.unset_header(b"Cookie"),
            StripAction::SetCookie(c) => self.set_header("Cookie", c.as_bytes()),
            // SAFETY: see `new`; passed with its length and copied by the shim.
            StripAction::SetBody(b) => unsafe {
                ffi::oauth2_body_replace(self.r, b.as_ptr().cast(), b.len())
            },
        }
    }

    /// The thumbprint memoised for this connection while its TLS session is the one the memo was
    /// made in, without asking mod_ssl for the certificate (which would export it as PEM on every
    /// request); after a renegotiation (a new session) or on the first lookup, the certificate is
    /// read again ([`ApacheRequest::current_thumbprint`]). Borrowed from the connection's pool,
    /// which outlives the request.
    fn memo_thumbprint(&self) -> Option<&'r str> {
        let (mut memo_pem, mut memo_thumb, mut memo_session) =
            (std::ptr::null(), std::ptr::null(), std::ptr::null());
        // SAFETY: see `new`; the shim fills the out-pointers.
        unsafe {
            ffi::oauth2_conn_memo_get(self.r, &mut memo_pem, &mut memo_thumb, &mut memo_session)
        };
        // SAFETY: see `new`.
        let session = self.str(unsafe { ffi::oauth2_ssl_session_id(self.r) });
        match (self.str(memo_thumb), self.str(memo_session), session) {
            (Some(thumb), Some(seen), Some(now)) if seen == now => Some(thumb),
            _ => self.current_thumbprint(),
        }
    }

    /// The certificate mod_ssl has now; hashed only when it differs from the memo, which it
    /// updates (with the TLS session it was read in).
    fn current_thumbprint(&self) -> Option<&'r str> {
        // SAFETY: see `new`.
        let pem_ptr = unsafe { ffi::oauth2_client_cert_pem(self.r) };
        let pem = self.str(pem_ptr)?;
        // SAFETY: see `new`.
        let session = unsafe { ffi::oauth2_ssl_session_id(self.r) };
        let (mut memo_pem, mut memo_thumb, mut memo_session) =
            (std::ptr::null(), std::ptr::null(), std::ptr::null());
        // SAFETY: see `new`; the shim fills the out-pointers.
        unsafe {
            ffi::oauth2_conn_memo_get(self.r, &mut memo_pem, &mut memo_thumb, &mut memo_session)
        };
        let thumb = match (self.str(memo_pem), self.str(memo_thumb)) {
            (Some(seen), Some(thumb)) if seen == pem => thumb.to_string(),
            _ => mtls::thumbprint_of_pem(pem)?,
        };
        // SAFETY: see `new`; pem_ptr and session are NUL-terminated (session may be NULL), the
        // thumbprint passed with its length; the shim returns the connection pool's copy.
        self.str(unsafe {
            ffi::oauth2_conn_memo_set(self.r, pem_ptr, thumb.as_ptr().cast(), thumb.len(), session)
        })
    }
}

impl<'r> TokenSource for ApacheRequest<'r> {
    fn header(&self, name: &CStr) -> Option<&str> {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_header_in_get(self.r, name.as_ptr()) })
    }

    fn header_values(&self, name: &CStr) -> Vec<&[u8]> {
        let name = name.to_bytes();
        self.indexed_keys(Table::HeadersIn)
            .filter(|(_, key)| pass::same_env_name(name, key))
            .filter_map(|(i, _)| self.value_at(Table::HeadersIn, i))
            .collect()
    }

    fn env(&self, name: &CStr) -> Option<&str> {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_env_get(self.r, name.as_ptr()) })
    }

    fn method(&self) -> &str {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_method(self.r) })
            .unwrap_or("")
    }

    fn query(&self) -> Option<&str> {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_args(self.r) })
    }

    fn form_body(&self, limit: usize) -> Option<&[u8]> {
        *self.body.get_or_init(|| -> Option<&'r [u8]> {
            let (mut data, mut len) = (std::ptr::null(), 0usize);
            // SAFETY: see `new`; the shim fills both out-pointers.
            let rc = unsafe { ffi::oauth2_body_read(self.r, limit, &mut data, &mut len) };
            // SAFETY: on success the shim returns `len` bytes in the request pool, which lives for
            // 'r and is not written to while the body is held.
            (rc == 0 && !data.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
        })
    }
}

impl<'r> authn::Request for ApacheRequest<'r> {
    fn auth_name(&self) -> Option<&str> {
        // SAFETY: see `new`.
        self.str(unsafe { ffi::oauth2_auth_name(self.r) })
    }

    fn client_thumbprint(&self) -> Option<&str> {
        self.memo_thumbprint()
    }

    fn client_thumbprint_now(&self) -> Option<&str> {
        self.current_thumbprint()
    }

    fn trusted_proxy(&self) -> Option<crate::proxy::UrlFrom> {
        self.trusted_peer()
            .then(|| self.server_config().map(ServerConfig::url_from))
            .flatten()
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

    fn dpop_proofs(&self) -> Vec<&str> {
        // More than two already fails the "exactly one" check; two are enough to say so.
        let mut values = [std::ptr::null(); 2];
        // SAFETY: see `new`; the shim writes at most `values.len()` pointers to header values
        // that live in the request pool for 'r.
        let count = unsafe {
            ffi::oauth2_header_in_values(self.r, c"DPoP".as_ptr(), values.as_mut_ptr(), 2)
        };
        values
            .iter()
            .take(usize::try_from(count).unwrap_or(0))
            .filter_map(|p| self.str(*p))
            // A proxy may have folded several headers into one, comma-separated (RFC 9110
            // section 5.3); a compact JWS has no comma.
            .flat_map(|v| v.split(',').map(str::trim))
            .collect()
    }

    fn clock(&self) -> Option<i64> {
        #[allow(clippy::useless_conversion)] // time_t is 32 bits on some targets
        // SAFETY: a NULL argument is allowed; the value is returned.
        Some(i64::from(unsafe { libc::time(std::ptr::null_mut()) }))
    }

    fn url(&self) -> RequestUrl<'_> {
        let (mut scheme, mut host, mut port, mut uri) =
            (std::ptr::null(), std::ptr::null(), 0, std::ptr::null());
        // SAFETY: see `new`; the shim fills every out-pointer with strings httpd keeps for the
        // request (scheme and host: server configuration or request pool; uri: request pool).
        unsafe { ffi::oauth2_request_url(self.r, &mut scheme, &mut host, &mut port, &mut uri) };
        let target: &[u8] = if uri.is_null() {
            b"/"
        } else {
            // SAFETY: a NUL-terminated string in the request pool (see above).
            unsafe { CStr::from_ptr(uri) }.to_bytes()
        };
        // The query, which `htu` leaves out, may hold any byte (httpd takes obs-text in a
        // target): cut before reading the path as text, so that a byte there cannot turn the
        // URL into another. A path that is not UTF-8 becomes one no `htu` matches.
        let before_query = target
            .iter()
            .position(|b| matches!(b, b'?' | b'#'))
            .map_or(target, |at| &target[..at]);
        RequestUrl {
            scheme: self.str(scheme).unwrap_or("https"),
            host: self.str(host).unwrap_or(""),
            port: u16::try_from(port).unwrap_or(0),
            path: path_of(std::str::from_utf8(before_query).unwrap_or("\u{FFFD}")),
        }
    }

    fn host(&self) -> Option<HostKey> {
        // SAFETY: see `new`; r->server is the server_rec that serves the request.
        Some(HostKey(
            unsafe { ffi::oauth2_request_server(self.r) } as usize
        ))
    }
}

/// The path of a request target (RFC 9112 section 3.2): origin form `/p?q`, or absolute form
/// `https://h/p?q`; query and fragment left out.
fn path_of(target: &str) -> &str {
    let start = match target.find("://") {
        Some(i) if !target.starts_with('/') => {
            let after = i + 3;
            target[after..]
                .find('/')
                .map_or(target.len(), |p| after + p)
        }
        _ => 0,
    };
    let rest = &target[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    if end == 0 { "/" } else { &rest[..end] }
}
