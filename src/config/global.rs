//! Process-wide settings: `OAuth2CryptoPassphrase` (the last one read wins, wherever it is written,
//! as in the C module). Cleared before each (re)read of the configuration.

use std::sync::Mutex;

static PASSPHRASE: Mutex<Option<String>> = Mutex::new(None);

pub fn reset() {
    *PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
