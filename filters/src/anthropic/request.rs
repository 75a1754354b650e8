//! Anthropic Messages requests ⇄ the canonical request. What only Anthropic
//! understands (server tools, deferred placeholders) is dropped on the way in;
//! what it cannot take (`n > 1`) is a 400 on the way out.

use crate::canonical::*;
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Value,
    max_tokens: Option<u64>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    thinking: Option<Value>,
    output_config: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Value,
}

fn text_of(v: &Value) -> Option<&str> {
    v.get("text").and_then(Value::as_str)
}

fn media(source: &Value, at: &str) -> Result<Media, ApiError> {
    let field = |k: &str| source.get(k).and_then(Value::as_str).map(str::to_owned);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(Media::Base64 {
            mime: field("media_type").unwrap_or_else(|| "application/octet-stream".into()),
            data: field("data")
                .ok_or_else(|| ApiError::invalid(format!("{at}.source.data is required")))?,
        }),
        Some("url") => Ok(Media::Url(field("url").ok_or_else(|| {
            ApiError::invalid(format!("{at}.source.url is required"))
        })?)),
        Some("text") => Ok(Media::Text(field("data").unwrap_or_default())),
        Some("content") => Ok(Media::Text(
            source
                .get("content")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(text_of).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default(),
        )),
        other => Err(ApiError::invalid(format!(
            "{at}.source.type '{}' is not supported",
            other.unwrap_or("?")
        ))),
    }
}

fn blocks(content: &Value, at: &str) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(a) => Ok(a.clone()),
        _ => Err(ApiError::invalid(format!(
            "{at}: expected a string or an array of content blocks"
        ))),
    }
}

fn is_cached(b: &Value) -> bool {
    b.get("cache_control").is_some_and(|c| !c.is_null())
}

fn tool_result_content(v: Option<&Value>, at: &str) -> Result<Vec<Part>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(TextPart {
            text: s.clone(),
            cache: false,
        })]),
        Some(Value::Array(items)) => {
            let mut parts = Vec::new();
            for (i, b) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => parts.push(Part::Text(TextPart {
                        text: text_of(b).unwrap_or_default().to_owned(),
                        cache: false,
                    })),
                    Some("image") => parts.push(Part::Image(media(
                        b.get("source").unwrap_or(&Value::Null),
                        &at,
                    )?)),
                    Some("document") => parts.push(Part::Document(media(
                        b.get("source").unwrap_or(&Value::Null),
                        &at,
                    )?)),
                    _ => {} // search results and the like: nothing to carry
                }
            }
            Ok(parts)
        }
        Some(_) => Err(ApiError::invalid(format!(
            "{at}: expected a string or an array"
        ))),
    }
}

/// Decodes a client's Messages body.
pub fn decode(body: &[u8]) -> Result<Request, ApiError> {
    let w: WireRequest = crate::error::parse_body(body)?;
    let mut req = Request {
        model: w.model,
        stream: w.stream.unwrap_or(false),
        include_usage: true,
        ..Request::default()
    };
    req.system = decode_system(&w.system)?;
    for (i, m) in w.messages.iter().enumerate() {
        decode_message(i, m, &mut req.messages)?;
    }
    if req.messages.is_empty() {
        return Err(
            ApiError::invalid("messages: at least one message is required").with_param("messages"),
        );
    }
    req.tools = decode_tools(w.tools.unwrap_or_default());
    if let Some(tc) = w.tool_choice.filter(|v| !v.is_null()) {
        decode_tool_choice(&tc, &mut req)?;
    }
    req.sampling = Sampling {
        max_output_tokens: w.max_tokens,
        temperature: w.temperature,
        top_p: w.top_p,
        top_k: w.top_k,
        stop: w.stop_sequences.unwrap_or_default(),
        ..Sampling::default()
    };
    req.reasoning = decode_reasoning(w.thinking.as_ref(), w.output_config.as_ref());
    req.output_format = w
        .output_config
        .as_ref()
        .and_then(|o| o.get("format"))
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .map(|f| OutputFormat::JsonSchema {
            name: "output".into(),
            schema: f.get("schema").cloned().unwrap_or_else(|| json!({})),
            strict: None,
        });
    Ok(req)
}

/// Decodes `system`: a string or an array of text blocks.
fn decode_system(system: &Value) -> Result<Vec<TextPart>, ApiError> {
    Ok(match system {
        Value::Null => Vec::new(),
        Value::String(s) => vec![TextPart {
            text: s.clone(),
            cache: false,
        }],
        Value::Array(a) => a
            .iter()
            .filter_map(|b| {
                text_of(b).map(|t| TextPart {
                    text: t.to_owned(),
                    cache: is_cached(b),
                })
            })
            .collect(),
        _ => {
            return Err(
                ApiError::invalid("system: expected a string or an array of text blocks")
                    .with_param("system"),
            )
        }
    })
}

/// Decodes message `i`; its tool results become a `Role::Tool` message first.
fn decode_message(i: usize, m: &WireMessage, messages: &mut Vec<Message>) -> Result<(), ApiError> {
    let at = format!("messages[{i}].content");
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        other => {
            return Err(ApiError::invalid(format!(
                "messages[{i}].role: unsupported role '{other}'"
            )))
        }
    };
    let mut parts = Vec::new();
    let mut results = Vec::new();
    for (j, b) in blocks(&m.content, &at)?.iter().enumerate() {
        let at = format!("{at}[{j}]");
        decode_block(b, &at, &mut parts, &mut results)?;
    }
    let had_results = !results.is_empty();
    if had_results {
        messages.push(Message {
            role: Role::Tool,
            parts: results,
        });
    }
    if !parts.is_empty() || !had_results {
        messages.push(Message { role, parts });
    }
    Ok(())
}

/// Decodes one content block into `parts`, or into `results` for a tool result.
fn decode_block(
    b: &Value,
    at: &str,
    parts: &mut Vec<Part>,
    results: &mut Vec<Part>,
) -> Result<(), ApiError> {
    let ty = b.get("type").and_then(Value::as_str);
    match ty {
        Some("text") => parts.push(Part::Text(TextPart {
            text: text_of(b)
                .ok_or_else(|| ApiError::invalid(format!("{at}.text must be a string")))?
                .to_owned(),
            cache: is_cached(b),
        })),
        Some("image") => parts.push(Part::Image(media(
            b.get("source").unwrap_or(&Value::Null),
            at,
        )?)),
        Some("document") => parts.push(Part::Document(media(
            b.get("source").unwrap_or(&Value::Null),
            at,
        )?)),
        Some("thinking") => parts.push(Part::Reasoning(Reasoning {
            text: str_at(b, "thinking").to_owned(),
            signature: opt_str(b, "signature"),
            redacted: None,
        })),
        Some("redacted_thinking") => parts.push(Part::Reasoning(Reasoning {
            text: String::new(),
            signature: None,
            redacted: opt_str(b, "data"),
        })),
        Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
            id: str_at(b, "id").to_owned(),
            name: str_at(b, "name").to_owned(),
            arguments: arguments_text(b.get("input").unwrap_or(&Value::Null))
                .map_err(|e| e.with_param(format!("{at}.input")))?,
        })),
        Some("tool_result") => results.push(Part::ToolResult(ToolResult {
            call_id: b
                .get("tool_use_id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(format!("{at}.tool_use_id is required")))?
                .to_owned(),
            content: tool_result_content(b.get("content"), &format!("{at}.content"))?,
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        })),
        // Server tool blocks and future types carry nothing another
        // provider could use.
        _ => {}
    }
    Ok(())
}

/// Decodes `tools`, keeping only custom tools that are loaded now.
fn decode_tools(tools: Vec<Value>) -> Vec<Tool> {
    let mut out = Vec::new();
    for t in tools {
        // Server and typed tools (web_search_*, bash_*, …) and deferred
        // placeholders mean nothing to another provider.
        let custom = matches!(t.get("type").and_then(Value::as_str), None | Some("custom"));
        let deferred = t
            .get("defer_loading")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !custom || deferred {
            continue;
        }
        out.push(Tool {
            name: name.to_owned(),
            description: opt_str(&t, "description"),
            schema: t
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.get("strict").and_then(Value::as_bool),
        });
    }
    out
}

/// Decodes a non-null `tool_choice` into the choice and `parallel_tool_calls`.
fn decode_tool_choice(tc: &Value, req: &mut Request) -> Result<(), ApiError> {
    req.tool_choice = match tc.get("type").and_then(Value::as_str) {
        Some("auto") => Some(ToolChoice::Auto),
        Some("any") => Some(ToolChoice::Required),
        Some("none") => Some(ToolChoice::None),
        Some("tool") => Some(ToolChoice::Named(
            tc.get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid("tool_choice.name is required").with_param("tool_choice")
                })?
                .to_owned(),
        )),
        _ => {
            return Err(
                ApiError::invalid("tool_choice.type must be auto, any, tool or none")
                    .with_param("tool_choice"),
            )
        }
    };
    if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        req.parallel_tool_calls = Some(false);
    }
    Ok(())
}

/// Decodes `thinking` and `output_config.effort` into a reasoning config.
fn decode_reasoning(
    thinking: Option<&Value>,
    output_config: Option<&Value>,
) -> Option<ReasoningConfig> {
    let effort = output_config
        .and_then(|o| o.get("effort"))
        .and_then(Value::as_str)
        .and_then(Effort::parse);
    match thinking.and_then(|t| t.get("type")).and_then(Value::as_str) {
        Some("enabled") => Some(ReasoningConfig {
            effort,
            budget_tokens: thinking
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64),
        }),
        Some("adaptive") => Some(ReasoningConfig {
            effort: effort.or(Some(Effort::Medium)),
            budget_tokens: None,
        }),
        _ => None,
    }
}

/// Anthropic's `tool_use.id` pattern is `^[a-zA-Z0-9_-]+$` (Kimi sends
/// `functions.Bash:0`). Deterministic, so a call and its result still match.
pub fn sanitize_tool_id(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return id.to_owned();
    }
    if id.is_empty() {
        return new_id("toolu_");
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Anthropic requires `max_tokens`; used when the client sent none.
    pub default_max_tokens: u64,
    /// Send mid-conversation system messages as `role:"system"` (only some
    /// models accept it) instead of demoting them to user text.
    pub mid_system: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            default_max_tokens: 8192,
            mid_system: false,
        }
    }
}

fn media_source(m: &Media) -> Value {
    match m {
        Media::Base64 { mime, data } => json!({"type": "base64", "media_type": mime, "data": data}),
        Media::Url(u) => json!({"type": "url", "url": u}),
        Media::Text(t) => json!({"type": "text", "media_type": "text/plain", "data": t}),
    }
}

fn text_block(t: &TextPart) -> Value {
    let mut b = json!({"type": "text", "text": t.text});
    if t.cache {
        b["cache_control"] = json!({"type": "ephemeral"});
    }
    b
}

fn content_block(p: &Part) -> Result<Option<Value>, ApiError> {
    Ok(Some(match p {
        Part::Text(t) if t.text.is_empty() => return Ok(None),
        Part::Text(t) => text_block(t),
        Part::Image(m) => json!({"type": "image", "source": media_source(m)}),
        Part::Document(m) => json!({"type": "document", "source": media_source(m)}),
        Part::ToolCall(c) => {
            let input: Value = serde_json::from_str(&c.arguments).map_err(|_| {
                ApiError::invalid(format!(
                    "tool call '{}' has arguments that are not a JSON object",
                    c.id
                ))
            })?;
            json!({"type": "tool_use", "id": sanitize_tool_id(&c.id), "name": c.name, "input": input})
        }
        Part::ToolResult(r) => {
            let content: Vec<Value> = r
                .content
                .iter()
                .filter_map(|p| content_block(p).ok().flatten())
                .collect();
            let mut b = json!({"type": "tool_result", "tool_use_id": sanitize_tool_id(&r.call_id), "content": content});
            if r.is_error {
                b["is_error"] = json!(true);
            }
            b
        }
        // Only signatures minted by Anthropic may go back: it rejects any
        // other with a 400.
        Part::Reasoning(r) => match (&r.signature, &r.redacted) {
            (_, Some(data)) => json!({"type": "redacted_thinking", "data": data}),
            (Some(sig), None) => match signature_issued_by(sig, Issuer::Anthropic) {
                Some(sig) => json!({"type": "thinking", "thinking": r.text, "signature": sig}),
                None => return Ok(None),
            },
            _ => return Ok(None),
        },
    }))
}

/// Encodes the canonical request as a Messages body for `model`.
pub fn encode(
    req: &Request,
    model: &str,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
) -> Result<Value, ApiError> {
    if req.sampling.n.is_some_and(|n| n > 1) {
        return Err(ApiError::invalid("n must be 1 for this model").with_param("n"));
    }
    let messages = encode_messages(req, opts)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        Value::Array(
            messages
                .into_iter()
                .map(|(r, c)| json!({"role": r, "content": c}))
                .collect(),
        ),
    );
    if !req.system.is_empty() {
        out.insert(
            "system".into(),
            Value::Array(req.system.iter().map(text_block).collect()),
        );
    }
    encode_sampling(req, opts, max_output_cap, &mut out);
    encode_tools(req, &mut out);
    if let Some(OutputFormat::JsonSchema { schema, .. }) = &req.output_format {
        out.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

/// Encodes the conversation as (role, content blocks) turns.
fn encode_messages(
    req: &Request,
    opts: &EncodeOptions,
) -> Result<Vec<(&'static str, Vec<Value>)>, ApiError> {
    // Consecutive same-role turns are merged; tool results open the user
    // turn they belong to.
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
            Role::System if opts.mid_system => "system",
            Role::System => "user",
        };
        let mut blocks = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            if let Some(b) = content_block(p)? {
                blocks.push(b);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((r, prev)) if *r == role => {
                if m.role == Role::Tool {
                    // results go after earlier results, before any text
                    let at = prev
                        .iter()
                        .take_while(|b| b["type"] == "tool_result")
                        .count();
                    prev.splice(at..at, blocks);
                } else {
                    prev.extend(blocks);
                }
            }
            _ => messages.push((role, blocks)),
        }
    }
    Ok(messages)
}

/// The thinking budget to send, if thinking is asked for and allowed.
fn thinking_budget(req: &Request) -> Option<u64> {
    let forced_tool = matches!(
        req.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named(_))
    );
    // Thinking needs the open tool loop to start with a signed thinking
    // block; history from another provider cannot have one, so thinking is
    // left off for it (Anthropic would answer 400).
    let unsigned_tool_history = req.messages.iter().any(|m| {
        m.role == Role::Assistant
            && m.parts.iter().any(|p| matches!(p, Part::ToolCall(_)))
            && !m.parts.iter().any(|p| matches!(p, Part::Reasoning(r) if r.signature.as_deref().is_some_and(|s| signature_issued_by(s, Issuer::Anthropic).is_some())))
    });
    req.reasoning
        .and_then(|r| {
            r.budget_tokens
                .or_else(|| r.effort.and_then(Effort::budget_tokens))
        })
        .filter(|_| !forced_tool && !unsigned_tool_history)
        .map(|b| b.max(1024))
}

/// Encodes `thinking`, `max_tokens` and the sampling parameters.
fn encode_sampling(
    req: &Request,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
    out: &mut Map<String, Value>,
) {
    let mut max_tokens = req
        .sampling
        .max_output_tokens
        .unwrap_or(opts.default_max_tokens);
    if let Some(cap) = max_output_cap {
        max_tokens = max_tokens.min(cap);
    }
    if let Some(b) = thinking_budget(req) {
        max_tokens = max_tokens.max(b + 1024);
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": b}),
        );
    } else {
        if let Some(t) = req.sampling.temperature {
            out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
        if let Some(k) = req.sampling.top_k {
            out.insert("top_k".into(), json!(k));
        }
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(p) = req.sampling.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if !req.sampling.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.sampling.stop));
    }
}

/// Encodes `tools` and `tool_choice` (with `disable_parallel_tool_use`).
fn encode_tools(req: &Request, out: &mut Map<String, Value>) {
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut v = json!({"name": t.name, "input_schema": t.schema});
                if let Some(d) = &t.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match &req.tool_choice {
        None if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() => {
            Some(json!({"type": "auto"}))
        }
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n})),
    };
    if let Some(c) = choice.as_mut() {
        if req.parallel_tool_calls == Some(false) && c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
        out.insert("tool_choice".into(), c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_shapes_decode() {
        let body = json!({
            "model": "claude-x", "max_tokens": 32000, "stream": true,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                       {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "<system-reminder>hi</system-reminder>"}]},
                {"role": "system", "content": "environment"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "plan", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb", "is_error": false, "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "go on"}]}
            ],
            "tools": [
                {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                {"name": "Deferred", "input_schema": {"type": "object"}, "defer_loading": true},
                {"type": "web_search_20250305", "name": "web_search"}],
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": []},
            "metadata": {"user_id": "{\"device\":1}"}
        });
        let req = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!(req.system.len(), 2);
        assert!(req.system[1].cache);
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![
                Role::User,
                Role::System,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
        assert!(
            matches!(&req.messages[2].parts[1], Part::ToolCall(c) if c.arguments == r#"{"command":"ls"}"#)
        );
        assert!(matches!(&req.messages[3].parts[0], Part::ToolResult(r) if r.call_id == "toolu_1"));
        assert_eq!(req.tools.len(), 1);
        assert_eq!(req.reasoning.unwrap().effort, Some(Effort::High));
    }

    #[test]
    fn encode_merges_tool_results_into_one_user_turn_first() {
        let req = crate::openai_chat::request::decode(
            json!({"model": "m", "n": 1, "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "checking", "tool_calls": [
                    {"id": "functions.get:0", "type": "function", "function": {"name": "get", "arguments": "{\"c\":\"a\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "functions.get:0", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
                {"role": "user", "content": "thanks"}
            ], "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
               "parallel_tool_calls": false, "temperature": 1.7})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let v = encode(&req, "claude-up", &EncodeOptions::default(), None).unwrap();
        assert_eq!(v["system"], json!([{"type": "text", "text": "sys"}]));
        assert_eq!(v["max_tokens"], 8192);
        assert_eq!(v["temperature"], 1.0);
        assert_eq!(
            v["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let msgs = v["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][1]["id"], "functions_get_0");
        assert_eq!(msgs[1]["content"][1]["input"], json!({"c": "a"}));
        let user = msgs[2]["content"].as_array().unwrap();
        assert_eq!(user[0]["type"], "tool_result");
        assert_eq!(user[0]["tool_use_id"], "functions_get_0");
        assert_eq!(user[1]["tool_use_id"], "call_2");
        assert_eq!(user[2], json!({"type": "text", "text": "thanks"}));
    }

    #[test]
    fn thinking_only_with_real_signatures_and_never_with_forced_tools() {
        let mut req = decode(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": format!("{SYNTHETIC_SIGNATURE_PREFIX}x")}, {"type": "text", "text": "hi"}]},
            {"role": "user", "content": "more"}]}).to_string().as_bytes()).unwrap();
        req.reasoning = Some(ReasoningConfig {
            effort: Some(Effort::Low),
            budget_tokens: None,
        });
        let v = encode(&req, "m", &EncodeOptions::default(), None).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            json!([{"type": "text", "text": "hi"}])
        );
        assert_eq!(v["thinking"]["budget_tokens"], 2048);
        assert!(v["max_tokens"].as_u64().unwrap() > 2048);
        req.tool_choice = Some(ToolChoice::Required);
        let v = encode(&req, "m", &EncodeOptions::default(), None).unwrap();
        assert!(v.get("thinking").is_none());
        req.sampling.n = Some(2);
        assert!(encode(&req, "m", &EncodeOptions::default(), None).is_err());
    }
}
