//! The exporter's HTTP/1.1 client for one OTLP collector: a POST per batch
//! over plain TCP, or TLS with the system's roots through Pingora's
//! connector (as upstream calls go). The connection is kept between
//! batches while the collector allows it: a handshake per batch (TCP, and
//! TLS's round trips for a remote collector) would cap how many spans a
//! second one exporter can send.

use super::Telemetry;
use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use pingora::upstreams::peer::HttpPeer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One POST, from resolving the collector to the end of its answer.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept connection idle longer than this is closed rather than reused:
/// the collector has likely closed its end already.
const MAX_IDLE: Duration = Duration::from_secs(15);
/// Largest collector response head read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest answer body read to keep the connection (a partial-success
/// report); a larger one is left unread and the connection closed.
const MAX_BODY: usize = 64 * 1024;

/// Why a POST failed.
#[derive(Debug)]
pub(super) enum PostError {
    /// The collector may take it later.
    Retry(String),
    /// The collector refused it (a 4xx other than 408 and 429): sending it
    /// again would be refused again.
    Refused(u16),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(e) => f.write_str(e),
            Self::Refused(s) => write!(f, "refused with status {s}"),
        }
    }
}

pub(super) struct Collector {
    /// Made at the first connection: a connector loads the system's root
    /// certificates (measured: ~17 MB of RSS and ~70M instructions at
    /// start), which a gateway that sends no traces must not pay.
    connector: Option<TransportConnector>,
    idle: Option<Idle>,
}

/// The connection the last POST left open.
struct Idle {
    /// Where it goes: a reload may move the endpoint.
    to: (String, u16, bool),
    stream: Stream,
    since: Instant,
}

/// What a connection's exchange failed with.
pub(super) struct SendError {
    /// Nothing came back: on a kept connection, the collector had closed
    /// it while idle, and a fresh one may carry the same request.
    pub silent: bool,
    pub message: String,
}

/// The collector's answer.
struct Answer {
    status: u16,
    /// The connection, when the answer was read to its end and the
    /// collector keeps it open.
    reusable: Option<Stream>,
}

impl Collector {
    #[cfg(test)]
    pub(super) fn new(connector: TransportConnector) -> Self {
        Self {
            connector: Some(connector),
            idle: None,
        }
    }

    /// A collector whose connector is made when it first connects.
    pub(super) fn lazy() -> Self {
        Self {
            connector: None,
            idle: None,
        }
    }

    /// One POST of `body`; `Ok` on a 2xx.
    pub(super) async fn post(&mut self, t: &Telemetry, body: &[u8]) -> Result<(), PostError> {
        match tokio::time::timeout(EXPORT_TIMEOUT, self.exchange(t, body)).await {
            Ok(result) => result,
            // The connection is dropped with the timed-out exchange.
            Err(_) => Err(PostError::Retry(format!(
                "no answer within {}s",
                EXPORT_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn exchange(&mut self, t: &Telemetry, body: &[u8]) -> Result<(), PostError> {
        let head = request_head(t, body.len());
        let to = (t.host.clone(), t.port, t.tls);
        let kept = self
            .idle
            .take()
            .filter(|i| i.to == to && i.since.elapsed() < MAX_IDLE);
        if let Some(idle) = kept {
            match send(idle.stream, &head, body).await {
                Ok(answer) => return self.settle(to, answer),
                Err(e) if e.silent => {
                    log::debug!(
                        "traces: kept collector connection closed ({}); reconnecting",
                        e.message
                    );
                }
                Err(e) => return Err(PostError::Retry(e.message)),
            }
        }
        let connector = self
            .connector
            .get_or_insert_with(|| TransportConnector::new(None));
        let stream = connect(connector, t).await?;
        match send(stream, &head, body).await {
            Ok(answer) => self.settle(to, answer),
            Err(e) => Err(PostError::Retry(e.message)),
        }
    }

    fn settle(&mut self, to: (String, u16, bool), answer: Answer) -> Result<(), PostError> {
        if let Some(stream) = answer.reusable {
            self.idle = Some(Idle {
                to,
                stream,
                since: Instant::now(),
            });
        }
        match answer.status {
            200..=299 => Ok(()),
            // The OTLP specification's retryable statuses.
            s @ (408 | 429 | 502 | 503 | 504) => Err(PostError::Retry(format!("status {s}"))),
            s => Err(PostError::Refused(s)),
        }
    }
}

/// A new connection, to each address the name resolves to in turn:
/// `localhost` may give ::1 first while the collector listens on
/// 127.0.0.1 only.
async fn connect(connector: &TransportConnector, t: &Telemetry) -> Result<Stream, PostError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| PostError::Retry(format!("resolve: {e}")))?
        .collect();
    // An empty SNI would disable certificate verification.
    let sni = if t.tls { t.host.as_str() } else { "" };
    let mut failed = PostError::Retry(format!("resolve: no address for {}", t.host));
    for addr in addrs {
        let mut peer = HttpPeer::new(addr, t.tls, sni.to_owned());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT * 2);
        match connector.new_stream(&peer).await {
            Ok(s) => return Ok(s),
            Err(e) => failed = PostError::Retry(format!("connect: {e}")),
        }
    }
    Err(failed)
}

/// The request, then the answer's head and (when it has a length) body.
async fn send(mut stream: Stream, head: &str, body: &[u8]) -> Result<Answer, SendError> {
    // A write that fails took nothing: the collector had closed.
    let wrote = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    };
    wrote.await.map_err(|e| SendError {
        silent: true,
        message: format!("send: {e}"),
    })?;
    let (h, mut rest) = read_head(&mut stream).await?;
    let loud = |message: String| SendError {
        silent: false,
        message,
    };
    let reusable = match h.length {
        Some(n) if h.keep_alive && n <= MAX_BODY => {
            while rest.len() < n {
                let mut chunk = [0u8; 4096];
                let got = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| loud(format!("read: {e}")))?;
                if got == 0 {
                    return Err(loud("closed mid-answer".into()));
                }
                rest.extend_from_slice(&chunk[..got]);
            }
            // Bytes past the answer: not a conversation to go on with.
            (rest.len() == n).then_some(stream)
        }
        _ => None,
    };
    Ok(Answer {
        status: h.status,
        reusable,
    })
}

/// What the answer's head says.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub status: u16,
    /// `Content-Length`; `None` with chunked or close-delimited framing.
    pub length: Option<usize>,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
}

/// The answer's head (informational ones skipped) and the bytes read past
/// it.
pub(super) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Head, Vec<u8>), SendError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut received = false;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let loud = |message: String| SendError {
            silent: false,
            message,
        };
        match resp.parse(&buf) {
            // An informational head (100 Continue) is followed by the
            // real one, which may already be in the buffer.
            Ok(httparse::Status::Complete(len)) if resp.code.is_some_and(|c| c < 200) => {
                buf.drain(..len);
                continue;
            }
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                        .collect::<Vec<_>>()
                };
                let chunked = header("transfer-encoding")
                    .iter()
                    .any(|v| v.contains("chunked"));
                let lengths = header("content-length");
                // One valid length, else the framing is not one to trust.
                let length = match lengths.as_slice() {
                    [one] if !chunked => one.trim().parse().ok(),
                    _ => None,
                };
                let close = header("connection")
                    .iter()
                    .any(|v| v.split(',').any(|t| t.trim() == "close"));
                let head = Head {
                    status: resp.code.unwrap_or(0),
                    length,
                    keep_alive: resp.version == Some(1) && !close,
                };
                return Ok((head, buf.split_off(len)));
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(loud("response head too large".into())),
            Err(e) => return Err(loud(format!("bad response: {e}"))),
        }
        let n = stream.read(&mut chunk).await;
        match n {
            Ok(n) if n > 0 => {
                received = true;
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(_) => {
                return Err(SendError {
                    silent: !received,
                    message: "closed before answering".into(),
                })
            }
            Err(e) => {
                return Err(SendError {
                    silent: !received,
                    message: format!("read: {e}"),
                })
            }
        }
    }
}

/// The request head, the configured headers after the gateway's own.
pub(super) fn request_head(t: &Telemetry, len: usize) -> String {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nUser-Agent: modelswitch/{}\r\n",
        t.path,
        t.host_header,
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in &t.headers {
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(value.expose());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

impl std::fmt::Debug for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (silent: {})", self.message, self.silent)
    }
}
