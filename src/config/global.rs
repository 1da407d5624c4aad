//! Process-wide settings: `OAuth2CryptoPassphrase` (the last one read wins, wherever it is written,
//! as in the C module). Cleared before each (re)read of the configuration.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static PASSPHRASE: Mutex<Option<String>> = Mutex::new(None);
/// Set once httpd has read its configuration: later directive lines come from `.htaccess` files,
/// which must not change process-wide settings.
static STARTED: AtomicBool = AtomicBool::new(false);

pub fn reset() {
    *PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    STARTED.store(false, Ordering::SeqCst);
}

pub fn mark_started() {
    STARTED.store(true, Ordering::SeqCst);
}

pub fn started() -> bool {
    STARTED.load(Ordering::SeqCst)
}

pub fn set_crypto_passphrase(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(
            "OAuth2CryptoPassphrase must not be empty: configure a long random string".into(),
        );
    }
    *PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner()) = Some(value.to_string());
    Ok(())
}

/// The passphrase for encrypting shared cache entries, if one is configured.
pub fn crypto_passphrase() -> Option<String> {
    PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_one_wins_and_reset_clears() {
        set_crypto_passphrase("one").unwrap();
        set_crypto_passphrase("two").unwrap();
        assert_eq!(crypto_passphrase().as_deref(), Some("two"));
        assert!(set_crypto_passphrase("").is_err());
        reset();
        assert_eq!(crypto_passphrase(), None);
    }
}
