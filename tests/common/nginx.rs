//! A real nginx (Debian package) terminating TLS, mutual TLS included, in front of a test httpd:
//! how most production deployments forward the client certificate (`$ssl_client_escaped_cert`)
//! and the public URL (`X-Forwarded-Proto`/`-Host`) in request headers.

use super::httpd::Httpd;
use super::sys::{free_port, listens_on, poll};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What nginx sends upstream besides the request (extra `proxy_set_header` lines).
pub(crate) struct NginxFront<'a> {
    /// `proxy_pass` target: the httpd's plain-HTTP port.
    pub(crate) upstream_port: u16,
    /// The source address nginx connects to httpd from (`proxy_bind`): the peer httpd sees.
    pub(crate) bind: &'a str,
    /// `proxy_set_header` lines, e.g. `X-SSL-Client-Cert $ssl_client_escaped_cert`.
    pub(crate) set_headers: &'a [&'a str],
}

pub(crate) struct Nginx {
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on a free 127.0.0.1 port with `httpd`'s server certificate, asking for an
    /// optional client certificate of any issuer (`ssl_verify_client optional_no_ca`), proxying
    /// everything to the httpd. One process (`master_process off`), in the foreground.
    pub(crate) fn start(httpd: &Httpd, front: &NginxFront<'_>) -> Nginx {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = httpd.dir.join(format!("nginx-{}", free_port()));
            fs::create_dir_all(&dir).unwrap();
            let mut n = Nginx {
                port: free_port(),
                dir,
                child: None,
            };
            match n.spawn(httpd, front) {
                Ok(()) => return n,
                Err(e) => last = e,
            }
        }
        panic!("nginx did not start:\n{last}");
    }

    fn spawn(&mut self, httpd: &Httpd, front: &NginxFront<'_>) -> Result<(), String> {
        let d = self.dir.display().to_string();
        let headers: String = front
            .set_headers
            .iter()
            .map(|h| format!("            proxy_set_header {h};\n"))
            .collect();
        let conf = format!(
            "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind {bind};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
{headers}        }}
    }}
}}
",
            port = self.port,
            cert = httpd.pki.server_cert.display(),
            key = httpd.pki.server_key.display(),
            upstream = front.upstream_port,
            bind = front.bind,
        );
        let conf_path = self.dir.join("nginx.conf");
        fs::write(&conf_path, conf).map_err(|e| format!("write nginx.conf: {e}"))?;
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.dir.join("stdout.log")).unwrap())
            .stderr(fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .map_err(|e| format!("cannot run /usr/sbin/nginx (apt-get install nginx): {e}"))?;
        self.child = Some(child);
        let port = self.port;
        let up = poll(Duration::from_secs(10), || {
            let child = self.child.as_mut()?;
            if let Some(st) = child.try_wait().ok().flatten() {
                return Some(Err(format!("nginx exited: {st}")));
            }
            listens_on(child.id(), port).then_some(Ok(()))
        });
        match up.unwrap_or_else(|| Err("nginx did not listen within 10 s".into())) {
            Ok(()) => Ok(()),
            Err(e) => {
                let log = self.log();
                self.stop();
                Err(format!("{e}\n--- nginx log ---\n{log}"))
            }
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
