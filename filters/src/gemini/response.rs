//! Gemini `GenerateContentResponse` ⇄ the canonical response. Only the
//! first candidate is read (the gateway asks for one); a prompt blocked
//! before any candidate is a content-filtered empty answer, not an error.

use super::parts::{self, push_signature, read_part, Audience, WirePart};
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::lenient::Count;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// A `usageMetadata` object; unknown fields (`*Details[]`) are ignored.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireUsage {
    prompt_token_count: Count,
    cached_content_token_count: Count,
    candidates_token_count: Count,
    thoughts_token_count: Count,
    tool_use_prompt_token_count: Count,
    total_token_count: Count,
}

/// PROTOCOLS §4.3: the prompt count includes cached tokens; tool-use
/// prompt tokens are input too; candidates exclude thoughts, so output is
/// candidates + thoughts. Without a candidates count, output is what the
/// total leaves after the input.
impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        let n = |c: Count| c.0.unwrap_or(0);
        let input = n(w.prompt_token_count).saturating_add(n(w.tool_use_prompt_token_count));
        let cached = n(w.cached_content_token_count).min(input);
        let thoughts = n(w.thoughts_token_count);
        let output = match (w.candidates_token_count.0, w.total_token_count.0) {
            (Some(c), _) => c.saturating_add(thoughts),
            (None, Some(total)) => total.saturating_sub(input),
            (None, None) => thoughts,
        };
        Usage {
            input_uncached: input - cached,
            cache_read: cached,
            cache_write: 0,
            output_total: output,
            reasoning: thoughts.min(output),
        }
    }
}

pub fn usage_from_wire(u: &Value) -> Usage {
    WireUsage::deserialize(u)
        .map(Usage::from)
        .unwrap_or_default()
}

/// The same, straight from the bytes of the `usageMetadata` member.
pub fn usage_from_raw(raw: &[u8]) -> Option<Usage> {
    if raw.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<WireUsage>(raw)
        .ok()
        .map(Usage::from)
}

/// Canonical buckets → `usageMetadata` (zero counts Gemini leaves out are
/// left out too).
pub fn usage_to_wire(u: &Usage) -> Value {
    let prompt = u.input_total();
    let thoughts = u.reasoning.min(u.output_total);
    let candidates = u.output_total - thoughts;
    let mut m = Map::new();
    m.insert("promptTokenCount".into(), json!(prompt));
    m.insert("candidatesTokenCount".into(), json!(candidates));
    m.insert(
        "totalTokenCount".into(),
        json!(prompt.saturating_add(u.output_total)),
    );
    if u.cache_read > 0 {
        m.insert("cachedContentTokenCount".into(), json!(u.cache_read));
    }
    if thoughts > 0 {
        m.insert("thoughtsTokenCount".into(), json!(thoughts));
    }
    Value::Object(m)
}

pub fn finish_from_wire(s: &str) -> FinishReason {
    match s {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        // MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, LANGUAGE, OTHER...:
        // no other dialect has a word for them.
        _ => FinishReason::Stop,
    }
}

/// Gemini signals tool calls by their parts, not by the finish reason.
pub fn finish_to_wire(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop
        | FinishReason::StopSequence
        | FinishReason::ToolCalls
        | FinishReason::Pause => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
    }
}

/// Reads an upstream's non-streaming response.
pub fn decode(body: &[u8]) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent invalid JSON: {e}")))?;
    let usage = v
        .get("usageMetadata")
        .map(usage_from_wire)
        .unwrap_or_default();
    let id = str_at(&v, "responseId").to_owned();
    let model = str_at(&v, "modelVersion").to_owned();
    let Some(cand) = v.pointer("/candidates/0") else {
        if v.pointer("/promptFeedback/blockReason").is_some() {
            return Ok(Response {
                id,
                model,
                parts: Vec::new(),
                finish: FinishReason::ContentFilter,
                stop_sequence: None,
                usage,
            });
        }
        return Err(ApiError::new(
            ErrorKind::Api,
            "upstream response has no candidates",
        ));
    };
    let parts = decode_candidate_parts(cand);
    let mut finish = cand
        .get("finishReason")
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, finish_from_wire);
    if parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
        finish = FinishReason::ToolCalls;
    }
    Ok(Response {
        id,
        model,
        parts,
        finish,
        stop_sequence: None,
        usage,
    })
}

/// A candidate's parts in canonical form; a part that cannot be read is
/// skipped (an upstream's oddity must not fail the answer).
fn decode_candidate_parts(cand: &Value) -> Vec<Part> {
    let mut parts = Vec::new();
    let wire = cand.pointer("/content/parts").and_then(Value::as_array);
    for p in wire.into_iter().flatten() {
        let Ok(w) = read_part(p, "candidates[0].content.parts") else {
            continue;
        };
        let sig = parts::signature(p).map(|s| signature_minted(Issuer::Gemini, s));
        if let WirePart::Thought(t) = w {
            match sig {
                Some(s) => push_signature(&mut parts, s, Some(t)),
                None => parts.push(Part::Reasoning(Reasoning {
                    text: t,
                    signature: None,
                    redacted: None,
                })),
            }
            continue;
        }
        if let Some(s) = sig {
            push_signature(&mut parts, s, None);
        }
        match w {
            WirePart::Text(t) if !t.is_empty() => parts.push(Part::Text(TextPart {
                text: t,
                cache: false,
            })),
            WirePart::Call {
                id,
                name,
                arguments,
            } => parts.push(Part::ToolCall(ToolCall {
                id: id.unwrap_or_else(|| new_id("call_")),
                name,
                arguments,
            })),
            // Model output images and the like have no place in the other
            // dialects' answers; responses do not appear in model output.
            _ => {}
        }
    }
    parts
}

/// The canonical response as a `GenerateContentResponse` for a Gemini client.
pub fn encode(r: &Response, model: &str) -> Value {
    let mut wire = Vec::new();
    parts::encode_parts(&r.parts, Audience::Client, &mut wire);
    if wire.is_empty() {
        wire.push(json!({"text": ""}));
    }
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": wire},
            "finishReason": finish_to_wire(r.finish),
            "index": 0,
        }],
        "usageMetadata": usage_to_wire(&r.usage),
        "modelVersion": model,
        "responseId": r.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_formulas_agree_with_the_other_dialects() {
        let raw = br#"{"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5, "totalTokenCount": 155,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 100}]}"#;
        let u = usage_from_raw(raw).unwrap();
        assert_eq!(
            u,
            Usage {
                input_uncached: 45,
                cache_read: 60,
                cache_write: 0,
                output_total: 50,
                reasoning: 30
            }
        );
        // Gemini → OpenAI: prompt = prompt + toolUse, completion = candidates + thoughts
        let oa = crate::openai_chat::response::usage_to_wire(&u);
        assert_eq!(oa["prompt_tokens"], 105);
        assert_eq!(oa["completion_tokens"], 50);
        assert_eq!(oa["total_tokens"], 155);
        // Gemini → Anthropic: input = prompt + toolUse − cached
        let an = crate::anthropic::response::usage_to_wire(&u);
        assert_eq!(an["input_tokens"], 45);
        assert_eq!(an["cache_read_input_tokens"], 60);
        assert_eq!(an["output_tokens"], 50);
        // and back out to Gemini
        assert_eq!(
            usage_to_wire(&u),
            json!({"promptTokenCount": 105, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
                "thoughtsTokenCount": 30, "totalTokenCount": 155})
        );
        let v: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(usage_from_wire(&v), u);
        // odd fields read as absent; output recomputed from the total
        let u = usage_from_raw(
            br#"{"promptTokenCount": "9", "totalTokenCount": 12, "cachedContentTokenCount": 50}"#,
        )
        .unwrap();
        assert_eq!(u.input_total(), 0);
        assert_eq!(u.output_total, 12);
        assert_eq!(usage_from_raw(b"null"), None);
    }

    #[test]
    fn decodes_thoughts_text_and_calls() {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "hmm", "thought": true},
                {"text": "Let me check."},
                {"functionCall": {"name": "get", "args": {"c": "Paris"}}, "thoughtSignature": "S1"},
                {"functionCall": {"name": "noargs"}},
                {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"});
        let r = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.finish, FinishReason::ToolCalls);
        assert_eq!(
            (r.id.as_str(), r.model.as_str()),
            ("r1", "gemini-2.5-flash")
        );
        assert_eq!(r.parts.len(), 5);
        assert!(
            matches!(&r.parts[0], Part::Reasoning(x) if x.text == "hmm" && x.signature.is_none())
        );
        assert!(matches!(&r.parts[2], Part::Reasoning(x)
            if x.text.is_empty() && x.signature.as_deref() == Some("modelswitch-gemini:S1")));
        let Part::ToolCall(c) = &r.parts[3] else {
            panic!("{:?}", r.parts[3])
        };
        assert!(c.id.starts_with("call_") && c.id.len() > 10);
        assert_eq!(c.arguments, r#"{"c":"Paris"}"#);
        assert!(matches!(&r.parts[4], Part::ToolCall(c) if c.arguments == "{}"));

        // to an OpenAI client: tool_calls; an Anthropic client holds the
        // Gemini signature tagged, and it never reaches an Anthropic upstream
        let oa = crate::openai_chat::response::encode(&r, "client");
        assert_eq!(oa["choices"][0]["finish_reason"], "tool_calls");
        let an = crate::anthropic::response::encode(&r, "client");
        assert_eq!(an["content"][1]["signature"], "modelswitch-gemini:S1");
        let replay = json!({"model": "m", "max_tokens": 9, "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": an["content"]}]});
        let req = crate::anthropic::request::decode(replay.to_string().as_bytes()).unwrap();
        let up = crate::anthropic::request::encode(&req, "m", &Default::default(), None).unwrap();
        assert!(
            !up.to_string().contains("\"S1\"") && !up.to_string().contains(":S1\""),
            "{up}"
        );
        // while a Gemini upstream gets it back on its call
        let g_up = super::super::request::encode(&req, "g", &Default::default(), None).unwrap();
        assert_eq!(g_up["contents"][1]["parts"][1]["thoughtSignature"], "S1");
        assert_eq!(
            g_up["contents"][1]["parts"][1]["functionCall"]["name"],
            "get"
        );
        // back to a Gemini client: byte-exact signature on its call
        let g = encode(&r, "client");
        let parts = &g["candidates"][0]["content"]["parts"];
        assert_eq!(parts[2]["thoughtSignature"], "S1");
        assert_eq!(parts[2]["functionCall"]["name"], "get");
        assert_eq!(parts[2]["functionCall"]["id"], c.id.as_str());
        assert_eq!(g["candidates"][0]["finishReason"], "STOP");
        assert_eq!(g["modelVersion"], "client");
        assert_eq!(g["responseId"], "r1");
    }

    #[test]
    fn safety_blocks_are_content_filtered_answers() {
        let blocked = br#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}"#;
        let r = decode(blocked).unwrap();
        assert_eq!(r.finish, FinishReason::ContentFilter);
        assert!(r.parts.is_empty());
        assert_eq!(r.usage.input_uncached, 7);
        let an = crate::anthropic::response::encode(&r, "c");
        assert_eq!(an["stop_reason"], "refusal");
        let r = decode(br#"{"candidates": [{"finishReason": "PROHIBITED_CONTENT", "index": 0}]}"#)
            .unwrap();
        assert_eq!(r.finish, FinishReason::ContentFilter);
        let g = encode(&r, "c");
        assert_eq!(g["candidates"][0]["finishReason"], "SAFETY");
        assert_eq!(
            g["candidates"][0]["content"]["parts"],
            json!([{"text": ""}])
        );
        assert!(decode(br#"{"candidates": []}"#).is_err());
        assert!(decode(b"<html>").is_err());
    }

    #[test]
    fn finish_reasons_map_both_ways() {
        for (wire, f) in [
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("RECITATION", FinishReason::ContentFilter),
            ("SPII", FinishReason::ContentFilter),
            ("BLOCKLIST", FinishReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", FinishReason::Stop),
            ("FINISH_REASON_UNSPECIFIED", FinishReason::Stop),
        ] {
            assert_eq!(finish_from_wire(wire), f, "{wire}");
        }
        assert_eq!(finish_to_wire(FinishReason::ToolCalls), "STOP");
        assert_eq!(finish_to_wire(FinishReason::Length), "MAX_TOKENS");
        assert_eq!(finish_to_wire(FinishReason::ContentFilter), "SAFETY");
    }

    #[test]
    fn anthropic_reasoning_reaches_gemini_clients_tagged() {
        let r = crate::anthropic::response::decode(
            json!({"id": "msg_1", "model": "claude", "content": [
                {"type": "thinking", "thinking": "plan", "signature": "asig"},
                {"type": "text", "text": "hi"}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let g = encode(&r, "c");
        assert_eq!(
            g["candidates"][0]["content"]["parts"],
            json!([{"text": "plan", "thought": true, "thoughtSignature": "bW9kZWxzd2l0Y2gtYW50aHJvcGljOmFzaWc="},
                   {"text": "hi"}])
        );
        assert_eq!(g["usageMetadata"]["promptTokenCount"], 3);
    }
}
