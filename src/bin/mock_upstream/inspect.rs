//! What the mock keeps of each request for `/_mock/stats`: counts, the
//! last request per model, and digests of recent ones.

use crate::{Shared, SEEN};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Counts a request and keeps what it carried; returns its number.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    stats: &Shared,
    model: &str,
    path: &str,
    hdrs: &HashMap<String, String>,
    query_key: Option<&str>,
    body: &[u8],
    req: &Value,
    endpoint: &str,
) -> u64 {
    let small = body.len() <= 256 * 1024;
    let digest = small.then(|| digest(req, path, endpoint));
    let Ok(mut s) = stats.lock() else { return 0 };
    s.total += 1;
    *s.by_model.entry(model.to_owned()).or_default() += 1;
    *s.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
    let pick = |k: &str| hdrs.get(k).cloned();
    let protocol = pick(":protocol").unwrap_or_default();
    *s.by_protocol.entry(protocol.clone()).or_default() += 1;
    s.last.insert(
        model.to_owned(),
        json!({
            "path": path,
            "endpoint": endpoint,
            "protocol": protocol,
            "authorization": pick("authorization"),
            "x_api_key": pick("x-api-key"),
            "x_goog_api_key": pick("x-goog-api-key"),
            "x_token": pick("x-token"),
            "query_key": query_key,
            "anthropic_version": pick("anthropic-version"),
            "anthropic_beta": pick("anthropic-beta"),
            "accept_encoding": pick("accept-encoding"),
            "content_length": pick("content-length"),
            "body_len": body.len(),
            "body": if small { req.clone() } else { json!({"model": req.get("model"), "truncated": true}) },
        }),
    );
    let seen = s.seen.entry(model.to_owned()).or_default();
    if seen.len() == SEEN {
        seen.pop_front();
    }
    seen.push_back(
        digest.unwrap_or_else(|| json!({"path": path, "endpoint": endpoint, "truncated": true})),
    );
    s.total
}

/// What a request carried that a test may want back: its turns, and every
/// opaque reasoning token, tool call id and tool result in it.
fn digest(req: &Value, path: &str, endpoint: &str) -> Value {
    let mut d = Digest::default();
    d.walk(req);
    let turns: Vec<String> = match req
        .get("messages")
        .or_else(|| req.get("contents"))
        .or_else(|| req.get("input"))
    {
        Some(Value::Array(items)) => items
            .iter()
            .map(|it| {
                match (
                    it.get("type").and_then(Value::as_str),
                    it.get("role").and_then(Value::as_str),
                ) {
                    (Some("message") | None, Some(role)) => role.to_owned(),
                    (Some(t), _) => t.to_owned(),
                    (None, None) => "user".to_owned(),
                }
            })
            .collect(),
        Some(Value::String(_)) => vec!["user".to_owned()],
        _ => Vec::new(),
    };
    json!({"path": path, "endpoint": endpoint,
           "previous_response_id": req.get("previous_response_id"), "store": req.get("store"),
           "turns": turns, "encrypted_content": d.encrypted, "thought_signatures": d.thought_signatures,
           "signatures": d.signatures, "tool_call_ids": d.call_ids, "tool_results": d.results})
}

#[derive(Default)]
struct Digest {
    encrypted: Vec<Value>,
    thought_signatures: Vec<Value>,
    signatures: Vec<Value>,
    call_ids: Vec<Value>,
    results: Vec<Value>,
}

impl Digest {
    fn walk(&mut self, v: &Value) {
        match v {
            Value::Array(xs) => xs.iter().for_each(|x| self.walk(x)),
            Value::Object(m) => {
                let kind = m.get("type").and_then(Value::as_str);
                for (k, x) in m {
                    match k.as_str() {
                        "encrypted_content" => self.encrypted.push(x.clone()),
                        "thoughtSignature" | "thought_signature" => {
                            self.thought_signatures.push(x.clone())
                        }
                        "signature" if kind == Some("thinking") => self.signatures.push(x.clone()),
                        "call_id" | "tool_call_id" | "tool_use_id" => self.call_ids.push(x.clone()),
                        "id" if kind == Some("tool_use") => self.call_ids.push(x.clone()),
                        "output" if kind == Some("function_call_output") => {
                            self.results.push(x.clone())
                        }
                        "content" if kind == Some("tool_result") => self.results.push(x.clone()),
                        "content" if m.get("role").and_then(Value::as_str) == Some("tool") => {
                            self.results.push(x.clone())
                        }
                        "functionResponse" | "function_response" => self
                            .results
                            .push(x.get("response").cloned().unwrap_or(Value::Null)),
                        _ => {}
                    }
                    self.walk(x);
                }
            }
            _ => {}
        }
    }
}
