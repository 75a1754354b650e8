//! Calls to upstream providers: asynchronous DNS with a small TTL cache
//! (`HttpPeer::new` with a host name would resolve synchronously and panic
//! on failure), connections from Pingora's `TransportConnector` (TCP, TLS
//! with SNI) kept in a per-worker idle pool (`pool.rs`), the request
//! written in one go with an exact `Content-Length`, the response read by
//! `http1.rs`, and every wait bounded. Providers with `http2 = true` are
//! spoken to by `h2.rs` instead: many requests on one connection. A
//! token-login provider's calls carry the token `login.rs` keeps, and a 401
//! is retried once after a new login.

mod h2;
mod http1;
pub mod login;
mod pool;
pub mod reserve;

use crate::config::{Login, Provider, Timeouts};
use crate::state::replicas::{InFlight, ReplicaPool};
use bytes::Bytes;
use filters::error::ApiError;
pub use filters::failure::{Failure, Phase};
use futures::FutureExt;
use http::{HeaderName, HeaderValue};
use http1::{HeadError, Response};
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::{Stream, ALPN};
use pingora::upstreams::peer::HttpPeer;
use pool::IdlePool;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct DnsEntry {
    addrs: Vec<SocketAddr>,
    expires: Instant,
}

pub struct UpstreamClient {
    transport: TransportConnector,
    dns: Mutex<HashMap<(String, u16), DnsEntry>>,
    /// Idle connections kept per worker thread.
    pool_size: usize,
}

const DNS_TTL: Duration = Duration::from_secs(60);
/// Idle pooled upstream connections live this long (providers close theirs
/// after a minute or more; reusing one they just closed costs a retry).
const POOL_IDLE: Duration = Duration::from_secs(50);
/// How often a worker closes its expired and upstream-closed connections.
const POOL_SWEEP: Duration = Duration::from_secs(10);
/// Error bodies are read for their message, never without bound.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Bodies up to this size go out in the same write as the header.
const COALESCE_BODY: usize = 16 * 1024;

thread_local! {
    /// This worker's idle connections. Each worker is a single-threaded
    /// runtime (main.rs), so a connection is reused by the thread whose
    /// I/O driver it is registered with.
    static IDLE: RefCell<Option<IdlePool<u64, Stream>>> = const { RefCell::new(None) };
}

/// What to send to one target.
#[derive(Clone)]
pub struct Outgoing<'a> {
    /// `POST` for everything but reading or deleting a stored response.
    pub method: &'a str,
    pub path: &'a str,
    /// Which of the provider's keys (and so credential headers) to use.
    pub key: Option<usize>,
    /// The request's own headers; they follow the credentials.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: Bytes,
    /// The replica to use when it is healthy (session affinity).
    pub replica: Option<SocketAddr>,
}

/// One in-flight upstream exchange.
pub struct UpstreamCall {
    body: Body,
    pool_key: u64,
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    /// Counts this call against its replica until it ends.
    _inflight: Option<InFlight>,
    /// The replica that took the call, for a provider with replicas.
    pub replica: Option<SocketAddr>,
}

/// Where a response body comes from.
enum Body {
    Http1(Response<Stream>),
    /// A stream of a shared connection: nothing to give back at the end.
    Http2(h2::Body),
}

impl UpstreamClient {
    /// `pool_size`: idle connections kept by each worker thread.
    pub fn new(pool_size: usize) -> Self {
        Self {
            // Used to open connections only; its own pool stays empty.
            transport: TransportConnector::new(Some(ConnectorOptions::new(1))),
            dns: Mutex::new(HashMap::new()),
            pool_size,
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, Failure> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Ok(cache) = self.dns.lock() {
            if let Some(e) = cache.get(&key).filter(|e| e.expires > Instant::now()) {
                if let Some(a) = e.addrs.get(fastrand::usize(..e.addrs.len())) {
                    return Ok(*a);
                }
            }
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Failure::Connect(format!("DNS lookup of {host} failed: {e}")))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| Failure::Connect(format!("{host} has no addresses")))?;
        if let Ok(mut cache) = self.dns.lock() {
            cache.insert(
                key,
                DnsEntry {
                    addrs,
                    expires: Instant::now() + DNS_TTL,
                },
            );
        }
        Ok(first)
    }

    /// Sends one request and waits (within `deadline`) for the status line.
    /// `replicas`: the provider's replica pool, when it has one. A
    /// token-login provider's call carries its token (`login.rs`).
    pub async fn send(
        &self,
        provider: &Provider,
        replicas: Option<&ReplicaPool>,
        timeouts: &Timeouts,
        request: Outgoing<'_>,
        deadline: Instant,
    ) -> Result<UpstreamCall, Failure> {
        if let Some(login) = &provider.login {
            // Boxed: a plain provider's call future stays as it was.
            let sent = self.send_logged_in(login, provider, replicas, timeouts, request, deadline);
            return Box::pin(sent).await;
        }
        self.send_with(provider, replicas, timeouts, request, &[], deadline)
            .await
    }

    /// A call with the login's token; a 401 drops the token (unless another
    /// call already replaced it) and the call is made once more with a
    /// fresh one. A second 401 is the answer.
    async fn send_logged_in(
        &self,
        login: &Login,
        provider: &Provider,
        replicas: Option<&ReplicaPool>,
        timeouts: &Timeouts,
        request: Outgoing<'_>,
        deadline: Instant,
    ) -> Result<UpstreamCall, Failure> {
        let token = login::token(self, login, timeouts.connect, deadline).await?;
        let again = request.clone();
        let call = self
            .send_with(
                provider,
                replicas,
                timeouts,
                request,
                &[token.header(login)],
                deadline,
            )
            .await?;
        if call.status != 401 {
            return Ok(call);
        }
        log::info!(
            "upstream {} refused its login token (401): logging in again",
            provider.name
        );
        self.discard(call, deadline).await;
        login::invalidate(login, &token);
        let token = login::token(self, login, timeouts.connect, deadline).await?;
        self.send_with(
            provider,
            replicas,
            timeouts,
            again,
            &[token.header(login)],
            deadline,
        )
        .await
    }

    /// Reads a small answer to its end so its connection can be reused;
    /// a slow one is dropped (and its connection closed) within a second,
    /// leaving the retry its time.
    async fn discard(&self, mut call: UpstreamCall, deadline: Instant) {
        let soon = deadline.min(Instant::now() + Duration::from_secs(1));
        if call.read_all(soon, MAX_ERROR_BODY).await.is_ok() {
            self.release(call);
        }
    }

    /// `send` with `extra` headers after the credentials (a login's token).
    async fn send_with(
        &self,
        provider: &Provider,
        replicas: Option<&ReplicaPool>,
        timeouts: &Timeouts,
        request: Outgoing<'_>,
        extra: &[(HeaderName, HeaderValue)],
        deadline: Instant,
    ) -> Result<UpstreamCall, Failure> {
        let Outgoing {
            method,
            path,
            key,
            headers,
            body,
            replica,
        } = request;
        let (addr, host, host_header, inflight): (_, Cow<str>, Cow<str>, _) = match replicas {
            Some(pool) => {
                let c = pool
                    .select(replica)
                    .ok_or_else(|| Failure::Connect("no healthy replica".into()))?;
                (c.addr, c.host.into(), c.host_header.into(), Some(c.guard))
            }
            None => {
                let addr = self.resolve(&provider.host, provider.port).await?;
                let host = provider.host.as_str().into();
                (addr, host, provider.host_header.as_str().into(), None)
            }
        };
        let chosen = replicas.map(|_| addr);
        // An empty SNI would disable certificate verification.
        let sni = if provider.tls { &*host } else { "" };
        let pool_key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (addr, provider.tls, sni).hash(&mut h);
            h.finish()
        };
        let groups = [provider.credentials(key), extra, headers, &provider.headers];
        let mut fresh = None;
        if provider.http2 && !h2::declined(pool_key) {
            let head = h2::head(
                method,
                provider.tls,
                &host_header,
                path,
                body.len(),
                &groups,
            )
            .map_err(Failure::Connect)?;
            let open = || async {
                let mut peer = peer(addr, provider.tls, sni, timeouts.connect);
                if provider.tls {
                    peer.options.alpn = ALPN::H2H1;
                }
                self.connect(&peer)
                    .await
                    .map_err(|e| Failure::Connect(e.to_string()))
            };
            // Boxed: its connect and handshake states would otherwise
            // enlarge every call's future, HTTP/1 ones included.
            let sent = Box::pin(h2::send(pool_key, provider.tls, open, &head, body.clone()));
            match tokio::time::timeout_at(deadline.into(), sent).await {
                Err(_) => {
                    h2::timed_out(pool_key);
                    return Err(Failure::Timeout(Phase::FirstByte));
                }
                Ok(Err(f)) => return Err(f),
                Ok(Ok(h2::Sent::Response(answer))) => {
                    return Ok(UpstreamCall {
                        status: answer.status,
                        content_type: answer.content_type,
                        retry_after: answer.retry_after,
                        body: Body::Http2(answer.body),
                        pool_key,
                        _inflight: inflight,
                        replica: chosen,
                    })
                }
                // Declined on TLS: this connection carries the request as HTTP/1.1.
                Ok(Ok(h2::Sent::Http1(stream))) => fresh = Some(stream),
            }
        }
        let mut wire = request_head(method, path, &host_header, body.len(), &groups);
        // One write, one packet: the head and a typical prompt together;
        // a large body follows the head as it is, uncopied.
        let rest: &[u8] = if body.len() <= COALESCE_BODY {
            wire.extend_from_slice(&body);
            &[]
        } else {
            &body
        };
        let mut parked = if fresh.is_none() {
            take_idle(pool_key)
        } else {
            None
        };
        let response = loop {
            let reused = parked.is_some();
            let stream = match parked.take().or_else(|| fresh.take()) {
                Some(s) => s,
                None => {
                    let peer = peer(addr, provider.tls, sni, timeouts.connect);
                    let connect = self.connect(&peer);
                    match tokio::time::timeout_at(deadline.into(), connect).await {
                        Err(_) => return Err(Failure::Timeout(Phase::FirstByte)),
                        Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
                        Ok(Ok(s)) => s,
                    }
                }
            };
            match tokio::time::timeout_at(deadline.into(), exchange(stream, &wire, rest)).await {
                Err(_) => return Err(Failure::Timeout(Phase::FirstByte)),
                Ok(Ok(response)) => break response,
                // A parked connection the upstream closed as we picked it
                // up: it took the request without a byte of answer, so once
                // more on a fresh connection (what browsers do with a
                // reused one). A partial answer is never retried here.
                Ok(Err(e)) if reused && e.silent => {
                    log::debug!("reused upstream connection failed ({e}); reconnecting");
                }
                Ok(Err(e)) => return Err(Failure::Io(e.message)),
            }
        };
        Ok(UpstreamCall {
            status: response.head.status,
            content_type: response.head.content_type.clone(),
            retry_after: response.head.retry_after.clone(),
            body: Body::Http1(response),
            pool_key,
            _inflight: inflight,
            replica: chosen,
        })
    }

    /// One request outside any provider (a token login): HTTP/1.1 on a
    /// connection of its own, closed after; the status and the body, of at
    /// most `to.limit` bytes.
    pub(crate) async fn one_off(
        &self,
        to: &OneOff<'_>,
        deadline: Instant,
    ) -> Result<(u16, Bytes), Failure> {
        let addr = self.resolve(to.host, to.port).await?;
        // An empty SNI would disable certificate verification.
        let sni = if to.tls { to.host } else { "" };
        let stream = match tokio::time::timeout_at(
            deadline.into(),
            self.connect(&peer(addr, to.tls, sni, to.connect)),
        )
        .await
        {
            Err(_) => return Err(Failure::Timeout(Phase::FirstByte)),
            Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let close = [(http::header::CONNECTION, HeaderValue::from_static("close"))];
        let groups = [to.headers, &close[..]];
        let mut wire = request_head(to.method, to.path, to.host_header, to.body.len(), &groups);
        wire.extend_from_slice(to.body);
        let mut response =
            match tokio::time::timeout_at(deadline.into(), exchange(stream, &wire, &[])).await {
                Err(_) => return Err(Failure::Timeout(Phase::FirstByte)),
                Ok(Err(e)) => return Err(Failure::Io(e.message)),
                Ok(Ok(r)) => r,
            };
        let mut body = bytes::BytesMut::new();
        loop {
            match tokio::time::timeout_at(deadline.into(), response.read_body()).await {
                Err(_) => return Err(Failure::Timeout(Phase::Body)),
                Ok(Err(e)) => return Err(Failure::Io(e)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) if body.len() + chunk.len() > to.limit => {
                    return Err(Failure::BadResponse(format!(
                        "answer over {} bytes",
                        to.limit
                    )))
                }
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            }
        }
        Ok((response.head.status, body.freeze()))
    }

    /// A new connection. Out of file descriptors, it waits for one to be
    /// freed (by a stream ending) rather than failing the request: every
    /// accepted request needs one more socket, and the caller's deadline
    /// bounds the wait.
    async fn connect(&self, peer: &HttpPeer) -> pingora::Result<Stream> {
        reserve::refill();
        let mut waiting = None;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.transport.new_stream(peer).await {
                Err(e) if out_of_descriptors(&e) => {
                    warn_out_of_descriptors();
                    waiting.get_or_insert_with(reserve::Waiting::start);
                    // Parked connections hold descriptors too: give them
                    // back, this worker's now and every other's at once.
                    close_idle();
                    RELEASE_IDLE.notify_waiters();
                    if reserve::release_one() {
                        continue;
                    }
                    // Pingora's accept loop retries once a second when out of
                    // descriptors: asking more often hands a freed one to a
                    // request already accepted rather than to a new client.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Parks a fully read connection for the next request of this worker:
    /// only when the response allows it (keep-alive, a body read to its
    /// exact end). An HTTP/2 stream has nothing to give back: its
    /// connection stays shared.
    pub fn release(&self, call: UpstreamCall) {
        if let Body::Http1(response) = call.body {
            if let Some(stream) = response.into_reusable() {
                park(call.pool_key, stream, self.pool_size);
            }
        }
    }
}

/// A one-off request's where and what (`UpstreamClient::one_off`).
pub(crate) struct OneOff<'a> {
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
    pub host_header: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// After the gateway's own (`content-type: application/json`, …).
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: &'a [u8],
    pub connect: Duration,
    /// The most body bytes read.
    pub limit: usize,
}

fn peer(addr: SocketAddr, tls: bool, sni: &str, connect: Duration) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, tls, sni.to_owned());
    peer.options.connection_timeout = Some(connect);
    peer.options.total_connection_timeout = Some(connect * 2);
    peer
}

/// Writes the request (`wire`, then `rest` when the body did not fit in
/// with the head) and reads the response head.
async fn exchange(
    mut stream: Stream,
    wire: &[u8],
    rest: &[u8],
) -> Result<Response<Stream>, HeadError> {
    let io = |e: std::io::Error| HeadError {
        silent: true,
        message: e.to_string(),
    };
    stream.write_all(wire).await.map_err(io)?;
    if !rest.is_empty() {
        stream.write_all(rest).await.map_err(io)?;
    }
    stream.flush().await.map_err(io)?;
    Response::read_head(stream).await
}

/// The request line and headers: the gateway's own first, then each group
/// in order (credentials, a login's token, the request's own, the
/// provider's configured ones); a later header of the same name replaces an
/// earlier one.
fn request_head(
    method: &str,
    path: &str,
    host: &str,
    body_len: usize,
    groups: &[&[(HeaderName, HeaderValue)]],
) -> Vec<u8> {
    let own = [
        (http::header::HOST, hv(host)),
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (http::header::CONTENT_LENGTH, HeaderValue::from(body_len)),
        (
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("modelswitch/", env!("CARGO_PKG_VERSION"))),
        ),
    ];
    let all = || own.iter().chain(groups.iter().flat_map(|g| g.iter()));
    let later = |i: usize, name: &HeaderName| all().skip(i + 1).any(|(n, _)| n == name);
    let mut buf = Vec::with_capacity(512 + path.len() + body_len.min(COALESCE_BODY));
    buf.extend_from_slice(method.as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(path.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (i, (name, value)) in all().enumerate() {
        if later(i, name) {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    buf
}

fn out_of_descriptors(e: &pingora::Error) -> bool {
    // EMFILE (process) and ENFILE (system), the same numbers on Linux and
    // the BSDs.
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|code| code == 24 || code == 23)
}

/// At most one warning every ten seconds: under exhaustion every request
/// would log one.
fn warn_out_of_descriptors() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log::warn!(
            "out of file descriptors: upstream connections wait for one to be freed \
             (raise the open-files limit, `ulimit -n`)"
        );
    }
}

/// A parked connection for `key`, if this worker has a live one.
fn take_idle(key: u64) -> Option<Stream> {
    IDLE.with(|idle| {
        idle.borrow_mut()
            .as_mut()
            .and_then(|pool| pool.take(&key, Instant::now(), still_open))
    })
}

/// Closes every connection this worker has parked.
fn close_idle() {
    IDLE.with(|idle| {
        if let Some(pool) = idle.borrow_mut().as_mut() {
            pool.sweep(Instant::now(), |_| false);
        }
    });
}

/// Wakes every worker's sweep to close all its parked connections: a
/// connect out of descriptors on one worker must not wait on another's
/// idle ones.
static RELEASE_IDLE: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn park(key: u64, stream: Stream, pool_size: usize) {
    // A connect somewhere waits for a descriptor: this one is worth more
    // freed than kept.
    if reserve::waiting() {
        return;
    }
    let first = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let first = idle.is_none();
        let pool = idle.get_or_insert_with(|| IdlePool::new(pool_size, POOL_IDLE));
        // An evicted or refused connection is closed here, by dropping it.
        drop(pool.put(key, stream, Instant::now()));
        first
    });
    if first {
        tokio::spawn(sweep_idle());
    }
}

/// Closes this worker's expired connections and those the upstream closed,
/// so an idle gateway does not sit on dead sockets; and all of them when a
/// connect somewhere is out of descriptors.
async fn sweep_idle() {
    let mut tick = tokio::time::interval(POOL_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let everything = tokio::select! {
            _ = tick.tick() => false,
            () = RELEASE_IDLE.notified() => true,
        };
        IDLE.with(|idle| {
            if let Some(pool) = idle.borrow_mut().as_mut() {
                if everything {
                    pool.sweep(Instant::now(), |_| false);
                } else {
                    pool.sweep(Instant::now(), still_open);
                }
            }
        });
    }
}

/// An idle HTTP/1 connection has nothing to say: readable means the
/// upstream closed it (or broke the protocol), either way it is done.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // Unconstrained: the cooperative budget must not turn "ready" into "pending".
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

impl UpstreamCall {
    pub fn is_event_stream(&self) -> bool {
        self.content_type.starts_with("text/event-stream")
    }

    /// The next body chunk, or `None` at the end; waits until `deadline`.
    pub async fn read(
        &mut self,
        deadline: Instant,
        phase: Phase,
    ) -> Result<Option<Bytes>, Failure> {
        let read = match &mut self.body {
            Body::Http1(response) => {
                tokio::time::timeout_at(deadline.into(), response.read_body()).await
            }
            Body::Http2(body) => tokio::time::timeout_at(deadline.into(), body.read()).await,
        };
        match read {
            Err(_) => Err(Failure::Timeout(phase)),
            Ok(Err(e)) => Err(Failure::Io(e)),
            Ok(Ok(b)) => Ok(b),
        }
    }

    /// The whole body, refusing more than `limit` bytes.
    pub async fn read_all(&mut self, deadline: Instant, limit: usize) -> Result<Bytes, Failure> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.read(deadline, Phase::Body).await? {
            if buf.len() + chunk.len() > limit {
                return Err(Failure::BadResponse(format!(
                    "response body over {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Reads an error response into the client-facing error.
    pub async fn into_failure(mut self, deadline: Instant) -> Failure {
        let body = self
            .read_all(deadline, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        Failure::Status(
            self.status,
            ApiError::from_upstream(self.status, &body, self.retry_after.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_is_one_block_and_later_headers_win() {
        let h = |k: &'static str, v: &'static str| {
            (HeaderName::from_static(k), HeaderValue::from_static(v))
        };
        let route = [h("authorization", "Bearer sk-up"), h("x-tenant", "a")];
        let provider = [h("user-agent", "team-proxy"), h("x-tenant", "b")];
        let head = request_head(
            "POST",
            "/v1/chat/completions",
            "api.example.com",
            42,
            &[&route, &provider],
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/chat/completions HTTP/1.1\r\n\
             host: api.example.com\r\n\
             content-type: application/json\r\n\
             content-length: 42\r\n\
             authorization: Bearer sk-up\r\n\
             user-agent: team-proxy\r\n\
             x-tenant: b\r\n\r\n"
        );
    }
}
