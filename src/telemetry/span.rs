//! Spans built after the fact from the request record: a span is plain
//! data (ids, times, attributes, status), made once the request has ended,
//! so nothing of tracing runs while the request is served.
//!
//! Names and attributes follow the OpenTelemetry GenAI semantic
//! conventions: `{gen_ai.operation.name} {model}`, `gen_ai.*` for the
//! model call and its usage, `server.*`, `http.*` and `error.type` as the
//! general conventions define them. The gateway's routing decisions go
//! under `modelswitch.*`: which key asked (by name), the client's dialect,
//! each attempt's outcome, position in the chain and provider key (by
//! index: never a fragment of the key).

use super::context::TraceParent;
use crate::record::{Attempt, AttemptOutcome, RequestRecord};
use filters::canonical::Usage;
use filters::failure::FailureKind;
use filters::Dialect;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One span, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The caller's `tracestate`, carried on the span that continues it.
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: Status,
}

/// OTLP's span kinds that the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A target skipped without a call: a decision, not a request.
    Internal,
    /// The client's request to the gateway.
    Server,
    /// One call to an upstream.
    Client,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Unset,
    Error(String),
}

impl Span {
    #[cfg(test)]
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find_map(|(k, v)| (*k == key).then_some(v))
    }
}

/// Turns the record's monotonic instants into Unix time: the wall clock
/// read once, when the spans are built, and every instant placed by its
/// distance from that moment (a wall-clock step during the request does
/// not reorder its spans).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub wall: SystemTime,
    pub at: Instant,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            at: Instant::now(),
        }
    }

    pub fn unix_nanos(&self, t: Instant) -> u64 {
        let wall = match t.checked_duration_since(self.at) {
            Some(after) => self.wall.checked_add(after),
            None => self.wall.checked_sub(self.at.duration_since(t)),
        };
        wall.and_then(|w| w.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// What the client's request says beyond the record.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// `gen_ai.operation.name` of the client's call.
    pub operation: &'static str,
    pub method: String,
    pub path: String,
    pub parent: Option<TraceParent>,
    pub trace_state: Option<String>,
}

/// `gen_ai.operation.name` for a call in `dialect`: Gemini's
/// `generateContent` has a name of its own in the conventions.
pub fn operation(dialect: Dialect, embeddings: bool) -> &'static str {
    match (embeddings, dialect) {
        (true, _) => "embeddings",
        (false, Dialect::Gemini) => "generate_content",
        (false, _) => "chat",
    }
}

/// `gen_ai.provider.name` (and the older `gen_ai.system`) by the API a
/// provider speaks: the conventions' well-known values.
fn provider_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => "openai",
        Dialect::Anthropic => "anthropic",
        Dialect::Gemini => "gcp.gemini",
    }
}

/// Longest status message kept: the client's error text, which can be long.
const MAX_MESSAGE: usize = 256;

/// The request's span and one child per attempt, ids from `rng`; `clock`
/// is the moment the request ended.
pub fn build(
    rec: &RequestRecord,
    inbound: &Inbound,
    clock: &Clock,
    rng: &mut fastrand::Rng,
) -> Vec<Span> {
    let trace_id = match &inbound.parent {
        Some(p) => p.trace_id,
        None => rng.u128(1..).to_be_bytes(),
    };
    let root_id = span_id(rng);
    let mut spans = Vec::with_capacity(1 + rec.attempts.len());
    spans.push(request_span(rec, inbound, clock, trace_id, root_id));
    let operation = |a: &Attempt| operation(a.provider.dialect, inbound.operation == "embeddings");
    for (position, a) in rec.attempts.iter().enumerate() {
        let served = rec.result.served_by == Some(position);
        spans.push(attempt_span(
            a,
            operation(a),
            position,
            served,
            rec,
            clock,
            trace_id,
            root_id,
            rng,
        ));
    }
    spans
}

fn span_id(rng: &mut fastrand::Rng) -> [u8; 8] {
    rng.u64(1..).to_be_bytes()
}

fn request_span(
    rec: &RequestRecord,
    inbound: &Inbound,
    clock: &Clock,
    trace_id: [u8; 16],
    span_id: [u8; 8],
) -> Span {
    let model = rec.client.model.as_deref();
    let served = rec.served_by();
    let mut attrs: Vec<(&'static str, Value)> = Vec::with_capacity(24);
    attrs.push(("gen_ai.operation.name", str(inbound.operation)));
    if let Some(m) = model {
        attrs.push(("gen_ai.request.model", str(m)));
    }
    if let Some(a) = served {
        let name = provider_name(a.provider.dialect);
        attrs.push(("gen_ai.provider.name", str(name)));
        attrs.push(("gen_ai.system", str(name)));
        attrs.push(("gen_ai.response.model", str(&a.model)));
        attrs.push(("modelswitch.provider", str(&a.provider.name)));
    }
    if let Some(u) = &rec.result.usage {
        usage(&mut attrs, u);
    }
    attrs.push(("http.request.method", str(&inbound.method)));
    attrs.push(("url.path", str(&inbound.path)));
    if rec.result.status != 0 {
        attrs.push((
            "http.response.status_code",
            Value::Int(i64::from(rec.result.status)),
        ));
    }
    attrs.push(("modelswitch.request.id", str(&rec.id)));
    if let Some(k) = &rec.client.key_name {
        attrs.push(("modelswitch.key.name", str(k)));
    }
    if let Some(d) = rec.client.dialect {
        attrs.push(("modelswitch.client.dialect", str(d.name())));
    }
    attrs.push(("modelswitch.stream", Value::Bool(rec.client.stream)));
    attrs.push(("modelswitch.attempts", int(rec.attempts.len())));
    if let Some(i) = rec.result.served_by {
        // How far down the chain the answer came from (0: the first).
        attrs.push(("modelswitch.fallback.position", int(i)));
    }
    // An answer the client never got in full, or an error it got.
    let failed = rec.result.status >= 400 || (rec.result.status == 0 && served.is_none());
    let status = if failed {
        let kind = match rec.result.status {
            0 => "no_response".to_owned(),
            499 => "client_left".to_owned(),
            s => s.to_string(),
        };
        attrs.push(("error.type", Value::Str(kind.clone())));
        Status::Error(clip(rec.result.error.as_deref().unwrap_or(&kind)))
    } else {
        Status::Unset
    };
    Span {
        trace_id,
        span_id,
        parent_span_id: inbound.parent.map(|p| p.span_id),
        trace_state: inbound.trace_state.clone(),
        name: span_name(inbound.operation, model),
        kind: SpanKind::Server,
        start_unix_nanos: clock.unix_nanos(rec.started),
        end_unix_nanos: clock.unix_nanos(clock.at),
        attributes: attrs,
        status,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the attempt, where it sits in its request and trace, and the ids"
)]
fn attempt_span(
    a: &Attempt,
    operation: &'static str,
    position: usize,
    served: bool,
    rec: &RequestRecord,
    clock: &Clock,
    trace_id: [u8; 16],
    parent: [u8; 8],
    rng: &mut fastrand::Rng,
) -> Span {
    let provider = &a.provider;
    let name = provider_name(provider.dialect);
    let called = matches!(
        a.outcome,
        AttemptOutcome::Ok | AttemptOutcome::ClientLeft | AttemptOutcome::Failed(_)
    );
    let mut attrs: Vec<(&'static str, Value)> = Vec::with_capacity(20);
    attrs.push(("gen_ai.operation.name", str(operation)));
    attrs.push(("gen_ai.provider.name", str(name)));
    attrs.push(("gen_ai.system", str(name)));
    attrs.push(("gen_ai.request.model", str(&a.model)));
    if served {
        attrs.push(("gen_ai.response.model", str(&a.model)));
        if let Some(u) = &rec.result.usage {
            usage(&mut attrs, u);
        }
    }
    // Replicas share a provider: which one served is not recorded.
    let one_host = provider
        .replicas
        .as_ref()
        .is_none_or(|r| r.specs.len() == 1);
    if one_host {
        attrs.push(("server.address", str(&provider.host)));
        attrs.push(("server.port", Value::Int(i64::from(provider.port))));
    }
    if let AttemptOutcome::Failed(FailureKind::Status(s)) = a.outcome {
        attrs.push(("http.response.status_code", Value::Int(i64::from(s))));
    }
    attrs.push(("modelswitch.provider", str(&provider.name)));
    attrs.push((
        "modelswitch.attempt.outcome",
        Value::Str(a.outcome.to_string()),
    ));
    attrs.push(("modelswitch.fallback.position", int(position)));
    if let Some(k) = a.key {
        attrs.push(("modelswitch.provider.key_index", int(k)));
    }
    if let Some(t) = a.to_first_event {
        attrs.push(("modelswitch.time_to_first_event_ms", ms(t)));
    }
    let status = match a.outcome {
        AttemptOutcome::Failed(kind) => {
            let kind = kind.to_string();
            attrs.push(("error.type", Value::Str(kind.clone())));
            Status::Error(kind)
        }
        _ => Status::Unset,
    };
    let start = clock.unix_nanos(a.started);
    Span {
        trace_id,
        span_id: span_id(rng),
        parent_span_id: Some(parent),
        trace_state: None,
        name: span_name(operation, Some(&a.model)),
        kind: if called {
            SpanKind::Client
        } else {
            SpanKind::Internal
        },
        start_unix_nanos: start,
        // Instants from two clocks (the exchange's and the record's) can
        // disagree by a hair: a span never ends before it starts.
        end_unix_nanos: clock.unix_nanos(a.ended).max(start),
        attributes: attrs,
        status,
    }
}

/// The usage attributes: input counts every input token, cached or not,
/// and output every output token, reasoning included (as the conventions
/// ask); the cache and reasoning parts only when there are some.
fn usage(attrs: &mut Vec<(&'static str, Value)>, u: &Usage) {
    attrs.push(("gen_ai.usage.input_tokens", tokens(u.input_total())));
    attrs.push(("gen_ai.usage.output_tokens", tokens(u.output_total)));
    for (key, n) in [
        ("gen_ai.usage.cache_read.input_tokens", u.cache_read),
        ("gen_ai.usage.cache_creation.input_tokens", u.cache_write),
        ("gen_ai.usage.reasoning.output_tokens", u.reasoning),
    ] {
        if n > 0 {
            attrs.push((key, tokens(n)));
        }
    }
}

fn span_name(operation: &str, model: Option<&str>) -> String {
    match model {
        Some(m) if !m.is_empty() => format!("{operation} {m}"),
        _ => operation.to_owned(),
    }
}

fn str(s: &str) -> Value {
    Value::Str(s.to_owned())
}

fn int(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn tokens(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> Value {
    Value::Double(d.as_micros() as f64 / 1000.0)
}

/// At most `MAX_MESSAGE` bytes, cut at a character boundary.
fn clip(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
