//! OTLP/HTTP with the JSON encoding: an `ExportTraceServiceRequest` as the
//! OTLP specification maps protobuf to JSON — lowerCamelCase field names,
//! trace and span ids as lowercase hex (not base64), 64-bit integers as
//! decimal strings, enums as their integer values.
//!
//! JSON rather than protobuf: the `opentelemetry-proto` crate brings the
//! OpenTelemetry SDK and tonic's code generation with it, for a message of
//! five nested objects that serde writes directly; every collector that
//! speaks OTLP/HTTP accepts both encodings.

use super::context::hex;
use super::span::{Span, SpanKind, Status, Value};
use serde::Serialize;

/// The instrumentation scope: this gateway, at this version.
const SCOPE: &str = "modelswitch";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The request body for `POST {endpoint}/v1/traces`.
pub fn encode(spans: &[Span], service_name: &str) -> Vec<u8> {
    let request = ExportRequest {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: vec![
                    kv("service.name", AnyValue::String(service_name)),
                    kv("service.version", AnyValue::String(VERSION)),
                    kv("telemetry.sdk.name", AnyValue::String(SCOPE)),
                    kv("telemetry.sdk.language", AnyValue::String("rust")),
                ],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: SCOPE,
                    version: VERSION,
                },
                spans: spans.iter().map(JsonSpan::of).collect(),
            }],
        }],
    };
    // Strings, integers and finite floats: serializing cannot fail.
    serde_json::to_vec(&request).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<JsonSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_state: Option<&'a str>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    status: JsonStatus<'a>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

/// OTLP's `AnyValue`: one field named by its type.
#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(&'a str),
    /// int64: a decimal string in OTLP/JSON.
    #[serde(rename = "intValue")]
    Int(String),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "boolValue")]
    Bool(bool),
}

#[derive(Serialize)]
struct JsonStatus<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    /// STATUS_CODE_UNSET = 0, STATUS_CODE_ERROR = 2.
    code: u8,
}

fn kv<'a>(key: &'a str, value: AnyValue<'a>) -> KeyValue<'a> {
    KeyValue { key, value }
}

impl<'a> JsonSpan<'a> {
    fn of(s: &'a Span) -> Self {
        Self {
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent_span_id: s.parent_span_id.map(|p| hex(&p)),
            trace_state: s.trace_state.as_deref(),
            name: &s.name,
            // SPAN_KIND_INTERNAL = 1, SERVER = 2, CLIENT = 3.
            kind: match s.kind {
                SpanKind::Internal => 1,
                SpanKind::Server => 2,
                SpanKind::Client => 3,
            },
            start_time_unix_nano: s.start_unix_nanos.to_string(),
            end_time_unix_nano: s.end_unix_nanos.to_string(),
            attributes: s
                .attributes
                .iter()
                .map(|(k, v)| {
                    kv(
                        k,
                        match v {
                            Value::Str(s) => AnyValue::String(s),
                            Value::Int(n) => AnyValue::Int(n.to_string()),
                            // JSON has no NaN or infinity: never produced,
                            // but a zero is better than a rejected batch.
                            Value::Double(d) if d.is_finite() => AnyValue::Double(*d),
                            Value::Double(_) => AnyValue::Double(0.0),
                            Value::Bool(b) => AnyValue::Bool(*b),
                        },
                    )
                })
                .collect(),
            status: match &s.status {
                Status::Unset => JsonStatus {
                    message: "",
                    code: 0,
                },
                Status::Error(m) => JsonStatus {
                    message: m,
                    code: 2,
                },
            },
        }
    }
}
