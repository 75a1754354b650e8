//! The exporter: spans from the queue in batches (up to `batch_max`, or
//! whatever came within `batch_interval` of the first), POSTed as OTLP/JSON
//! to `{otlp_endpoint}/v1/traces` over HTTP/1.1 — plain TCP, or TLS with
//! the system's roots through Pingora's connector, as upstream calls go.
//! A batch the collector could take later (a broken connection, a timeout,
//! `429`, `502`-`504`) is tried again with backoff a couple of times, then
//! dropped and counted: traces never hold memory without bound, nor
//! anything on the request path.

use super::{otlp, Pending, Tracer};
use crate::config::Telemetry;
use crate::state::LiveStore;
use async_trait::async_trait;
use pingora::connectors::TransportConnector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One POST, from resolving the collector to its status line.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of one batch before it is dropped.
const TRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// At most one warning per this while exports keep failing.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// Largest collector response head read.
const MAX_HEAD: usize = 16 * 1024;

/// What one step of the exporter did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Sent,
    /// Traces were turned off meanwhile: what was queued is dropped.
    Dropped,
    /// The queue is closed: the exit flush has taken over.
    Closed,
}

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

/// The one exporter of spans, a background service.
pub struct Exporter {
    pub tracer: Arc<Tracer>,
    pub store: LiveStore,
}

#[async_trait]
impl BackgroundService for Exporter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the exit flush closes the queue: requests still in
        // flight after the shutdown signal are traced meanwhile.
        let connector = TransportConnector::new(None);
        while self.tracer.step(&connector, &self.store).await != Step::Closed {}
    }
}

impl Tracer {
    /// One batch from the queue to the collector. Every wait ends at once
    /// when the exit flush asks for the queue (`Step::Closed`): spans taken
    /// but not sent stay in the carry, for the flush to send.
    pub(super) async fn step(&self, connector: &TransportConnector, store: &LiveStore) -> Step {
        let mut closing = self.closing.subscribe();
        let mut p = tokio::select! {
            p = self.pending.lock() => p,
            () = closed(&mut closing) => return Step::Closed,
        };
        if p.carry.is_empty() {
            tokio::select! {
                spans = p.queue.recv() => match spans {
                    Some(spans) => p.carry = spans,
                    None => return Step::Closed,
                },
                () = closed(&mut closing) => return Step::Closed,
            }
        }
        // Read now: a reload may have turned traces off, or moved them.
        let Some(settings) = store.load().config.telemetry.clone() else {
            let n = p.carry.len();
            p.carry.clear();
            self.count_dropped(n);
            return Step::Dropped;
        };
        let until = tokio::time::Instant::now() + settings.batch_interval;
        while p.carry.len() < settings.batch_max {
            tokio::select! {
                spans = tokio::time::timeout_at(until, p.queue.recv()) => match spans {
                    Ok(Some(spans)) => p.carry.extend(spans),
                    Ok(None) | Err(_) => break,
                },
                () = closed(&mut closing) => return Step::Closed,
            }
        }
        let batch = take_batch(&mut p, settings.batch_max);
        self.export(connector, &settings, &batch).await;
        Step::Sent
    }

    /// Closes the queue and sends everything left, one batch after another.
    pub(super) async fn finish(&self, connector: &TransportConnector, settings: &Telemetry) {
        let mut p = self.pending.lock().await;
        p.queue.close();
        while let Ok(spans) = p.queue.try_recv() {
            p.carry.extend(spans);
        }
        while !p.carry.is_empty() {
            let batch = take_batch(&mut p, settings.batch_max);
            self.export(connector, settings, &batch).await;
        }
    }

    /// One batch, tried up to `TRIES` times; counted as exported or dropped.
    async fn export(&self, connector: &TransportConnector, t: &Telemetry, batch: &[super::Span]) {
        let body = otlp::encode(batch, &t.service_name);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            match post(connector, t, &body).await {
                Ok(()) => {
                    self.count_exported(batch.len());
                    let recovered = self
                        .last_warning
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .is_some();
                    if recovered {
                        log::info!(
                            "traces: the collector at {} takes spans again",
                            t.host_header
                        );
                    }
                    return;
                }
                Err(PostError::Retry(_)) if attempt < TRIES => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    self.count_dropped(batch.len());
                    self.warn(t, batch.len(), &e);
                    return;
                }
            }
        }
    }

    fn warn(&self, t: &Telemetry, n: usize, e: &PostError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            // The endpoint, never the headers: they may carry credentials.
            log::warn!(
                "traces: {n} spans dropped, the collector at {} failed: {e}",
                t.host_header
            );
            *last = Some(Instant::now());
        }
    }
}

/// Resolves once the exit flush has asked for the queue.
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    // An error: the sender is gone with the tracer, which cannot be.
    let _ = closing.wait_for(|&c| c).await;
}

/// Up to `max` spans from the front of the carry.
fn take_batch(p: &mut Pending, max: usize) -> Vec<super::Span> {
    if p.carry.len() <= max {
        return std::mem::take(&mut p.carry);
    }
    let rest = p.carry.split_off(max.max(1));
    std::mem::replace(&mut p.carry, rest)
}

/// Sends what is left at exit, blocking for at most `within`; what is not
/// sent by then is dropped.
pub fn flush_now(tracer: &Tracer, store: &LiveStore, within: Duration) {
    let settings = store.load().config.telemetry.clone();
    // The exporter lets go of the queue, whatever it was waiting for.
    tracer.closing.send_replace(true);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::warn!("traces: spans not sent at exit: {e}");
            return;
        }
    };
    // The timer and the connector are made inside the runtime.
    let done = rt.block_on(async {
        let connector = TransportConnector::new(None);
        match &settings {
            Some(t) => tokio::time::timeout(within, tracer.finish(&connector, t))
                .await
                .is_ok(),
            None => true,
        }
    });
    let (exported, dropped) = tracer.counts();
    if !done {
        log::warn!("traces: the collector did not take the last spans in time");
    }
    if dropped > 0 {
        log::info!("traces: {exported} spans exported and {dropped} dropped since start");
    }
}

/// One POST of `body`; `Ok` on a 2xx.
async fn post(connector: &TransportConnector, t: &Telemetry, body: &[u8]) -> Result<(), PostError> {
    match tokio::time::timeout(EXPORT_TIMEOUT, exchange(connector, t, body)).await {
        Ok(result) => result,
        Err(_) => Err(PostError::Retry(format!(
            "no answer within {}s",
            EXPORT_TIMEOUT.as_secs()
        ))),
    }
}

async fn exchange(
    connector: &TransportConnector,
    t: &Telemetry,
    body: &[u8],
) -> Result<(), PostError> {
    let retry = |what: &str, e: &dyn std::fmt::Display| PostError::Retry(format!("{what}: {e}"));
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| retry("resolve", &e))?
        .collect();
    // An empty SNI would disable certificate verification.
    let sni = if t.tls { t.host.as_str() } else { "" };
    // Each address in turn: `localhost` may resolve to ::1 first while the
    // collector listens on 127.0.0.1 only.
    let mut failed = PostError::Retry(format!("resolve: no address for {}", t.host));
    let mut connected = None;
    for addr in addrs {
        let mut peer = HttpPeer::new(addr, t.tls, sni.to_owned());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT * 2);
        match connector.new_stream(&peer).await {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(e) => failed = retry("connect", &e),
        }
    }
    let mut stream = connected.ok_or(failed)?;
    let head = request_head(t, body.len());
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| retry("send", &e))?;
    stream
        .write_all(body)
        .await
        .map_err(|e| retry("send", &e))?;
    stream.flush().await.map_err(|e| retry("send", &e))?;
    let status = read_status(&mut stream).await?;
    match status {
        200..=299 => Ok(()),
        // The OTLP specification's retryable statuses.
        408 | 429 | 502 | 503 | 504 => Err(PostError::Retry(format!("status {status}"))),
        s => Err(PostError::Refused(s)),
    }
}

/// The request head: one connection per batch (`Connection: close`), the
/// configured headers after the gateway's own.
pub(super) fn request_head(t: &Telemetry, len: usize) -> String {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\nUser-Agent: modelswitch/{}\r\n",
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

/// The status of the collector's answer, from its head (the body, a
/// partial-success report at most, is not read).
pub(super) async fn read_status<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<u16, PostError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            // An informational head (100 Continue) is followed by the
            // real one, which may already be in the buffer.
            Ok(httparse::Status::Complete(len)) if resp.code.is_some_and(|c| c < 200) => {
                buf.drain(..len);
                continue;
            }
            Ok(httparse::Status::Complete(_)) => return Ok(resp.code.unwrap_or(0)),
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(PostError::Retry("response head too large".into()))
            }
            Err(e) => return Err(PostError::Retry(format!("bad response: {e}"))),
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| PostError::Retry(format!("read: {e}")))?;
        if n == 0 {
            return Err(PostError::Retry("closed before answering".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
