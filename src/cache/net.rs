//! Deadline-bounded TCP (optionally TLS) connections, a small idle-connection pool and the
//! attempt/retry loop shared by the Redis and memcached clients. Every attempt (connect, TLS
//! handshake, authenticate, command, reply) has one deadline; replies are read through the bounded
//! `reader`, never trusting a length from the wire.

use openssl::ssl::SslStream;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::reader::{OpError, Reader};
use super::store::StoreError;
use super::tls::TlsClient;

/// Idle connections kept per server and process (more concurrent callers open more, then close them).
const MAX_IDLE: usize = 16;

/// A TCP socket whose every read and write is bounded by the current attempt's deadline (also
/// those TLS makes under a connection: the handshake, records, alerts).
pub(crate) struct Deadlined {
    stream: TcpStream,
    deadline: Instant,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl Deadlined {
    fn remaining(&self) -> io::Result<Duration> {
        let r = self.deadline.saturating_duration_since(Instant::now());
        if r.is_zero() { Err(timed_out()) } else { Ok(r) }
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        self.stream.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// What a connection speaks over its socket: plain bytes, or TLS (its state lives as long as the
/// connection, so a pooled connection is reused without a new handshake).
pub(crate) enum Transport {
    Plain(Deadlined),
    Tls(Box<SslStream<Deadlined>>),
}

impl Transport {
    fn socket(&mut self) -> &mut Deadlined {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_mut(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

pub(crate) struct Conn {
    reader: Reader<Transport>,
    /// The process that opened it: a connection inherited across fork() is never used.
    pid: u32,
}

impl Conn {
    /// Connects (and, with `tls`, completes the handshake for `host`) before `deadline`.
    pub(crate) fn connect(
        host: &str,
        port: u16,
        deadline: Instant,
        tls: Option<&TlsClient>,
    ) -> io::Result<Conn> {
        let socket = Deadlined {
            stream: connect_tcp(host, port, deadline)?,
            deadline,
        };
        let transport = match tls {
            None => Transport::Plain(socket),
            Some(tls) => Transport::Tls(Box::new(tls.handshake(host, socket)?)),
        };
        Ok(Conn {
            reader: Reader::new(transport),
            pid: std::process::id(),
        })
    }

    /// Starts an attempt: a new deadline, and no reply byte seen yet.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.reader.get_mut().socket().deadline = deadline;
        self.reader.reset_read_any();
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let out = self.reader.get_mut();
        let mut off = 0;
        while off < data.len() {
            match out.write(&data[off..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "connection closed",
                    ));
                }
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The reply side: lines, values and numbers, bounded (see `reader`).
    pub(crate) fn reader(&mut self) -> &mut Reader<Transport> {
        &mut self.reader
    }

    /// Whether the connection is idle and in sync (no unread bytes) so it can be pooled.
    fn clean(&self) -> bool {
        self.reader.is_clean()
    }
}

fn connect_tcp(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    // Name resolution is the one step not bounded by the deadline (it goes through the
    // system resolver); IP literals and /etc/hosts names resolve without the network.
    let addrs = (host, port).to_socket_addrs()?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address");
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Idle connections of one server, shared by the threads of one process.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    fn take(&self) -> Option<Conn> {
        let pid = std::process::id();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = idle.pop() {
            if c.pid == pid {
                return Some(c);
            }
            // Inherited from the parent: closing our copy of the descriptor is all we may do.
        }
        None
    }

    fn put(&self, conn: Conn) {
        if !conn.clean() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// Runs one command: a pooled or new connection, `op` on it, the connection back to the pool on
/// success. A transport failure on a reused connection before any reply byte (the server closed an
/// idle connection) is retried once on a fresh one; other failures drop the connection, open the
/// breaker and return Unavailable. Each attempt is bounded by `timeout`.
pub(crate) fn run<T>(
    what: &str,
    pool: &Pool,
    backoff: &Backoff,
    timeout: Duration,
    connect: &dyn Fn(Instant) -> Result<Conn, OpError>,
    op: &mut dyn FnMut(&mut Conn) -> Result<T, OpError>,
) -> Result<T, StoreError> {
    backoff.check(what)?;
    let mut retried = false;
    loop {
        let deadline = Instant::now() + timeout;
        let (mut conn, reused) = match pool.take() {
            Some(c) => (c, true),
            None => match connect(deadline) {
                Ok(c) => (c, false),
                Err(e) => {
                    backoff.failure();
                    return Err(StoreError::Unavailable(format!("{what}: connect: {e}")));
                }
            },
        };
        conn.set_deadline(deadline);
        match op(&mut conn) {
            Ok(v) => {
                pool.put(conn);
                backoff.success();
                return Ok(v);
            }
            Err(OpError::Server(m)) => {
                // The server is up and answered: no breaker, the connection stays in sync.
                pool.put(conn);
                return Err(StoreError::Io(format!("{what}: {m}")));
            }
            Err(e) => {
                // A closed idle connection shows as EOF/reset at once; a timeout is not retried
                // (that would double the time a hung server costs).
                let stale = reused
                    && !retried
                    && !conn.reader.read_any()
                    && matches!(&e, OpError::Net(io) if !matches!(io.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock));
                drop(conn);
                if stale {
                    retried = true;
                    continue;
                }
                backoff.failure();
                return Err(StoreError::Unavailable(format!("{what}: {e}")));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A port that was free a moment ago (the kernel does not hand it out again at once).
    pub(crate) fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// A server on a free port that reads one request from each connection, answers `reply`
    /// whatever it was asked, and closes the connection 200 ms later: a faulty cache server.
    pub(crate) fn one_reply_server(reply: &'static [u8]) -> u16 {
        use std::io::{Read, Write};
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = c.write_all(reply);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        port
    }

    /// Waits until something accepts connections on the port.
    pub(crate) fn wait_port(port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nothing listens on port {port} after 10 s");
    }

    /// A server process killed when dropped.
    pub(crate) struct Server {
        pub child: Option<Child>,
        pub port: u16,
        program: String,
        args: Vec<String>,
    }

    impl Server {
        pub(crate) fn start(program: &str, args: Vec<String>, port: u16) -> Server {
            let mut s = Server {
                child: None,
                port,
                program: program.into(),
                args,
            };
            s.restart();
            s
        }

        pub(crate) fn restart(&mut self) {
            self.kill();
            let child = Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {} (install its Debian package): {e}",
                        self.program
                    )
                });
            self.child = Some(child);
            wait_port(self.port);
        }

        pub(crate) fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        pub(crate) fn signal(&self, sig: i32) {
            if let Some(c) = &self.child {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(c.id() as libc::pid_t, sig) };
                if sig == libc::SIGSTOP {
                    // Delivery is asynchronous: wait (bounded) until the process is really stopped,
                    // or a request could still be answered.
                    let stat = format!("/proc/{}/stat", c.id());
                    for _ in 0..200 {
                        let state = std::fs::read_to_string(&stat).unwrap_or_default();
                        let stopped = state
                            .rsplit_once(')')
                            .and_then(|(_, rest)| rest.split_whitespace().next())
                            .is_some_and(|st| st == "T" || st == "t");
                        if stopped {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if self.child.is_some() {
                self.signal(libc::SIGCONT);
            }
            self.kill();
        }
    }
}
