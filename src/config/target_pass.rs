//! `OAuth2TargetPass <options>`: how verified claims reach the backend (the C module's options;
//! differences in docs/compatibility.md). Each line sets only the options it names; each option
//! inherits separately from the parent context.

use crate::options::Options;
use crate::options::flag::parse_flag;

/// The prefix of the variables and headers claims are passed in, unless `prefix=` says otherwise.
pub(crate) const DEFAULT_PREFIX: &str = "OAUTH2_CLAIM_";

pub(crate) const ENCODING_ERROR: &str =
    "unknown value for encoding: must be one of \"latin1\", \"base64url\" or \"none\"";

/// How claim values are written into headers and variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8 as it is (what the C module 3.3.1 does, and what deployed backends receive).
    None,
    /// ISO-8859-1; characters outside it become `?`.
    Latin1,
    /// base64url of the UTF-8 bytes.
    Base64Url,
}

/// Every option optional, so that a child context inherits what it does not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TargetPass {
    pub(crate) envvars: Option<bool>,
    pub(crate) headers: Option<bool>,
    pub(crate) authn_header: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) remote_user_claim: Option<String>,
    pub(crate) json_payload_claim: Option<String>,
    pub(crate) encoding: Option<Encoding>,
}

const KNOWN: &[&str] = &[
    "envvars",
    "headers",
    "authn_header",
    "prefix",
    "remote_user_claim",
    "json_payload_claim",
    "encoding",
];

impl TargetPass {
    /// Applies one `OAuth2TargetPass` line on top of this context's earlier lines.
    pub(crate) fn apply(&mut self, text: &str) -> Result<Vec<String>, String> {
        let o = Options::parse(text);
        if let Some(v) = o.get("envvars") {
            self.envvars = Some(parse_flag(v)?);
        }
        if let Some(v) = o.get("headers") {
            self.headers = Some(parse_flag(v)?);
        }
        if let Some(v) = o.get("authn_header") {
            if !v.is_empty() && !crate::header_name::is_token(v) {
                return Err(format!(
                    "authn_header={v}: not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
                ));
            }
            if crate::header_name::is_reserved_header(v.as_bytes()) {
                return Err(format!(
                    "authn_header={v}: a framing or hop-by-hop header cannot carry the remote user"
                ));
            }
            self.authn_header = Some(v.to_string()).filter(|h| !h.is_empty());
        }
        if let Some(v) = o.get("prefix") {
            // It starts every header name claims are passed in: one bad byte breaks them all.
            if !v.is_empty() && !crate::header_name::is_token(v) {
                return Err(format!(
                    "prefix={v}: not valid at the start of an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only), e.g. prefix=OAUTH2_CLAIM_"
                ));
            }
            self.prefix = Some(v.to_string());
        }
        if let Some(v) = o.get("remote_user_claim") {
            if v.is_empty() {
                return Err(
                    "remote_user_claim= must name a claim, e.g. remote_user_claim=sub".into(),
                );
            }
            self.remote_user_claim = Some(v.to_string());
        }
        if let Some(v) = o.get("json_payload_claim") {
            self.json_payload_claim = Some(v.to_string()).filter(|c| !c.is_empty());
        }
        if let Some(v) = o.get("encoding") {
            self.encoding = Some(match v {
                "latin1" => Encoding::Latin1,
                "base64url" => Encoding::Base64Url,
                "none" => Encoding::None,
                _ => return Err(ENCODING_ERROR.to_string()),
            });
        }
        Ok(o
            .unknown(KNOWN)
            .map(|n| format!("OAuth2TargetPass: unknown option \"{n}\" is ignored (option names are case-sensitive)"))
            .collect())
    }

    /// Field by field: the child's setting if it made one, else the parent's.
    pub(crate) fn merge(base: &TargetPass, add: &TargetPass) -> TargetPass {
        TargetPass {
            envvars: add.envvars.or(base.envvars),
            headers: add.headers.or(base.headers),
            authn_header: add
                .authn_header
                .clone()
                .or_else(|| base.authn_header.clone()),
            prefix: add.prefix.clone().or_else(|| base.prefix.clone()),
            remote_user_claim: add
                .remote_user_claim
                .clone()
                .or_else(|| base.remote_user_claim.clone()),
            json_payload_claim: add
                .json_payload_claim
                .clone()
                .or_else(|| base.json_payload_claim.clone()),
            encoding: add.encoding.or(base.encoding),
        }
    }

    pub(crate) fn envvars(&self) -> bool {
        self.envvars.unwrap_or(true)
    }
    pub(crate) fn headers(&self) -> bool {
        self.headers.unwrap_or(true)
    }
    pub(crate) fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }
    pub(crate) fn remote_user_claim(&self) -> &str {
        self.remote_user_claim.as_deref().unwrap_or("sub")
    }
    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding.unwrap_or(Encoding::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let t = TargetPass::default();
        assert!(t.envvars() && t.headers());
        assert_eq!(t.prefix(), "OAUTH2_CLAIM_");
        assert_eq!(t.remote_user_claim(), "sub");
        assert_eq!(t.encoding(), Encoding::None);
        assert_eq!(t.authn_header, None);
    }

    #[test]
    fn lines_set_only_what_they_name() {
        let mut t = TargetPass::default();
        t.apply("prefix=X-C-&headers=off").unwrap();
        t.apply("remote_user_claim=email&authn_header=X-Remote-User&encoding=latin1")
            .unwrap();
        assert_eq!(t.prefix(), "X-C-");
        assert!(!t.headers());
        assert!(t.envvars());
        assert_eq!(t.remote_user_claim(), "email");
        assert_eq!(t.authn_header.as_deref(), Some("X-Remote-User"));
        assert_eq!(t.encoding(), Encoding::Latin1);
    }

    #[test]
    fn merge_is_per_field() {
        let mut parent = TargetPass::default();
        parent.apply("prefix=P_&remote_user_claim=email").unwrap();
        let mut child = TargetPass::default();
        child.apply("prefix=C_").unwrap();
        let m = TargetPass::merge(&parent, &child);
        assert_eq!(m.prefix(), "C_");
        assert_eq!(m.remote_user_claim(), "email");
    }

    #[test]
    fn errors() {
        let mut t = TargetPass::default();
        assert_eq!(t.apply("encoding=utf8").unwrap_err(), ENCODING_ERROR);
        assert!(
            t.apply("headers=maybe")
                .unwrap_err()
                .starts_with("value must be")
        );
        assert!(t.apply("authn_header=Bad Header").is_err());
        assert!(t.apply("authn_header=Content-Length").is_err());
        assert!(t.apply("authn_header=proxy_x").is_err());
        for bad in [
            "prefix=X%20Claim",
            "prefix=claim:",
            "prefix=X\tC",
            "prefix=%C3%A9_",
        ] {
            assert!(t.apply(bad).is_err(), "{bad}");
        }
        for good in ["prefix=", "prefix=X-C-", "prefix=oidc_claim_"] {
            assert!(t.apply(good).is_ok(), "{good}");
        }
        assert_eq!(t.apply("bogus=1").unwrap().len(), 1);
    }
}
