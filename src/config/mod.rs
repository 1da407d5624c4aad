//! Per-directory configuration: directive text in, typed and validated settings out, and the
//! merge of a parent and a child context (reference 1.7).

pub mod options;
pub mod verifier;

use std::sync::Arc;

use crate::verify::Verifier;

/// Everything this module knows about one `<Location>`/`<Directory>`/`.htaccess` context.
/// Immutable once Apache has finished reading the configuration; shared by all threads.
#[derive(Default, Clone)]
pub struct DirConfig {
    /// `OAuth2TokenVerify` lines of this context, in order; `None` when the context has none.
    pub verifiers: Option<Arc<Vec<Verifier>>>,
}

impl DirConfig {
    /// Appends one verifier (config time only, before any merge shares the list).
    pub fn add_verifier(&mut self, verifier: Verifier) {
        match &mut self.verifiers {
            None => self.verifiers = Some(Arc::new(vec![verifier])),
            Some(list) => Arc::make_mut(list).push(verifier),
        }
    }

    /// Child settings win; verifier lists are all-or-nothing (not concatenated), as in the C module.
    pub fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        DirConfig {
            verifiers: add.verifiers.clone().or_else(|| base.verifiers.clone()),
        }
    }
}
