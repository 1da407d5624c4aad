//! The `curl` client: request builder ([`Req`]), parsed [`Response`], what the CGIs report.

use super::httpd::Httpd;
use super::pki::ClientCert;
use super::sys::{curl_bin, find, unique_dir, write_file};
use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};

impl Httpd {
    /// `https://127.0.0.1:<port><path>` request builder (TLS vhost).
    pub(crate) fn https(&self, path: &str) -> Req<'_> {
        Req::new(
            self,
            format!("https://127.0.0.1:{}{path}", self.https_port),
            true,
        )
    }

    /// `http://127.0.0.1:<port><path>` request builder (plain vhost).
    pub(crate) fn http(&self, path: &str) -> Req<'_> {
        Req::new(
            self,
            format!("http://127.0.0.1:{}{path}", self.http_port),
            false,
        )
    }

    /// One `GET https://...<path>` per token, all on one keep-alive connection (one curl, its
    /// transfers joined by `--next`), presenting `cert` if given. Returns, per request, the status
    /// and whether curl had to open a new connection for it.
    pub(crate) fn keep_alive(
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

/// A request through the `curl` binary (real TLS, optional client certificate).
pub(crate) struct Req<'a> {
    httpd: &'a Httpd,
    url: String,
    tls: bool,
    headers: Vec<String>,
    cert: Option<ClientCert>,
    method: Option<String>,
    body: Option<Vec<u8>>,
    /// Local address to connect from (`curl --interface`), e.g. 127.0.0.2 as another peer.
    from: Option<String>,
}

impl Httpd {
    /// A request to `url`, another server of the test in front of this httpd (a proxy), with
    /// this httpd's PKI (CA and client certificates).
    pub(crate) fn request_to(&self, url: String) -> Req<'_> {
        let tls = url.starts_with("https://");
        Req::new(self, url, tls)
    }
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
            from: None,
        }
    }

    /// Connect from local address `ip` (any 127.0.0.0/8 address is this host): how a test is
    /// another peer than 127.0.0.1.
    pub(crate) fn source_addr(mut self, ip: &str) -> Self {
        self.from = Some(ip.to_string());
        self
    }

    /// Send `data` as the request body (`curl --data-binary`: method POST unless [`Req::method`]
    /// says otherwise; curl's default `Content-Type` is `application/x-www-form-urlencoded`, set
    /// another with [`Req::header`]). Add `Transfer-Encoding: chunked` as a header to send it
    /// chunked.
    pub(crate) fn body(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.body = Some(data.into());
        self
    }

    /// Add a raw header line `Name: value`.
    pub(crate) fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_string());
        self
    }

    /// `Authorization: Bearer <token>`.
    pub(crate) fn bearer(self, token: &str) -> Self {
        self.header(&format!("Authorization: Bearer {token}"))
    }

    /// Present a client certificate in the TLS handshake.
    pub(crate) fn cert(mut self, c: ClientCert) -> Self {
        self.cert = Some(c);
        self
    }

    /// Present a client certificate if `Some`.
    pub(crate) fn maybe_cert(mut self, c: Option<ClientCert>) -> Self {
        self.cert = c;
        self
    }

    pub(crate) fn method(mut self, m: &str) -> Self {
        self.method = Some(m.into());
        self
    }

    /// Send; panics when curl itself fails (connection reset, timeout...).
    pub(crate) fn send(self) -> Response {
        let url = self.url.clone();
        self.try_send()
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
    }

    /// Send; `Err` with curl's message when no HTTP response was received.
    pub(crate) fn try_send(self) -> Result<Response, String> {
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
        if let Some(ip) = &self.from {
            cmd.arg("--interface").arg(ip);
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
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header fields in order (names as sent).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
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
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (name case-insensitive).
    pub(crate) fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single WWW-Authenticate value; panics when there are several.
    pub(crate) fn www_authenticate(&self) -> Option<&str> {
        let all = self.header_all("WWW-Authenticate");
        assert!(all.len() <= 1, "several WWW-Authenticate headers: {all:?}");
        all.first().copied()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The env-dump CGI's environment with raw byte values, whatever the status (e.g. a CGI
    /// reached through an `ErrorDocument`).
    pub(crate) fn env_bytes(&self) -> BTreeMap<String, Vec<u8>> {
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
    pub(crate) fn body_report(&self) -> BodyReport {
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
    pub(crate) fn env(&self) -> BTreeMap<String, String> {
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
pub(crate) struct BodyReport {
    pub(crate) status: u16,
    /// Bytes the CGI read from its stdin (decimal).
    pub(crate) length: String,
    /// Lower-case hex SHA-256 of those bytes.
    pub(crate) sha256: String,
    /// The CGI's `CONTENT_LENGTH` (`unset` when absent).
    pub(crate) content_length: String,
    /// The CGI's `CONTENT_TYPE` (`unset` when absent).
    pub(crate) content_type: String,
    /// The CGI's `REMOTE_USER` (`unset` when absent).
    pub(crate) remote_user: String,
    /// The echoed body.
    pub(crate) body: Vec<u8>,
}
