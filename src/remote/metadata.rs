//! RFC 8414 / OpenID Connect discovery (`metadata <url>`): the document names the issuer, the JWKS
//! and the introspection endpoint. Tokens must come from that issuer. The document is cached for
//! `metadata.expiry` and refreshed like a key set (failures keep the last good document).
//!
//! A `file://` URL names a local file instead: it is read again when it changes (looked at at most
//! once a second) or after `metadata.expiry`, and only such a local document may name a local
//! `jwks_uri` (`file://`); a fetched document never makes us read a file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::EndpointAuth;
use super::endpoint::{has_space_or_control, is_http, is_https};
use super::fetch::{self, HttpOptions};
use super::introspect::Introspector;
use super::keys::{Format, RemoteKeys};
use super::local_file::{self, Stamp};
use super::single_flight::SingleFlight;
use crate::jose::json;
use crate::logsink::{self, Level};
use crate::metrics::{self, FetchKind};

/// How to use what the document points at.
#[derive(Clone)]
pub(crate) struct Templates {
    pub(crate) jwks_http: HttpOptions,
    pub(crate) jwks_ttl: Duration,
    pub(crate) jwks_refresh_interval: Duration,
    pub(crate) jwks_cache: Option<Arc<crate::cache::Cache>>,
    pub(crate) introspect_http: HttpOptions,
    pub(crate) introspect_auth: EndpointAuth,
    pub(crate) introspect_params: Vec<(String, String)>,
    pub(crate) introspect_token_param: String,
    /// The line's `iss=`: a discovered issuer other than it refuses every token (warned).
    pub(crate) expected_issuer: Option<String>,
}

pub(crate) struct Discovered {
    pub(crate) issuer: String,
    pub(crate) keys: Option<Arc<RemoteKeys>>,
    pub(crate) introspector: Option<Arc<Introspector>>,
}

pub(crate) struct Metadata {
    pub(crate) url: String,
    /// The path of a `file://` URL.
    file: Option<PathBuf>,
    http: HttpOptions,
    ttl: Duration,
    retry_interval: Duration,
    templates: Templates,
    state: SingleFlight<State>,
}

#[derive(Default)]
struct State {
    current: Option<(Instant, Arc<Discovered>)>,
    /// When the last fetch failed (its end); `None` after a success.
    last_failure: Option<Instant>,
    last_error: Option<String>,
    /// A local file: the version the document was read from, and when it was last looked at.
    file_watch: local_file::Watched,
}

impl Metadata {
    /// `url` is http(s), or a `file://` URL already checked with [`local_file::path_of`].
    pub(crate) fn new(url: String, http: HttpOptions, ttl: Duration, templates: Templates) -> Self {
        let retry_interval = templates.jwks_refresh_interval;
        // A fetch, retries included, never takes longer than its timeout.
        let wait_bound = http.timeout + Duration::from_secs(1);
        Metadata {
            file: local_file::path_of(&url).and_then(Result::ok),
            url,
            http,
            ttl,
            retry_interval,
            templates,
            state: SingleFlight::new(wait_bound),
        }
    }

    /// The discovered endpoints; fetched when absent or expired, the last good ones on failure.
    /// As for key sets, one request fetches (single flight) and the others go on with the
    /// current document meanwhile; only without one do they wait for it.
    pub(crate) fn discovered(&self) -> Result<Arc<Discovered>, String> {
        let mut st = self.state.lock();
        let mut waited = false;
        loop {
            let changed = self.file_changed(&mut st);
            match &st.current {
                Some((at, d)) => {
                    let fresh = at.elapsed() < self.ttl && !changed;
                    if fresh || st.in_flight() || self.paused(&st) {
                        return Ok(d.clone());
                    }
                }
                None if st.in_flight() && !waited => {
                    st = self.state.wait(st);
                    waited = true;
                    continue;
                }
                None if st.in_flight() || self.paused(&st) => {
                    return Err(format!(
                        "metadata {} unavailable (last error: {})",
                        self.url,
                        st.last_error.as_deref().unwrap_or("still being fetched")
                    ));
                }
                None => {}
            }
            break;
        }
        let previous = st.current.as_ref().map(|(_, d)| d.clone());
        // The others use `previous` meanwhile.
        let (mut st, fetched) = self.state.fly(st, || {
            let started = Instant::now();
            let fetched = self.fetch(previous.as_deref());
            metrics::remote_fetch(FetchKind::Metadata, fetched.is_ok(), started.elapsed());
            fetched
        });
        match fetched {
            Ok((d, stamp)) => {
                let d = Arc::new(d);
                st.current = Some((Instant::now(), d.clone()));
                st.last_failure = None;
                st.last_error = None;
                st.file_watch.read(stamp);
                Ok(d)
            }
            Err(e) => {
                logsink::emit(
                    Level::Error,
                    &format!("oauth2: fetching metadata {} failed: {e}", self.url),
                );
                // From the end of the failed attempt: a fetch that timed out is not started
                // again at once by the request that waited for it.
                st.last_failure = Some(Instant::now());
                st.last_error = Some(e.clone());
                previous.ok_or(e)
            }
        }
    }

    /// After a failed fetch (or read of the local file), the next waits `retry_interval`: no
    /// request flood to a dead server.
    fn paused(&self, st: &State) -> bool {
        st.last_failure
            .is_some_and(|t| t.elapsed() < self.retry_interval)
    }

    /// Whether the local file changed since the document was read from it (see
    /// [`local_file::Watched::changed`]); always false for URLs.
    fn file_changed(&self, st: &mut State) -> bool {
        self.file
            .as_ref()
            .is_some_and(|path| st.file_watch.changed(path, false))
    }

    /// The document from the network (or the local file, with the stamp of what was read).
    fn fetch(&self, previous: Option<&Discovered>) -> Result<(Discovered, Option<Stamp>), String> {
        let (body, stamp) = match &self.file {
            Some(path) => {
                let (body, stamp) = local_file::read(path).map_err(|e| e.to_string())?;
                (body, Some(stamp))
            }
            None => {
                let req = fetch::Request {
                    url: &self.url,
                    form: None,
                    basic_auth: None,
                };
                (
                    fetch::send(&req, &self.http)
                        .map_err(|e| e.to_string())?
                        .body,
                    None,
                )
            }
        };
        let doc = json::parse_object_as(&body, "metadata").map_err(|e| e.to_string())?;
        let issuer = doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or("metadata has no \"issuer\"")?
            .to_string();
        if let Some(expected) = self.templates.expected_issuer.as_deref() {
            if expected != issuer {
                logsink::emit(
                    Level::Warn,
                    &format!(
                        "oauth2: metadata {}: the document's issuer \"{issuer}\" is not this line's iss={expected}, so every token is refused: remove iss= (the discovered issuer is checked anyway) or correct it",
                        self.url
                    ),
                );
            }
        }
        // What came over https names endpoints on https: an http one would let anyone on the
        // path swap the keys or read the tokens sent for introspection (as for redirects).
        let https_only = is_https(&self.url);
        let url_of = |name: &str, local_allowed: bool| {
            let v = doc.get(name)?;
            // As for configured URLs: a space or control character (a line break in a log
            // line or in the metrics' url label) is no part of a URL.
            match v.as_str().filter(|s| !has_space_or_control(s)) {
                // The same test as for configured URLs: the scheme in any case (RFC 3986
                // section 3.1), and a host after it.
                Some(s) if is_http(s) && (!https_only || is_https(s)) => Some(s.to_string()),
                Some(s) if local_allowed && matches!(local_file::path_of(s), Some(Ok(_))) => {
                    Some(s.to_string())
                }
                _ => {
                    let allowed = if https_only {
                        "an https URL (the document came over https: have the server advertise https URLs, or write a jwks_uri or introspect line)"
                    } else if local_allowed {
                        "an http(s) or file:///path URL"
                    } else {
                        "an http(s) URL"
                    };
                    logsink::emit(
                        Level::Warn,
                        &format!(
                            "oauth2: metadata {}: \"{name}\" ignored: not {allowed}",
                            self.url
                        ),
                    );
                    None
                }
            }
        };
        let t = &self.templates;
        // Keep existing key sets and caches when the URLs did not change.
        // Only a local document may point at a local file.
        let keys = url_of("jwks_uri", self.file.is_some()).map(|u| {
            match previous.and_then(|p| p.keys.clone()) {
                Some(k) if k.url == u => k,
                _ => Arc::new(RemoteKeys::new(
                    u,
                    Format::Jwks,
                    t.jwks_http.clone(),
                    t.jwks_ttl,
                    t.jwks_refresh_interval,
                    t.jwks_cache.clone(),
                )),
            }
        });
        let introspector = url_of("introspection_endpoint", false).map(|u| {
            match previous.and_then(|p| p.introspector.clone()) {
                Some(i) if i.url == u => i,
                _ => Arc::new(Introspector::new(
                    u,
                    t.introspect_http.clone(),
                    t.introspect_auth.clone(),
                    t.introspect_params.clone(),
                    t.introspect_token_param.clone(),
                )),
            }
        });
        if keys.is_none() && introspector.is_none() {
            return Err("metadata has neither \"jwks_uri\" nor \"introspection_endpoint\"".into());
        }
        Ok((
            Discovered {
                issuer,
                keys,
                introspector,
            },
            stamp,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::auth::EndpointAuth;

    fn templates() -> Templates {
        Templates {
            jwks_http: HttpOptions::default(),
            jwks_ttl: Duration::from_secs(60),
            jwks_refresh_interval: Duration::from_secs(1),
            jwks_cache: None,
            introspect_http: HttpOptions::default(),
            introspect_auth: EndpointAuth::None,
            introspect_params: Vec::new(),
            introspect_token_param: "token".into(),
            expected_issuer: None,
        }
    }

    /// The document `doc` in a local file, discovered.
    fn discover(tag: &str, doc: &serde_json::Value) -> Result<Arc<Discovered>, String> {
        let path =
            std::env::temp_dir().join(format!("oauth2-metadata-{tag}-{}.json", std::process::id()));
        std::fs::write(&path, doc.to_string()).unwrap();
        let md = Metadata::new(
            format!("file://{}", path.display()),
            HttpOptions::default(),
            Duration::from_secs(60),
            templates(),
        );
        let d = md.discovered();
        let _ = std::fs::remove_file(&path);
        d
    }

    #[test]
    fn endpoint_urls_with_spaces_or_control_characters_are_ignored() {
        for (name, url) in [
            ("jwks_uri", "https://as.example/jwks\r\nX-Injected: 1"),
            ("jwks_uri", "https://as.example/jw ks"),
            ("jwks_uri", "https://as.example/jwks\u{7f}"),
            ("introspection_endpoint", "https://as.example/in\ttrospect"),
        ] {
            let doc = serde_json::json!({ "issuer": "https://as.example", name: url });
            let e = discover("bad", &doc).err();
            assert_eq!(
                e.as_deref(),
                Some("metadata has neither \"jwks_uri\" nor \"introspection_endpoint\""),
                "{name}: {url:?}"
            );
        }
        let doc = serde_json::json!({
            "issuer": "https://as.example",
            "jwks_uri": "https://as.example/jwks",
        });
        let d = discover("good", &doc).unwrap();
        assert_eq!(d.keys.as_ref().unwrap().url, "https://as.example/jwks");
    }

    #[test]
    fn endpoint_urls_are_http_urls_with_a_host_whatever_the_scheme_case() {
        for url in ["HTTPS://as.example/jwks", "Http://as.example/jwks"] {
            let doc = serde_json::json!({ "issuer": "https://as.example", "jwks_uri": url });
            let d = discover("case", &doc).unwrap();
            assert_eq!(d.keys.as_ref().unwrap().url, url);
        }
        for url in [
            "https:///jwks",
            "https://",
            "ftp://as.example/jwks",
            "/jwks",
        ] {
            let doc = serde_json::json!({ "issuer": "https://as.example", "jwks_uri": url });
            assert!(discover("nohost", &doc).is_err(), "{url:?}");
        }
    }

    /// A TLS server answering every request with the JSON `doc`.
    fn tls_server(doc: String) -> u16 {
        crate::test_support::tls_server(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
            doc.len()
        ))
    }

    /// A document fetched over https names endpoints on https only: an http `jwks_uri` would let
    /// anyone on the path swap the keys, an http introspection endpoint read the tokens and the
    /// client credentials (the rule the redirects of an https request follow, src/remote/fetch.rs).
    #[test]
    fn a_document_fetched_over_https_names_https_endpoints_only() {
        let doc = serde_json::json!({
            "issuer": "https://as.example",
            "jwks_uri": "http://as.example/jwks",
            "introspection_endpoint": "HTTPS://as.example/introspect",
        });
        let port = tls_server(doc.to_string());
        let http = HttpOptions {
            ssl_verify: false,
            timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        };
        let md = Metadata::new(
            format!("https://127.0.0.1:{port}/md"),
            http,
            Duration::from_secs(60),
            templates(),
        );
        let d = md.discovered().unwrap();
        assert!(
            d.keys.is_none(),
            "an http jwks_uri from an https document was used"
        );
        assert_eq!(
            d.introspector.as_ref().map(|i| i.url.as_str()),
            Some("HTTPS://as.example/introspect")
        );
        let doc = serde_json::json!({
            "issuer": "https://as.example",
            "introspection_endpoint": "http://as.example/introspect",
        });
        let port = tls_server(doc.to_string());
        let md = Metadata::new(
            format!("https://127.0.0.1:{port}/md"),
            HttpOptions {
                ssl_verify: false,
                ..HttpOptions::default()
            },
            Duration::from_secs(60),
            templates(),
        );
        assert!(
            md.discovered().is_err(),
            "an http introspection endpoint was used"
        );
        // A local document (the administrator's own) and an http one may name http endpoints.
        let doc = serde_json::json!({ "issuer": "https://as.example", "jwks_uri": "http://as.example/jwks" });
        assert!(discover("local-http", &doc).unwrap().keys.is_some());
    }
}
