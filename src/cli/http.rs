//! A tiny blocking HTTP/1.1 client for `status`: one GET to a gateway on
//! this machine or the local network over plain http, every step bounded
//! by a timeout. (No HTTP crate for three GETs; https is refused with a
//! clear message rather than half supported.)

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest answer read (the providers list of a large config).
const MAX_BODY: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port`, as sent in `Host`.
    pub authority: String,
}

impl Url {
    /// `http://host[:port][/]`, or a bare `host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("https://") {
            return Err(format!(
                "{s}: https is not supported here; use the gateway's plain http listener (loopback)"
            ));
        }
        let rest = s.strip_prefix("http://").unwrap_or(s);
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("{s}: expected http://host:port"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self { authority })
    }

    /// A listen address as a URL to reach it: a wildcard host becomes
    /// loopback.
    pub fn for_listen(addr: &str) -> Self {
        let authority = match addr.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => addr.to_owned(),
        };
        Self { authority }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path`, with `Authorization: Bearer key` when given.
pub fn get(url: &Url, path: &str, key: Option<&str>, timeout: Duration) -> Result<Reply, String> {
    let addr = url
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{url}: {e}"))?;
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n",
        url.authority
    );
    conn.write_all(head.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let raw = read_until(&mut conn, MAX_BODY + 64 * 1024, Instant::now() + timeout)
        .map_err(|e| format!("{url}{path}: {e}"))?;
    parse(&raw).ok_or_else(|| format!("{url}{path}: not an HTTP response"))
}

/// Reads to the end, at most `limit` bytes, all before `deadline`: a peer
/// that trickles a byte per read timeout must not hold `status` forever.
fn read_until(conn: &mut TcpStream, limit: usize, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let late = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the answer did not end in time",
        )
    };
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        conn.set_read_timeout(Some(left))?;
        let n = match conn.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A read timeout: Linux reports it as EAGAIN (WouldBlock).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() >= limit {
            raw.truncate(limit);
            return Ok(raw);
        }
    }
}

/// A whole `Connection: close` response: its status and body (chunked or
/// not).
pub fn parse(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Reply { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickling_answer_is_cut_at_the_total_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
            // One byte every 50 ms: each read succeeds well within the
            // timeout, the whole answer never ends.
            for _ in 0..60 {
                std::thread::sleep(Duration::from_millis(50));
                if c.write_all(b"x").is_err() {
                    break;
                }
            }
        });
        let url = Url::parse(&addr.to_string()).unwrap();
        let started = Instant::now();
        let err = get(&url, "/", None, Duration::from_millis(400)).unwrap_err();
        assert!(err.contains("did not end in time"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        server.join().unwrap();
    }

    #[test]
    fn urls_and_listen_addresses() {
        assert_eq!(
            Url::parse("http://127.0.0.1:8000/").unwrap().authority,
            "127.0.0.1:8000"
        );
        assert_eq!(Url::parse("localhost").unwrap().authority, "localhost:80");
        assert_eq!(Url::parse("[::1]:9").unwrap().authority, "[::1]:9");
        assert!(Url::parse("https://x")
            .unwrap_err()
            .contains("not supported"));
        assert!(Url::parse("http://x/api").is_err());
        assert_eq!(Url::for_listen("0.0.0.0:8000").authority, "127.0.0.1:8000");
        assert_eq!(Url::for_listen("[::]:8000").authority, "[::1]:8000");
        assert_eq!(Url::for_listen("10.0.0.1:80").authority, "10.0.0.1:80");
    }

    #[test]
    fn plain_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = parse(
            b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, &b"abcde"[..]));
        assert!(parse(b"garbage").is_none());
    }
}
