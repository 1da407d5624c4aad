//! Integration-test harness: a private Apache httpd with mod_ssl and mod_oauth2, a generated PKI,
//! a JWT signer, a curl-based TLS client, a CGI that dumps its environment and a raw-header backend.
//!
//! Everything is bound to 127.0.0.1, every wait is a bounded polling loop, and every process that
//! is started is stopped (also when a test panics).
//!
//! Environment knobs:
//! - `OAUTH2_MODULE`: path of the module to load (default: `target/<profile>/libmod_oauth2.so`,
//!   derived from the test executable; see [`module_path`]). Pointing it at the C module
//!   (`/usr/lib/apache2/modules/mod_oauth2.so` from `libapache2-mod-oauth2`) runs the same tests
//!   against the reference implementation.
//! - `OAUTH2_ALLOW_STALE=1`: use the derived module even when it is older than the sources.
//! - `APACHE2_BIN` (default `/usr/sbin/apache2`), `APACHE2_MODULES` (default
//!   `/usr/lib/apache2/modules`), `CURL_BIN` (default `curl`).
//! - `KEEP_HTTPD_DIR=1`: keep every server directory (config, logs, PKI) after the test; a
//!   directory is always kept when the test panics, and its path is printed.
#![allow(dead_code)]

pub mod remote;
pub mod servers;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as i64
}

/// base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Standard claims for a valid token: `sub`, `iss`, `iat = now`, `exp = now + 300`.
pub fn claims(sub: &str) -> Value {
    let n = now();
    json!({ "sub": sub, "iss": "https://as.example.test", "iat": n, "exp": n + 300 })
}

/// `base` with the members of `extra` added (or replaced), keeping `base`'s order first.
pub fn with(base: Value, extra: Value) -> Value {
    let mut b = base;
    let m = b.as_object_mut().expect("base claims must be an object");
    for (k, v) in extra.as_object().expect("extra claims must be an object") {
        m.insert(k.clone(), v.clone());
    }
    b
}

/// `base` without the named member.
pub fn without(base: Value, name: &str) -> Value {
    let mut b = base;
    b.as_object_mut()
        .expect("claims must be an object")
        .shift_remove(name);
    b
}

/// A token whose signature segment was altered in the middle (so the signed bits change).
pub fn tamper_signature(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let mut sig: Vec<u8> = parts[2].as_bytes().to_vec();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    )
}

/// The signature segment of a compact JWS.
pub fn signature_segment(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

/// Quote a string as one Apache configuration argument (`"` and `\` escaped).
pub fn apache_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn apache_bin() -> String {
    std::env::var("APACHE2_BIN").unwrap_or_else(|_| "/usr/sbin/apache2".into())
}

fn apache_modules_dir() -> String {
    std::env::var("APACHE2_MODULES").unwrap_or_else(|_| "/usr/lib/apache2/modules".into())
}

/// A `LoadModule` line for an Apache module that the harness does not load itself, e.g.
/// `load_module("rewrite_module", "mod_rewrite.so")` (for [`HttpdConfig::server`]).
pub fn load_module(name: &str, file: &str) -> String {
    format!("LoadModule {name} {}/{file}\n", apache_modules_dir())
}

fn curl_bin() -> String {
    std::env::var("CURL_BIN").unwrap_or_else(|_| "curl".into())
}

/// Path of the module under test: `$OAUTH2_MODULE`, else the newer of
/// `target/<profile>/libmod_oauth2.so` (what `cargo build` writes) and
/// `target/<profile>/deps/libmod_oauth2.so` (what `cargo test` writes when the crate is also an
/// rlib), derived from the test executable. Panics with instructions when neither exists, or when
/// the derived module is older than the crate's sources (a stale module would make the tests lie;
/// set `OAUTH2_ALLOW_STALE=1` to skip that check).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("OAUTH2_MODULE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "OAUTH2_MODULE={} does not exist: build the module (`cargo build`) or fix the path",
            p.display()
        );
        return p.canonicalize().unwrap_or(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe
        .parent()
        .expect("test executable has no parent directory");
    let profile = deps.parent().expect("test executable has no grandparent");
    let candidates = [
        profile.join("libmod_oauth2.so"),
        deps.join("libmod_oauth2.so"),
    ];
    let p = candidates
        .iter()
        .filter_map(|c| Some((fs::metadata(c).ok()?.modified().ok()?, c)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| {
            panic!(
                "mod_oauth2 not found at {}: run `cargo build` (or `cargo build --release` for \
                 `cargo test --release`) before the integration tests, or set OAUTH2_MODULE to \
                 the module's path",
                candidates[0].display()
            )
        });
    if std::env::var_os("OAUTH2_ALLOW_STALE").is_none() {
        let built = fs::metadata(&p).and_then(|m| m.modified()).unwrap();
        if let Some((newest, file)) = newest_source() {
            assert!(
                newest <= built,
                "{} is older than {}: run `cargo build` again (or set OAUTH2_ALLOW_STALE=1)",
                p.display(),
                file.display()
            );
        }
    }
    p.canonicalize().unwrap_or(p)
}

/// The most recently modified file among the module's sources (src/, c-shim/, build.rs,
/// Cargo.toml).
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    fn walk(p: &Path, best: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(md) = fs::metadata(p) else { return };
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), best);
                }
            }
        } else if let Ok(t) = md.modified() {
            if best.as_ref().is_none_or(|(b, _)| t > *b) {
                *best = Some((t, p.to_path_buf()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut best = None;
    for sub in ["src", "c-shim", "build.rs", "Cargo.toml"] {
        walk(&root.join(sub), &mut best);
    }
    best
}

fn unique_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!(
        "mod_oauth2-it-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&d).expect("create temp dir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` every 20 ms until it returns `Some`, at most `limit`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

/// One of the two self-signed client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCert {
    A,
    B,
}

/// A generated PKI in a directory: a CA, a server certificate for 127.0.0.1/localhost issued by
/// the CA, and two self-signed client certificates (A and B) with their keys, all PEM files.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_a_cert: PathBuf,
    pub client_a_key: PathBuf,
    pub client_b_cert: PathBuf,
    pub client_b_key: PathBuf,
    /// base64url-no-pad(SHA-256(DER)) of client certificate A.
    pub thumb_a: String,
    /// base64url-no-pad(SHA-256(DER)) of client certificate B.
    pub thumb_b: String,
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
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
    b.set_subject_name(&name(subject_cn)).unwrap();
    match issuer {
        Some(i) => b.set_issuer_name(i.subject_name()).unwrap(),
        None => b.set_issuer_name(&name(subject_cn)).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now() - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b
}

/// base64url-no-pad(SHA-256(DER)) of a certificate: the RFC 8705 `x5t#S256` value.
pub fn x5t_s256(cert: &X509) -> String {
    b64url(&cert.digest(MessageDigest::sha256()).unwrap())
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
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
            dir: dir.to_path_buf(),
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

    pub fn thumb(&self, c: ClientCert) -> &str {
        match c {
            ClientCert::A => &self.thumb_a,
            ClientCert::B => &self.thumb_b,
        }
    }

    pub fn cert_and_key(&self, c: ClientCert) -> (&Path, &Path) {
        match c {
            ClientCert::A => (&self.client_a_cert, &self.client_a_key),
            ClientCert::B => (&self.client_b_cert, &self.client_b_key),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JWT signer
// ---------------------------------------------------------------------------------------------

/// A token-signing key (RSA -> RS256, EC P-256 -> ES256) with a `kid`.
pub struct TokenSigner {
    pub kid: String,
    key: PKey<Private>,
    rsa: bool,
}

impl TokenSigner {
    /// RSA 2048, RS256.
    pub fn rsa(kid: &str) -> TokenSigner {
        Self::rsa_bits(kid, 2048)
    }

    /// RSA of the given size (for key-size configuration tests), RS256.
    pub fn rsa_bits(kid: &str, bits: u32) -> TokenSigner {
        let rsa = Rsa::generate(bits).unwrap();
        TokenSigner {
            kid: kid.into(),
            key: PKey::from_rsa(rsa).unwrap(),
            rsa: true,
        }
    }

    /// EC P-256, ES256.
    pub fn ec(kid: &str) -> TokenSigner {
        TokenSigner {
            kid: kid.into(),
            key: ec_key(),
            rsa: false,
        }
    }

    pub fn alg(&self) -> &'static str {
        if self.rsa { "RS256" } else { "ES256" }
    }

    /// The public JWK as a JSON value, members in the order kty, kid, use, then key material.
    pub fn public_jwk_value(&self) -> Value {
        if self.rsa {
            let r = self.key.rsa().unwrap();
            json!({
                "kty": "RSA", "kid": self.kid, "use": "sig",
                "n": b64url(&r.n().to_vec()), "e": b64url(&r.e().to_vec()),
            })
        } else {
            let ec = self.key.ec_key().unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let mut x = BigNum::new().unwrap();
            let mut y = BigNum::new().unwrap();
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .unwrap();
            json!({
                "kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256",
                "x": b64url(&x.to_vec_padded(32).unwrap()),
                "y": b64url(&y.to_vec_padded(32).unwrap()),
            })
        }
    }

    /// The public JWK as compact JSON text.
    pub fn public_jwk(&self) -> String {
        serde_json::to_string(&self.public_jwk_value()).unwrap()
    }

    /// The public JWK as one quoted Apache argument (`"{\"kty\":...}"`).
    pub fn jwk_arg(&self) -> String {
        apache_quote(&self.public_jwk())
    }

    /// The JWK argument exactly in the seed configuration's quoting style (RSA only):
    /// `"{\"kty\":\"RSA\",\"kid\":\"one\",\"use\":\"sig\",\"n\":\"...\",\"e\":\"AQAB\" }"`.
    pub fn seed_jwk_arg(&self) -> String {
        assert!(self.rsa, "the seed JWK is RSA");
        let r = self.key.rsa().unwrap();
        let e = b64url(&r.e().to_vec());
        assert_eq!(e, "AQAB");
        format!(
            "\"{{\\\"kty\\\":\\\"RSA\\\",\\\"kid\\\":\\\"{}\\\",\\\"use\\\":\\\"sig\\\",\\\"n\\\":\\\"{}\\\",\\\"e\\\":\\\"{}\\\" }}\"",
            self.kid,
            b64url(&r.n().to_vec()),
            e
        )
    }

    /// The default JOSE header: `{"alg":..., "kid":..., "typ":"at+jwt"}`.
    pub fn header(&self) -> Value {
        json!({ "alg": self.alg(), "kid": self.kid, "typ": "at+jwt" })
    }

    /// Compact JWS over `claims` with the default header.
    pub fn mint(&self, claims: &Value) -> String {
        self.mint_with_header(&self.header(), claims)
    }

    /// Compact JWS with an arbitrary header (signed with this key using the key's algorithm,
    /// whatever the header says).
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let h = serde_json::to_string(header).unwrap();
        let c = serde_json::to_string(claims).unwrap();
        self.mint_raw(h.as_bytes(), c.as_bytes())
    }

    /// Compact JWS over raw header/payload bytes.
    pub fn mint_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64url(header), b64url(payload));
        let mut s = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        s.update(input.as_bytes()).unwrap();
        let der_or_raw = s.sign_to_vec().unwrap();
        let sig = if self.rsa {
            der_or_raw
        } else {
            let es = EcdsaSig::from_der(&der_or_raw).unwrap();
            let mut v = es.r().to_vec_padded(32).unwrap();
            v.extend(es.s().to_vec_padded(32).unwrap());
            v
        };
        format!("{input}.{}", b64url(&sig))
    }
}

// ---------------------------------------------------------------------------------------------
// httpd
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    fn module(self) -> (&'static str, &'static str) {
        match self {
            Mpm::Event => ("mpm_event_module", "mod_mpm_event.so"),
            Mpm::Worker => ("mpm_worker_module", "mod_mpm_worker.so"),
            Mpm::Prefork => ("mpm_prefork_module", "mod_mpm_prefork.so"),
        }
    }

    fn tuning(self) -> &'static str {
        match self {
            Mpm::Event | Mpm::Worker => {
                "StartServers 2\nServerLimit 4\nThreadsPerChild 8\nThreadLimit 8\n\
                 MinSpareThreads 4\nMaxSpareThreads 16\nMaxRequestWorkers 32\n"
            }
            Mpm::Prefork => {
                "StartServers 3\nMinSpareServers 2\nMaxSpareServers 6\nServerLimit 16\n\
                 MaxRequestWorkers 16\n"
            }
        }
    }
}

/// What goes into the private httpd configuration.
///
/// Text fields may contain placeholders: `@DIR@` (the server directory), `@CGI@` (the env-dump
/// CGI script), `@HTDOCS@` (the document root, containing `ok.txt`).
///
/// Fixed layout provided by the harness in both virtual hosts: `/<anything>/env` runs the CGI
/// (NUL-separated `env -0` dump, see [`Response::env`]), `/<anything>/body` runs a CGI that echoes
/// the request body with its length and SHA-256 (see [`Response::body_report`]), `/<anything>/ok`
/// serves a static `ok`.
#[derive(Clone, Debug)]
pub struct HttpdConfig {
    pub mpm: Mpm,
    /// Load mod_oauth2 (default true). False = plain Apache, for harness self-tests.
    pub load_oauth2: bool,
    /// Directives at server level (after the LoadModule lines and the base setup).
    pub server: String,
    /// Directives put into BOTH virtual hosts (the TLS one and the plain-HTTP one).
    pub body: String,
    /// Directives only for the TLS virtual host.
    pub tls_body: String,
    /// Directives only for the plain-HTTP virtual host.
    pub plain_body: String,
    /// `LogLevel` value; default `info ssl:warn oauth2:debug` (without `oauth2:` when the module
    /// is not loaded).
    pub log_level: Option<String>,
}

impl HttpdConfig {
    pub fn new(body: impl Into<String>) -> HttpdConfig {
        HttpdConfig {
            mpm: Mpm::Event,
            load_oauth2: true,
            server: String::new(),
            body: body.into(),
            tls_body: String::new(),
            plain_body: String::new(),
            log_level: None,
        }
    }

    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    pub fn without_oauth2(mut self) -> Self {
        self.load_oauth2 = false;
        self
    }

    pub fn server(mut self, s: impl Into<String>) -> Self {
        self.server = s.into();
        self
    }
}

const CGI_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec /usr/bin/env -0\n";

/// `/<anything>/body`: reads the whole request body first (so a large body cannot deadlock
/// against the output), then answers with headers `X-Body-Length` (bytes received),
/// `X-Body-Sha256` (hex), `X-Content-Length` (`CONTENT_LENGTH`, or `unset`), `X-Content-Type`
/// (`CONTENT_TYPE`, or `unset`), `X-Remote-User` (`REMOTE_USER`, or `unset`) and the body itself. See [`Response::body_report`].
const BODY_CGI_SCRIPT: &str = "#!/bin/sh
t=$(mktemp) || exit 1
cat > \"$t\"
len=$(wc -c < \"$t\")
sum=$(sha256sum < \"$t\" | cut -d' ' -f1)
printf 'Content-Type: application/octet-stream\\r\\nX-Body-Length: %s\\r\\nX-Body-Sha256: %s\\r\\nX-Content-Length: %s\\r\\nX-Content-Type: %s\\r\\nX-Remote-User: %s\\r\\n\\r\\n' \"$len\" \"$sum\" \"${CONTENT_LENGTH-unset}\" \"${CONTENT_TYPE-unset}\" \"${REMOTE_USER-unset}\"
cat \"$t\"
rm -f \"$t\"
";

/// A private httpd: TLS virtual host (`SSLVerifyClient optional_no_ca`) and plain-HTTP virtual
/// host on free loopback ports. Stopped (SIGTERM, then SIGKILL of its process group) on drop.
pub struct Httpd {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub pki: Pki,
    pub https_port: u16,
    pub http_port: u16,
    pub config: HttpdConfig,
    child: Option<Child>,
}

struct Layout {
    conf_text: String,
}

fn render(cfg: &HttpdConfig, dir: &Path, pki: &Pki, https_port: u16, http_port: u16) -> Layout {
    let mods = apache_modules_dir();
    let d = dir.display().to_string();
    let subst = |s: &str| {
        s.replace("@DIR@", &d)
            .replace("@CGI@", &format!("{d}/cgi-bin/env.cgi"))
            .replace("@HTDOCS@", &format!("{d}/htdocs"))
    };
    let mut c = String::new();
    let (mpm_name, mpm_file) = cfg.mpm.module();
    let _ = writeln!(c, "# generated by tests/common/mod.rs");
    let _ = writeln!(c, "ServerRoot {d}");
    let _ = writeln!(c, "LoadModule {mpm_name} {mods}/{mpm_file}");
    let mut modules: Vec<(&str, &str)> = vec![
        ("authn_core_module", "mod_authn_core.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("authz_user_module", "mod_authz_user.so"),
        ("socache_shmcb_module", "mod_socache_shmcb.so"),
        ("ssl_module", "mod_ssl.so"),
        ("alias_module", "mod_alias.so"),
        ("env_module", "mod_env.so"),
        ("setenvif_module", "mod_setenvif.so"),
        ("headers_module", "mod_headers.so"),
        ("proxy_module", "mod_proxy.so"),
        ("proxy_http_module", "mod_proxy_http.so"),
        ("mime_module", "mod_mime.so"),
    ];
    modules.push(match cfg.mpm {
        Mpm::Prefork => ("cgi_module", "mod_cgi.so"),
        _ => ("cgid_module", "mod_cgid.so"),
    });
    for (n, f) in modules {
        let _ = writeln!(c, "LoadModule {n} {mods}/{f}");
    }
    if cfg.load_oauth2 {
        let _ = writeln!(c, "LoadModule oauth2_module {}", module_path().display());
    }
    let log_level = cfg.log_level.clone().unwrap_or_else(|| {
        if cfg.load_oauth2 {
            "info ssl:warn oauth2:debug".into()
        } else {
            "info ssl:warn".into()
        }
    });
    if is_root() {
        c.push_str("User www-data\nGroup www-data\n");
    }
    let _ = write!(
        c,
        "ServerName localhost
PidFile {d}/httpd.pid
ErrorLog {d}/error_log
LogLevel {log_level}
LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b %P\" harness
CustomLog {d}/access_log harness
Mutex file:{d} default
DefaultRuntimeDir {d}
TypesConfig /etc/mime.types
Timeout 20
KeepAlive On
KeepAliveTimeout 2
{tuning}<IfModule cgid_module>
ScriptSock {d}/cgid.sock
</IfModule>
SSLSessionCache shmcb:{d}/ssl_scache(512000)
DocumentRoot {d}/htdocs
AliasMatch \"^/[^/]+/ok$\" \"{d}/htdocs/ok.txt\"
ScriptAliasMatch \"^/[^/]+/env$\" \"{d}/cgi-bin/env.cgi\"
ScriptAliasMatch \"^/[^/]+/body$\" \"{d}/cgi-bin/body.cgi\"
Listen 127.0.0.1:{https_port} https
Listen 127.0.0.1:{http_port} http
",
        tuning = cfg.mpm.tuning()
    );
    let _ = writeln!(c, "{}", subst(&cfg.server));
    let _ = write!(
        c,
        "<VirtualHost 127.0.0.1:{https_port}>
ServerName localhost
SSLEngine on
SSLCertificateFile {}
SSLCertificateKeyFile {}
SSLVerifyClient optional_no_ca
SSLVerifyDepth 1
{}
{}
</VirtualHost>
<VirtualHost 127.0.0.1:{http_port}>
ServerName localhost
{}
{}
</VirtualHost>
",
        pki.server_cert.display(),
        pki.server_key.display(),
        subst(&cfg.body),
        subst(&cfg.tls_body),
        subst(&cfg.body),
        subst(&cfg.plain_body),
    );
    Layout { conf_text: c }
}

fn prepare_dir(dir: &Path) {
    let htdocs = dir.join("htdocs");
    let cgi = dir.join("cgi-bin");
    for d in [&htdocs, &cgi] {
        fs::create_dir_all(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    write_file(&htdocs.join("ok.txt"), b"ok\n", 0o644);
    write_file(&cgi.join("env.cgi"), CGI_SCRIPT.as_bytes(), 0o755);
    write_file(&cgi.join("body.cgi"), BODY_CGI_SCRIPT.as_bytes(), 0o755);
}

/// Result of `apache2 -t`.
pub struct ConfigTest {
    pub ok: bool,
    /// stdout + stderr of `apache2 -t`.
    pub output: String,
    pub conf: PathBuf,
    pub conf_text: String,
    dir: PathBuf,
}

impl ConfigTest {
    /// 1-based line number of the first configuration line containing `needle`.
    pub fn line_of(&self, needle: &str) -> usize {
        self.conf_text
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in the generated config"))
            + 1
    }

    /// The message `apache2 -t` printed for a syntax error on the line holding `needle` (the
    /// output line after `AH00526: Syntax error on line N of FILE:`); `Err` describing what
    /// happened instead (accepted, or an error elsewhere).
    pub fn syntax_error(&self, needle: &str) -> Result<String, String> {
        if self.ok {
            return Err(format!("apache2 -t accepted it:\n{}", self.output));
        }
        let header = format!(
            "AH00526: Syntax error on line {} of {}:",
            self.line_of(needle),
            self.conf.display()
        );
        let lines: Vec<&str> = self.output.lines().collect();
        match lines.iter().position(|l| l.contains(&header)) {
            Some(i) => Ok(lines.get(i + 1).copied().unwrap_or("").to_string()),
            None => Err(format!("no `{header}` in:\n{}", self.output)),
        }
    }
}

impl Drop for ConfigTest {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("KEEP_HTTPD_DIR").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("harness: kept {}", self.dir.display());
        }
    }
}

impl Httpd {
    /// Write the configuration, start `apache2 -DFOREGROUND`, wait (bounded) until it answers.
    /// Panics with the error log and stderr when it does not come up.
    pub fn start(config: HttpdConfig) -> Httpd {
        if config.load_oauth2 {
            module_path(); // fail early, with instructions, when the module is not built
        }
        let dir = unique_dir("httpd");
        let pki = Pki::new(&dir.join("pki"));
        prepare_dir(&dir);
        let conf = dir.join("httpd.conf");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let https_port = free_port();
            let mut http_port = free_port();
            while http_port == https_port {
                http_port = free_port();
            }
            let layout = render(&config, &dir, &pki, https_port, http_port);
            write_file(&conf, layout.conf_text.as_bytes(), 0o644);
            let _ = fs::remove_file(dir.join("error_log"));
            let child = Command::new(apache_bin())
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND")
                .stdin(Stdio::null())
                .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
                .stderr(fs::File::create(dir.join("stderr.log")).unwrap())
                .process_group(0)
                .spawn()
                .expect("spawn apache2");
            let mut h = Httpd {
                dir: dir.clone(),
                conf: conf.clone(),
                pki: pki.clone(),
                https_port,
                http_port,
                config: config.clone(),
                child: Some(child),
            };
            match h.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return h,
                Err(e) => {
                    let text = format!(
                        "{e}\n--- stderr ---\n{}\n--- error_log ---\n{}",
                        fs::read_to_string(dir.join("stderr.log")).unwrap_or_default(),
                        h.error_log()
                    );
                    h.stop();
                    if text.contains("Address already in use") {
                        last_err = text;
                        continue; // port race with another test: pick new ports
                    }
                    panic!(
                        "httpd did not start (config {}):\n{text}\n--- config ---\n{}",
                        conf.display(),
                        fs::read_to_string(&conf).unwrap_or_default()
                    );
                }
            }
        }
        panic!("httpd did not start after 5 port choices:\n{last_err}");
    }

    /// Run `apache2 -t` on the configuration that `start` would write. Does not start a server.
    pub fn config_test(config: HttpdConfig) -> ConfigTest {
        if config.load_oauth2 {
            module_path();
        }
        let dir = unique_dir("conftest");
        let pki = Pki::new(&dir.join("pki"));
        prepare_dir(&dir);
        let conf = dir.join("httpd.conf");
        let layout = render(&config, &dir, &pki, free_port(), free_port());
        write_file(&conf, layout.conf_text.as_bytes(), 0o644);
        let out = run_bounded(
            Command::new(apache_bin()).arg("-t").arg("-f").arg(&conf),
            Duration::from_secs(20),
        );
        ConfigTest {
            ok: out.0,
            output: out.1,
            conf,
            conf_text: layout.conf_text,
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("httpd not running").id()
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("apache2 exited during startup: {st}"));
            }
            if self.probe_http() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("apache2 did not answer within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// One raw HTTP/1.0 request on the plain port; true when an HTTP status line comes back.
    fn probe_http(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.http_port).parse().unwrap(),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /__harness_ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 16];
        let mut got = 0;
        while got < 9 {
            match s.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got >= 9 && buf.starts_with(b"HTTP/1.")
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.join("error_log")).unwrap_or_default())
            .into_owned()
    }

    /// The access log so far (`%h %l %u %t "%r" %>s %b %P`).
    pub fn access_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.join("access_log")).unwrap_or_default())
            .into_owned()
    }

    /// Current length of the error log, for [`Httpd::log_since`].
    pub fn log_mark(&self) -> usize {
        fs::metadata(self.dir.join("error_log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Error-log text written after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        let all = fs::read(self.dir.join("error_log")).unwrap_or_default();
        String::from_utf8_lossy(&all[mark.min(all.len())..]).into_owned()
    }

    /// Error-log text written between two marks.
    pub fn log_between(&self, from: usize, to: usize) -> String {
        let all = fs::read(self.dir.join("error_log")).unwrap_or_default();
        let to = to.min(all.len());
        String::from_utf8_lossy(&all[from.min(to)..to]).into_owned()
    }

    /// Wait (bounded, 3 s) until the log written after `mark` satisfies `pred`; returns that text
    /// (or the text at the deadline).
    pub fn wait_log_since(&self, mark: usize, pred: impl Fn(&str) -> bool) -> String {
        poll(Duration::from_secs(3), || {
            let t = self.log_since(mark);
            pred(&t).then_some(t)
        })
        .unwrap_or_else(|| self.log_since(mark))
    }

    /// Panics if the error log shows a child that died from a signal or a segfault/abort.
    pub fn assert_no_child_crash(&self) {
        let log = self.error_log();
        for l in log.lines() {
            let bad = l.contains("exit signal")
                || l.contains("Segmentation fault")
                || l.contains("AH00052")
                || l.contains("panicked")
                || l.contains("core dumped");
            assert!(
                !bad,
                "child crash in error log: {l}\n--- error_log ---\n{log}"
            );
        }
    }

    /// Graceful restart (SIGUSR1, what `apache2 -k graceful` sends); waits (bounded) until the
    /// parent has re-read the configuration ("resuming normal operations" logged once more) and
    /// the server answers again.
    pub fn graceful(&mut self) {
        let marker = "resuming normal operations";
        let before = self.error_log().matches(marker).count();
        signal(self.pid(), "USR1");
        let ok = poll(Duration::from_secs(15), || {
            (self.error_log().matches(marker).count() > before).then_some(())
        });
        if ok.is_none() || self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
            panic!(
                "graceful restart did not complete\n--- error_log ---\n{}",
                self.error_log()
            );
        }
        poll(Duration::from_secs(10), || self.probe_http().then_some(()))
            .expect("httpd does not answer after graceful restart");
    }

    /// Stop now (SIGTERM to the parent; SIGKILL to its process group after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            signal(child.id(), "TERM");
            let exited = poll(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().map(|_| ())
            });
            if exited.is_none() {
                // The parent is not reaped yet, so its pid (= process group id) is still ours.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.wait();
            }
        }
    }

    /// `https://127.0.0.1:<port><path>` request builder (TLS vhost).
    pub fn https(&self, path: &str) -> Req<'_> {
        Req::new(
            self,
            format!("https://127.0.0.1:{}{path}", self.https_port),
            true,
        )
    }

    /// `http://127.0.0.1:<port><path>` request builder (plain vhost).
    pub fn http(&self, path: &str) -> Req<'_> {
        Req::new(
            self,
            format!("http://127.0.0.1:{}{path}", self.http_port),
            false,
        )
    }

    /// One `GET https://...<path>` per token, all on one keep-alive connection (one curl, its
    /// transfers joined by `--next`), presenting `cert` if given. Returns, per request, the status
    /// and whether curl had to open a new connection for it.
    pub fn keep_alive(
        &self,
        path: &str,
        tokens: &[&str],
        cert: Option<ClientCert>,
    ) -> Vec<(u16, bool)> {
        let mut cmd = Command::new(curl_bin());
        cmd.arg("-q");
        for (i, token) in tokens.iter().enumerate() {
            if i > 0 {
                cmd.arg("--next");
            }
            cmd.args(["-sS", "--http1.1", "--max-time", "10", "--noproxy", "*"]);
            cmd.arg("--cacert").arg(&self.pki.ca_cert);
            if let Some(c) = cert {
                let (crt, key) = self.pki.cert_and_key(c);
                cmd.arg("--cert").arg(crt).arg("--key").arg(key);
            }
            cmd.args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"]);
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
            cmd.arg(format!("https://127.0.0.1:{}{path}", self.https_port));
        }
        let out = cmd.stdin(Stdio::null()).output().expect("cannot run curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (code, connects) = l.split_once(' ')?;
                Some((code.parse().ok()?, connects != "0"))
            })
            .collect()
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("KEEP_HTTPD_DIR").is_some() {
            eprintln!("harness: kept httpd directory {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Run a command with a time bound; returns (success, stdout+stderr). Kills it on timeout.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let out_path = unique_dir("cmd");
    let so = out_path.join("out");
    let se = out_path.join("err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&so).unwrap())
        .stderr(fs::File::create(&se).unwrap())
        .spawn()
        .expect("spawn");
    let st = poll(limit, || child.try_wait().ok().flatten());
    let st = match st {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    };
    let text = format!(
        "{}{}",
        fs::read_to_string(&so).unwrap_or_default(),
        fs::read_to_string(&se).unwrap_or_default()
    );
    let _ = fs::remove_dir_all(&out_path);
    (st.success(), text)
}

// ---------------------------------------------------------------------------------------------
// Client (curl)
// ---------------------------------------------------------------------------------------------

/// A request through the `curl` binary (real TLS, optional client certificate).
pub struct Req<'a> {
    httpd: &'a Httpd,
    url: String,
    tls: bool,
    headers: Vec<String>,
    cert: Option<ClientCert>,
    method: Option<String>,
    body: Option<Vec<u8>>,
}

impl<'a> Req<'a> {
    fn new(httpd: &'a Httpd, url: String, tls: bool) -> Self {
        Req {
            httpd,
            url,
            tls,
            headers: vec![],
            cert: None,
            method: None,
            body: None,
        }
    }

    /// Send `data` as the request body (`curl --data-binary`: method POST unless [`Req::method`]
    /// says otherwise; curl's default `Content-Type` is `application/x-www-form-urlencoded`, set
    /// another with [`Req::header`]). Add `Transfer-Encoding: chunked` as a header to send it
    /// chunked.
    pub fn body(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.body = Some(data.into());
        self
    }

    /// Add a raw header line `Name: value`.
    pub fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_string());
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header(&format!("Authorization: Bearer {token}"))
    }

    /// Present a client certificate in the TLS handshake.
    pub fn cert(mut self, c: ClientCert) -> Self {
        self.cert = Some(c);
        self
    }

    /// Present a client certificate if `Some`.
    pub fn maybe_cert(mut self, c: Option<ClientCert>) -> Self {
        self.cert = c;
        self
    }

    pub fn method(mut self, m: &str) -> Self {
        self.method = Some(m.into());
        self
    }

    /// Send; panics when curl itself fails (connection reset, timeout...).
    pub fn send(self) -> Response {
        let url = self.url.clone();
        self.try_send()
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
    }

    /// Send; `Err` with curl's message when no HTTP response was received.
    pub fn try_send(self) -> Result<Response, String> {
        let mut cmd = Command::new(curl_bin());
        cmd.arg("-q") // ignore ~/.curlrc
            .args([
                "-sS",
                "-i",
                "--http1.1",
                "--max-time",
                "10",
                "--noproxy",
                "*",
            ]);
        if self.tls {
            cmd.arg("--cacert").arg(&self.httpd.pki.ca_cert);
        }
        if let Some(c) = self.cert {
            assert!(self.tls, "client certificate on a plain-HTTP request");
            let (crt, key) = self.httpd.pki.cert_and_key(c);
            cmd.arg("--cert").arg(crt).arg("--key").arg(key);
        }
        if let Some(m) = &self.method {
            cmd.args(["-X", m]);
        }
        for h in &self.headers {
            cmd.arg("-H").arg(h);
        }
        let body_dir = self.body.as_ref().map(|data| {
            let d = unique_dir("body");
            let f = d.join("body");
            write_file(&f, data, 0o600);
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
            d
        });
        cmd.arg(&self.url);
        let out = cmd.stdin(Stdio::null()).output();
        if let Some(d) = body_dir {
            let _ = fs::remove_dir_all(d);
        }
        let out = out.map_err(|e| format!("cannot run curl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "curl {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Response::parse(&out.stdout)
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Result<Response, String> {
        let mut rest = raw;
        loop {
            let end = find(rest, b"\r\n\r\n")
                .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            let body = &rest[end + 4..];
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            if (100..200).contains(&status) {
                rest = body;
                continue;
            }
            let headers = lines
                .filter_map(|l| {
                    l.split_once(':')
                        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
                })
                .collect();
            return Ok(Response {
                status,
                headers,
                body: body.to_vec(),
            });
        }
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single WWW-Authenticate value; panics when there are several.
    pub fn www_authenticate(&self) -> Option<&str> {
        let all = self.header_all("WWW-Authenticate");
        assert!(all.len() <= 1, "several WWW-Authenticate headers: {all:?}");
        all.first().copied()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The env-dump CGI's environment with raw byte values, whatever the status (e.g. a CGI
    /// reached through an `ErrorDocument`).
    pub fn env_bytes(&self) -> BTreeMap<String, Vec<u8>> {
        self.body
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .filter_map(|e| {
                let i = e.iter().position(|b| *b == b'=')?;
                Some((
                    String::from_utf8_lossy(&e[..i]).into_owned(),
                    e[i + 1..].to_vec(),
                ))
            })
            .collect()
    }

    /// What the body-echo CGI (`/<anything>/body`) reported.
    pub fn body_report(&self) -> BodyReport {
        let h = |n: &str| self.header(n).unwrap_or("missing").to_string();
        BodyReport {
            status: self.status,
            length: h("X-Body-Length"),
            sha256: h("X-Body-Sha256"),
            content_length: h("X-Content-Length"),
            content_type: h("X-Content-Type"),
            remote_user: h("X-Remote-User"),
            body: self.body.clone(),
        }
    }

    /// The env-dump CGI's environment (`env -0` output) as a map.
    pub fn env(&self) -> BTreeMap<String, String> {
        assert_eq!(
            self.status,
            200,
            "env dump needs a 200 response, got {}: {}",
            self.status,
            self.text()
        );
        self.body
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .filter_map(|e| {
                let s = String::from_utf8_lossy(e).into_owned();
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }
}

/// The body-echo CGI's report: what the backend received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyReport {
    pub status: u16,
    /// Bytes the CGI read from its stdin (decimal).
    pub length: String,
    /// Lower-case hex SHA-256 of those bytes.
    pub sha256: String,
    /// The CGI's `CONTENT_LENGTH` (`unset` when absent).
    pub content_length: String,
    /// The CGI's `CONTENT_TYPE` (`unset` when absent).
    pub content_type: String,
    /// The CGI's `REMOTE_USER` (`unset` when absent).
    pub remote_user: String,
    /// The echoed body.
    pub body: Vec<u8>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    openssl::sha::sha256(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Position of `needle` in `hay`.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    find(hay, needle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Raw-header backend (reached through mod_proxy)
// ---------------------------------------------------------------------------------------------

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with 200 and the raw request
/// head (request line + header lines, exactly as received, up to and including the blank line)
/// as the body. It also records every head. Stopped on drop.
pub struct RawBackend {
    pub port: u16,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawBackend {
    pub fn start() -> RawBackend {
        Self::start_inner(false)
    }

    /// Like [`RawBackend::start`], but also reads the request body (`Content-Length` or chunked,
    /// de-chunked), records it (see [`RawBackend::bodies`]) and answers with the raw head followed
    /// by the body (split them with [`split_head_body`]).
    pub fn start_with_bodies() -> RawBackend {
        Self::start_inner(true)
    }

    fn start_inner(read_bodies: bool) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h2, b2, s2) = (heads.clone(), bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (h3, b3) = (h2.clone(), b2.clone());
                std::thread::spawn(move || {
                    let bodies = read_bodies.then_some(&*b3);
                    let _ = serve_raw(&mut conn, &h3, bodies);
                });
            }
        });
        RawBackend {
            port,
            heads,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash: `<Location /p> ProxyPass <url>` maps
    /// `/p/x` to `/x`)
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// All request heads received so far.
    pub fn heads(&self) -> Vec<Vec<u8>> {
        self.heads.lock().unwrap().clone()
    }

    /// All request bodies received so far (only for [`RawBackend::start_with_bodies`]).
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A response of [`RawBackend::start_with_bodies`] split into the raw request head (up to and
/// including the blank line) and the request body.
pub fn split_head_body(echo: &[u8]) -> (&[u8], &[u8]) {
    match find(echo, b"\r\n\r\n") {
        Some(p) => echo.split_at(p + 4),
        None => (echo, &[]),
    }
}

/// Reads more bytes into `buf`; false at EOF.
fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16384];
    let n = conn.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// Reads the body that follows `head` (`rest` holds bytes already read after it).
fn read_request_body(
    conn: &mut TcpStream,
    head: &[u8],
    mut rest: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    const MAX: usize = 64 * 1024 * 1024;
    let fields = raw_head_fields(head);
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short");
    if get("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if get("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = loop {
                if let Some(p) = find(&rest[pos..], b"\r\n") {
                    break pos + p;
                }
                if rest.len() > MAX || !read_more(conn, &mut rest)? {
                    return Err(eof());
                }
            };
            let line = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            pos = line_end + 2;
            if size == 0 {
                // trailers, up to the blank line
                while find(&rest[pos - 2..], b"\r\n\r\n").is_none() {
                    if rest.len() > MAX || !read_more(conn, &mut rest)? {
                        return Err(eof());
                    }
                }
                return Ok(body);
            }
            while rest.len() < pos + size + 2 {
                if rest.len() > MAX || !read_more(conn, &mut rest)? {
                    return Err(eof());
                }
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
    }
    let len: usize = get("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX);
    while rest.len() < len {
        if !read_more(conn, &mut rest)? {
            return Err(eof());
        }
    }
    rest.truncate(len);
    Ok(rest)
}

fn serve_raw(
    conn: &mut TcpStream,
    heads: &Mutex<Vec<Vec<u8>>>,
    bodies: Option<&Mutex<Vec<Vec<u8>>>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 256 * 1024 {
            return Ok(());
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = buf[..end].to_vec();
    let mut echo = head.clone();
    if let Some(bodies) = bodies {
        let body = read_request_body(conn, &head, buf[end..].to_vec())?;
        echo.extend_from_slice(&body);
        bodies.lock().unwrap().push(body);
    }
    heads.lock().unwrap().push(head);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        echo.len()
    )
    .into_bytes();
    resp.extend_from_slice(&echo);
    conn.write_all(&resp)?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.port).parse().unwrap(),
            Duration::from_secs(1),
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Header lines of a raw request head (after the request line, before the blank line), split on
/// CRLF, each as (name, value) with the value's surrounding whitespace trimmed. Lines without a
/// colon are returned with an empty name (they would be a protocol break).
pub fn raw_head_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_end_matches("\r\n");
    text.split("\r\n")
        .skip(1)
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_string(), v.trim().to_string()),
            None => (String::new(), l.to_string()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Error-log helpers
// ---------------------------------------------------------------------------------------------

/// Lines of `log` emitted by mod_oauth2 (`[oauth2:<level>]`) at a level other than debug/trace.
pub fn oauth2_refusal_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.find("[oauth2:").is_some_and(|i| {
                let lvl = &l[i + 8..];
                !(lvl.starts_with("debug") || lvl.starts_with("trace"))
            })
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Common expectations
// ---------------------------------------------------------------------------------------------

pub const NO_TOKEN: &str =
    "Bearer error=\"invalid_request\", error_description=\"No bearer token found in the request.\"";
pub const INVALID_TOKEN: &str =
    "Bearer error=\"invalid_token\", error_description=\"Token could not be verified.\"";
pub const NO_REMOTE_USER: &str =
    "Bearer error=\"invalid_token\", error_description=\"Could not determine remote user.\"";

/// The same challenge with ` realm="<realm>",` after the scheme.
pub fn with_realm(challenge: &str, realm: &str) -> String {
    let (scheme, rest) = challenge.split_once(' ').unwrap();
    format!("{scheme} realm=\"{realm}\", {rest}")
}

/// Assert a 401 with exactly this WWW-Authenticate value.
#[track_caller]
pub fn assert_401(r: &Response, challenge: &str, what: &str) {
    assert_eq!(
        r.status, 401,
        "{what}: expected 401, got {} ({:?})",
        r.status, r.headers
    );
    assert_eq!(
        r.www_authenticate(),
        Some(challenge),
        "{what}: WWW-Authenticate"
    );
}

/// Assert a 200.
#[track_caller]
pub fn assert_200(r: &Response, what: &str) {
    assert_eq!(
        r.status,
        200,
        "{what}: expected 200, got {} (WWW-Authenticate {:?})",
        r.status,
        r.header_all("WWW-Authenticate")
    );
}

/// `<Location path>` with `AuthType oauth2`, the given directives and `Require valid-user`.
pub fn oauth2_location(path: &str, directives: &str) -> String {
    format!("<Location {path}>\nAuthType oauth2\n{directives}\nRequire valid-user\n</Location>\n")
}

/// Collects failed expectations so that a table test reports every failing row at once.
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    /// Expect `status`, and for a 401 exactly `challenge` as WWW-Authenticate.
    pub fn expect(&mut self, what: &str, r: &Response, status: u16, challenge: Option<&str>) {
        let wa = r.header_all("WWW-Authenticate");
        let ok_status = r.status == status;
        let ok_wa = match challenge {
            Some(c) => wa == [c],
            None => true,
        };
        self.check(ok_status && ok_wa, || {
            format!(
                "{what}: expected {status}{}, got {} with WWW-Authenticate {wa:?}",
                challenge.map(|c| format!(" [{c}]")).unwrap_or_default(),
                r.status
            )
        });
    }

    #[track_caller]
    pub fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} failed expectation(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}
