//! One conversation log line, built by the writer from what the request
//! path handed over: the client's request as parsed JSON with secret-looking
//! fields masked, and the serving upstream's answer assembled into the
//! canonical response (text, reasoning, tool calls) by the same decoders
//! and accumulator the gateway translates with — whatever the dialect
//! pair, streamed or not.

use super::capture::{Answer, Capture};
use super::files::rfc3339_ms;
use crate::record::RequestRecord;
use filters::canonical::{Accumulator, FinishReason, Part, Response, StreamEvent, Usage};
use filters::dialect::{self, Dialect, StreamDecoder};
use filters::wire::sse::SseDecoder;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A logged request's facts, taken from its record when it ends.
#[derive(Debug)]
pub struct Entry {
    /// When the request arrived (Unix milliseconds).
    pub ts_ms: i64,
    pub ms: f64,
    pub request_id: String,
    pub key: Option<String>,
    pub dialect: Option<Dialect>,
    pub model: Option<String>,
    pub stream: bool,
    pub provider: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    pub status: u16,
    pub usage: Option<Usage>,
    pub error: Option<String>,
    pub capture: Box<Capture>,
}

impl Entry {
    pub fn of(rec: &RequestRecord, mut capture: Box<Capture>) -> Self {
        // What a failed attempt said is in the error, not an answer.
        if rec.result.served_by.is_none() {
            capture.answer = Answer::None;
        }
        let elapsed = rec.started.elapsed();
        let now = super::files::now_ms();
        let served = rec.served_by();
        Self {
            ts_ms: now.saturating_sub(i64::try_from(elapsed.as_millis()).unwrap_or(0)),
            ms: elapsed.as_secs_f64() * 1000.0,
            request_id: rec.id.clone(),
            key: rec.client.key_name.clone(),
            dialect: rec.client.dialect,
            model: rec.client.model.clone(),
            stream: rec.client.stream,
            provider: served.map(|a| a.provider.name.clone()),
            upstream_model: served.map(|a| a.model.clone()),
            status: rec.result.status,
            usage: rec.result.usage,
            error: rec.result.error.clone(),
            capture,
        }
    }
}

/// Field order is the file's: `request_id` comes early and unescaped (ids
/// are `req_` and base62), so a lookup finds it with a substring search.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    ts_ms: i64,
    request_id: &'a str,
    key: Option<&'a str>,
    dialect: Option<&'static str>,
    model: Option<&'a str>,
    stream: bool,
    provider: Option<&'a str>,
    upstream_model: Option<&'a str>,
    status: u16,
    ms: f64,
    /// The first user text, for listings.
    preview: Option<String>,
    usage: Option<Value>,
    error: Option<&'a str>,
    request: Value,
    response: Option<Value>,
}

/// Characters of the first user text a listing shows.
pub const PREVIEW_CHARS: usize = 200;
const REDACTED: &str = "[redacted]";

/// The entry as one JSON line (no newline).
pub fn render(e: &Entry) -> Result<Vec<u8>, serde_json::Error> {
    let request = match serde_json::from_slice::<Value>(&e.capture.request) {
        Ok(mut v) => {
            scrub(&mut v);
            v
        }
        // Refused before it was read as JSON: its bytes are not kept.
        Err(_) => json!({ "unparsed_bytes": e.capture.request.len() }),
    };
    let preview = first_user_text(&request).map(|t| t.chars().take(PREVIEW_CHARS).collect());
    let line = Line {
        time: rfc3339_ms(e.ts_ms),
        ts_ms: e.ts_ms,
        request_id: &e.request_id,
        key: e.key.as_deref(),
        dialect: e.dialect.map(Dialect::name),
        model: e.model.as_deref(),
        stream: e.stream,
        provider: e.provider.as_deref(),
        upstream_model: e.upstream_model.as_deref(),
        status: e.status,
        ms: (e.ms * 1000.0).round() / 1000.0,
        preview,
        usage: e.usage.map(|u| {
            json!({
                "input": u.input_total(),
                "cache_read": u.cache_read,
                "cache_write": u.cache_write,
                "output": u.output_total,
                "reasoning": u.reasoning,
            })
        }),
        error: e.error.as_deref(),
        request,
        response: assemble(&e.capture.answer),
    };
    serde_json::to_vec(&line)
}

/// The serving upstream's answer as the canonical response.
fn assemble(answer: &Answer) -> Option<Value> {
    match answer {
        Answer::None => None,
        Answer::Body { upstream, body } => Some(match dialect::decode_response(*upstream, body) {
            Ok(r) => response_json(&r, None, false),
            Err(e) => json!({ "undecodable": e.message }),
        }),
        Answer::Stream {
            upstream,
            chunks,
            truncated,
            ..
        } => {
            let mut sse = SseDecoder::new();
            let mut decoder = StreamDecoder::new(*upstream);
            let mut acc = Accumulator::default();
            let mut raw = Vec::new();
            let mut events = Vec::new();
            let mut error = None;
            let mut fold =
                |raw: &mut Vec<_>, events: &mut Vec<StreamEvent>, d: &mut StreamDecoder| {
                    for ev in raw.drain(..) {
                        d.feed(&ev, events);
                    }
                    for ev in events.drain(..) {
                        if let StreamEvent::Error(e) = &ev {
                            error = Some(e.message.clone());
                        }
                        acc.push(&ev);
                    }
                };
            for chunk in chunks {
                sse.feed(chunk, &mut raw);
                fold(&mut raw, &mut events, &mut decoder);
            }
            sse.finish(&mut raw);
            fold(&mut raw, &mut events, &mut decoder);
            if !truncated {
                decoder.finish(&mut events);
                fold(&mut raw, &mut events, &mut decoder);
            }
            let r = acc.into_response(String::new(), String::new());
            Some(response_json(&r, error.as_deref(), *truncated))
        }
    }
}

fn response_json(r: &Response, stream_error: Option<&str>, truncated: bool) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &r.parts {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::Reasoning(t) => reasoning.push_str(&t.text),
            Part::ToolCall(c) => {
                // Arguments as the object they are, when they parse.
                let arguments = serde_json::from_str::<Value>(&c.arguments)
                    .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                calls.push(json!({ "id": c.id, "name": c.name, "arguments": arguments }));
            }
            Part::Image(_) | Part::Document(_) | Part::ToolResult(_) => {}
        }
    }
    let mut v = Map::new();
    v.insert("text".into(), text.into());
    if !reasoning.is_empty() {
        v.insert("reasoning".into(), reasoning.into());
    }
    if !calls.is_empty() {
        v.insert("tool_calls".into(), calls.into());
    }
    v.insert("finish".into(), finish_name(r.finish).into());
    if let Some(e) = stream_error {
        v.insert("stream_error".into(), e.into());
    }
    if truncated {
        v.insert("truncated".into(), true.into());
    }
    Value::Object(v)
}

fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Pause => "pause",
    }
}

/// Masks every value under a secret-looking name, and every string shaped
/// like a credential, however deep. Keys travel in headers, which are
/// never logged; this is for bodies that carry one anyway.
pub fn scrub(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if secret_name(k) && !child.is_null() {
                    *child = Value::String(REDACTED.into());
                } else {
                    scrub(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::String(s) if secret_value(s) => *s = REDACTED.into(),
        _ => {}
    }
}

fn secret_name(k: &str) -> bool {
    let n: String = k
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const EXACT: [&str; 8] = [
        "authorization",
        "proxyauthorization",
        "passwd",
        "privatekey",
        "accesskey",
        "credentials",
        "cookie",
        "setcookie",
    ];
    // `…token` but not `…tokens`: `max_tokens` is a count, `access_token`
    // a credential.
    const ENDINGS: [&str; 5] = ["apikey", "secret", "secretkey", "password", "token"];
    EXACT.contains(&n.as_str()) || ENDINGS.iter().any(|e| n.ends_with(e))
}

/// A whole string shaped like a credential: a known key prefix followed by
/// a long run without spaces, or a bearer header value.
fn secret_value(s: &str) -> bool {
    if s.len() < 20 || s.len() > 512 {
        return false;
    }
    if let Some(rest) = s
        .strip_prefix("Bearer ")
        .or_else(|| s.strip_prefix("bearer "))
    {
        return !rest.contains(char::is_whitespace);
    }
    const PREFIXES: [&str; 8] = ["sk-", "sk_", "rk-", "pk-", "xai-", "AIza", "ghp_", "gsk_"];
    PREFIXES.iter().any(|p| s.starts_with(p))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The first thing a user said, in any dialect: OpenAI Chat and Anthropic
/// `messages`, Responses `input` (a string or items), Gemini `contents`.
pub fn first_user_text(req: &Value) -> Option<String> {
    if let Some(s) = req.get("input").and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    ["messages", "input", "contents"]
        .iter()
        .filter_map(|k| req.get(*k).and_then(Value::as_array))
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .find_map(|m| {
            let content = m.get("content").or_else(|| m.get("parts"))?;
            match content {
                Value::String(s) => Some(s.clone()),
                Value::Array(parts) => parts
                    .iter()
                    .find_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::to_owned),
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn scrubs_secret_names_and_credential_shaped_strings() {
        let mut v = json!({
            "model": "m",
            "max_tokens": 100,
            "api_key": "anything at all",
            "metadata": {"X-Api-Key": "k", "user_id": "u1", "access_token": "t", "Authorization": "Basic abc"},
            "messages": [
                {"role": "user", "content": "my key is sk-not-a-secret because of spaces"},
                {"role": "user", "content": "sk-proj-abcdefghijklmnopqrstuvwxyz012345"},
                {"role": "user", "content": [{"type": "text", "text": "Bearer eyJhbGciOiJIUzI1NiJ9.abc"}]},
            ],
            "usage_tokens": null,
            "tool_call_id": "call_abcdefghijklmnopqrstuvwxyz",
        });
        scrub(&mut v);
        assert_eq!(v["api_key"], REDACTED);
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["metadata"]["X-Api-Key"], REDACTED);
        assert_eq!(v["metadata"]["access_token"], REDACTED);
        assert_eq!(v["metadata"]["Authorization"], REDACTED);
        assert_eq!(v["metadata"]["user_id"], "u1");
        assert_eq!(
            v["messages"][0]["content"],
            "my key is sk-not-a-secret because of spaces"
        );
        assert_eq!(v["messages"][1]["content"], REDACTED);
        assert_eq!(v["messages"][2]["content"][0]["text"], REDACTED);
        assert_eq!(v["usage_tokens"], Value::Null);
        assert_eq!(v["tool_call_id"], "call_abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn finds_the_first_user_text_in_every_dialect() {
        let chat = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello chat"},
            {"role": "user", "content": "later"}]});
        assert_eq!(first_user_text(&chat).as_deref(), Some("hello chat"));
        let anthropic = json!({"system": "s", "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hello claude"}]}]});
        assert_eq!(first_user_text(&anthropic).as_deref(), Some("hello claude"));
        let responses = json!({"input": "hello responses"});
        assert_eq!(
            first_user_text(&responses).as_deref(),
            Some("hello responses")
        );
        let items = json!({"input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello items"}]}]});
        assert_eq!(first_user_text(&items).as_deref(), Some("hello items"));
        let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]});
        assert_eq!(first_user_text(&gemini).as_deref(), Some("hello gemini"));
        assert_eq!(first_user_text(&json!({"messages": []})), None);
    }

    fn entry(request: &'static [u8], answer: Answer) -> Entry {
        Entry {
            ts_ms: 1_764_720_000_000,
            ms: 12.5,
            request_id: "req_abc".into(),
            key: Some("alice".into()),
            dialect: Some(Dialect::Anthropic),
            model: Some("m".into()),
            stream: true,
            provider: Some(Arc::from("openai")),
            upstream_model: Some(Arc::from("up")),
            status: 200,
            usage: None,
            error: None,
            capture: Box::new(Capture {
                request: Bytes::from_static(request),
                answer,
            }),
        }
    }

    #[test]
    fn a_stream_is_assembled_across_any_chunk_boundaries() {
        let sse = concat!(
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for cut in [1, 7, 64, sse.len()] {
            let chunks: Vec<Bytes> = sse
                .as_bytes()
                .chunks(cut)
                .map(Bytes::copy_from_slice)
                .collect();
            let e = entry(
                br#"{"model":"m","x-api-key":"sk-ant-abcdefghijklmnopqrstuvwxyz","messages":[{"role":"user","content":"hi"}]}"#,
                Answer::Stream {
                    upstream: Dialect::OpenAiChat,
                    bytes: sse.len(),
                    chunks,
                    truncated: false,
                },
            );
            let v: Value = serde_json::from_slice(&render(&e).unwrap()).unwrap();
            assert_eq!(v["response"]["text"], "Hello", "cut {cut}");
            assert_eq!(
                v["response"]["tool_calls"],
                json!([{"id": "call_1", "name": "get", "arguments": {"a": 1}}])
            );
            assert_eq!(v["response"]["finish"], "tool_calls");
            assert_eq!(v["request"]["x-api-key"], REDACTED);
            assert_eq!(v["preview"], "hi");
            assert_eq!(v["time"], "2025-12-03T00:00:00.000Z");
            assert_eq!(v["key"], "alice");
            assert_eq!(v["provider"], "openai");
        }
    }

    #[test]
    fn a_body_is_decoded_and_a_broken_request_is_not_kept() {
        let body = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"up","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Yes."}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#,
        );
        let e = entry(
            b"{not json",
            Answer::Body {
                upstream: Dialect::Anthropic,
                body,
            },
        );
        let line = render(&e).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["response"]["text"], "Yes.");
        assert_eq!(v["response"]["reasoning"], "hmm");
        assert_eq!(v["response"]["finish"], "stop");
        assert_eq!(v["request"], json!({"unparsed_bytes": 9}));
        assert!(std::str::from_utf8(&line).unwrap().starts_with(
            r#"{"time":"2025-12-03T00:00:00.000Z","ts_ms":1764720000000,"request_id":"req_abc","#
        ));
    }
}
