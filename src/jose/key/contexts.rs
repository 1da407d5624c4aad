//! Verification contexts kept between tokens. Setting one up (`EVP_PKEY_CTX_new`, verify init,
//! padding and digest) costs OpenSSL 3 provider lookups and a dozen allocations, a third of an
//! RSA-2048 verification; a set-up context verifies any number of digests with the same
//! parameters (EVP_PKEY_verify(3)), so each key keeps its idle ones.

use std::sync::Mutex;

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;

use crate::jose::alg::Alg;

/// At most one context per worker thread is in use at a time; more idle ones than this are
/// dropped rather than kept.
const MAX_IDLE: usize = 64;

/// The idle contexts of one key, each set up for one algorithm.
#[derive(Default)]
pub(super) struct VerifyContexts {
    idle: Mutex<Vec<(Alg, PkeyCtx<Public>)>>,
}

impl VerifyContexts {
    /// Verifies `signature` over the already hashed `digest` with a context for `alg`: an idle
    /// one, or a new one that `setup` configures after the verify init.
    pub(super) fn verify(
        &self,
        pkey: &PKey<Public>,
        alg: Alg,
        setup: impl FnOnce(&mut PkeyCtx<Public>) -> Result<(), ErrorStack>,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<bool, ErrorStack> {
        let mut ctx = match self.take(alg) {
            Some(ctx) => ctx,
            None => {
                let mut ctx = PkeyCtx::new(pkey)?;
                ctx.verify_init()?;
                setup(&mut ctx)?;
                ctx
            }
        };
        let verified = ctx.verify(digest, signature);
        // Only a context that just verified is known to be in a clean state for the next token.
        if matches!(verified, Ok(true)) {
            self.give_back(alg, ctx);
        }
        verified
    }

    fn take(&self, alg: Alg) -> Option<PkeyCtx<Public>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let at = idle.iter().rposition(|(a, _)| *a == alg)?;
        Some(idle.swap_remove(at).1)
    }

    fn give_back(&self, alg: Alg, ctx: PkeyCtx<Public>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((alg, ctx));
        }
    }

    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }
}
