//! Per-directory configuration: directive text in, typed and validated settings out, and the
//! merge of a parent and a child context (the C module's merge rules; see docs/compatibility.md).

pub(crate) mod server;
pub(crate) mod sources;
pub(crate) mod target_pass;
pub(crate) mod verifier;

use std::sync::Arc;

use crate::verify::Verifier;
use sources::TokenSources;
use target_pass::TargetPass;

/// Everything this module knows about one `<Location>`/`<Directory>`/`.htaccess` context.
/// Immutable once Apache has finished reading the configuration; shared by all threads.
#[derive(Default, Clone)]
pub(crate) struct DirConfig {
    /// `OAuth2TokenVerify` lines of this context, in order; `None` when the context has none.
    pub(crate) verifiers: Option<Arc<Vec<Verifier>>>,
    /// `OAuth2AcceptTokenIn` lines of this context; `None`: inherit, finally the default sources.
    pub(crate) sources: Option<Arc<TokenSources>>,
    /// `OAuth2TargetPass`, option by option.
    pub(crate) target_pass: TargetPass,
}

impl DirConfig {
    /// Appends one verifier (config time only, before any merge shares the list).
    pub(crate) fn add_verifier(&mut self, verifier: Verifier) {
        match &mut self.verifiers {
            None => self.verifiers = Some(Arc::new(vec![verifier])),
            Some(list) => Arc::make_mut(list).push(verifier),
        }
    }

    /// Adds one `OAuth2AcceptTokenIn` line.
    pub(crate) fn add_source(&mut self, method: &str, options: Option<&str>) -> Result<(), String> {
        let next = TokenSources::add(self.sources.as_deref(), method, options)?;
        self.sources = Some(Arc::new(next));
        Ok(())
    }

    /// Child settings win. Verifier lists and token sources are all-or-nothing (not concatenated);
    /// `OAuth2TargetPass` inherits option by option, as in the C module.
    pub(crate) fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        DirConfig {
            verifiers: add.verifiers.clone().or_else(|| base.verifiers.clone()),
            sources: add.sources.clone().or_else(|| base.sources.clone()),
            target_pass: TargetPass::merge(&base.target_pass, &add.target_pass),
        }
    }

    /// Whether a token this configuration accepted would be accepted, and passed on, alike by
    /// `other`: the same `OAuth2TokenVerify` lines (each verifier's identity covers its type,
    /// value and options, as for the result caches) in the same order, and the same
    /// `OAuth2TargetPass`.
    pub(crate) fn verifies_like(&self, other: &DirConfig) -> bool {
        let same_verifiers = match (&self.verifiers, &other.verifiers) {
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len()
                        && a.iter()
                            .zip(b.iter())
                            .all(|(x, y)| x.results.identity == y.results.identity))
            }
            _ => false,
        };
        same_verifiers && self.target_pass == other.target_pass
    }

    /// The `mtls.header` names of this context's verifiers.
    pub(crate) fn cert_headers(&self) -> impl Iterator<Item = &std::ffi::CStr> {
        self.verifiers
            .iter()
            .flat_map(|v| v.iter())
            .filter_map(|v| v.cert_header.as_ref().map(|h| h.name.as_c_str()))
    }

    pub(crate) fn sources(&self) -> &TokenSources {
        static DEFAULT: std::sync::OnceLock<TokenSources> = std::sync::OnceLock::new();
        self.sources
            .as_deref()
            .unwrap_or_else(|| DEFAULT.get_or_init(TokenSources::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_sources_replace_parent_sources_entirely() {
        let mut parent = DirConfig::default();
        parent.add_source("query", Some("name=p")).unwrap();
        let mut child = DirConfig::default();
        child.add_source("cookie", None).unwrap();
        let merged = DirConfig::merge(&parent, &child);
        assert!(merged.sources().accepts(sources::Method::Cookie));
        assert!(!merged.sources().accepts(sources::Method::Query));
        let inherited = DirConfig::merge(&parent, &DirConfig::default());
        assert_eq!(inherited.sources().query_name, "p");
    }

    #[test]
    fn target_pass_merges_per_option() {
        let mut parent = DirConfig::default();
        parent.target_pass.apply("remote_user_claim=email").unwrap();
        let mut child = DirConfig::default();
        child.target_pass.apply("prefix=CHILD_").unwrap();
        let merged = DirConfig::merge(&parent, &child);
        assert_eq!(merged.target_pass.prefix(), "CHILD_");
        assert_eq!(merged.target_pass.remote_user_claim(), "email");
    }
}
