//! A mock LLM upstream for tests, benchmarks and the out-of-the-box demo.
//! It speaks OpenAI Chat (`…/chat/completions`), Anthropic Messages
//! (`…/messages`), OpenAI Responses (`…/responses`) and Gemini
//! (`…/models/{model}:generateContent`, `:streamGenerateContent` with or
//! without `?alt=sse`), streaming or not, and misbehaves on request. It also
//! answers `…/embeddings`, `…/messages/count_tokens`,
//! `…/responses/input_tokens`, Gemini's `:countTokens`, `:embedContent`,
//! `:batchEmbedContents` and `GET /v1beta/models/{model}`; the model
//! listings of OpenAI, Anthropic, Gemini, Ollama and LM Studio, paged and
//! behind each one's credential header (`listing.rs`). The same port
//! speaks HTTP/2 with prior knowledge (h2c): each stream is served by the
//! same handlers, faults included (`h2c.rs`; `--h2-max-streams N`, default
//! 100, is the SETTINGS_MAX_CONCURRENT_STREAMS it announces).
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
//! "mock;cache_write=7"                  Anthropic usage: 7 cache_creation_input_tokens
//!                                       (`reasoning=N` or `reasoning=1;reasoning_chunks=N`:
//!                                       streamed in N pieces, cut at words)
//! "mock;finish=length"                  the answer stops at the output limit: Chat
//!                                       `finish_reason: "length"`, Anthropic `stop_reason:
//!                                       "max_tokens"`, Gemini `MAX_TOKENS`, Responses
//!                                       `status: "incomplete"` + `incomplete_details.reason:
//!                                       "max_output_tokens"` (stream: `response.incomplete`);
//!                                       not when the answer is tool calls
//! "mock;shell=1"                        a shell round trip (below)
//! "mock;agent=scout"                     a call to Claude Code's subagent tool (`Task` or
//!                                        `Agent`) running subagent `scout`, when offered
//! "mock;hangup=1"                       answers, then closes the connection without
//!                                       `connection: close` (an idle-timeout race)
//! "mock;text=Hi"                        this answer text instead of the echo
//! "mock;signature=call"                 (Gemini) the thought signature on the first functionCall
//!                                       part (`thought`, the default: on the thought part;
//!                                       `both`; `none`)
//! "mock;dims=16"                        embedding length (else the request's, else 8)
//! "mock;tokens=N"                       what the token-counting endpoints answer
//! "mock;text_only=1"                    a model without native tools (`text_only.rs`): 400 for
//!                                       native `tools`; answers tool calls as `<tool_call>` text
//!                                       to the gateway's emulation prompt, tool results quoted
//!                                       (`text_only=loose`: fenced, string args, tag unclosed)
//! ```
//!
//! `shell=1`, exactly: when the request offers function tools and its last
//! turn holds no tool result, the answer is one tool call (id
//! `toolu_mock0` for Anthropic, else `call_mock0`; no text, Chat
//! `finish_reason: "tool_calls"`, Anthropic `tool_use`, Gemini one
//! `functionCall` part) to the first offered tool named `Bash`, `shell`,
//! `exec_command`, `local_shell` or `shell_command`, else to the first
//! offered tool. Its arguments run `echo modelswitch-$((6*7))` (only a real
//! shell prints `modelswitch-42`), shaped by the tool's parameter schema
//! (Chat `function.parameters`, Anthropic `input_schema`, Gemini
//! `parametersJsonSchema`/`parameters`, Responses `parameters`): a `cmd`
//! property and no `command` → `{"cmd": "<command>"}` (Codex's
//! `exec_command`); a `command` property of type `array` → `{"command":
//! ["bash", "-lc", "<command>"]}` (Codex's `shell`); any other `command` →
//! `{"command": "<command>"}`; and a `description` property (Claude Code's
//! `Bash`) adds `"description": "print"`. Without a schema the name decides
//! (`exec_command`: `cmd`; `shell`, `local_shell`: the array; others: the
//! string). Claude Code's `Bash` thus gets `{"command":"echo
//! modelswitch-$((6*7))","description":"print"}`, Codex's `shell`
//! `{"command":["bash","-lc","echo modelswitch-$((6*7))"]}`, `exec_command`
//! `{"cmd":"echo modelswitch-$((6*7))"}`. The second turn (tool results
//! present) answers `Tool results: <each result, joined by " | ">` like
//! any request ending in tool results. No tools offered: the plain answer.
//!
//! Gemini takes the model (so the options) from the path, percent-encoded
//! or not, and the key from `x-goog-api-key` or `?key=`. Its errors are
//! Google's (`{"error":{"code","message","status"}}`, a 429 with a
//! RetryInfo detail as well as `retry-after`); its calls are whole
//! `functionCall` parts (`interleave=1`: all in one chunk), its reasoning a
//! `thought` part with `thoughtSignature: "bW9jay1nZW1pbmktc2lnbmF0dXJl"`
//! (base64 of `mock-gemini-signature`: google-genai decodes it); stream
//! chunks carry a prompt-only `usageMetadata`, the last one `finishReason`
//! and the full usage. `after=N` counts chunks (Gemini) or events
//! (Responses, from `response.created`). The
//! Responses dialect answers reasoning items with `encrypted_content:
//! "mock-openai-encrypted"`; its `error_event` fault is `response.failed`.
//! A request whose last turn holds tool results (Chat `tool` messages,
//! Anthropic `tool_result`, Gemini `functionResponse`, Responses
//! `function_call_output`) is answered "Tool results: …" quoting them.
//!
//! `GET /_mock/stats` returns request counts, connections accepted (and of
//! them `h2_connections`, with `h2_streams_peak`, the most streams one had
//! open at once), requests per protocol (`by_protocol`: `http/1.1`, `h2`),
//! what the last request to each model carried (protocol, headers of
//! interest, body size,
//! decoded body), and how many streams were abandoned by their reader
//! (`aborted`); also requests per endpoint (`by_endpoint`: `chat`,
//! `messages`, `responses`, `gemini:streamGenerateContent`, `embeddings`,
//! …) and, per model, a digest of its last 32 requests (`seen`, oldest
//! first): endpoint, `previous_response_id`, `store`, the turn sequence
//! (`turns`: `user`, `assistant`, `model`, `tool`, `function_call`,
//! `function_call_output`, `reasoning`…), and every `encrypted_content`,
//! thought signature, Anthropic `signature`, tool call id and tool result
//! text found in the body, so a test can check what came back untouched.
//!
//! A token login (`POST /login`) and the `login=1` option that requires its
//! token: `login.rs`.

mod extras;
mod gemini;
mod h2c;
mod inspect;
mod listing;
mod login;
mod plan;
mod responses;
mod text_only;

use inspect::record;
use plan::Plan;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
pub(crate) struct Defaults {
    first_ms: u64,
    delay_ms: u64,
    chunks: Option<usize>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS on HTTP/2 connections.
    h2_max_streams: u32,
}

#[derive(Default)]
pub(crate) struct Stats {
    total: u64,
    connections: u64,
    by_model: HashMap<String, u64>,
    last: HashMap<String, Value>,
    /// Of `connections`, those that spoke HTTP/2.
    h2_connections: u64,
    /// The most streams one HTTP/2 connection had open at once.
    h2_streams_peak: u64,
    /// Requests by the protocol they came over (`http/1.1`, `h2`).
    by_protocol: HashMap<String, u64>,
    /// Streams whose reader went away before the end (the gateway dropped
    /// the upstream call).
    aborted: HashMap<String, u64>,
    by_endpoint: HashMap<String, u64>,
    /// Per model, digests of its last `SEEN` requests, oldest first.
    seen: HashMap<String, VecDeque<Value>>,
    /// Responses answered with `store` not false, by id, for
    /// `GET`/`DELETE /v1/responses/{id}` (as OpenAI keeps them).
    stored: HashMap<String, Value>,
}

/// How many request digests `seen` keeps per model.
pub(crate) const SEEN: usize = 32;

pub(crate) type Shared = Arc<Mutex<Stats>>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("mock-upstream [--listen 127.0.0.1:0] [--first-token-ms N] [--chunk-delay-ms N] [--chunks N] [--threads N] [--h2-max-streams N] [--login-user U] [--login-password P]");
        return Ok(());
    }
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    login::configure(arg(&args, "--login-user"), arg(&args, "--login-password"));
    let defaults = Defaults {
        first_ms: arg(&args, "--first-token-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        delay_ms: arg(&args, "--chunk-delay-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        chunks: arg(&args, "--chunks").and_then(|v| v.parse().ok()),
        h2_max_streams: arg(&args, "--h2-max-streams")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
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
                // h2c with prior knowledge on the same port, told apart by
                // the client preface.
                if h2c::preface(&sock).await {
                    let _ = h2c::serve(sock, stats, defaults).await;
                } else {
                    let _ = serve(sock, stats, defaults, "http/1.1").await;
                }
            });
        }
    })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A connection (or, for HTTP/2, one stream relayed as HTTP/1.1 by
/// `h2c.rs`) the handlers read a request from and write the answer to.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves HTTP/1.1 requests on `sock` until it closes; `via` is the
/// protocol they came over, for the stats.
pub(crate) async fn serve(
    mut sock: impl Io,
    stats: Shared,
    defaults: Defaults,
    via: &'static str,
) -> std::io::Result<()> {
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
        // Not a header name HTTP/1.1 can carry: a client cannot fake it.
        hdrs.insert(":protocol".into(), via.into());
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

pub(crate) async fn write_plain(
    sock: &mut impl Io,
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

#[derive(PartialEq, Clone, Copy, Debug)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    Responses,
}

/// What a request asks for, from its method and path.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Endpoint {
    /// A generation in OpenAI Chat, Anthropic or Responses.
    Generate(Dialect),
    /// `POST …/models/{model}:{action}`.
    GeminiAction(gemini::Action),
    Embeddings,
    /// Token counting, answered in the dialect's shape.
    CountTokens(Dialect),
    GeminiModels,
}

impl Endpoint {
    /// The endpoint and, for Gemini, the model named by the path.
    fn of(method: &str, route: &str) -> Option<(Self, Option<String>)> {
        if route.ends_with("/chat/completions") {
            return Some((Self::Generate(Dialect::OpenAi), None));
        }
        if route.ends_with("/messages") {
            return Some((Self::Generate(Dialect::Anthropic), None));
        }
        if route.ends_with("/messages/count_tokens") {
            return Some((Self::CountTokens(Dialect::Anthropic), None));
        }
        if route.ends_with("/responses") {
            return Some((Self::Generate(Dialect::Responses), None));
        }
        if route.ends_with("/responses/input_tokens") {
            return Some((Self::CountTokens(Dialect::Responses), None));
        }
        if route.ends_with("/embeddings") {
            return Some((Self::Embeddings, None));
        }
        let decoded = gemini::percent_decode(route);
        if method == "GET" && decoded.contains("/v1beta/") {
            if decoded.trim_end_matches('/').ends_with("/models") {
                return Some((Self::GeminiModels, None));
            }
            let (_, m) = decoded.split_once("/models/")?;
            return Some((Self::GeminiModels, Some(m.to_owned())));
        }
        let (_, tail) = decoded.split_once("/models/")?;
        let (model, action) = tail.rsplit_once(':')?;
        let action = gemini::Action::parse(action)?;
        Some((Self::GeminiAction(action), Some(model.to_owned())))
    }

    /// The dialect errors are written in.
    fn dialect(self) -> Dialect {
        match self {
            Self::Generate(d) | Self::CountTokens(d) => d,
            Self::Embeddings => Dialect::OpenAi,
            Self::GeminiAction(_) | Self::GeminiModels => Dialect::Gemini,
        }
    }

    /// The name `by_endpoint` counts it under.
    fn label(self) -> String {
        match self {
            Self::Generate(Dialect::OpenAi) => "chat".into(),
            Self::Generate(Dialect::Anthropic) => "messages".into(),
            Self::Generate(Dialect::Responses) => "responses".into(),
            Self::Generate(Dialect::Gemini) => "gemini".into(),
            Self::GeminiAction(a) => format!("gemini:{}", a.name()),
            Self::Embeddings => "embeddings".into(),
            Self::CountTokens(Dialect::Anthropic) => "messages:count_tokens".into(),
            Self::CountTokens(Dialect::Responses) => "responses:input_tokens".into(),
            Self::CountTokens(d) => format!("{d:?}:count_tokens"),
            Self::GeminiModels => "gemini:models".into(),
        }
    }
}

async fn respond(
    sock: &mut impl Io,
    method: &str,
    path: &str,
    hdrs: &HashMap<String, String>,
    body: &[u8],
    stats: &Shared,
    defaults: Defaults,
) -> std::io::Result<bool> {
    let route = path.split('?').next().unwrap_or(path);
    let query = path.split_once('?').map_or("", |(_, q)| q);
    if let Some(keep_open) = respond_control(sock, method, route, stats).await? {
        return Ok(keep_open);
    }
    if let Some(keep_open) = login::respond(sock, method, route, query, hdrs, body).await? {
        return Ok(keep_open);
    }
    if let Some((status, v, label)) = listing::answer(method, route, query, hdrs) {
        if let Ok(mut s) = stats.lock() {
            s.total += 1;
            *s.by_endpoint.entry(label.into()).or_default() += 1;
        }
        return write_plain(sock, status, &v.to_string(), "").await;
    }
    let Some((endpoint, path_model)) = Endpoint::of(method, route) else {
        return write_plain(
            sock,
            404,
            "{\"error\":{\"message\":\"mock: unknown path\",\"type\":\"not_found\"}}",
            "",
        )
        .await;
    };
    let dialect = endpoint.dialect();
    if endpoint == Endpoint::GeminiModels {
        let v = gemini::models(path_model.as_deref());
        return write_plain(sock, 200, &v.to_string(), "").await;
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let text = format!("mock: invalid JSON: {e}");
            let msg = if dialect == Dialect::Gemini {
                gemini::error_body(400, &text, None)
            } else {
                json!({"error": {"message": text, "type": "invalid_request_error"}})
            };
            return write_plain(sock, 400, &msg.to_string(), "").await;
        }
    };
    let model = path_model.unwrap_or_else(|| {
        req.get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    });
    let opts = options(&model);
    let query_key = gemini::query_param(query, "key");
    let n = record(
        stats,
        &model,
        path,
        hdrs,
        query_key.as_deref(),
        body,
        &req,
        &endpoint.label(),
    );
    let keep_open = answer(
        sock,
        endpoint,
        &req,
        &Asked {
            model: &model,
            opts: &opts,
            hdrs,
            query,
            query_key: query_key.as_deref(),
            body_len: body.len(),
            n,
        },
        stats,
        defaults,
    )
    .await?;
    Ok(keep_open && opts.get("hangup").is_none_or(|v| v != "1"))
}

/// What a request named besides its body.
struct Asked<'a> {
    model: &'a str,
    opts: &'a HashMap<String, String>,
    hdrs: &'a HashMap<String, String>,
    query: &'a str,
    query_key: Option<&'a str>,
    body_len: usize,
    /// The request's number (its `total`), for ids.
    n: u64,
}

/// Answers a request to `endpoint`: its forced error or fault, else the
/// answer.
async fn answer(
    sock: &mut impl Io,
    endpoint: Endpoint,
    req: &Value,
    a: &Asked<'_>,
    stats: &Shared,
    defaults: Defaults,
) -> std::io::Result<bool> {
    let opts = a.opts;
    let dialect = endpoint.dialect();
    if opts.contains_key("login") && !login::admit(a.hdrs) {
        return write_error(sock, 401, dialect, opts).await;
    }
    if opts.get("fault").is_some_and(|f| f == "leaky_401") {
        return write_plain(sock, 401, LEAKY_401, "").await;
    }
    if let Some(status) = forced_status(a.hdrs, a.query_key, opts) {
        return write_error(sock, status, dialect, opts).await;
    }
    if opts.contains_key("text_only") && text_only::has_native_tools(req) {
        let body = text_only::refusal(dialect).to_string();
        return write_plain(sock, 400, &body, "").await;
    }
    let fault = opts.get("fault").map(String::as_str).unwrap_or("");
    if fault == "hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(false);
    }
    let generate = match endpoint {
        Endpoint::Generate(d) => Some((
            d,
            req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        )),
        Endpoint::GeminiAction(gemini::Action::Generate) => Some((Dialect::Gemini, false)),
        Endpoint::GeminiAction(gemini::Action::Stream) => Some((Dialect::Gemini, true)),
        _ => None,
    };
    let Some((dialect, stream)) = generate else {
        return respond_other(sock, endpoint, req, a, fault, defaults).await;
    };
    let mut plan = Plan::new(req, dialect, opts, defaults, a.body_len);
    plan.response_id = format!("resp_mock_{}", a.n);
    if dialect == Dialect::Responses && req.get("store") != Some(&Value::Bool(false)) {
        if let Ok(mut s) = stats.lock() {
            s.stored
                .insert(plan.response_id.clone(), responses::body(&plan, a.model));
        }
    }
    let kind = match dialect {
        Dialect::Gemini => Kind::Gemini {
            sse: gemini::query_param(a.query, "alt").is_some_and(|v| v == "sse"),
        },
        Dialect::OpenAi => Kind::OpenAi,
        Dialect::Anthropic => Kind::Anthropic,
        Dialect::Responses => Kind::Responses,
    };
    if !stream {
        return respond_whole(sock, &plan, dialect, a.model, fault).await;
    }
    respond_stream(sock, req, &plan, kind, a.model, opts, stats).await
}

/// Embeddings and token counts: one JSON body, or a fault.
async fn respond_other(
    sock: &mut impl Io,
    endpoint: Endpoint,
    req: &Value,
    a: &Asked<'_>,
    fault: &str,
    defaults: Defaults,
) -> std::io::Result<bool> {
    if fault == "close_before_first" || fault == "close_mid" {
        return Ok(false);
    }
    if fault == "malformed" {
        return write_plain(sock, 200, "{\"data\": [", "").await;
    }
    let first_ms = a
        .opts
        .get("first_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(defaults.first_ms);
    tokio::time::sleep(Duration::from_millis(first_ms)).await;
    let count = extras::count(a.opts, a.body_len);
    let v = match endpoint {
        Endpoint::Embeddings => extras::openai(req, a.opts, a.model),
        Endpoint::GeminiAction(gemini::Action::Embed) => extras::gemini(req, a.opts, false),
        Endpoint::GeminiAction(gemini::Action::BatchEmbed) => extras::gemini(req, a.opts, true),
        Endpoint::GeminiAction(_) | Endpoint::CountTokens(Dialect::Gemini) => {
            json!({"totalTokens": count})
        }
        Endpoint::CountTokens(Dialect::Responses) => {
            json!({"object": "response.input_tokens", "input_tokens": count})
        }
        _ => json!({"input_tokens": count}),
    };
    write_plain(sock, 200, &v.to_string(), "").await
}

/// Answers the mock's own routes (stats, reset, health); `None` for others.
async fn respond_control(
    sock: &mut impl Io,
    method: &str,
    route: &str,
    stats: &Shared,
) -> std::io::Result<Option<bool>> {
    if method == "GET" && route == "/_mock/stats" {
        let v = {
            let s = stats
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            json!({"total": s.total, "connections": s.connections, "by_model": s.by_model, "last": s.last, "aborted": s.aborted,
                   "by_endpoint": s.by_endpoint, "seen": s.seen, "h2_connections": s.h2_connections,
                   "h2_streams_peak": s.h2_streams_peak, "by_protocol": s.by_protocol,
                   "login": login::stats()})
        };
        return write_plain(sock, 200, &v.to_string(), "").await.map(Some);
    }
    if let Some(id) = route
        .strip_prefix("/v1/responses/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        let found = {
            let mut s = stats
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            *s.by_endpoint
                .entry(format!("responses:{method}"))
                .or_default() += 1;
            match method {
                "GET" => s.stored.get(id).cloned(),
                "DELETE" => s
                    .stored
                    .remove(id)
                    .map(|_| json!({"id": id, "object": "response.deleted", "deleted": true})),
                _ => None,
            }
        };
        let (status, body) = match found {
            Some(v) => (200, v),
            None => (
                404,
                json!({"error": {"message": format!("Response with id '{id}' not found."),
                "type": "invalid_request_error", "param": null, "code": null}}),
            ),
        };
        return write_plain(sock, status, &body.to_string(), "")
            .await
            .map(Some);
    }
    if method == "POST" && route == "/_mock/reset" {
        if let Ok(mut s) = stats.lock() {
            *s = Stats::default();
        }
        login::reset();
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
fn forced_status(
    hdrs: &HashMap<String, String>,
    query_key: Option<&str>,
    opts: &HashMap<String, String>,
) -> Option<u16> {
    // `fail_key=K;fail_status=S`: answer S to requests carrying key K.
    let key_sent = hdrs
        .get("authorization")
        .or(hdrs.get("x-api-key"))
        .or(hdrs.get("x-goog-api-key"))
        .cloned()
        .or_else(|| query_key.map(str::to_owned))
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
    sock: &mut impl Io,
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
    let retry_after = opts.get("retry_after").map_or("1", String::as_str);
    let body = match dialect {
        Dialect::OpenAi | Dialect::Responses => {
            json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
        }
        Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": msg}}),
        Dialect::Gemini => {
            let delay = (status == 429)
                .then_some(retry_after)
                .filter(|d| d.parse::<f64>().is_ok());
            gemini::error_body(status, msg, delay)
        }
    };
    let extra = if status == 429 && retry_after != "none" {
        format!("retry-after: {retry_after}\r\n")
    } else {
        String::new()
    };
    write_plain(sock, status, &body.to_string(), &extra).await
}

/// Answers a non-streaming request with the whole body, or its fault.
async fn respond_whole(
    sock: &mut impl Io,
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
        Dialect::Gemini => gemini::body(plan, model),
        Dialect::Responses => responses::body(plan, model),
    };
    write_plain(sock, 200, &v.to_string(), "").await
}

/// How a stream is framed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    OpenAi,
    Anthropic,
    Responses,
    /// `sse`: `?alt=sse`; else a JSON array streamed.
    Gemini {
        sse: bool,
    },
}

/// Answers a streaming request event by event, with its timing and faults.
async fn respond_stream(
    sock: &mut impl Io,
    req: &Value,
    plan: &Plan,
    kind: Kind,
    model: &str,
    opts: &HashMap<String, String>,
    stats: &Shared,
) -> std::io::Result<bool> {
    let fault = opts.get("fault").map(String::as_str).unwrap_or("");
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let events = match kind {
        Kind::OpenAi => plan.openai_events(model, include_usage),
        Kind::Anthropic => plan.anthropic_events(model),
        Kind::Responses => responses::events(plan, model),
        Kind::Gemini { sse } => gemini::events(plan, model, sse),
    };
    let head: &[u8] = if kind == (Kind::Gemini { sse: false }) {
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=UTF-8\r\ntransfer-encoding: chunked\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    };
    sock.write_all(head).await?;
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
            let fault_event = || fault_event(kind, plan, model, fault, after);
            if let Some(keep_open) =
                mid_stream_fault(sock, fault, fault_event, stats, model).await?
            {
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

/// The event an `error_event` or `malformed` fault writes at event `at`.
fn fault_event(kind: Kind, plan: &Plan, model: &str, fault: &str, at: usize) -> String {
    match (fault, kind) {
        ("error_event", Kind::OpenAi) => "data: {\"error\":{\"message\":\"mock: overloaded mid-stream\",\"type\":\"overloaded_error\"}}\n\n".to_owned(),
        ("error_event", Kind::Anthropic) => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"mock: overloaded mid-stream\"}}\n\n".to_owned(),
        ("error_event", Kind::Responses) => responses::failed_event(plan, model, at),
        ("error_event", Kind::Gemini { sse }) => gemini::error_event(sse, at),
        (_, Kind::Gemini { sse }) => gemini::malformed_event(sse, at),
        (_, Kind::Responses) => responses::MALFORMED.to_owned(),
        _ => "data: {\"choices\": [{\"delta\": \n\n".to_owned(),
    }
}

/// Plays a mid-stream `fault`; `Some(keep_open)` when it ends the stream.
async fn mid_stream_fault(
    sock: &mut impl Io,
    fault: &str,
    fault_event: impl FnOnce() -> String,
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
        "error_event" | "malformed" => {
            write_chunk(sock, fault_event().as_bytes()).await?;
            sock.write_all(b"0\r\n\r\n").await?;
            Ok(Some(true))
        }
        _ => Ok(None),
    }
}

/// Waits `d`, unless the reader closes the connection first (true): a
/// streaming mock notices an abandoned stream while it is silent.
async fn reader_left(sock: &mut impl Io, d: Duration) -> bool {
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

async fn write_chunk(sock: &mut impl Io, data: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(data.len() + 16);
    frame.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    sock.write_all(&frame).await
}
