//! The connection stage, before HTTP: every client connection passes here.
//! It caps how many are open (past `max_connections` a new one gets a fast
//! 503, never an unbounded pile), bounds the whole request head in time
//! (`client_header_timeout`; Pingora alone bounds each read, which a
//! client trickling a byte at a time defeats) and a kept-alive connection's
//! wait for its next request (`client_idle_timeout`), and keeps pipelined
//! requests apart from a departing client. Then Pingora's HTTP/1 session
//! runs the request as usual.
//!
//! HTTP/2 (ALPN `h2` on a TLS listener, or a cleartext client's preface
//! with `[server] h2c`) is handed to Pingora's own HTTP/2 server after the
//! connection cap, the client's preface due within `client_header_timeout`.
//! Each stream arrives with its whole head (the h2 codec bounds its size),
//! so the head deadline has no per-stream counterpart; an HTTP/2
//! connection with no stream open closes after `client_idle_timeout`
//! (`server_options`).

use super::Gateway;
use crate::state::LiveStore;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Edge {
    pub proxy: Arc<HttpProxy<Gateway>>,
    pub store: LiveStore,
    /// Client connections open now.
    open: Arc<AtomicUsize>,
}

/// Set by the proxy when a request head has been read (through Pingora's
/// per-connection user context): the head deadline no longer applies.
#[derive(Debug, Default)]
pub struct HeadRead(AtomicBool);

impl HeadRead {
    pub fn arrived(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Resolves if no head has arrived by `budget`.
    async fn missed(&self, budget: Duration) {
        tokio::time::sleep(budget).await;
        if self.0.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }
}

/// Counts a connection as open until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 82\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
{\"error\":{\"message\":\"too many open connections\",\"type\":\"overloaded_error\"}}";

impl Edge {
    pub fn new(proxy: Arc<HttpProxy<Gateway>>, store: LiveStore) -> Self {
        Self {
            proxy,
            store,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl ServerApp for Edge {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = self.store.load().config.downstream;
        let open = Open(self.open.clone());
        if self.open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            // Written straight away: no request is read from a connection
            // that would only wait. (An HTTP/2 client would read the
            // HTTP/1 answer as a protocol error: it just sees the close.)
            if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
            }
            let _ = stream.shutdown().await;
            drop(open);
            return None;
        }
        // One branch on the HTTP/1 path when h2c is off: ALPN is only ever
        // set on a TLS stream.
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self
                .serve_h2_preface_within(stream, limits.client_header_timeout, shutdown)
                .await;
        }
        let mut budget = limits.client_header_timeout;
        if self.proxy.server_options.as_ref().is_some_and(|o| o.h2c) {
            let sniffing = std::time::Instant::now();
            let (s, h2) = sniff_h2c(stream, budget).await?;
            if h2 {
                return ServerApp::process_new(&self.proxy, s, shutdown).await;
            }
            // The head's deadline counts from the first byte awaited, the
            // sniffed ones included.
            budget = budget.saturating_sub(sniffing.elapsed());
            stream = s;
        }
        let mut session = ServerSession::new_http1(stream);
        loop {
            let head = Arc::new(HeadRead::default());
            let limits = self.store.load().config.downstream;
            prepare(&mut session, &limits, shutdown, head.clone());
            let served = tokio::select! {
                served = self.proxy.process_new_http(session, shutdown) => served,
                () = head.missed(budget) => None,
            };
            let (stream, settings) = served?.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                // Carries bytes of a pipelined next request over.
                settings.apply_to_session(&mut session);
            }
            // The next head may follow an idle wait; each is bounded.
            budget = limits.client_idle_timeout + limits.client_header_timeout;
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

impl Edge {
    /// HTTP/2 negotiated by ALPN: Pingora's h2 server, the client's
    /// preface due within `budget`. (Pingora's h2 handshake waits for it
    /// without end; past it, the idle timeout bounds a quiet connection.)
    async fn serve_h2_preface_within(
        self: &Arc<Self>,
        stream: Stream,
        budget: Duration,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let head = Arc::new(HeadRead::default());
        let stream = Box::new(CountsPreface {
            inner: stream,
            left: H2_PREFACE.len(),
            head: head.clone(),
        });
        tokio::select! {
            served = ServerApp::process_new(&self.proxy, stream, shutdown) => served,
            () = head.missed(budget) => None,
        }
    }
}

/// A TLS stream that signals `head` once the h2 preface's worth of bytes
/// has been read; otherwise it is the stream it wraps.
#[derive(Debug)]
struct CountsPreface {
    inner: Stream,
    left: usize,
    head: Arc<HeadRead>,
}

impl tokio::io::AsyncRead for CountsPreface {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.left > 0 {
            let got = buf.filled().len() - before;
            self.left = self.left.saturating_sub(got);
            if self.left == 0 {
                self.head.arrived();
            }
        }
        polled
    }
}

impl tokio::io::AsyncWrite for CountsPreface {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for CountsPreface {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await;
    }
}

#[async_trait]
impl Peek for CountsPreface {}

impl UniqueID for CountsPreface {
    fn id(&self) -> pingora::protocols::UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for CountsPreface {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for CountsPreface {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for CountsPreface {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for CountsPreface {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

/// What Pingora's HTTP/2 server is told: whether a cleartext connection
/// may open with the HTTP/2 preface, and when an HTTP/2 connection with
/// no stream open is closed.
pub fn server_options(h2c: bool, limits: &crate::config::Downstream) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    options.h2_idle_timeout = Some(limits.client_idle_timeout);
    options
}

/// The cleartext HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a cleartext client opens with the HTTP/2 preface, read within
/// `budget` and put back for whichever session reads the connection.
/// Decided at the first byte that differs, so a short HTTP/1 request is
/// never kept waiting for 24 bytes (Pingora's own check reads all 24).
/// `None`: the client sent nothing in time, or left.
async fn sniff_h2c(stream: Stream, budget: Duration) -> Option<(Stream, bool)> {
    if !stream.as_any().is::<TcpStream>() {
        return Some((stream, false));
    }
    let mut tcp = stream.into_any().downcast::<TcpStream>().ok()?;
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            let got = tcp.read(&mut buf[n..]).await?;
            n += got;
            if got == 0 || buf[..n] != H2_PREFACE[..n] {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(budget, read).await.ok()?.ok()?;
    if n == 0 {
        return None;
    }
    tcp.rewind(&buf[..n]);
    let stream: Stream = tcp;
    Some((stream, &buf == H2_PREFACE))
}

/// Per-request session settings: keep-alive wait, pipelining, and the
/// head signal for `HeadRead`. (The write bound is set
/// where a write can block: streams and large answers, see `exchange`.)
fn prepare(
    session: &mut ServerSession,
    limits: &crate::config::Downstream,
    shutdown: &ShutdownWatch,
    head: Arc<HeadRead>,
) {
    if *shutdown.borrow() {
        session.set_keepalive(None);
    } else {
        session.set_keepalive(Some(limits.client_idle_timeout.as_secs().max(1)));
    }
    // No per-read bound: the head is bounded as a whole here, the body as
    // a whole where it is read (`downstream::read_body`); a timer per read
    // would only add cost.
    session.set_read_timeout(None);
    session.set_pipelining_enabled(true);
    session.set_connection_user_context(Some(Box::new(head)));
}
