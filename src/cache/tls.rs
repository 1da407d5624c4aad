//! TLS for the Redis client (`OAuth2Cache redis ...&tls=on`): the options, the client context
//! built from them (trust anchors, optional client certificate) and the handshake on a connected
//! socket. The context is built when the configuration is read (so `apache2 -t` reports bad files)
//! and again when the cache is opened before httpd forks (key files readable by root only work).

use openssl::pkey::PKey;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::options::Options;
use crate::options::flag::parse_switch;

/// PEM files named by the options are configuration, not data; this only bounds mistakes.
const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

/// The TLS options of one `OAuth2Cache redis` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// `ssl_verify`: verify the server's certificate chain and that it names `host` (default on).
    pub(crate) verify: bool,
    /// `ca_file`: trust anchors (PEM) instead of the system store.
    pub(crate) ca_file: Option<PathBuf>,
    /// `cert` and `key`: a client certificate (chain) and its private key, PEM.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

/// The option names read here.
pub(crate) const OPTIONS: &[&str] = &["tls", "ssl_verify", "ca_file", "cert", "key"];

impl TlsOptions {
    /// `tls`, `ssl_verify`, `ca_file`, `cert`, `key`; `None` when `tls` is off. The files are
    /// loaded once here, so a missing or bad file fails the configuration with its name.
    pub(crate) fn parse(o: &Options) -> Result<Option<TlsOptions>, String> {
        let switch = |name: &str, default: bool| match o.get(name) {
            None => Ok(default),
            Some(v) => parse_switch(v).ok_or_else(|| {
                format!(
                    "OAuth2Cache redis: {name}={v} is not a switch: write {name}=on or {name}=off"
                )
            }),
        };
        let path = |name: &str| o.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let tls = switch("tls", false)?;
        let verify = switch("ssl_verify", true)?;
        let (ca_file, cert, key) = (path("ca_file"), path("cert"), path("key"));
        if !tls {
            if let Some(name) = ["ssl_verify", "ca_file", "cert", "key"]
                .into_iter()
                .find(|n| o.get(n).is_some())
            {
                return Err(format!(
                    "OAuth2Cache redis: {name}= is a TLS option but TLS is off: add tls=on (or remove {name}=)"
                ));
            }
            return Ok(None);
        }
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err("OAuth2Cache redis: cert= needs key=: add key=<PEM private key file of the client certificate>".into());
            }
            (None, Some(_)) => {
                return Err(
                    "OAuth2Cache redis: key= needs cert=: add cert=<PEM client certificate file>"
                        .into(),
                );
            }
        };
        let options = TlsOptions {
            verify,
            ca_file,
            client,
        };
        options.client_context()?;
        Ok(Some(options))
    }

    /// The client context: TLS 1.2 or newer, these trust anchors, this client certificate.
    pub(crate) fn client_context(&self) -> Result<TlsClient, String> {
        let fail =
            |what: &str, e: openssl::error::ErrorStack| format!("OAuth2Cache redis: {what}: {e}");
        let mut b =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail("TLS context", e))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| fail("TLS context", e))?;
        if let Some(ca) = &self.ca_file {
            // Replaces the system store, as `<prefix>.ca_file` does for outgoing HTTP.
            let certs = X509::stack_from_pem(&read_pem(ca, "ca_file")?).map_err(|e| {
                format!(
                    "OAuth2Cache redis: ca_file={}: not PEM certificates: {e}",
                    ca.display()
                )
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "OAuth2Cache redis: ca_file={}: contains no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                    ca.display()
                ));
            }
            let mut store = X509StoreBuilder::new().map_err(|e| fail("ca_file", e))?;
            for c in certs {
                store.add_cert(c).map_err(|e| fail("ca_file", e))?;
            }
            b.set_cert_store(store.build());
        }
        if let Some((cert, key)) = &self.client {
            let mut chain = X509::stack_from_pem(&read_pem(cert, "cert")?)
                .map_err(|e| {
                    format!(
                        "OAuth2Cache redis: cert={}: not a PEM certificate: {e}",
                        cert.display()
                    )
                })?
                .into_iter();
            let leaf = chain.next().ok_or_else(|| {
                format!(
                    "OAuth2Cache redis: cert={}: contains no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                    cert.display()
                )
            })?;
            b.set_certificate(&leaf).map_err(|e| fail("cert", e))?;
            for extra in chain {
                b.add_extra_chain_cert(extra).map_err(|e| fail("cert", e))?;
            }
            let pkey = private_key(&read_pem(key, "key")?).map_err(|_| {
                format!(
                    "OAuth2Cache redis: key={}: not an unencrypted PEM private key",
                    key.display()
                )
            })?;
            let mismatch = |_| {
                format!(
                    "OAuth2Cache redis: key={} is not the private key of cert={}",
                    key.display(),
                    cert.display()
                )
            };
            b.set_private_key(&pkey).map_err(mismatch)?;
            b.check_private_key().map_err(mismatch)?;
        }
        b.set_verify(if self.verify {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        Ok(TlsClient {
            connector: b.build(),
            verify: self.verify,
        })
    }
}

/// An unencrypted PEM private key. The callback answers an encrypted one with an empty pass
/// phrase: without it OpenSSL would ask for one on the terminal, and `apache2 -t` or a start from
/// a shell would wait there.
fn private_key(pem: &[u8]) -> Result<PKey<openssl::pkey::Private>, openssl::error::ErrorStack> {
    PKey::private_key_from_pem_callback(pem, |_| Ok(0))
}

fn read_pem(path: &Path, option: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: &dyn std::fmt::Display| {
        format!(
            "OAuth2Cache redis: {option}={}: cannot read this file: {e}",
            path.display()
        )
    };
    let file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let mut data = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| cannot(&e))?;
    if data.len() as u64 > MAX_PEM_FILE {
        return Err(cannot(&"larger than 4 MiB"));
    }
    Ok(data)
}

/// A client context ready for handshakes; shared by the connections of one cache.
pub(crate) struct TlsClient {
    connector: SslConnector,
    verify: bool,
}

impl TlsClient {
    /// The client side of a handshake on `stream`: SNI for a host name (not for an IP address),
    /// and, when verifying, the certificate must name `host` (DNS name or IP address).
    pub(crate) fn handshake<S: Read + Write>(
        &self,
        host: &str,
        stream: S,
    ) -> io::Result<SslStream<S>> {
        let config = self
            .connector
            .configure()
            .map_err(io::Error::other)?
            .verify_hostname(self.verify);
        match config.connect(host, stream) {
            Ok(s) => Ok(s),
            Err(HandshakeError::SetupFailure(e)) => {
                Err(io::Error::other(format!("TLS setup failed: {e}")))
            }
            // A blocking socket that "would block" ran out of time (its timeout is the deadline).
            Err(HandshakeError::WouldBlock(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
            Err(HandshakeError::Failure(mid)) => {
                let verify = mid.ssl().verify_result();
                let e = mid.error();
                if let Some(io) = e.io_error().filter(|io| {
                    matches!(
                        io.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    )
                }) {
                    return Err(io::Error::new(io.kind(), "TLS handshake timed out"));
                }
                if self.verify && verify.as_raw() != 0 {
                    return Err(io::Error::other(format!(
                        "TLS handshake failed: server certificate not accepted: {}",
                        verify.error_string()
                    )));
                }
                Err(io::Error::other(format!("TLS handshake failed: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<TlsOptions>, String> {
        TlsOptions::parse(&Options::parse(text))
    }

    #[test]
    fn off_by_default_and_tls_options_need_tls() {
        assert_eq!(parse("host=x"), Ok(None));
        assert_eq!(parse("tls=off"), Ok(None));
        for opt in ["ssl_verify=off", "ca_file=/x", "cert=/c", "key=/k"] {
            let e = parse(opt).unwrap_err();
            assert!(e.contains("add tls=on"), "{opt}: {e}");
        }
    }

    #[test]
    fn switches_are_checked() {
        let on = parse("tls=on").unwrap().unwrap();
        assert!(on.verify);
        assert_eq!(on.ca_file, None);
        assert_eq!(on.client, None);
        assert!(!parse("tls=yes&ssl_verify=false").unwrap().unwrap().verify);
        for bad in ["tls=maybe", "tls=on&ssl_verify=ture", "tls="] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("is not a switch"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_encrypted_key_is_refused_without_asking_for_a_pass_phrase() {
        // OpenSSL's default pass-phrase callback reads from the terminal: `apache2 -t` or a start
        // from a shell would wait there for input (run this test under `script` to see it).
        let key = openssl::ec::EcKey::generate(
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        let key = PKey::from_ec_key(key).unwrap();
        let pem = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .unwrap();
        assert!(private_key(&pem).is_err());
        let plain = key.private_key_to_pem_pkcs8().unwrap();
        assert!(private_key(&plain).unwrap().public_eq(&key));
    }

    #[test]
    fn files_are_checked_when_read() {
        let not_pem = std::env::temp_dir().join(format!("oauth2-tls-test-{}", std::process::id()));
        std::fs::write(&not_pem, "not a PEM file\n").unwrap();
        let f = not_pem.display();
        let e = parse(&format!("tls=on&cert={f}")).unwrap_err();
        assert!(e.contains("cert= needs key="), "{e}");
        let e = parse(&format!("tls=on&key={f}")).unwrap_err();
        assert!(e.contains("key= needs cert="), "{e}");
        let e = parse("tls=on&ca_file=/nonexistent/ca.pem").unwrap_err();
        assert!(
            e.contains("ca_file=/nonexistent/ca.pem: cannot read this file"),
            "{e}"
        );
        let e = parse(&format!("tls=on&ca_file={f}")).unwrap_err();
        assert!(e.contains("contains no PEM certificate"), "{e}");
        let e = parse(&format!("tls=on&cert={f}&key={f}")).unwrap_err();
        assert!(e.contains("contains no PEM certificate"), "{e}");
        let _ = std::fs::remove_file(&not_pem);
    }
}
