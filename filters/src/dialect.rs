//! The one place that dispatches on the dialect. Every operation the shell
//! needs — decode or encode a request, a response or a stream, render an
//! error, read usage, authenticate upstream — is matched here, exhaustively,
//! so a new dialect is a new folder plus one arm in each match below.

use crate::canonical::{
    EmbedRequest, EmbedResponse, HostedTool, Issuer, Observed, Request, Response, StreamEvent,
    Usage,
};
use crate::error::ApiError;
use crate::wire::json_peek;
use crate::wire::sse::SseEvent;
use crate::{anthropic, gemini, openai_chat, openai_responses};
use bytes::BytesMut;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

/// The wire dialects ModelSwitch speaks, to clients and to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAiChat,
    Anthropic,
    Gemini,
    OpenAiResponses,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::OpenAiResponses => "openai-responses",
        }
    }

    /// Whose opaque reasoning tokens this dialect carries (OpenAI Chat
    /// carries none).
    pub fn issuer(self) -> Option<Issuer> {
        match self {
            Self::OpenAiChat => None,
            Self::Anthropic => Some(Issuer::Anthropic),
            Self::Gemini => Some(Issuer::Gemini),
            Self::OpenAiResponses => Some(Issuer::OpenAi),
        }
    }

    /// The model is named in the URL path, not the body (Gemini).
    pub fn model_in_path(self) -> bool {
        self == Self::Gemini
    }
}

/// How a request is encoded for one upstream, per upstream dialect.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    pub openai: openai_chat::request::EncodeOptions,
    pub anthropic: anthropic::request::EncodeOptions,
    pub gemini: gemini::request::EncodeOptions,
    pub responses: openai_responses::request::EncodeOptions,
}

pub fn decode_request(dialect: Dialect, body: &[u8]) -> Result<Request, ApiError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::request::decode(body),
        Dialect::Anthropic => anthropic::request::decode(body),
        Dialect::Gemini => gemini::request::decode(body),
        Dialect::OpenAiResponses => openai_responses::request::decode(body),
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
        Dialect::OpenAiChat => {
            HostedTool::check_all(&req.hosted_tools, None, "OpenAI Chat")?;
            Ok(openai_chat::request::encode(
                req,
                model,
                &opts.openai,
                max_output_tokens,
            ))
        }
        Dialect::Anthropic => {
            HostedTool::check_all(&req.hosted_tools, Some(Issuer::Anthropic), "Anthropic")?;
            anthropic::request::encode(req, model, &opts.anthropic, max_output_tokens)
        }
        Dialect::Gemini => gemini::request::encode(req, model, &opts.gemini, max_output_tokens),
        Dialect::OpenAiResponses => {
            openai_responses::request::encode(req, model, &opts.responses, max_output_tokens)
        }
    }
}

pub fn decode_response(dialect: Dialect, body: &[u8]) -> Result<Response, ApiError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::decode(body),
        Dialect::Anthropic => anthropic::response::decode(body),
        Dialect::Gemini => gemini::response::decode(body),
        Dialect::OpenAiResponses => openai_responses::response::decode(body),
    }
}

pub fn encode_response(dialect: Dialect, r: &Response, model: &str) -> Value {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::encode(r, model),
        Dialect::Anthropic => anthropic::response::encode(r, model),
        Dialect::Gemini => gemini::response::encode(r, model),
        Dialect::OpenAiResponses => openai_responses::response::encode(r, model),
    }
}

/// The top-level member of a response body that holds its usage.
pub fn usage_member(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Gemini => "usageMetadata",
        _ => "usage",
    }
}

/// Usage from a body's raw usage member, in the four canonical buckets.
pub fn usage_from_raw(dialect: Dialect, raw: &[u8]) -> Option<Usage> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::response::usage_from_raw(raw),
        Dialect::Anthropic => anthropic::response::usage_from_raw(raw, Usage::default()),
        Dialect::Gemini => gemini::response::usage_from_raw(raw),
        Dialect::OpenAiResponses => openai_responses::response::usage_from_raw(raw),
    }
}

/// The HTTP status a client of `dialect` gets for `e`.
pub fn error_status(dialect: Dialect, e: &ApiError) -> u16 {
    match dialect {
        Dialect::OpenAiChat => openai_chat::error::status(e),
        Dialect::Anthropic => anthropic::error::status(e),
        Dialect::Gemini => gemini::error::status(e),
        Dialect::OpenAiResponses => openai_responses::error::status(e),
    }
}

/// The JSON body of an error response (or in-stream error) in `dialect`.
pub fn error_body(dialect: Dialect, e: &ApiError) -> Value {
    match dialect {
        Dialect::OpenAiChat => openai_chat::error::body(e),
        Dialect::Anthropic => anthropic::error::body(e),
        Dialect::Gemini => gemini::error::body(e),
        Dialect::OpenAiResponses => openai_responses::error::body(e),
    }
}

pub fn error_bytes(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    error_body(dialect, e).to_string().into_bytes()
}

/// An upstream stream in `dialect`, decoded into canonical events.
pub enum StreamDecoder {
    OpenAi(openai_chat::stream::StreamDecoder),
    Anthropic(anthropic::stream::StreamDecoder),
    Gemini(gemini::stream::StreamDecoder),
    Responses(openai_responses::stream::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(openai_chat::stream::StreamDecoder::new()),
            Dialect::Anthropic => Self::Anthropic(anthropic::stream::StreamDecoder::new()),
            Dialect::Gemini => Self::Gemini(gemini::stream::StreamDecoder::new()),
            Dialect::OpenAiResponses => {
                Self::Responses(openai_responses::stream::StreamDecoder::new())
            }
        }
    }

    pub fn feed(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        match self {
            Self::OpenAi(d) => d.feed(ev, out),
            Self::Anthropic(d) => d.feed(ev, out),
            Self::Gemini(d) => d.feed(ev, out),
            Self::Responses(d) => d.feed(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            Self::OpenAi(d) => d.finish(out),
            Self::Anthropic(d) => d.finish(out),
            Self::Gemini(d) => d.finish(out),
            Self::Responses(d) => d.finish(out),
        }
    }
}

/// What a client stream encoder needs to know besides the events.
#[derive(Debug, Clone, Default)]
pub struct ClientStream<'a> {
    /// The model name the client asked for.
    pub model: &'a str,
    /// OpenAI Chat `stream_options.include_usage`.
    pub include_usage: bool,
    /// Anthropic `message_start` must carry input tokens before any are known.
    pub estimated_input: u64,
    /// OpenAI Responses: the id the gateway minted for this response, and
    /// the one it continues.
    pub response_id: &'a str,
    pub previous_response_id: Option<&'a str>,
    /// OpenAI Chat: how reasoning is sent.
    pub reasoning: openai_chat::stream::ReasoningOutput,
}

/// Canonical events, encoded as a client stream in `dialect`.
pub enum StreamEncoder {
    OpenAi(openai_chat::stream::StreamEncoder),
    Anthropic(anthropic::stream::StreamEncoder),
    Gemini(gemini::stream::StreamEncoder),
    Responses(openai_responses::stream::StreamEncoder),
}

impl StreamEncoder {
    pub fn new(dialect: Dialect, c: &ClientStream<'_>) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(
                openai_chat::stream::StreamEncoder::new(c.model, c.include_usage)
                    .with_reasoning(c.reasoning),
            ),
            Dialect::Anthropic => Self::Anthropic(anthropic::stream::StreamEncoder::new(
                c.model,
                c.estimated_input,
            )),
            Dialect::Gemini => Self::Gemini(gemini::stream::StreamEncoder::new(c.model)),
            Dialect::OpenAiResponses => Self::Responses(
                openai_responses::stream::StreamEncoder::new(c.model, c.response_id)
                    .with_previous_response_id(c.previous_response_id),
            ),
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match self {
            Self::OpenAi(e) => e.encode(ev, out),
            Self::Anthropic(e) => e.encode(ev, out),
            Self::Gemini(e) => e.encode(ev, out),
            Self::Responses(e) => e.encode(ev, out),
        }
    }

    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        match self {
            Self::OpenAi(enc) => enc.fail(e, out),
            Self::Anthropic(enc) => enc.fail(e, out),
            Self::Gemini(enc) => enc.fail(e, out),
            Self::Responses(enc) => enc.fail(e, out),
        }
    }
}

/// A same-dialect stream forwarded event by event.
pub enum PassThrough {
    OpenAi(openai_chat::pass::PassThrough),
    Anthropic(anthropic::pass::PassThrough),
    Gemini(gemini::pass::PassThrough),
    Responses(openai_responses::pass::PassThrough),
}

impl PassThrough {
    /// `rename`: the client's model name, when it differs from upstream's.
    pub fn new(dialect: Dialect, rename: Option<&str>) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAi(openai_chat::pass::PassThrough::new(rename)),
            Dialect::Anthropic => Self::Anthropic(anthropic::pass::PassThrough::new(rename)),
            Dialect::Gemini => Self::Gemini(gemini::pass::PassThrough::new(rename)),
            Dialect::OpenAiResponses => {
                Self::Responses(openai_responses::pass::PassThrough::new(rename))
            }
        }
    }

    /// OpenAI Chat: the gateway asked for usage the client did not; its
    /// chunk is read, not forwarded. Other dialects always report usage.
    pub fn hide_usage_chunk(&mut self) {
        if let Self::OpenAi(p) = self {
            p.hide_usage_chunk();
        }
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        match self {
            Self::OpenAi(p) => p.event(ev, out),
            Self::Anthropic(p) => p.event(ev, out),
            Self::Gemini(p) => p.event(ev, out),
            Self::Responses(p) => p.event(ev, out),
        }
    }

    /// The upstream's own id for this response (OpenAI Responses).
    pub fn response_id(&self) -> Option<&str> {
        match self {
            Self::Responses(p) => p.response_id(),
            _ => None,
        }
    }

    /// Ends a same-dialect stream with the client's in-stream error. A
    /// Responses stream ends with `response.failed` continuing the
    /// upstream's own ids and sequence numbers.
    pub fn fail(&mut self, dialect: Dialect, e: &ApiError, out: &mut BytesMut) {
        match self {
            Self::Responses(p) => p.fail(e, out),
            _ => stream_error(dialect, e, out),
        }
    }

    /// The upstream closed the body: true when the stream was complete
    /// (anything the client still needs is appended to `out`).
    pub fn finish(&self, out: &mut BytesMut) -> bool {
        match self {
            Self::OpenAi(p) => p.finish(out),
            Self::Anthropic(p) => p.finish(out),
            Self::Gemini(p) => p.finish(out),
            Self::Responses(p) => p.finish(out),
        }
    }
}

/// A client-dialect keep-alive for long upstream silences.
pub fn keepalive(dialect: Dialect, out: &mut BytesMut) {
    match dialect {
        Dialect::OpenAiChat => openai_chat::stream::StreamEncoder::keepalive(out),
        Dialect::Anthropic => anthropic::stream::StreamEncoder::keepalive(out),
        Dialect::Gemini => gemini::stream::StreamEncoder::keepalive(out),
        Dialect::OpenAiResponses => openai_responses::stream::StreamEncoder::keepalive(out),
    }
}

/// An error event in the client's dialect, for a same-dialect stream.
pub fn stream_error(dialect: Dialect, e: &ApiError, out: &mut BytesMut) {
    let body = error_bytes(dialect, e);
    let name = match dialect {
        Dialect::OpenAiChat | Dialect::Gemini => None,
        Dialect::Anthropic | Dialect::OpenAiResponses => Some("error"),
    };
    crate::wire::sse::encode_event(out, name, &body);
}

/// Client headers that describe a same-dialect request (its API version
/// and betas) and so go upstream with it; a translated request has none.
pub fn forwarded_headers(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::OpenAiChat | Dialect::Gemini | Dialect::OpenAiResponses => &[],
        Dialect::Anthropic => &["anthropic-version", "anthropic-beta"],
    }
}

/// Whether a client's history holds a reasoning token the gateway tagged
/// (one it minted for unsigned thinking, or another issuer's): such a body
/// must be decoded (which drops what the upstream did not mint) rather
/// than passed through, since only the issuer may see its tokens.
pub fn carries_synthetic_signature(dialect: Dialect, body: &[u8]) -> bool {
    match dialect {
        Dialect::OpenAiChat => false,
        Dialect::Anthropic | Dialect::OpenAiResponses => {
            crate::canonical::contains_tagged_token(body)
        }
        // Gemini clients carry other vendors' tokens base64-encoded (the
        // SDK insists on base64 there).
        Dialect::Gemini => gemini::request::carries_gateway_signature(body),
    }
}

/// The generation endpoint under a provider's base path; Gemini names the
/// model and the streaming mode in the path.
pub fn generate_path(dialect: Dialect, prefix: &str, model: &str, stream: bool) -> String {
    match dialect {
        Dialect::OpenAiChat => format!("{prefix}/chat/completions"),
        Dialect::Anthropic => format!("{prefix}/v1/messages"),
        Dialect::OpenAiResponses => format!("{prefix}/responses"),
        Dialect::Gemini => {
            let model = crate::wire::http::path_segment(model);
            if stream {
                format!("{prefix}/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("{prefix}/v1beta/models/{model}:generateContent")
            }
        }
    }
}

/// Where a provider of this dialect embeds text (`None`: it cannot).
pub fn embed_path(dialect: Dialect, prefix: &str, model: &str) -> Option<String> {
    match dialect {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => Some(format!("{prefix}/embeddings")),
        Dialect::Gemini => Some(format!(
            "{prefix}/v1beta/models/{}:batchEmbedContents",
            crate::wire::http::path_segment(model)
        )),
        Dialect::Anthropic => None,
    }
}

/// Where a provider of this dialect counts a request's tokens itself
/// (`None`: the gateway estimates them).
pub fn count_tokens_path(dialect: Dialect, prefix: &str, model: &str) -> Option<String> {
    match dialect {
        Dialect::Anthropic => Some(format!("{prefix}/v1/messages/count_tokens")),
        Dialect::Gemini => Some(format!(
            "{prefix}/v1beta/models/{}:countTokens",
            crate::wire::http::path_segment(model)
        )),
        Dialect::OpenAiChat | Dialect::OpenAiResponses => None,
    }
}

/// The request member that holds the conversation, and whether it must be
/// an array (Responses `input` may also be a string).
pub fn conversation_member(dialect: Dialect) -> (&'static str, bool) {
    match dialect {
        Dialect::OpenAiChat | Dialect::Anthropic => ("messages", true),
        Dialect::Gemini => ("contents", true),
        Dialect::OpenAiResponses => ("input", false),
    }
}

/// The response member that names the model.
pub fn model_member(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Gemini => "modelVersion",
        _ => "model",
    }
}

/// The member a same-dialect body's output cap goes in when the client
/// set none.
pub fn max_tokens_member(dialect: Dialect, opts: &EncodeOptions) -> &'static str {
    match dialect {
        Dialect::OpenAiChat if opts.openai.max_completion_tokens_field => "max_completion_tokens",
        Dialect::OpenAiResponses => "max_output_tokens",
        Dialect::Gemini => "maxOutputTokens",
        _ => "max_tokens",
    }
}

/// A client's count-tokens request.
pub fn decode_count_tokens(dialect: Dialect, body: &[u8]) -> Result<Request, ApiError> {
    match dialect {
        Dialect::Gemini => gemini::request::decode_count_tokens(body),
        _ => decode_request(dialect, body),
    }
}

/// The body that asks an upstream of `dialect` to count `req`'s tokens
/// (only what its count endpoint accepts).
pub fn count_tokens_request(
    dialect: Dialect,
    req: &Request,
    model: &str,
    opts: &EncodeOptions,
) -> Result<Value, ApiError> {
    match dialect {
        Dialect::Gemini => gemini::request::count_tokens_request(req, model),
        _ => {
            // Anthropic's count endpoint refuses `max_tokens` and the like.
            const KEEP: [&str; 6] = [
                "model",
                "messages",
                "system",
                "tools",
                "tool_choice",
                "thinking",
            ];
            let mut v = encode_request(dialect, req, model, opts, None)?;
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| KEEP.contains(&k.as_str()));
            }
            Ok(v)
        }
    }
}

/// The count in an upstream's count-tokens answer.
pub fn count_tokens_answer(dialect: Dialect, body: &[u8]) -> Option<u64> {
    match dialect {
        Dialect::Gemini => gemini::request::count_tokens_from_upstream(body),
        _ => serde_json::from_slice::<Value>(body)
            .ok()?
            .get("input_tokens")?
            .as_u64(),
    }
}

/// A count-tokens answer in the client's shape.
pub fn count_tokens_body(dialect: Dialect, tokens: u64) -> Value {
    match dialect {
        Dialect::Gemini => gemini::request::count_tokens_body(tokens),
        _ => serde_json::json!({ "input_tokens": tokens }),
    }
}

/// The embeddings request body for an upstream of `dialect`.
pub fn encode_embed(dialect: Dialect, req: &EmbedRequest, model: &str) -> Value {
    match dialect {
        Dialect::Gemini => gemini::embed::encode_batch(req, model),
        _ => openai_chat::embed::encode(req, model),
    }
}

/// An upstream's embeddings answer.
pub fn decode_embed_response(dialect: Dialect, body: &[u8]) -> Result<EmbedResponse, ApiError> {
    match dialect {
        Dialect::Gemini => gemini::embed::decode_batch_response(body),
        _ => openai_chat::embed::decode_response(body),
    }
}

/// The client's embeddings answer: OpenAI's (vectors as base64 if asked),
/// or Gemini's (one `embedding` for `:embedContent`, else a batch).
pub fn encode_embed_answer(
    dialect: Dialect,
    r: &EmbedResponse,
    model: &str,
    base64: bool,
    single: bool,
) -> Value {
    match dialect {
        Dialect::Gemini => gemini::embed::encode_embed_response(r, single),
        _ => openai_chat::embed::encode_response(r, model, base64),
    }
}

/// One model in the client's shape (`GET /v1/models/{id}`).
pub fn model_entry(dialect: Dialect, name: &str) -> Value {
    match dialect {
        Dialect::Gemini => gemini::models::model(name),
        _ => model_listing(dialect, &[name])["data"][0].take(),
    }
}

/// A cheap authenticated GET for health checks: the model listing.
pub fn health_path(dialect: Dialect, prefix: &str) -> String {
    match dialect {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => format!("{prefix}/models"),
        Dialect::Anthropic => format!("{prefix}/v1/models"),
        Dialect::Gemini => format!("{prefix}/v1beta/models"),
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
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            if let Some(v) = key.and_then(|k| sensitive(format!("Bearer {k}"))) {
                h.push((http::header::AUTHORIZATION, v));
            }
        }
        Dialect::Gemini => {
            if let Some(v) = key.and_then(|k| sensitive(k.to_owned())) {
                h.push((HeaderName::from_static("x-goog-api-key"), v));
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
        Dialect::Gemini => gemini::models::listing(names),
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            json!({"object": "list", "data": names.iter().map(|n| json!({
            "id": n, "object": "model", "created": 0, "owned_by": "modelswitch"}))
            .collect::<Vec<_>>()})
        }
        Dialect::Anthropic => json!({
            "data": names.iter().map(|n| json!({"type": "model", "id": n, "display_name": n,
                "created_at": "2025-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false, "first_id": names.first(), "last_id": names.last()}),
    }
}

/// What a request asks of its output: the most tokens per answer (where
/// its dialect names them) and how many answers (OpenAI `n`, Gemini
/// `candidateCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputAsk {
    pub max_tokens: Option<u64>,
    pub choices: u64,
}

pub fn requested_output(dialect: Dialect, members: &json_peek::Members<'_>) -> OutputAsk {
    let number = |raw: &[u8]| std::str::from_utf8(raw).ok()?.trim().parse::<u64>().ok();
    let (max_tokens, choices) = match dialect {
        Dialect::OpenAiChat => (
            ["max_completion_tokens", "max_tokens"]
                .iter()
                .find_map(|m| members.raw(m).and_then(number)),
            members.raw("n").and_then(number),
        ),
        Dialect::OpenAiResponses => (members.raw("max_output_tokens").and_then(number), None),
        Dialect::Anthropic => (members.raw("max_tokens").and_then(number), None),
        Dialect::Gemini => {
            let config = members
                .raw("generationConfig")
                .and_then(|c| json_peek::members(c).ok());
            (
                config
                    .as_ref()
                    .and_then(|c| c.raw("maxOutputTokens").and_then(number)),
                config
                    .as_ref()
                    .and_then(|c| c.raw("candidateCount").and_then(number)),
            )
        }
    };
    OutputAsk {
        max_tokens,
        choices: choices.unwrap_or(1).clamp(1, 128),
    }
}

/// The rate-limit headers this dialect's SDKs read: Anthropic's family for
/// Anthropic clients, OpenAI's for everyone else (Gemini's SDKs read none,
/// and OpenAI's names are what generic tooling looks for).
pub fn rate_limit_headers(
    dialect: Dialect,
    headroom: &crate::limits::Headroom,
    now_ms: u64,
) -> crate::limits::headers::Headers {
    match dialect {
        Dialect::Anthropic => crate::limits::headers::anthropic(headroom, now_ms),
        Dialect::OpenAiChat | Dialect::OpenAiResponses | Dialect::Gemini => {
            crate::limits::headers::openai(headroom)
        }
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
            generate_path(Dialect::OpenAiChat, "/v1", "m", true),
            "/v1/chat/completions"
        );
        assert_eq!(
            generate_path(Dialect::Anthropic, "", "m", false),
            "/v1/messages"
        );
        assert_eq!(
            generate_path(Dialect::Gemini, "", "gemini-2.5-pro", true),
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            generate_path(Dialect::Gemini, "/p", "a b/c", false),
            "/p/v1beta/models/a%20b%2Fc:generateContent"
        );
        let h = credential_headers(Dialect::Gemini, Some("g-key"));
        assert_eq!(h[0].0, "x-goog-api-key");
        assert!(h[0].1.is_sensitive());
    }

    #[test]
    fn hosted_tools_reach_only_their_vendor_and_client_groups_are_left_out() {
        let body = br#"{"model":"m","input":"hi","tools":[
            {"type":"function","name":"exec_command","parameters":{"type":"object"}},
            {"type":"namespace","name":"multi_agent_v1","tools":[]}]}"#;
        let req = decode_request(Dialect::OpenAiResponses, body).unwrap();
        let opts = EncodeOptions::default();
        for d in [Dialect::OpenAiChat, Dialect::Anthropic, Dialect::Gemini] {
            let v = encode_request(d, &req, "up", &opts, None).unwrap();
            assert!(!v.to_string().contains("multi_agent_v1"), "{d:?}");
        }
        let v = encode_request(Dialect::OpenAiResponses, &req, "up", &opts, None).unwrap();
        assert!(v.to_string().contains("multi_agent_v1"));

        let body = br#"{"model":"m","input":"hi","tools":[{"type":"web_search"}]}"#;
        let req = decode_request(Dialect::OpenAiResponses, body).unwrap();
        for d in [Dialect::OpenAiChat, Dialect::Anthropic, Dialect::Gemini] {
            let e = encode_request(d, &req, "up", &opts, None).unwrap_err();
            assert!(e.message.contains("'web_search'"), "{d:?}: {}", e.message);
            assert_eq!(e.param.as_deref(), Some("tools"));
        }
        assert!(encode_request(Dialect::OpenAiResponses, &req, "up", &opts, None).is_ok());
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
