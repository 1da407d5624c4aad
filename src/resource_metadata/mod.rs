//! RFC 9728 OAuth 2.0 Protected Resource Metadata: `OAuth2ResourceMetadata` in a server or
//! virtual host publishes a JSON document at the well-known URL derived from its resource
//! identifier, and every challenge of that host names that URL (`resource_metadata`, section
//! 5.1).
//!
//! What the document says about tokens comes from the configuration of the same host, collected
//! while httpd reads it: every `OAuth2TokenVerify` and `OAuth2AcceptTokenIn` line written in
//! that virtual host, in any of its sections, plus those of the main server (whose sections
//! apply in every virtual host). Lines in `.htaccess` files are read per request, after the
//! document is made, and do not count. The directive itself is not inherited by virtual hosts:
//! an identifier names one host.

pub(crate) mod declared;
pub(crate) mod directive;
pub(crate) mod document;
pub(crate) mod identifier;
pub(crate) mod url;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::sources::TokenSources;
use crate::verify::Verifier;
use declared::Declared;
use directive::Directive;

/// One server of the configuration (the main server or a virtual host): the address of its
/// httpd `server_rec`, which is unique and fixed for as long as the configuration reading that
/// made it is in service (this registry lives exactly as long).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HostKey(pub(crate) usize);

/// The server a directive line was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostSite {
    pub(crate) key: HostKey,
    /// Inside `<VirtualHost>`; otherwise the main server.
    pub(crate) is_virtual: bool,
}

/// What a request to a metadata path gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    /// Not a metadata URL of this host: the request goes on as usual.
    NotOurs,
    /// 200 with this JSON document (GET and HEAD).
    Document(&'a [u8]),
    /// 405: the document is read with GET (RFC 9728 section 3.1).
    MethodNotAllowed,
}

/// How long clients and caches may keep the document (`Cache-Control`): it changes only when
/// the configuration is reloaded.
pub(crate) const CACHE_CONTROL: &std::ffi::CStr = c"max-age=3600";

/// Every host's declarations and published metadata, for one configuration reading.
#[derive(Default)]
pub(crate) struct ResourceMetadata {
    hosts: HashMap<HostKey, Host>,
    /// The main server, once a line in it was read.
    main: Option<HostKey>,
    /// Any host publishes: requests elsewhere skip every lookup.
    any: bool,
}

#[derive(Default)]
struct Host {
    is_virtual: bool,
    declared: Declared,
    published: Option<Published>,
}

struct Published {
    directive: Directive,
    /// `file:line` of the directive, for the message about a second one.
    origin: String,
    /// The `resource_metadata` parameter of this host's challenges.
    metadata_url: Arc<str>,
    /// Made by [`ResourceMetadata::finish`], once every line has been read.
    document: Option<Vec<u8>>,
}

impl ResourceMetadata {
    fn host(&mut self, site: HostSite) -> &mut Host {
        if !site.is_virtual {
            self.main = Some(site.key);
        }
        let host = self.hosts.entry(site.key).or_default();
        host.is_virtual = site.is_virtual;
        host
    }

    /// An `OAuth2TokenVerify` line in `site`.
    pub(crate) fn declare_verifier(&mut self, site: HostSite, verifier: &Verifier) {
        self.host(site).declared.add_verifier(verifier);
    }

    /// An `OAuth2AcceptTokenIn` line in `site`; `sources` is its context's configuration now.
    pub(crate) fn declare_sources(&mut self, site: HostSite, sources: &TokenSources) {
        self.host(site).declared.add_sources(sources);
    }

    /// `OAuth2ResourceMetadata` in `site`, written at `origin` (`file:line`); one per server.
    pub(crate) fn publish(
        &mut self,
        site: HostSite,
        directive: Directive,
        origin: &str,
    ) -> Result<(), String> {
        let host = self.host(site);
        if let Some(earlier) = &host.published {
            return Err(format!(
                "OAuth2ResourceMetadata is already set for this {} at {}: write one per server (each <VirtualHost> names its own resource)",
                if site.is_virtual {
                    "virtual host"
                } else {
                    "main server"
                },
                earlier.origin
            ));
        }
        host.published = Some(Published {
            metadata_url: directive.resource.metadata_url().into(),
            directive,
            origin: origin.to_string(),
            document: None,
        });
        self.any = true;
        Ok(())
    }

    /// Makes every document, once the whole configuration has been read (post_config).
    pub(crate) fn finish(&mut self) {
        let inherited = self
            .main
            .and_then(|main| self.hosts.get(&main))
            .map(|main| main.declared.clone())
            .unwrap_or_default();
        for host in self.hosts.values_mut() {
            let declared = if host.is_virtual {
                host.declared.with(&inherited)
            } else {
                host.declared.clone()
            };
            if let Some(published) = &mut host.published {
                published.document = Some(document::render(&published.directive, &declared));
            }
        }
    }

    /// The metadata URL the challenges of `host` carry, if it publishes one.
    pub(crate) fn challenge_url(&self, host: Option<HostKey>) -> Option<Arc<str>> {
        if !self.any {
            return None;
        }
        let published = self.hosts.get(&host?)?.published.as_ref()?;
        Some(published.metadata_url.clone())
    }

    /// What a `method` request for `path` (as sent: not decoded, without the query) served by
    /// `host` gets.
    pub(crate) fn answer(&self, host: HostKey, method: &str, path: &str) -> Answer<'_> {
        if !self.any || !path.starts_with(identifier::WELL_KNOWN) {
            return Answer::NotOurs;
        }
        let Some(published) = self.hosts.get(&host).and_then(|h| h.published.as_ref()) else {
            return Answer::NotOurs;
        };
        let Some(document) = published.document.as_deref() else {
            return Answer::NotOurs;
        };
        if !published.directive.resource.is_metadata_path(path) {
            return Answer::NotOurs;
        }
        match method {
            "GET" | "HEAD" => Answer::Document(document),
            _ => Answer::MethodNotAllowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::registry::CacheRegistry;
    use crate::config::verifier::{self, Origin};

    const MAIN: HostSite = HostSite {
        key: HostKey(1),
        is_virtual: false,
    };
    const API: HostSite = HostSite {
        key: HostKey(2),
        is_virtual: true,
    };
    const OTHER: HostSite = HostSite {
        key: HostKey(3),
        is_virtual: true,
    };
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier(options: &str) -> Verifier {
        let origin = Origin {
            file: "t.conf",
            line: 1,
        };
        verifier::parse(
            "plain",
            SECRET,
            Some(options),
            &origin,
            &mut CacheRegistry::default(),
        )
        .unwrap()
        .verifier
    }

    fn doc(registry: &ResourceMetadata, host: HostSite, path: &str) -> serde_json::Value {
        match registry.answer(host.key, "GET", path) {
            Answer::Document(d) => serde_json::from_slice(d).unwrap(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn a_host_publishes_what_it_and_the_main_server_declare() {
        let mut r = ResourceMetadata::default();
        r.declare_verifier(MAIN, &verifier("type=mtls"));
        r.declare_verifier(API, &verifier("type=dpop&dpop.algs=ES256"));
        r.declare_verifier(OTHER, &verifier("type=dpop&dpop.algs=EdDSA"));
        r.declare_sources(API, &TokenSources::add(None, "query", None).unwrap());
        let d = directive::parse("https://api.example.com/v1", None).unwrap();
        r.publish(API, d, "t.conf:2").unwrap();
        r.finish();
        let path = "/.well-known/oauth-protected-resource/v1";
        let json = doc(&r, API, path);
        assert_eq!(json["resource"], "https://api.example.com/v1");
        assert_eq!(json["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            json["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        assert_eq!(json["dpop_bound_access_tokens_required"], false);
        assert_eq!(
            json["bearer_methods_supported"],
            serde_json::json!(["query"])
        );
        assert_eq!(
            r.challenge_url(Some(API.key)).as_deref(),
            Some("https://api.example.com/.well-known/oauth-protected-resource/v1")
        );
        assert_eq!(r.challenge_url(Some(OTHER.key)), None, "not inherited");
        assert_eq!(r.challenge_url(Some(MAIN.key)), None);
        assert_eq!(r.challenge_url(None), None);
        assert_eq!(r.answer(OTHER.key, "GET", path), Answer::NotOurs);
        assert_eq!(r.answer(API.key, "POST", path), Answer::MethodNotAllowed);
        assert!(matches!(
            r.answer(API.key, "HEAD", path),
            Answer::Document(_)
        ));
        assert_eq!(r.answer(API.key, "get", path), Answer::MethodNotAllowed);
        for not_it in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/v2",
            "/.well-known/oauth-protected-resource/v1/x",
            "/v1",
        ] {
            assert_eq!(
                r.answer(API.key, "GET", not_it),
                Answer::NotOurs,
                "{not_it}"
            );
        }
    }

    #[test]
    fn one_directive_per_server() {
        let mut r = ResourceMetadata::default();
        let d = || directive::parse("https://h/", None).unwrap();
        r.publish(API, d(), "a.conf:3").unwrap();
        let e = r.publish(API, d(), "a.conf:9").unwrap_err();
        assert!(
            e.contains("already set for this virtual host at a.conf:3"),
            "{e}"
        );
        r.publish(MAIN, d(), "a.conf:1").unwrap();
        let e = r.publish(MAIN, d(), "a.conf:2").unwrap_err();
        assert!(e.contains("main server at a.conf:1"), "{e}");
        r.publish(OTHER, d(), "a.conf:12").unwrap();
    }

    #[test]
    fn nothing_is_answered_before_the_documents_are_made() {
        let mut r = ResourceMetadata::default();
        r.publish(API, directive::parse("https://h", None).unwrap(), "t:1")
            .unwrap();
        let path = "/.well-known/oauth-protected-resource";
        assert_eq!(r.answer(API.key, "GET", path), Answer::NotOurs);
        r.finish();
        assert_eq!(
            doc(&r, API, path)["resource"],
            "https://h",
            "the main server had no lines: nothing inherited"
        );
    }
}
