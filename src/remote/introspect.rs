//! RFC 7662 token introspection: POST the token to the authorization server and accept it only
//! for HTTP 2xx, a JSON object and `"active": true`. (Results are cached by the verifier.)

use serde_json::{Map, Value};

use super::auth::EndpointAuth;
use super::fetch::{self, HttpOptions};
use crate::jose::json;

pub struct Introspector {
    pub url: String,
    pub http: HttpOptions,
    pub auth: EndpointAuth,
    /// `introspect.params`: extra form parameters.
    pub params: Vec<(String, String)>,
    /// `introspect.token_param_name`, default `token`.
    pub token_param: String,
}

impl Introspector {
    pub fn new(
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
