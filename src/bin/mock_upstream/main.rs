//! A mock LLM upstream for tests, benchmarks and the out-of-the-box demo.
//! It speaks OpenAI Chat (`…/chat/completions`) and Anthropic Messages
//! (`…/messages`), streaming or not, and misbehaves on request.
//!
//! Behaviour is chosen per request by options after the model name, so one
//! mock serves every target of a test config:
//!
//! ```text
//! "mock"                                plain answer echoing the last user text
//! "mock;status=503"                     error status in the dialect's error shape (429 adds
//!                                       retry-after: 1, or `retry_after=N` (any text, such
//!                                       as an HTTP date; `retry_after=none`: no header)
//! "mock;fault=close_before_first"       200 + SSE headers, then the connection closes
//! "mock;fault=close_mid;after=3"        closes after 3 events, no terminator
//! "mock;fault=error_event;after=2"      an in-stream error event after 2 events (after=0: first)
//! "mock;fault=malformed"                invalid JSON (stream event or body)
//! "mock;fail_key=sk-a;fail_status=401"  that status for requests carrying key sk-a
//! "mock;fault=hang"                     never answers
//! "mock;fault=leaky_401"                401 with OpenAI's body that quotes a masked key and a URL
//! "mock;fault=endless_line"             (stream) 200 + SSE headers, then 8 MiB without a newline
//! "mock;fault=stall;after=4"            goes silent after 4 events
//! "mock;chunks=64;delay_ms=5;first_ms=20"  stream shape and timing
//! "mock;calls=3;interleave=1"           parallel tool calls (when tools are offered), args interleaved
//! "mock;reasoning=1;cached=40"          reasoning first; 40 cached prompt tokens in usage
//! "mock;hangup=1"                       answers, then closes the connection without
//!                                       `connection: close` (an idle-timeout race)
//! ```
//!
//! `GET /_mock/stats` returns request counts, connections accepted, what the
//! last request to each model carried (headers of interest, body size,
//! decoded body), and how many streams were abandoned by their reader
//! (`aborted`).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
struct Defaults {
    first_ms: u64,
    delay_ms: u64,
    chunks: Option<usize>,
}

#[derive(Default)]
struct Stats {
    total: u64,
    connections: u64,
    by_model: HashMap<String, u64>,
    last: HashMap<String, Value>,
    /// Streams whose reader went away before the end (the gateway dropped
    /// the upstream call).
    aborted: HashMap<String, u64>,
}

type Shared = Arc<Mutex<Stats>>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("mock-upstream [--listen 127.0.0.1:0] [--first-token-ms N] [--chunk-delay-ms N] [--chunks N] [--threads N]");
        return Ok(());
    }
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let defaults = Defaults {
        first_ms: arg(&args, "--first-token-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        delay_ms: arg(&args, "--chunk-delay-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        chunks: arg(&args, "--chunks").and_then(|v| v.parse().ok()),
    };
    let threads = arg(&args, "--threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await?;
        let addr = listener.local_addr()?;
        // The first line tells a test harness where to connect.
        println!("mock-upstream listening on {addr}");
        let stats: Shared = Arc::default();
        loop {
            let (sock, _) = listener.accept().await?;
            let _ = sock.set_nodelay(true);
            if let Ok(mut s) = stats.lock() {
                s.connections += 1;
            }
            let stats = stats.clone();
            tokio::spawn(async move {
                let _ = serve(sock, stats, defaults).await;
            });
        }
    })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

async fn serve(mut sock: TcpStream, stats: Shared, defaults: Defaults) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            let mut tmp = [0u8; 16 * 1024];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&buf[..head_end]).is_err() {
            sock.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        }
        let method = req.method.unwrap_or("").to_owned();
        let path = req.path.unwrap_or("/").to_owned();
        let mut hdrs: HashMap<String, String> = HashMap::new();
        for h in req.headers.iter() {
            hdrs.insert(
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            );
        }
        let len: usize = hdrs
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end);
        while buf.len() < len {
            let mut tmp = vec![0u8; (len - buf.len()).min(256 * 1024)];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let close = hdrs
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let hangup = find(&body, b";hangup=1").is_some();
        let keep_open = respond(&mut sock, &method, &path, &hdrs, &body, &stats, defaults).await?;
        if !keep_open || close || hangup {
            return Ok(());
        }
    }
}

async fn write_plain(
    sock: &mut TcpStream,
    status: u16,
    body: &str,
    extra: &str,
) -> std::io::Result<bool> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
        reason(status),
        body.len()
    );
    sock.write_all(format!("{head}{body}").as_bytes()).await?;
    Ok(true)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Options after the model name: `name;key=value;key=value`.
fn options(model: &str) -> HashMap<String, String> {
    model
        .split(';')
        .skip(1)
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[derive(PartialEq, Clone, Copy)]
enum Dialect {
    OpenAi,
    Anthropic,
}

async fn respond(
    sock: &mut TcpStream,
    method: &str,
    path: &str,
    hdrs: &HashMap<String, String>,
    body: &[u8],
    stats: &Shared,
    defaults: Defaults,
) -> std::io::Result<bool> {
    let route = path.split('?').next().unwrap_or(path);
    if let Some(keep_open) = respond_control(sock, method, route, stats).await? {
        return Ok(keep_open);
    }
    let dialect = if route.ends_with("/chat/completions") {
        Dialect::OpenAi
    } else if route.ends_with("/messages") {
        Dialect::Anthropic
    } else {
        return write_plain(
            sock,
            404,
            "{\"error\":{\"message\":\"mock: unknown path\",\"type\":\"not_found\"}}",
            "",
        )
        .await;
    };
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = json!({"error": {"message": format!("mock: invalid JSON: {e}"), "type": "invalid_request_error"}});
            return write_plain(sock, 400, &msg.to_string(), "").await;
        }
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let opts = options(&model);
    record(stats, &model, path, hdrs, body, &req);

    if opts.get("fault").is_some_and(|f| f == "leaky_401") {
        return write_plain(sock, 401, LEAKY_401, "").await;
    }
    if let Some(status) = forced_status(hdrs, &opts) {
        return write_error(sock, status, dialect, &opts).await;
    }
    let fault = opts.get("fault").map(String::as_str).unwrap_or("");
    if fault == "hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(false);
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let plan = Plan::new(&req, dialect, &opts, defaults, body.len());
    if !stream {
        return respond_whole(sock, &plan, dialect, &model, fault).await;
    }
    respond_stream(sock, &req, &plan, dialect, &model, &opts, stats).await
}

/// Answers the mock's own routes (stats, reset, health); `None` for others.
async fn respond_control(
    sock: &mut TcpStream,
    method: &str,
    route: &str,
    stats: &Shared,
) -> std::io::Result<Option<bool>> {
    if method == "GET" && route == "/_mock/stats" {
        let v = {
            let s = stats
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            json!({"total": s.total, "connections": s.connections, "by_model": s.by_model, "last": s.last, "aborted": s.aborted})
        };
        return write_plain(sock, 200, &v.to_string(), "").await.map(Some);
    }
    if method == "POST" && route == "/_mock/reset" {
        if let Ok(mut s) = stats.lock() {
            *s = Stats::default();
        }
        return write_plain(sock, 200, "{}", "").await.map(Some);
    }
    if method == "GET" && (route == "/health" || route == "/") {
        return write_plain(sock, 200, "{\"status\":\"ok\"}", "")
            .await
            .map(Some);
    }
    Ok(None)
}

/// OpenAI's answer to a bad key: it quotes a masked key and a URL.
const LEAKY_401: &str = "{\"error\":{\"message\":\"Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";

/// The error status the options force for this request, if any.
fn forced_status(hdrs: &HashMap<String, String>, opts: &HashMap<String, String>) -> Option<u16> {
    // `fail_key=K;fail_status=S`: answer S to requests carrying key K.
    let key_sent = hdrs
        .get("authorization")
        .or(hdrs.get("x-api-key"))
        .cloned()
        .unwrap_or_default();
    let key_status = opts
        .get("fail_key")
        .filter(|k| key_sent.ends_with(k.as_str()))
        .map(|_| {
            opts.get("fail_status")
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(429)
        });
    key_status.or_else(|| opts.get("status").and_then(|s| s.parse::<u16>().ok()))
}

/// Writes an error `status` in the dialect's error shape.
async fn write_error(
    sock: &mut TcpStream,
    status: u16,
    dialect: Dialect,
    opts: &HashMap<String, String>,
) -> std::io::Result<bool> {
    let (msg, kind) = match status {
        429 => ("mock: rate limited", "rate_limit_error"),
        401 => ("mock: invalid x-api-key", "authentication_error"),
        400 => ("mock: invalid request", "invalid_request_error"),
        529 | 503 => ("mock: overloaded", "overloaded_error"),
        _ => ("mock: upstream failure", "api_error"),
    };
    let body = match dialect {
        Dialect::OpenAi => {
            json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
        }
        Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": msg}}),
    };
    let retry_after = opts.get("retry_after").map_or("1", String::as_str);
    let extra = if status == 429 && retry_after != "none" {
        format!("retry-after: {retry_after}\r\n")
    } else {
        String::new()
    };
    write_plain(sock, status, &body.to_string(), &extra).await
}

/// Answers a non-streaming request with the whole body, or its fault.
async fn respond_whole(
    sock: &mut TcpStream,
    plan: &Plan,
    dialect: Dialect,
    model: &str,
    fault: &str,
) -> std::io::Result<bool> {
    if fault == "close_before_first" || fault == "close_mid" {
        return Ok(false);
    }
    if fault == "malformed" {
        return write_plain(sock, 200, "{\"id\": \"x\", \"choices\": [", "").await;
    }
    tokio::time::sleep(Duration::from_millis(plan.first_ms)).await;
    let v = match dialect {
        Dialect::OpenAi => plan.openai_body(model),
        Dialect::Anthropic => plan.anthropic_body(model),
    };
    write_plain(sock, 200, &v.to_string(), "").await
}

/// Answers a streaming request event by event, with its timing and faults.
async fn respond_stream(
    sock: &mut TcpStream,
    req: &Value,
    plan: &Plan,
    dialect: Dialect,
    model: &str,
    opts: &HashMap<String, String>,
    stats: &Shared,
) -> std::io::Result<bool> {
    let fault = opts.get("fault").map(String::as_str).unwrap_or("");
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let events = match dialect {
        Dialect::OpenAi => plan.openai_events(model, include_usage),
        Dialect::Anthropic => plan.anthropic_events(model),
    };
    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    if fault == "close_before_first" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(false);
    }
    if fault == "endless_line" {
        // One SSE line that never ends, bounded at 8 MiB.
        let piece = format!("data: {}", "x".repeat(64 * 1024 - 6));
        for _ in 0..128 {
            if let Err(e) = write_chunk(sock, piece.as_bytes()).await {
                note_abort(stats, model);
                return Err(e);
            }
        }
        return Ok(false);
    }
    if reader_left(sock, Duration::from_millis(plan.first_ms)).await {
        note_abort(stats, model);
        return Ok(false);
    }
    let after: usize = opts.get("after").and_then(|v| v.parse().ok()).unwrap_or(2);
    for (i, ev) in events.iter().enumerate() {
        if i > 0
            && plan.delay_ms > 0
            && reader_left(sock, Duration::from_millis(plan.delay_ms)).await
        {
            note_abort(stats, model);
            return Ok(false);
        }
        if i == after {
            if let Some(keep_open) = mid_stream_fault(sock, fault, dialect, stats, model).await? {
                return Ok(keep_open);
            }
        }
        if let Err(e) = write_chunk(sock, ev.as_bytes()).await {
            note_abort(stats, model);
            return Err(e);
        }
    }
    sock.write_all(b"0\r\n\r\n").await?;
    Ok(true)
}

/// Plays a mid-stream `fault`; `Some(keep_open)` when it ends the stream.
async fn mid_stream_fault(
    sock: &mut TcpStream,
    fault: &str,
    dialect: Dialect,
    stats: &Shared,
    model: &str,
) -> std::io::Result<Option<bool>> {
    match fault {
        "close_mid" => Ok(Some(false)),
        "stall" => {
            if reader_left(sock, Duration::from_secs(3600)).await {
                note_abort(stats, model);
            }
            Ok(Some(false))
        }
        "error_event" => {
            let e = match dialect {
                Dialect::OpenAi => "data: {\"error\":{\"message\":\"mock: overloaded mid-stream\",\"type\":\"overloaded_error\"}}\n\n".to_owned(),
                Dialect::Anthropic => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"mock: overloaded mid-stream\"}}\n\n".to_owned(),
            };
            write_chunk(sock, e.as_bytes()).await?;
            sock.write_all(b"0\r\n\r\n").await?;
            Ok(Some(true))
        }
        "malformed" => {
            write_chunk(sock, b"data: {\"choices\": [{\"delta\": \n\n").await?;
            sock.write_all(b"0\r\n\r\n").await?;
            Ok(Some(true))
        }
        _ => Ok(None),
    }
}

/// Waits `d`, unless the reader closes the connection first (true): a
/// streaming mock notices an abandoned stream while it is silent.
async fn reader_left(sock: &mut TcpStream, d: Duration) -> bool {
    let mut probe = [0u8; 1];
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        r = sock.read(&mut probe) => matches!(r, Ok(0) | Err(_)),
    }
}

fn note_abort(stats: &Shared, model: &str) {
    if let Ok(mut s) = stats.lock() {
        *s.aborted.entry(model.to_owned()).or_default() += 1;
    }
}

async fn write_chunk(sock: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(data.len() + 16);
    frame.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    sock.write_all(&frame).await
}

fn record(
    stats: &Shared,
    model: &str,
    path: &str,
    hdrs: &HashMap<String, String>,
    body: &[u8],
    req: &Value,
) {
    let Ok(mut s) = stats.lock() else { return };
    s.total += 1;
    *s.by_model.entry(model.to_owned()).or_default() += 1;
    let pick = |k: &str| hdrs.get(k).cloned();
    s.last.insert(
        model.to_owned(),
        json!({
            "path": path,
            "authorization": pick("authorization"),
            "x_api_key": pick("x-api-key"),
            "anthropic_version": pick("anthropic-version"),
            "anthropic_beta": pick("anthropic-beta"),
            "accept_encoding": pick("accept-encoding"),
            "content_length": pick("content-length"),
            "body_len": body.len(),
            "body": if body.len() <= 256 * 1024 { req.clone() } else { json!({"model": req.get("model"), "truncated": true}) },
        }),
    );
}

// ------------------------------------------------------------------ answers

const CITIES: [&str; 5] = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo"];

/// What the mock will answer, decided from the request and its options.
struct Plan {
    reasoning: Option<String>,
    pieces: Vec<String>,
    calls: Vec<(String, String, String)>, // id, name, arguments
    interleave: bool,
    prompt_tokens: u64,
    cached: u64,
    first_ms: u64,
    delay_ms: u64,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_result") => Some(text_of(p.get("content").unwrap_or(&Value::Null))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl Plan {
    fn new(
        req: &Value,
        dialect: Dialect,
        opts: &HashMap<String, String>,
        d: Defaults,
        body_len: usize,
    ) -> Self {
        let num = |k: &str| opts.get(k).and_then(|v| v.parse::<u64>().ok());
        let messages = req
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Tool results in the last turn: answer with what they said.
        let mut results = Vec::new();
        for m in messages.iter().rev() {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            match (dialect, role) {
                (Dialect::OpenAi, "tool") => {
                    results.push(text_of(m.get("content").unwrap_or(&Value::Null)))
                }
                (Dialect::Anthropic, "user") => {
                    if let Some(blocks) = m.get("content").and_then(Value::as_array) {
                        for b in blocks.iter().rev() {
                            if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                                results.push(text_of(b.get("content").unwrap_or(&Value::Null)));
                            }
                        }
                    }
                    break;
                }
                _ => break,
            }
        }
        results.reverse();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let tools: Vec<String> = req
            .get("tools")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| {
                        t.pointer("/function/name")
                            .or_else(|| t.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let n_calls = num("calls").unwrap_or(2) as usize;
        let mut calls = Vec::new();
        let text = if !results.is_empty() {
            format!("Tool results: {}", results.join(" | "))
        } else if !tools.is_empty() && n_calls > 0 {
            for i in 0..n_calls {
                let id = match dialect {
                    Dialect::OpenAi => format!("call_mock{i}"),
                    Dialect::Anthropic => format!("toolu_mock{i}"),
                };
                let args = json!({"location": CITIES[i % CITIES.len()]}).to_string();
                calls.push((id, tools[i % tools.len()].clone(), args));
            }
            String::new()
        } else if let Some(t) = opts.get("text") {
            t.clone()
        } else {
            let said: String = last_user.chars().take(200).collect();
            format!("Hello from the mock upstream! You said: {said}")
        };
        let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        let pieces = match num("chunks").map(|n| n as usize).or(d.chunks) {
            Some(n) if !words.is_empty() && calls.is_empty() => {
                (0..n).map(|i| words[i % words.len()].clone()).collect()
            }
            _ => words,
        };
        Plan {
            reasoning: (num("reasoning") == Some(1)).then(|| "Let me think about that.".to_owned()),
            pieces,
            calls,
            interleave: num("interleave") == Some(1),
            prompt_tokens: (body_len as u64 / 4).max(1),
            cached: num("cached").unwrap_or(0),
            first_ms: num("first_ms").unwrap_or(d.first_ms),
            delay_ms: num("delay_ms").unwrap_or(d.delay_ms),
        }
    }

    fn completion_tokens(&self) -> u64 {
        (self.pieces.len() + self.calls.len() * 3 + usize::from(self.reasoning.is_some()) * 5)
            as u64
    }

    fn text(&self) -> String {
        self.pieces.concat()
    }

    fn openai_usage(&self) -> Value {
        let prompt = self.prompt_tokens + self.cached;
        let completion = self.completion_tokens();
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": self.cached},
               "completion_tokens_details": {"reasoning_tokens": if self.reasoning.is_some() { 5 } else { 0 }}})
    }

    fn anthropic_usage(&self) -> Value {
        json!({"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens(),
               "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": 0})
    }

    fn openai_body(&self, model: &str) -> Value {
        let mut msg = json!({"role": "assistant", "content": if self.calls.is_empty() { json!(self.text()) } else { Value::Null }});
        if let Some(r) = &self.reasoning {
            msg["reasoning_content"] = json!(r);
        }
        if !self.calls.is_empty() {
            msg["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
        }
        json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
               "choices": [{"index": 0, "message": msg, "finish_reason": if self.calls.is_empty() { "stop" } else { "tool_calls" }}],
               "usage": self.openai_usage()})
    }

    fn anthropic_body(&self, model: &str) -> Value {
        let mut content = Vec::new();
        if let Some(r) = &self.reasoning {
            content.push(json!({"type": "thinking", "thinking": r, "signature": "mock-signature"}));
        }
        if self.calls.is_empty() {
            content.push(json!({"type": "text", "text": self.text()}));
        }
        for (id, name, args) in &self.calls {
            let input: Value = serde_json::from_str(args).unwrap_or(Value::Null);
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
               "stop_reason": if self.calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null,
               "usage": self.anthropic_usage()})
    }

    fn openai_events(&self, model: &str, include_usage: bool) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        if let Some(r) = &self.reasoning {
            out.push(chunk(json!({"reasoning_content": r}), Value::Null));
        }
        for p in &self.pieces {
            out.push(chunk(json!({"content": p}), Value::Null));
        }
        // Each call: a head with id and name, then its arguments in two halves.
        let halves: Vec<(String, String)> = self
            .calls
            .iter()
            .map(|(_, _, a)| {
                let mid = a.len() / 2;
                (a[..mid].to_owned(), a[mid..].to_owned())
            })
            .collect();
        let head = |i: usize| {
            let (id, name, _) = &self.calls[i];
            chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            )
        };
        let part = |i: usize, s: &str| {
            chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": s}}]}),
                Value::Null,
            )
        };
        if self.interleave {
            for i in 0..self.calls.len() {
                out.push(head(i));
            }
            for (i, h) in halves.iter().enumerate() {
                out.push(part(i, &h.0));
            }
            for (i, h) in halves.iter().enumerate() {
                out.push(part(i, &h.1));
            }
        } else {
            for (i, h) in halves.iter().enumerate() {
                out.push(head(i));
                out.push(part(i, &h.0));
                out.push(part(i, &h.1));
            }
        }
        let finish = if self.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        out.push(chunk(json!({}), json!(finish)));
        if include_usage {
            out.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": self.openai_usage()})
            ));
        }
        out.push("data: [DONE]\n\n".to_owned());
        out
    }

    fn anthropic_events(&self, model: &str) -> Vec<String> {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        let mut out = vec![ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": null, "stop_sequence": null,
                   "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 1, "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": 0}}}),
        )];
        out.push(ev("ping", json!({"type": "ping"})));
        let mut idx = 0;
        if let Some(r) = &self.reasoning {
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
            out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "thinking_delta", "thinking": r}})));
            out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "signature_delta", "signature": "mock-signature"}})));
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        if self.calls.is_empty() {
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}})));
            for p in &self.pieces {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": p}})));
            }
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
        }
        for (id, name, args) in &self.calls {
            let mid = args.len() / 2;
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for frag in [&args[..mid], &args[mid..]] {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": frag}})));
            }
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        let stop = if self.calls.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        };
        out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": self.completion_tokens()}})));
        out.push(ev("message_stop", json!({"type": "message_stop"})));
        out
    }
}
