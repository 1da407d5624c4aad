//! The bounded reply reader shared by the Redis and memcached clients: buffered CRLF line reads
//! with a length cap, exact-length value reads followed by CRLF, and strict decimal numbers. No
//! length from the wire is trusted: a line longer than `MAX_LINE` or a value longer than
//! `MAX_VALUE` is a protocol error before anything that large is buffered.

use std::io::{self, Read};

/// Largest reply line (status, header) accepted.
pub(crate) const MAX_LINE: usize = 1024;
/// Largest value accepted from a server.
pub(crate) const MAX_VALUE: usize = 16 * 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// How one command on a connection failed.
#[derive(Debug)]
pub(crate) enum OpError {
    /// Transport failure: the connection is dropped.
    Net(io::Error),
    /// The server said something we do not understand: the connection is dropped.
    Protocol(String),
    /// The server refuses to serve us at all (credentials, permissions): the connection is dropped.
    Refused(String),
    /// A well-formed error reply to this command: the connection stays usable.
    Server(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Net(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                write!(f, "timed out")
            }
            OpError::Net(e) => write!(f, "{e}"),
            OpError::Protocol(m) => write!(f, "protocol error: {m}"),
            OpError::Refused(m) => write!(f, "refused: {m}"),
            OpError::Server(m) => write!(f, "server error: {m}"),
        }
    }
}

impl From<io::Error> for OpError {
    fn from(e: io::Error) -> OpError {
        OpError::Net(e)
    }
}

pub(crate) fn protocol<T>(msg: &str) -> Result<T, OpError> {
    Err(OpError::Protocol(msg.to_string()))
}

pub(crate) struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    /// Whether any byte arrived since the last `reset_read_any`.
    read_any: bool,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            buf: Vec::new(),
            pos: 0,
            read_any: false,
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Whether any reply byte arrived since the last reset (then a retry could repeat a command
    /// the server already executed).
    pub(crate) fn read_any(&self) -> bool {
        self.read_any
    }

    pub(crate) fn reset_read_any(&mut self) {
        self.read_any = false;
    }

    /// Whether every byte received has been consumed (the connection is in sync).
    pub(crate) fn is_clean(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Reads more bytes into the buffer; EOF is an error (a reply was expected).
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let r = loop {
            match self.inner.read(&mut self.buf[old..]) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by server",
                    ));
                }
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match r {
            Ok(n) => {
                self.buf.truncate(old + n);
                self.read_any = true;
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// One CRLF-terminated line (without the CRLF), at most `MAX_LINE` bytes; a bare LF is an error.
    pub(crate) fn read_line(&mut self) -> Result<Vec<u8>, OpError> {
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.pos..];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                if end == 0 || avail[end - 1] != b'\r' {
                    return protocol("line not terminated by CRLF");
                }
                if end - 1 > MAX_LINE {
                    return protocol("reply line too long");
                }
                let line = avail[..end - 1].to_vec();
                self.pos += end + 1;
                return Ok(line);
            }
            scanned = avail.len();
            if scanned > MAX_LINE + 1 {
                return protocol("reply line too long");
            }
            self.fill()?;
        }
    }

    /// Exactly `len` bytes followed by CRLF (a length-prefixed value). A `len` above `MAX_VALUE`
    /// is refused as "`what` larger than 16 MiB" without reading.
    pub(crate) fn read_value(&mut self, len: usize, what: &str) -> Result<Vec<u8>, OpError> {
        if len > MAX_VALUE {
            return Err(OpError::Protocol(format!("{what} larger than 16 MiB")));
        }
        let mut out = Vec::with_capacity(len.min(64 * 1024));
        while out.len() < len {
            if self.pos == self.buf.len() {
                self.fill()?;
            }
            let take = (len - out.len()).min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        while self.buf.len() - self.pos < 2 {
            self.fill()?;
        }
        if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
            return protocol("value not terminated by CRLF");
        }
        self.pos += 2;
        Ok(out)
    }
}

/// Longest piece of a server's error text that goes into a log line.
const MAX_ECHO: usize = 160;

/// A server's error text as it may go into the error log: control characters (a line break or a
/// terminal escape that would forge or hide log lines) escaped, at most `MAX_ECHO` characters.
pub(crate) fn wire_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in String::from_utf8_lossy(bytes).chars().enumerate() {
        if i == MAX_ECHO {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A strict unsigned decimal: ASCII digits only (no sign, spaces or empty), no overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out at most `chunk` bytes per read, then EOF.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn reader(data: &[u8], chunk: usize) -> Reader<Trickle<'_>> {
        Reader::new(Trickle { data, chunk })
    }

    fn err<T: std::fmt::Debug>(r: Result<T, OpError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn lines_and_values_across_chunk_boundaries() {
        for chunk in [1, 2, 3, 7, 1000] {
            let mut r = reader(b"+OK\r\n$5\r\na\r\nbc\r\n:1\r\n", chunk);
            assert!(!r.read_any());
            assert_eq!(r.read_line().unwrap(), b"+OK");
            assert!(r.read_any());
            assert_eq!(r.read_line().unwrap(), b"$5");
            assert_eq!(r.read_value(5, "value").unwrap(), b"a\r\nbc");
            assert_eq!(r.read_line().unwrap(), b":1");
            assert!(r.is_clean());
            assert!(
                matches!(r.read_line(), Err(OpError::Net(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
            );
        }
        let mut r = reader(b"\r\n", 10);
        assert_eq!(r.read_value(0, "value").unwrap(), b"");
    }

    #[test]
    fn malformed_input_gets_clear_errors() {
        assert_eq!(
            err(reader(b"+OK\n", 10).read_line()),
            "protocol error: line not terminated by CRLF"
        );
        assert_eq!(
            err(reader(b"\n", 10).read_line()),
            "protocol error: line not terminated by CRLF"
        );
        let long = [b'x'; MAX_LINE + 1];
        assert_eq!(
            err(reader(&[&long[..], b"\r\n"].concat(), 4096).read_line()),
            "protocol error: reply line too long"
        );
        // Refused without waiting for the end of an endless line.
        assert_eq!(
            err(reader(&[b'x'; 3 * MAX_LINE], 100).read_line()),
            "protocol error: reply line too long"
        );
        let mut exact = [b'x'; MAX_LINE].to_vec();
        exact.extend_from_slice(b"\r\n");
        assert_eq!(reader(&exact, 4096).read_line().unwrap().len(), MAX_LINE);
        assert_eq!(
            err(reader(b"abcXX", 10).read_value(3, "value")),
            "protocol error: value not terminated by CRLF"
        );
        assert_eq!(
            err(reader(b"", 10).read_value(MAX_VALUE + 1, "bulk reply")),
            "protocol error: bulk reply larger than 16 MiB"
        );
        assert!(matches!(
            reader(b"ab", 10).read_value(5, "value"),
            Err(OpError::Net(_))
        ));
    }

    #[test]
    fn decimals_are_strict() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"42"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1x",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
