//! Key sets fetched from a URL (`jwks_uri`, `eckey_uri`), kept fresh without letting the network
//! or an attacker dictate the pace:
//! - one fetch at a time per URL (single flight): concurrent requests wait for it or use the
//!   current keys;
//! - a token with an unknown `kid` triggers at most one refetch per `refresh_interval`;
//! - a failed refresh keeps the last good keys (stale-if-error), logged once per interval;
//! - a failed first fetch is not retried for `refresh_interval` (no request flood to a dead AS);
//! - keys are refreshed when 90% of their lifetime has passed, by the request that notices.
//!
//! A `file://` URL names a local file instead: it is read again when it changes (looked at at most
//! once a second, and at once for an unknown `kid`) or when its lifetime has passed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::fetch::{self, HttpOptions};
use super::local_file::{self, Stamp};
use super::single_flight::{Guard, SingleFlight};
use crate::cache::Cache;
use crate::jose::{Key, json};
use crate::log_limit::LogLimit;
use crate::logsink::{self, Level};
use crate::metrics::{self, FetchKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A JWK Set: `{"keys": [...]}`.
    Jwks,
    /// One PEM public key (AWS ALB style `eckey_uri`).
    Pem,
}

pub(crate) struct RemoteKeys {
    pub(crate) url: String,
    /// The URL whose age `oauth2_key_set_age_seconds` shows when these keys are obtained: `url`
    /// itself, or the key endpoint of an AWS ALB for each of its `kid`s (see [`Self::shown_as`]).
    age_url: String,
    /// The path of a `file://` URL.
    file: Option<PathBuf>,
    format: Format,
    http: HttpOptions,
    ttl: Duration,
    refresh_interval: Duration,
    /// `<prefix>.cache`: fetched documents shared with other children and hosts.
    shared: Option<Arc<Cache>>,
    /// A failing key endpoint is logged once per `refresh_interval`, not on every request.
    error_log: LogLimit,
    state: SingleFlight<State>,
    /// The HTTP status of the last failed fetch (0: none), see [`RemoteKeys::refused_by_server`].
    failed_status: AtomicU32,
}

const DOCUMENT_NAMESPACE: &str = "document";

#[derive(Default)]
struct State {
    keys: Option<Arc<Vec<Key>>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_failure: Option<Instant>,
    last_error: Option<String>,
    /// Number of fetches made (for tests and debug logs).
    fetches: u64,
    /// A local file: the version the keys were read from, and when it was last looked at.
    file_watch: local_file::Watched,
}

impl RemoteKeys {
    /// `url` is http(s), or a `file://` URL already checked with [`local_file::path_of`]; its age
    /// is shown from now on.
    pub(crate) fn new(
        url: String,
        format: Format,
        http: HttpOptions,
        ttl: Duration,
        refresh_interval: Duration,
        shared: Option<Arc<Cache>>,
    ) -> Self {
        metrics::key_set_used(&url);
        Self::shown_as(
            url.clone(),
            url,
            format,
            http,
            ttl,
            refresh_interval,
            shared,
        )
    }

    /// Keys at `url` whose fetches update the age shown for `age_url`, which the caller lists
    /// ([`metrics::key_set_used`]): the key endpoint of an AWS ALB, for the key of each `kid`.
    /// A `kid` comes from a token nobody has verified, so its URL must not take one of the few
    /// shared key-set slots (nor show as a key set never obtained).
    pub(crate) fn shown_as(
        age_url: String,
        url: String,
        format: Format,
        http: HttpOptions,
        ttl: Duration,
        refresh_interval: Duration,
        shared: Option<Arc<Cache>>,
    ) -> Self {
        let file = local_file::path_of(&url).and_then(Result::ok);
        // A fetch never takes longer than its timeout.
        let wait_bound = http.timeout + Duration::from_secs(1);
        RemoteKeys {
            age_url,
            // A local file is cheaper to read than a shared cache, and is this host's own.
            shared: shared.filter(|_| file.is_none()),
            file,
            url,
            format,
            http,
            ttl,
            refresh_interval,
            error_log: LogLimit::new(refresh_interval),
            state: SingleFlight::new(wait_bound),
            failed_status: AtomicU32::new(0),
        }
    }

    /// The current keys, fetching them when absent or expired.
    pub(crate) fn keys(&self) -> Result<Arc<Vec<Key>>, String> {
        let mut st = self.state.lock();
        loop {
            if let Some(keys) = st.keys.clone() {
                let fresh = st
                    .fetched_at
                    .is_some_and(|t| t.elapsed() < self.ttl.mul_f32(0.9))
                    && !self.file_changed(&mut st, false);
                // While one request refreshes (or refreshing is paused after a failure), the others
                // keep using the keys they have, even past their lifetime (stale-if-error).
                if fresh || st.in_flight() || !self.may_fetch(&st) {
                    return Ok(keys);
                }
            } else if st.in_flight() {
                st = self.state.wait(st);
                continue;
            } else if !self.may_fetch(&st) {
                return Err(format!(
                    "keys from {} unavailable (last error: {})",
                    self.url,
                    st.last_error.as_deref().unwrap_or("unknown")
                ));
            }
            return self.fetch_locked(st, false);
        }
    }

    /// For a token whose `kid` is not in `seen`: refetch if allowed, or wait for a fetch that is
    /// already running. Returns keys newer than `seen`, if any.
    pub(crate) fn refresh_for_unknown_kid(&self, seen: &Arc<Vec<Key>>) -> Option<Arc<Vec<Key>>> {
        let mut st = self.state.lock();
        if st.in_flight() {
            st = self.state.wait(st);
        } else if self.file.is_some() {
            // Looking costs a stat: a new kid in a rewritten file is picked up at once.
            if self.file_changed(&mut st, true) && self.may_fetch(&st) {
                return self
                    .fetch_locked(st, true)
                    .ok()
                    .filter(|k| !Arc::ptr_eq(k, seen));
            }
        } else if self.may_refetch_for_kid(&st) {
            // Straight from the network: the shared copy is what lacks the kid.
            return self
                .fetch_locked(st, true)
                .ok()
                .filter(|k| !Arc::ptr_eq(k, seen));
        }
        st.keys.clone().filter(|k| !Arc::ptr_eq(k, seen))
    }

    /// Whether keys were ever fetched (they may be stale now).
    pub(crate) fn has_keys(&self) -> bool {
        self.state.lock().keys.is_some()
    }

    /// Whether the last fetch failed because the server answered 4xx (it has no such document),
    /// not because it could not be reached or failed itself.
    pub(crate) fn refused_by_server(&self) -> bool {
        (400..500).contains(&self.failed_status.load(Ordering::Relaxed))
    }

    /// The URL whose age these keys update (tests).
    #[cfg(test)]
    pub(crate) fn age_url(&self) -> &str {
        &self.age_url
    }

    /// Fetch count so far (debugging and tests).
    #[cfg(test)]
    pub(crate) fn fetches(&self) -> u64 {
        self.state.lock().fetches
    }

    /// Whether the local file changed since the keys were read from it (see
    /// [`local_file::Watched::changed`]); always false for URLs.
    fn file_changed(&self, st: &mut State, now: bool) -> bool {
        self.file
            .as_ref()
            .is_some_and(|path| st.file_watch.changed(path, now))
    }

    /// Refreshing an expired set: paused only for `refresh_interval` after a failed fetch.
    fn may_fetch(&self, st: &State) -> bool {
        st.last_failure
            .is_none_or(|t| t.elapsed() >= self.refresh_interval)
    }

    /// Refetching for an unknown `kid`: at most once per `refresh_interval`, whatever happened.
    fn may_refetch_for_kid(&self, st: &State) -> bool {
        self.may_fetch(st)
            && st
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.refresh_interval)
    }

    fn fetch_locked(
        &self,
        mut st: Guard<'_, State>,
        network_only: bool,
    ) -> Result<Arc<Vec<Key>>, String> {
        st.last_attempt = Some(Instant::now());
        let (mut st, (result, from_network)) = self.state.fly(st, || {
            let shared = if network_only {
                None
            } else {
                self.shared_copy()
            };
            let from_network = shared.is_none();
            // How much of its lifetime the key set has left: all of it when fetched now.
            let result = shared.map_or_else(
                || self.fetch().map(|(keys, stamp)| (keys, stamp, self.ttl)),
                |(keys, left)| Ok((keys, None, left)),
            );
            if result.is_ok() {
                metrics::key_set_obtained(&self.age_url, unix_now());
            }
            (result, from_network)
        });
        if from_network {
            st.fetches += 1;
        }
        match result {
            Ok((keys, stamp, left)) => {
                let keys = Arc::new(keys);
                st.keys = Some(keys.clone());
                // A copy from the shared cache counts as fetched when it was: it is refreshed
                // when its lifetime is 90% gone in every process, not a lifetime after each read.
                let now = Instant::now();
                st.fetched_at = Some(
                    now.checked_sub(self.ttl.saturating_sub(left))
                        .unwrap_or(now),
                );
                st.file_watch.read(stamp);
                st.last_error = None;
                st.last_failure = None;
                Ok(keys)
            }
            Err(e) => {
                if self.error_log.allow() {
                    let fallback = if st.keys.is_some() {
                        "; keeping the last good keys"
                    } else {
                        ""
                    };
                    logsink::emit(
                        Level::Error,
                        &format!(
                            "oauth2: fetching keys from {} failed: {e}{fallback}",
                            self.url
                        ),
                    );
                }
                st.last_error = Some(e.clone());
                st.last_failure = Some(Instant::now());
                st.keys.clone().ok_or(e)
            }
        }
    }

    /// The keys from the network (or the local file, with the stamp of what was read).
    fn fetch(&self) -> Result<(Vec<Key>, Option<Stamp>), String> {
        if let Some(path) = &self.file {
            let (body, stamp) = local_file::read(path).map_err(|e| e.to_string())?;
            return Ok((self.parse(&body)?, Some(stamp)));
        }
        let req = fetch::Request {
            url: &self.url,
            form: None,
            basic_auth: None,
        };
        let started = Instant::now();
        let fetched = fetch::send(&req, &self.http)
            .map_err(|e| {
                let status = match e {
                    fetch::FetchError::Status(status) => status,
                    _ => 0,
                };
                self.failed_status.store(status, Ordering::Relaxed);
                e.to_string()
            })
            .and_then(|resp| {
                self.failed_status.store(0, Ordering::Relaxed);
                Ok((self.parse(&resp.body)?, resp))
            });
        // PEM keys are fetched one per `kid` from an AWS ALB key endpoint (`aws_alb`, `eckey_uri`).
        let kind = match self.format {
            Format::Jwks => FetchKind::Jwks,
            Format::Pem => FetchKind::AwsAlb,
        };
        metrics::remote_fetch(kind, fetched.is_ok(), started.elapsed());
        let (keys, resp) = fetched?;
        if let Some(cache) = &self.shared {
            let until = unix_now().saturating_add(self.ttl.as_secs());
            let mut entry = until.to_be_bytes().to_vec();
            entry.extend_from_slice(&resp.body);
            cache.set(DOCUMENT_NAMESPACE, &self.document_key(), &entry, self.ttl);
        }
        Ok((keys, None))
    }

    /// A copy another child (or host) fetched, and how long it has left; a copy that does not
    /// parse, or is past 90% of its lifetime (the point where this process would refresh it), is
    /// ignored. An entry is the Unix second it expires (8 bytes big-endian), then the document:
    /// the expiry is sealed with it, so a cache server that sends an old copy back (the TTL is
    /// its word, not ours) cannot make a retired key set last.
    fn shared_copy(&self) -> Option<(Vec<Key>, Duration)> {
        let entry = self
            .shared
            .as_ref()?
            .get(DOCUMENT_NAMESPACE, &self.document_key())?;
        let (until, body) = entry.split_first_chunk::<8>()?;
        let left = Duration::from_secs(u64::from_be_bytes(*until).checked_sub(unix_now())?);
        if left.min(self.ttl) <= self.ttl.mul_f32(0.1) {
            return None;
        }
        Some((self.parse(body).ok()?, left.min(self.ttl)))
    }

    /// The URL and how it was fetched: a copy fetched without TLS verification (or through another
    /// trust anchor or proxy) must not serve a location that verifies.
    fn document_key(&self) -> Vec<u8> {
        let h = &self.http;
        format!(
            "{}\0{}\0{}\0{}",
            self.url,
            h.ssl_verify,
            h.ca_file.as_deref().unwrap_or(""),
            h.proxy.as_deref().unwrap_or("")
        )
        .into_bytes()
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Key>, String> {
        match self.format {
            Format::Jwks => parse_jwks(body, self.file.is_none().then_some(self.url.as_str())),
            Format::Pem => {
                let text =
                    std::str::from_utf8(body).map_err(|_| "PEM key is not text".to_string())?;
                Key::from_pem_public_key(text)
                    .map(|k| vec![k])
                    .map_err(|e| e.to_string())
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A JWK Set: keys for signing (`use` absent or `sig`) are imported; others, unsupported or
/// invalid keys are skipped (with a debug note), as the C module does. A set fetched from
/// `fetched_from` (a URL, not a local file) is public: a symmetric (`oct`) key in it would let
/// anyone sign, so it is skipped with a warning (OpenID Connect Discovery 1.0 section 3 forbids
/// them there; the C module uses them).
pub(crate) fn parse_jwks(body: &[u8], fetched_from: Option<&str>) -> Result<Vec<Key>, String> {
    let doc = json::parse_object_as(body, "JWKS").map_err(|e| e.to_string())?;
    let Some(serde_json::Value::Array(items)) = doc.get("keys") else {
        return Err("JWKS has no \"keys\" array".into());
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let Some(jwk) = item.as_object() else {
            continue;
        };
        if jwk
            .get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        if let Some(url) =
            fetched_from.filter(|_| jwk.get("kty").and_then(|k| k.as_str()) == Some("oct"))
        {
            logsink::emit(
                Level::Warn,
                &format!(
                    "oauth2: JWKS {url}: a symmetric (\"oct\") key is ignored: a key set fetched over the network is public, so anyone could sign tokens with it; give a shared secret in an OAuth2TokenVerify plain, base64, hex or jwk line, or in a file:// key set"
                ),
            );
            continue;
        }
        match Key::from_jwk_map(jwk) {
            Ok(k) => keys.push(k),
            Err(e) => logsink::emit(Level::Debug, &format!("oauth2: JWKS key skipped: {e}")),
        }
    }
    if keys.is_empty() {
        return Err("JWKS has no usable signing key".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    fn jwks(kid: &str) -> String {
        let key = openssl::pkey::PKey::generate_ed25519().unwrap();
        let x = crate::jose::b64::encode(&key.raw_public_key().unwrap());
        format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"{x}"}}]}}"#)
    }

    /// An HTTP server answering every request with the document `doc` holds at the time.
    fn serve(doc: Arc<Mutex<String>>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.read(&mut [0u8; 4096]);
                let body = doc.lock().unwrap().clone();
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        format!("http://127.0.0.1:{port}/jwks")
    }

    fn kids(keys: &[Key]) -> Vec<&str> {
        keys.iter().filter_map(Key::kid).collect()
    }

    /// A symmetric key published in a fetched key set would let anyone sign: skipped there, kept
    /// in a local file (the administrator's own).
    #[test]
    fn symmetric_keys_count_only_in_a_local_key_set() {
        let oct =
            r#"{"kty":"oct","kid":"hs","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}"#;
        let ed = jwks("ed");
        let both = format!(r#"{{"keys":[{oct},{}"#, &ed[9..]);
        let fetched = parse_jwks(both.as_bytes(), Some("https://as.example/jwks")).unwrap();
        assert_eq!(kids(&fetched), ["ed"]);
        let local = parse_jwks(both.as_bytes(), None).unwrap();
        assert_eq!(kids(&local), ["hs", "ed"]);
        let only_oct = format!(r#"{{"keys":[{oct}]}}"#);
        let e = parse_jwks(only_oct.as_bytes(), Some("https://as.example/jwks")).unwrap_err();
        assert!(e.contains("no usable signing key"), "{e}");
    }

    /// A cache server (or anyone on the path to a plain-TCP one) keeps a sealed key set and sends
    /// it back after the authorization server has rotated its keys: the copy, authentic but
    /// expired, must not be used, or a retired (perhaps leaked) key would verify tokens again.
    #[test]
    fn an_expired_key_set_sent_back_by_the_cache_server_is_not_used() {
        let (spec, _) = crate::cache::config::parse("shm", Some("encrypt=true")).unwrap();
        let cache = Arc::new(Cache::new(spec));
        cache.init(Some("passphrase")).unwrap();
        let doc = Arc::new(Mutex::new(jwks("old")));
        let url = serve(doc.clone());
        let ttl = Duration::from_secs(2);
        let child = || {
            RemoteKeys::new(
                url.clone(),
                Format::Jwks,
                HttpOptions::default(),
                ttl,
                Duration::from_secs(60),
                Some(cache.clone()),
            )
        };
        let first = child();
        assert_eq!(kids(&first.keys().unwrap()), ["old"]);
        let kept = cache
            .raw_get(DOCUMENT_NAMESPACE, &first.document_key())
            .expect("the key set went to the shared cache");
        *doc.lock().unwrap() = jwks("new");
        // Live, it serves the other children.
        let second = child();
        assert_eq!(kids(&second.keys().unwrap()), ["old"]);
        assert_eq!(second.fetches(), 0, "taken from the shared cache");
        std::thread::sleep(ttl + Duration::from_millis(1100));
        // The entry expired; the server answers with the copy it kept.
        cache.raw_set(
            DOCUMENT_NAMESPACE,
            &first.document_key(),
            &kept,
            Duration::from_secs(600),
        );
        let later = child();
        assert_eq!(kids(&later.keys().unwrap()), ["new"]);
        assert_eq!(later.fetches(), 1, "fetched from the network");
    }
}
