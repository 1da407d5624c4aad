//! The private httpd configuration: what a test puts in ([`HttpdConfig`]) and the file the
//! harness renders from it (modules, MPM tuning, the TLS and plain virtual hosts, the CGIs).

use super::module_under_test::module_path;
use super::pki::Pki;
use super::sys::{apache_modules_dir, is_root, write_file};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Quote a string as one Apache configuration argument (`"` and `\` escaped).
pub(crate) fn apache_quote(s: &str) -> String {
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

/// A `LoadModule` line for an Apache module that the harness does not load itself, e.g.
/// `load_module("rewrite_module", "mod_rewrite.so")` (for [`HttpdConfig::server`]).
pub(crate) fn load_module(name: &str, file: &str) -> String {
    format!("LoadModule {name} {}/{file}\n", apache_modules_dir())
}

/// `<Location path>` with `AuthType oauth2`, the given directives and `Require valid-user`.
pub(crate) fn oauth2_location(path: &str, directives: &str) -> String {
    format!("<Location {path}>\nAuthType oauth2\n{directives}\nRequire valid-user\n</Location>\n")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mpm {
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
pub(crate) struct HttpdConfig {
    pub(crate) mpm: Mpm,
    /// Load mod_oauth2 (default true). False = plain Apache, for harness self-tests.
    pub(crate) load_oauth2: bool,
    /// Directives at server level (after the LoadModule lines and the base setup).
    pub(crate) server: String,
    /// Directives put into BOTH virtual hosts (the TLS one and the plain-HTTP one).
    pub(crate) body: String,
    /// Directives only for the TLS virtual host.
    pub(crate) tls_body: String,
    /// Directives only for the plain-HTTP virtual host.
    pub(crate) plain_body: String,
    /// `LogLevel` value; default `info ssl:warn oauth2:debug` (without `oauth2:` when the module
    /// is not loaded).
    pub(crate) log_level: Option<String>,
}

impl HttpdConfig {
    pub(crate) fn new(body: impl Into<String>) -> HttpdConfig {
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

    pub(crate) fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    pub(crate) fn without_oauth2(mut self) -> Self {
        self.load_oauth2 = false;
        self
    }

    pub(crate) fn server(mut self, s: impl Into<String>) -> Self {
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

/// The path the harness asks to learn that this httpd is up.
pub(super) const READY_PATH: &str = "/__harness_ready";
/// The response header that proves the answer came from this httpd: a port chosen free may be
/// taken by another test's server before apache binds it, and that server answers HTTP too.
pub(super) const READY_HEADER: &str = "X-Harness-Ready";

/// This httpd's own value of [`READY_HEADER`]: its directory name, unique per start.
pub(super) fn ready_marker(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

pub(super) fn render(
    cfg: &HttpdConfig,
    dir: &Path,
    pki: &Pki,
    https_port: u16,
    http_port: u16,
) -> String {
    let mods = apache_modules_dir();
    let d = dir.display().to_string();
    let subst = |s: &str| {
        s.replace("@DIR@", &d)
            .replace("@CGI@", &format!("{d}/cgi-bin/env.cgi"))
            .replace("@HTDOCS@", &format!("{d}/htdocs"))
    };
    let mut c = String::new();
    let (mpm_name, mpm_file) = cfg.mpm.module();
    let _ = writeln!(c, "# generated by tests/common/httpd_config.rs");
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
<Location {READY_PATH}>
Header always set {READY_HEADER} \"{ready}\"
</Location>
",
        tuning = cfg.mpm.tuning(),
        ready = ready_marker(dir),
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
    c
}

pub(super) fn prepare_dir(dir: &Path) {
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
