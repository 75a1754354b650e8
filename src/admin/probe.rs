//! The "test" buttons: a tiny request ("Say OK") to one target, a model's
//! whole chain, or a provider, sent in the provider's own dialect through
//! the same upstream client and key pool as client traffic. Breakers are
//! neither consulted nor moved (a test says nothing a probe should decide),
//! and every call is bounded by the target's first-event timeout.
//! `POST /v1/models/{model}/test` (proxy/endpoints.rs) runs the same chain.

use super::AdminPlane;
use crate::config::{Provider, Route, Target};
use crate::exchange::side::call_once;
use crate::record::RequestRecord;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use filters::canonical::{Part, Usage};
use filters::error::ApiError;
use filters::failure::Failure;
use serde_json::{json, Value};
use std::sync::Arc;

pub const DEFAULT_MESSAGE: &str = "Reply with the single word OK.";
/// Enough for a word or two: a test should cost next to nothing.
pub const MAX_TOKENS: u64 = 16;
/// The first characters of the answer shown.
const SHOWN_CHARS: usize = 200;

/// What the caller asked to test.
#[derive(Debug, Default, PartialEq)]
pub struct Ask {
    pub target: Option<usize>,
    pub model: Option<String>,
    pub message: String,
}

/// The longest test message: a test is a tiny request, not a way to send
/// a prompt past the breakers and limits.
const MAX_MESSAGE: usize = 8 * 1024;

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
                ("message" | "test_message", Value::String(s)) if s.len() > MAX_MESSAGE => {
                    return Err(ApiError::invalid(format!(
                        "{k}: a test message is at most {MAX_MESSAGE} bytes"
                    )))
                }
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

/// What one target answered to the test.
#[derive(Debug, Clone, PartialEq)]
pub struct Tried {
    /// Its place in the model's chain.
    pub index: usize,
    pub provider: Arc<str>,
    pub model: Arc<str>,
    /// The upstream's HTTP status; `None` when none came (connect error,
    /// timeout) or the request could not be encoded.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The answer's text, its first `SHOWN_CHARS` characters.
    pub text: Option<String>,
    /// Why it failed, in words; `None` when it answered.
    pub error: Option<String>,
    /// What the answer reported using.
    pub usage: Option<Usage>,
    /// The call's entry in `rec.attempts` (none when nothing was sent).
    pub attempt: Option<usize>,
}

impl Tried {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// The admin API's shape (the UI reads it).
    fn admin_json(&self) -> Value {
        json!({"provider": &*self.provider, "model": &*self.model, "status": self.status,
               "ok": self.ok(), "latency_ms": self.latency_ms, "text": self.text,
               "error": self.error, "index": self.index})
    }

    /// `POST /v1/models/{model}/test`'s shape, the one earlier gateways
    /// answered: `{provider, model, success, status, latency_ms,
    /// response, error}`.
    pub fn v1_json(&self) -> Value {
        json!({"provider": &*self.provider, "model": &*self.model, "success": self.ok(),
               "status": self.status, "latency_ms": self.latency_ms,
               "response": self.text, "error": self.error})
    }
}

/// One target's result.
async fn one(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    (index, target): (usize, &Target),
    message: &str,
) -> Tried {
    let provider = &target.provider;
    let started = std::time::Instant::now();
    let mut attempt = None;
    let outcome = match body_for(provider, &target.model, message) {
        Ok(body) => {
            let path = target.generate_path(false).to_owned();
            let answer = call_once(upstream, live, rec, target, ("POST", &path), body).await;
            attempt = rec.attempts.len().checked_sub(1);
            answer.map_err(|f| (status_of(&f), describe(&f)))
        }
        Err(e) => Err((None, e.message.clone())),
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut tried = Tried {
        index,
        provider: provider.name.clone(),
        model: target.model.clone(),
        status: None,
        latency_ms,
        text: None,
        error: None,
        usage: None,
        attempt,
    };
    match outcome {
        Ok(answer) => {
            let decoded = filters::dialect::decode_response(provider.dialect, &answer).ok();
            tried.status = Some(200);
            tried.text = Some(
                decoded
                    .as_ref()
                    .map(|r| first_text(&r.parts))
                    .unwrap_or_default(),
            );
            tried.usage = decoded.map(|r| r.usage);
        }
        Err((status, error)) => {
            tried.status = status;
            tried.error = Some(error);
        }
    }
    tried
}

/// `targets` in order, up to the first that answers (as a client would
/// meet the chain).
pub async fn chain(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    targets: &[(usize, &Target)],
    message: &str,
) -> Vec<Tried> {
    let mut results = Vec::with_capacity(targets.len());
    for &target in targets {
        let tried = one(upstream, live, rec, target, message).await;
        let ok = tried.ok();
        results.push(tried);
        if ok {
            break;
        }
    }
    results
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
    let results: Vec<Value> = chain(&plane.upstream, live, rec, &chosen, &ask.message)
        .await
        .iter()
        .map(Tried::admin_json)
        .collect();
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
    let mut r = one(&plane.upstream, live, rec, (0, &target), &ask.message)
        .await
        .admin_json();
    // A provider's test is of no chain.
    if let Value::Object(m) = &mut r {
        m.remove("index");
    }
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
    filters::canonical::text_of(parts)
        .chars()
        .take(SHOWN_CHARS)
        .collect()
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
        Failure::Login(m) => format!("login failed: {m}"),
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
