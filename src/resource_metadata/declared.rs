//! What the `OAuth2TokenVerify` and `OAuth2AcceptTokenIn` lines of one server (the main server
//! or a virtual host) declared while httpd read its configuration: the members of the metadata
//! document that follow from the configuration (RFC 9728 section 2).

use crate::config::sources::{Method, TokenSources};
use crate::jose::alg::Alg;
use crate::verify::{Binding, Verifier};

/// The RFC 9728 `bearer_methods_supported` values (RFC 6750 sections 2.1 to 2.3), in that order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BearerMethods {
    /// `Authorization: Bearer`.
    pub(crate) header: bool,
    /// A form-encoded body parameter `access_token`.
    pub(crate) body: bool,
    /// A query parameter `access_token`.
    pub(crate) query: bool,
}

impl BearerMethods {
    /// The methods of `sources` that are the ones RFC 6750 defines: the `Authorization` header
    /// with the `Bearer` scheme, `access_token` in a form body or the query. A header or
    /// parameter of another name, a cookie, an environment variable or Basic have no RFC 9728
    /// name and are not listed.
    pub(crate) fn of(sources: &TokenSources) -> BearerMethods {
        BearerMethods {
            header: sources.accepts(Method::Header)
                && sources
                    .header_name
                    .to_bytes()
                    .eq_ignore_ascii_case(b"Authorization")
                && sources.header_type.eq_ignore_ascii_case("Bearer"),
            body: sources.accepts(Method::Post) && sources.post_name == "access_token",
            query: sources.accepts(Method::Query) && sources.query_name == "access_token",
        }
    }

    pub(crate) fn union(self, other: BearerMethods) -> BearerMethods {
        BearerMethods {
            header: self.header || other.header,
            body: self.body || other.body,
            query: self.query || other.query,
        }
    }

    pub(crate) fn names(self) -> Vec<&'static str> {
        [
            (self.header, "header"),
            (self.body, "body"),
            (self.query, "query"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// The declarations of one server's configuration, summed over its contexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    pub(crate) verifiers: usize,
    pub(crate) dpop_verifiers: usize,
    /// A `type=mtls` verifier (RFC 8705 certificate-bound tokens).
    pub(crate) mtls: bool,
    /// The `dpop.algs` of the `type=dpop` verifiers, first seen first.
    pub(crate) dpop_algs: Vec<Alg>,
    /// The union of the contexts' `OAuth2AcceptTokenIn` lines; `None` when no context has one
    /// (each then takes the tokens where the default looks: the `Authorization: Bearer` header).
    pub(crate) bearer_methods: Option<BearerMethods>,
}

impl Declared {
    pub(crate) fn add_verifier(&mut self, verifier: &Verifier) {
        self.verifiers += 1;
        match verifier.binding {
            Binding::Bearer => {}
            Binding::Mtls(_) => self.mtls = true,
            Binding::Dpop => {
                self.dpop_verifiers += 1;
                for alg in &verifier.dpop.policy.algs {
                    if !self.dpop_algs.contains(alg) {
                        self.dpop_algs.push(*alg);
                    }
                }
            }
        }
    }

    /// One `OAuth2AcceptTokenIn` line was read; `sources` is its context's configuration now.
    pub(crate) fn add_sources(&mut self, sources: &TokenSources) {
        let methods = BearerMethods::of(sources);
        self.bearer_methods = Some(
            self.bearer_methods
                .map_or(methods, |known| known.union(methods)),
        );
    }

    /// This server's declarations with those of `inherited` (the main server's, whose sections
    /// apply in every virtual host).
    pub(crate) fn with(&self, inherited: &Declared) -> Declared {
        let mut all = self.clone();
        all.verifiers += inherited.verifiers;
        all.dpop_verifiers += inherited.dpop_verifiers;
        all.mtls |= inherited.mtls;
        for alg in &inherited.dpop_algs {
            if !all.dpop_algs.contains(alg) {
                all.dpop_algs.push(*alg);
            }
        }
        all.bearer_methods = match (all.bearer_methods, inherited.bearer_methods) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
        all
    }

    /// `bearer_methods_supported`.
    pub(crate) fn bearer_method_names(&self) -> Vec<&'static str> {
        self.bearer_methods
            .unwrap_or_else(|| BearerMethods::of(&TokenSources::default()))
            .names()
    }

    /// `dpop_bound_access_tokens_required`: every verifier is `type=dpop`, so a token without a
    /// DPoP binding is never accepted.
    pub(crate) fn dpop_required(&self) -> bool {
        self.verifiers > 0 && self.dpop_verifiers == self.verifiers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(lines: &[(&str, Option<&str>)]) -> TokenSources {
        let mut s: Option<TokenSources> = None;
        for (method, options) in lines {
            s = Some(TokenSources::add(s.as_ref(), method, *options).unwrap());
        }
        s.unwrap()
    }

    /// `OAuth2AcceptTokenIn` lines (method, options) and the bearer methods they name.
    type Case = (
        &'static [(&'static str, Option<&'static str>)],
        &'static [&'static str],
    );

    #[test]
    fn only_the_rfc_6750_methods_have_names() {
        let cases: &[Case] = &[
            (&[("header", None)], &["header"]),
            (&[("header", Some("type=bearer"))], &["header"]),
            (&[("header", Some("name=authorization"))], &["header"]),
            (&[("header", Some("name=X-Token"))], &[]),
            (&[("header", Some("type="))], &[]),
            (&[("header", Some("type=DPoP"))], &[]),
            (&[("post", None)], &["body"]),
            (&[("post", Some("name=token"))], &[]),
            (&[("query", None)], &["query"]),
            (&[("query", Some("name=at"))], &[]),
            (&[("cookie", None)], &[]),
            (&[("environment", None)], &[]),
            (&[("basic", None)], &[]),
            (
                &[
                    ("query", None),
                    ("cookie", None),
                    ("header", None),
                    ("post", None),
                ],
                &["header", "body", "query"],
            ),
        ];
        for (lines, want) in cases {
            assert_eq!(
                BearerMethods::of(&sources(lines)).names(),
                *want,
                "{lines:?}"
            );
        }
        assert_eq!(
            BearerMethods::of(&TokenSources::default()).names(),
            ["header"]
        );
    }

    #[test]
    fn lines_add_up_and_the_default_applies_without_any() {
        let mut d = Declared::default();
        assert_eq!(d.bearer_method_names(), ["header"], "no line: the default");
        d.add_sources(&sources(&[("query", None)]));
        assert_eq!(d.bearer_method_names(), ["query"]);
        d.add_sources(&sources(&[("post", None)]));
        assert_eq!(d.bearer_method_names(), ["body", "query"]);
        let mut cookie_only = Declared::default();
        cookie_only.add_sources(&sources(&[("cookie", None)]));
        assert!(cookie_only.bearer_method_names().is_empty());
    }

    #[test]
    fn a_virtual_host_adds_the_main_servers_declarations() {
        let mut main = Declared::default();
        main.add_sources(&sources(&[("post", None)]));
        main.verifiers = 1;
        main.mtls = true;
        let vhost = Declared {
            verifiers: 2,
            dpop_verifiers: 2,
            dpop_algs: vec![Alg::ES256],
            ..Declared::default()
        };
        let all = vhost.with(&main);
        assert_eq!(all.verifiers, 3);
        assert!(all.mtls);
        assert!(
            !all.dpop_required(),
            "the main server's verifier is not DPoP"
        );
        assert_eq!(all.bearer_method_names(), ["body"]);
        assert!(vhost.dpop_required());
        assert!(!Declared::default().dpop_required(), "no verifier at all");
    }
}
