//! `POST /route/invoke`, the earlier system's tag-routed call:
//! `{"query": {"tags": ["coding", "cheap"]}, "request": {"prompt": "…"}}`
//! (or `"messages": [...]` and any other Chat Completions field) becomes
//! an OpenAI Chat request for `tags:coding,cheap`, answered in the OpenAI
//! shape.

use crate::error::ApiError;
use serde_json::{json, Map, Value};

/// The Chat Completions body for an invoke body.
pub fn to_chat(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let tags: Vec<&str> = v
        .pointer("/query/tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::trim).collect())
        .unwrap_or_default();
    if tags.is_empty() || tags.iter().any(|t| t.is_empty() || t.contains(',')) {
        return Err(ApiError::invalid(
            "query.tags: a non-empty list of tags (strings) is required",
        )
        .with_param("query.tags"));
    }
    let Some(request) = v.get("request").and_then(Value::as_object) else {
        return Err(ApiError::invalid("request: an object is required").with_param("request"));
    };
    let mut chat: Map<String, Value> = request
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "prompt" | "model" | "messages"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let messages = match (request.get("prompt"), request.get("messages")) {
        (Some(Value::String(p)), None) => json!([{"role": "user", "content": p}]),
        (None, Some(m @ Value::Array(_))) => m.clone(),
        (Some(_), Some(_)) => {
            return Err(
                ApiError::invalid("request: give either prompt or messages, not both")
                    .with_param("request"),
            )
        }
        _ => {
            return Err(ApiError::invalid(
                "request: prompt (a string) or messages (an array) is required",
            )
            .with_param("request"))
        }
    };
    chat.insert("model".into(), json!(format!("tags:{}", tags.join(","))));
    chat.insert("messages".into(), messages);
    serde_json::to_vec(&chat).map_err(|e| ApiError::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_or_messages_become_a_chat_request() {
        let out = to_chat(
            br#"{"query":{"tags":["coding"," cheap"]},"request":{"prompt":"hi","max_tokens":5,"model":"x"}}"#,
        )
        .unwrap_or_default();
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["model"], "tags:coding,cheap");
        assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(v["max_tokens"], 5);
        let out = to_chat(
            br#"{"query":{"tags":["a"]},"request":{"messages":[{"role":"user","content":"x"}],"stream":true}}"#,
        )
        .unwrap_or_default();
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["messages"][0]["content"], "x");
        assert_eq!(v["stream"], true);
    }

    #[test]
    fn bad_bodies_say_what_is_missing() {
        for (body, says) in [
            (&br#"{"request":{"prompt":"hi"}}"#[..], "query.tags"),
            (
                br#"{"query":{"tags":[]},"request":{"prompt":"hi"}}"#,
                "query.tags",
            ),
            (
                br#"{"query":{"tags":["a,b"]},"request":{"prompt":"hi"}}"#,
                "query.tags",
            ),
            (br#"{"query":{"tags":["a"]}}"#, "request: an object"),
            (
                br#"{"query":{"tags":["a"]},"request":{}}"#,
                "prompt (a string)",
            ),
            (
                br#"{"query":{"tags":["a"]},"request":{"prompt":"x","messages":[]}}"#,
                "not both",
            ),
            (b"nope", "not valid JSON"),
        ] {
            let e = to_chat(body).err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains(says), "{e}");
        }
    }
}
