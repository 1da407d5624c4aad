//! Redis backend: a small RESP2 client over TCP or TLS. Commands are always arrays of bulk strings,
//! so keys and values (spaces, CR/LF, binary) are never interpreted by the server (the C module
//! built commands with printf). Connections are pooled per process, with their TLS state, and
//! authenticated once.

use std::time::{Duration, Instant};

use super::backoff::{Backoff, DEFAULT_INTERVAL};
use super::net::{self, Conn, Pool};
use super::reader::{OpError, parse_decimal, protocol, wire_text};
use super::store::{Store, StoreError, check_key, ttl_secs};
use super::tls::TlsClient;

/// Redis keys can be long; ours are hex digests, this only bounds mistakes.
const MAX_KEY: usize = 1024;

pub(crate) struct RedisStore {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    tls: Option<TlsClient>,
    timeout: Duration,
    what: String,
    pool: Pool,
    backoff: Backoff,
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

/// `*N\r\n` then `$len\r\n<bytes>\r\n` for each argument.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse_int(digits: &[u8]) -> Result<i64, OpError> {
    // Strict: optional '-', then ASCII digits only (no '+', spaces or empty).
    let (neg, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    match parse_decimal(body).and_then(|v| i64::try_from(v).ok()) {
        Some(v) if neg => Ok(-v),
        Some(v) => Ok(v),
        None => protocol("bad integer in reply"),
    }
}

/// Reads one reply; arrays are not expected for our commands and are refused.
fn read_reply(conn: &mut Conn) -> Result<Reply, OpError> {
    let r = conn.reader();
    let line = r.read_line()?;
    let Some((&kind, rest)) = line.split_first() else {
        return protocol("empty reply line");
    };
    match kind {
        b'+' => Ok(Reply::Simple(rest.to_vec())),
        b'-' => Err(OpError::Server(wire_text(rest))),
        b':' => Ok(Reply::Int(parse_int(rest)?)),
        b'$' => {
            let len = parse_int(rest)?;
            if len == -1 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len).or_else(|_| protocol("negative bulk length"))?;
            Ok(Reply::Bulk(Some(r.read_value(len, "bulk reply")?)))
        }
        _ => protocol("unexpected reply type"),
    }
}

fn command(conn: &mut Conn, args: &[&[u8]]) -> Result<Reply, OpError> {
    conn.send(&encode(args))?;
    match read_reply(conn) {
        // Not about this command: the server cannot serve us (credentials, ACL, still loading).
        Err(OpError::Server(m))
            if ["NOAUTH", "NOPERM", "WRONGPASS", "LOADING"]
                .iter()
                .any(|p| m.starts_with(p)) =>
        {
            Err(OpError::Refused(m))
        }
        r => r,
    }
}

impl RedisStore {
    pub(crate) fn new(
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        tls: Option<TlsClient>,
        timeout: Duration,
    ) -> RedisStore {
        let over = if tls.is_some() { " (TLS)" } else { "" };
        let what = format!("redis {host}:{port}{over}");
        RedisStore {
            host,
            port,
            username,
            password,
            tls,
            timeout,
            what,
            pool: Pool::default(),
            backoff: Backoff::new(DEFAULT_INTERVAL),
        }
    }

    /// Changes how long calls fail fast after a failure (default 5 s).
    #[cfg(test)]
    fn with_backoff(mut self, interval: Duration) -> RedisStore {
        self.backoff = Backoff::new(interval);
        self
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, OpError> {
        let mut conn = Conn::connect(&self.host, self.port, deadline, self.tls.as_ref())?;
        if let Some(pw) = &self.password {
            let reply = match &self.username {
                Some(u) => command(&mut conn, &[b"AUTH", u.as_bytes(), pw.as_bytes()]),
                None => command(&mut conn, &[b"AUTH", pw.as_bytes()]),
            };
            match reply {
                Ok(Reply::Simple(s)) if s == b"OK" => {}
                // A refused AUTH makes the server unusable for us: not a per-command error.
                Err(OpError::Server(m)) => return Err(OpError::Refused(format!("AUTH: {m}"))),
                Err(e) => return Err(e),
                Ok(_) => return protocol("unexpected reply to AUTH"),
            }
        }
        Ok(conn)
    }

    fn run<T>(&self, op: &mut dyn FnMut(&mut Conn) -> Result<T, OpError>) -> Result<T, StoreError> {
        net::run(
            &self.what,
            &self.pool,
            &self.backoff,
            self.timeout,
            &|d| self.connect(d),
            op,
        )
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key, MAX_KEY)?;
        self.run(&mut |c| match command(c, &[b"GET", key.as_bytes()])? {
            Reply::Bulk(v) => Ok(v),
            _ => protocol("unexpected reply to GET"),
        })
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        check_key(key, MAX_KEY)?;
        let Some(secs) = ttl_secs(ttl) else {
            return Ok(());
        };
        let secs = secs.to_string();
        self.run(&mut |c| match command(
            c,
            &[b"SET", key.as_bytes(), value, b"EX", secs.as_bytes()],
        )? {
            Reply::Simple(s) if s == b"OK" => Ok(()),
            _ => protocol("unexpected reply to SET"),
        })
    }

    /// `SET key value NX EX ttl`: one command, atomic in the server.
    fn insert_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        check_key(key, MAX_KEY)?;
        let Some(secs) = ttl_secs(ttl) else {
            return Ok(true);
        };
        let secs = secs.to_string();
        self.run(&mut |c| match command(
            c,
            &[b"SET", key.as_bytes(), value, b"NX", b"EX", secs.as_bytes()],
        )? {
            Reply::Simple(s) if s == b"OK" => Ok(true),
            Reply::Bulk(None) => Ok(false),
            _ => protocol("unexpected reply to SET NX"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::net::testutil::{Server, free_port, one_reply_server};
    use crate::cache::store::race;
    use std::net::TcpListener;

    const T: Duration = Duration::from_millis(500);

    fn redis(extra: &[&str]) -> Server {
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--dir".to_string(),
            std::env::temp_dir().display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start("redis-server", args, port)
    }

    fn store(port: u16, user: Option<&str>, pw: Option<&str>) -> RedisStore {
        RedisStore::new(
            "127.0.0.1".into(),
            port,
            user.map(Into::into),
            pw.map(Into::into),
            None,
            T,
        )
    }

    /// Runs a raw command on a fresh connection, bypassing the store.
    fn raw(port: u16, pw: &str, args: &[&[u8]]) -> Result<Reply, OpError> {
        let mut c = Conn::connect("127.0.0.1", port, Instant::now() + T, None)?;
        if !pw.is_empty() {
            command(&mut c, &[b"AUTH", pw.as_bytes()])?;
        }
        command(&mut c, args)
    }

    #[test]
    fn encoding_is_length_prefixed() {
        assert_eq!(
            encode(&[b"GET", b"a b\r\n"]),
            b"*2\r\n$3\r\nGET\r\n$5\r\na b\r\n\r\n".to_vec()
        );
        assert_eq!(encode(&[b""]), b"*1\r\n$0\r\n\r\n".to_vec());
    }

    #[test]
    fn integers_are_parsed_strictly() {
        assert_eq!(parse_int(b"42").unwrap(), 42);
        assert_eq!(parse_int(b"-1").unwrap(), -1);
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1x",
            b"99999999999999999999",
        ] {
            assert!(parse_int(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_round_trip_and_binary_values() {
        let srv = redis(&["--requirepass", "pw"]);
        let s = store(srv.port, None, Some("pw"));
        assert_eq!(s.get("k1").unwrap(), None);
        let nasty: Vec<u8> =
            b"a value with spaces\r\nSET x y\r\n%s%n$3\r\n*1\r\n\0\xff\xfe end".to_vec();
        s.set("k1", &nasty, Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k1").unwrap(), Some(nasty.clone()));
        // The injected "SET x y" was data, not a command.
        assert_eq!(
            raw(srv.port, "pw", &[b"EXISTS", b"x"]).unwrap(),
            Reply::Int(0)
        );
        // Overwrite, empty value, large value.
        s.set("k1", b"", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k1").unwrap(), Some(Vec::new()));
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.set("big", &big, Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("big").unwrap(), Some(big));
        // The TTL is passed as EX seconds, rounded up.
        s.set("ttl", b"v", Duration::from_millis(1500)).unwrap();
        assert_eq!(
            raw(srv.port, "pw", &[b"TTL", b"ttl"]).unwrap(),
            Reply::Int(2)
        );
        // Zero TTL stores nothing.
        s.set("zero", b"v", Duration::ZERO).unwrap();
        assert_eq!(s.get("zero").unwrap(), None);
        // Connections are reused (authenticated once), not one per command.
        assert_eq!(s.pool.idle_count(), 1);
    }

    #[test]
    fn insert_if_absent_semantics() {
        let srv = redis(&["--requirepass", "pw"]);
        let s = store(srv.port, None, Some("pw"));
        assert!(
            s.insert_if_absent("jti", b"1", Duration::from_secs(60))
                .unwrap()
        );
        assert!(
            !s.insert_if_absent("jti", b"2", Duration::from_secs(60))
                .unwrap()
        );
        assert_eq!(s.get("jti").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            raw(srv.port, "pw", &[b"TTL", b"jti"]).unwrap(),
            Reply::Int(60)
        );
        // After expiry it can be inserted again.
        assert!(
            s.insert_if_absent("short", b"1", Duration::from_secs(1))
                .unwrap()
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert!(
            s.insert_if_absent("short", b"2", Duration::from_secs(1))
                .unwrap()
        );
    }

    #[test]
    fn concurrent_inserters_of_one_key_get_one_true() {
        let srv = redis(&["--requirepass", "pw"]);
        let inserted = race::threads(|| store(srv.port, None, Some("pw")), "r", 8, 100);
        assert!(inserted.iter().all(|&n| n == 1), "{inserted:?}");
        // The command is SET NX with the TTL.
        assert_eq!(
            raw(srv.port, "pw", &[b"TTL", race::key("r", 0).as_bytes()]).unwrap(),
            Reply::Int(60)
        );
    }

    #[test]
    fn acl_user_and_wrong_passwords() {
        let srv = redis(&[
            "--requirepass",
            "pw",
            "--user",
            "alice",
            "on",
            ">alicepw",
            "~*",
            "+@all",
        ]);
        let alice = store(srv.port, Some("alice"), Some("alicepw"));
        alice.set("k", b"v", Duration::from_secs(60)).unwrap();
        assert_eq!(alice.get("k").unwrap(), Some(b"v".to_vec()));
        // The default user sees the same data with its own password.
        assert_eq!(
            store(srv.port, None, Some("pw")).get("k").unwrap(),
            Some(b"v".to_vec())
        );
        for (u, p) in [
            (Some("alice"), Some("pw")),
            (None, Some("wrong")),
            (Some("bob"), Some("alicepw")),
            (None, None),
        ] {
            let s = store(srv.port, u, p);
            match s.get("k") {
                Err(StoreError::Unavailable(_)) => {}
                other => panic!("{u:?}/{p:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn killed_server_fails_fast_and_recovers_after_restart() {
        let mut srv = redis(&[]);
        let s = store(srv.port, None, None).with_backoff(Duration::from_millis(300));
        s.set("k", b"v", Duration::from_secs(60)).unwrap();
        srv.kill();
        let t = Instant::now();
        assert!(matches!(s.get("k"), Err(StoreError::Unavailable(_))));
        assert!(t.elapsed() < T * 2, "{:?}", t.elapsed());
        // Breaker open: fails without touching the network.
        let t = Instant::now();
        assert!(matches!(s.get("k"), Err(StoreError::Unavailable(m)) if m.contains("not retried")));
        assert!(t.elapsed() < Duration::from_millis(50));
        srv.restart();
        std::thread::sleep(Duration::from_millis(350));
        // The data is gone (no persistence) but the store works again.
        assert_eq!(s.get("k").unwrap(), None);
        s.set("k", b"v2", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"v2".to_vec()));
    }

    #[test]
    fn stale_pooled_connection_is_retried_transparently() {
        let srv = redis(&[]);
        let s = store(srv.port, None, None);
        s.set("k", b"v", Duration::from_secs(60)).unwrap();
        assert_eq!(s.pool.idle_count(), 1);
        // The server closes our idle connection.
        raw(
            srv.port,
            "",
            &[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes"],
        )
        .unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn hung_server_is_bounded_by_the_timeout() {
        let srv = redis(&[]);
        let s = store(srv.port, None, None);
        s.set("k", b"v", Duration::from_secs(60)).unwrap();
        srv.signal(libc::SIGSTOP);
        let t = Instant::now();
        let r = s.get("k");
        let took = t.elapsed();
        srv.signal(libc::SIGCONT);
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(took >= T && took < T * 3, "{took:?}");
    }

    /// A fake server that answers every connection with `reply`.
    #[test]
    fn malformed_and_oversized_replies_are_refused() {
        for reply in [
            &b"$99999999\r\n"[..],
            b"$5\r\nab\r\n",
            b"$3\r\nabcXX",
            b"+OK\n",
            b"*1\r\n$1\r\na\r\n",
            b"?\r\n",
            b"$-5\r\n",
            b"",
        ] {
            let s = store(one_reply_server(reply), None, None).with_backoff(Duration::ZERO);
            let t = Instant::now();
            let r = s.get("k");
            assert!(
                matches!(r, Err(StoreError::Unavailable(_))),
                "{reply:?}: {r:?}"
            );
            assert!(t.elapsed() < T * 2);
            assert_eq!(s.pool.idle_count(), 0);
        }
        // A well-formed reply from the same fake works.
        let s = store(one_reply_server(b"$3\r\nabc\r\n"), None, None);
        assert_eq!(s.get("k").unwrap(), Some(b"abc".to_vec()));
    }

    #[test]
    fn error_text_from_the_server_is_escaped_and_bounded() {
        let evil = [
            &b"-ERR \x1b[2J\rforged log line\x07"[..],
            &[b'x'; 500],
            b"\r\n",
        ]
        .concat();
        let s = store(one_reply_server(evil.leak()), None, None).with_backoff(Duration::ZERO);
        let e = s.get("k").unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("\\u{1b}[2J\\rforged log line"), "{e}");
        assert!(e.len() < 400, "{}", e.len());
    }

    fn tls_store(port: u16) -> RedisStore {
        let tls = crate::cache::tls::TlsOptions {
            verify: false,
            ca_file: None,
            client: None,
        };
        RedisStore::new(
            "127.0.0.1".into(),
            port,
            None,
            None,
            Some(tls.client_context().unwrap()),
            T,
        )
        .with_backoff(Duration::ZERO)
    }

    #[test]
    fn tls_handshake_with_a_silent_server_is_bounded_by_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let held: Vec<_> = l.incoming().take(1).flatten().collect();
            std::thread::sleep(T * 4);
            drop(held);
        });
        let s = tls_store(port);
        let t = Instant::now();
        let r = s.get("k");
        let took = t.elapsed();
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("(TLS)") && m.contains("timed out")),
            "{r:?}"
        );
        assert!(took >= T && took < T * 3, "{took:?}");
    }

    #[test]
    fn tls_to_a_plain_server_fails_at_once() {
        let s = tls_store(one_reply_server(b"-ERR unknown command\r\n"));
        let t = Instant::now();
        let r = s.get("k");
        assert!(
            matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("TLS handshake failed")),
            "{r:?}"
        );
        assert!(t.elapsed() < T, "{:?}", t.elapsed());
        assert_eq!(s.pool.idle_count(), 0);
    }

    #[test]
    fn bad_keys_are_refused_without_network() {
        let s = store(1, None, None);
        assert!(matches!(s.get("a b"), Err(StoreError::Io(_))));
        assert!(matches!(
            s.set(&"a".repeat(2000), b"", Duration::from_secs(1)),
            Err(StoreError::KeyTooLong { .. })
        ));
        // No failure recorded: the breaker is still closed.
        assert!(s.backoff.check("x").is_ok());
    }
}
