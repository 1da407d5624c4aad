//! The resource identifier of `OAuth2ResourceMetadata` and the metadata URL derived from it
//! (RFC 9728 sections 1.2 and 3.1).

use super::url::{self, Allowed, Schemes, Url, UrlError};

/// The well-known URI suffix of RFC 9728 section 3.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A resource identifier: an https URL without a fragment (RFC 9728 section 1.2). A query is
/// allowed: the RFC says it SHOULD NOT be there but recognises cases that need one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceId {
    url: Url,
    /// The path the metadata is answered on (the well-known string, then the identifier's path).
    metadata_path: String,
    /// The metadata URL: what a client derives from the identifier, sent in challenges.
    metadata_url: String,
}

impl ResourceId {
    pub(crate) fn parse(text: &str) -> Result<ResourceId, UrlError> {
        let url = url::parse(
            text,
            Schemes::HttpsOnly,
            Allowed {
                query: true,
                fragment: false,
            },
        )?;
        // RFC 9728 section 3.1: with a path or query, the terminating slash after the host
        // goes before the well-known string is inserted between host and path/query, so
        // `https://h/` and `https://h` both give `https://h/.well-known/oauth-protected-resource`.
        let path = match url.path() {
            "/" => "",
            path => path,
        };
        let metadata_path = format!("{WELL_KNOWN}{path}");
        let metadata_url = format!("{}{metadata_path}{}", url.origin(), url.query());
        Ok(ResourceId {
            url,
            metadata_path,
            metadata_url,
        })
    }

    /// The identifier exactly as configured: the `resource` member (RFC 9728 section 3.3).
    pub(crate) fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub(crate) fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    #[cfg(test)]
    pub(crate) fn metadata_path(&self) -> &str {
        &self.metadata_path
    }

    /// Whether a request for `path` (as sent, not decoded; the query is not compared) asks for
    /// this identifier's metadata: the derived path, or the same without a trailing slash (some
    /// clients also drop a slash at the end of a longer path before inserting the string).
    pub(crate) fn is_metadata_path(&self, path: &str) -> bool {
        path == self.metadata_path
            || (self.metadata_path.len() > WELL_KNOWN.len()
                && self.metadata_path.strip_suffix('/') == Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(identifier: &str) -> (String, String) {
        let id = ResourceId::parse(identifier).unwrap();
        assert_eq!(id.as_str(), identifier, "kept as written");
        (
            id.metadata_path().to_string(),
            id.metadata_url().to_string(),
        )
    }

    #[test]
    fn the_well_known_string_goes_between_host_and_path() {
        let cases = [
            (
                "https://resource.example.com",
                "/.well-known/oauth-protected-resource",
                "https://resource.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://resource.example.com/",
                "/.well-known/oauth-protected-resource",
                "https://resource.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://resource.example.com/resource1",
                "/.well-known/oauth-protected-resource/resource1",
                "https://resource.example.com/.well-known/oauth-protected-resource/resource1",
            ),
            (
                "https://api.example.com:8443/v1/items/",
                "/.well-known/oauth-protected-resource/v1/items/",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/items/",
            ),
            (
                "https://h/v1?tenant=a",
                "/.well-known/oauth-protected-resource/v1",
                "https://h/.well-known/oauth-protected-resource/v1?tenant=a",
            ),
            (
                "https://h/?tenant=a",
                "/.well-known/oauth-protected-resource",
                "https://h/.well-known/oauth-protected-resource?tenant=a",
            ),
            (
                "https://h?tenant=a",
                "/.well-known/oauth-protected-resource",
                "https://h/.well-known/oauth-protected-resource?tenant=a",
            ),
        ];
        for (identifier, path, url) in cases {
            assert_eq!(
                derived(identifier),
                (path.to_string(), url.to_string()),
                "{identifier}"
            );
        }
    }

    #[test]
    fn requests_match_the_path_with_or_without_a_trailing_slash() {
        let id = ResourceId::parse("https://h/v1/").unwrap();
        assert!(id.is_metadata_path("/.well-known/oauth-protected-resource/v1/"));
        assert!(id.is_metadata_path("/.well-known/oauth-protected-resource/v1"));
        assert!(!id.is_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(!id.is_metadata_path("/.well-known/oauth-protected-resource/v2"));
        let root = ResourceId::parse("https://h/").unwrap();
        assert!(root.is_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(!root.is_metadata_path("/.well-known/oauth-protected-resource/"));
        assert!(!root.is_metadata_path("/.well-known/oauth-protected-resourc"));
        let v1 = ResourceId::parse("https://h/v1").unwrap();
        assert!(!v1.is_metadata_path("/.well-known/oauth-protected-resource/v1/"));
        assert!(!v1.is_metadata_path("/.well-known/oauth-protected-resource"));
    }

    #[test]
    fn refused_identifiers() {
        assert_eq!(
            ResourceId::parse("http://h/v1"),
            Err(UrlError::NotHttps),
            "RFC 9728 section 1.2: https"
        );
        assert_eq!(
            ResourceId::parse("https://h/v1#top"),
            Err(UrlError::Fragment),
            "RFC 9728 section 1.2: no fragment"
        );
        assert_eq!(
            ResourceId::parse("https://h/v1\"\r\nX-Injected: 1"),
            Err(UrlError::Character('"'))
        );
    }
}
