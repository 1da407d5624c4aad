//! `OAuth2AcceptTokenIn <method> [<options>]`: where the token may come from (as in the C module; see docs/compatibility.md).

use crate::options::Options;
use crate::options::flag::parse_flag;
use std::ffi::CString;

pub(crate) const UNKNOWN_METHOD: &str =
    "Invalid value, must be one of: environment, header, query, post, cookie or basic.";

/// The methods, in the fixed order in which they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Environment,
    Header,
    Query,
    Post,
    Cookie,
    Basic,
}

impl Method {
    pub(crate) const ORDER: [Method; 6] = [
        Method::Environment,
        Method::Header,
        Method::Query,
        Method::Post,
        Method::Cookie,
        Method::Basic,
    ];

    fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "environment" => Method::Environment,
            "header" => Method::Header,
            "query" => Method::Query,
            "post" => Method::Post,
            "cookie" => Method::Cookie,
            "basic" => Method::Basic,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Whether the token is removed from what the backend receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strip {
    /// Not configured: only the environment variable is removed (what the C module effectively does).
    Default,
    /// `strip=on`: removed from the header, query, cookie, form field or variable it came from.
    On,
    /// `strip=off`: left everywhere.
    Off,
}

/// A whole token-source configuration (merged all-or-nothing between contexts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSources {
    methods: u8,
    pub(crate) env_name: CString,
    pub(crate) header_name: CString,
    /// The expected scheme (`Bearer`); empty: the whole header value is the token.
    pub(crate) header_type: String,
    pub(crate) query_name: String,
    pub(crate) post_name: String,
    pub(crate) cookie_name: String,
    pub(crate) strip: Strip,
}

impl Default for TokenSources {
    /// The C module's default: environment variable `access_token`, then `Authorization: Bearer`.
    fn default() -> Self {
        TokenSources {
            methods: Method::Environment.bit() | Method::Header.bit(),
            ..TokenSources::empty()
        }
    }
}

impl TokenSources {
    fn empty() -> Self {
        TokenSources {
            methods: 0,
            env_name: c"access_token".into(),
            header_name: c"Authorization".into(),
            header_type: "Bearer".into(),
            query_name: "access_token".into(),
            post_name: "access_token".into(),
            cookie_name: "access_token".into(),
            strip: Strip::Default,
        }
    }

    pub(crate) fn accepts(&self, method: Method) -> bool {
        self.methods & method.bit() != 0
    }

    /// Only `basic` accepted: challenges then use the `Basic` scheme.
    pub(crate) fn basic_only(&self) -> bool {
        self.methods == Method::Basic.bit()
    }

    /// Adds one `OAuth2AcceptTokenIn` line; `current` is this context's configuration so far.
    pub(crate) fn add(
        current: Option<&TokenSources>,
        method: &str,
        options: Option<&str>,
    ) -> Result<TokenSources, String> {
        let method = Method::parse(method).ok_or_else(|| UNKNOWN_METHOD.to_string())?;
        let mut s = current.cloned().unwrap_or_else(TokenSources::empty);
        s.methods |= method.bit();
        let options = Options::parse(options.unwrap_or(""));
        let name = options.get("name");
        let c_name = |n: &str| {
            CString::new(n).map_err(|_| "name= must not contain a NUL character".to_string())
        };
        match (method, name) {
            (_, Some("")) => {
                return Err("name= must not be empty: write the name of the variable, header, parameter or cookie".into());
            }
            (Method::Environment, Some(n)) => s.env_name = c_name(n)?,
            (Method::Header, Some(n)) => s.header_name = c_name(n)?,
            (Method::Query, Some(n)) => s.query_name = n.to_string(),
            (Method::Post, Some(n)) => s.post_name = n.to_string(),
            (Method::Cookie, Some(n)) => s.cookie_name = n.to_string(),
            _ => {}
        }
        if method == Method::Header {
            if let Some(t) = options.get("type") {
                s.header_type = t.to_string();
            }
        }
        if let Some(v) = options.get("strip") {
            s.strip = if parse_flag(v)? {
                Strip::On
            } else {
                Strip::Off
            };
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_environment_and_header() {
        let d = TokenSources::default();
        assert!(d.accepts(Method::Environment) && d.accepts(Method::Header));
        assert!(!d.accepts(Method::Query));
        assert_eq!(d.strip, Strip::Default);
    }

    #[test]
    fn lines_accumulate_methods_and_options() {
        let s = TokenSources::add(None, "query", Some("name=tok")).unwrap();
        let s = TokenSources::add(Some(&s), "header", Some("name=X-Token&type=&strip=on")).unwrap();
        assert!(s.accepts(Method::Query) && s.accepts(Method::Header));
        assert!(
            !s.accepts(Method::Environment),
            "configuring any method drops the default set"
        );
        assert_eq!(s.query_name, "tok");
        assert_eq!(s.header_name.to_str().unwrap(), "X-Token");
        assert_eq!(s.header_type, "");
        assert_eq!(s.strip, Strip::On);
    }

    #[test]
    fn errors_have_the_c_messages() {
        assert_eq!(
            TokenSources::add(None, "bogus", None).unwrap_err(),
            UNKNOWN_METHOD
        );
        assert_eq!(
            TokenSources::add(None, "Header", None).unwrap_err(),
            UNKNOWN_METHOD
        );
        assert!(
            TokenSources::add(None, "query", Some("strip=maybe"))
                .unwrap_err()
                .starts_with("value must be")
        );
    }

    #[test]
    fn basic_only_is_detected() {
        let s = TokenSources::add(None, "basic", None).unwrap();
        assert!(s.basic_only());
        let s = TokenSources::add(Some(&s), "header", None).unwrap();
        assert!(!s.basic_only());
    }
}
