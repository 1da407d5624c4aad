//! RFC 7662 token introspection: POST the token to the authorization server and accept it only
//! for HTTP 2xx, a JSON object and `"active": true`. Results are cached per verifier by the hash
//! of the token, never past the response's `exp`.

use serde_json::{Map, Value};
use std::time::Duration;

use super::auth::EndpointAuth;
use super::fetch::{self, HttpOptions};
use super::result_cache::{Claims, ResultCache, ttl_for};
use crate::jose::json;

/// Cached results per introspection verifier at most (memory bound).
const MAX_CACHED_RESULTS: usize = 100_000;

pub struct Introspector {
    pub url: String,
    pub http: HttpOptions,
    pub auth: EndpointAuth,
    /// `introspect.params`: extra form parameters.
    pub params: Vec<(String, String)>,
    /// `introspect.token_param_name`, default `token`.
    pub token_param: String,
    /// `expiry`: how long an accepted result is reused (default 300 s).
    pub ttl: Duration,
    cache: ResultCache,
}

impl Introspector {
    pub fn new(
        url: String,
        http: HttpOptions,
        auth: EndpointAuth,
        params: Vec<(String, String)>,
        token_param: String,
        ttl: Duration,
    ) -> Self {
        Introspector {
            url,
            http,
            auth,
            params,
            token_param,
            ttl,
            cache: ResultCache::new(MAX_CACHED_RESULTS),
        }
    }

    /// A cached result for this token, if still valid.
    pub fn cached(&self, token: &str) -> Option<Claims> {
        self.cache.get(&ResultCache::key(token))
    }

    /// Remembers an accepted result (after the caller's claim checks passed).
    pub fn remember(&self, token: &str, claims: &Claims, now: i64) {
        self.cache.put(
            ResultCache::key(token),
            claims.clone(),
            ttl_for(claims, self.ttl, now),
        );
    }

    /// Asks the authorization server; `Ok` only for an active token.
    pub fn introspect(&self, token: &str, now: i64) -> Result<Map<String, Value>, String> {
        let mut http = self.http.clone();
        let applied = self.auth.apply(&mut http, now)?;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair(&self.token_param, token);
        form.append_pair("token_type_hint", "access_token");
        for (k, v) in self.params.iter().chain(applied.form.iter()) {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let basic = applied
            .basic
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let req = fetch::Request {
            url: &self.url,
            form: Some(&body),
            basic_auth: basic,
        };
        let resp = fetch::send(&req, &http)
            .map_err(|e| format!("introspection at {} failed: {e}", self.url))?;
        let claims = json::parse_object_as(&resp.body, "introspection response")
            .map_err(|e| e.to_string())?;
        if claims.get("error").is_some_and(|e| !e.is_null()) {
            return Err("introspection response carries an error".into());
        }
        match claims.get("active") {
            Some(Value::Bool(true)) => Ok(claims),
            Some(Value::Bool(false)) => Err("token is not active (introspection)".into()),
            _ => Err("introspection response has no boolean \"active\"".into()),
        }
    }
}
