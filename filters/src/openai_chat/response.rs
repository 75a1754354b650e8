//! OpenAI Chat Completions responses ⇄ the canonical response. The client
//! gets the model name it asked for, a `chatcmpl-` id, and `content: null`
//! when the turn is tool calls only.

use crate::canonical::*;
use crate::error::ApiError;
use crate::wire::lenient::{Count, Nested};
use serde::Deserialize;
use serde_json::{json, Value};

/// OpenAI usage → canonical buckets (`prompt_tokens` includes cached
/// tokens, so they are subtracted to get the uncached input).
/// An OpenAI `usage` object; unknown fields are ignored.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct WireUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    prompt_tokens_details: Nested<PromptDetails>,
    completion_tokens_details: Nested<CompletionDetails>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        let n = |c: Count| c.0.unwrap_or(0);
        let prompt = w.prompt_tokens_details.0.unwrap_or_default();
        let (cached, cache_write) = (n(prompt.cached_tokens), n(prompt.cache_write_tokens));
        Usage {
            input_uncached: n(w.prompt_tokens).saturating_sub(cached.saturating_add(cache_write)),
            cache_read: cached,
            cache_write,
            output_total: n(w.completion_tokens),
            reasoning: n(w
                .completion_tokens_details
                .0
                .unwrap_or_default()
                .reasoning_tokens),
        }
    }
}

pub fn usage_from_wire(u: &Value) -> Usage {
    Nested::<WireUsage>::deserialize(u)
        .ok()
        .and_then(|n| n.0)
        .unwrap_or_default()
        .into()
}

/// The same, straight from the bytes of the `usage` member.
pub fn usage_from_raw(raw: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<Nested<WireUsage>>(raw)
        .ok()?
        .0
        .map(Usage::from)
}

pub fn usage_to_wire(u: &Usage) -> Value {
    let prompt = u.input_total();
    let mut prompt_details = json!({"cached_tokens": u.cache_read});
    if u.cache_write > 0 {
        prompt_details["cache_write_tokens"] = json!(u.cache_write);
    }
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_total,
        "total_tokens": prompt.saturating_add(u.output_total),
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

pub fn finish_from_wire(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

pub fn finish_to_wire(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::StopSequence | FinishReason::Pause => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Reads an upstream's non-streaming completion.
pub fn decode(body: &[u8]) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            crate::error::ErrorKind::Api,
            format!("upstream sent invalid JSON: {e}"),
        )
    })?;
    let choice = v.pointer("/choices/0").ok_or_else(|| {
        ApiError::new(
            crate::error::ErrorKind::Api,
            "upstream response has no choices",
        )
    })?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    let reasoning = msg
        .get("reasoning_content")
        .or_else(|| msg.get("reasoning"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(r) = reasoning {
        parts.push(Part::Reasoning(Reasoning {
            text: r.to_owned(),
            signature: None,
            redacted: None,
        }));
    }
    for key in ["content", "refusal"] {
        if let Some(t) = msg
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            parts.push(Part::Text(TextPart {
                text: t.to_owned(),
                cache: false,
            }));
        }
    }
    for tc in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let args = tc.pointer("/function/arguments").unwrap_or(&Value::Null);
        parts.push(Part::ToolCall(ToolCall {
            id: tc
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| new_id("call_"), str::to_owned),
            name: tc
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: match args {
                Value::String(s) if s.trim().is_empty() => "{}".to_owned(),
                Value::String(s) => s.clone(),
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            },
        }));
    }
    let mut finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, finish_from_wire);
    // Tool calls mean `tool_calls` whatever the upstream said (some say
    // `stop`); otherwise agent loops end after the first call.
    if parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
        finish = FinishReason::ToolCalls;
    }
    Ok(Response {
        id: str_at(&v, "id").to_owned(),
        model: str_at(&v, "model").to_owned(),
        parts,
        finish,
        stop_sequence: None,
        usage: v.get("usage").map(usage_from_wire).unwrap_or_default(),
    })
}

/// Writes a completion for an OpenAI client; `model` is the name the client
/// asked for.
pub fn encode(r: &Response, model: &str) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &r.parts {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::Reasoning(x) => reasoning.push_str(&x.text),
            Part::ToolCall(c) => calls.push(json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let finish = if calls.is_empty() {
        r.finish
    } else {
        FinishReason::ToolCalls
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-{}", r.id.trim_start_matches("msg_")),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_to_wire(finish)}],
        "usage": usage_to_wire(&r.usage),
        "system_fingerprint": null,
    })
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_bytes_tolerates_odd_shapes_field_by_field() {
        let raw = br#"{"prompt_tokens": 50, "completion_tokens": 7.5, "total_tokens": null,
            "prompt_tokens_details": "n/a", "completion_tokens_details": {"reasoning_tokens": -1,
            "audio_tokens": [1, {"x": 2}]}, "extra": {"deep": [true, null]}}"#;
        let expected = Usage {
            input_uncached: 50,
            ..Usage::default()
        };
        assert_eq!(usage_from_raw(raw), Some(expected));
        let v: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(usage_from_wire(&v), expected);
        let cached = br#"{"prompt_tokens": 50, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": null}}"#;
        assert_eq!(
            usage_from_raw(cached),
            Some(Usage {
                input_uncached: 30,
                cache_read: 20,
                output_total: 5,
                ..Usage::default()
            })
        );
        assert_eq!(usage_from_raw(b"[1, 2]"), None);
        assert_eq!(usage_from_raw(b"{\"prompt_tokens\": "), None);
    }

    #[test]
    fn usage_formulas_round_trip() {
        let wire = json!({"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130,
            "prompt_tokens_details": {"cached_tokens": 60}, "completion_tokens_details": {"reasoning_tokens": 10}});
        let u = usage_from_wire(&wire);
        assert_eq!(
            u,
            Usage {
                input_uncached: 40,
                cache_read: 60,
                cache_write: 0,
                output_total: 30,
                reasoning: 10
            }
        );
        let back = usage_to_wire(&u);
        assert_eq!(back["prompt_tokens"], 100);
        assert_eq!(back["total_tokens"], 130);
        assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 60);
    }

    #[test]
    fn tool_calls_force_tool_calls_finish_and_null_content() {
        let body = json!({"id": "x", "model": "up", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}]});
        let r = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.finish, FinishReason::ToolCalls);
        let Part::ToolCall(c) = &r.parts[0] else {
            panic!("expected a tool call")
        };
        assert!(c.id.starts_with("call_"));
        assert_eq!(c.arguments, r#"{"a":1}"#);
        let out = encode(&r, "client-model");
        assert_eq!(out["model"], "client-model");
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn garbage_is_an_upstream_error() {
        assert!(decode(b"<html>").is_err());
        assert!(decode(b"{\"choices\":[]}").is_err());
    }
}
