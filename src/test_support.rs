//! Helpers shared by the unit tests of several modules.

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509NameBuilder};

/// A self-signed P-256 client certificate named `cn`, valid from now for a day.
pub(crate) fn self_signed_cert(cn: &str) -> X509 {
    self_signed_cert_and_key(cn).0
}

/// [`self_signed_cert`] with its private key (for a TLS server in a test).
pub(crate) fn self_signed_cert_and_key(cn: &str) -> (X509, PKey<Private>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}

/// A TLS server (a fresh self-signed certificate for 127.0.0.1) on a free loopback port,
/// answering every request with the raw HTTP `response`; returns the port.
pub(crate) fn tls_server(response: String) -> u16 {
    use openssl::ssl::{SslAcceptor, SslMethod};
    use std::io::{Read, Write};
    let (cert, key) = self_signed_cert_and_key("127.0.0.1");
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor.set_certificate(&cert).unwrap();
    let acceptor = acceptor.build();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            if let Ok(mut s) = acceptor.accept(c) {
                let _ = s.read(&mut [0u8; 4096]);
                let _ = s.write_all(response.as_bytes());
                let _ = s.shutdown();
            }
        }
    });
    port
}
