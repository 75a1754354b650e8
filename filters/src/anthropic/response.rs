//! Anthropic Messages responses ⇄ the canonical response. The client gets
//! the model name it asked for, a `msg_` id, and `tool_use` as the stop
//! reason whenever the answer calls a tool.

use super::request::sanitize_tool_id;
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::lenient::{Count, Nested};
use serde::Deserialize;
use serde_json::{json, Value};

/// Anthropic usage → canonical buckets (`input_tokens` already excludes
/// cache reads and writes, which have fields of their own).
/// Fields absent from `u` keep their value in `base` (a `message_delta` may
/// restate only some of them).
/// An Anthropic `usage` object; unknown fields are ignored.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct WireUsage {
    input_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
    output_tokens: Count,
    output_tokens_details: Nested<OutputDetails>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct OutputDetails {
    thinking_tokens: Count,
}

impl WireUsage {
    /// Fields absent here keep `base` (a `message_delta` carries only what
    /// changed since `message_start`).
    fn over(self, base: Usage) -> Usage {
        Usage {
            input_uncached: self.input_tokens.0.unwrap_or(base.input_uncached),
            cache_read: self.cache_read_input_tokens.0.unwrap_or(base.cache_read),
            cache_write: self
                .cache_creation_input_tokens
                .0
                .unwrap_or(base.cache_write),
            output_total: self.output_tokens.0.unwrap_or(base.output_total),
            reasoning: self
                .output_tokens_details
                .0
                .and_then(|d| d.thinking_tokens.0)
                .unwrap_or(base.reasoning),
        }
    }
}

pub fn usage_from_wire(u: &Value, base: Usage) -> Usage {
    Nested::<WireUsage>::deserialize(u)
        .ok()
        .and_then(|n| n.0)
        .unwrap_or_default()
        .over(base)
}

/// The same, straight from the bytes of the `usage` member.
pub fn usage_from_raw(raw: &[u8], base: Usage) -> Option<Usage> {
    serde_json::from_slice::<Nested<WireUsage>>(raw)
        .ok()?
        .0
        .map(|w| w.over(base))
}

pub fn usage_to_wire(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_uncached,
        "output_tokens": u.output_total,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
    })
}

pub fn stop_from_wire(s: &str) -> FinishReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "stop_sequence" => FinishReason::StopSequence,
        "refusal" => FinishReason::ContentFilter,
        "pause_turn" => FinishReason::Pause,
        _ => FinishReason::Stop,
    }
}

pub fn stop_to_wire(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Pause => "pause_turn",
    }
}

/// A signature for reasoning the upstream did not sign; tagged so it is
/// stripped before any request to Anthropic.
pub fn synthetic_signature() -> String {
    format!("{SYNTHETIC_SIGNATURE_PREFIX}{}", new_id(""))
}

pub fn decode(body: &[u8]) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent invalid JSON: {e}")))?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream response has no content"))?;
    let mut parts = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text(TextPart {
                text: str_at(b, "text").to_owned(),
                cache: false,
            })),
            Some("thinking") => parts.push(Part::Reasoning(Reasoning {
                text: str_at(b, "thinking").to_owned(),
                signature: opt_str(b, "signature"),
                redacted: None,
            })),
            Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
                id: str_at(b, "id").to_owned(),
                name: str_at(b, "name").to_owned(),
                arguments: match b.get("input") {
                    Some(i @ Value::Object(_)) => i.to_string(),
                    _ => "{}".to_owned(),
                },
            })),
            _ => {} // server tool blocks, fallback, redacted thinking: skipped
        }
    }
    let mut finish = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, stop_from_wire);
    if parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
        finish = FinishReason::ToolCalls;
    }
    Ok(Response {
        id: str_at(&v, "id").to_owned(),
        model: str_at(&v, "model").to_owned(),
        parts,
        finish,
        stop_sequence: opt_str(&v, "stop_sequence"),
        usage: v
            .get("usage")
            .map(|u| usage_from_wire(u, Usage::default()))
            .unwrap_or_default(),
    })
}

pub fn encode(r: &Response, model: &str) -> Value {
    let mut content = Vec::new();
    // Anthropic order: thinking, text, tool use.
    for p in &r.parts {
        if let Part::Reasoning(x) = p {
            let sig = x.signature.clone().unwrap_or_else(synthetic_signature);
            content.push(json!({"type": "thinking", "thinking": x.text, "signature": sig}));
        }
    }
    let text: String = r.text();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for p in &r.parts {
        if let Part::ToolCall(c) = p {
            let input: Value = serde_json::from_str(&c.arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            content.push(json!({"type": "tool_use", "id": sanitize_tool_id(&c.id), "name": c.name, "input": input}));
        }
    }
    let finish = if r.has_tool_calls() {
        FinishReason::ToolCalls
    } else {
        r.finish
    };
    let id = if r.id.starts_with("msg_") {
        r.id.clone()
    } else {
        new_id("msg_")
    };
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": stop_to_wire(finish),
        "stop_sequence": r.stop_sequence,
        "usage": usage_to_wire(&r.usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_fields_absent_or_odd_keep_the_base() {
        let base = Usage {
            input_uncached: 10,
            cache_read: 4,
            cache_write: 2,
            output_total: 1,
            reasoning: 0,
        };
        let raw = br#"{"output_tokens": 40, "input_tokens": null, "cache_read_input_tokens": "x",
            "output_tokens_details": {"thinking_tokens": 12}, "server_tool_use": {"web_search_requests": 1}}"#;
        let expected = Usage {
            output_total: 40,
            reasoning: 12,
            ..base
        };
        assert_eq!(usage_from_raw(raw, base), Some(expected));
        let v: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(usage_from_wire(&v, base), expected);
    }

    #[test]
    fn decodes_and_reencodes_with_cache_buckets() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "real"},
                {"type": "text", "text": "a"}, {"type": "server_tool_use", "id": "s"}, {"type": "text", "text": "b"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 3}});
        let r = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.finish, FinishReason::ToolCalls);
        assert_eq!(r.usage.input_total(), 103);
        let oa = crate::openai_chat::response::encode(&r, "client");
        assert_eq!(oa["usage"]["prompt_tokens"], 103);
        assert_eq!(oa["usage"]["prompt_tokens_details"]["cached_tokens"], 90);
        assert_eq!(oa["choices"][0]["message"]["content"], "ab");
        assert_eq!(oa["choices"][0]["message"]["reasoning_content"], "hm");
        let back = encode(&r, "client");
        assert_eq!(back["content"][0]["signature"], "real");
        assert_eq!(back["content"][2]["input"], json!({"x": 1}));
        assert_eq!(back["usage"]["input_tokens"], 10);
    }

    #[test]
    fn unsigned_reasoning_gets_a_tagged_signature() {
        let r = Response {
            id: "chatcmpl-1".into(),
            model: "up".into(),
            parts: vec![Part::Reasoning(Reasoning {
                text: "t".into(),
                signature: None,
                redacted: None,
            })],
            finish: FinishReason::Length,
            stop_sequence: None,
            usage: Usage::default(),
        };
        let v = encode(&r, "c");
        assert!(is_synthetic_signature(
            v["content"][0]["signature"].as_str().unwrap()
        ));
        assert_eq!(v["stop_reason"], "max_tokens");
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    }
}
