//! The "test" buttons: a tiny request ("Say OK") to one target, a model's
//! whole chain, or a provider, sent in the provider's own dialect through
//! the same upstream client and key pool as client traffic. Breakers are
//! neither consulted nor moved (a test says nothing a probe should decide),
//! and every call is bounded by the target's first-event timeout.

use super::AdminPlane;
use crate::config::{Provider, Route, Target};
use crate::exchange::side::call_once;
use crate::record::RequestRecord;
use crate::state::Live;
use bytes::Bytes;
use filters::canonical::Part;
use filters::error::ApiError;
use filters::failure::Failure;
use serde_json::{json, Value};
use std::sync::Arc;

const DEFAULT_MESSAGE: &str = "Reply with the single word OK.";
/// Enough for a word or two: a test should cost next to nothing.
const MAX_TOKENS: u64 = 16;
/// The first characters of the answer shown.
const SHOWN_CHARS: usize = 200;

/// What the caller asked to test.
#[derive(Debug, Default, PartialEq)]
pub struct Ask {
    pub target: Option<usize>,
    pub model: Option<String>,
    pub message: String,
}

impl Ask {
    /// `{"target"?: n, "model"?: "...", "message"?: "..."}`; an empty body
    /// is a test with the defaults.
    pub fn read(body: &[u8]) -> Result<Self, ApiError> {
        let mut ask = Ask {
            message: DEFAULT_MESSAGE.to_owned(),
            ..Ask::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ask);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(ApiError::invalid("the body must be a JSON object"));
        };
        for (k, v) in m {
            match (k.as_str(), v) {
                ("target", Value::Number(n)) => {
                    ask.target = Some(
                        n.as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or_else(|| {
                                ApiError::invalid("target: a target index (0, 1, ...) is expected")
                            })?,
                    )
                }
                ("target", Value::Null) | ("model", Value::Null) | ("message", Value::Null) => {}
                ("model", Value::String(s)) if !s.is_empty() => ask.model = Some(s),
                ("message" | "test_message", Value::String(s)) if !s.trim().is_empty() => {
                    ask.message = s
                }
                (k @ ("target" | "model" | "message" | "test_message"), _) => {
                    return Err(ApiError::invalid(format!("{k}: wrong type or empty")))
                }
                (k, _) => return Err(ApiError::invalid(format!("{k}: unknown field"))),
            }
        }
        Ok(ask)
    }
}

/// One target's result.
async fn one(
    plane: &AdminPlane,
    live: &Live,
    rec: &mut RequestRecord,
    target: &Target,
    message: &str,
) -> Value {
    let provider = &target.provider;
    let started = std::time::Instant::now();
    let outcome = match body_for(provider, &target.model, message) {
        Ok(body) => {
            let path = target.generate_path(false).to_owned();
            call_once(&plane.upstream, live, rec, target, ("POST", &path), body)
                .await
                .map_err(|f| (status_of(&f), describe(&f)))
        }
        Err(e) => Err((None, e.message.clone())),
    };
    let latency_ms = started.elapsed().as_millis();
    match outcome {
        Ok(answer) => {
            let text = filters::dialect::decode_response(provider.dialect, &answer)
                .map(|r| first_text(&r.parts))
                .unwrap_or_default();
            json!({"provider": &*provider.name, "model": &*target.model, "status": 200, "ok": true,
                   "latency_ms": latency_ms, "text": text, "error": null})
        }
        Err((status, error)) => {
            json!({"provider": &*provider.name, "model": &*target.model, "status": status, "ok": false,
                   "latency_ms": latency_ms, "text": null, "error": error})
        }
    }
}

/// `POST /api/models/{name}/test`: one target, or the chain as a client
/// would meet it (in order, up to the first that answers).
pub async fn model(
    plane: &AdminPlane,
    live: &Live,
    rec: &mut RequestRecord,
    name: &str,
    route: &Arc<Route>,
    ask: &Ask,
) -> Result<Value, ApiError> {
    let chosen: Vec<(usize, &Target)> = match ask.target {
        Some(i) => {
            let t = route.targets.get(i).ok_or_else(|| {
                ApiError::invalid(format!(
                    "target: '{name}' has {} targets (0..{})",
                    route.targets.len(),
                    route.targets.len().saturating_sub(1)
                ))
            })?;
            vec![(i, t)]
        }
        None => route.targets.iter().enumerate().collect(),
    };
    let mut results = Vec::new();
    for (index, target) in chosen {
        let mut r = one(plane, live, rec, target, &ask.message).await;
        r["index"] = json!(index);
        let ok = r["ok"] == json!(true);
        results.push(r);
        if ok {
            break;
        }
    }
    Ok(json!({"model": name, "results": results}))
}

/// `POST /api/providers/{name}/test`: the given upstream model, or the
/// first one a configured chain sends this provider.
pub async fn provider(
    plane: &AdminPlane,
    live: &Live,
    rec: &mut RequestRecord,
    provider: &Arc<Provider>,
    ask: &Ask,
) -> Result<Value, ApiError> {
    let mut names: Vec<&String> = live.config.routes.keys().collect();
    names.sort();
    let known = names
        .iter()
        .filter_map(|n| live.config.routes.get(*n))
        .flat_map(|r| r.targets.iter())
        .find(|t| {
            t.provider.name == provider.name && ask.model.as_deref().is_none_or(|m| &*t.model == m)
        });
    let target = match (known, &ask.model) {
        (Some(t), _) => Target::probe(provider.clone(), &t.model),
        (None, Some(m)) => Target::probe(provider.clone(), m),
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "model: no chain sends '{}' a model; name the upstream model to test",
                provider.name
            )))
        }
    };
    let r = one(plane, live, rec, &target, &ask.message).await;
    Ok(r)
}

/// The test request in the provider's own dialect.
pub(crate) fn body_for(provider: &Provider, model: &str, message: &str) -> Result<Bytes, ApiError> {
    let chat = json!({
        "model": model,
        "messages": [{"role": "user", "content": message}],
        "max_tokens": MAX_TOKENS,
    });
    let req = filters::dialect::decode_request(
        filters::Dialect::OpenAiChat,
        chat.to_string().as_bytes(),
    )?;
    let body = filters::dialect::encode_request(
        provider.dialect,
        &req,
        model,
        &provider.encode,
        Some(MAX_TOKENS),
    )?;
    Ok(Bytes::from(body.to_string()))
}

pub(crate) fn first_text(parts: &[Part]) -> String {
    let text: String = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    text.chars().take(SHOWN_CHARS).collect()
}

pub(crate) fn status_of(f: &Failure) -> Option<u16> {
    match f {
        Failure::Status(s, _) => Some(*s),
        _ => None,
    }
}

/// Why a test failed, in words (never a key: upstream messages are the
/// provider's, errors of ours name hosts and phases only).
pub(crate) fn describe(f: &Failure) -> String {
    match f {
        Failure::Connect(m) => format!("cannot connect: {m}"),
        Failure::Timeout(phase) => format!("timed out ({})", phase.name()),
        Failure::Io(m) => format!("connection failed: {m}"),
        Failure::Status(s, e) => format!("upstream answered {s}: {}", e.message),
        Failure::BadResponse(m) => format!("unreadable answer: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_the_default_test() {
        let a = Ask::read(b"").unwrap();
        assert_eq!(a.message, DEFAULT_MESSAGE);
        assert_eq!((a.target, a.model), (None, None));
    }

    #[test]
    fn fields_are_read_and_checked() {
        let a = Ask::read(br#"{"target": 1, "test_message": "hi"}"#).unwrap();
        assert_eq!((a.target, a.message.as_str()), (Some(1), "hi"));
        assert!(Ask::read(br#"{"target": -1}"#).is_err());
        assert!(Ask::read(br#"{"target": "0"}"#).is_err());
        assert!(Ask::read(br#"{"bogus": 1}"#).is_err());
        assert!(Ask::read(b"[1]").is_err());
        assert!(Ask::read(b"{").is_err());
    }
}
