//! HTTP/2 to providers that offer it (`http2 = true`): one connection per
//! upstream (address, TLS, SNI) per worker, every request a stream on it,
//! as many at once as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows
//! (`SendRequest::ready` waits for room). Pingora's own HTTP/2 upstream
//! pool allows one stream per connection by default, which is HTTP/1 with
//! extra framing.
//!
//! The `h2` crate speaks the protocol over a connection Pingora's
//! connector opened; a spawned task drives it. On TLS the connection
//! offers ALPN `h2` and `http/1.1`; a server that picks HTTP/1.1 is
//! remembered, and its requests take the HTTP/1 path from then on. On
//! cleartext the client speaks HTTP/2 at once (prior knowledge, h2c).

use super::Failure;
use ::h2::client::{Builder, SendRequest};
use ::h2::{Reason, RecvStream};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use pingora::protocols::{Stream, ALPN};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How much of one response the server may send ahead of our reads: a
/// whole typical non-streamed answer, so no stream waits on a window
/// update (the default, 64 KiB, stalls a large answer once per window).
const STREAM_WINDOW: u32 = 4 << 20;
/// The same for all streams of a connection together.
const CONNECTION_WINDOW: u32 = 32 << 20;
/// A body piece handed on at once is at most this (data frames that have
/// already arrived are joined, as the HTTP/1 reader joins chunks).
const JOIN_MAX: usize = 64 * 1024;

/// A connection no request has started on for this long is left to close
/// once its streams end, and the next request opens a new one: as with the
/// HTTP/1 pool's `POOL_IDLE`, providers drop idle connections after a
/// minute or so, sometimes without a word.
const IDLE: Duration = Duration::from_secs(50);

/// One shared connection: its request handle, whether its driver has
/// ended (the server closed it, or it broke), and when a request last
/// started on it (milliseconds after `opened`).
struct Conn {
    send: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
    opened: Instant,
    last_used_ms: AtomicU64,
}

impl Conn {
    /// Whether a new request may start on it; if so, it is marked used.
    fn take(&self) -> bool {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_used_ms.swap(now, Ordering::AcqRel);
        !self.closed.load(Ordering::Acquire) && now.saturating_sub(last) < IDLE.as_millis() as u64
    }
}

/// A connection being opened or open; concurrent first requests wait for
/// the one opening rather than each opening their own.
type Slot = Arc<OnceCell<Conn>>;

thread_local! {
    /// This worker's HTTP/2 connections (each worker is a single-threaded
    /// runtime, so a connection's driver runs on the thread that uses it).
    static CONNS: RefCell<HashMap<u64, Slot>> = RefCell::new(HashMap::new());
    /// Upstreams whose TLS handshake chose HTTP/1.1 over the offered h2.
    static HTTP1_ONLY: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Whether the upstream at `key` declined HTTP/2 when it was offered.
pub(super) fn declined(key: u64) -> bool {
    HTTP1_ONLY.with(|s| s.borrow().contains(&key))
}

/// The request as HTTP/2 sends it, rebuilt for a retry.
pub(super) struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Head {
    fn request(&self) -> Request<()> {
        let mut r = Request::new(());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// Connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2);
/// `host` becomes `:authority`.
fn hop_by_hop(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == HOST
        || name == TE
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// The pseudo-headers (`:method`, `:scheme`, `:authority`, `:path`) and the
/// headers: the gateway's own, then each group in order (credentials, the
/// request's own, the provider's), a later one replacing an earlier one of
/// the same name, as `request_head` does for HTTP/1. A `host` in a group
/// names the authority.
pub(super) fn head(
    method: &str,
    tls: bool,
    authority: &str,
    path: &str,
    body_len: usize,
    groups: &[&[(HeaderName, HeaderValue)]],
) -> Result<Head, String> {
    let mut headers = HeaderMap::with_capacity(16);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body_len));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("modelswitch/", env!("CARGO_PKG_VERSION"))),
    );
    let mut host = None;
    for (name, value) in groups.iter().flat_map(|g| g.iter()) {
        if name == http::header::HOST {
            host = Some(value);
        } else if !hop_by_hop(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let authority = match host {
        Some(h) => h.to_str().map_err(|_| "invalid host header".to_owned())?,
        None => authority,
    };
    let scheme = if tls { "https" } else { "http" };
    let uri = Uri::try_from(format!("{scheme}://{authority}{path}"))
        .map_err(|e| format!("invalid request target {authority}{path}: {e}"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Head {
        method,
        uri,
        headers,
    })
}

/// What became of a request to an `http2` provider.
pub(super) enum Sent {
    Response(Answer),
    /// The TLS server chose HTTP/1.1: the connection, for the HTTP/1 path.
    Http1(Stream),
}

/// A response head and its body.
pub(super) struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Body,
}

/// Sends `head` and `body` on this worker's connection for `key`, opening
/// one with `open` when there is none (or it has closed). A request the
/// server provably did not process (refused, above a GOAWAY's last stream,
/// or never sent because a reused connection broke first) goes once more
/// on a fresh connection. The caller bounds the whole with its deadline.
pub(super) async fn send<F, Fut>(
    key: u64,
    tls: bool,
    open: F,
    head: &Head,
    body: Bytes,
) -> Result<Sent, Failure>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Stream, Failure>>,
{
    let mut retried = false;
    loop {
        let slot = CONNS.with(|c| c.borrow_mut().entry(key).or_default().clone());
        let mut opened = false;
        let conn = slot
            .get_or_try_init(|| {
                opened = true;
                connect(key, tls, &open)
            })
            .await;
        let conn = match conn {
            Ok(conn) => conn,
            Err(Opened::Failed(f)) => return Err(f),
            Err(Opened::Http1(stream)) => return Ok(Sent::Http1(stream)),
        };
        if !conn.take() {
            forget(key, &slot);
            if opened {
                return Err(Failure::Connect("HTTP/2 connection closed at once".into()));
            }
            continue;
        }
        match exchange(conn.send.clone(), head.request(), body.clone()).await {
            Ok(response) => return Ok(Sent::Response(answer(response))),
            Err((e, sent)) => {
                let refused = refused(&e);
                if e.is_io() || e.is_go_away() {
                    // The connection will take no more streams. (A stream
                    // refused over the server's limit, sent before its
                    // SETTINGS arrived, leaves the connection usable.)
                    forget(key, &slot);
                }
                // A stream that was sent may have been processed, even on
                // a connection that broke before its answer (it carried
                // others): only the server's word that it was not allows
                // a second send. One never sent on a reused connection
                // that broke meanwhile goes again, as over HTTP/1.
                if !retried && (refused || (e.is_io() && !opened && !sent)) {
                    log::debug!("upstream HTTP/2 request not processed ({e}); once more");
                    retried = true;
                    continue;
                }
                return Err(Failure::Io(describe(&e)));
            }
        }
    }
}

/// Why a connection could not be used for HTTP/2.
enum Opened {
    Failed(Failure),
    Http1(Stream),
}

/// Opens a connection and starts HTTP/2 on it, its driver spawned.
async fn connect<F, Fut>(key: u64, tls: bool, open: &F) -> Result<Conn, Opened>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Stream, Failure>>,
{
    let stream = open().await.map_err(Opened::Failed)?;
    if tls && stream.selected_alpn_proto() != Some(ALPN::H2) {
        // Once per address and worker: an operator who set `http2 = true`
        // learns the provider does not offer it.
        log::info!(
            "an http2 provider's server chose HTTP/1.1 (ALPN); this worker keeps to HTTP/1.1 there"
        );
        HTTP1_ONLY.with(|s| s.borrow_mut().insert(key));
        return Err(Opened::Http1(stream));
    }
    let (send, connection) = Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|e| Opened::Failed(Failure::Connect(format!("HTTP/2 handshake: {e}"))))?;
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("upstream HTTP/2 connection ended: {e}");
        }
        flag.store(true, Ordering::Release);
    });
    Ok(Conn {
        send,
        closed,
        opened: Instant::now(),
        last_used_ms: AtomicU64::new(0),
    })
}

/// After a request timed out on this worker's connection for `key`: the
/// next request opens a new one, in case this one died without a word (a
/// slow answer costs one connection more). Streams on it run to their end.
pub(super) fn timed_out(key: u64) {
    CONNS.with(|c| c.borrow_mut().remove(&key));
}

/// Drops `slot` from the map, unless another connection already took its
/// place.
fn forget(key: u64, slot: &Slot) {
    CONNS.with(|c| {
        let mut c = c.borrow_mut();
        if c.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            c.remove(&key);
        }
    });
}

/// One stream: waits for room under the server's concurrency limit, sends
/// the head and the body (ending the stream), waits for the response head.
/// The response, or the error and whether the request had been handed to
/// the connection by then (false: it never left, so it can go again).
async fn exchange(
    send: SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> Result<http::Response<RecvStream>, (::h2::Error, bool)> {
    let mut send = send.ready().await.map_err(|e| (e, false))?;
    let end = body.is_empty();
    let (response, mut stream) = send.send_request(request, end).map_err(|e| (e, false))?;
    if !end {
        stream.send_data(body, true).map_err(|e| (e, true))?;
    }
    response.await.map_err(|e| (e, true))
}

/// Refused by the server before any processing (RFC 9113 §8.7): a reset
/// with REFUSED_STREAM, or a GOAWAY whose last stream is below this one.
fn refused(e: &::h2::Error) -> bool {
    e.reason() == Some(Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
}

fn describe(e: &::h2::Error) -> String {
    match e.reason() {
        Some(reason) if e.is_reset() => format!("upstream reset the HTTP/2 stream ({reason})"),
        Some(reason) if e.is_go_away() => {
            format!("upstream closed the HTTP/2 connection ({reason})")
        }
        _ => format!("HTTP/2: {e}"),
    }
}

fn answer(response: http::Response<RecvStream>) -> Answer {
    let (parts, body) = response.into_parts();
    let text = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    Answer {
        status: parts.status.as_u16(),
        content_type: text(http::header::CONTENT_TYPE).unwrap_or_default(),
        retry_after: text(http::header::RETRY_AFTER),
        body: Body(body),
    }
}

/// A response body arriving as data frames.
pub(super) struct Body(RecvStream);

impl Body {
    /// The next piece of body, `None` at its end. Frames that have already
    /// arrived are joined into one piece; the window they took is given
    /// back as they are handed on.
    pub(super) async fn read(&mut self) -> Result<Option<Bytes>, String> {
        let first = loop {
            match self.0.data().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(describe(&e)),
                Some(Ok(b)) => {
                    self.give_back(b.len())?;
                    if !b.is_empty() {
                        break b;
                    }
                }
            }
        };
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(first.len(), BytesMut::len) < JOIN_MAX {
            // Unconstrained: the cooperative budget must not turn "ready"
            // into "pending".
            let Some(Some(Ok(more))) = tokio::task::unconstrained(self.0.data()).now_or_never()
            else {
                // Pending, the end, or an error the next read reports.
                break;
            };
            self.give_back(more.len())?;
            joined
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more);
        }
        Ok(Some(joined.map_or(first, BytesMut::freeze)))
    }

    fn give_back(&mut self, n: usize) -> Result<(), String> {
        self.0
            .flow_control()
            .release_capacity(n)
            .map_err(|e| describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &'static str, v: &'static str) -> (HeaderName, HeaderValue) {
        (HeaderName::from_static(k), HeaderValue::from_static(v))
    }

    #[test]
    fn pseudo_headers_come_from_the_method_scheme_authority_and_path() {
        let head = head(
            "POST",
            true,
            "api.example.com",
            "/v1/chat/completions",
            42,
            &[],
        )
        .unwrap();
        let r = head.request();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri().scheme_str(), Some("https"));
        assert_eq!(r.uri().authority().unwrap().as_str(), "api.example.com");
        assert_eq!(r.uri().path(), "/v1/chat/completions");
        assert_eq!(r.headers()["content-length"], "42");
        assert_eq!(r.headers()["content-type"], "application/json");
        let plain = head_of("GET", false, "10.0.0.5:8000", "/v1beta/models?key=k");
        assert_eq!(plain.uri().scheme_str(), Some("http"));
        assert_eq!(plain.uri().authority().unwrap().as_str(), "10.0.0.5:8000");
        assert_eq!(
            plain.uri().path_and_query().unwrap().as_str(),
            "/v1beta/models?key=k"
        );
    }

    fn head_of(method: &str, tls: bool, authority: &str, path: &str) -> Request<()> {
        head(method, tls, authority, path, 0, &[])
            .unwrap()
            .request()
    }

    #[test]
    fn hop_by_hop_headers_are_stripped_and_later_headers_win() {
        let route = [
            h("authorization", "Bearer sk-up"),
            h("x-tenant", "a"),
            h("connection", "keep-alive"),
            h("keep-alive", "timeout=5"),
            h("transfer-encoding", "chunked"),
            h("te", "gzip"),
            h("upgrade", "websocket"),
            h("proxy-connection", "close"),
        ];
        let provider = [h("user-agent", "team-proxy"), h("x-tenant", "b")];
        let r = head(
            "POST",
            true,
            "api.example.com",
            "/v1/x",
            7,
            &[&route, &provider],
        )
        .unwrap()
        .request();
        let mut names: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "authorization",
                "content-length",
                "content-type",
                "user-agent",
                "x-tenant"
            ]
        );
        assert_eq!(r.headers()["x-tenant"], "b");
        assert_eq!(r.headers()["user-agent"], "team-proxy");
        assert_eq!(r.headers().get_all("x-tenant").iter().count(), 1);
    }

    #[test]
    fn a_configured_host_header_names_the_authority() {
        let provider = [h("host", "internal.example")];
        let r = head("POST", false, "10.0.0.5:8000", "/v1/x", 0, &[&provider])
            .unwrap()
            .request();
        assert_eq!(r.uri().authority().unwrap().as_str(), "internal.example");
        assert!(r.headers().get("host").is_none());
    }

    #[test]
    fn a_refused_stream_may_go_again_other_resets_may_not() {
        assert!(refused(&::h2::Error::from(Reason::REFUSED_STREAM)));
        assert!(!refused(&::h2::Error::from(Reason::INTERNAL_ERROR)));
        assert!(!refused(&::h2::Error::from(Reason::CANCEL)));
    }
}
