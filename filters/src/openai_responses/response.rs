//! OpenAI Responses response objects ⇄ the canonical response. The output
//! is a list of items (`reasoning`, `message`, `function_call`), each with
//! its own id; the object carries every member the SDKs' `Response` model
//! requires, even when the gateway has nothing better than a default.

use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::lenient::{Count, Nested};
use serde::Deserialize;
use serde_json::{json, Value};

/// A Responses `usage` object; unknown fields are ignored, odd ones read
/// as absent.
#[derive(Default, Deserialize)]
#[serde(default)]
struct WireUsage {
    input_tokens: Count,
    output_tokens: Count,
    input_tokens_details: Nested<InputDetails>,
    output_tokens_details: Nested<OutputDetails>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InputDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutputDetails {
    reasoning_tokens: Count,
}

/// `input_tokens` includes cached tokens (OpenAI's convention), so they
/// are subtracted to get the uncached input.
impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        let n = |c: Count| c.0.unwrap_or(0);
        let input = w.input_tokens_details.0.unwrap_or_default();
        let (cached, cache_write) = (n(input.cached_tokens), n(input.cache_write_tokens));
        Usage {
            input_uncached: n(w.input_tokens).saturating_sub(cached.saturating_add(cache_write)),
            cache_read: cached,
            cache_write,
            output_total: n(w.output_tokens),
            reasoning: n(w
                .output_tokens_details
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
    let input = u.input_total();
    json!({
        "input_tokens": input,
        // The SDK models require `cache_write_tokens` beside `cached_tokens`.
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        "output_tokens": u.output_total,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": input.saturating_add(u.output_total),
    })
}

/// `incomplete_details.reason` → the finish; anything unknown is a cut.
pub(crate) fn finish_from_incomplete(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Length,
    }
}

/// The finishes a Responses client sees as `incomplete`, with the reason.
pub(crate) fn incomplete_reason(f: FinishReason) -> Option<&'static str> {
    match f {
        FinishReason::Length => Some("max_output_tokens"),
        FinishReason::ContentFilter => Some("content_filter"),
        FinishReason::Stop
        | FinishReason::StopSequence
        | FinishReason::ToolCalls
        | FinishReason::Pause => None,
    }
}

/// Reads an upstream's non-streaming response object.
pub fn decode(body: &[u8]) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent invalid JSON: {e}")))?;
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        return Err(super::error::from_wire(err));
    }
    let output = v
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream response has no output"))?;
    let mut parts = Vec::new();
    for item in output {
        output_item_parts(item, &mut parts);
    }
    let mut finish = match v.get("status").and_then(Value::as_str) {
        Some("incomplete") => finish_from_incomplete(
            v.pointer("/incomplete_details/reason")
                .and_then(Value::as_str),
        ),
        _ => FinishReason::Stop,
    };
    // Calls mean the turn wants its tool results, whatever else was said.
    if finish == FinishReason::Stop && parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
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

/// The text of a message item: its `output_text` and `refusal` parts.
pub(crate) fn message_text(item: &Value) -> String {
    let mut text = String::new();
    for c in item
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = match c.get("type").and_then(Value::as_str) {
            Some("refusal") => c.get("refusal"),
            _ => c.get("text"),
        };
        text.push_str(t.and_then(Value::as_str).unwrap_or_default());
    }
    text
}

/// The reasoning text of a reasoning item: its summaries, or without any,
/// its raw reasoning content.
pub(crate) fn reasoning_text(item: &Value) -> String {
    let join = |key: &str| {
        item.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let summary = join("summary");
    if summary.is_empty() {
        join("content")
    } else {
        summary
    }
}

/// A function call item's arguments (`{}` when empty).
pub(crate) fn call_arguments(item: &Value) -> String {
    match item.get("arguments") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    }
}

/// Appends the parts of one output item; hosted tool calls and unknown
/// items carry nothing another dialect could show.
fn output_item_parts(item: &Value, parts: &mut Vec<Part>) {
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let text = message_text(item);
            if !text.is_empty() {
                parts.push(Part::Text(TextPart { text, cache: false }));
            }
        }
        Some("function_call") => parts.push(Part::ToolCall(ToolCall {
            id: opt_str(item, "call_id")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| new_id("call_")),
            name: str_at(item, "name").to_owned(),
            arguments: call_arguments(item),
        })),
        Some("reasoning") => {
            let text = reasoning_text(item);
            let signature = item
                .get("encrypted_content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| signature_minted(Issuer::OpenAi, s));
            if !text.is_empty() || signature.is_some() {
                parts.push(Part::Reasoning(Reasoning {
                    text,
                    signature,
                    redacted: None,
                }));
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ encode

/// A response object with every member the SDK models require; the caller
/// fills `output`, `usage`, `incomplete_details` and `error` as they are
/// known. Request-side members (tools, instructions...) are not known here
/// and carry their defaults.
pub(crate) fn envelope(id: &str, model: &str, created_at: u64, status: &str) -> Value {
    json!({
        "id": id, "object": "response", "created_at": created_at, "status": status,
        "background": false, "error": null, "incomplete_details": null,
        "instructions": null, "max_output_tokens": null, "metadata": {}, "model": model,
        "output": [], "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "temperature": null,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": null, "truncation": "disabled", "usage": null, "user": null,
    })
}

pub(crate) fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(crate) fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [output_text_part(text)]})
}

pub(crate) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A reasoning item; its state goes to the client as OpenAI's raw token
/// or, for another vendor's, tagged so it comes back recognisable.
pub(crate) fn reasoning_item(id: &str, text: &str, signature: Option<&str>) -> Value {
    let summary: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "summary_text", "text": text})]
    };
    let mut v = json!({"type": "reasoning", "id": id, "summary": summary});
    if let Some(sig) = signature {
        v["encrypted_content"] = json!(signature_to_client(sig, Issuer::OpenAi));
    }
    v
}

/// Writes a response object for a Responses client; `r.id` is the
/// client-facing `resp_…` id, `model` the name the client asked for.
pub fn encode(r: &Response, model: &str) -> Value {
    let incomplete = incomplete_reason(r.finish);
    let item_status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut output = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, output: &mut Vec<Value>| {
        if !text.is_empty() {
            output.push(message_item(
                &new_id("msg_"),
                &std::mem::take(text),
                item_status,
            ));
        }
    };
    for p in &r.parts {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::ToolCall(c) => {
                flush(&mut text, &mut output);
                output.push(function_call_item(
                    &new_id("fc_"),
                    &c.id,
                    &c.name,
                    &c.arguments,
                    "completed",
                ));
            }
            Part::Reasoning(x) if !x.text.is_empty() || x.signature.is_some() => {
                flush(&mut text, &mut output);
                output.push(reasoning_item(
                    &new_id("rs_"),
                    &x.text,
                    x.signature.as_deref(),
                ));
            }
            _ => {}
        }
    }
    flush(&mut text, &mut output);
    let status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut v = envelope(&r.id, model, unix_now(), status);
    v["output"] = Value::Array(output);
    v["usage"] = usage_to_wire(&r.usage);
    if let Some(reason) = incomplete {
        v["incomplete_details"] = json!({"reason": reason});
    }
    v
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
    fn usage_formulas() {
        let wire = json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
            "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 130});
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
        let mut back = wire.clone();
        back["input_tokens_details"]["cache_write_tokens"] = json!(0);
        assert_eq!(usage_to_wire(&u), back);
        assert_eq!(usage_from_raw(wire.to_string().as_bytes()), Some(u));
        // Odd shapes read field by field; cached above the total clamps at 0.
        let odd = br#"{"input_tokens": 5, "input_tokens_details": {"cached_tokens": 9},
            "output_tokens": "x", "output_tokens_details": null, "extra": [1]}"#;
        assert_eq!(
            usage_from_raw(odd),
            Some(Usage {
                cache_read: 9,
                ..Usage::default()
            })
        );
        assert_eq!(usage_from_raw(b"null"), None);
        assert_eq!(usage_from_raw(b"{\"input_tokens\": "), None);
        let anthropic_like = Usage {
            input_uncached: 10,
            cache_read: 20,
            cache_write: 5,
            output_total: 7,
            reasoning: 0,
        };
        let w = usage_to_wire(&anthropic_like);
        assert_eq!(
            w["input_tokens"], 35,
            "input includes cache reads and writes"
        );
        assert_eq!(w["total_tokens"], 42);
        assert_eq!(usage_from_wire(&w), anthropic_like);
    }

    #[test]
    fn decodes_items_status_and_signatures() {
        let body = json!({"id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}],
                 "encrypted_content": "ENC"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                {"type": "message", "id": "msg_1", "role": "assistant", "content": [
                    {"type": "output_text", "text": "Hi", "annotations": []},
                    {"type": "refusal", "refusal": " no"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
            ],
            "usage": {"input_tokens": 10, "output_tokens": 4}});
        let r = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!((r.id.as_str(), r.model.as_str()), ("resp_1", "gpt-5"));
        assert_eq!(r.finish, FinishReason::ToolCalls);
        assert_eq!(
            r.parts[0],
            Part::Reasoning(Reasoning {
                text: "think".into(),
                signature: Some(signature_minted(Issuer::OpenAi, "ENC")),
                redacted: None
            })
        );
        assert!(matches!(&r.parts[1], Part::Text(t) if t.text == "Hi no"));
        assert!(
            matches!(&r.parts[2], Part::ToolCall(c) if c.id == "call_1" && c.arguments == "{}")
        );
        assert_eq!(r.usage.input_uncached, 10);

        let cut = json!({"id": "r", "status": "incomplete", "output": [],
            "incomplete_details": {"reason": "max_output_tokens"}});
        assert_eq!(
            decode(cut.to_string().as_bytes()).unwrap().finish,
            FinishReason::Length
        );
        let filtered = json!({"id": "r", "status": "incomplete", "output": [],
            "incomplete_details": {"reason": "content_filter"}});
        assert_eq!(
            decode(filtered.to_string().as_bytes()).unwrap().finish,
            FinishReason::ContentFilter
        );
        let failed = json!({"id": "r", "status": "failed", "output": [],
            "error": {"code": "rate_limit_exceeded", "message": "slow"}});
        let e = decode(failed.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert!(decode(b"<html>").is_err());
        assert!(decode(b"{\"id\":\"r\"}").is_err());
    }

    fn sample(finish: FinishReason, signature: Option<String>) -> Response {
        Response {
            id: "resp_abc".into(),
            model: "upstream".into(),
            parts: vec![
                Part::Reasoning(Reasoning {
                    text: "plan".into(),
                    signature,
                    redacted: None,
                }),
                Part::Text(TextPart {
                    text: "Hel".into(),
                    cache: false,
                }),
                Part::Text(TextPart {
                    text: "lo".into(),
                    cache: false,
                }),
                Part::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":1}".into(),
                }),
            ],
            finish,
            stop_sequence: None,
            usage: Usage {
                input_uncached: 3,
                cache_read: 2,
                output_total: 5,
                reasoning: 1,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn encodes_what_the_sdk_model_requires() {
        let v = encode(
            &sample(
                FinishReason::ToolCalls,
                Some(signature_minted(Issuer::OpenAi, "ENC")),
            ),
            "client-model",
        );
        for key in [
            "id",
            "created_at",
            "model",
            "object",
            "output",
            "parallel_tool_calls",
            "tool_choice",
            "tools",
        ] {
            assert!(v.get(key).is_some_and(|x| !x.is_null()), "{key}");
        }
        assert_eq!(v["id"], "resp_abc");
        assert_eq!(v["object"], "response");
        assert_eq!(v["model"], "client-model");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["incomplete_details"], Value::Null);
        let out = v["output"].as_array().unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[0]["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(out[0]["encrypted_content"], "ENC");
        assert_eq!(out[0]["summary"][0]["text"], "plan");
        assert!(out[1]["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(out[1]["content"], json!([output_text_part("Hello")]));
        assert!(out[2]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(out[2]["call_id"], "toolu_1");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 1);
        // And back: the same parts (text joined), the same signature.
        let back = decode(v.to_string().as_bytes()).unwrap();
        assert_eq!(back.parts.len(), 3);
        assert_eq!(
            back.parts[0],
            sample(
                FinishReason::Stop,
                Some(signature_minted(Issuer::OpenAi, "ENC"))
            )
            .parts[0]
        );
    }

    #[test]
    fn other_vendors_reasoning_goes_out_tagged_and_cuts_are_incomplete() {
        let v = encode(
            &sample(FinishReason::Length, Some("anthropic-sig".into())),
            "m",
        );
        let enc = v["output"][0]["encrypted_content"].as_str().unwrap();
        assert_ne!(enc, "anthropic-sig", "never passed off as OpenAI's");
        assert_eq!(signature_from_client(enc, Issuer::OpenAi), "anthropic-sig");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        let v = encode(&sample(FinishReason::ContentFilter, None), "m");
        assert_eq!(v["incomplete_details"]["reason"], "content_filter");
        assert!(v["output"][0].get("encrypted_content").is_none());
    }
}
