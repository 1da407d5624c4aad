//! RFC 8414 / OpenID Connect discovery (`metadata <url>`): the document names the issuer, the JWKS
//! and the introspection endpoint. Tokens must come from that issuer. The document is cached for
//! `metadata.expiry` and refreshed like a key set (failures keep the last good document).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::EndpointAuth;
use super::fetch::{self, HttpOptions};
use super::introspect::Introspector;
use super::keys::{Format, RemoteKeys};
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
}

pub(crate) struct Discovered {
    pub(crate) issuer: String,
    pub(crate) keys: Option<Arc<RemoteKeys>>,
    pub(crate) introspector: Option<Arc<Introspector>>,
}

pub(crate) struct Metadata {
    pub(crate) url: String,
    http: HttpOptions,
    ttl: Duration,
    retry_interval: Duration,
    templates: Templates,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<(Instant, Arc<Discovered>)>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

impl Metadata {
    pub(crate) fn new(url: String, http: HttpOptions, ttl: Duration, templates: Templates) -> Self {
        let retry_interval = templates.jwks_refresh_interval;
        Metadata {
            url,
            http,
            ttl,
            retry_interval,
            templates,
            state: Mutex::default(),
        }
    }

    /// The discovered endpoints; fetched when absent or expired, the last good ones on failure.
    pub(crate) fn discovered(&self) -> Result<Arc<Discovered>, String> {
        // Held across the fetch: discovery happens about once a day, and the lock makes it single flight.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, d)) = &st.current {
            if at.elapsed() < self.ttl {
                return Ok(d.clone());
            }
        }
        if st
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.retry_interval)
        {
            return match &st.current {
                Some((_, d)) => Ok(d.clone()),
                None => Err(format!(
                    "metadata {} unavailable (last error: {})",
                    self.url,
                    st.last_error.as_deref().unwrap_or("unknown")
                )),
            };
        }
        st.last_attempt = Some(Instant::now());
        let previous = st.current.as_ref().map(|(_, d)| d.clone());
        let started = Instant::now();
        let fetched = self.fetch(previous.as_deref());
        metrics::remote_fetch(FetchKind::Metadata, fetched.is_ok(), started.elapsed());
        match fetched {
            Ok(d) => {
                let d = Arc::new(d);
                st.current = Some((Instant::now(), d.clone()));
                st.last_error = None;
                Ok(d)
            }
            Err(e) => {
                logsink::emit(
                    Level::Error,
                    &format!("oauth2: fetching metadata {} failed: {e}", self.url),
                );
                st.last_error = Some(e.clone());
                previous.ok_or(e)
            }
        }
    }

    fn fetch(&self, previous: Option<&Discovered>) -> Result<Discovered, String> {
        let req = fetch::Request {
            url: &self.url,
            form: None,
            basic_auth: None,
        };
        let resp = fetch::send(&req, &self.http).map_err(|e| e.to_string())?;
        let doc = json::parse_object_as(&resp.body, "metadata").map_err(|e| e.to_string())?;
        let issuer = doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or("metadata has no \"issuer\"")?
            .to_string();
        let url_of = |name: &str| {
            let v = doc.get(name)?;
            match v.as_str() {
                Some(s) if s.starts_with("https://") || s.starts_with("http://") => {
                    Some(s.to_string())
                }
                _ => {
                    logsink::emit(
                        Level::Warn,
                        &format!(
                            "oauth2: metadata {}: \"{name}\" ignored: not an http(s) URL",
                            self.url
                        ),
                    );
                    None
                }
            }
        };
        let t = &self.templates;
        // Keep existing key sets and caches when the URLs did not change.
        let keys = url_of("jwks_uri").map(|u| match previous.and_then(|p| p.keys.clone()) {
            Some(k) if k.url == u => k,
            _ => Arc::new(RemoteKeys::new(
                u,
                Format::Jwks,
                t.jwks_http.clone(),
                t.jwks_ttl,
                t.jwks_refresh_interval,
                t.jwks_cache.clone(),
            )),
        });
        let introspector = url_of("introspection_endpoint").map(|u| {
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
        Ok(Discovered {
            issuer,
            keys,
            introspector,
        })
    }
}
