//! The one place that dispatches on the dialect. Every operation the shell
//! needs — decode or encode a request, a response or a stream, render an
//! error, read usage, authenticate upstream — is matched here, exhaustively,
//! so a new dialect is a new folder plus one arm in each match below.

use crate::canonical::{Observed, Request, Response, StreamEvent, Usage};
use crate::error::ApiError;
use crate::wire::sse::SseEvent;
use crate::{anthropic, openai_chat};
use bytes::BytesMut;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

/// The wire dialects ModelSwitch speaks, to clients and to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAiChat,
    Anthropic,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// How a request is encoded for one upstream, per upstream dialect.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    pub openai: openai_chat::request::EncodeOptions,
    pub anthropic: anthropic::request::EncodeOptions,
}

pub fn decode_request(dialect: Dialect, body: &[u8]) -> Result<Request, ApiError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::request::decode(body),
        Dialect::Anthropic => anthropic::request::decode(body),
    }
}

pub fn encode_request(
    dialect: Dialect,
    req: &Request,
    model: &str,
    opts: &EncodeOptions,
    max_output_tokens: Option<u64>,
) -> Result<Value, ApiError> {
    match dialect {
        Dialect::OpenAiChat => Ok(openai_chat::request::encode(
            req,
            model,
            &opts.openai,
            max_output_tokens,
        )),
        Dialect::Anthropic => {
            anthropic::request::encode(req, model, &opts.anthropic, max_output_tokens)
        }
    }
}

pub fn decode_response(dialect: Dialect, body: &[u8]) -> Result<Response, ApiError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::decode(body),
        Dialect::Anthropic => anthropic::response::decode(body),
    }
}

pub fn encode_response(dialect: Dialect, r: &Response, model: &str) -> Value {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::encode(r, model),
        Dialect::Anthropic => anthropic::response::encode(r, model),
    }
}

/// Usage from a body's raw `usage` member, in the four canonical buckets.
pub fn usage_from_raw(dialect: Dialect, raw: &[u8]) -> Option<Usage> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::usage_from_raw(raw),
        Dialect::Anthropic => anthropic::response::usage_from_raw(raw, Usage::default()),
    }
}

/// The HTTP status a client of `dialect` gets for `e`.
pub fn error_status(dialect: Dialect, e: &ApiError) -> u16 {
    match dialect {
        Dialect::OpenAiChat => openai_chat::error::status(e),
        Dialect::Anthropic => anthropic::error::status(e),
    }
}

/// The JSON body of an error response (or in-stream error) in `dialect`.
pub fn error_body(dialect: Dialect, e: &ApiError) -> Value {
    match dialect {
        Dialect::OpenAiChat => openai_chat::error::body(e),
        Dialect::Anthropic => anthropic::error::body(e),
    }
}

pub fn error_bytes(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    error_body(dialect, e).to_string().into_bytes()
}

/// An upstream stream in `dialect`, decoded into canonical events.
pub enum StreamDecoder {
    OpenAi(openai_chat::stream::StreamDecoder),
    Anthropic(anthropic::stream::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(openai_chat::stream::StreamDecoder::new()),
            Dialect::Anthropic => Self::Anthropic(anthropic::stream::StreamDecoder::new()),
        }
    }

    pub fn feed(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        match self {
            Self::OpenAi(d) => d.feed(ev, out),
            Self::Anthropic(d) => d.feed(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            Self::OpenAi(d) => d.finish(out),
            Self::Anthropic(d) => d.finish(out),
        }
    }
}

/// Canonical events, encoded as a client stream in `dialect`.
pub enum StreamEncoder {
    OpenAi(openai_chat::stream::StreamEncoder),
    Anthropic(anthropic::stream::StreamEncoder),
}

impl StreamEncoder {
    /// `model` is what the client asked for; `include_usage` is the OpenAI
    /// client's `stream_options`; `estimated_input` feeds Anthropic's
    /// `message_start`, which must carry input tokens before any are known.
    pub fn new(dialect: Dialect, model: &str, include_usage: bool, estimated_input: u64) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(openai_chat::stream::StreamEncoder::new(
                model,
                include_usage,
            )),
            Dialect::Anthropic => Self::Anthropic(anthropic::stream::StreamEncoder::new(
                model,
                estimated_input,
            )),
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match self {
            Self::OpenAi(e) => e.encode(ev, out),
            Self::Anthropic(e) => e.encode(ev, out),
        }
    }

    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        match self {
            Self::OpenAi(enc) => enc.fail(e, out),
            Self::Anthropic(enc) => enc.fail(e, out),
        }
    }
}

/// A same-dialect stream forwarded event by event.
pub enum PassThrough {
    OpenAi(openai_chat::pass::PassThrough),
    Anthropic(anthropic::pass::PassThrough),
}

impl PassThrough {
    /// `rename`: the client's model name, when it differs from upstream's.
    pub fn new(dialect: Dialect, rename: Option<&str>) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(openai_chat::pass::PassThrough::new(rename)),
            Dialect::Anthropic => Self::Anthropic(anthropic::pass::PassThrough::new(rename)),
        }
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        match self {
            Self::OpenAi(p) => p.event(ev, out),
            Self::Anthropic(p) => p.event(ev, out),
        }
    }

    /// The upstream closed the body: true when the stream was complete
    /// (anything the client still needs is appended to `out`).
    pub fn finish(&self, out: &mut BytesMut) -> bool {
        match self {
            Self::OpenAi(p) => p.finish(out),
            Self::Anthropic(p) => p.finish(out),
        }
    }
}

/// A client-dialect keep-alive for long upstream silences.
pub fn keepalive(dialect: Dialect, out: &mut BytesMut) {
    match dialect {
        Dialect::OpenAiChat => openai_chat::stream::StreamEncoder::keepalive(out),
        Dialect::Anthropic => anthropic::stream::StreamEncoder::keepalive(out),
    }
}

/// An error event in the client's dialect, for a same-dialect stream.
pub fn stream_error(dialect: Dialect, e: &ApiError, out: &mut BytesMut) {
    let body = error_bytes(dialect, e);
    let name = match dialect {
        Dialect::OpenAiChat => None,
        Dialect::Anthropic => Some("error"),
    };
    crate::wire::sse::encode_event(out, name, &body);
}

/// Client headers that describe a same-dialect request (its API version
/// and betas) and so go upstream with it; a translated request has none.
pub fn forwarded_headers(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::OpenAiChat => &[],
        Dialect::Anthropic => &["anthropic-version", "anthropic-beta"],
    }
}

/// Whether a client's history holds a reasoning signature the gateway
/// minted for unsigned thinking: such a body must be decoded (which drops
/// it) rather than passed through, since only the issuer may see it.
pub fn carries_synthetic_signature(dialect: Dialect, body: &[u8]) -> bool {
    match dialect {
        Dialect::OpenAiChat => false,
        Dialect::Anthropic => {
            // Any token the gateway tagged (its own or another issuer's).
            let tag = b"modelswitch-";
            memchr::memmem::find(body, tag).is_some()
        }
    }
}

/// The generation endpoint under a provider's base path.
pub fn generate_path(dialect: Dialect, prefix: &str) -> String {
    match dialect {
        Dialect::OpenAiChat => format!("{prefix}/chat/completions"),
        Dialect::Anthropic => format!("{prefix}/v1/messages"),
    }
}

/// A cheap authenticated GET for health checks: the model listing.
pub fn health_path(dialect: Dialect, prefix: &str) -> String {
    match dialect {
        Dialect::OpenAiChat => format!("{prefix}/models"),
        Dialect::Anthropic => format!("{prefix}/v1/models"),
    }
}

/// How a request (or a health check) authenticates to a provider of this
/// dialect. Credential values are marked sensitive, so no `Debug` output
/// (and so no log of the headers) shows them.
pub fn credential_headers(dialect: Dialect, key: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
    let sensitive = |v: String| {
        HeaderValue::from_str(&v).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        })
    };
    let mut h = Vec::new();
    match dialect {
        Dialect::OpenAiChat => {
            if let Some(v) = key.and_then(|k| sensitive(format!("Bearer {k}"))) {
                h.push((http::header::AUTHORIZATION, v));
            }
        }
        Dialect::Anthropic => {
            if let Some(v) = key.and_then(|k| sensitive(k.to_owned())) {
                h.push((HeaderName::from_static("x-api-key"), v));
            }
            h.push((
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static("2023-06-01"),
            ));
        }
    }
    h
}

/// `GET /v1/models` in the client's shape.
pub fn model_listing(dialect: Dialect, names: &[&str]) -> Value {
    use serde_json::json;
    match dialect {
        Dialect::OpenAiChat => json!({"object": "list", "data": names.iter().map(|n| json!({
            "id": n, "object": "model", "created": 0, "owned_by": "modelswitch"}))
            .collect::<Vec<_>>()}),
        Dialect::Anthropic => json!({
            "data": names.iter().map(|n| json!({"type": "model", "id": n, "display_name": n,
                "created_at": "2025-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false, "first_id": names.first(), "last_id": names.last()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_sensitive_and_dialect_shaped() {
        let h = credential_headers(Dialect::OpenAiChat, Some("sk-secret"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.to_str().unwrap(), "Bearer sk-secret");
        assert!(h[0].1.is_sensitive());
        assert!(!format!("{h:?}").contains("sk-secret"));
        let h = credential_headers(Dialect::Anthropic, None);
        assert_eq!(h.len(), 1, "anthropic-version without a key");
        assert_eq!(
            generate_path(Dialect::OpenAiChat, "/v1"),
            "/v1/chat/completions"
        );
        assert_eq!(generate_path(Dialect::Anthropic, ""), "/v1/messages");
    }

    #[test]
    fn a_request_survives_both_round_trips() {
        let body = br#"{"model":"m","max_tokens":50,"system":"be brief",
            "messages":[{"role":"user","content":"hi"}]}"#;
        let canonical = decode_request(Dialect::Anthropic, body).unwrap();
        let opts = EncodeOptions::default();
        let oa = encode_request(Dialect::OpenAiChat, &canonical, "up", &opts, None).unwrap();
        let back = decode_request(Dialect::OpenAiChat, oa.to_string().as_bytes()).unwrap();
        assert_eq!(back.system, canonical.system);
        assert_eq!(back.messages, canonical.messages);
    }
}
