//! `OAuth2Cache <type> [<options>]` -> a validated cache specification. The types, options and
//! defaults are those of the C module, documented in `apache-conf/oauth2.conf` (`OAuth2Cache`);
//! where we differ, `docs/compatibility.md` says so.

use openssl::hash::MessageDigest;
use std::path::PathBuf;
use std::time::Duration;

use super::tls::{self, TlsOptions};
use crate::options::{Options, parse_number};

pub(crate) const UNKNOWN_TYPE: &str = "internal error: oauth2_cache_init returned null";

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    Shm {
        max_key_size: usize,
        max_val_size: usize,
        max_entries: usize,
    },
    File {
        dir: PathBuf,
        clean_interval: Duration,
    },
    Memcache {
        config_string: String,
    },
    Redis {
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        /// `tls=on` and its options; `None` for plain TCP.
        tls: Option<TlsOptions>,
    },
}

impl std::fmt::Debug for Backend {
    // By hand: a Redis password must not reach a log line or a test's failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Shm {
                max_key_size,
                max_val_size,
                max_entries,
            } => f
                .debug_struct("Shm")
                .field("max_key_size", max_key_size)
                .field("max_val_size", max_val_size)
                .field("max_entries", max_entries)
                .finish(),
            Backend::File {
                dir,
                clean_interval,
            } => f
                .debug_struct("File")
                .field("dir", dir)
                .field("clean_interval", clean_interval)
                .finish(),
            Backend::Memcache { config_string } => f
                .debug_struct("Memcache")
                .field("config_string", config_string)
                .finish(),
            Backend::Redis {
                host,
                port,
                username,
                password,
                tls,
            } => f
                .debug_struct("Redis")
                .field("host", host)
                .field("port", port)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "(set)"))
                .field("tls", tls)
                .finish(),
        }
    }
}

impl Backend {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Shm { .. } => "shm",
            Backend::File { .. } => "file",
            Backend::Memcache { .. } => "memcache",
            Backend::Redis { .. } => "redis",
        }
    }
}

#[derive(Clone)]
pub(crate) struct CacheSpec {
    pub(crate) name: Option<String>,
    pub(crate) backend: Backend,
    /// `key_hash_algo`: digest over the (already namespaced) key; `none` keeps it as it is.
    pub(crate) key_hash: Option<MessageDigest>,
    /// `encrypt`: values sealed with `OAuth2CryptoPassphrase` (default: on for file, memcache, redis).
    pub(crate) encrypt: bool,
    pub(crate) passphrase_hash: Option<MessageDigest>,
}

impl std::fmt::Debug for CacheSpec {
    // MessageDigest has no Debug; the backend and name say what matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CacheSpec({:?}, {:?}, encrypt={})",
            self.name, self.backend, self.encrypt
        )
    }
}

const KNOWN: &[&str] = &[
    "name",
    "key_hash_algo",
    "encrypt",
    "passphrase_hash_algo",
    "max_key_size",
    "max_val_size",
    "max_entries",
    "dir",
    "clean_interval",
    "config_string",
    "host",
    "port",
    "username",
    "password",
    "passphrase",
];

/// Parses one line; returns the spec and warnings for the error log.
pub(crate) fn parse(kind: &str, options: Option<&str>) -> Result<(CacheSpec, Vec<String>), String> {
    let o = Options::parse(options.unwrap_or(""));
    let size = |name: &str, default: i64, min: i64, max: i64| -> Result<usize, String> {
        let v = o.get(name).map_or(default, parse_number);
        if v < min || v > max {
            return Err(format!(
                "OAuth2Cache {kind}: {name}={v} is out of range ({min}..{max})"
            ));
        }
        usize::try_from(v).map_err(|_| format!("OAuth2Cache {kind}: {name} is out of range"))
    };
    let backend = match kind {
        "shm" => {
            // Rounded up as the C module does ((n/64+1)*64): the default 64 gives 128, room for
            // the 64 hex characters of a SHA-256 key.
            let max_key_size = (size("max_key_size", 64, 16, 1024)? / 64 + 1) * 64;
            let max_val_size = size("max_val_size", 8192, 16, 1024 * 1024)?;
            let max_entries = size("max_entries", 1000, 1, 10_000_000)?;
            // Now, not first at start (where the cache would be left out, with a log line).
            super::shm::check_sizes(max_key_size, max_val_size, max_entries).map_err(|e| {
                let e = e.to_string();
                let e = e.trim_start_matches("shm cache: ");
                format!("OAuth2Cache shm: {e}: lower max_entries or max_val_size")
            })?;
            Backend::Shm {
                max_key_size,
                max_val_size,
                max_entries,
            }
        }
        "file" => Backend::File {
            dir: PathBuf::from(o.get("dir").unwrap_or("/tmp")),
            clean_interval: Duration::from_secs(size("clean_interval", 60, 1, 86_400 * 365)? as u64),
        },
        "memcache" => {
            let config_string = o.get("config_string").unwrap_or("--SERVER=localhost");
            // Read now, not first when the cache opens at start (where a mistake would only be
            // logged and the server would run without the cache).
            super::memcache::parse_config(config_string).map_err(|e| {
                let e = e.to_string();
                let e = e.trim_start_matches("memcache: ");
                format!(
                    "OAuth2Cache memcache: config_string={config_string}: {e}: write \
                     config_string=--SERVER=host:port (several separated by spaces, as %20)"
                )
            })?;
            Backend::Memcache {
                config_string: config_string.to_string(),
            }
        }
        "redis" => Backend::Redis {
            host: o.get("host").unwrap_or("localhost").to_string(),
            port: u16::try_from(size("port", 6379, 1, 65_535)?).unwrap_or(6379),
            username: o
                .get("username")
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            password: o
                .get("password")
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            tls: TlsOptions::parse(&o)?,
        },
        _ => {
            return Err(format!(
                "{UNKNOWN_TYPE} (OAuth2Cache type \"{kind}\" is unknown: use shm, file, memcache or redis)"
            ));
        }
    };
    let digest = |name: &str, default: &str| -> Result<Option<MessageDigest>, String> {
        match o.get(name).unwrap_or(default) {
            "none" => Ok(None),
            algo => MessageDigest::from_name(algo)
                .map(Some)
                .ok_or_else(|| format!("OAuth2Cache {kind}: {name}={algo} is not a digest OpenSSL knows (e.g. sha256, or none)")),
        }
    };
    let encrypt = match o.get("encrypt") {
        // The C module reads only "true" as true, so a typo meant "off": values a cache server
        // could then forge. A word that is neither on nor off is refused instead.
        Some(v) => crate::options::flag::parse_switch(v).ok_or_else(|| {
            format!("OAuth2Cache {kind}: encrypt={v} is neither on nor off: write encrypt=true or encrypt=false")
        })?,
        None => !matches!(backend, Backend::Shm { .. }),
    };
    let spec = CacheSpec {
        name: o.get("name").filter(|n| !n.is_empty()).map(str::to_string),
        key_hash: digest("key_hash_algo", "sha256")?,
        encrypt,
        passphrase_hash: digest("passphrase_hash_algo", "sha256")?,
        backend,
    };
    if kind != "redis" && o.get("tls").is_some() {
        return Err(format!(
            "OAuth2Cache {kind}: tls= is supported by the redis cache only: remove it"
        ));
    }
    let known: Vec<&str> = match kind {
        "redis" => KNOWN.iter().chain(tls::OPTIONS).copied().collect(),
        _ => KNOWN.to_vec(),
    };
    let mut warnings: Vec<String> = o
        .unknown(&known)
        .map(|n| format!("OAuth2Cache {kind}: unknown option \"{n}\" is ignored (options are query encoded: name=value&name2=value2)"))
        .collect();
    if o.get("passphrase").is_some() {
        warnings.push(format!("OAuth2Cache {kind}: the passphrase option is not used; set OAuth2CryptoPassphrase instead"));
    }
    warnings.extend(shm_fit_warnings(&spec));
    if !spec.encrypt && !matches!(spec.backend, Backend::Shm { .. }) {
        // Allowed when written out (a trusted private network), but never without a word.
        warnings.push(format!("OAuth2Cache {kind}: encrypt=false: the values are not authenticated, so whoever can write to this cache (its server, anyone on the path to it, for file another local user of the directory) can make tokens accepted; leave encrypt at its default (true) unless that is ruled out"));
    }
    Ok((spec, warnings))
}

/// shm sizes that no entry fits: accepted as the C module does (each write then fails with a log
/// line), but said at `apache2 -t`, since with DPoP every proof would be refused.
fn shm_fit_warnings(spec: &CacheSpec) -> Vec<String> {
    let Backend::Shm {
        max_key_size,
        max_val_size,
        ..
    } = spec.backend
    else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    // Keys are stored in hex: the digest's size twice; with `none`, up to 64 bytes of material.
    let key_len = 2 * spec.key_hash.map_or(64, |md| md.size());
    if key_len > max_key_size {
        warnings.push(format!(
            "OAuth2Cache shm: keys are {key_len} characters with this key_hash_algo, more than max_key_size allows ({max_key_size} after rounding up): nothing will be stored, and a DPoP replay store refuses every proof; raise max_key_size to {key_len} or use key_hash_algo=sha256"
        ));
    }
    if spec.encrypt && max_val_size < super::crypto::SEALED_OVERHEAD {
        warnings.push(format!(
            "OAuth2Cache shm: encrypt=true adds {} bytes to every value, more than max_val_size={max_val_size}: nothing will be stored, and a DPoP replay store refuses every proof; raise max_val_size",
            super::crypto::SEALED_OVERHEAD
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_c_module() {
        let (s, w) = parse("shm", None).unwrap();
        assert!(w.is_empty());
        assert!(!s.encrypt);
        assert_eq!(
            s.backend,
            Backend::Shm {
                max_key_size: 128,
                max_val_size: 8192,
                max_entries: 1000
            }
        );
        let (r, _) = parse(
            "redis",
            Some("name=r&host=127.0.0.1&port=7000&password=pw&username=u"),
        )
        .unwrap();
        assert!(r.encrypt);
        assert_eq!(r.name.as_deref(), Some("r"));
        assert_eq!(
            r.backend,
            Backend::Redis {
                host: "127.0.0.1".into(),
                port: 7000,
                username: Some("u".into()),
                password: Some("pw".into()),
                tls: None,
            }
        );
        let (m, w) = parse("memcache", Some("encrypt=false")).unwrap();
        assert!(!m.encrypt);
        assert!(w.iter().any(|w| w.contains("not authenticated")), "{w:?}");
        let (_, w) = parse("shm", Some("encrypt=false")).unwrap();
        assert!(w.is_empty(), "shm never leaves the machine's memory: {w:?}");
        let (_, w) = parse("redis", None).unwrap();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn a_redis_password_is_not_in_debug_output() {
        let (spec, _) = parse("redis", Some("password=s3cr3t-pw&username=u")).unwrap();
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("s3cr3t-pw") && shown.contains("(set)"),
            "{shown}"
        );
    }

    #[test]
    fn shm_sizes_no_entry_fits_are_warned_about() {
        for (options, warned) in [
            (
                "max_key_size=16&key_hash_algo=sha512",
                "keys are 128 characters",
            ),
            (
                "key_hash_algo=none&max_key_size=16",
                "keys are 128 characters",
            ),
            ("encrypt=true&max_val_size=16", "adds 29 bytes"),
        ] {
            let (_, w) = parse("shm", Some(options)).unwrap();
            assert!(w.iter().any(|w| w.contains(warned)), "{options}: {w:?}");
        }
        for fits in [
            "",
            "key_hash_algo=sha512",
            "max_key_size=16",
            "encrypt=true&max_val_size=29",
        ] {
            let (_, w) = parse("shm", Some(fits)).unwrap();
            assert!(w.is_empty(), "{fits}: {w:?}");
        }
    }

    #[test]
    fn errors() {
        assert!(parse("disk", None).unwrap_err().starts_with(UNKNOWN_TYPE));
        assert!(parse("shm", Some("key_hash_algo=nonsense")).is_err());
        assert!(parse("redis", Some("port=99999")).is_err());
        assert!(parse("shm", Some("max_entries=0")).is_err());
    }

    #[test]
    fn redis_tls_options() {
        let (r, w) = parse("redis", Some("host=r.example&tls=on&ssl_verify=off")).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let Backend::Redis { tls: Some(tls), .. } = r.backend else {
            panic!("{:?}", r.backend)
        };
        assert!(!tls.verify);
        assert!(
            parse("memcache", Some("tls=on"))
                .unwrap_err()
                .contains("redis cache only")
        );
        assert!(
            parse("redis", Some("ca_file=/x"))
                .unwrap_err()
                .contains("add tls=on")
        );
    }

    #[test]
    fn an_encrypt_typo_is_an_error_not_encryption_off() {
        for v in ["ture", "enabled", "", "fasle"] {
            let e = parse("redis", Some(&format!("encrypt={v}"))).unwrap_err();
            assert!(
                e.contains("encrypt=true") && e.contains("encrypt=false"),
                "{v}: {e}"
            );
        }
        for (v, on) in [
            ("true", true),
            ("On", true),
            ("1", true),
            ("no", false),
            ("false", false),
        ] {
            assert_eq!(
                parse("file", Some(&format!("encrypt={v}")))
                    .unwrap()
                    .0
                    .encrypt,
                on,
                "{v}"
            );
        }
    }

    #[test]
    fn a_bad_memcache_config_string_fails_the_configuration() {
        for bad in [
            "--SERVER=h:x",
            "localhost",
            "--SERVER=",
            "--SOCKET=/run/m.sock",
        ] {
            let e = parse("memcache", Some(&format!("config_string={bad}"))).unwrap_err();
            assert!(
                e.contains("write config_string=--SERVER=host:port"),
                "{bad}: {e}"
            );
        }
        assert!(parse("memcache", Some("config_string=--SERVER=a:1%20--SERVER=b")).is_ok());
    }

    #[test]
    fn an_shm_cache_too_large_to_map_fails_the_configuration() {
        let e = parse("shm", Some("max_entries=100000&max_val_size=1048576")).unwrap_err();
        assert!(
            e.contains("1 GiB") && e.contains("lower max_entries or max_val_size"),
            "{e}"
        );
        assert!(parse("shm", Some("max_entries=100000&max_val_size=8192")).is_ok());
    }

    #[test]
    fn none_key_hash_and_warnings() {
        let (s, w) = parse("shm", Some("key_hash_algo=none&bogus=1&passphrase=x")).unwrap();
        assert!(s.key_hash.is_none());
        assert_eq!(w.len(), 2);
    }
}
