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
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use std::fs;
use std::path::{Path, PathBuf};

/// The organisation in the names of the harness's certificates.
const ORG: &str = "mod_oauth2 tests";

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

fn x509_name(org: &str, cn: &str) -> openssl::x509::X509Name {
    let mut nb = X509NameBuilder::new().unwrap();
    nb.append_entry_by_text("O", org).unwrap();
    nb.append_entry_by_text("CN", cn).unwrap();
    nb.build()
}

/// A certificate for `O=<org>, CN=<cn>` and `key`, valid from an hour ago for 30 days, with the
/// extensions `ext` adds; issued by `issuer` (its certificate and key), else self-signed.
pub(super) fn build_cert(
    org: &str,
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ext: impl FnOnce(&mut X509Builder),
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&x509_name(org, cn)).unwrap();
    match issuer {
        Some((i, _)) => b.set_issuer_name(i.subject_name()).unwrap(),
        None => b.set_issuer_name(&x509_name(org, cn)).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now() - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    ext(&mut b);
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// The extensions of a CA certificate: a critical CA basic constraint, certificate and CRL
/// signing, a subject key identifier.
pub(super) fn add_ca_extensions(b: &mut X509Builder) {
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
}

/// The extensions of a certificate issued by the CA `ca`: not a CA, a critical digital signature
/// key usage, the extended key usage `eku`, the subject alternative names `san`, the CA's key
/// identifier.
pub(super) fn add_issued_extensions(
    b: &mut X509Builder,
    ca: &X509,
    eku: &mut ExtendedKeyUsage,
    san: &mut SubjectAlternativeName,
) {
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
    b.append_extension(eku.build().unwrap()).unwrap();
    let san = san.build(&b.x509v3_context(Some(ca), None)).unwrap();
    b.append_extension(san).unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(ca), None))
        .unwrap();
    b.append_extension(aki).unwrap();
}

/// A self-signed client certificate (extended key usage `clientAuth`) for `O=<org>, CN=<cn>`,
/// and its new key.
pub(super) fn self_signed_client(org: &str, cn: &str) -> (X509, PKey<Private>) {
    let key = ec_key();
    let cert = build_cert(org, cn, &key, None, |b| {
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
            .unwrap();
    });
    (cert, key)
}

/// base64url-no-pad(SHA-256(DER)) of a certificate: the RFC 8705 `x5t#S256` value.
pub(crate) fn x5t_s256(cert: &X509) -> String {
    b64url(&cert.digest(MessageDigest::sha256()).unwrap())
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap();
        let ca_key = ec_key();
        let ca = build_cert(ORG, "mod_oauth2 test CA", &ca_key, None, add_ca_extensions);
        let srv_key = ec_key();
        let srv = build_cert(ORG, "localhost", &srv_key, Some((&ca, &ca_key)), |b| {
            add_issued_extensions(
                b,
                &ca,
                ExtendedKeyUsage::new().server_auth(),
                SubjectAlternativeName::new()
                    .dns("localhost")
                    .ip("127.0.0.1"),
            );
        });
        let (a, a_key) = self_signed_client(ORG, "client-a");
        let (bc, b_key) = self_signed_client(ORG, "client-b");

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
