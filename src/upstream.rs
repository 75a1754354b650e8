//! Calls to upstream providers through Pingora's pooled `Connector`:
//! asynchronous DNS with a small TTL cache (`HttpPeer::new` with a host name
//! would resolve synchronously and panic on failure), TLS with SNI, an exact
//! `Content-Length`, and every wait bounded.

use crate::config::{Provider, Timeouts};
use bytes::Bytes;
use filters::error::ApiError;
pub use filters::failure::{Failure, Phase};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct DnsEntry {
    addrs: Vec<SocketAddr>,
    expires: Instant,
}

pub struct UpstreamClient {
    connector: Connector,
    dns: Mutex<HashMap<(String, u16), DnsEntry>>,
}

const DNS_TTL: Duration = Duration::from_secs(60);
/// Idle pooled upstream connections live this long.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Error bodies are read for their message, never without bound.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One in-flight upstream exchange.
pub struct UpstreamCall {
    session: HttpSession,
    peer: HttpPeer,
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    /// Counts this call against its replica until it ends.
    _inflight: Option<crate::replicas::InFlight>,
}

impl UpstreamClient {
    pub fn new() -> Self {
        Self {
            connector: Connector::new(None),
            dns: Mutex::new(HashMap::new()),
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
    pub async fn send(
        &self,
        provider: &Provider,
        timeouts: &Timeouts,
        path: &str,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: Bytes,
        deadline: Instant,
    ) -> Result<UpstreamCall, Failure> {
        let (addr, host, host_header, inflight) = match &provider.replicas {
            Some(pool) => {
                let c = pool
                    .select()
                    .ok_or_else(|| Failure::Connect("no healthy replica".into()))?;
                (c.addr, c.host, c.host_header, Some(c.guard))
            }
            None => {
                let addr = self.resolve(&provider.host, provider.port).await?;
                (addr, provider.host.clone(), provider.host_header(), None)
            }
        };
        // An empty SNI would disable certificate verification.
        let sni = if provider.tls { host } else { String::new() };
        let mut peer = HttpPeer::new(addr, provider.tls, sni);
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.total_connection_timeout = Some(timeouts.connect * 2);
        peer.options.idle_timeout = Some(POOL_IDLE);
        let (mut session, _reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| Failure::Connect(e.to_string()))?;
        session.set_write_timeout(Some(timeouts.first_event));

        let mut req = RequestHeader::build("POST", path.as_bytes(), Some(headers.len() + 8))
            .map_err(|e| Failure::Io(e.to_string()))?;
        let mut put = |k: http::HeaderName, v: http::HeaderValue| {
            req.insert_header(k, v)
                .map_err(|e| Failure::Io(e.to_string()))
        };
        put(http::header::HOST, hv(&host_header))?;
        put(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )?;
        put(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        )?;
        put(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("modelswitch/", env!("CARGO_PKG_VERSION"))),
        )?;
        for (k, v) in headers {
            put(k.clone(), v.clone())?;
        }
        for (k, v) in &provider.headers {
            put(k.clone(), v.clone())?;
        }

        let exchange = async {
            session.write_request_header(Box::new(req)).await?;
            session.write_request_body(body, true).await?;
            session.finish_request_body().await?;
            session.read_response_header().await
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Err(_) => return Err(Failure::Timeout(Phase::FirstByte)),
            Ok(Err(e)) => return Err(Failure::Io(e.to_string())),
            Ok(Ok(())) => {}
        }
        let resp = session
            .response_header()
            .ok_or_else(|| Failure::Io("no response header".into()))?;
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(UpstreamCall {
            status: resp.status.as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            retry_after: header("retry-after"),
            session,
            peer,
            _inflight: inflight,
        })
    }

    /// Returns a fully read connection to the pool.
    pub async fn release(&self, call: UpstreamCall) {
        self.connector
            .release_http_session(call.session, &call.peer, Some(POOL_IDLE))
            .await;
    }
}

fn hv(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
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
        match tokio::time::timeout_at(deadline.into(), self.session.read_response_body()).await {
            Err(_) => Err(Failure::Timeout(phase)),
            Ok(Err(e)) => Err(Failure::Io(e.to_string())),
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
