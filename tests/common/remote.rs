//! Helpers for remote token verification (`jwks_uri`, `eckey_uri`, `metadata`, `introspect`):
//!
//! - [`RealAs`]: the real authorization server in `tests/realas/` (npm `oidc-provider`), one per
//!   test binary, with a PKI generated here ([`AsPki`]), tokens fetched with the `curl` binary;
//! - [`MockServer`]: a tiny plain-HTTP server on 127.0.0.1 whose answers a test scripts (JSON,
//!   status codes, never answering) and which records (counts) every request;
//! - [`flood`]: many requests with keep-alive through a few `curl` processes;
//! - option-string helpers ([`Opts`]) and [`single_process`] (one httpd child process, so that
//!   per-process caches are observable).
//!
//! Needs `node` and, when `tests/realas/node_modules` is missing, `npm` (runs `npm ci`).

use super::pki::{
    add_ca_extensions, add_issued_extensions, build_cert, ec_key, self_signed_client,
};
use super::{Httpd, b64url, free_port, poll};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::{ExtendedKeyUsage, SubjectAlternativeName};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Option strings
// ---------------------------------------------------------------------------------------------

/// Percent-encode an option value for a `a=b&c=d` options string: everything except ALPHA,
/// DIGIT and `-._~/:` is `%XX`.
pub(crate) fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Percent-decode (`+` = space), as in `application/x-www-form-urlencoded`.
pub(crate) fn form_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a form-encoded body into (name, value) pairs.
pub(crate) fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_unescape(k), form_unescape(v)),
            None => (form_unescape(p), String::new()),
        })
        .collect()
}

/// A `name=value&...` options string with percent-encoded values.
#[derive(Clone, Debug, Default)]
pub(crate) struct Opts(Vec<(String, String)>);

impl Opts {
    pub(crate) fn new() -> Opts {
        Opts::default()
    }

    /// Add `name=value` (value percent-encoded).
    pub(crate) fn kv(mut self, name: &str, value: impl AsRef<str>) -> Opts {
        self.0.push((name.into(), value.as_ref().into()));
        self
    }

    /// Add a file path option.
    pub(crate) fn path(self, name: &str, p: &Path) -> Opts {
        self.kv(name, p.display().to_string())
    }

    pub(crate) fn render(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", pct(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `OAuth2TokenVerify <kind> <url> "<options>"` (no options argument when `opts` is empty).
pub(crate) fn verify_line(kind: &str, url: &str, opts: &Opts) -> String {
    let o = opts.render();
    if o.is_empty() {
        format!("OAuth2TokenVerify {kind} {url}")
    } else {
        format!("OAuth2TokenVerify {kind} {url} {}", super::apache_quote(&o))
    }
}

/// `<Location path>` that verifies tokens with [`verify_line`]`(kind, url, opts)`.
pub(crate) fn verify_location(path: &str, kind: &str, url: &str, opts: &Opts) -> String {
    super::oauth2_location(path, &verify_line(kind, url, opts))
}

/// Server-level directives for one httpd child process (event MPM, 8 threads): per-process
/// caches (keys, introspection results) then see every request.
pub(crate) fn single_process() -> &'static str {
    "StartServers 1\nServerLimit 1\nMinSpareThreads 1\nMaxSpareThreads 16\nMaxRequestWorkers 8\n"
}

/// Server-level directives for at most two httpd child processes.
pub(crate) fn two_processes() -> &'static str {
    "StartServers 2\nServerLimit 2\nMaxRequestWorkers 16\n"
}

/// Replace the harness's client certificate `which` of `h` (the files curl presents) with
/// `cert`/`key`, e.g. a certificate registered at the real AS.
pub(crate) fn present_cert(h: &Httpd, which: super::ClientCert, cert: &Path, key: &Path) {
    let (c, k) = h.pki.cert_and_key(which);
    fs::copy(cert, c).unwrap_or_else(|e| panic!("copy {}: {e}", cert.display()));
    fs::copy(key, k).unwrap_or_else(|e| panic!("copy {}: {e}", key.display()));
}

/// Make `h`'s client certificates the real AS's: A its self-signed client certificate, B the one
/// its CA issued (the certificates of [`AsClient::SelfSigned`] and [`AsClient::Pki`]).
pub(crate) fn present_as_client_certs(h: &Httpd, a: &RealAs) {
    present_cert(
        h,
        super::ClientCert::A,
        &a.pki.client_self_cert,
        &a.pki.client_self_key,
    );
    present_cert(
        h,
        super::ClientCert::B,
        &a.pki.client_pki_cert,
        &a.pki.client_pki_key,
    );
}

// ---------------------------------------------------------------------------------------------
// JWT helpers
// ---------------------------------------------------------------------------------------------

/// The decoded payload of a compact JWS.
pub(crate) fn jwt_payload(token: &str) -> Value {
    let p = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p)
        .unwrap_or_else(|e| panic!("JWT payload not base64url ({e}): {token}"));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("JWT payload not JSON ({e}): {token}"))
}

/// The decoded header of a compact JWS.
pub(crate) fn jwt_header(token: &str) -> Value {
    let p = token.split('.').next().unwrap();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// RS256 compact JWS with header `{"alg":"RS256","kid":kid,"typ":"at+jwt"}`, signed with `key`.
pub(crate) fn mint_rs256(key: &PKey<Private>, kid: &str, claims: &Value) -> String {
    let h = json!({ "alg": "RS256", "kid": kid, "typ": "at+jwt" });
    let input = format!(
        "{}.{}",
        b64url(h.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url(&s.sign_to_vec().unwrap()))
}

/// A random string of `n` bytes of entropy, base64url.
pub(crate) fn random_id(n: usize) -> String {
    let mut b = vec![0u8; n];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b64url(&b)
}

/// The private RSA key as a JWK (JSON text) with `kid`, members kty, kid, n, e, d, p, q, dp, dq,
/// qi.
pub(crate) fn rsa_private_jwk(key: &PKey<Private>, kid: &str) -> String {
    let r = key.rsa().unwrap();
    let e = |b: Option<&openssl::bn::BigNumRef>| b64url(&b.unwrap().to_vec());
    json!({
        "kty": "RSA", "kid": kid,
        "n": b64url(&r.n().to_vec()), "e": b64url(&r.e().to_vec()),
        "d": b64url(&r.d().to_vec()),
        "p": e(r.p()), "q": e(r.q()), "dp": e(r.dmp1()), "dq": e(r.dmq1()), "qi": e(r.iqmp()),
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Bounded commands
// ---------------------------------------------------------------------------------------------

/// Run `cmd` with stdout/stderr captured, killed after `limit`. Returns (success, stdout,
/// stderr); `Err` when it could not be started or did not finish in time.
pub(crate) fn run_limited(
    cmd: &mut Command,
    limit: Duration,
) -> Result<(bool, String, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    // drain the pipes in threads so that a chatty child cannot block
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let st = poll(limit, || child.try_wait().ok().flatten());
    let Some(st) = st else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = (t1.join(), t2.join());
        return Err(format!("{cmd:?} did not finish within {limit:?}"));
    };
    let out = String::from_utf8_lossy(&t1.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&t2.join().unwrap_or_default()).into_owned();
    Ok((st.success(), out, err))
}

fn curl() -> Command {
    let mut c = Command::new(std::env::var("CURL_BIN").unwrap_or_else(|_| "curl".into()));
    c.arg("-q")
        .args(["-sS", "--max-time", "15", "--noproxy", "*"]);
    c
}

// ---------------------------------------------------------------------------------------------
// PKI of the real AS
// ---------------------------------------------------------------------------------------------

/// The AS's PKI, generated here (the equivalent of `tests/realas/make-pki.sh`): a CA, the AS's
/// TLS certificate (127.0.0.1/localhost) issued by it, two CA-issued client certificates
/// (`client-pki`, registered for `pki-mtls-client`, and `client-other`), the self-signed
/// `client-self` (registered for `self-signed-mtls-client`), the AS's signing keys (RSA, P-256,
/// Ed25519) and the RSA key of `pkjwt-client`. All files are world-readable: httpd's children
/// read the CA and the client key as `www-data`.
pub(crate) struct AsPki {
    pub(crate) dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    pub(crate) client_pki_cert: PathBuf,
    pub(crate) client_pki_key: PathBuf,
    pub(crate) client_other_cert: PathBuf,
    pub(crate) client_other_key: PathBuf,
    pub(crate) client_self_cert: PathBuf,
    pub(crate) client_self_key: PathBuf,
    /// x5t#S256 of client-self.crt / client-pki.crt / client-other.crt.
    pub(crate) thumb_self: String,
    pub(crate) thumb_pki: String,
    pub(crate) thumb_other: String,
    /// The AS's RSA signing key (kid `rsa-1`).
    pub(crate) as_rsa: PKey<Private>,
    /// The private_key_jwt client's key (kid `pkjwt-1`).
    pub(crate) pkjwt: PKey<Private>,
}

/// The organisation in the names of the AS's certificates (`tests/realas/make-pki.sh`).
const AS_ORG: &str = "realas";

fn put(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

impl AsPki {
    pub(crate) fn new(dir: &Path) -> AsPki {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let ca_key = ec_key();
        let ca = build_cert(AS_ORG, "realas test CA", &ca_key, None, add_ca_extensions);
        let issued = |cn: &str, eku: &mut ExtendedKeyUsage, san: &mut SubjectAlternativeName| {
            let k = ec_key();
            let c = build_cert(AS_ORG, cn, &k, Some((&ca, &ca_key)), |b| {
                add_issued_extensions(b, &ca, eku, san);
            });
            (c, k)
        };
        let (server, server_key) = issued(
            "localhost",
            ExtendedKeyUsage::new().server_auth(),
            SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1"),
        );
        let client = |cn: &str| {
            issued(
                cn,
                ExtendedKeyUsage::new().client_auth(),
                SubjectAlternativeName::new().dns(&format!("{cn}.example.test")),
            )
        };
        let (cpki, cpki_key) = client("client-pki");
        let (cother, cother_key) = client("client-other");
        let (cself, self_key) = self_signed_client(AS_ORG, "client-self");
        let as_rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let as_ec = ec_key();
        let as_ed = PKey::generate_ed25519().unwrap();
        let pkjwt = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();

        let p = |n: &str| dir.join(n);
        let pem_key = |k: &PKey<Private>| k.private_key_to_pem_pkcs8().unwrap();
        put(&p("ca.crt"), &ca.to_pem().unwrap());
        put(&p("ca.key"), &pem_key(&ca_key));
        put(&p("server.crt"), &server.to_pem().unwrap());
        put(&p("server.key"), &pem_key(&server_key));
        put(&p("client-pki.crt"), &cpki.to_pem().unwrap());
        put(&p("client-pki.key"), &pem_key(&cpki_key));
        put(&p("client-other.crt"), &cother.to_pem().unwrap());
        put(&p("client-other.key"), &pem_key(&cother_key));
        put(&p("client-self.crt"), &cself.to_pem().unwrap());
        put(&p("client-self.key"), &pem_key(&self_key));
        put(&p("as-rsa.key"), &pem_key(&as_rsa));
        put(&p("as-ec.key"), &pem_key(&as_ec));
        put(&p("as-ed25519.key"), &pem_key(&as_ed));
        put(&p("rs-pkjwt.key"), &pem_key(&pkjwt));
        AsPki {
            dir: dir.to_path_buf(),
            ca_cert: p("ca.crt"),
            client_pki_cert: p("client-pki.crt"),
            client_pki_key: p("client-pki.key"),
            client_other_cert: p("client-other.crt"),
            client_other_key: p("client-other.key"),
            client_self_cert: p("client-self.crt"),
            client_self_key: p("client-self.key"),
            thumb_self: super::x5t_s256(&cself),
            thumb_pki: super::x5t_s256(&cpki),
            thumb_other: super::x5t_s256(&cother),
            as_rsa,
            pkjwt,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real AS (tests/realas, npm oidc-provider)
// ---------------------------------------------------------------------------------------------

/// The default resource server of the AS (RS256 JWTs).
pub(crate) const RS: &str = "https://rs.example.test";

/// `rs-client`'s credentials (client_secret_basic), for introspection.
pub(crate) const RS_CLIENT: (&str, &str) = ("rs-client", "rs-secret");
pub(crate) const POST_CLIENT: (&str, &str) = ("post-client", "post-secret");
pub(crate) const SECRETJWT_CLIENT: (&str, &str) = (
    "secretjwt-client",
    "secretjwt-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdef",
);

/// How a token request authenticates at the AS.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AsClient {
    /// `basic-client` / `basic-secret` (client_secret_basic): plain bearer tokens.
    Basic,
    /// `self-signed-mtls-client` with `client-self.crt`: certificate-bound tokens.
    SelfSigned,
    /// `pki-mtls-client` with `client-pki.crt`: certificate-bound tokens.
    Pki,
}

/// A running `node tests/realas/server.mjs`. One per test binary ([`real_as`]); killed at exit
/// (atexit) and, should the test binary die without running exit handlers, node exits by itself
/// when its standard input (a pipe from this process) reaches EOF.
pub(crate) struct RealAs {
    pub(crate) port: u16,
    /// `https://127.0.0.1:<port>`
    pub(crate) issuer: String,
    pub(crate) pki: AsPki,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    child: Mutex<Option<(Child, ChildStdin)>>,
}

static REAL_AS: OnceLock<RealAs> = OnceLock::new();

unsafe extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

extern "C" fn stop_real_as_at_exit() {
    if let Some(a) = REAL_AS.get() {
        a.stop();
        if std::env::var_os("KEEP_HTTPD_DIR").is_none() {
            let _ = fs::remove_dir_all(&a.dir);
        }
    }
}

/// The test binary's real AS, started on first use.
pub(crate) fn real_as() -> &'static RealAs {
    REAL_AS.get_or_init(|| {
        let a = RealAs::start();
        // SAFETY: registering a plain extern "C" function without captured state.
        unsafe {
            atexit(stop_real_as_at_exit);
        }
        a
    })
}

/// `tests/realas` of this crate.
pub(crate) fn realas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realas")
}

/// Install `tests/realas/node_modules` with `npm ci` when it is missing. The install happens in
/// a scratch directory that is then renamed into place, so concurrent test binaries cannot see a
/// half-installed tree.
fn ensure_node_modules() {
    let dir = realas_dir();
    if dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return;
    }
    let scratch = dir.join(format!(".npm-ci-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    for f in ["package.json", "package-lock.json"] {
        fs::copy(dir.join(f), scratch.join(f)).unwrap();
    }
    let r = run_limited(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&scratch),
        Duration::from_secs(300),
    );
    let res = match r {
        Ok((true, _, _)) => fs::rename(scratch.join("node_modules"), dir.join("node_modules"))
            .or_else(|e| {
                if dir.join("node_modules/oidc-provider").is_dir() {
                    Ok(()) // another test binary won the race
                } else {
                    Err(e.to_string())
                }
            }),
        Ok((false, o, e)) => Err(format!("npm ci failed:\n{o}\n{e}")),
        Err(e) => Err(format!(
            "{e}\n(`npm` is needed once to install tests/realas/node_modules: install node + npm, \
             e.g. `apt-get install nodejs npm`, or run `npm ci` in tests/realas)"
        )),
    };
    let _ = fs::remove_dir_all(&scratch);
    if let Err(e) = res {
        panic!(
            "cannot install the real AS's dependencies in {}: {e}",
            dir.display()
        );
    }
}

/// Remove AS directories left by test processes that no longer exist (killed without running
/// their exit handlers).
fn remove_stale_dirs() {
    let Ok(rd) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("mod_oauth2-realas-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl RealAs {
    fn start() -> RealAs {
        ensure_node_modules();
        remove_stale_dirs();
        let node = std::env::var("NODE_BIN").unwrap_or_else(|_| "node".into());
        let dir = std::env::temp_dir().join(format!(
            "mod_oauth2-realas-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        let mut pki = Some(AsPki::new(&dir.join("pki")));
        let log = dir.join("realas.log");
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let logf = fs::File::create(&log).unwrap();
            let pki_dir = pki.as_ref().unwrap().dir.clone();
            let mut child = Command::new(&node)
                .arg(realas_dir().join("server.mjs"))
                .args(["--port", &port.to_string(), "--watch-stdin", "--pki"])
                .arg(&pki_dir)
                .current_dir(realas_dir())
                .stdin(Stdio::piped())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run `{node}` (node.js is needed for the real AS): {e}")
                });
            let stdin = child.stdin.take().unwrap();
            let a = RealAs {
                port,
                issuer: format!("https://127.0.0.1:{port}"),
                pki: pki.take().unwrap(),
                dir: dir.clone(),
                log: log.clone(),
                child: Mutex::new(Some((child, stdin))),
            };
            let ready = poll(Duration::from_secs(20), || {
                if a.exited() {
                    return Some(false);
                }
                a.discovery_ok().then_some(true)
            });
            if ready == Some(true) {
                return a;
            }
            a.stop();
            last = fs::read_to_string(&log).unwrap_or_default();
            if !last.contains("EADDRINUSE") {
                break;
            }
            // port race with another process: try another port with the same PKI
            pki = Some(a.into_pki());
        }
        panic!("the real AS did not start (log {}):\n{last}", log.display());
    }

    fn into_pki(self) -> AsPki {
        let RealAs { pki, .. } = self;
        pki
    }

    fn discovery_ok(&self) -> bool {
        let r = run_limited(
            curl()
                .arg("-f")
                .arg("--cacert")
                .arg(&self.pki.ca_cert)
                .arg(self.url("/.well-known/openid-configuration")),
            Duration::from_secs(5),
        );
        matches!(r, Ok((true, _, _)))
    }

    fn exited(&self) -> bool {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some((c, _)) => c.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// Kill node (SIGKILL) and reap it. Idempotent.
    pub(crate) fn stop(&self) {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((mut c, stdin)) = g.take() {
            drop(stdin);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `<issuer><path>`
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub(crate) fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    pub(crate) fn jwks_url(&self) -> String {
        self.url("/jwks")
    }

    pub(crate) fn introspection_url(&self) -> String {
        self.url("/token/introspection")
    }

    /// The last `n` lines of the AS's log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let t = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn post(&self, path: &str, auth: &[&str], form: &[(&str, &str)]) -> (u16, String) {
        let mut c = curl();
        c.arg("--cacert")
            .arg(&self.pki.ca_cert)
            .args(["-w", "\n%{http_code}"]);
        c.args(auth);
        for (k, v) in form {
            c.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        c.arg(self.url(path));
        let (_, out, err) = run_limited(&mut c, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("POST {path} at the real AS: {e}"));
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        let code: u16 = code.trim().parse().unwrap_or(0);
        if code == 0 {
            panic!(
                "POST {path} at the real AS failed: {err}\n--- AS log ---\n{}",
                self.log_tail(20)
            );
        }
        (code, body.to_string())
    }

    fn client_auth(&self, client: AsClient) -> (Vec<String>, Vec<(&'static str, &'static str)>) {
        match client {
            AsClient::Basic => (
                vec!["-u".into(), "basic-client:basic-secret".into()],
                vec![],
            ),
            AsClient::SelfSigned => (
                vec![
                    "--cert".into(),
                    self.pki.client_self_cert.display().to_string(),
                    "--key".into(),
                    self.pki.client_self_key.display().to_string(),
                ],
                vec![("client_id", "self-signed-mtls-client")],
            ),
            AsClient::Pki => (
                vec![
                    "--cert".into(),
                    self.pki.client_pki_cert.display().to_string(),
                    "--key".into(),
                    self.pki.client_pki_key.display().to_string(),
                ],
                vec![("client_id", "pki-mtls-client")],
            ),
        }
    }

    /// The token endpoint's JSON response for a client_credentials grant (panics unless 200
    /// with an `access_token`). `resource` is a path under [`RS`] (`/rs256`, `/es256`, `/opaque`...).
    pub(crate) fn token_response(&self, client: AsClient, resource: &str, scope: &str) -> Value {
        let (auth, mut form) = self.client_auth(client);
        let res = format!("{RS}{resource}");
        form.push(("grant_type", "client_credentials"));
        let mut form: Vec<(&str, &str)> = form;
        form.push(("resource", &res));
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
        let (code, body) = self.post("/token", &auth, &form);
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if code != 200 || !v["access_token"].is_string() {
            panic!(
                "token request ({client:?}, {res}, scope {scope:?}) -> {code} {body}\n--- AS log ---\n{}",
                self.log_tail(20)
            );
        }
        v
    }

    /// An access token (see [`RealAs::token_response`]).
    pub(crate) fn token(&self, client: AsClient, resource: &str, scope: &str) -> String {
        self.token_response(client, resource, scope)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Revoke a token as `rs-client` (RFC 7009); panics unless 200.
    pub(crate) fn revoke(&self, token: &str) {
        let (code, body) = self.post(
            "/token/revocation",
            &["-u", "rs-client:rs-secret"],
            &[("token", token)],
        );
        assert_eq!(code, 200, "revocation: {body}");
    }

    /// Introspect a token as `rs-client` (RFC 7662): the JSON response.
    pub(crate) fn introspect(&self, token: &str) -> Value {
        let (code, body) = self.post(
            "/token/introspection",
            &["-u", "rs-client:rs-secret"],
            &[("token", token)],
        );
        assert_eq!(code, 200, "introspection: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A JWT that looks like the AS's RS256 tokens (kid `rsa-1`, signed with the AS's RSA key)
    /// but with the given claims: for issuer-binding tests.
    pub(crate) fn mint_with_as_key(&self, claims: &Value) -> String {
        mint_rs256(&self.pki.as_rsa, "rsa-1", claims)
    }

    /// The private JWK of `pkjwt-client` (for `introspect.auth=private_key_jwt&jwk=...`).
    pub(crate) fn pkjwt_jwk(&self) -> String {
        rsa_private_jwk(&self.pki.pkjwt, "pkjwt-1")
    }
}

// ---------------------------------------------------------------------------------------------
// Scriptable HTTP server
// ---------------------------------------------------------------------------------------------

/// One request as the mock server saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// The request target (path and query).
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

impl Seen {
    /// The path without the query.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as a form (`application/x-www-form-urlencoded`).
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        form_decode(&self.body)
    }

    /// The first value of a form parameter.
    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the mock server does with a request.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// Status, Content-Type, body.
    Full(u16, String, Vec<u8>),
    /// Accept, read the request, never answer (until the server stops, at most 120 s).
    Hang,
    /// Close the connection without a response.
    Close,
    /// `302 Found` with this `Location`.
    Redirect(String),
}

impl Reply {
    /// 200 `application/json` with `v` serialised.
    pub(crate) fn json(v: &Value) -> Reply {
        Reply::Full(200, "application/json".into(), v.to_string().into_bytes())
    }

    /// `status` with a raw body and a content type.
    pub(crate) fn raw(status: u16, ctype: &str, body: &str) -> Reply {
        Reply::Full(status, ctype.into(), body.as_bytes().to_vec())
    }
}

type Handler = Box<dyn FnMut(&Seen) -> Reply + Send>;

/// A plain-HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection: close`), whose
/// replies come from a replaceable handler and which records every request. Stopped on drop
/// (also ends hanging connections).
pub(crate) struct MockServer {
    pub(crate) port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Mutex<Handler>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl MockServer {
    pub(crate) fn start(handler: impl FnMut(&Seen) -> Reply + Send + 'static) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock server");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (seen2, h2, stop2, conns2) =
            (seen.clone(), handler.clone(), stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s3, h3, st3) = (seen2.clone(), h2.clone(), stop2.clone());
                let t = std::thread::spawn(move || {
                    let _ = serve_mock(conn, &s3, &h3, &st3);
                });
                let mut g = conns2.lock().unwrap();
                g.retain(|t: &JoinHandle<()>| !t.is_finished());
                g.push(t);
            }
            // the listener is dropped here: the port refuses connections from now on
        });
        MockServer {
            port,
            seen,
            handler,
            stop,
            accept: Some(accept),
            conns,
        }
    }

    /// Serve `body` as JSON at every path.
    pub(crate) fn json(body: Value) -> MockServer {
        MockServer::start(move |_| Reply::json(&body))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Replace the handler.
    pub(crate) fn set(&self, handler: impl FnMut(&Seen) -> Reply + Send + 'static) {
        *self.handler.lock().unwrap() = Box::new(handler);
    }

    /// All requests so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Number of requests so far.
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Stop listening (connections are refused from now on), end hanging connections and join
    /// every thread. Idempotent.
    pub(crate) fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = TcpStream::connect_timeout(
                &format!("127.0.0.1:{}", self.port).parse().unwrap(),
                Duration::from_secs(1),
            );
            let _ = t.join();
        }
        let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap());
        for t in conns {
            let _ = t.join();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve_mock(
    mut conn: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    handler: &Mutex<Handler>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    if stop.load(Ordering::SeqCst) {
        return Ok(()); // the wake-up connection of shutdown()
    }
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let rl: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len.min(1 << 20) {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let s = Seen {
        method: rl.first().unwrap_or(&"").to_string(),
        target: rl.get(1).unwrap_or(&"").to_string(),
        headers,
        body,
        at: Instant::now(),
    };
    let reply = (handler.lock().unwrap())(&s);
    seen.lock().unwrap().push(s);
    let (reply, location) = match reply {
        Reply::Redirect(to) => (
            Reply::Full(302, "text/plain".into(), b"moved".to_vec()),
            format!("Location: {to}\r\n"),
        ),
        r => (r, String::new()),
    };
    match reply {
        Reply::Full(status, ctype, body) => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            conn.write_all(&out)?;
            conn.flush()?;
            let _ = conn.shutdown(Shutdown::Write);
            // let the client read everything before the socket closes
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.read(&mut chunk);
        }
        Reply::Hang => {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Close | Reply::Redirect(_) => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Flood client
// ---------------------------------------------------------------------------------------------

/// GET `url` once per token (as `Authorization: Bearer <token>`), spread over `procs` curl
/// processes that each reuse their connection (keep-alive), all running at the same time.
/// Returns the status codes (0 = no response) and the wall time.
pub(crate) fn flood(url: &str, tokens: &[String], procs: usize) -> (Vec<u16>, Duration) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mod_oauth2-flood-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).unwrap();
    let per = tokens.len().div_ceil(procs.max(1));
    let mut cfgs = Vec::new();
    for (i, chunk) in tokens.chunks(per.max(1)).enumerate() {
        let mut c = String::new();
        for (j, t) in chunk.iter().enumerate() {
            if j > 0 {
                c.push_str("next\n");
            }
            let _ = write!(
                c,
                "url = \"{url}\"\nheader = \"Authorization: Bearer {t}\"\noutput = \"/dev/null\"\nwrite-out = \"%{{http_code}}\\n\"\n"
            );
        }
        let p = dir.join(format!("flood-{i}.cfg"));
        fs::write(&p, c).unwrap();
        cfgs.push(p);
    }
    let start = Instant::now();
    let handles: Vec<_> = cfgs
        .into_iter()
        .map(|p| {
            std::thread::spawn(move || {
                let mut c =
                    Command::new(std::env::var("CURL_BIN").unwrap_or_else(|_| "curl".into()));
                c.arg("-q")
                    .args(["-s", "--max-time", "60", "--noproxy", "*", "-K"])
                    .arg(&p);
                match run_limited(&mut c, Duration::from_secs(90)) {
                    Ok((_, out, _)) => out
                        .lines()
                        .map(|l| l.trim().parse::<u16>().unwrap_or(0))
                        .collect::<Vec<_>>(),
                    Err(_) => vec![],
                }
            })
        })
        .collect();
    let mut codes = Vec::new();
    for h in handles {
        codes.extend(h.join().unwrap_or_default());
    }
    let took = start.elapsed();
    let _ = fs::remove_dir_all(&dir);
    (codes, took)
}

/// Histogram of status codes.
pub(crate) fn histogram(codes: &[u16]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for c in codes {
        *m.entry(*c).or_insert(0) += 1;
    }
    m
}
