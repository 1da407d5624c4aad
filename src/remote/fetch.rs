//! Outgoing HTTP for key sets, metadata and introspection: libcurl with a hard total timeout,
//! bounded response bodies, http/https only, at most 5 redirects, and one reused handle per thread
//! (so connections to the authorization server are kept alive between requests).

use curl::easy::{Easy, List};
use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

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
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            ssl_verify: true,
            ca_file: None,
            proxy: None,
            timeout: Duration::from_secs(15),
            client_cert: None,
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

/// Performs the request; only 2xx answers are `Ok`.
pub(crate) fn send(req: &Request, opts: &HttpOptions) -> Result<Response, FetchError> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let easy = slot.get_or_insert_with(Easy::new);
        easy.reset(); // options only; live connections stay cached
        let result = perform(easy, req, opts);
        if result.is_err() {
            // A handle in an unknown state is not worth keeping.
            *slot = None;
        }
        result
    })
}

fn perform(easy: &mut Easy, req: &Request, opts: &HttpOptions) -> Result<Response, FetchError> {
    let t = |e: curl::Error| FetchError::Transport(e.description().to_string());
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
    restrict_protocols(easy)?;

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
            return Err(FetchError::TooLarge);
        }
        outcome.map_err(t)?;
    }
    let status = easy.response_code().map_err(t)?;
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    Ok(Response { body })
}

/// http and https only, also after redirects (no file://, gopher://, ...).
fn restrict_protocols(easy: &mut Easy) -> Result<(), FetchError> {
    use curl_sys::{CURLOPT_PROTOCOLS, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP, CURLPROTO_HTTPS};
    let raw = easy.raw();
    let allowed = std::ffi::c_long::from(CURLPROTO_HTTP | CURLPROTO_HTTPS);
    for opt in [CURLOPT_PROTOCOLS, CURLOPT_REDIR_PROTOCOLS] {
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
