//! Gemini (`/v1beta/models/{model}:generateContent` and friends): what a
//! request asks, and the answer as a `GenerateContentResponse`, whole or as
//! stream chunks (SSE with `alt=sse`, else the REST API's JSON array).

use crate::plan::{Inputs, Plan};
use serde_json::{json, Value};

/// The signature the mock mints for Gemini thoughts and calls: base64 (of
/// `mock-gemini-signature`), as google-genai validates it as bytes.
pub(crate) const SIGNATURE: &str = "bW9jay1nZW1pbmktc2lnbmF0dXJl";

/// The action after the model in a Gemini path.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Action {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "generateContent" => Self::Generate,
            "streamGenerateContent" => Self::Stream,
            "countTokens" => Self::CountTokens,
            "embedContent" => Self::Embed,
            "batchEmbedContents" => Self::BatchEmbed,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Generate => "generateContent",
            Self::Stream => "streamGenerateContent",
            Self::CountTokens => "countTokens",
            Self::Embed => "embedContent",
            Self::BatchEmbed => "batchEmbedContents",
        }
    }
}

/// `%XX` escapes decoded (a model name such as `mock%3Bcalls%3D3`).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|&c| (c as char).to_digit(16));
        if c == b'%' {
            if let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter's value (`alt`, `key`), decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// Text of a Gemini `parts` array (thoughts left out).
fn parts_text(parts: Option<&Value>) -> String {
    parts
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// What a `functionResponse` said: `response.result` when it is a string,
/// else the whole `response` as JSON.
fn function_response_text(fr: &Value) -> String {
    let resp = fr.get("response").unwrap_or(&Value::Null);
    match resp.get("result") {
        Some(Value::String(s)) => s.clone(),
        _ => resp.to_string(),
    }
}

/// `contents` and `tools[].functionDeclarations`.
pub(crate) fn inputs(req: &Value) -> Inputs {
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let role = |c: &Value| {
        c.get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_owned()
    };
    // Tool results in the last (user) turn, as Anthropic's tool_result blocks.
    let mut results = Vec::new();
    if let Some(last) = contents.last().filter(|c| role(c) != "model") {
        for p in last
            .get("parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(fr) = p
                .get("functionResponse")
                .or_else(|| p.get("function_response"))
            {
                results.push(function_response_text(fr));
            }
        }
    }
    let last_user = contents
        .iter()
        .rev()
        .find(|c| role(c) == "user")
        .map(|c| parts_text(c.get("parts")))
        .unwrap_or_default();
    let offered: Vec<(String, Value)> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    t.get("functionDeclarations")
                        .or_else(|| t.get("function_declarations"))
                        .and_then(Value::as_array)
                })
                .flatten()
                .filter_map(|d| {
                    let name = d.get("name").and_then(Value::as_str)?;
                    let schema = d
                        .get("parametersJsonSchema")
                        .or_else(|| d.get("parameters"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    Some((name.to_owned(), lower_types(schema)))
                })
                .collect()
        })
        .unwrap_or_default();
    let (tools, schemas) = offered.into_iter().unzip();
    Inputs {
        results,
        last_user,
        tools,
        schemas,
    }
}

/// A schema with its `type` names in lower case (Gemini's `parameters`
/// may say `ARRAY`, `STRING`).
fn lower_types(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| match (k.as_str(), x) {
                    ("type", Value::String(t)) => (k, Value::String(t.to_ascii_lowercase())),
                    (_, x) => (k, lower_types(x)),
                })
                .collect(),
        ),
        Value::Array(xs) => Value::Array(xs.into_iter().map(lower_types).collect()),
        x => x,
    }
}

/// Google's status name for an HTTP status.
pub(crate) fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// `{"error":{"code","message","status"}}`, with a RetryInfo detail when
/// `retry_delay` is given.
pub(crate) fn error_body(status: u16, msg: &str, retry_delay: Option<&str>) -> Value {
    let mut e = json!({"error": {"code": status, "message": msg, "status": status_name(status)}});
    if let Some(d) = retry_delay {
        e["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{d}s")}]);
    }
    e
}

fn thoughts_tokens(plan: &Plan) -> u64 {
    if plan.reasoning.is_some() {
        5
    } else {
        0
    }
}

/// The full `usageMetadata` (prompt includes cached; candidates exclude
/// thoughts).
fn usage(plan: &Plan) -> Value {
    let prompt = plan.prompt_tokens + plan.cached;
    let thoughts = thoughts_tokens(plan);
    let candidates = plan.completion_tokens().saturating_sub(thoughts);
    json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates, "thoughtsTokenCount": thoughts,
           "cachedContentTokenCount": plan.cached, "totalTokenCount": prompt + candidates + thoughts})
}

fn thought_part(plan: &Plan, r: &str) -> Value {
    let mut p = json!({"text": r, "thought": true});
    if plan.signature_on_thought {
        p["thoughtSignature"] = json!(SIGNATURE);
    }
    p
}

fn call_part(plan: &Plan, i: usize, name: &str, args: &str) -> Value {
    let args: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
    let mut p = json!({"functionCall": {"name": name, "args": args}});
    if i == 0 && plan.signature_on_call {
        p["thoughtSignature"] = json!(SIGNATURE);
    }
    p
}

fn response(parts: Vec<Value>, finish: Option<&str>, usage: Value, model: &str) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
    }
    json!({"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": "mock-gemini-response"})
}

/// The whole answer: thought, then text or calls, `finishReason: STOP`.
pub(crate) fn body(plan: &Plan, model: &str) -> Value {
    let mut parts = Vec::new();
    if let Some(r) = &plan.reasoning {
        parts.push(thought_part(plan, r));
    }
    if plan.calls.is_empty() {
        parts.push(json!({"text": plan.text()}));
    }
    for (i, (_, name, args)) in plan.calls.iter().enumerate() {
        parts.push(call_part(plan, i, name, args));
    }
    response(parts, Some(finish_reason(plan)), usage(plan), model)
}

/// `STOP`, or `MAX_TOKENS` with `finish=length`.
fn finish_reason(plan: &Plan) -> &'static str {
    if plan.truncated && plan.calls.is_empty() {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

/// The stream's chunks: a thought, each text piece, each call (all calls
/// in one chunk with `interleave=1`); the last carries `finishReason` and
/// the full usage, the others a prompt-only usage. `sse`: `data: …\r\n\r\n`
/// events; else the pieces of one JSON array (`[`, `,\r\n`, `]`), its
/// closing `]` the last element.
pub(crate) fn events(plan: &Plan, model: &str, sse: bool) -> Vec<String> {
    let mut chunks: Vec<Vec<Value>> = Vec::new();
    let thoughts = plan.reasoning_pieces();
    let last_thought = thoughts.len().saturating_sub(1);
    for (i, r) in thoughts.iter().enumerate() {
        // The signature rides the last thought piece, as Gemini sends it.
        let mut part = thought_part(plan, r);
        if i != last_thought {
            if let Some(p) = part.as_object_mut() {
                p.remove("thoughtSignature");
            }
        }
        chunks.push(vec![part]);
    }
    for p in &plan.pieces {
        chunks.push(vec![json!({"text": p})]);
    }
    let calls: Vec<Value> = plan
        .calls
        .iter()
        .enumerate()
        .map(|(i, (_, name, args))| call_part(plan, i, name, args))
        .collect();
    if plan.interleave && !calls.is_empty() {
        chunks.push(calls);
    } else {
        chunks.extend(calls.into_iter().map(|c| vec![c]));
    }
    if plan.pieces.is_empty() && plan.calls.is_empty() {
        chunks.push(vec![json!({"text": ""})]);
    }
    let prompt = plan.prompt_tokens + plan.cached;
    let n = chunks.len();
    let mut out: Vec<String> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let last = i + 1 == n;
            let v = if last {
                response(parts, Some(finish_reason(plan)), usage(plan), model)
            } else {
                response(
                    parts,
                    None,
                    json!({"promptTokenCount": prompt, "totalTokenCount": prompt}),
                    model,
                )
            };
            frame(&v, sse, i == 0)
        })
        .collect();
    if !sse {
        out.push("]".to_owned());
    }
    out
}

/// One chunk framed: an SSE event, or an element of the JSON array.
pub(crate) fn frame(v: &Value, sse: bool, first: bool) -> String {
    match (sse, first) {
        (true, _) => format!("data: {v}\r\n\r\n"),
        (false, true) => format!("[{v}"),
        (false, false) => format!(",\r\n{v}"),
    }
}

/// The in-stream error at event `at`: an SSE `data: {"error":…}`, or the
/// array's last element.
pub(crate) fn error_event(sse: bool, at: usize) -> String {
    let e = error_body(503, "mock: overloaded mid-stream", None);
    let mut s = frame(&e, sse, at == 0);
    if !sse {
        s.push(']');
    }
    s
}

/// A broken chunk at event `at`.
pub(crate) fn malformed_event(sse: bool, at: usize) -> String {
    match (sse, at) {
        (true, _) => "data: {\"candidates\": [\r\n\r\n".to_owned(),
        (false, 0) => "[{\"candidates\": [".to_owned(),
        (false, _) => ",\r\n{\"candidates\": [".to_owned(),
    }
}

fn model_entry(name: &str) -> Value {
    let embed = name.contains("embed");
    let methods: &[&str] = if embed {
        &["embedContent", "batchEmbedContents"]
    } else {
        &["generateContent", "streamGenerateContent", "countTokens"]
    };
    json!({"name": format!("models/{name}"), "version": "001", "displayName": format!("Mock {name}"),
           "description": "A model of the mock upstream", "inputTokenLimit": 1_048_576,
           "outputTokenLimit": 65_536, "supportedGenerationMethods": methods, "thinking": !embed})
}

/// `GET /v1beta/models` (`one`: `GET /v1beta/models/{model}`).
pub(crate) fn models(one: Option<&str>) -> Value {
    match one {
        Some(m) => model_entry(m.strip_prefix("models/").unwrap_or(m)),
        None => json!({"models": [model_entry("mock"), model_entry("mock-embedding")]}),
    }
}
