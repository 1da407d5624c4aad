//! memcached backend: a small text-protocol client over TCP. Keys are checked (short, no spaces or
//! control characters) before they reach the line-based protocol; values are length-prefixed, so
//! any bytes round-trip. Several `--SERVER=` entries spread keys by hash, as libmemcached does.

use std::time::Duration;

use super::backoff::{Backoff, DEFAULT_INTERVAL};
use super::net::{self, Conn, Pool};
use super::reader::{OpError, parse_decimal, protocol, wire_text};
use super::store::{Store, StoreError, check_key, now_unix, ttl_secs};

/// The memcached text protocol's key limit.
const MAX_KEY: usize = 250;
const DEFAULT_PORT: u16 = 11211;
/// memcached reads an exptime above 30 days as an absolute Unix time.
const RELATIVE_EXPTIME_MAX: u64 = 30 * 24 * 3600;

struct Server {
    host: String,
    port: u16,
    what: String,
    pool: Pool,
    backoff: Backoff,
}

pub(crate) struct MemcacheStore {
    servers: Vec<Server>,
    timeout: Duration,
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal; libmemcached's `/?weight`
/// suffix is accepted and ignored.
fn parse_server(spec: &str) -> Result<(String, u16), StoreError> {
    let bad = || StoreError::Io(format!("memcache: invalid --SERVER={spec}"));
    let spec_nw = spec.split_once("/?").map_or(spec, |(s, _)| s);
    let (host, port) = if let Some(rest) = spec_nw.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            _ => (h, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if spec_nw.matches(':').count() == 1 {
        let (h, p) = spec_nw.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        (spec_nw, None)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The servers of a libmemcached-style config string; other `--OPTION`s (tuning) are ignored.
pub(super) fn parse_config(config: &str) -> Result<Vec<(String, u16)>, StoreError> {
    if config.trim().is_empty() {
        return Ok(vec![("localhost".into(), DEFAULT_PORT)]);
    }
    let mut servers = Vec::new();
    for token in config.split_whitespace() {
        let upper = token.to_ascii_uppercase();
        if upper.starts_with("--SERVER=") {
            servers.push(parse_server(&token["--SERVER=".len()..])?);
        } else if upper.starts_with("--SOCKET=") {
            return Err(StoreError::Io(
                "memcache: --SOCKET= (Unix sockets) is not supported".into(),
            ));
        } else if !token.starts_with("--") {
            return Err(StoreError::Io(format!(
                "memcache: unexpected \"{token}\" in config_string"
            )));
        }
    }
    if servers.is_empty() {
        return Err(StoreError::Io(
            "memcache: no --SERVER= in config_string".into(),
        ));
    }
    Ok(servers)
}

/// libmemcached's default key hash (Jenkins one-at-a-time) with modulo distribution, so keys land
/// on the same server as with the C module's client for the same server list.
fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        h = h.wrapping_add(u32::from(b));
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// The exptime field for a TTL in seconds: relative up to 30 days, absolute beyond.
fn exptime(secs: u64, now: u64) -> u64 {
    if secs <= RELATIVE_EXPTIME_MAX {
        secs
    } else {
        now.saturating_add(secs).min(i32::MAX as u64)
    }
}

/// Maps the error lines every command may get; `None` for anything else.
fn error_line(line: &[u8]) -> Option<OpError> {
    let text = wire_text(line);
    if let Some(m) = text.strip_prefix("SERVER_ERROR") {
        // memcached swallows the rejected data: the connection stays in sync.
        return Some(OpError::Server(m.trim().to_string()));
    }
    if line == b"ERROR" || text.starts_with("CLIENT_ERROR") {
        return Some(OpError::Protocol(text));
    }
    None
}

fn get_cmd(conn: &mut Conn, key: &str) -> Result<Option<Vec<u8>>, OpError> {
    let mut cmd = Vec::with_capacity(key.len() + 6);
    cmd.extend_from_slice(b"get ");
    cmd.extend_from_slice(key.as_bytes());
    cmd.extend_from_slice(b"\r\n");
    conn.send(&cmd)?;
    let r = conn.reader();
    let line = r.read_line()?;
    if line == b"END" {
        return Ok(None);
    }
    if let Some(e) = error_line(&line) {
        return Err(e);
    }
    // VALUE <key> <flags> <bytes> [<cas>]
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if !(fields.len() == 4 || fields.len() == 5)
        || fields[0] != b"VALUE"
        || fields[1] != key.as_bytes()
    {
        return protocol("unexpected reply to get");
    }
    let Some(len) = parse_decimal(fields[3]).and_then(|n| usize::try_from(n).ok()) else {
        return protocol("bad length in VALUE line");
    };
    let value = r.read_value(len, "value")?;
    if r.read_line()? != b"END" {
        return protocol("missing END after value");
    }
    Ok(Some(value))
}

/// `set`/`add`: Ok(true) STORED, Ok(false) NOT_STORED.
fn store_cmd(
    conn: &mut Conn,
    verb: &[u8],
    key: &str,
    value: &[u8],
    exptime: u64,
) -> Result<bool, OpError> {
    let mut cmd = Vec::with_capacity(key.len() + value.len() + 48);
    cmd.extend_from_slice(verb);
    cmd.push(b' ');
    cmd.extend_from_slice(key.as_bytes());
    cmd.extend_from_slice(b" 0 ");
    cmd.extend_from_slice(exptime.to_string().as_bytes());
    cmd.push(b' ');
    cmd.extend_from_slice(value.len().to_string().as_bytes());
    cmd.extend_from_slice(b"\r\n");
    cmd.extend_from_slice(value);
    cmd.extend_from_slice(b"\r\n");
    conn.send(&cmd)?;
    let line = conn.reader().read_line()?;
    match &line[..] {
        b"STORED" => Ok(true),
        b"NOT_STORED" => Ok(false),
        _ => Err(error_line(&line)
            .unwrap_or_else(|| OpError::Protocol("unexpected reply to a store command".into()))),
    }
}

impl MemcacheStore {
    pub(crate) fn new(config_string: &str, timeout: Duration) -> Result<MemcacheStore, StoreError> {
        let servers = parse_config(config_string)?
            .into_iter()
            .map(|(host, port)| Server {
                what: format!("memcache {host}:{port}"),
                host,
                port,
                pool: Pool::default(),
                backoff: Backoff::new(DEFAULT_INTERVAL),
            })
            .collect();
        Ok(MemcacheStore { servers, timeout })
    }

    /// Changes how long calls to a failed server fail fast (default 5 s).
    #[cfg(test)]
    fn with_backoff(mut self, interval: Duration) -> MemcacheStore {
        for s in &mut self.servers {
            s.backoff = Backoff::new(interval);
        }
        self
    }

    fn server(&self, key: &str) -> &Server {
        let i = one_at_a_time(key.as_bytes()) as usize % self.servers.len().max(1);
        &self.servers[i]
    }

    fn run<T>(
        &self,
        key: &str,
        op: &mut dyn FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, StoreError> {
        let s = self.server(key);
        net::run(
            &s.what,
            &s.pool,
            &s.backoff,
            self.timeout,
            &|d| Ok(Conn::connect(&s.host, s.port, d, None)?),
            op,
        )
    }
}

impl Store for MemcacheStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key, MAX_KEY)?;
        self.run(key, &mut |c| get_cmd(c, key))
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        check_key(key, MAX_KEY)?;
        let Some(secs) = ttl_secs(ttl) else {
            return Ok(());
        };
        let exp = exptime(secs, now_unix());
        self.run(key, &mut |c| match store_cmd(c, b"set", key, value, exp)? {
            true => Ok(()),
            false => Err(OpError::Server("set: NOT_STORED".into())),
        })
    }

    /// memcached's `add`: stores only if the key is absent, atomically in the server.
    fn insert_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        check_key(key, MAX_KEY)?;
        let Some(secs) = ttl_secs(ttl) else {
            return Ok(true);
        };
        let exp = exptime(secs, now_unix());
        self.run(key, &mut |c| store_cmd(c, b"add", key, value, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::net::testutil::{Server as Proc, free_port, one_reply_server};
    use crate::cache::store::race;
    use std::time::Instant;

    const T: Duration = Duration::from_millis(500);

    fn memcached() -> Proc {
        let port = free_port();
        let mut args: Vec<String> = ["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // SAFETY: geteuid has no preconditions. memcached refuses to run as root without -u.
        if unsafe { libc::geteuid() } == 0 {
            args.extend(["-u".to_string(), "root".to_string()]);
        }
        Proc::start("memcached", args, port)
    }

    fn store(ports: &[u16]) -> MemcacheStore {
        let cfg: Vec<String> = ports
            .iter()
            .map(|p| format!("--SERVER=127.0.0.1:{p}"))
            .collect();
        MemcacheStore::new(&cfg.join(" "), T).unwrap()
    }

    #[test]
    fn config_strings() {
        let p = |s: &str| parse_config(s).map_err(|e| e.to_string());
        assert_eq!(p("").unwrap(), vec![("localhost".to_string(), 11211)]);
        assert_eq!(
            p("--SERVER=localhost").unwrap(),
            vec![("localhost".to_string(), 11211)]
        );
        assert_eq!(
            p("--SERVER=10.0.0.1:1234 --server=cache2/?2   --SERVER=[::1]:99 --SERVER=::1 --BINARY-PROTOCOL").unwrap(),
            vec![
                ("10.0.0.1".to_string(), 1234),
                ("cache2".to_string(), 11211),
                ("::1".to_string(), 99),
                ("::1".to_string(), 11211)
            ]
        );
        for bad in [
            "--SERVER=",
            "--SERVER=h:0",
            "--SERVER=h:x",
            "--SERVER=h:70000",
            "localhost",
            "--SOCKET=/tmp/s",
            "--POLL-TIMEOUT=5",
            "--SERVER=[::1",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_text_from_the_server_is_escaped() {
        for line in [
            &b"SERVER_ERROR out of \x1b[2Jmemory\r"[..],
            b"CLIENT_ERROR bad\x08\x08\x08ok",
        ] {
            let e = error_line(line).unwrap().to_string();
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }

    #[test]
    fn exptime_switches_to_absolute_after_30_days() {
        assert_eq!(exptime(1, 1000), 1);
        assert_eq!(exptime(RELATIVE_EXPTIME_MAX, 1000), RELATIVE_EXPTIME_MAX);
        assert_eq!(
            exptime(RELATIVE_EXPTIME_MAX + 1, 1_700_000_000),
            1_700_000_000 + RELATIVE_EXPTIME_MAX + 1
        );
        assert_eq!(exptime(u64::MAX, 1_700_000_000), i32::MAX as u64);
    }

    #[test]
    fn hash_spreads_keys() {
        let mut counts = [0usize; 4];
        for i in 0..400 {
            counts[one_at_a_time(format!("{i:064x}").as_bytes()) as usize % 4] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        assert_ne!(one_at_a_time(b"a"), one_at_a_time(b"b"));
    }

    #[test]
    fn round_trip_add_and_binary_values() {
        let srv = memcached();
        let s = store(&[srv.port]);
        assert_eq!(s.get("k").unwrap(), None);
        let nasty = b"value with spaces\r\nEND\r\nset x 0 0 1\r\n\0\xff".to_vec();
        s.set("k", &nasty, Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k").unwrap(), Some(nasty));
        assert_eq!(s.get("x").unwrap(), None, "the embedded command was data");
        s.set("k", b"", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k").unwrap(), Some(Vec::new()));
        assert!(
            s.insert_if_absent("jti", b"1", Duration::from_secs(60))
                .unwrap()
        );
        assert!(
            !s.insert_if_absent("jti", b"2", Duration::from_secs(60))
                .unwrap()
        );
        assert_eq!(s.get("jti").unwrap(), Some(b"1".to_vec()));
        // A TTL beyond 30 days must not be read as a date in 1970 (which expires at once).
        s.set("long", b"v", Duration::from_secs(40 * 24 * 3600))
            .unwrap();
        assert_eq!(s.get("long").unwrap(), Some(b"v".to_vec()));
        s.set("zero", b"v", Duration::ZERO).unwrap();
        assert_eq!(s.get("zero").unwrap(), None);
        // Too large for memcached (1 MiB items): an error, and the connection is still usable.
        let huge = vec![b'x'; 2 * 1024 * 1024];
        assert!(matches!(
            s.set("huge", &huge, Duration::from_secs(60)),
            Err(StoreError::Io(_))
        ));
        assert_eq!(s.get("jti").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.servers[0].pool.idle_count(), 1);
    }

    #[test]
    fn concurrent_inserters_of_one_key_get_one_true() {
        let srv = memcached();
        let inserted = race::threads(|| store(&[srv.port]), "m", 8, 100);
        assert!(inserted.iter().all(|&n| n == 1), "{inserted:?}");
    }

    #[test]
    fn entries_expire() {
        let srv = memcached();
        let s = store(&[srv.port]);
        s.set("k", b"v", Duration::from_secs(1)).unwrap();
        assert!(
            s.insert_if_absent("a", b"v", Duration::from_secs(1))
                .unwrap()
        );
        assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
        // memcached's clock ticks once a second: an entry with a 1 s TTL lives at most ~2 s.
        std::thread::sleep(Duration::from_millis(2200));
        assert_eq!(s.get("k").unwrap(), None);
        assert!(
            s.insert_if_absent("a", b"v", Duration::from_secs(1))
                .unwrap()
        );
    }

    #[test]
    fn keys_are_spread_over_servers() {
        let (a, b) = (memcached(), memcached());
        let s = store(&[a.port, b.port]);
        let keys: Vec<String> = (0..40).map(|i| format!("{i:064x}")).collect();
        for k in &keys {
            s.set(k, k.as_bytes(), Duration::from_secs(60)).unwrap();
        }
        let (only_a, only_b) = (store(&[a.port]), store(&[b.port]));
        let mut on = [0, 0];
        for k in &keys {
            assert_eq!(s.get(k).unwrap(), Some(k.as_bytes().to_vec()));
            let in_a = only_a.get(k).unwrap().is_some();
            let in_b = only_b.get(k).unwrap().is_some();
            assert!(in_a != in_b, "{k} stored on exactly one server");
            on[usize::from(in_b)] += 1;
        }
        assert!(on[0] > 5 && on[1] > 5, "{on:?}");
    }

    #[test]
    fn killed_server_fails_fast_and_recovers() {
        let mut srv = memcached();
        let s = store(&[srv.port]).with_backoff(Duration::from_millis(300));
        s.set("k", b"v", Duration::from_secs(60)).unwrap();
        srv.kill();
        let t = Instant::now();
        assert!(matches!(s.get("k"), Err(StoreError::Unavailable(_))));
        assert!(matches!(
            s.insert_if_absent("k", b"v", Duration::from_secs(1)),
            Err(StoreError::Unavailable(_))
        ));
        assert!(t.elapsed() < T, "{:?}", t.elapsed());
        srv.restart();
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(s.get("k").unwrap(), None);
        s.set("k", b"v2", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"v2".to_vec()));
    }

    #[test]
    fn hung_server_is_bounded_by_the_timeout() {
        let srv = memcached();
        let s = store(&[srv.port]);
        s.set("k", b"v", Duration::from_secs(60)).unwrap();
        srv.signal(libc::SIGSTOP);
        let t = Instant::now();
        let r = s.get("k");
        let took = t.elapsed();
        srv.signal(libc::SIGCONT);
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(took >= T && took < T * 3, "{took:?}");
    }

    #[test]
    fn malformed_and_oversized_replies_are_refused() {
        for reply in [
            &b"VALUE k 0 99999999\r\n"[..],
            b"VALUE other 0 1\r\nx\r\nEND\r\n",
            b"VALUE k 0 3\r\nabcEND\r\n",
            b"VALUE k 0 1\r\nx\r\nMORE\r\n",
            b"VALUE k 0 -1\r\n",
            b"VALUE k 0\r\n",
            b"END\n",
            b"ERROR\r\n",
            b"",
        ] {
            let s = MemcacheStore::new(
                &format!("--SERVER=127.0.0.1:{}", one_reply_server(reply)),
                T,
            )
            .unwrap();
            let r = s.get("k");
            assert!(
                matches!(r, Err(StoreError::Unavailable(_))),
                "{reply:?}: {r:?}"
            );
            assert_eq!(s.servers[0].pool.idle_count(), 0);
        }
        let s = MemcacheStore::new(
            &format!(
                "--SERVER=127.0.0.1:{}",
                one_reply_server(b"VALUE k 5 3 77\r\nabc\r\nEND\r\n")
            ),
            T,
        )
        .unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"abc".to_vec()));
    }

    #[test]
    fn bad_keys_are_refused_without_network() {
        let s = store(&[1]);
        assert!(matches!(
            s.get(&"a".repeat(251)),
            Err(StoreError::KeyTooLong { len: 251, max: 250 })
        ));
        for bad in ["a b", "a\r\nb", "a\0", ""] {
            assert!(
                matches!(
                    s.insert_if_absent(bad, b"", Duration::from_secs(1)),
                    Err(StoreError::Io(_))
                ),
                "{bad:?}"
            );
        }
        assert!(s.servers[0].backoff.check("x").is_ok());
    }
}
