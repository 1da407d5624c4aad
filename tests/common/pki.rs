//! A generated PKI: CA, server certificate for 127.0.0.1/localhost, two self-signed client
//! certificates with their RFC 8705 `x5t#S256` thumbprints.

use super::jwt::b64url;
use super::sys::{now, write_file};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use std::fs;
use std::path::{Path, PathBuf};

/// One of the two self-signed client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientCert {
    A,
    B,
}

/// A generated PKI in a directory: a CA, a server certificate for 127.0.0.1/localhost issued by
/// the CA, and two self-signed client certificates (A and B) with their keys, all PEM files.
#[derive(Clone, Debug)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_a_cert: PathBuf,
    pub(crate) client_a_key: PathBuf,
    pub(crate) client_b_cert: PathBuf,
    pub(crate) client_b_key: PathBuf,
    /// base64url-no-pad(SHA-256(DER)) of client certificate A.
    pub(crate) thumb_a: String,
    /// base64url-no-pad(SHA-256(DER)) of client certificate B.
    pub(crate) thumb_b: String,
}

pub(super) fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn x509_name(cn: &str) -> openssl::x509::X509Name {
    let mut nb = X509NameBuilder::new().unwrap();
    nb.append_entry_by_text("O", "mod_oauth2 tests").unwrap();
    nb.append_entry_by_text("CN", cn).unwrap();
    nb.build()
}

fn cert_builder(
    subject_cn: &str,
    key: &PKey<Private>,
    issuer: Option<&X509>,
) -> openssl::x509::X509Builder {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&x509_name(subject_cn)).unwrap();
    match issuer {
        Some(i) => b.set_issuer_name(i.subject_name()).unwrap(),
        None => b.set_issuer_name(&x509_name(subject_cn)).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now() - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b
}

/// base64url-no-pad(SHA-256(DER)) of a certificate: the RFC 8705 `x5t#S256` value.
pub(crate) fn x5t_s256(cert: &X509) -> String {
    b64url(&cert.digest(MessageDigest::sha256()).unwrap())
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap();
        // CA
        let ca_key = ec_key();
        let mut b = cert_builder("mod_oauth2 test CA", &ca_key, None);
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        let ca = b.build();

        // server
        let srv_key = ec_key();
        let mut b = cert_builder("localhost", &srv_key, Some(&ca));
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(Some(&ca), None))
            .unwrap();
        b.append_extension(san).unwrap();
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&ca), None))
            .unwrap();
        b.append_extension(aki).unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        let srv = b.build();

        // self-signed clients
        let client = |cn: &str| {
            let k = ec_key();
            let mut b = cert_builder(cn, &k, None);
            b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
                .unwrap();
            b.sign(&k, MessageDigest::sha256()).unwrap();
            (b.build(), k)
        };
        let (a, a_key) = client("client-a");
        let (bc, b_key) = client("client-b");

        let p = |n: &str| dir.join(n);
        let pki = Pki {
            ca_cert: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_a_cert: p("client-a.crt"),
            client_a_key: p("client-a.key"),
            client_b_cert: p("client-b.crt"),
            client_b_key: p("client-b.key"),
            thumb_a: x5t_s256(&a),
            thumb_b: x5t_s256(&bc),
        };
        write_file(&pki.ca_cert, &ca.to_pem().unwrap(), 0o644);
        write_file(&pki.server_cert, &srv.to_pem().unwrap(), 0o644);
        write_file(
            &pki.server_key,
            &srv_key.private_key_to_pem_pkcs8().unwrap(),
            0o600,
        );
        write_file(&pki.client_a_cert, &a.to_pem().unwrap(), 0o644);
        write_file(
            &pki.client_a_key,
            &a_key.private_key_to_pem_pkcs8().unwrap(),
            0o600,
        );
        write_file(&pki.client_b_cert, &bc.to_pem().unwrap(), 0o644);
        write_file(
            &pki.client_b_key,
            &b_key.private_key_to_pem_pkcs8().unwrap(),
            0o600,
        );
        assert_ne!(pki.thumb_a, pki.thumb_b);
        assert_eq!(pki.thumb_a.len(), 43);
        pki
    }

    pub(crate) fn thumb(&self, c: ClientCert) -> &str {
        match c {
            ClientCert::A => &self.thumb_a,
            ClientCert::B => &self.thumb_b,
        }
    }

    pub(crate) fn cert_and_key(&self, c: ClientCert) -> (&Path, &Path) {
        match c {
            ClientCert::A => (&self.client_a_cert, &self.client_a_key),
            ClientCert::B => (&self.client_b_cert, &self.client_b_key),
        }
    }
}
