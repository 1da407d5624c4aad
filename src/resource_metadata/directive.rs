//! `OAuth2ResourceMetadata <resource identifier> [<options>]` -> the configured members of the
//! RFC 9728 document, or the message `apache2 -t` prints (it says what to write instead).
//! Options are query-encoded like those of the other directives; lists are space-separated
//! (`+` or `%20` in the option string, or a quoted argument).

use super::identifier::ResourceId;
use super::url::{self, Allowed, Schemes};
use crate::options::Options;

const DIRECTIVE: &str = "OAuth2ResourceMetadata";

/// The members an administrator writes.
const OPTIONS: &[&str] = &[
    "authorization_servers",
    "scopes_supported",
    "resource_name",
    "resource_documentation",
];

/// Members that follow from the configuration, and where they come from.
const DERIVED: &[(&str, &str)] = &[
    ("resource", "the first argument of OAuth2ResourceMetadata"),
    ("bearer_methods_supported", "the OAuth2AcceptTokenIn lines"),
    (
        "tls_client_certificate_bound_access_tokens",
        "the OAuth2TokenVerify lines with type=mtls",
    ),
    (
        "dpop_signing_alg_values_supported",
        "dpop.algs of the OAuth2TokenVerify lines with type=dpop",
    ),
    (
        "dpop_bound_access_tokens_required",
        "the OAuth2TokenVerify lines with type=dpop",
    ),
];

const MAX_AUTHORIZATION_SERVERS: usize = 16;
const MAX_SCOPES: usize = 256;
const MAX_SCOPE_LEN: usize = 256;
const MAX_NAME_CHARS: usize = 256;

/// One `OAuth2ResourceMetadata` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub(crate) resource: ResourceId,
    /// Issuer identifiers (RFC 8414 section 2).
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) resource_name: Option<String>,
    pub(crate) resource_documentation: Option<String>,
}

pub(crate) fn parse(identifier: &str, options: Option<&str>) -> Result<Directive, String> {
    let resource = ResourceId::parse(identifier).map_err(|e| {
        format!("{DIRECTIVE}: the resource identifier \"{identifier}\" {e} (RFC 9728 section 1.2)")
    })?;
    let options = Options::parse(options.unwrap_or(""));
    if let Some(name) = options.unknown(OPTIONS).next() {
        return Err(match DERIVED.iter().find(|(member, _)| *member == name) {
            Some((_, from)) => {
                format!("{DIRECTIVE}: {name} is derived from {from}; leave it out of the options")
            }
            None => format!(
                "{DIRECTIVE}: unknown option \"{name}\": the options are {} (names are case-sensitive)",
                OPTIONS.join(", ")
            ),
        });
    }
    for name in OPTIONS {
        if options.get(name).is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "{DIRECTIVE}: {name}= is empty: give a value or leave the option out"
            ));
        }
    }
    Ok(Directive {
        resource,
        authorization_servers: authorization_servers(options.get("authorization_servers"))?,
        scopes_supported: scopes(options.get("scopes_supported"))?,
        resource_name: options.get("resource_name").map(name).transpose()?,
        resource_documentation: options
            .get("resource_documentation")
            .map(documentation)
            .transpose()?,
    })
}

/// Issuer identifiers: https URLs without query or fragment (RFC 8414 section 2), each once.
fn authorization_servers(value: Option<&str>) -> Result<Vec<String>, String> {
    let mut servers: Vec<String> = Vec::new();
    for issuer in value.unwrap_or("").split_ascii_whitespace() {
        url::parse(
            issuer,
            Schemes::HttpsOnly,
            Allowed {
                query: false,
                fragment: false,
            },
        )
        .map_err(|e| {
            format!(
                "{DIRECTIVE}: authorization_servers: \"{issuer}\" {e}; name each authorization server by its issuer identifier, separated by spaces"
            )
        })?;
        if servers.iter().any(|s| s == issuer) {
            return Err(format!(
                "{DIRECTIVE}: authorization_servers: \"{issuer}\" is listed twice: name it once"
            ));
        }
        servers.push(issuer.to_string());
    }
    if servers.len() > MAX_AUTHORIZATION_SERVERS {
        return Err(format!(
            "{DIRECTIVE}: authorization_servers: {} are more than the {MAX_AUTHORIZATION_SERVERS} allowed: name the ones that issue tokens for this resource",
            servers.len()
        ));
    }
    Ok(servers)
}

/// Scope tokens of RFC 6749 section 3.3, each once.
fn scopes(value: Option<&str>) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in value.unwrap_or("").split_ascii_whitespace() {
        if scope.len() > MAX_SCOPE_LEN {
            return Err(format!(
                "{DIRECTIVE}: scopes_supported: a scope of {} bytes is longer than the {MAX_SCOPE_LEN} allowed",
                scope.len()
            ));
        }
        if let Some(c) = scope
            .chars()
            .find(|c| !c.is_ascii_graphic() || *c == '"' || *c == '\\')
        {
            return Err(format!(
                "{DIRECTIVE}: scopes_supported: \"{scope}\" contains {c:?}, which a scope cannot contain (RFC 6749 section 3.3): separate scopes with spaces, each of printable ASCII characters other than the double quote and the backslash"
            ));
        }
        if scopes.iter().any(|s| s == scope) {
            return Err(format!(
                "{DIRECTIVE}: scopes_supported: \"{scope}\" is listed twice: name it once"
            ));
        }
        scopes.push(scope.to_string());
    }
    if scopes.len() > MAX_SCOPES {
        return Err(format!(
            "{DIRECTIVE}: scopes_supported: {} scopes are more than the {MAX_SCOPES} allowed",
            scopes.len()
        ));
    }
    Ok(scopes)
}

/// A human-readable name: any text without control characters, bounded.
fn name(value: &str) -> Result<String, String> {
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{DIRECTIVE}: resource_name must not contain control characters (line breaks, tabs): write it on one line"
        ));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "{DIRECTIVE}: resource_name is longer than {MAX_NAME_CHARS} characters: shorten it"
        ));
    }
    Ok(value.to_string())
}

/// The URL of a page about the resource (RFC 9728 section 2).
fn documentation(value: &str) -> Result<String, String> {
    url::parse(
        value,
        Schemes::HttpOrHttps,
        Allowed {
            query: true,
            fragment: true,
        },
    )
    .map_err(|e| {
        format!(
            "{DIRECTIVE}: resource_documentation \"{value}\" {e} (an & in its query is written %26 in the options)"
        )
    })?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(identifier: &str, options: Option<&str>) -> String {
        match parse(identifier, options) {
            Ok(d) => panic!("accepted {identifier} {options:?}: {d:?}"),
            Err(e) => {
                assert!(e.starts_with("OAuth2ResourceMetadata: "), "{e}");
                e
            }
        }
    }

    #[test]
    fn every_member_is_read() {
        let d = parse(
            "https://api.example.com/v1",
            Some(
                "authorization_servers=https://as.example.com+https://as2.example.com/tenant&scopes_supported=read%20write+admin:all&resource_name=Example+API+%C3%A9&resource_documentation=https://docs.example.com/api%3Fv%3D1%26lang%3Den",
            ),
        )
        .unwrap();
        assert_eq!(d.resource.as_str(), "https://api.example.com/v1");
        assert_eq!(
            d.authorization_servers,
            ["https://as.example.com", "https://as2.example.com/tenant"]
        );
        assert_eq!(d.scopes_supported, ["read", "write", "admin:all"]);
        assert_eq!(d.resource_name.as_deref(), Some("Example API \u{e9}"));
        assert_eq!(
            d.resource_documentation.as_deref(),
            Some("https://docs.example.com/api?v=1&lang=en")
        );
        let bare = parse("https://h", None).unwrap();
        assert!(bare.authorization_servers.is_empty() && bare.scopes_supported.is_empty());
        assert_eq!(
            (bare.resource_name, bare.resource_documentation),
            (None, None)
        );
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("http://h/v1", None, "must be an https:// URL"),
            ("https://h/v1#x", None, "must not contain a fragment"),
            ("https://h/v 1", None, "percent-encode"),
            ("https://u@h/", None, "user information"),
            ("https://h", Some("bogus=1"), "unknown option \"bogus\""),
            ("https://h", Some("Resource_Name=x"), "unknown option"),
            (
                "https://h",
                Some("bearer_methods_supported=header"),
                "derived from the OAuth2AcceptTokenIn lines",
            ),
            ("https://h", Some("resource=https://h"), "first argument"),
            (
                "https://h",
                Some("dpop_signing_alg_values_supported=ES256"),
                "dpop.algs",
            ),
            ("https://h", Some("scopes_supported="), "is empty"),
            ("https://h", Some("authorization_servers=+"), "is empty"),
            (
                "https://h",
                Some("authorization_servers=http://as"),
                "must be an https:// URL",
            ),
            (
                "https://h",
                Some("authorization_servers=https://as/?x=1"),
                "must not contain a query",
            ),
            (
                "https://h",
                Some("authorization_servers=https://as/#x"),
                "must not contain a fragment",
            ),
            (
                "https://h",
                Some("authorization_servers=https://as+https://as"),
                "listed twice",
            ),
            ("https://h", Some("scopes_supported=a+a"), "listed twice"),
            (
                "https://h",
                Some("scopes_supported=a%22b"),
                "RFC 6749 section 3.3",
            ),
            (
                "https://h",
                Some("scopes_supported=a%5Cb"),
                "RFC 6749 section 3.3",
            ),
            (
                "https://h",
                Some("scopes_supported=caf%C3%A9"),
                "RFC 6749 section 3.3",
            ),
            (
                "https://h",
                Some("resource_name=a%0D%0Ab"),
                "control characters",
            ),
            (
                "https://h",
                Some("resource_documentation=javascript:alert(1)"),
                "https:// or http:// URL",
            ),
        ];
        for (identifier, options, needle) in cases {
            let e = err(identifier, *options);
            assert!(e.contains(needle), "{identifier} {options:?}: {e}");
        }
    }

    #[test]
    fn lists_and_names_are_bounded() {
        let servers: Vec<String> = (0..=MAX_AUTHORIZATION_SERVERS)
            .map(|i| format!("https://as{i}.example.com"))
            .collect();
        let e = err(
            "https://h",
            Some(&format!("authorization_servers={}", servers.join("+"))),
        );
        assert!(e.contains("more than the 16 allowed"), "{e}");
        let e = err(
            "https://h",
            Some(&format!(
                "scopes_supported={}",
                "s".repeat(MAX_SCOPE_LEN + 1)
            )),
        );
        assert!(e.contains("longer than"), "{e}");
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        let e = err(
            "https://h",
            Some(&format!("scopes_supported={}", many.join("+"))),
        );
        assert!(e.contains("more than the 256 allowed"), "{e}");
        let e = err(
            "https://h",
            Some(&format!("resource_name={}", "n".repeat(MAX_NAME_CHARS + 1))),
        );
        assert!(e.contains("shorten it"), "{e}");
    }
}
