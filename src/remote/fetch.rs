//! Outgoing HTTP for key sets, metadata and introspection: libcurl with a hard total timeout
//! (retries included), bounded response bodies, http/https only (also after redirects: never
//! `file://`), at most 5 redirects, and one reused handle per thread (so connections to the
//! authorization server are kept alive between requests). Transport errors and 5xx answers are
//! tried again `<prefix>.http_retries` times, `<prefix>.http_retry_interval` apart.

use curl::easy::{Easy, List};
use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::logsink::{self, Level};

/// Larger responses are refused (the C module's bound as well).
pub(crate) const MAX_RESPONSE: usize = 1024 * 1024;

/// How to reach one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpOptions {
    /// Verify the server's certificate and name (`<prefix>.ssl_verify`, default true).
    pub(crate) ssl_verify: bool,
    /// Trust anchors in a PEM file instead of the system store (`<prefix>.ca_file`).
    pub(crate) ca_file: Option<String>,
    /// `<prefix>.outgoing_proxy`, a curl proxy string.
    pub(crate) proxy: Option<String>,
    /// The whole exchange, connecting included (`<prefix>.http_timeout`).
    pub(crate) timeout: Duration,
    /// TLS client certificate and key files (introspection `client_cert` auth).
    pub(crate) client_cert: Option<(String, String)>,
    /// `<prefix>.http_retries`: further attempts after a transport error or a 5xx answer.
    pub(crate) retries: u32,
    /// `<prefix>.http_retry_interval`: the pause before each further attempt.
    pub(crate) retry_interval: Duration,
}

/// No further attempt is started with less time than this left of the total timeout.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            ssl_verify: true,
            ca_file: None,
            proxy: None,
            timeout: Duration::from_secs(15),
            client_cert: None,
            retries: 1,
            retry_interval: Duration::from_millis(300),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    Transport(String),
    TooLarge,
    Status(u32),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "{e}"),
            FetchError::TooLarge => write!(f, "response larger than {MAX_RESPONSE} bytes"),
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
        }
    }
}

/// A request: GET, or POST of an already encoded form.
pub(crate) struct Request<'a> {
    pub(crate) url: &'a str,
    pub(crate) form: Option<&'a str>,
    pub(crate) basic_auth: Option<(&'a str, &'a str)>,
}

thread_local! {
    // One handle per thread: libcurl keeps its connection cache in the handle.
    static HANDLE: RefCell<Option<Easy>> = const { RefCell::new(None) };
}

/// One failed attempt: the error, and whether another attempt may help (the server could not
/// be reached, the transfer broke off, or it answered 5xx).
#[derive(Debug)]
pub(crate) struct Failure<E> {
    pub(crate) error: E,
    pub(crate) transient: bool,
}

impl<E> Failure<E> {
    /// A failure no further attempt can fix.
    pub(crate) fn permanent(error: E) -> Self {
        Failure {
            error,
            transient: false,
        }
    }
}

/// Performs the request, with retries; only 2xx answers are `Ok`.
pub(crate) fn send(req: &Request, opts: &HttpOptions) -> Result<Response, FetchError> {
    retrying(req.url, opts, |budget| attempt(req, budget))
}

/// Runs `attempt` until it succeeds, fails permanently, `opts.retries` further attempts have
/// failed, or too little of `opts.timeout` is left. Each attempt gets `opts` with `timeout` set to
/// what is left, so all attempts and pauses together never take longer than `opts.timeout`.
pub(crate) fn retrying<T, E: fmt::Display>(
    url: &str,
    opts: &HttpOptions,
    mut attempt: impl FnMut(&HttpOptions) -> Result<T, Failure<E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let mut budget = opts.clone();
    let mut failed = 0u32;
    loop {
        let failure = match attempt(&budget) {
            Ok(v) => return Ok(v),
            Err(f) => f,
        };
        failed += 1;
        let left = opts.timeout.saturating_sub(start.elapsed());
        if !failure.transient || failed > opts.retries || left < opts.retry_interval + MIN_ATTEMPT {
            return Err(failure.error);
        }
        logsink::emit(
            Level::Warn,
            &format!(
                "oauth2: {url}: attempt {failed} of {} failed: {}; trying again in {} ms",
                u64::from(opts.retries) + 1,
                failure.error,
                opts.retry_interval.as_millis()
            ),
        );
        std::thread::sleep(opts.retry_interval);
        budget.timeout = opts.timeout.saturating_sub(start.elapsed());
        if budget.timeout < Duration::from_millis(1) {
            // (A zero timeout would mean "none" to libcurl.)
            return Err(failure.error);
        }
    }
}

/// One attempt, bounded by `opts.timeout`.
pub(crate) fn attempt(req: &Request, opts: &HttpOptions) -> Result<Response, Failure<FetchError>> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let easy = slot.get_or_insert_with(Easy::new);
        easy.reset(); // options only; live connections stay cached
        let result = perform(easy, req, opts);
        if result.is_err() {
            // A handle in an unknown state is not worth keeping (nor its connection).
            *slot = None;
        }
        result
    })
}

/// Errors of the network or the peer that may be gone on the next attempt (not: bad certificate,
/// bad URL, too many redirects, response too large).
fn transient(e: &curl::Error) -> bool {
    e.is_couldnt_resolve_proxy()
        || e.is_couldnt_resolve_host()
        || e.is_couldnt_connect()
        || e.is_operation_timedout()
        || e.is_ssl_connect_error()
        || e.is_got_nothing()
        || e.is_send_error()
        || e.is_recv_error()
        || e.is_partial_file()
        || e.is_http2_error()
        || e.is_http2_stream_error()
}

fn perform(
    easy: &mut Easy,
    req: &Request,
    opts: &HttpOptions,
) -> Result<Response, Failure<FetchError>> {
    let t = |e: curl::Error| Failure::permanent(FetchError::Transport(e.description().to_string()));
    easy.url(req.url).map_err(t)?;
    easy.signal(false).map_err(t)?;
    easy.timeout(opts.timeout).map_err(t)?;
    easy.connect_timeout(opts.timeout).map_err(t)?;
    easy.follow_location(true).map_err(t)?;
    easy.max_redirections(5).map_err(t)?;
    easy.ssl_verify_peer(opts.ssl_verify).map_err(t)?;
    easy.ssl_verify_host(opts.ssl_verify).map_err(t)?;
    if let Some(ca) = &opts.ca_file {
        easy.cainfo(ca).map_err(t)?;
    }
    if let Some(proxy) = &opts.proxy {
        easy.proxy(proxy).map_err(t)?;
    }
    if let Some((cert, key)) = &opts.client_cert {
        easy.ssl_cert(cert).map_err(t)?;
        easy.ssl_key(key).map_err(t)?;
    }
    if let Some((user, pass)) = req.basic_auth {
        easy.username(user).map_err(t)?;
        easy.password(pass).map_err(t)?;
    }
    let mut headers = List::new();
    headers.append("Accept: application/json").map_err(t)?;
    easy.useragent(concat!("mod_oauth2-rs/", env!("CARGO_PKG_VERSION")))
        .map_err(t)?;
    if let Some(form) = req.form {
        easy.post(true).map_err(t)?;
        easy.post_fields_copy(form.as_bytes()).map_err(t)?;
        headers
            .append("Content-Type: application/x-www-form-urlencoded")
            .map_err(t)?;
    }
    easy.http_headers(headers).map_err(t)?;
    restrict_protocols(easy, req.url).map_err(Failure::permanent)?;

    let mut body = Vec::new();
    let too_large = std::cell::Cell::new(false);
    {
        let mut transfer = easy.transfer();
        transfer
            .write_function(|data| {
                if body.len() + data.len() > MAX_RESPONSE {
                    too_large.set(true);
                    return Ok(0); // aborts the transfer
                }
                body.extend_from_slice(data);
                Ok(data.len())
            })
            .map_err(t)?;
        let outcome = transfer.perform();
        drop(transfer);
        if too_large.get() {
            return Err(Failure::permanent(FetchError::TooLarge));
        }
        outcome.map_err(|e| Failure {
            transient: transient(&e),
            error: FetchError::Transport(e.description().to_string()),
        })?;
    }
    let status = easy.response_code().map_err(t)?;
    if !(200..300).contains(&status) {
        return Err(Failure {
            error: FetchError::Status(status),
            transient: (500..600).contains(&status),
        });
    }
    Ok(Response { body })
}

/// http and https only, also after redirects (no file://, gopher://, ...); and a request that
/// starts on https is never redirected to http, where keys could be swapped and a token or
/// client secret in an introspection form would travel in clear text.
fn restrict_protocols(easy: &mut Easy, url: &str) -> Result<(), FetchError> {
    use curl_sys::{CURLOPT_PROTOCOLS, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP, CURLPROTO_HTTPS};
    let raw = easy.raw();
    let any = std::ffi::c_long::from(CURLPROTO_HTTP | CURLPROTO_HTTPS);
    let starts_on_https = url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    let redirects = if starts_on_https {
        std::ffi::c_long::from(CURLPROTO_HTTPS)
    } else {
        any
    };
    for (opt, allowed) in [
        (CURLOPT_PROTOCOLS, any),
        (CURLOPT_REDIR_PROTOCOLS, redirects),
    ] {
        // SAFETY: raw is the live handle of `easy`; a long option.
        let rc = unsafe { curl_sys::curl_easy_setopt(raw, opt, allowed) };
        if rc != curl_sys::CURLE_OK {
            return Err(FetchError::Transport(format!(
                "cannot restrict protocols (curl error {rc})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A plain-HTTP server on a free port answering every request with `reply`; counts requests.
    fn plain_server(reply: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let counter = hits.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = c.read(&mut [0u8; 4096]);
                let _ = c.write_all(reply.as_bytes());
            }
        });
        (port, hits)
    }

    /// A TLS server answering every request with a 302 to `location`.
    fn tls_redirector(location: String) -> u16 {
        crate::test_support::tls_server(format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ))
    }

    /// An https URL redirected to http is not followed (keys could be swapped on the way, an
    /// introspection form read); http to http still is.
    #[test]
    fn https_is_never_redirected_to_http() {
        const KEYS: &str =
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"keys\":[]}";
        let (plain, hits) = plain_server(KEYS);
        let https = tls_redirector(format!("http://127.0.0.1:{plain}/jwks"));
        let o = HttpOptions {
            ssl_verify: false,
            timeout: Duration::from_secs(5),
            retries: 0,
            ..HttpOptions::default()
        };
        let get = |url: &str| {
            send(
                &Request {
                    url,
                    form: None,
                    basic_auth: None,
                },
                &o,
            )
        };
        let r = get(&format!("https://127.0.0.1:{https}/jwks"));
        assert!(r.is_err(), "followed an https to http redirect");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        // The control: the http server answers, and a direct http request gets its keys.
        assert!(get(&format!("http://127.0.0.1:{plain}/jwks")).is_ok());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn opts(retries: u32, interval_ms: u64, timeout_ms: u64) -> HttpOptions {
        HttpOptions {
            retries,
            retry_interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            ..HttpOptions::default()
        }
    }

    /// Runs `retrying` with attempts that fail as `outcome(n)` says (n from 1); returns the
    /// result and the number of attempts.
    fn run(
        o: &HttpOptions,
        outcome: impl Fn(u32) -> Result<(), Failure<FetchError>>,
    ) -> (Result<(), FetchError>, u32) {
        let mut n = 0;
        let r = retrying("http://as/x", o, |_| {
            n += 1;
            outcome(n)
        });
        (r, n)
    }

    fn transient() -> Failure<FetchError> {
        Failure {
            error: FetchError::Status(503),
            transient: true,
        }
    }

    #[test]
    fn defaults_follow_liboauth2() {
        let d = HttpOptions::default();
        assert_eq!(d.retries, 1);
        assert_eq!(d.retry_interval, Duration::from_millis(300));
    }

    #[test]
    fn transient_failures_are_tried_again_up_to_retries() {
        for retries in [0, 1, 3] {
            let (r, n) = run(&opts(retries, 1, 5_000), |_| Err(transient()));
            assert_eq!(r, Err(FetchError::Status(503)));
            assert_eq!(n, retries + 1);
        }
        let (r, n) = run(&opts(1, 1, 5_000), |n| {
            if n == 1 { Err(transient()) } else { Ok(()) }
        });
        assert_eq!((r, n), (Ok(()), 2));
    }

    #[test]
    fn permanent_failures_are_not_tried_again() {
        let (r, n) = run(&opts(5, 1, 5_000), |_| {
            Err(Failure::permanent(FetchError::Status(404)))
        });
        assert_eq!((r, n), (Err(FetchError::Status(404)), 1));
    }

    #[test]
    fn the_pause_is_kept_and_the_total_stays_within_the_timeout() {
        let t = Instant::now();
        let (_, n) = run(&opts(2, 150, 5_000), |_| Err(transient()));
        assert_eq!(n, 3);
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );

        // Many retries, slow attempts: the timeout ends it, and each attempt gets what is left.
        let o = opts(100, 50, 1_000);
        let t = Instant::now();
        let mut budgets = Vec::new();
        let r: Result<(), FetchError> = retrying("http://as/x", &o, |b| {
            budgets.push(b.timeout);
            std::thread::sleep(Duration::from_millis(200).min(b.timeout));
            Err(transient())
        });
        let took = t.elapsed();
        assert!(r.is_err());
        assert!(took <= Duration::from_millis(1_050), "{took:?}");
        assert!(budgets.len() >= 3 && budgets.len() < 10, "{budgets:?}");
        assert_eq!(budgets[0], o.timeout);
        assert!(budgets.windows(2).all(|w| w[1] < w[0]), "{budgets:?}");
        assert!(budgets.iter().all(|b| *b >= Duration::from_millis(1)));
    }
}
