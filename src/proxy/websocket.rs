//! The OpenAI Responses API over a WebSocket (Codex with
//! `supports_websockets = true`): `GET /v1/responses` upgraded, then one
//! `response.create` frame per response, each answered with the SSE
//! events' JSON, one per text frame. The protocol's details, as checked
//! against the Codex source, are in `filters::wire::websocket`.
//!
//! Every `response.create` runs through the gateway's own request path,
//! unchanged: the frame becomes `POST {path}` with the upgrade's headers
//! (auth, session) and `stream: true`, handed to `Gateway::request_filter`
//! and `Gateway::logging` over an in-memory connection (a
//! `tokio::io::duplex` pair that reports the real connection's addresses,
//! so the localhost key and the usage row's client address still hold).
//! Auth, key limits, the allow-list, routing, fallback, translation,
//! usage rows, the access log and the conversation store are the POST's
//! own, and each response is its own request record. The SSE answer is
//! read back with Pingora's HTTP/1 client and relayed; an error answer
//! becomes an `error` frame with its status.
//!
//! Framing is `tungstenite`'s (RFC 6455 server side: masked client frames,
//! fragments, ping/pong, the close handshake, UTF-8 checks, a message
//! cap). It needs the connection itself, so after the checks the upgrade
//! request's HTTP/1 session is swapped for an equal one over an in-memory
//! pipe (Pingora still logs the upgrade from it, status 101) and the real
//! stream is taken out of the swapped one; the 101 is written on it here.
//!
//! One response at a time per socket; a client that closes mid-response
//! ends its upstream call (the in-memory connection closes, which the
//! exchange takes as the client leaving). An idle socket closes after
//! `client_idle_timeout`; a shutdown closes each socket with 1001 once its
//! response in flight has ended.

use super::auth::authenticate_caller;
use super::Gateway;
use crate::record::RequestRecord;
use crate::state::Live;
use async_trait::async_trait;
use bytes::Bytes;
use filters::error::{ApiError, ErrorKind};
use filters::wire::websocket::{self as wire, ClientFrame, EventKind, SocketHistory};
use filters::Dialect;
use futures::{SinkExt, StreamExt};
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession as ClientSession;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    UniqueID,
};
use pingora::proxy::{ProxyHttp, Session};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// How long a closing socket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The largest error body read back from the request path.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The in-memory connection's buffer each way.
const PIPE_BYTES: usize = 64 * 1024;

/// `GET` on a Responses path: the upgrade, then the socket until it ends.
/// `Err` only before the upgrade (rendered by the caller as usual).
pub async fn serve(
    gateway: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(Dialect::OpenAiResponses);
    // The POST's own check, before anything about the upgrade is said.
    let key = authenticate_caller(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    let accept = match check_upgrade(session) {
        Ok(accept) => accept,
        Err(Refusal::Error(e)) => return Err(*e),
        Err(Refusal::Upgrade { header, value, e }) => {
            refuse(session, rec, &e, header, value).await;
            return Ok(());
        }
    };
    let digest = session
        .as_downstream()
        .stream()
        .and_then(|s| s.get_socket_digest());
    let Some(mut stream) = take_stream(session, digest.clone()).await else {
        return Err(ApiError::new(
            ErrorKind::Api,
            "the connection could not be upgraded",
        ));
    };
    let snap = &live.config;
    rec.result.status = 101;
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {accept}\r\nx-request-id: {}\r\n\r\n",
        rec.id
    );
    let wrote = timeout(snap.downstream.client_write_timeout, async {
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await
    })
    .await;
    if !matches!(wrote, Ok(Ok(()))) {
        rec.result.error = Some("the client left during the upgrade".into());
        return Ok(());
    }
    let max = snap.max_request_body_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .write_buffer_size(0);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let template = Template::of(session.req_header());
    let socket = Socket {
        gateway,
        ws,
        template,
        digest,
        history: SocketHistory::default(),
        idle: snap.downstream.client_idle_timeout,
        write_timeout: snap.downstream.client_write_timeout,
        max_event_bytes: snap.downstream.max_event_bytes,
    };
    let ended = socket.run().await;
    log::debug!("{}: responses websocket closed: {ended}", rec.id);
    Ok(())
}

enum Refusal {
    /// Answered as any error is.
    Error(Box<ApiError>),
    /// 426, with the header that says what would do.
    Upgrade {
        header: &'static str,
        value: &'static str,
        e: Box<ApiError>,
    },
}

/// The upgrade's checks (RFC 6455 §4.2.1); the `Sec-WebSocket-Accept`
/// for a good one.
fn check_upgrade(session: &Session) -> Result<String, Refusal> {
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    // Tokens may be spread over repeated header lines.
    let lists = |name: &str, token: &str| {
        req.headers
            .get_all(name)
            .iter()
            .any(|v| wire::has_token(v.as_bytes(), token))
    };
    let is_upgrade = lists("upgrade", "websocket") && lists("connection", "upgrade");
    if session.as_downstream().stream().is_none() {
        // HTTP/2 has no Upgrade (and no connection-specific headers to
        // say so with); Codex opens its socket over HTTP/1.1.
        let mut e = ApiError::invalid("a WebSocket upgrade needs HTTP/1.1");
        e.status = Some(426);
        return Err(Refusal::Error(Box::new(e)));
    }
    if !is_upgrade {
        let mut e = ApiError::invalid(
            "this path takes POST, or GET upgraded to a WebSocket (Upgrade: websocket)",
        );
        e.status = Some(426);
        return Err(Refusal::Upgrade {
            header: "upgrade",
            value: "websocket",
            e: Box::new(e),
        });
    }
    if req.version != http::Version::HTTP_11 {
        return Err(Refusal::Error(Box::new(ApiError::invalid(
            "a WebSocket upgrade needs HTTP/1.1",
        ))));
    }
    if header("sec-websocket-version") != Some(b"13") {
        let mut e = ApiError::invalid("Sec-WebSocket-Version: 13 is required");
        e.status = Some(426);
        return Err(Refusal::Upgrade {
            header: "sec-websocket-version",
            value: "13",
            e: Box::new(e),
        });
    }
    // A 16-byte nonce in base64 is 24 characters ending in "==".
    let key = header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .filter(|k| k.len() == 24 && k.ends_with(b"==") && !k.contains(&b' '))
        .ok_or_else(|| {
            Refusal::Error(Box::new(ApiError::invalid(
                "Sec-WebSocket-Key: a base64 16-byte nonce is required",
            )))
        })?;
    let has_body = req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || header("content-length").is_some_and(|v| v != b"0");
    if has_body {
        return Err(Refusal::Error(Box::new(ApiError::invalid(
            "a WebSocket upgrade has no body",
        ))));
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key))
}

/// A refused upgrade: the error in the Responses shape, with the header
/// that says what the client should send.
async fn refuse(
    session: &mut Session,
    rec: &mut RequestRecord,
    e: &ApiError,
    header: &'static str,
    value: &'static str,
) {
    rec.result.error = Some(e.message.clone());
    let body = Bytes::from(filters::dialect::error_bytes(Dialect::OpenAiResponses, e));
    let status = filters::dialect::error_status(Dialect::OpenAiResponses, e);
    crate::downstream::respond(
        session,
        rec,
        status,
        "application/json",
        body,
        &[(header, value.to_owned())],
        false,
    )
    .await;
}

/// The connection out of the upgrade request's HTTP/1 session, which is
/// replaced by one over an in-memory pipe holding the same request head
/// (for the upgrade's own log line and usage row). `None` if the session
/// is not HTTP/1 or the head could not be read back.
async fn take_stream(session: &mut Session, digest: Option<Arc<SocketDigest>>) -> Option<Stream> {
    if !matches!(*session.downstream_session, ServerSession::H1(_)) {
        return None;
    }
    let head = head_bytes(session.req_header());
    let (ours, mut theirs) = tokio::io::duplex(head.len() + 16);
    theirs.write_all(&head).await.ok()?;
    drop(theirs);
    let mut stand_in = ServerSession::new_http1(Box::new(Pipe {
        inner: ours,
        digest,
    }));
    if !matches!(stand_in.read_request().await, Ok(true)) {
        return None;
    }
    stand_in.set_keepalive(None);
    let real = std::mem::replace(&mut session.downstream_session, Box::new(stand_in));
    match *real {
        ServerSession::H1(h1) => Some(h1.into_inner()),
        _ => None,
    }
}

/// A request head as bytes (HTTP/1.1), from a parsed one.
fn head_bytes(req: &RequestHeader) -> Vec<u8> {
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = format!("{} {target} HTTP/1.1\r\n", req.method).into_bytes();
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The `POST` each frame becomes: the upgrade's path and the headers the
/// POST would have carried.
struct Template {
    path: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Template {
    fn of(req: &RequestHeader) -> Self {
        let path = req
            .uri
            .path_and_query()
            .map_or("/v1/responses", |p| p.as_str())
            .to_owned();
        let headers = req
            .headers
            .iter()
            .filter(|(n, v)| wire::forwarded_header(n.as_str(), v.as_bytes()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Self { path, headers }
    }

    fn request(&self, body_len: usize) -> Option<Box<RequestHeader>> {
        let mut req = RequestHeader::build("POST", self.path.as_bytes(), None).ok()?;
        for (n, v) in &self.headers {
            req.append_header(n.clone(), v.clone()).ok()?;
        }
        req.insert_header("content-type", "application/json").ok()?;
        req.insert_header("accept", "text/event-stream").ok()?;
        req.insert_header("content-length", body_len.to_string())
            .ok()?;
        Some(Box::new(req))
    }
}

/// What the relay of one response hands the socket: a frame to send, and
/// what it means.
struct Relayed(String, EventKind);

/// The response being answered.
struct Running {
    events: mpsc::Receiver<Relayed>,
    /// Reads the answer back; aborting it closes the in-memory
    /// connection, which the request path takes as the client leaving.
    /// Taken (left to finish) once the response has ended.
    relay: Option<tokio::task::JoinHandle<()>>,
    /// The request's whole input, kept with its answer.
    input: Vec<Value>,
    /// Output items seen so far, should the final event not list them.
    items: Vec<Value>,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
    }
}

struct Socket<'a> {
    gateway: &'a Gateway,
    ws: WebSocketStream<Stream>,
    template: Template,
    digest: Option<Arc<SocketDigest>>,
    history: SocketHistory,
    idle: Duration,
    write_timeout: Duration,
    max_event_bytes: usize,
}

/// Why a socket ended (for the debug log).
type Ended = &'static str;

impl Socket<'_> {
    async fn run(mut self) -> Ended {
        let mut running: Option<Running> = None;
        let mut draining = false;
        let mut idle_at = Instant::now() + self.idle;
        let drain = self.gateway.drain.clone();
        let ended = loop {
            tokio::select! {
                biased;
                msg = self.ws.next() => {
                    idle_at = Instant::now() + self.idle;
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            if let Err(e) = self.frame(text.as_str(), &mut running, draining).await {
                                break e;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            self.close(CloseCode::Unsupported, "text frames only").await;
                            break "binary frame";
                        }
                        // The pong tungstenite queued goes out now.
                        Some(Ok(Message::Ping(_))) => {
                            if !self.flush().await {
                                break "write failed";
                            }
                        }
                        Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(_))) => {
                            // Any response still running is cancelled
                            // (dropping it closes its connection); the
                            // close reply is queued: flush it.
                            running = None;
                            let _ = self.flush().await;
                            break "client closed";
                        }
                        Some(Err(e)) => {
                            running = None;
                            break self.fail(&e).await;
                        }
                        None => break "client left",
                    }
                }
                relayed = next_event(&mut running) => {
                    match relayed {
                        Some(Relayed(text, kind)) => {
                            if let Some(r) = running.as_mut() {
                                self.note(r, kind);
                            }
                            if !self.send(text).await {
                                break "write failed";
                            }
                            // Ended: the next response.create may come at
                            // once. The request path still finishes its
                            // answer and its record; the relay reads it out.
                            if let Some(mut r) = running.take_if(|r| r.ended) {
                                drop(r.relay.take());
                                idle_at = Instant::now() + self.idle;
                                if draining {
                                    self.close(CloseCode::Away, "the gateway is shutting down").await;
                                    break "shutdown";
                                }
                            }
                        }
                        None => {
                            if let Some(r) = running.take() {
                                if !r.ended {
                                    let e = ApiError::new(
                                        ErrorKind::Api,
                                        "the response ended before it completed",
                                    );
                                    if !self.send(error_frame(&e)).await {
                                        break "write failed";
                                    }
                                }
                            }
                            idle_at = Instant::now() + self.idle;
                            if draining {
                                self.close(CloseCode::Away, "the gateway is shutting down").await;
                                break "shutdown";
                            }
                        }
                    }
                }
                () = drain.begun(), if !draining => {
                    draining = true;
                    if running.is_none() {
                        self.close(CloseCode::Away, "the gateway is shutting down").await;
                        break "shutdown";
                    }
                }
                () = tokio::time::sleep_until(idle_at), if running.is_none() => {
                    self.close(CloseCode::Normal, "idle").await;
                    break "idle";
                }
            }
        };
        drop(running);
        ended
    }

    /// One client text frame.
    async fn frame(
        &mut self,
        text: &str,
        running: &mut Option<Running>,
        draining: bool,
    ) -> Result<(), Ended> {
        if running.is_some() {
            let mut e = ApiError::invalid(
                "a response is already in progress on this socket: send the next \
                 response.create after response.completed",
            );
            e.code = Some("response_in_progress".into());
            e.status = Some(409);
            return self.reply(error_frame(&e)).await;
        }
        if draining {
            let e = ApiError::new(ErrorKind::Overloaded, "the gateway is shutting down");
            return self.reply(error_frame(&e)).await;
        }
        let (mut body, warmup) = match wire::parse_frame(text) {
            Ok(ClientFrame::Create { body, warmup }) => (body, warmup),
            Ok(ClientFrame::Processed) => return Ok(()),
            Err(refused) => {
                let mut e = ApiError::invalid(refused.message);
                if let Some(p) = refused.param {
                    e = e.with_param(p);
                }
                return self.reply(error_frame(&e)).await;
            }
        };
        let input = self.history.expand(&mut body);
        if warmup {
            // Nothing to generate: the id is what the next turn continues.
            let Some(id) = crate::exchange::mint_response_id() else {
                let e = ApiError::new(ErrorKind::Api, "the system has no randomness for an id");
                return self.reply(error_frame(&e)).await;
            };
            let created = crate::usage::row::unix_ms() / 1000;
            for event in wire::warmup_events(&id, &body, created) {
                self.reply(event).await?;
            }
            self.history.remember(id, input, Vec::new());
            return Ok(());
        }
        let body = match serde_json::to_vec(&Value::Object(body)) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let e = ApiError::invalid(format!("the frame could not be re-encoded: {e}"));
                return self.reply(error_frame(&e)).await;
            }
        };
        match self.start(body) {
            Some((events, relay)) => {
                *running = Some(Running {
                    events,
                    relay: Some(relay),
                    input,
                    items: Vec::new(),
                    ended: false,
                });
                Ok(())
            }
            None => {
                let e = ApiError::invalid("the frame's headers could not be carried over");
                self.reply(error_frame(&e)).await
            }
        }
    }

    /// Runs `POST {path}` with `body` through the gateway's own request
    /// path, over an in-memory connection; its answer comes back as
    /// frames on the channel.
    fn start(&self, body: Bytes) -> Option<(mpsc::Receiver<Relayed>, tokio::task::JoinHandle<()>)> {
        let head = self.template.request(body.len())?;
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        let gateway = self.gateway.clone();
        let digest = self.digest.clone();
        tokio::spawn(async move {
            let pipe = Pipe {
                inner: server,
                digest,
            };
            let mut session = Session::new_h1(Box::new(pipe));
            if !matches!(session.downstream_session.read_request().await, Ok(true)) {
                return;
            }
            // As Pingora runs a request the gateway answers itself.
            let mut rec = gateway.new_ctx();
            let _ = gateway.request_filter(&mut session, &mut rec).await;
            gateway.logging(&mut session, None, &mut rec).await;
            let _ = session.downstream_session.finish().await;
        });
        let (tx, rx) = mpsc::channel(64);
        let max_event_bytes = self.max_event_bytes;
        let relay = tokio::spawn(relay(client, head, body, tx, max_event_bytes));
        Some((rx, relay))
    }

    /// Keeps what the socket must remember of a relayed event.
    fn note(&mut self, r: &mut Running, kind: EventKind) {
        match kind {
            EventKind::Other => {}
            EventKind::ItemDone(item) => r.items.push(item),
            EventKind::Ended {
                id,
                output,
                continuable,
            } => {
                r.ended = true;
                if let (Some(id), true) = (id, continuable) {
                    let output = output.unwrap_or_else(|| std::mem::take(&mut r.items));
                    self.history
                        .remember(id, std::mem::take(&mut r.input), output);
                }
            }
            EventKind::Error => r.ended = true,
        }
    }

    async fn reply(&mut self, text: String) -> Result<(), Ended> {
        if self.send(text).await {
            Ok(())
        } else {
            Err("write failed")
        }
    }

    async fn send(&mut self, text: String) -> bool {
        matches!(
            timeout(self.write_timeout, self.ws.send(Message::text(text))).await,
            Ok(Ok(()))
        )
    }

    async fn flush(&mut self) -> bool {
        matches!(
            timeout(self.write_timeout, self.ws.flush()).await,
            Ok(Ok(()))
        )
    }

    /// A protocol error: the close code RFC 6455 gives it, when the
    /// socket can still say it.
    async fn fail(&mut self, e: &WsError) -> Ended {
        let (code, why) = match e {
            // Gone without a close frame (a process that exited).
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return "client left",
            WsError::Capacity(_) => (CloseCode::Size, "message too large"),
            WsError::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8"),
            WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
            _ => return "connection error",
        };
        self.close(code, why).await;
        why
    }

    /// Sends a close frame and waits a little for the client's.
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if !matches!(
            timeout(self.write_timeout, self.ws.close(Some(frame))).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let _ = timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// The running response's next frame; never, when none runs.
async fn next_event(running: &mut Option<Running>) -> Option<Relayed> {
    match running {
        Some(r) => r.events.recv().await,
        None => std::future::pending().await,
    }
}

/// An `error` frame for an error of the socket's own.
fn error_frame(e: &ApiError) -> String {
    let status = filters::dialect::error_status(Dialect::OpenAiResponses, e);
    wire::error_frame(
        status,
        &filters::dialect::error_bytes(Dialect::OpenAiResponses, e),
    )
}

/// Sends the request over the in-memory connection and relays the
/// answer: each SSE event's data as a frame, or an error answer as one
/// `error` frame.
async fn relay(
    pipe: DuplexStream,
    head: Box<RequestHeader>,
    body: Bytes,
    tx: mpsc::Sender<Relayed>,
    max_event_bytes: usize,
) {
    let mut http = ClientSession::new(Box::new(pipe));
    let sent = async {
        http.write_request_header(head).await?;
        http.write_body(&body).await?;
        http.finish_body().await?;
        http.read_response().await
    };
    if sent.await.is_err() {
        let e = ApiError::new(ErrorKind::Api, "the request path gave no answer");
        let _ = tx.send(Relayed(error_frame(&e), EventKind::Error)).await;
        return;
    }
    let status = http.get_status().map_or(502, |s| s.as_u16());
    let streams = http
        .get_header(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !(200..300).contains(&status) || !streams {
        let mut answer = Vec::new();
        while let Ok(Some(chunk)) = http.read_body_bytes().await {
            answer.extend_from_slice(&chunk);
            if answer.len() > MAX_ERROR_BODY {
                break;
            }
        }
        let status = if (200..300).contains(&status) {
            502
        } else {
            status
        };
        let frame = wire::error_frame(status, &answer);
        let _ = tx.send(Relayed(frame, EventKind::Error)).await;
        return;
    }
    let mut decoder = filters::wire::sse::SseDecoder::with_limit(max_event_bytes);
    let mut events = Vec::new();
    loop {
        let chunk = http.read_body_bytes().await;
        match &chunk {
            Ok(Some(bytes)) => decoder.feed(bytes, &mut events),
            Ok(None) | Err(_) => decoder.finish(&mut events),
        }
        for event in events.drain(..) {
            let data = event.data.trim();
            // Keep-alive comments carry no data; only JSON events are frames.
            if !data.starts_with('{') {
                continue;
            }
            let kind = wire::classify_event(data);
            // Past the response's end no one listens; the answer is still
            // read to its end, so the request path finishes undisturbed.
            let _ = tx.send(Relayed(data.to_owned(), kind)).await;
        }
        if !matches!(chunk, Ok(Some(_))) {
            return;
        }
    }
}

/// One end of an in-memory connection that reports the real connection's
/// socket digest: the request path sees the client's and the listener's
/// addresses as a POST on that connection would.
#[derive(Debug)]
struct Pipe {
    inner: DuplexStream,
    digest: Option<Arc<SocketDigest>>,
}

impl tokio::io::AsyncRead for Pipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Pipe {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
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
impl Shutdown for Pipe {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.inner).await;
    }
}

#[async_trait]
impl Peek for Pipe {}

impl UniqueID for Pipe {
    fn id(&self) -> pingora::protocols::UniqueIDType {
        0
    }
}

impl Ssl for Pipe {}

impl GetTimingDigest for Pipe {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for Pipe {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Pipe {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.digest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request() -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/openai/v1/responses?x=1", None).unwrap();
        for (n, v) in [
            ("host", "gw:8000"),
            ("authorization", "Bearer sk-k"),
            ("session_id", "s-1"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("openai-beta", "responses_websockets=2026-02-06"),
            ("accept-encoding", "gzip"),
        ] {
            req.append_header(n, v).unwrap();
        }
        req
    }

    #[test]
    fn a_frame_becomes_the_post_the_client_would_send() {
        let t = Template::of(&upgrade_request());
        let post = t.request(42).unwrap();
        assert_eq!(post.method, http::Method::POST);
        assert_eq!(post.uri, "/openai/v1/responses?x=1");
        let h = |n: &str| post.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("authorization").as_deref(), Some("Bearer sk-k"));
        assert_eq!(h("session_id").as_deref(), Some("s-1"));
        assert_eq!(h("host").as_deref(), Some("gw:8000"));
        assert_eq!(h("content-length").as_deref(), Some("42"));
        assert_eq!(h("accept").as_deref(), Some("text/event-stream"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        for gone in [
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
            "openai-beta",
            "accept-encoding",
        ] {
            assert_eq!(h(gone), None, "{gone}");
        }
    }

    #[tokio::test]
    async fn the_stand_in_session_reads_the_same_head() {
        let req = upgrade_request();
        let head = head_bytes(&req);
        let (ours, mut theirs) = tokio::io::duplex(head.len() + 16);
        theirs.write_all(&head).await.unwrap();
        drop(theirs);
        let mut s = ServerSession::new_http1(Box::new(Pipe {
            inner: ours,
            digest: None,
        }));
        assert!(s.read_request().await.unwrap());
        let back = s.req_header();
        assert_eq!(back.method, req.method);
        assert_eq!(back.uri, req.uri);
        assert_eq!(back.headers.len(), req.headers.len());
        assert_eq!(back.headers.get("session_id").unwrap(), "s-1");
    }
}
