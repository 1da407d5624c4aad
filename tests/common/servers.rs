//! Real cache servers for the `OAuth2Cache` tests: `redis-server` (with `requirepass`, with an ACL
//! user, or open) and `memcached`, each on a free 127.0.0.1 port, with its files in a private
//! directory. Every server is killed (SIGKILL to its own pid, after SIGCONT in case it was paused)
//! and reaped on drop, also when a test panics.
//!
//! Small clients are included (RESP for Redis, the text protocol for memcached) so that a test can
//! look at what the module stored without `redis-cli`.

use super::{Pki, free_port, poll};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!(
        "mod_oauth2-it-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&d).expect("create server dir");
    d
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

fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn connect(port: u16, limit: Duration) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    Ok(s)
}

/// Kills (SIGCONT first, in case it was stopped) and reaps a child. Idempotent.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        send_signal(c.id(), "CONT");
        let _ = c.kill();
        let _ = c.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// How clients authenticate at a [`Redis`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RedisAuth {
    /// No authentication.
    Open,
    /// `requirepass <password>` (the `default` user).
    Password(String),
    /// `user default off` and `user <name> on ><password> ~* &* +@all`: only `AUTH <name>
    /// <password>` works.
    User(String, String),
}

/// Whether a TLS [`Redis`] asks clients for a certificate (`tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsClients {
    /// `tls-auth-clients no`.
    NotAsked,
    /// `tls-auth-clients yes`: only client certificate A of the server's [`Pki`] is trusted.
    RequireA,
}

/// The TLS side of a [`Redis`]: a `tls-port` with the server certificate of its own [`Pki`]
/// (issued by the PKI's CA for `localhost` and 127.0.0.1; the server listens on 127.0.0.2 as
/// well, a name the certificate does not carry).
#[derive(Clone, Debug)]
pub(crate) struct RedisTls {
    pub(crate) port: u16,
    pub(crate) pki: Pki,
    pub(crate) clients: TlsClients,
}

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

/// A `redis-server` on 127.0.0.1 (no persistence).
pub(crate) struct Redis {
    /// The plain port (the tests' own client always uses it).
    pub(crate) port: u16,
    pub(crate) auth: RedisAuth,
    pub(crate) dir: PathBuf,
    /// With [`Redis::start_tls`]: the TLS port and its PKI.
    pub(crate) tls: Option<RedisTls>,
    child: Option<Child>,
}

impl Redis {
    /// Starts on a free port (a few attempts on a port race); panics with the server's log when
    /// it does not come up.
    pub(crate) fn start(auth: RedisAuth) -> Redis {
        Redis::start_with(auth, None)
    }

    /// Starts with a plain port and a TLS port (`tls-port`); see [`RedisTls`].
    pub(crate) fn start_tls(auth: RedisAuth, clients: TlsClients) -> Redis {
        Redis::start_with(auth, Some(clients))
    }

    fn start_with(auth: RedisAuth, tls: Option<TlsClients>) -> Redis {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = scratch_dir("redis");
            let tls = tls.map(|clients| RedisTls {
                port: free_port(),
                pki: Pki::new(&dir.join("pki")),
                clients,
            });
            let mut r = Redis {
                port: free_port(),
                auth: auth.clone(),
                dir,
                tls,
                child: None,
            };
            match r.spawn() {
                Ok(()) => return r,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start:\n{last}");
    }

    /// The URL-query options for `OAuth2Cache redis` pointing at this server (no `name`).
    pub(crate) fn cache_options(&self) -> String {
        let mut o = format!("host=127.0.0.1&port={}", self.port);
        match &self.auth {
            RedisAuth::Open => {}
            RedisAuth::Password(p) => o.push_str(&format!("&password={p}")),
            RedisAuth::User(u, p) => o.push_str(&format!("&username={u}&password={p}")),
        }
        o
    }

    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.display().to_string();
        let mut conf = format!(
            "port {}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nsave \"\"\nappendonly no\n\
             dir {d}\nlogfile {d}/redis.log\ndatabases 1\n",
            self.port
        );
        match &self.auth {
            RedisAuth::Open => {}
            RedisAuth::Password(p) => conf.push_str(&format!("requirepass {p}\n")),
            RedisAuth::User(u, p) => {
                conf.push_str(&format!("user default off\nuser {u} on >{p} ~* &* +@all\n"))
            }
        }
        if let Some(tls) = &self.tls {
            // Trusted client certificates: the CA, and client certificate A (self-signed).
            let client_ca = self.dir.join("client-ca.pem");
            let mut pem = fs::read(&tls.pki.ca_cert).map_err(|e| format!("read CA: {e}"))?;
            pem.extend(fs::read(&tls.pki.client_a_cert).map_err(|e| format!("read A: {e}"))?);
            fs::write(&client_ca, pem).map_err(|e| format!("write client CA: {e}"))?;
            let auth_clients = match tls.clients {
                TlsClients::NotAsked => "no",
                TlsClients::RequireA => "yes",
            };
            conf = conf.replace("bind 127.0.0.1\n", "bind 127.0.0.1 127.0.0.2\n");
            conf.push_str(&format!(
                "tls-port {}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients {auth_clients}\n",
                tls.port,
                tls.pki.server_cert.display(),
                tls.pki.server_key.display(),
                client_ca.display()
            ));
        }
        let conf_path = self.dir.join("redis.conf");
        fs::write(&conf_path, conf).map_err(|e| format!("write redis.conf: {e}"))?;
        let child = Command::new("redis-server")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.dir.join("stdout.log")).unwrap())
            .stderr(fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (apt-get install redis-server): {e}"))?;
        self.child = Some(child);
        let ready = poll(Duration::from_secs(10), || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                return Some(Err(format!("redis-server exited: {st}")));
            }
            matches!(self.command(&["PING"]), Ok(Resp::Simple(ref s)) if s == "PONG")
                .then_some(Ok(()))
        });
        let res = ready.unwrap_or_else(|| Err("redis-server did not answer PING in 10 s".into()));
        if let Err(e) = res {
            let log = self.log();
            kill_child(&mut self.child);
            return Err(format!("{e}\n--- redis log ---\n{log}"));
        }
        Ok(())
    }

    /// The `OAuth2Cache redis` options for the TLS port (`tls=on`, `ca_file=` the server's CA),
    /// connecting to `host` (no `name`).
    pub(crate) fn tls_cache_options(&self, host: &str) -> String {
        let tls = self.tls.as_ref().expect("a Redis started with start_tls");
        let mut o = format!(
            "host={host}&port={}&tls=on&ca_file={}",
            tls.port,
            tls.pki.ca_cert.display()
        );
        match &self.auth {
            RedisAuth::Open => {}
            RedisAuth::Password(p) => o.push_str(&format!("&password={p}")),
            RedisAuth::User(u, p) => o.push_str(&format!("&username={u}&password={p}")),
        }
        o
    }

    /// The ids of the client connections to `port` (`CLIENT LIST`, field `laddr`).
    pub(crate) fn client_ids_on(&self, port: u16) -> Vec<u64> {
        let list = match self.command(&["CLIENT", "LIST"]) {
            Ok(Resp::Bulk(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("CLIENT LIST: {other:?}"),
        };
        let suffix = format!(":{port}");
        list.lines()
            .filter(|l| {
                l.split(' ').any(|f| {
                    f.strip_prefix("laddr=")
                        .is_some_and(|a| a.ends_with(&suffix))
                })
            })
            .filter_map(|l| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix("id="))
                    .and_then(|v| v.parse().ok())
            })
            .collect()
    }

    /// The server's log file.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL now (connections are reset, the port refuses connections).
    pub(crate) fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts again on the same port, with the same authentication (the data is gone).
    pub(crate) fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        // The port was ours a moment ago; a few bounded attempts in case it is still held.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}:\n{last}",
            self.port
        );
    }

    /// SIGSTOP: the server keeps its socket (the kernel still accepts connections) but answers
    /// nothing until [`Redis::resume`].
    pub(crate) fn pause(&self) {
        if let Some(p) = self.pid() {
            send_signal(p, "STOP");
            // Delivery is asynchronous: wait (bounded) until the process is really stopped.
            let stat = format!("/proc/{p}/stat");
            for _ in 0..200 {
                let state = std::fs::read_to_string(&stat).unwrap_or_default();
                let stopped = state
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|st| st == "T" || st == "t");
                if stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub(crate) fn resume(&self) {
        if let Some(p) = self.pid() {
            send_signal(p, "CONT");
        }
    }

    /// One command on a fresh, authenticated connection (1 s timeouts).
    pub(crate) fn command(&self, args: &[&str]) -> Result<Resp, String> {
        let mut s = connect(self.port, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        match &self.auth {
            RedisAuth::Open => {}
            RedisAuth::Password(p) => expect_ok(resp_call(&mut s, &["AUTH", p])?)?,
            RedisAuth::User(u, p) => expect_ok(resp_call(&mut s, &["AUTH", u, p])?)?,
        }
        resp_call(&mut s, args)
    }

    /// Number of keys (`DBSIZE`); panics when the server cannot be asked.
    pub(crate) fn dbsize(&self) -> i64 {
        match self.command(&["DBSIZE"]) {
            Ok(Resp::Int(n)) => n,
            other => panic!("DBSIZE: {other:?}"),
        }
    }

    /// All keys (`KEYS *`).
    pub(crate) fn keys(&self) -> Vec<String> {
        match self.command(&["KEYS", "*"]) {
            Ok(Resp::Array(items)) => items
                .into_iter()
                .filter_map(|i| match i {
                    Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                })
                .collect(),
            other => panic!("KEYS *: {other:?}"),
        }
    }

    /// `GET key`.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.command(&["GET", key]) {
            Ok(Resp::Bulk(v)) => v,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// `TTL key` in seconds (-2 missing, -1 no expiry).
    pub(crate) fn ttl(&self, key: &str) -> i64 {
        match self.command(&["TTL", key]) {
            Ok(Resp::Int(n)) => n,
            other => panic!("TTL {key}: {other:?}"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if std::thread::panicking() || std::env::var_os("KEEP_HTTPD_DIR").is_some() {
            eprintln!("servers: kept redis directory {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn expect_ok(r: Resp) -> Result<(), String> {
    match r {
        Resp::Simple(s) if s == "OK" => Ok(()),
        other => Err(format!("AUTH: {other:?}")),
    }
}

fn resp_encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn resp_call(s: &mut TcpStream, args: &[&str]) -> Result<Resp, String> {
    s.write_all(&resp_encode(args)).map_err(|e| e.to_string())?;
    let mut r = Reader {
        s,
        buf: Vec::new(),
        pos: 0,
    };
    r.resp()
}

struct Reader<'a> {
    s: &'a mut TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader<'_> {
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        let n = self.s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(p) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[self.pos..self.pos + p]).into_owned();
                self.pos += p + 2;
                return Ok(l);
            }
            if self.buf.len() > 64 << 20 {
                return Err("reply too large".into());
            }
            self.fill()?;
        }
    }

    fn block(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < self.pos + n + 2 {
            self.fill()?;
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n + 2;
        Ok(v)
    }

    fn resp(&mut self) -> Result<Resp, String> {
        let l = self.line()?;
        let (kind, rest) = l.split_at(1.min(l.len()));
        let int = |s: &str| s.parse::<i64>().map_err(|_| format!("bad RESP line {l:?}"));
        match kind {
            "+" => Ok(Resp::Simple(rest.into())),
            "-" => Ok(Resp::Error(rest.into())),
            ":" => Ok(Resp::Int(int(rest)?)),
            "$" => {
                let n = int(rest)?;
                if n < 0 {
                    return Ok(Resp::Bulk(None));
                }
                Ok(Resp::Bulk(Some(self.block(n as usize)?)))
            }
            "*" => {
                let n = int(rest)?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(self.resp()?);
                }
                Ok(Resp::Array(items))
            }
            _ => Err(format!("bad RESP line {l:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// memcached
// ---------------------------------------------------------------------------------------------

/// A `memcached` on 127.0.0.1 (TCP only, 16 MB).
pub(crate) struct Memcached {
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    child: Option<Child>,
}

impl Memcached {
    pub(crate) fn start() -> Memcached {
        let mut last = String::new();
        for _ in 0..5 {
            let mut m = Memcached {
                port: free_port(),
                dir: scratch_dir("memcached"),
                child: None,
            };
            match m.spawn() {
                Ok(()) => return m,
                Err(e) => last = e,
            }
        }
        panic!("memcached did not start:\n{last}");
    }

    /// `config_string=--SERVER=127.0.0.1:<port>` for `OAuth2Cache memcache` (query-encoded).
    pub(crate) fn cache_options(&self) -> String {
        format!("config_string=--SERVER%3D127.0.0.1%3A{}", self.port)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-m", "16", "-t", "2"])
            .arg("-p")
            .arg(self.port.to_string());
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.dir.join("stdout.log")).unwrap())
            .stderr(fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .map_err(|e| format!("cannot run memcached (apt-get install memcached): {e}"))?;
        self.child = Some(child);
        let ready = poll(Duration::from_secs(10), || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                return Some(Err(format!("memcached exited: {st}")));
            }
            self.text_command("version")
                .ok()
                .filter(|r| r.starts_with("VERSION"))
                .map(|_| Ok(()))
        });
        let res = ready.unwrap_or_else(|| Err("memcached did not answer in 10 s".into()));
        if let Err(e) = res {
            let log = fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
            kill_child(&mut self.child);
            return Err(format!("{e}\n--- memcached stderr ---\n{log}"));
        }
        Ok(())
    }

    /// One text-protocol command (`version`, `stats`...); the reply up to `END`/the first line.
    pub(crate) fn text_command(&self, cmd: &str) -> Result<String, String> {
        let mut s = connect(self.port, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        s.write_all(format!("{cmd}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&buf);
            let done = if cmd.starts_with("stats") {
                text.ends_with("END\r\n")
            } else {
                text.ends_with("\r\n")
            };
            if done {
                return Ok(text.into_owned());
            }
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One counter of `stats` (e.g. `curr_items`, `get_hits`, `cmd_set`).
    pub(crate) fn stat(&self, name: &str) -> u64 {
        let text = self
            .text_command("stats")
            .unwrap_or_else(|e| panic!("memcached stats: {e}"));
        text.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some("STAT") && it.next() == Some(name))
                    .then(|| it.next().and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no STAT {name} in {text}"))
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if std::thread::panicking() || std::env::var_os("KEEP_HTTPD_DIR").is_some() {
            eprintln!("servers: kept memcached directory {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
