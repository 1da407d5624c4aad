//! A raw-header HTTP backend behind mod_proxy: echoes and records request heads (and bodies).

use super::sys::find;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with 200 and the raw request
/// head (request line + header lines, exactly as received, up to and including the blank line)
/// as the body. It also records every head. Stopped on drop.
pub(crate) struct RawBackend {
    pub(crate) port: u16,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawBackend {
    pub(crate) fn start() -> RawBackend {
        Self::start_inner(false)
    }

    /// Like [`RawBackend::start`], but also reads the request body (`Content-Length` or chunked,
    /// de-chunked) and answers with the raw head followed
    /// by the body (split them with [`split_head_body`]).
    pub(crate) fn start_with_bodies() -> RawBackend {
        Self::start_inner(true)
    }

    fn start_inner(read_bodies: bool) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h2, s2) = (heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let h3 = h2.clone();
                std::thread::spawn(move || {
                    let _ = serve_raw(&mut conn, &h3, read_bodies);
                });
            }
        });
        RawBackend {
            port,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash: `<Location /p> ProxyPass <url>` maps
    /// `/p/x` to `/x`)
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// All request heads received so far.
    pub(crate) fn heads(&self) -> Vec<Vec<u8>> {
        self.heads.lock().unwrap().clone()
    }
}

/// A response of [`RawBackend::start_with_bodies`] split into the raw request head (up to and
/// including the blank line) and the request body.
pub(crate) fn split_head_body(echo: &[u8]) -> (&[u8], &[u8]) {
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
    read_body: bool,
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
    if read_body {
        let body = read_request_body(conn, &head, buf[end..].to_vec())?;
        echo.extend_from_slice(&body);
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
pub(crate) fn raw_head_fields(head: &[u8]) -> Vec<(String, String)> {
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
