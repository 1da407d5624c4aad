//! RFC 7662 token introspection: POST the token to the authorization server and accept it only
//! for HTTP 2xx, a JSON object and `"active": true`. (Results are cached by the verifier.)

use serde_json::{Map, Value};
use std::fmt;

use super::auth::EndpointAuth;
use super::fetch::{self, Failure, FetchError, HttpOptions};
use crate::jose::{JoseError, json};
use crate::metrics::{self, FetchKind};
use std::time::Instant;

/// Why introspection did not accept a token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IntrospectError {
    /// The client authentication (`introspect.auth`) could not be prepared.
    Auth(String),
    /// The endpoint could not be reached or did not answer 2xx.
    Transport { url: String, error: FetchError },
    /// The answer is not a JSON object.
    NotJson(JoseError),
    /// The answer carries an `error` member.
    ErrorMember,
    /// `"active": false`: the authorization server says no.
    Inactive,
    /// No boolean `active` member.
    NoActive,
}

impl IntrospectError {
    /// A short stable name for the reason (for metrics).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            IntrospectError::Inactive => "inactive",
            IntrospectError::Auth(_) | IntrospectError::Transport { .. } => {
                "introspection_unavailable"
            }
            IntrospectError::NotJson(_)
            | IntrospectError::ErrorMember
            | IntrospectError::NoActive => "introspection_bad_response",
        }
    }
}

impl fmt::Display for IntrospectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntrospectError::Auth(e) => f.write_str(e),
            IntrospectError::Transport { url, error } => {
                write!(f, "introspection at {url} failed: {error}")
            }
            IntrospectError::NotJson(e) => write!(f, "{e}"),
            IntrospectError::ErrorMember => f.write_str("introspection response carries an error"),
            IntrospectError::Inactive => f.write_str("token is not active (introspection)"),
            IntrospectError::NoActive => {
                f.write_str("introspection response has no boolean \"active\"")
            }
        }
    }
}

pub(crate) struct Introspector {
    pub(crate) url: String,
    pub(crate) http: HttpOptions,
    pub(crate) auth: EndpointAuth,
    /// `introspect.params`: extra form parameters.
    pub(crate) params: Vec<(String, String)>,
    /// `introspect.token_param_name`, default `token`.
    pub(crate) token_param: String,
}

impl Introspector {
    pub(crate) fn new(
        url: String,
        http: HttpOptions,
        auth: EndpointAuth,
        params: Vec<(String, String)>,
        token_param: String,
    ) -> Self {
        Introspector {
            url,
            http,
            auth,
            params,
            token_param,
        }
    }

    /// Asks the authorization server; `Ok` only for an active token. Each attempt (see
    /// `<prefix>.http_retries`) authenticates anew: a client assertion is never sent twice.
    pub(crate) fn introspect(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Map<String, Value>, IntrospectError> {
        let started = Instant::now();
        let answer = self.ask(token, now);
        // An inactive token is a usable answer; anything else that failed is the endpoint's.
        let usable = matches!(answer, Ok(_) | Err(IntrospectError::Inactive));
        metrics::remote_fetch(FetchKind::Introspect, usable, started.elapsed());
        answer
    }

    fn ask(&self, token: &str, now: i64) -> Result<Map<String, Value>, IntrospectError> {
        let resp = fetch::retrying(&self.url, &self.http, |budget| {
            let mut http = budget.clone();
            let applied = self
                .auth
                .apply(&mut http, now)
                .map_err(|e| Failure::permanent(IntrospectError::Auth(e)))?;
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
            fetch::attempt(&req, &http).map_err(|f| Failure {
                transient: f.transient,
                error: IntrospectError::Transport {
                    url: self.url.clone(),
                    error: f.error,
                },
            })
        })?;
        let claims = json::parse_object_as(&resp.body, "introspection response")
            .map_err(IntrospectError::NotJson)?;
        if claims.get("error").is_some_and(|e| !e.is_null()) {
            return Err(IntrospectError::ErrorMember);
        }
        match claims.get("active") {
            Some(Value::Bool(true)) => Ok(claims),
            Some(Value::Bool(false)) => Err(IntrospectError::Inactive),
            _ => Err(IntrospectError::NoActive),
        }
    }
}
