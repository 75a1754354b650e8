//! The dialect matrix over real sockets: every client dialect (OpenAI Chat,
//! Anthropic Messages, Gemini, OpenAI Responses) against every upstream
//! dialect (providers `openai`, `anthropic`, `gemini`, `openai-responses`
//! on the mock), one `#[test]` per scenario looping over the 16 pairs:
//! text, stream, parallel tool calls with a result round trip, reasoning,
//! structured output, usage, errors before commit (failover, a 400 in the
//! client's shape) and after commit (in-stream errors, never a clean
//! finish). Every streamed answer goes through a strict parser of the
//! client's dialect (PROTOCOLS §0, §5.2). Then the dialect-specific
//! surfaces: Gemini `?key=` auth and `GET /v1beta/models`, Responses
//! `previous_response_id`/`store`/`GET`/`DELETE`, opaque reasoning tokens
//! (byte-exact to their issuer, never to another vendor), embeddings and
//! count_tokens.
//!
//! One mock and one gateway per test function; models are named
//! `{scenario}-{client}-{upstream}` and reach the mock as
//! `u-{scenario}-{client}-{upstream};{options}`, so `/_mock/stats` tells
//! every pair's upstream requests apart. A failing pair does not hide the
//! others: each test reports every failing pair, by name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed assertion"
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---------------------------------------------------------------------------
// Dialects, config, running a table
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum D {
    Chat,
    Anthropic,
    Gemini,
    Responses,
}

const ALL: [D; 4] = [D::Chat, D::Anthropic, D::Gemini, D::Responses];

impl D {
    fn tag(self) -> &'static str {
        match self {
            D::Chat => "chat",
            D::Anthropic => "anthropic",
            D::Gemini => "gemini",
            D::Responses => "responses",
        }
    }

    fn provider(self) -> String {
        format!("up-{}", self.tag())
    }

    fn upstream_key(self) -> String {
        format!("sk-upstream-{}-key", self.tag())
    }
}

impl fmt::Display for D {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// What the mock mints (src/bin/mock_upstream): Anthropic thinking
/// signature, Gemini thoughtSignature (base64), Responses encrypted_content.
const ANTHROPIC_SIG: &str = "mock-signature";
const GEMINI_SIG: &str = "bW9jay1nZW1pbmktc2lnbmF0dXJl";
const OPENAI_ENC: &str = "mock-openai-encrypted";
const REASONING: &str = "Let me think about that.";

fn minted(d: D) -> &'static str {
    match d {
        D::Anthropic => ANTHROPIC_SIG,
        D::Gemini => GEMINI_SIG,
        D::Responses => OPENAI_ENC,
        D::Chat => "",
    }
}

/// A client model: its name and its chain of (upstream dialect, mock model).
struct Model {
    name: String,
    targets: Vec<(D, String)>,
    extra: String,
}

fn model(name: impl Into<String>, targets: Vec<(D, String)>) -> Model {
    Model {
        name: name.into(),
        targets,
        extra: String::new(),
    }
}

/// The name a pair's scenario model has at the gateway, and at the mock.
fn client_model(scn: &str, c: D, u: D) -> String {
    format!("{scn}-{c}-{u}")
}

fn up_model(scn: &str, c: D, u: D, opts: &str) -> String {
    if opts.is_empty() {
        format!("u-{scn}-{c}-{u}")
    } else {
        format!("u-{scn}-{c}-{u};{opts}")
    }
}

/// One model per pair for `scn`, its only target the pair's upstream with
/// `opts`.
fn pair_models(scn: &str, opts: &str) -> Vec<Model> {
    let mut v = Vec::new();
    for c in ALL {
        for u in ALL {
            v.push(model(
                client_model(scn, c, u),
                vec![(u, up_model(scn, c, u, opts))],
            ));
        }
    }
    v
}

fn matrix_config(mock: SocketAddr, models: &[Model]) -> String {
    let mut c = format!(
        r#"
[server]
listen = "LISTEN"
threads = 2
first_event_timeout = "3s"
idle_timeout = "2s"
connect_timeout = "1s"

[[providers]]
name = "up-chat"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{k_chat}"

[[providers]]
name = "up-anthropic"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{k_anthropic}"

[[providers]]
name = "up-gemini"
type = "gemini"
base_url = "http://{mock}"
api_key = "{k_gemini}"

[[providers]]
name = "up-responses"
type = "openai-responses"
base_url = "http://{mock}/v1"
api_key = "{k_responses}"

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

# The usage scenario's upstream models, priced per bucket with distinct
# rates, so the cost in /api/usage checks every bucket.
[[prices]]
model = "u-usage-*"
currency = "USD"
input = 3
output = 15
cache_read = 0.3
cache_write = 3.75
reasoning = 20
"#,
        k_chat = D::Chat.upstream_key(),
        k_anthropic = D::Anthropic.upstream_key(),
        k_gemini = D::Gemini.upstream_key(),
        k_responses = D::Responses.upstream_key(),
    );
    for m in models {
        let t: Vec<String> = m
            .targets
            .iter()
            .map(|(d, um)| format!("{{ provider = \"{}\", model = \"{um}\" }}", d.provider()))
            .collect();
        c.push_str(&format!(
            "\n[[models]]\nname = \"{}\"\ntargets = [{}]\n{}\n",
            m.name,
            t.join(", "),
            m.extra
        ));
    }
    c
}

struct Env {
    mock: Proc,
    gw: Proc,
}

fn env(models: &[Model]) -> Env {
    let mock = mock();
    let gw = gateway(&matrix_config(mock.addr, models));
    Env { mock, gw }
}

impl Env {
    fn stats(&self) -> Value {
        mock_stats(self.mock.addr)
    }

    /// What the mock keeps of the last request to `up` (`last[up]`).
    fn last(&self, up: &str) -> Value {
        self.stats()["last"][up].clone()
    }

    /// The digests of requests to `up`, oldest first.
    fn seen(&self, up: &str) -> Vec<Value> {
        self.stats()["seen"][up]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".to_owned())
}

/// Runs `case` for every (client, upstream) pair, then fails naming every
/// pair that failed.
fn each_pair(scn: &str, mut f: impl FnMut(D, D)) {
    let mut failures = Vec::new();
    for c in ALL {
        for u in ALL {
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(c, u))) {
                failures.push(format!(
                    "[{scn}] client {c} -> upstream {u}: {}",
                    panic_text(e)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 16 pairs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

type Case<'a> = (String, Box<dyn FnOnce() + 'a>);

fn case<'a>(name: impl Into<String>, f: impl FnOnce() + 'a) -> Case<'a> {
    (name.into(), Box::new(f))
}

/// Runs named sub-cases, failing with every one that failed.
fn each_case(cases: Vec<Case<'_>>) {
    let n = cases.len();
    let mut failures = Vec::new();
    for (name, f) in cases {
        if let Err(e) = catch_unwind(AssertUnwindSafe(f)) {
            failures.push(format!("[{name}] {}", panic_text(e)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// Requests in each client dialect
// ---------------------------------------------------------------------------

/// How a request is answered: whole, streamed (Gemini: SSE), or, for Gemini
/// only, streamed as one JSON array.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Whole,
    Stream,
    GeminiArray,
}

fn user_body(c: D, prompt: &str) -> Value {
    match c {
        D::Chat => json!({"messages": [{"role": "user", "content": prompt}]}),
        D::Anthropic => {
            json!({"max_tokens": 1024, "messages": [{"role": "user", "content": prompt}]})
        }
        D::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
        D::Responses => json!({"input": [{"type": "message", "role": "user",
                                          "content": [{"type": "input_text", "text": prompt}]}]}),
    }
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})
}

fn with_tools(c: D, mut body: Value) -> Value {
    let desc = "Current weather of a city";
    body["tools"] = match c {
        D::Chat => {
            json!([{"type": "function", "function": {"name": "get_weather", "description": desc,
                                                              "parameters": weather_schema()}}])
        }
        D::Anthropic => {
            json!([{"name": "get_weather", "description": desc, "input_schema": weather_schema()}])
        }
        D::Gemini => json!([{"functionDeclarations": [{"name": "get_weather", "description": desc,
                                                         "parametersJsonSchema": weather_schema()}]}]),
        D::Responses => json!([{"type": "function", "name": "get_weather", "description": desc,
                                 "parameters": weather_schema(), "strict": false}]),
    };
    body
}

/// The client's way of asking for visible reasoning.
fn with_reasoning(c: D, mut body: Value) -> Value {
    match c {
        D::Chat => body["reasoning_effort"] = json!("high"),
        D::Anthropic => {
            body["max_tokens"] = json!(4096);
            body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        }
        D::Gemini => {
            body["generationConfig"]["thinkingConfig"] =
                json!({"includeThoughts": true, "thinkingBudget": 2048})
        }
        D::Responses => {
            body["reasoning"] = json!({"effort": "high", "summary": "auto"});
            body["include"] = json!(["reasoning.encrypted_content"]);
        }
    }
    body
}

fn city_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
           "required": ["city", "population"], "additionalProperties": false})
}

fn with_json_schema(c: D, mut body: Value) -> Value {
    match c {
        D::Chat => {
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": "city", "schema": city_schema(), "strict": true}})
        }
        D::Anthropic => {
            body["output_config"] =
                json!({"format": {"type": "json_schema", "schema": city_schema()}})
        }
        D::Gemini => {
            body["generationConfig"] = json!({"responseMimeType": "application/json",
                                              "responseJsonSchema": city_schema()})
        }
        D::Responses => {
            body["text"] = json!({"format": {"type": "json_schema", "name": "city",
                                             "schema": city_schema(), "strict": true}})
        }
    }
    body
}

/// Sends `body` as client dialect `c` for `model`.
fn send(addr: SocketAddr, c: D, model: &str, body: &Value, mode: Mode) -> Response {
    let mut body = body.clone();
    let stream = mode != Mode::Whole;
    let auth = format!("Bearer {KEY}");
    let (path, headers): (String, Vec<(&str, &str)>) = match c {
        D::Chat => {
            body["model"] = json!(model);
            if stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            (
                "/v1/chat/completions".into(),
                vec![("Authorization", auth.as_str())],
            )
        }
        D::Anthropic => {
            body["model"] = json!(model);
            if stream {
                body["stream"] = json!(true);
            }
            (
                "/v1/messages".into(),
                vec![("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
            )
        }
        D::Responses => {
            body["model"] = json!(model);
            if stream {
                body["stream"] = json!(true);
            }
            (
                "/v1/responses".into(),
                vec![("Authorization", auth.as_str())],
            )
        }
        D::Gemini => {
            let action = match mode {
                Mode::Whole => "generateContent",
                Mode::Stream => "streamGenerateContent?alt=sse",
                Mode::GeminiArray => "streamGenerateContent",
            };
            (
                format!("/v1beta/models/{model}:{action}"),
                vec![("x-goog-api-key", KEY)],
            )
        }
    };
    let mut h = headers;
    h.push(("Content-Type", "application/json"));
    request(addr, "POST", &path, &h, body.to_string().as_bytes())
}

// ---------------------------------------------------------------------------
// Answers, parsed strictly per client dialect
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Call {
    id: String,
    name: String,
    args: Value,
}

/// An answer in any dialect, as its client would assemble it.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    reasoning: String,
    /// Anthropic thinking signatures, Gemini thoughtSignatures, Responses
    /// encrypted_content, in order.
    tokens: Vec<String>,
    /// Whether an Anthropic thinking block carried a `signature` key.
    thinking_signature_field: bool,
    calls: Vec<Call>,
    /// The dialect's own finish: Chat finish_reason, Anthropic stop_reason,
    /// Gemini finishReason, Responses status.
    finish: String,
    usage: Value,
    /// Anthropic streams: the usage of message_start.
    start_usage: Value,
    /// The in-stream error, if the stream ended with one.
    error: Option<Value>,
    /// The assistant turn as the client replays it: Anthropic content
    /// blocks, Gemini parts, Responses output items.
    items: Vec<Value>,
    model: String,
    id: String,
}

/// Parses a client's answer: a whole body or a stream, strictly.
fn parse(c: D, mode: Mode, r: &Response) -> Answer {
    assert_eq!(r.status, 200, "status {}: {}", r.status, r.text());
    match mode {
        Mode::Whole => {
            let ct = r.header("content-type").unwrap_or("");
            assert!(ct.starts_with("application/json"), "content-type {ct}");
            parse_whole(c, &r.json())
        }
        Mode::Stream => {
            let ct = r.header("content-type").unwrap_or("");
            assert!(
                ct.starts_with("text/event-stream"),
                "content-type {ct}: {}",
                r.text()
            );
            assert!(
                r.header("content-length").is_none(),
                "an SSE answer has no content-length"
            );
            let events = sse_events(c, &r.text());
            match c {
                D::Chat => parse_chat_stream(&events),
                D::Anthropic => parse_anthropic_stream(&events),
                D::Gemini => parse_gemini_chunks(
                    events
                        .iter()
                        .map(|(_, d)| {
                            serde_json::from_str(d)
                                .unwrap_or_else(|e| panic!("data is not JSON ({e}): {d}"))
                        })
                        .collect(),
                ),
                D::Responses => parse_responses_stream(&events),
            }
        }
        Mode::GeminiArray => {
            let ct = r.header("content-type").unwrap_or("");
            assert!(ct.starts_with("application/json"), "content-type {ct}");
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "the JSON-array stream does not parse as one JSON value ({e}): {}",
                    r.text()
                )
            });
            let Value::Array(chunks) = v else {
                panic!("the JSON-array stream is not an array: {v}")
            };
            parse_gemini_chunks(chunks)
        }
    }
}

fn parse_whole(c: D, v: &Value) -> Answer {
    let mut a = Answer {
        model: v["model"].as_str().unwrap_or("").to_owned(),
        id: v["id"].as_str().unwrap_or("").to_owned(),
        ..Answer::default()
    };
    match c {
        D::Chat => {
            assert_eq!(v["object"], "chat.completion", "{v}");
            assert!(a.id.starts_with("chatcmpl-"), "id {}", a.id);
            let choice = &v["choices"][0];
            let msg = &choice["message"];
            assert_eq!(msg["role"], "assistant", "{v}");
            a.text = msg["content"].as_str().unwrap_or("").to_owned();
            a.reasoning = msg["reasoning_content"].as_str().unwrap_or("").to_owned();
            for tc in msg["tool_calls"].as_array().cloned().unwrap_or_default() {
                assert_eq!(tc["type"], "function", "{tc}");
                let args = tc["function"]["arguments"]
                    .as_str()
                    .unwrap_or_else(|| panic!("arguments not a string: {tc}"));
                a.calls.push(Call {
                    id: tc["id"].as_str().unwrap_or("").to_owned(),
                    name: tc["function"]["name"].as_str().unwrap_or("").to_owned(),
                    args: serde_json::from_str(args)
                        .unwrap_or_else(|e| panic!("arguments not JSON ({e}): {args}")),
                });
            }
            if !a.calls.is_empty() {
                assert!(
                    msg["content"].is_null() || msg["content"] == "",
                    "content with tool calls: {v}"
                );
            }
            a.finish = choice["finish_reason"].as_str().unwrap_or("").to_owned();
            a.usage = v["usage"].clone();
        }
        D::Anthropic => {
            assert_eq!(v["type"], "message", "{v}");
            assert_eq!(v["role"], "assistant", "{v}");
            assert!(a.id.starts_with("msg_"), "id {}", a.id);
            let blocks = v["content"]
                .as_array()
                .unwrap_or_else(|| panic!("no content: {v}"));
            for b in blocks {
                anthropic_block(&mut a, b);
            }
            a.items = blocks.clone();
            a.finish = v["stop_reason"].as_str().unwrap_or("").to_owned();
            a.usage = v["usage"].clone();
        }
        D::Gemini => {
            a = parse_gemini_chunks(vec![v.clone()]);
        }
        D::Responses => {
            assert_eq!(v["object"], "response", "{v}");
            responses_output(&mut a, v);
        }
    }
    a
}

fn anthropic_block(a: &mut Answer, b: &Value) {
    match b["type"].as_str().unwrap_or("") {
        "text" => a.text.push_str(
            b["text"]
                .as_str()
                .unwrap_or_else(|| panic!("text block without text: {b}")),
        ),
        "thinking" => {
            a.reasoning.push_str(
                b["thinking"]
                    .as_str()
                    .unwrap_or_else(|| panic!("thinking block without thinking: {b}")),
            );
            if let Some(s) = b.get("signature") {
                a.thinking_signature_field = true;
                if let Some(s) = s.as_str().filter(|s| !s.is_empty()) {
                    a.tokens.push(s.to_owned());
                }
            }
        }
        "redacted_thinking" => {}
        "tool_use" => {
            assert!(b["input"].is_object(), "tool_use input not an object: {b}");
            a.calls.push(Call {
                id: b["id"].as_str().unwrap_or("").to_owned(),
                name: b["name"].as_str().unwrap_or("").to_owned(),
                args: b["input"].clone(),
            });
        }
        other => panic!("unexpected content block type {other}: {b}"),
    }
}

/// A Responses envelope: its output items, status and usage.
fn responses_output(a: &mut Answer, v: &Value) {
    a.id = v["id"].as_str().unwrap_or("").to_owned();
    a.model = v["model"].as_str().unwrap_or("").to_owned();
    a.finish = v["status"].as_str().unwrap_or("").to_owned();
    a.usage = v["usage"].clone();
    let items = v["output"].as_array().cloned().unwrap_or_default();
    for it in &items {
        match it["type"].as_str().unwrap_or("") {
            "message" => {
                for p in it["content"].as_array().cloned().unwrap_or_default() {
                    if p["type"] == "output_text" {
                        a.text.push_str(p["text"].as_str().unwrap_or(""));
                    }
                }
            }
            "reasoning" => {
                for s in it["summary"].as_array().cloned().unwrap_or_default() {
                    a.reasoning.push_str(s["text"].as_str().unwrap_or(""));
                }
                for s in it["content"].as_array().cloned().unwrap_or_default() {
                    if a.reasoning.is_empty() {
                        a.reasoning.push_str(s["text"].as_str().unwrap_or(""));
                    }
                }
                if let Some(e) = it["encrypted_content"].as_str() {
                    a.tokens.push(e.to_owned());
                }
            }
            "function_call" => {
                let args = it["arguments"]
                    .as_str()
                    .unwrap_or_else(|| panic!("arguments not a string: {it}"));
                a.calls.push(Call {
                    id: it["call_id"].as_str().unwrap_or("").to_owned(),
                    name: it["name"].as_str().unwrap_or("").to_owned(),
                    args: serde_json::from_str(args)
                        .unwrap_or_else(|e| panic!("arguments not JSON ({e}): {args}")),
                });
            }
            other => panic!("unexpected output item {other}: {it}"),
        }
    }
    a.items = items;
}

/// SSE events (event name, data) under the client dialect's framing
/// rules (§5.2): `field: value` lines with the space, one `data:` line of
/// one-line JSON per event, events closed by a blank line; `event:` lines
/// mandatory for Anthropic and Responses, forbidden (with comments) for
/// Gemini; comments (keep-alives) allowed elsewhere.
fn sse_events(c: D, text: &str) -> Vec<(String, String)> {
    let norm = text.replace("\r\n", "\n");
    assert!(!norm.contains('\r'), "lone CR in the stream: {text:?}");
    assert!(
        norm.ends_with("\n\n") || norm.is_empty(),
        "the last event is not closed by a blank line: {text:?}"
    );
    let mut out = Vec::new();
    for block in norm.split("\n\n").filter(|b| !b.is_empty()) {
        let mut name = None;
        let mut data = None;
        let mut comment_only = true;
        for line in block.split('\n') {
            if line.starts_with(':') {
                assert!(
                    c != D::Gemini,
                    "a comment line in a Gemini stream: {line:?}"
                );
                continue;
            }
            comment_only = false;
            if let Some(v) = line.strip_prefix("event: ") {
                assert!(
                    c != D::Gemini,
                    "an event: line in a Gemini stream: {line:?}"
                );
                assert!(
                    c != D::Chat,
                    "an event: line in an OpenAI Chat stream: {line:?}"
                );
                assert!(
                    name.replace(v.to_owned()).is_none(),
                    "two event: lines: {block:?}"
                );
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(
                    data.replace(v.to_owned()).is_none(),
                    "two data: lines in one event: {block:?}"
                );
            } else {
                panic!("not a `field: value` SSE line: {line:?} in {text}");
            }
        }
        if comment_only {
            continue;
        }
        let data = data.unwrap_or_else(|| panic!("event without data: {block:?}"));
        if matches!(c, D::Anthropic | D::Responses) {
            let name = name
                .clone()
                .unwrap_or_else(|| panic!("{c} event without an event: line: {block:?}"));
            let v: Value = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
            assert_eq!(
                v["type"].as_str(),
                Some(name.as_str()),
                "event: line differs from data.type: {block}"
            );
        }
        out.push((name.unwrap_or_default(), data));
    }
    out
}

fn parse_chat_stream(events: &[(String, String)]) -> Answer {
    let mut a = Answer::default();
    let mut done = false;
    let mut saw_role = false;
    let mut args: Vec<String> = Vec::new();
    for (i, (_, data)) in events.iter().enumerate() {
        assert!(!done, "data after [DONE]: {data}");
        assert!(a.error.is_none(), "data after the error event: {data}");
        if data == "[DONE]" {
            assert!(i + 1 == events.len(), "[DONE] is not last");
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("chunk is not JSON ({e}): {data}"));
        if let Some(e) = v.get("error") {
            assert!(e["message"].is_string(), "error without message: {v}");
            a.error = Some(v.clone());
            continue;
        }
        assert_eq!(v["object"], "chat.completion.chunk", "{v}");
        let choices = v["choices"]
            .as_array()
            .unwrap_or_else(|| panic!("chunk without a choices array: {v}"));
        a.id = v["id"].as_str().unwrap_or("").to_owned();
        a.model = v["model"].as_str().unwrap_or("").to_owned();
        if !v["usage"].is_null() {
            a.usage = v["usage"].clone();
        }
        for ch in choices {
            assert_eq!(ch["index"], 0, "{v}");
            let d = &ch["delta"];
            if !saw_role {
                assert_eq!(
                    d["role"], "assistant",
                    "the first chunk lacks delta.role: {v}"
                );
                saw_role = true;
            }
            if !a.finish.is_empty() {
                let has = |k: &str| d.get(k).is_some_and(|x| !x.is_null() && x != "");
                assert!(
                    !has("content") && !has("tool_calls") && !has("reasoning_content"),
                    "content after finish_reason: {v}"
                );
            }
            if let Some(t) = d["content"].as_str() {
                a.text.push_str(t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                a.reasoning.push_str(t);
            }
            for tc in d["tool_calls"].as_array().cloned().unwrap_or_default() {
                let idx = tc["index"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("tool call delta without index: {tc}"))
                    as usize;
                assert!(
                    tc.get("function").is_some(),
                    "tool call delta without function: {tc}"
                );
                if idx == a.calls.len() {
                    assert_eq!(tc["type"], "function", "first delta of a call: {tc}");
                    let id = tc["id"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| panic!("first delta of a call without id: {tc}"));
                    let name = tc["function"]["name"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| panic!("first delta of a call without name: {tc}"));
                    a.calls.push(Call {
                        id: id.into(),
                        name: name.into(),
                        args: Value::Null,
                    });
                    args.push(String::new());
                } else {
                    assert!(
                        idx < a.calls.len(),
                        "tool call index {idx} skips ahead of {}: {tc}",
                        a.calls.len()
                    );
                    assert!(
                        tc.get("id").is_none_or(Value::is_null),
                        "id repeated on a later delta: {tc}"
                    );
                    assert!(
                        tc["function"].get("name").is_none_or(Value::is_null),
                        "name repeated on a later delta: {tc}"
                    );
                }
                if let Some(s) = tc["function"]["arguments"].as_str() {
                    args[idx].push_str(s);
                }
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                assert!(a.finish.is_empty(), "two finish_reasons: {v}");
                a.finish = f.to_owned();
            }
        }
    }
    for (call, s) in a.calls.iter_mut().zip(args) {
        call.args = serde_json::from_str(if s.is_empty() { "{}" } else { &s })
            .unwrap_or_else(|e| panic!("streamed arguments are not JSON ({e}): {s}"));
    }
    if a.error.is_some() {
        assert!(!done, "[DONE] after an error");
        assert!(
            a.finish.is_empty(),
            "a finish_reason ({}) in a stream that failed",
            a.finish
        );
    } else {
        assert!(done, "the stream did not end with [DONE]: {events:?}");
        assert!(!a.finish.is_empty(), "no finish_reason");
    }
    a
}

fn parse_anthropic_stream(events: &[(String, String)]) -> Answer {
    let mut a = Answer::default();
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Vec<bool> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    let mut started = false;
    let mut delta_seen = false;
    let mut stopped = false;
    for (name, data) in events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(!stopped, "event after message_stop: {v}");
        assert!(a.error.is_none(), "event after the error event: {v}");
        if name == "error" {
            assert!(
                v["error"]["type"].is_string() && v["error"]["message"].is_string(),
                "error event shape: {v}"
            );
            a.error = Some(v);
            continue;
        }
        if name != "ping" {
            assert!(
                started || name == "message_start",
                "{name} before message_start"
            );
        }
        match name.as_str() {
            "message_start" => {
                assert!(!started, "two message_start");
                started = true;
                let m = &v["message"];
                assert_eq!(m["type"], "message", "{v}");
                assert_eq!(m["role"], "assistant", "{v}");
                assert_eq!(m["content"], json!([]), "{v}");
                assert!(
                    m["usage"]["input_tokens"].is_u64(),
                    "message_start without usage.input_tokens: {v}"
                );
                a.id = m["id"].as_str().unwrap_or("").to_owned();
                a.model = m["model"].as_str().unwrap_or("").to_owned();
                a.start_usage = m["usage"].clone();
                a.usage = m["usage"].clone();
            }
            "ping" => {}
            "content_block_start" => {
                assert!(!delta_seen, "content_block_start after message_delta");
                let idx = v["index"].as_u64().unwrap() as usize;
                assert_eq!(
                    idx,
                    blocks.len(),
                    "block indices must be 0-based and contiguous: {v}"
                );
                let b = v["content_block"].clone();
                match b["type"].as_str().unwrap_or("") {
                    "tool_use" => assert_eq!(
                        b["input"],
                        json!({}),
                        "tool_use start input must be {{}}: {v}"
                    ),
                    "text" => assert_eq!(b["text"], "", "{v}"),
                    "thinking" => assert!(b["thinking"].is_string(), "{v}"),
                    "redacted_thinking" => {}
                    other => panic!("unexpected block type {other}: {v}"),
                }
                blocks.push(b);
                open.push(true);
                partial.push(String::new());
            }
            "content_block_delta" => {
                let idx = v["index"].as_u64().unwrap() as usize;
                assert!(
                    open.get(idx).copied().unwrap_or(false),
                    "delta to a block not open: {v}"
                );
                let b = &mut blocks[idx];
                let kind = b["type"].as_str().unwrap_or("").to_owned();
                let d = &v["delta"];
                match (d["type"].as_str().unwrap_or(""), kind.as_str()) {
                    ("text_delta", "text") => {
                        let t = format!(
                            "{}{}",
                            b["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        b["text"] = json!(t);
                    }
                    ("thinking_delta", "thinking") => {
                        let t = format!(
                            "{}{}",
                            b["thinking"].as_str().unwrap(),
                            d["thinking"].as_str().unwrap()
                        );
                        b["thinking"] = json!(t);
                    }
                    ("signature_delta", "thinking") => {
                        let t = format!(
                            "{}{}",
                            b["signature"].as_str().unwrap_or(""),
                            d["signature"].as_str().unwrap()
                        );
                        b["signature"] = json!(t);
                    }
                    ("input_json_delta", "tool_use") => {
                        partial[idx].push_str(d["partial_json"].as_str().unwrap())
                    }
                    (dt, bt) => panic!("{dt} into a {bt} block: {v}"),
                }
            }
            "content_block_stop" => {
                let idx = v["index"].as_u64().unwrap() as usize;
                assert!(
                    open.get(idx).copied().unwrap_or(false),
                    "stop of a block not open: {v}"
                );
                open[idx] = false;
                if blocks[idx]["type"] == "tool_use" {
                    let p = if partial[idx].is_empty() {
                        "{}"
                    } else {
                        partial[idx].as_str()
                    };
                    blocks[idx]["input"] = serde_json::from_str(p)
                        .unwrap_or_else(|e| panic!("tool input not JSON ({e}): {p}"));
                }
            }
            "message_delta" => {
                assert!(!delta_seen, "two message_delta");
                assert!(
                    open.iter().all(|o| !o),
                    "message_delta with a block still open"
                );
                delta_seen = true;
                a.finish = v["delta"]["stop_reason"].as_str().unwrap_or("").to_owned();
                assert!(
                    v["usage"]["output_tokens"].is_u64(),
                    "message_delta without usage.output_tokens: {v}"
                );
                // The SDKs overwrite usage fields that are not null.
                if let Some(m) = v["usage"].as_object() {
                    for (k, x) in m {
                        if !x.is_null() {
                            a.usage[k] = x.clone();
                        }
                    }
                }
            }
            "message_stop" => {
                assert!(delta_seen, "message_stop without message_delta");
                stopped = true;
            }
            other => panic!("unknown Anthropic event {other}: {v}"),
        }
    }
    for b in &blocks {
        anthropic_block(&mut a, b);
    }
    a.items = blocks;
    if a.error.is_some() {
        assert!(!stopped, "message_stop after an error");
        assert!(
            !delta_seen,
            "a message_delta (stop_reason {}) in a stream that failed",
            a.finish
        );
    } else {
        assert!(
            stopped,
            "the stream did not end with message_stop: {events:?}"
        );
    }
    a
}

/// Gemini chunks (SSE data or array elements): each a
/// GenerateContentResponse, or `{"error":…}` as the last one.
fn parse_gemini_chunks(chunks: Vec<Value>) -> Answer {
    let mut a = Answer::default();
    let mut parts: Vec<Value> = Vec::new();
    let n = chunks.len();
    for (i, v) in chunks.into_iter().enumerate() {
        if let Some(e) = v.get("error") {
            assert!(i + 1 == n, "chunks after the error: {v}");
            assert!(
                e["code"].is_u64() && e["message"].is_string() && e["status"].is_string(),
                "Google error shape: {v}"
            );
            a.error = Some(v);
            continue;
        }
        assert!(
            v.is_object()
                && (v.get("candidates").is_some()
                    || v.get("usageMetadata").is_some()
                    || v.get("promptFeedback").is_some()),
            "not a GenerateContentResponse: {v}"
        );
        assert!(
            a.finish.is_empty(),
            "a chunk after the one with finishReason: {v}"
        );
        if !v["usageMetadata"].is_null() {
            a.usage = v["usageMetadata"].clone();
        }
        if let Some(id) = v["responseId"].as_str() {
            a.id = id.to_owned();
        }
        let cands = v["candidates"].as_array().cloned().unwrap_or_default();
        assert!(cands.len() <= 1, "{v}");
        for cand in cands {
            if let Some(ps) = cand["content"]["parts"].as_array() {
                assert!(
                    cand["content"]["role"] == "model" || cand["content"]["role"].is_null(),
                    "{v}"
                );
                for p in ps {
                    let thought = p["thought"] == json!(true);
                    if let Some(s) = p["thoughtSignature"].as_str() {
                        a.tokens.push(s.to_owned());
                    }
                    if let Some(t) = p["text"].as_str() {
                        if thought {
                            a.reasoning.push_str(t);
                        } else {
                            a.text.push_str(t);
                        }
                    }
                    if let Some(fc) = p.get("functionCall") {
                        assert!(
                            fc["args"].is_object() || fc["args"].is_null(),
                            "functionCall args must be an object: {p}"
                        );
                        a.calls.push(Call {
                            id: fc["id"].as_str().unwrap_or("").to_owned(),
                            name: fc["name"].as_str().unwrap_or("").to_owned(),
                            args: if fc["args"].is_null() {
                                json!({})
                            } else {
                                fc["args"].clone()
                            },
                        });
                    }
                    // Merge text pieces the way a client would replay them.
                    let merge = parts.last().is_some_and(|l: &Value| {
                        l.get("functionCall").is_none()
                            && p.get("functionCall").is_none()
                            && l["text"].is_string()
                            && p["text"].is_string()
                            && (l["thought"] == json!(true)) == thought
                    });
                    if merge {
                        let l = parts.last_mut().unwrap();
                        l["text"] = json!(format!(
                            "{}{}",
                            l["text"].as_str().unwrap(),
                            p["text"].as_str().unwrap()
                        ));
                        if let Some(s) = p.get("thoughtSignature") {
                            l["thoughtSignature"] = s.clone();
                        }
                    } else {
                        parts.push(p.clone());
                    }
                }
            }
            if let Some(f) = cand["finishReason"].as_str() {
                a.finish = f.to_owned();
            }
        }
    }
    a.items = parts;
    if a.error.is_some() {
        assert!(
            a.finish.is_empty(),
            "a finishReason ({}) in a stream that failed",
            a.finish
        );
    } else {
        assert!(!a.finish.is_empty(), "no finishReason in the stream");
    }
    a
}

fn parse_responses_stream(events: &[(String, String)]) -> Answer {
    let mut a = Answer::default();
    let mut last_seq: Option<u64> = None;
    let mut added: Vec<Value> = Vec::new();
    let mut done: Vec<Option<Value>> = Vec::new();
    let mut text_deltas = String::new();
    let mut terminal: Option<String> = None;
    for (i, (name, data)) in events.iter().enumerate() {
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(
            terminal.is_none(),
            "event after {}: {v}",
            terminal.clone().unwrap_or_default()
        );
        let seq = v["sequence_number"]
            .as_u64()
            .unwrap_or_else(|| panic!("no sequence_number: {v}"));
        if let Some(l) = last_seq {
            assert!(seq > l, "sequence_number {seq} after {l}");
        }
        last_seq = Some(seq);
        if i == 0 {
            assert_eq!(
                name, "response.created",
                "the first event must be response.created"
            );
            assert_eq!(v["response"]["object"], "response", "{v}");
        }
        match name.as_str() {
            "response.created" | "response.in_progress" => {}
            "response.output_item.added" => {
                let oi = v["output_index"].as_u64().unwrap() as usize;
                assert_eq!(oi, added.len(), "output_index out of order: {v}");
                added.push(v["item"].clone());
                done.push(None);
            }
            "response.output_item.done" => {
                let oi = v["output_index"].as_u64().unwrap() as usize;
                assert!(oi < added.len(), "done of an item never added: {v}");
                assert!(done[oi].is_none(), "item done twice: {v}");
                assert_eq!(v["item"]["type"], added[oi]["type"], "{v}");
                done[oi] = Some(v["item"].clone());
            }
            "response.output_text.delta" => {
                let oi = v["output_index"].as_u64().unwrap() as usize;
                assert!(
                    oi < added.len() && done[oi].is_none(),
                    "text delta to an item not open: {v}"
                );
                text_deltas.push_str(v["delta"].as_str().unwrap());
            }
            "response.function_call_arguments.delta"
            | "response.function_call_arguments.done"
            | "response.content_part.added"
            | "response.content_part.done"
            | "response.output_text.done"
            | "response.reasoning_summary_part.added"
            | "response.reasoning_summary_part.done"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_summary_text.done"
            | "response.reasoning_text.delta"
            | "response.reasoning_text.done" => {
                let oi = v["output_index"].as_u64().unwrap() as usize;
                assert!(
                    oi < added.len() && done[oi].is_none(),
                    "{name} for an item not open: {v}"
                );
            }
            "response.completed" | "response.incomplete" => {
                terminal = Some(name.clone());
                assert!(
                    done.iter().all(Option::is_some),
                    "{name} with items never done: {added:?}"
                );
                let out = v["response"]["output"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    out.len(),
                    done.len(),
                    "{name} output differs from the items streamed: {v}"
                );
                for (o, d) in out.iter().zip(&done) {
                    let d = d.as_ref().unwrap();
                    assert_eq!(o["type"], d["type"], "{v}");
                    assert_eq!(
                        o.get("id"),
                        d.get("id"),
                        "output item id differs from the streamed one: {v}"
                    );
                }
                responses_output(&mut a, &v["response"]);
            }
            "response.failed" => {
                terminal = Some(name.clone());
                assert_eq!(v["response"]["status"], "failed", "{v}");
                assert!(
                    v["response"]["error"]["message"].is_string(),
                    "response.failed without error.message: {v}"
                );
                a.error = Some(v);
            }
            "error" => {
                terminal = Some(name.clone());
                assert!(v["message"].is_string(), "error event without message: {v}");
                a.error = Some(v);
            }
            other => panic!("unexpected Responses event {other}: {v}"),
        }
    }
    assert!(
        terminal.is_some(),
        "the stream has no terminal event: {events:?}"
    );
    if a.error.is_none() {
        assert_eq!(
            text_deltas, a.text,
            "text deltas differ from the completed output"
        );
    }
    a
}

/// Finish values of a clean text answer, a tool-call answer, a truncated one.
fn finish_of(c: D, what: &str) -> &'static str {
    match (c, what) {
        (D::Chat, "stop") => "stop",
        (D::Chat, "tools") => "tool_calls",
        (D::Chat, _) => "length",
        (D::Anthropic, "stop") => "end_turn",
        (D::Anthropic, "tools") => "tool_use",
        (D::Anthropic, _) => "max_tokens",
        (D::Gemini, "stop" | "tools") => "STOP",
        (D::Gemini, _) => "MAX_TOKENS",
        (D::Responses, "stop" | "tools") => "completed",
        (D::Responses, _) => "incomplete",
    }
}

fn hello(prompt: &str) -> String {
    format!("Hello from the mock upstream! You said: {prompt}")
}

// ---------------------------------------------------------------------------
// The 16-pair scenarios
// ---------------------------------------------------------------------------

#[test]
fn text_whole() {
    let e = env(&pair_models("text", ""));
    each_pair("text", |c, u| {
        let m = client_model("text", c, u);
        let prompt = format!("plain text from {c} to {u}");
        let r = send(e.gw.addr, c, &m, &user_body(c, &prompt), Mode::Whole);
        let a = parse(c, Mode::Whole, &r);
        assert_eq!(a.text, hello(&prompt), "answer text");
        assert_eq!(a.finish, finish_of(c, "stop"), "finish");
        if c != D::Gemini {
            assert_eq!(a.model, m, "the model the client asked for is echoed");
        }
        let last = e.last(&up_model("text", c, u, ""));
        assert!(!last.is_null(), "the upstream was never asked");
        let endpoint = last["endpoint"].as_str().unwrap();
        let want = match u {
            D::Chat => "chat",
            D::Anthropic => "messages",
            D::Gemini => "gemini:generateContent",
            D::Responses => "responses",
        };
        assert_eq!(endpoint, want, "upstream endpoint");
    });
}

#[test]
fn text_stream() {
    let e = env(&pair_models("stream", ""));
    each_pair("stream", |c, u| {
        let m = client_model("stream", c, u);
        let modes: &[Mode] = if c == D::Gemini {
            &[Mode::Stream, Mode::GeminiArray]
        } else {
            &[Mode::Stream]
        };
        for &mode in modes {
            let prompt = format!("stream {mode:?} from {c} to {u}");
            let r = send(e.gw.addr, c, &m, &user_body(c, &prompt), mode);
            let a = parse(c, mode, &r);
            assert!(
                a.error.is_none(),
                "{mode:?}: an error in a clean stream: {:?}",
                a.error
            );
            assert_eq!(a.text, hello(&prompt), "{mode:?}: answer text");
            assert_eq!(a.finish, finish_of(c, "stop"), "{mode:?}: finish");
        }
        let last = e.last(&up_model("stream", c, u, ""));
        let want = match u {
            D::Chat => "chat",
            D::Anthropic => "messages",
            D::Gemini => "gemini:streamGenerateContent",
            D::Responses => "responses",
        };
        assert_eq!(last["endpoint"], want, "upstream endpoint");
        if u == D::Gemini {
            assert!(
                last["path"].as_str().unwrap().contains("alt=sse"),
                "Gemini upstream streams with alt=sse: {}",
                last["path"]
            );
        }
    });
}

#[test]
fn truncated_answer_finishes_as_length() {
    let e = env(&pair_models("len", "finish=length"));
    each_pair("finish=length", |c, u| {
        let m = client_model("len", c, u);
        for mode in [Mode::Whole, Mode::Stream] {
            let r = send(e.gw.addr, c, &m, &user_body(c, "cut short"), mode);
            let a = parse(c, mode, &r);
            assert_eq!(
                a.finish,
                finish_of(c, "length"),
                "{mode:?}: finish of a truncated answer"
            );
            if c == D::Responses && mode == Mode::Whole {
                let body = r.json();
                assert_eq!(
                    body["incomplete_details"]["reason"], "max_output_tokens",
                    "{body}"
                );
            }
        }
    });
}

/// The assistant's tool-call turn and the results, as the client replays
/// them in its own dialect.
fn replay(c: D, prompt: &str, a: &Answer, results: &[&str]) -> Value {
    let mut body = user_body(c, prompt);
    match c {
        D::Chat => {
            let calls: Vec<Value> = a
                .calls
                .iter()
                .map(|k| {
                    json!({"id": k.id, "type": "function",
                "function": {"name": k.name, "arguments": k.args.to_string()}})
                })
                .collect();
            let msgs = body["messages"].as_array_mut().unwrap();
            msgs.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
            for (k, r) in a.calls.iter().zip(results) {
                msgs.push(json!({"role": "tool", "tool_call_id": k.id, "content": r}));
            }
        }
        D::Anthropic => {
            let msgs = body["messages"].as_array_mut().unwrap();
            msgs.push(json!({"role": "assistant", "content": a.items}));
            let res: Vec<Value> = a
                .calls
                .iter()
                .zip(results)
                .map(|(k, r)| json!({"type": "tool_result", "tool_use_id": k.id, "content": r}))
                .collect();
            msgs.push(json!({"role": "user", "content": res}));
        }
        D::Gemini => {
            let cs = body["contents"].as_array_mut().unwrap();
            cs.push(json!({"role": "model", "parts": a.items}));
            let res: Vec<Value> = a
                .calls
                .iter()
                .zip(results)
                .map(|(k, r)| {
                    let mut fr = json!({"name": k.name, "response": {"result": r}});
                    if !k.id.is_empty() {
                        fr["id"] = json!(k.id);
                    }
                    json!({"functionResponse": fr})
                })
                .collect();
            cs.push(json!({"role": "user", "parts": res}));
        }
        D::Responses => {
            let input = body["input"].as_array_mut().unwrap();
            input.extend(a.items.iter().cloned());
            for (k, r) in a.calls.iter().zip(results) {
                input.push(json!({"type": "function_call_output", "call_id": k.id, "output": r}));
            }
        }
    }
    body
}

#[test]
fn parallel_tool_calls_round_trip() {
    let e = env(&pair_models("tools", "calls=2"));
    each_pair("tools", |c, u| {
        let m = client_model("tools", c, u);
        let prompt = "weather in two cities";
        let body = with_tools(c, user_body(c, prompt));
        // Turn 1, streamed: two calls.
        let r = send(e.gw.addr, c, &m, &body, Mode::Stream);
        let a = parse(c, Mode::Stream, &r);
        assert!(a.error.is_none(), "turn 1 failed: {:?}", a.error);
        assert_eq!(a.calls.len(), 2, "two parallel calls: {a:?}");
        assert_eq!(
            a.finish,
            finish_of(c, "tools"),
            "finish of a tool-call turn"
        );
        let cities: Vec<&Value> = a.calls.iter().map(|k| &k.args["location"]).collect();
        assert_eq!(cities, [&json!("Paris"), &json!("Tokyo")], "call arguments");
        for k in &a.calls {
            assert_eq!(k.name, "get_weather");
            if c != D::Gemini {
                assert!(!k.id.is_empty(), "a call without id");
            }
        }
        if c != D::Gemini {
            assert_ne!(a.calls[0].id, a.calls[1].id, "call ids are distinct");
        }
        // Turn 2, whole: the results in the client's dialect.
        let results = ["sunny in Paris", "rainy in Tokyo"];
        let body2 = with_tools(c, replay(c, prompt, &a, &results));
        for mode in [Mode::Whole, Mode::Stream] {
            let r2 = send(e.gw.addr, c, &m, &body2, mode);
            let a2 = parse(c, mode, &r2);
            assert!(
                a2.text.contains("sunny in Paris") && a2.text.contains("rainy in Tokyo"),
                "turn 2 {mode:?}: the answer quotes both results: {:?}",
                a2.text
            );
            assert!(
                a2.text.find("sunny in Paris") < a2.text.find("rainy in Tokyo"),
                "turn 2 {mode:?}: results in order: {:?}",
                a2.text
            );
            assert_eq!(a2.finish, finish_of(c, "stop"), "turn 2 {mode:?}");
            let seen = e.seen(&up_model("tools", c, u, "calls=2"));
            let d = seen.last().unwrap();
            assert_eq!(
                d["tool_results"].as_array().map(Vec::len),
                Some(2),
                "turn 2 {mode:?}: the upstream received two results: {d}"
            );
            if u == D::Gemini {
                // Gemini links a functionResponse to its call by name (ids optional).
                let b = &e.last(&up_model("tools", c, u, "calls=2"))["body"];
                let names: Vec<Value> = b["contents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
                    .filter_map(|p| p.get("functionResponse").map(|f| f["name"].clone()))
                    .collect();
                assert_eq!(
                    names,
                    [json!("get_weather"), json!("get_weather")],
                    "turn 2 {mode:?}: functionResponse names: {b}"
                );
            } else {
                assert!(
                    d["tool_call_ids"].as_array().map(Vec::len).unwrap_or(0) >= 2,
                    "turn 2 {mode:?}: calls and results are linked by id upstream: {d}"
                );
            }
        }
    });
}

#[test]
fn reasoning_reaches_the_client_in_its_shape() {
    let opts = "reasoning=1;reasoning_chunks=3";
    let e = env(&pair_models("think", opts));
    each_pair("reasoning", |c, u| {
        let m = client_model("think", c, u);
        for mode in [Mode::Whole, Mode::Stream] {
            let prompt = "think first";
            let r = send(
                e.gw.addr,
                c,
                &m,
                &with_reasoning(c, user_body(c, prompt)),
                mode,
            );
            let a = parse(c, mode, &r);
            assert_eq!(
                a.reasoning.trim(),
                REASONING,
                "{mode:?}: reasoning as the client sees it"
            );
            assert_eq!(
                a.text,
                hello(prompt),
                "{mode:?}: answer text, reasoning not folded in"
            );
            match c {
                D::Anthropic => {
                    assert_eq!(
                        a.items.first().map(|b| b["type"].clone()),
                        Some(json!("thinking")),
                        "{mode:?}: the thinking block comes first: {:?}",
                        a.items
                    );
                    assert!(
                        a.thinking_signature_field,
                        "{mode:?}: thinking block without signature: {:?}",
                        a.items
                    );
                    if u != D::Chat {
                        assert!(
                            !a.tokens.is_empty(),
                            "{mode:?}: the thinking block's signature is empty: {:?}",
                            a.items
                        );
                    }
                    if u == D::Anthropic {
                        assert_eq!(
                            a.tokens,
                            [ANTHROPIC_SIG],
                            "{mode:?}: same-dialect signature byte for byte"
                        );
                    }
                }
                D::Gemini => {
                    assert!(
                        a.items.iter().any(|p| p["thought"] == json!(true)),
                        "{mode:?}: no thought part: {:?}",
                        a.items
                    );
                }
                D::Responses => {
                    assert_eq!(
                        a.items.first().map(|i| i["type"].clone()),
                        Some(json!("reasoning")),
                        "{mode:?}: reasoning item first: {:?}",
                        a.items
                    );
                }
                D::Chat => {}
            }
        }
    });
}

#[test]
fn structured_output_reaches_the_upstream_in_its_form() {
    let e = env(&pair_models("json", ""));
    each_pair("structured output", |c, u| {
        let m = client_model("json", c, u);
        let r = send(
            e.gw.addr,
            c,
            &m,
            &with_json_schema(c, user_body(c, "a city as JSON")),
            Mode::Whole,
        );
        let a = parse(c, Mode::Whole, &r);
        assert_eq!(a.text, hello("a city as JSON"));
        let up = e.last(&up_model("json", c, u, ""));
        let b = &up["body"];
        let schema = match u {
            D::Chat => {
                assert_eq!(
                    b["response_format"]["type"], "json_schema",
                    "Chat upstream response_format: {b}"
                );
                b["response_format"]["json_schema"]["schema"].clone()
            }
            D::Anthropic => {
                assert_eq!(
                    b["output_config"]["format"]["type"], "json_schema",
                    "Anthropic upstream output_config.format: {b}"
                );
                b["output_config"]["format"]["schema"].clone()
            }
            D::Gemini => {
                let g = &b["generationConfig"];
                assert_eq!(
                    g["responseMimeType"], "application/json",
                    "Gemini upstream generationConfig: {b}"
                );
                if g["responseJsonSchema"].is_null() {
                    g["responseSchema"].clone()
                } else {
                    g["responseJsonSchema"].clone()
                }
            }
            D::Responses => {
                assert_eq!(
                    b["text"]["format"]["type"], "json_schema",
                    "Responses upstream text.format: {b}"
                );
                b["text"]["format"]["schema"].clone()
            }
        };
        assert!(
            schema["properties"]["city"].is_object()
                && schema["properties"]["population"].is_object(),
            "the upstream got the client's schema: {schema}"
        );
    });
}

/// Usage the client sees against PROTOCOLS §4.3, from what the mock
/// reported: `p` uncached prompt, `cached`, `out` total output, `reasoning`
/// (None: the upstream dialect does not report it).
fn check_usage(c: D, a: &Answer, [p, cached, written]: [u64; 3], out: u64, reasoning: Option<u64>) {
    let u = &a.usage;
    // Dialects without a cache-write field count writes as prompt input.
    let prompt = p + cached + written;
    let n = |k: &str| u.pointer(k).and_then(Value::as_u64);
    match c {
        D::Chat => {
            assert_eq!(n("/prompt_tokens"), Some(prompt), "prompt_tokens: {u}");
            assert_eq!(
                n("/prompt_tokens_details/cached_tokens"),
                Some(cached),
                "cached_tokens: {u}"
            );
            assert_eq!(n("/completion_tokens"), Some(out), "completion_tokens: {u}");
            assert_eq!(n("/total_tokens"), Some(prompt + out), "total_tokens: {u}");
            if let Some(r) = reasoning {
                assert_eq!(
                    n("/completion_tokens_details/reasoning_tokens"),
                    Some(r),
                    "reasoning_tokens: {u}"
                );
            }
        }
        D::Anthropic => {
            assert_eq!(
                n("/input_tokens"),
                Some(p),
                "input_tokens excludes cache reads: {u}"
            );
            assert_eq!(
                n("/cache_read_input_tokens"),
                Some(cached),
                "cache_read_input_tokens: {u}"
            );
            assert_eq!(
                n("/cache_creation_input_tokens").unwrap_or(0),
                written,
                "cache_creation_input_tokens: {u}"
            );
            assert_eq!(n("/output_tokens"), Some(out), "output_tokens: {u}");
        }
        D::Gemini => {
            assert_eq!(
                n("/promptTokenCount"),
                Some(prompt),
                "promptTokenCount: {u}"
            );
            assert_eq!(
                n("/cachedContentTokenCount"),
                Some(cached),
                "cachedContentTokenCount: {u}"
            );
            let thoughts = n("/thoughtsTokenCount").unwrap_or(0);
            let cands = n("/candidatesTokenCount").unwrap_or(0);
            assert_eq!(cands + thoughts, out, "candidates + thoughts = output: {u}");
            if let Some(r) = reasoning {
                assert_eq!(thoughts, r, "thoughtsTokenCount: {u}");
            }
            assert_eq!(
                n("/totalTokenCount"),
                Some(prompt + out),
                "totalTokenCount: {u}"
            );
        }
        D::Responses => {
            assert_eq!(n("/input_tokens"), Some(prompt), "input_tokens: {u}");
            assert_eq!(
                n("/input_tokens_details/cached_tokens"),
                Some(cached),
                "cached_tokens: {u}"
            );
            assert_eq!(n("/output_tokens"), Some(out), "output_tokens: {u}");
            assert_eq!(n("/total_tokens"), Some(prompt + out), "total_tokens: {u}");
            if let Some(r) = reasoning {
                assert_eq!(
                    n("/output_tokens_details/reasoning_tokens"),
                    Some(r),
                    "reasoning_tokens: {u}"
                );
            }
        }
    }
}

#[test]
fn usage_is_consistent_in_every_client_dialect() {
    // Only an Anthropic upstream reports cache writes (cache_write=7).
    let opts = "reasoning=1;cached=40;cache_write=7;text=usage-answer";
    let e = env(&pair_models("usage", opts));
    // What each client model's rows must add up to: requests and the four
    // buckets plus reasoning (PROTOCOLS §4.3), whatever the dialect pair.
    let expected = std::cell::RefCell::new(std::collections::BTreeMap::<String, [u64; 6]>::new());
    each_pair("usage", |c, u| {
        let m = client_model("usage", c, u);
        let up = up_model("usage", c, u, opts);
        for mode in [Mode::Whole, Mode::Stream] {
            let r = send(
                e.gw.addr,
                c,
                &m,
                &with_reasoning(c, user_body(c, "count me")),
                mode,
            );
            let a = parse(c, mode, &r);
            assert_eq!(a.text, "usage-answer", "{mode:?}");
            // The mock: prompt = body bytes / 4 (uncached), 40 cached; output =
            // 1 text piece + 5 reasoning; reasoning 5 (not reported by Anthropic).
            let body_len = e.last(&up)["body_len"].as_u64().unwrap();
            let p = (body_len / 4).max(1);
            let reasoning = (u != D::Anthropic).then_some(5);
            let written = if u == D::Anthropic { 7 } else { 0 };
            let mut sums = expected.borrow_mut();
            let sum = sums.entry(m.clone()).or_default();
            for (t, n) in sum
                .iter_mut()
                .zip([1, p, 40, written, 6, reasoning.unwrap_or(0)])
            {
                *t += n;
            }
            drop(sums);
            let res = catch_unwind(AssertUnwindSafe(|| {
                check_usage(c, &a, [p, 40, written], 6, reasoning)
            }));
            if let Err(err) = res {
                panic!("{mode:?}: {} (upstream prompt {p} uncached + 40 cached + {written} written, output 6, reasoning 5)", panic_text(err));
            }
            if c == D::Anthropic && mode == Mode::Stream {
                assert!(
                    a.start_usage["input_tokens"].as_u64().unwrap_or(0) > 0,
                    "message_start carries real input_tokens: {}",
                    a.start_usage
                );
            }
        }
    });
    // The usage rows of all 32 requests, as /api/usage adds them up per
    // client model: the exact tokens, and the exact cost at the prices
    // above (nanos per token: input 3,000, cache read 300, cache write
    // 3,750, visible output 15,000, reasoning 20,000).
    let expected = expected.into_inner();
    assert_eq!(expected.len(), 16, "every pair answered");
    let mut summary = Value::Null;
    let all_in = wait_until(std::time::Duration::from_secs(10), || {
        let r = request(
            e.gw.addr,
            "GET",
            "/api/usage?group_by=model",
            &[("authorization", &format!("Bearer {KEY}"))],
            b"",
        );
        summary = r.json();
        // These polls are requests too, with rows of their own (no model).
        let models: u64 = summary["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["model"].is_string())
            .filter_map(|g| g["requests"].as_u64())
            .sum();
        models == 32
    });
    assert!(all_in, "{summary}");
    for (model, [requests, p, cached, written, out, reasoning]) in &expected {
        let g = summary["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["model"] == json!(model)))
            .unwrap_or_else(|| panic!("no group for {model}: {summary}"));
        let n = |k: &str| g[k].as_u64().unwrap_or(u64::MAX);
        let got = [
            n("requests"),
            n("input_uncached"),
            n("cache_read"),
            n("cache_write"),
            n("output"),
            n("reasoning"),
        ];
        assert_eq!(
            got,
            [*requests, *p, *cached, *written, *out, *reasoning],
            "{model}: {g}"
        );
        let cost = p * 3_000
            + cached * 300
            + written * 3_750
            + (out - reasoning) * 15_000
            + reasoning * 20_000;
        assert_eq!(
            g["cost_nanos"]["USD"].as_u64(),
            Some(cost),
            "{model} cost: {g}"
        );
    }
}

#[test]
fn an_error_before_commit_falls_over_or_reaches_the_client_in_its_shape() {
    let mut models = Vec::new();
    for c in ALL {
        for u in ALL {
            models.push(model(
                client_model("fo", c, u),
                vec![
                    (u, up_model("fo", c, u, "status=503")),
                    (u, up_model("fo", c, u, "")),
                ],
            ));
            models.push(model(
                client_model("bad", c, u),
                vec![(u, up_model("bad", c, u, "status=400"))],
            ));
        }
    }
    let e = env(&models);
    each_pair("error before commit", |c, u| {
        for mode in [Mode::Whole, Mode::Stream] {
            let prompt = format!("failover {mode:?}");
            let r = send(
                e.gw.addr,
                c,
                &client_model("fo", c, u),
                &user_body(c, &prompt),
                mode,
            );
            let a = parse(c, mode, &r);
            assert!(
                a.error.is_none(),
                "{mode:?}: failover answer has an error: {:?}",
                a.error
            );
            assert_eq!(
                a.text,
                hello(&prompt),
                "{mode:?}: the second target's answer"
            );
            assert_eq!(a.finish, finish_of(c, "stop"), "{mode:?}");

            let r = send(
                e.gw.addr,
                c,
                &client_model("bad", c, u),
                &user_body(c, "rejected"),
                mode,
            );
            assert_eq!(
                r.status,
                400,
                "{mode:?}: the upstream's 400 keeps its status: {}",
                r.text()
            );
            let ct = r.header("content-type").unwrap_or("");
            assert!(
                ct.starts_with("application/json"),
                "{mode:?}: error content-type {ct}"
            );
            let v = r.json();
            match c {
                D::Chat | D::Responses => {
                    assert!(
                        v["error"]["message"].is_string(),
                        "{mode:?}: OpenAI error shape: {v}"
                    );
                    assert_eq!(v["error"]["type"], "invalid_request_error", "{mode:?}: {v}");
                }
                D::Anthropic => {
                    assert_eq!(v["type"], "error", "{mode:?}: Anthropic error shape: {v}");
                    assert_eq!(v["error"]["type"], "invalid_request_error", "{mode:?}: {v}");
                    assert!(v["error"]["message"].is_string(), "{mode:?}: {v}");
                }
                D::Gemini => {
                    assert_eq!(v["error"]["code"], 400, "{mode:?}: Google error shape: {v}");
                    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{mode:?}: {v}");
                    assert!(v["error"]["message"].is_string(), "{mode:?}: {v}");
                }
            }
        }
    });
}

#[test]
fn an_error_after_commit_ends_the_stream_with_an_in_stream_error() {
    let mut models = pair_models("cut", "fault=close_mid;after=5");
    models.extend(pair_models("evt", "fault=error_event;after=5"));
    let e = env(&models);
    each_pair("error after commit", |c, u| {
        let modes: &[Mode] = if c == D::Gemini {
            &[Mode::Stream, Mode::GeminiArray]
        } else {
            &[Mode::Stream]
        };
        for (scn, &mode) in ["cut", "evt"]
            .into_iter()
            .flat_map(|s| modes.iter().map(move |m| (s, m)))
        {
            let scn = format!("{scn} {mode:?}");
            let scn = scn.as_str();
            let r = send(
                e.gw.addr,
                c,
                &client_model(&scn[..3], c, u),
                &user_body(c, "this stream dies"),
                mode,
            );
            assert_eq!(
                r.status,
                200,
                "{scn}: the stream had committed: {}",
                r.text()
            );
            let a = parse(c, mode, &r);
            assert!(a.error.is_some(), "{scn}: the stream ends without an in-stream error (text so far {:?}, finish {:?}): {}",
                a.text, a.finish, r.text());
            match c {
                D::Anthropic => {
                    let t = a.error.as_ref().unwrap()["error"]["type"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    assert!(
                        ["overloaded_error", "api_error"].contains(&t.as_str()),
                        "{scn}: error type {t}"
                    );
                }
                D::Responses => {
                    assert!(
                        !r.text().contains("response.completed"),
                        "{scn}: a failed stream never says completed"
                    );
                }
                _ => {}
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Dialect-specific surfaces
// ---------------------------------------------------------------------------

#[test]
fn gemini_key_in_the_query_never_leaves_the_gateway() {
    let mock = mock();
    let models = vec![
        model("gk", vec![(D::Gemini, "u-gk".into())]),
        model("gk-chat", vec![(D::Chat, "u-gk-chat".into())]),
    ];
    let gw = live_gateway(&matrix_config(mock.addr, &models));
    let body = user_body(D::Gemini, "query key").to_string();
    let ct = [("Content-Type", "application/json")];
    each_case(vec![
        case("?key= on a gemini route", || {
            let r = request(
                gw.addr(),
                "POST",
                &format!("/v1beta/models/gk:generateContent?key={KEY}"),
                &ct,
                body.as_bytes(),
            );
            let a = parse(D::Gemini, Mode::Whole, &r);
            assert_eq!(a.text, hello("query key"));
            let last = &mock_stats(mock.addr)["last"]["u-gk"];
            let provider = D::Gemini.upstream_key();
            assert!(
                last["x_goog_api_key"] == json!(provider) || last["query_key"] == json!(provider),
                "the mock got the provider's key: {last}"
            );
            for k in ["x_goog_api_key", "query_key", "authorization", "x_api_key"] {
                assert!(
                    last[k].is_null() || last[k] == json!(provider),
                    "{k} reached the mock as {}",
                    last[k]
                );
            }
            assert!(
                !last["path"].as_str().unwrap().contains(KEY),
                "the client key reached the mock in the path: {}",
                last["path"]
            );
        }),
        case("?key= streamed, on a chat route", || {
            let r = request(
                gw.addr(),
                "POST",
                &format!("/v1beta/models/gk-chat:streamGenerateContent?alt=sse&key={KEY}"),
                &ct,
                body.as_bytes(),
            );
            let a = parse(D::Gemini, Mode::Stream, &r);
            assert_eq!(a.text, hello("query key"));
            let last = &mock_stats(mock.addr)["last"]["u-gk-chat"];
            assert_eq!(
                last["authorization"],
                json!(format!("Bearer {}", D::Chat.upstream_key())),
                "{last}"
            );
            assert!(
                !last.to_string().contains(KEY),
                "the client key reached the mock: {last}"
            );
        }),
        case("a wrong ?key= is refused in Google's shape", || {
            let r = request(
                gw.addr(),
                "POST",
                "/v1beta/models/gk:generateContent?key=sk-wrong-key-123",
                &ct,
                body.as_bytes(),
            );
            assert!(
                r.status == 401 || r.status == 403,
                "status {}: {}",
                r.status,
                r.text()
            );
            let v = r.json();
            assert!(
                v["error"]["code"].is_u64() && v["error"]["status"].is_string(),
                "Google error shape: {v}"
            );
        }),
        case("x-goog-api-key and Bearer both authenticate", || {
            let r = request(
                gw.addr(),
                "POST",
                "/v1beta/models/gk:generateContent",
                &[ct[0], ("x-goog-api-key", KEY)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let auth = format!("Bearer {KEY}");
            let r = request(
                gw.addr(),
                "POST",
                "/v1beta/models/gk:generateContent",
                &[ct[0], ("Authorization", &auth)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }),
        case("the key never appears in the gateway's log", || {
            // The access log of the requests above is written by now.
            let logged = wait_until(std::time::Duration::from_secs(2), || {
                gw.log().contains("/v1beta/models/gk")
            });
            let log = gw.log();
            assert!(
                logged,
                "the access log names the requests (so the check below means something):\n{log}"
            );
            assert!(
                !log.contains(KEY),
                "the client key is in the gateway's log:\n{log}"
            );
            assert!(
                !log.contains("sk-wrong-key-123"),
                "a wrong key is in the gateway's log:\n{log}"
            );
            assert!(
                !log.contains(&D::Gemini.upstream_key()),
                "the provider key is in the gateway's log:\n{log}"
            );
        }),
    ]);
}

#[test]
fn gemini_model_listing() {
    let e = env(&[
        model("listed-a", vec![(D::Gemini, "u-a".into())]),
        model("listed-b", vec![(D::Chat, "u-b".into())]),
    ]);
    let r = request(
        e.gw.addr,
        "GET",
        "/v1beta/models",
        &[("x-goog-api-key", KEY)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let names: Vec<&str> = v["models"]
        .as_array()
        .unwrap_or_else(|| panic!("no models array: {v}"))
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        names.contains(&"models/listed-a") && names.contains(&"models/listed-b"),
        "{names:?}"
    );
    for m in v["models"].as_array().unwrap() {
        assert!(m["supportedGenerationMethods"].is_array(), "{m}");
    }
    let r = request(
        e.gw.addr,
        "GET",
        "/v1beta/models/listed-a",
        &[("x-goog-api-key", KEY)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "models/listed-a");
    let r = request(e.gw.addr, "GET", "/v1beta/models", &[], b"");
    assert!(
        r.status == 401 || r.status == 403,
        "listing needs a key: {}",
        r.status
    );
}

fn responses_turn(addr: SocketAddr, model: &str, text: &str, extra: Value) -> Response {
    let mut body = user_body(D::Responses, text);
    if let (Some(b), Value::Object(x)) = (body.as_object_mut(), extra) {
        b.extend(x);
    }
    send(addr, D::Responses, model, &body, Mode::Whole)
}

fn responses_get(addr: SocketAddr, method: &str, id: &str) -> Response {
    let auth = format!("Bearer {KEY}");
    request(
        addr,
        method,
        &format!("/v1/responses/{id}"),
        &[("Authorization", &auth)],
        b"",
    )
}

#[test]
fn responses_previous_response_id_and_the_store() {
    let mut models = Vec::new();
    for u in ALL {
        models.push(model(format!("conv-{u}"), vec![(u, format!("u-conv-{u}"))]));
    }
    let e = env(&models);
    let mut cases: Vec<Case<'_>> = Vec::new();
    for u in [D::Chat, D::Anthropic, D::Gemini] {
        let e = &e;
        cases.push(case(format!("previous_response_id over {u}"), move || {
            let m = format!("conv-{u}");
            let r1 = responses_turn(e.gw.addr, &m, "first question", json!({}));
            let a1 = parse(D::Responses, Mode::Whole, &r1);
            assert!(!a1.id.is_empty());
            // Retrievable.
            let g = responses_get(e.gw.addr, "GET", &a1.id);
            assert_eq!(g.status, 200, "GET a stored response: {}", g.text());
            assert_eq!(g.json()["id"], json!(a1.id));
            assert_eq!(g.json()["object"], "response");
            // Turn 2 continues it: the upstream sees turn 1's input and output.
            let r2 = responses_turn(
                e.gw.addr,
                &m,
                "second question",
                json!({"previous_response_id": a1.id}),
            );
            let a2 = parse(D::Responses, Mode::Whole, &r2);
            assert_eq!(a2.text, hello("second question"));
            let last = e.last(&format!("u-conv-{u}"));
            let sent = last["body"].to_string();
            assert!(
                sent.contains("first question"),
                "turn 1's input reached the upstream: {sent}"
            );
            assert!(
                sent.contains(&hello("first question")),
                "turn 1's output reached the upstream: {sent}"
            );
            assert!(sent.contains("second question"), "{sent}");
            let turns = e.seen(&format!("u-conv-{u}")).last().unwrap()["turns"].clone();
            assert!(
                turns.as_array().unwrap().len() >= 3,
                "user, assistant, user: {turns}"
            );
            assert!(
                last["body"].get("previous_response_id").is_none(),
                "previous_response_id never reaches a {u} upstream"
            );
            // A chain of three.
            let r3 = responses_turn(
                e.gw.addr,
                &m,
                "third question",
                json!({"previous_response_id": a2.id}),
            );
            assert_eq!(r3.status, 200, "{}", r3.text());
            let sent = e.last(&format!("u-conv-{u}"))["body"].to_string();
            assert!(
                sent.contains("first question") && sent.contains("second question"),
                "{sent}"
            );
            // DELETE, then it is gone.
            let d = responses_get(e.gw.addr, "DELETE", &a1.id);
            assert_eq!(d.status, 200, "DELETE: {}", d.text());
            assert_eq!(d.json()["deleted"], true, "{}", d.text());
            let g = responses_get(e.gw.addr, "GET", &a1.id);
            assert_eq!(g.status, 404, "GET after DELETE: {}", g.text());
            assert!(g.json()["error"]["message"].is_string(), "{}", g.text());
        }));
        cases.push(case(
            format!("unknown id and store:false over {u}"),
            move || {
                let m = format!("conv-{u}");
                let r = responses_turn(
                    e.gw.addr,
                    &m,
                    "continue nothing",
                    json!({"previous_response_id": "resp_does_not_exist"}),
                );
                assert_eq!(
                    r.status,
                    404,
                    "an unknown previous_response_id: {}",
                    r.text()
                );
                let v = r.json();
                assert!(
                    v["error"]["message"].is_string(),
                    "Responses error shape: {v}"
                );
                let r = responses_turn(e.gw.addr, &m, "forget me", json!({"store": false}));
                let a = parse(D::Responses, Mode::Whole, &r);
                let g = responses_get(e.gw.addr, "GET", &a.id);
                assert_eq!(
                    g.status,
                    404,
                    "store:false is not retrievable: {}",
                    g.text()
                );
                let r = responses_turn(
                    e.gw.addr,
                    &m,
                    "continue it",
                    json!({"previous_response_id": a.id}),
                );
                assert_eq!(
                    r.status,
                    404,
                    "store:false cannot be continued: {}",
                    r.text()
                );
                let r = responses_get(e.gw.addr, "DELETE", "resp_does_not_exist");
                assert_eq!(r.status, 404, "DELETE of an unknown id: {}", r.text());
            },
        ));
    }
    let e2 = &e;
    cases.push(case(
        "previous_response_id over a Responses upstream is forwarded",
        move || {
            let r1 = responses_turn(e2.gw.addr, "conv-responses", "first question", json!({}));
            let a1 = parse(D::Responses, Mode::Whole, &r1);
            let r2 = responses_turn(
                e2.gw.addr,
                "conv-responses",
                "second question",
                json!({"previous_response_id": a1.id, "store": true}),
            );
            assert_eq!(r2.status, 200, "{}", r2.text());
            let d = e2.seen("u-conv-responses").last().unwrap().clone();
            assert_eq!(
                d["previous_response_id"],
                json!(a1.id),
                "forwarded as it is: {d}"
            );
            assert_eq!(d["store"], json!(true), "{d}");
        },
    ));
    each_case(cases);
}

#[test]
fn opaque_reasoning_tokens_go_back_only_to_their_issuer() {
    // Turn 1: client c, signing upstream s (reasoning + a tool call).
    // Turn 2 replays the assistant turn to s (the token comes back byte for
    // byte) and to every other upstream x (it never arrives).
    let signers = [D::Anthropic, D::Gemini, D::Responses];
    let clients = [D::Anthropic, D::Gemini, D::Responses];
    let opts = "reasoning=1;calls=1;signature=both";
    let mut models = Vec::new();
    for c in clients {
        for s in signers {
            models.push(model(
                format!("sig-{c}-{s}"),
                vec![(s, format!("u-sig-{c}-{s};{opts}"))],
            ));
            for x in ALL.into_iter().filter(|x| *x != s) {
                models.push(model(
                    format!("sigx-{c}-{s}-{x}"),
                    vec![(x, format!("u-sigx-{c}-{s}-{x}"))],
                ));
            }
        }
    }
    let e = env(&models);
    let mut cases: Vec<Case<'_>> = Vec::new();
    for c in clients {
        for s in signers {
            for mode in [Mode::Whole, Mode::Stream] {
                let e = &e;
                cases.push(case(
                    format!("client {c}, issuer {s}, {mode:?}"),
                    move || {
                        let prompt = "reason, then call";
                        let body = with_tools(c, with_reasoning(c, user_body(c, prompt)));
                        let a = parse(
                            c,
                            mode,
                            &send(e.gw.addr, c, &format!("sig-{c}-{s}"), &body, mode),
                        );
                        assert_eq!(a.calls.len(), 1, "one call: {a:?}");
                        assert!(
                            !a.tokens.is_empty(),
                            "the client got no opaque token: {:?}",
                            a.items
                        );
                        if c == s {
                            assert!(
                                a.tokens.iter().all(|t| t == minted(s)),
                                "same dialect: byte for byte, got {:?}",
                                a.tokens
                            );
                        }
                        let body2 =
                            with_tools(c, with_reasoning(c, replay(c, prompt, &a, &["ok"])));
                        let r = send(e.gw.addr, c, &format!("sig-{c}-{s}"), &body2, Mode::Whole);
                        assert_eq!(r.status, 200, "turn 2 to the issuer: {}", r.text());
                        let d = e
                            .seen(&format!("u-sig-{c}-{s};{opts}"))
                            .last()
                            .unwrap()
                            .clone();
                        let got = match s {
                            D::Anthropic => &d["signatures"],
                            D::Gemini => &d["thought_signatures"],
                            _ => &d["encrypted_content"],
                        };
                        let got: Vec<&str> = got
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        assert!(!got.is_empty(), "the issuer got its token back: {d}");
                        assert!(
                            got.iter().all(|t| *t == minted(s)),
                            "the issuer's token came back altered: {got:?}"
                        );
                        for x in ALL.into_iter().filter(|x| *x != s) {
                            let r = send(
                                e.gw.addr,
                                c,
                                &format!("sigx-{c}-{s}-{x}"),
                                &body2,
                                Mode::Whole,
                            );
                            assert_eq!(r.status, 200, "turn 2 to {x}: {}", r.text());
                            let last = e.last(&format!("u-sigx-{c}-{s}-{x}"));
                            let sent = last["body"].to_string();
                            assert!(
                                !sent.contains(minted(s)),
                                "{s}'s token reached a {x} upstream: {sent}"
                            );
                            for t in &a.tokens {
                                assert!(
                                    !sent.contains(t.as_str()),
                                    "the client's token {t} reached a {x} upstream: {sent}"
                                );
                            }
                            assert!(
                                sent.contains("ok"),
                                "the tool result still reached {x}: {sent}"
                            );
                        }
                    },
                ));
            }
        }
    }
    each_case(cases);
}

#[test]
fn embeddings_across_dialects() {
    let e = env(&[
        model("emb-gemini", vec![(D::Gemini, "u-emb-g".into())]),
        model("emb-chat", vec![(D::Chat, "u-emb-c".into())]),
    ]);
    let auth = format!("Bearer {KEY}");
    let hdr = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let ghdr = [
        ("x-goog-api-key", KEY),
        ("Content-Type", "application/json"),
    ];
    let cases: Vec<Case<'_>> = vec![
        case("OpenAI client, gemini upstream", || {
            let before = e.stats()["by_endpoint"]["gemini:batchEmbedContents"]
                .as_u64()
                .unwrap_or(0);
            let body = json!({"model": "emb-gemini", "input": ["alpha", "beta"], "encoding_format": "float"});
            let r = request(
                e.gw.addr,
                "POST",
                "/v1/embeddings",
                &hdr,
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["object"], "list", "{v}");
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), 2, "{v}");
            assert_eq!(data[1]["index"], 1);
            assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8, "{v}");
            let after = e.stats()["by_endpoint"]["gemini:batchEmbedContents"]
                .as_u64()
                .unwrap_or(0);
            assert_eq!(after, before + 1, "one batchEmbedContents upstream");
        }),
        case("Gemini client, openai upstream", || {
            let body = json!({"content": {"parts": [{"text": "alpha"}]}});
            let r = request(
                e.gw.addr,
                "POST",
                "/v1beta/models/emb-chat:embedContent",
                &ghdr,
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            let values = v["embedding"]["values"]
                .as_array()
                .unwrap_or_else(|| panic!("no embedding.values: {v}"));
            assert_eq!(values.len(), 8);
            assert_eq!(e.stats()["last"]["u-emb-c"]["endpoint"], "embeddings");
            // The same text gives the same vector whichever way it went.
            let body = json!({"model": "emb-gemini", "input": "alpha"});
            let o = request(
                e.gw.addr,
                "POST",
                "/v1/embeddings",
                &hdr,
                body.to_string().as_bytes(),
            )
            .json();
            let other = o["data"][0]["embedding"].as_array().unwrap().clone();
            for (a, b) in values.iter().zip(&other) {
                assert!(
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6,
                    "{values:?} vs {other:?}"
                );
            }
            let body = json!({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]});
            let r = request(
                e.gw.addr,
                "POST",
                "/v1beta/models/emb-chat:batchEmbedContents",
                &ghdr,
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                r.json()["embeddings"].as_array().map(Vec::len),
                Some(2),
                "{}",
                r.text()
            );
        }),
    ];
    each_case(cases);
}

#[test]
fn count_tokens_forwarded_or_estimated() {
    let e = env(&[
        model(
            "ct-anthropic",
            vec![(D::Anthropic, "u-ct-a;tokens=77".into())],
        ),
        model("ct-chat", vec![(D::Chat, "u-ct-c".into())]),
        model("ct-gemini", vec![(D::Gemini, "u-ct-g;tokens=55".into())]),
    ]);
    let hdr = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("Content-Type", "application/json"),
    ];
    let body = |m: &str| {
        json!({"model": m, "messages": [{"role": "user", "content": "how many tokens is this sentence"}]}).to_string()
    };
    let cases: Vec<Case<'_>> = vec![
        case("anthropic route: the upstream counts", || {
            let r = request(
                e.gw.addr,
                "POST",
                "/v1/messages/count_tokens",
                &hdr,
                body("ct-anthropic").as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["input_tokens"], 77, "{}", r.text());
            assert_eq!(e.stats()["by_endpoint"]["messages:count_tokens"], 1);
        }),
        case("openai route: a tokenizer estimate", || {
            let before = e.stats()["total"].as_u64().unwrap();
            let r = request(
                e.gw.addr,
                "POST",
                "/v1/messages/count_tokens",
                &hdr,
                body("ct-chat").as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let n = r.json()["input_tokens"].as_u64().unwrap_or(0);
            assert!((3..60).contains(&n), "an estimate of a short sentence: {n}");
            assert_eq!(
                e.stats()["total"].as_u64().unwrap(),
                before,
                "no upstream call"
            );
        }),
        case(
            "gemini client on a gemini route: countTokens forwarded",
            || {
                let b = user_body(D::Gemini, "count this").to_string();
                let r = request(
                    e.gw.addr,
                    "POST",
                    "/v1beta/models/ct-gemini:countTokens",
                    &[
                        ("x-goog-api-key", KEY),
                        ("Content-Type", "application/json"),
                    ],
                    b.as_bytes(),
                );
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(r.json()["totalTokens"], 55, "{}", r.text());
            },
        ),
    ];
    each_case(cases);
}
