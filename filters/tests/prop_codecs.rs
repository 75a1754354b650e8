//! Every codec on hostile input: request and response decoders of both
//! dialects return a value or a typed `ApiError`, never panic, on any JSON
//! and on any bytes; what they accept re-encodes in either dialect without
//! panicking; stream decoders and whole stream transcoders (translating
//! and passing through) take any events and any bytes, cut anywhere.
//!
//! Inputs are shaped like the dialects' own bodies (the field names they
//! read, mostly the types they expect, sometimes junk) so that generated
//! cases get past the first check and into the code that might panic.
//!
//! `PROPTEST_CASES` overrides each property's case count (`make fuzz`).

use bytes::BytesMut;
use filters::dialect::{self, EncodeOptions, StreamDecoder, StreamEncoder};
use filters::error::{ApiError, ErrorKind};
use filters::openai_chat::request::{MidSystem, ReasoningParam};
use filters::stream::StreamTranscoder;
use filters::wire::sse::SseEvent;
use filters::Dialect;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde_json::{Map, Value};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const DIALECTS: [Dialect; 4] = [
    Dialect::OpenAiChat,
    Dialect::Anthropic,
    Dialect::Gemini,
    Dialect::OpenAiResponses,
];

// ------------------------------------------------------------ generators

/// Field names the codecs read.
const KEYS: &[&str] = &[
    "type",
    "content",
    "text",
    "role",
    "id",
    "name",
    "function",
    "index",
    "model",
    "choices",
    "thinking",
    "delta",
    "tool_calls",
    "usage",
    "messages",
    "message",
    "arguments",
    "system",
    "signature",
    "max_tokens",
    "input",
    "finish_reason",
    "tool_choice",
    "content_block",
    "stop_sequence",
    "stop_reason",
    "prompt_tokens",
    "url",
    "stop",
    "source",
    "refusal",
    "reasoning_content",
    "prompt_tokens_details",
    "json_schema",
    "input_tokens",
    "data",
    "total_tokens",
    "tools",
    "tool_use_id",
    "tool_call_id",
    "stream",
    "image_url",
    "completion_tokens",
    "cached_tokens",
    "temperature",
    "strict",
    "schema",
    "output_tokens",
    "input_schema",
    "cache_read_input_tokens",
    "cache_control",
    "stream_options",
    "reasoning_tokens",
    "reasoning_effort",
    "media_type",
    "is_error",
    "include_usage",
    "disable_parallel_tool_use",
    "description",
    "created",
    "completion_tokens_details",
    "budget_tokens",
    "top_p",
    "parameters",
    "partial_json",
    "parallel_tool_calls",
    "output_config",
    "max_completion_tokens",
    "response_format",
    "format",
    "effort",
    "error",
    "object",
    "cache_creation_input_tokens",
    "cache_write_tokens",
    "metadata",
    "user_id",
    "top_k",
    "stop_sequences",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "filename",
    "file_data",
    "detail",
    "input_audio",
    "file",
    "n",
    "logprobs",
    "thinking_tokens",
    "display",
];

/// String values the codecs dispatch on.
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "document",
    "input_audio",
    "file",
    "server_tool_use",
    "web_search",
    "json_schema",
    "json_object",
    "enabled",
    "adaptive",
    "disabled",
    "auto",
    "any",
    "none",
    "required",
    "ephemeral",
    "base64",
    "url",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "pause_turn",
    "refusal",
    "message",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "overloaded_error",
    "api_error",
    "invalid_request_error",
    "low",
    "medium",
    "high",
    "image/png",
    "application/pdf",
    "text/plain",
    "data:image/png;base64,aGk=",
    "https://x.test/a.png",
    "toolu_01",
    "call_1",
    "chatcmpl-1",
    "msg_1",
    "[DONE]",
    "",
    "{\"a\":1}",
    "{",
    "[1]",
    "null",
    "x-anthropic-billing-header: cc_version=1;\nrest",
    "ms-synthetic-sig",
    "é\u{1F600}\u{0}",
];

fn word() -> BoxedStrategy<String> {
    prop_oneof![
        5 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[a-z_]{0,6}",
    ]
    .boxed()
}

/// Numbers up to u64::MAX: token counts come from upstreams, and adding
/// usage buckets must saturate rather than overflow.
const BIG: u64 = u64::MAX;

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0u64..4).prop_map(Value::from),
        1 => (0..BIG).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => proptest::sample::select(vec![u64::from(u32::MAX) + 1, 1 << 53, BIG])
            .prop_map(Value::from),
        1 => (-1i64..1).prop_map(Value::from),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        word().prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON, with the codecs' own field names for keys.
fn junk() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        proptest::sample::select(KEYS).prop_map(str::to_owned),
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// `well` mostly, sometimes any JSON.
fn or_junk(well: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![20 => well, 1 => junk()].boxed()
}

/// Repeats weight the roles every dialect accepts.
const ROLES: &[&str] = &[
    "user",
    "user",
    "user",
    "user",
    "user",
    "user",
    "assistant",
    "assistant",
    "assistant",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
];

/// Content part and block types, text the most common as in real bodies.
const PART_TYPES: &[&str] = &[
    "text",
    "text",
    "text",
    "text",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "document",
    "input_audio",
    "file",
    "server_tool_use",
];

/// The part types and roles generated bodies draw from: one dialect's,
/// or both mixed.
#[derive(Clone, Copy)]
struct Flavour {
    parts: &'static [&'static str],
    roles: &'static [&'static str],
}

const MIXED: Flavour = Flavour {
    parts: PART_TYPES,
    roles: ROLES,
};

const OPENAI: Flavour = Flavour {
    parts: &[
        "text",
        "text",
        "text",
        "text",
        "image_url",
        "input_audio",
        "file",
        "image",
    ],
    roles: &[
        "user",
        "user",
        "user",
        "user",
        "assistant",
        "assistant",
        "assistant",
        "system",
        "developer",
        "tool",
    ],
};

const ANTHROPIC: Flavour = Flavour {
    parts: &[
        "text",
        "text",
        "text",
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
    ],
    roles: &[
        "user",
        "user",
        "user",
        "assistant",
        "assistant",
        "assistant",
    ],
};

const TYPES: &[&str] = &[
    "text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "document",
    "input_audio",
    "file",
    "server_tool_use",
    "function",
    "json_schema",
    "json_object",
    "enabled",
    "adaptive",
    "disabled",
    "auto",
    "any",
    "none",
    "tool",
    "base64",
    "url",
    "ephemeral",
    "message",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

const TOOL_CHOICES: &[&str] = &["auto", "any", "tool", "none", "required", "function"];

const REASONS: &[&str] = &[
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
];

/// One of `words` mostly: the values a field is dispatched on.
fn one_of(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    or_junk(
        prop_oneof![
            12 => proptest::sample::select(words).prop_map(Value::from),
            1 => word().prop_map(Value::String),
        ]
        .boxed(),
    )
}

fn text() -> BoxedStrategy<Value> {
    or_junk(word().prop_map(Value::String).boxed())
}

/// A count or index: small mostly.
fn num() -> BoxedStrategy<Value> {
    or_junk(
        prop_oneof![
            8 => (0u64..5).prop_map(Value::from),
            3 => (0u64..100_000).prop_map(Value::from),
            1 => number(),
        ]
        .boxed(),
    )
}

fn flag() -> BoxedStrategy<Value> {
    or_junk(any::<bool>().prop_map(Value::Bool).boxed())
}

/// An object with each of `fields` present or not (almost always for a
/// name starting with `!`: a required field), and sometimes an extra member
/// of any name.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let members: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, v)| {
            let (k, p) = match k.strip_prefix('!') {
                Some(k) => (k, 0.97),
                None => (k, 0.4),
            };
            proptest::option::weighted(p, v.prop_map(move |v| (k.to_owned(), v))).boxed()
        })
        .collect();
    let extra = proptest::option::weighted(
        0.05,
        (
            proptest::sample::select(KEYS).prop_map(str::to_owned),
            junk(),
        ),
    );
    (members, extra)
        .prop_map(|(members, extra)| {
            let mut m: Map<String, Value> = members.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    list_of(item, 0, max)
}

fn list_of(item: BoxedStrategy<Value>, min: usize, max: usize) -> BoxedStrategy<Value> {
    or_junk(
        proptest::collection::vec(item, min..max)
            .prop_map(Value::Array)
            .boxed(),
    )
}

/// A content part or block of either dialect.
fn part(f: Flavour) -> BoxedStrategy<Value> {
    let leaf_part = object(vec![
        ("!type", one_of(f.parts)),
        ("!text", text()),
        (
            "image_url",
            or_junk(object(vec![("url", text()), ("detail", text())])),
        ),
        (
            "source",
            object(vec![
                ("type", one_of(TYPES)),
                ("media_type", text()),
                ("data", text()),
                ("url", text()),
            ]),
        ),
        ("id", text()),
        ("name", text()),
        ("input", junk()),
        ("thinking", text()),
        ("signature", text()),
        ("data", text()),
        ("cache_control", object(vec![("type", one_of(TYPES))])),
        (
            "input_audio",
            object(vec![("data", text()), ("format", text())]),
        ),
        (
            "file",
            object(vec![("file_data", text()), ("filename", text())]),
        ),
    ]);
    let with_content = (
        leaf_part.clone(),
        object(vec![
            ("tool_use_id", text()),
            ("is_error", flag()),
            (
                "content",
                or_junk(prop_oneof![text(), list(leaf_part.clone(), 3)].boxed()),
            ),
        ]),
    )
        .prop_map(|(mut a, b)| {
            if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
                a.extend(b);
            }
            a
        })
        .boxed();
    prop_oneof![leaf_part, with_content].boxed()
}

fn tool_call() -> BoxedStrategy<Value> {
    object(vec![
        ("index", num()),
        ("!id", text()),
        ("!type", one_of(TYPES)),
        (
            "!function",
            object(vec![("!name", text()), ("!arguments", text())]),
        ),
    ])
}

fn content(f: Flavour) -> BoxedStrategy<Value> {
    or_junk(prop_oneof![text(), list(part(f), 4)].boxed())
}

fn message(f: Flavour) -> BoxedStrategy<Value> {
    object(vec![
        ("!role", one_of(f.roles)),
        ("!content", content(f)),
        ("tool_calls", list(tool_call(), 3)),
        ("tool_call_id", text()),
        ("name", text()),
        ("reasoning_content", text()),
        ("refusal", text()),
    ])
}

fn tool() -> BoxedStrategy<Value> {
    object(vec![
        ("type", one_of(TYPES)),
        ("!name", text()),
        ("description", text()),
        ("input_schema", junk()),
        ("strict", flag()),
        (
            "function",
            object(vec![
                ("!name", text()),
                ("description", text()),
                ("parameters", junk()),
            ]),
        ),
    ])
}

fn request(f: Flavour) -> BoxedStrategy<Value> {
    object(vec![
        ("!model", text()),
        ("!messages", list_of(message(f), 1, 4)),
        ("system", content(f)),
        ("tools", list(tool(), 3)),
        (
            "tool_choice",
            or_junk(
                prop_oneof![
                    one_of(TOOL_CHOICES),
                    object(vec![
                        ("type", one_of(TOOL_CHOICES)),
                        ("name", text()),
                        ("disable_parallel_tool_use", flag()),
                        ("function", object(vec![("name", text())])),
                    ]),
                ]
                .boxed(),
            ),
        ),
        ("stream", flag()),
        ("stream_options", object(vec![("include_usage", flag())])),
        ("max_tokens", num()),
        ("max_completion_tokens", num()),
        ("temperature", num()),
        ("top_p", num()),
        ("top_k", num()),
        ("n", num()),
        ("seed", num()),
        (
            "stop",
            or_junk(prop_oneof![text(), list(text(), 3)].boxed()),
        ),
        ("stop_sequences", list(text(), 3)),
        (
            "thinking",
            object(vec![("type", one_of(TYPES)), ("budget_tokens", num())]),
        ),
        ("reasoning_effort", text()),
        (
            "output_config",
            object(vec![("effort", text()), ("format", junk())]),
        ),
        (
            "response_format",
            object(vec![
                ("type", one_of(TYPES)),
                (
                    "json_schema",
                    object(vec![
                        ("name", text()),
                        ("schema", junk()),
                        ("strict", flag()),
                    ]),
                ),
            ]),
        ),
        ("metadata", object(vec![("user_id", text())])),
        ("parallel_tool_calls", flag()),
    ])
}

fn usage() -> BoxedStrategy<Value> {
    object(vec![
        ("prompt_tokens", num()),
        ("completion_tokens", num()),
        ("total_tokens", num()),
        (
            "prompt_tokens_details",
            object(vec![("cached_tokens", num())]),
        ),
        (
            "completion_tokens_details",
            object(vec![("reasoning_tokens", num())]),
        ),
        ("input_tokens", num()),
        ("output_tokens", num()),
        ("cache_read_input_tokens", num()),
        ("cache_creation_input_tokens", num()),
    ])
}

fn error() -> BoxedStrategy<Value> {
    object(vec![
        ("type", one_of(TYPES)),
        ("message", text()),
        ("code", text()),
    ])
}

/// A response body of either dialect.
fn response(f: Flavour) -> BoxedStrategy<Value> {
    object(vec![
        ("id", text()),
        ("object", text()),
        ("type", one_of(TYPES)),
        ("role", one_of(ROLES)),
        ("model", text()),
        (
            "choices",
            list(
                object(vec![
                    ("index", num()),
                    ("message", message(f)),
                    ("delta", message(f)),
                    ("finish_reason", one_of(REASONS)),
                ]),
                3,
            ),
        ),
        ("content", list(part(f), 4)),
        ("stop_reason", one_of(REASONS)),
        ("stop_sequence", text()),
        ("usage", usage()),
        ("error", error()),
    ])
}

/// A stream event's payload of either dialect.
fn stream_payload() -> BoxedStrategy<Value> {
    let delta = object(vec![
        ("type", one_of(TYPES)),
        ("text", text()),
        ("partial_json", text()),
        ("thinking", text()),
        ("signature", text()),
        ("role", one_of(ROLES)),
        ("content", text()),
        ("reasoning_content", text()),
        ("tool_calls", list(tool_call(), 3)),
        ("stop_reason", one_of(REASONS)),
        ("stop_sequence", text()),
    ]);
    object(vec![
        ("type", one_of(TYPES)),
        ("id", text()),
        ("model", text()),
        ("index", num()),
        ("message", response(MIXED)),
        ("content_block", part(MIXED)),
        ("delta", delta.clone()),
        (
            "choices",
            list(
                object(vec![
                    ("index", num()),
                    ("delta", delta),
                    ("finish_reason", one_of(REASONS)),
                ]),
                3,
            ),
        ),
        ("usage", usage()),
        ("error", error()),
    ])
}

fn sse_event() -> BoxedStrategy<SseEvent> {
    let event = prop_oneof![
        3 => Just(String::new()),
        3 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let data = prop_oneof![
        8 => stream_payload().prop_map(|v| v.to_string()),
        1 => Just("[DONE]".to_owned()),
        1 => any::<String>(),
        1 => junk().prop_map(|v| v.to_string()),
    ];
    (event, data)
        .prop_map(|(event, data)| SseEvent { event, data })
        .boxed()
}

/// Events framed as an upstream would send them (data split on newlines
/// into several `data:` lines), or raw bytes.
fn wire(events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in events {
        if !ev.event.is_empty() && !ev.event.contains(['\n', '\r']) {
            out.extend_from_slice(format!("event: {}\n", ev.event).as_bytes());
        }
        for line in ev.data.split(['\n', '\r']) {
            out.extend_from_slice(format!("data: {line}\n").as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn chunks<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at.into_iter().chain([bytes.len()]) {
        if cut > start {
            out.push(&bytes[start..cut]);
            start = cut;
        }
    }
    out
}

fn options(v: u8) -> EncodeOptions {
    let mut o = EncodeOptions::default();
    o.openai.max_completion_tokens_field = v & 1 == 1;
    // Every way of asking for reasoning, and reasoning sent back or not.
    o.openai.reasoning = [
        ReasoningParam::None,
        ReasoningParam::Effort,
        ReasoningParam::EnableThinking,
        ReasoningParam::Thinking,
        ReasoningParam::Reasoning,
        ReasoningParam::ChatTemplateKwargs,
    ][usize::from(v >> 5) % 6];
    o.openai.reasoning_history = v & 2 == 2;
    o.openai.mid_system = match (v >> 2) & 3 {
        0 => MidSystem::Keep,
        1 => MidSystem::DemoteToUser,
        2 => MidSystem::MergeIntoLeading,
        _ => MidSystem::Drop,
    };
    o.anthropic.mid_system = v & 16 == 16;
    o
}

// ------------------------------------------------------------ checks

fn decode_requests(body: &[u8], opts: u8, max_out: Option<u64>) {
    for d in DIALECTS {
        if let Ok(req) = dialect::decode_request(d, body) {
            for to in DIALECTS {
                if let Ok(v) = dialect::encode_request(to, &req, "m", &options(opts), max_out) {
                    let _ = v.to_string();
                }
            }
            let _ = dialect::carries_synthetic_signature(d, body);
        }
    }
}

fn decode_responses(body: &[u8]) {
    for d in DIALECTS {
        if let Ok(r) = dialect::decode_response(d, body) {
            for to in DIALECTS {
                let _ = dialect::encode_response(to, &r, "m").to_string();
            }
        }
        if let Some(u) = filters::stream::usage_of_body(d, body) {
            let _ = u.input_total();
        }
        let e = ApiError::from_upstream(400, body, None);
        for to in DIALECTS {
            let _ = dialect::error_bytes(to, &e);
            let _ = dialect::error_status(to, &e);
        }
    }
}

/// Each dialect's stream decoder, its output re-encoded for both client
/// dialects.
fn decode_stream(events: &[SseEvent]) {
    for d in DIALECTS {
        let mut dec = StreamDecoder::new(d);
        let mut encoders: Vec<StreamEncoder> = DIALECTS
            .iter()
            .map(|&to| {
                let c = filters::dialect::ClientStream {
                    model: "m",
                    include_usage: true,
                    estimated_input: 7,
                    response_id: "resp_1",
                    ..Default::default()
                };
                StreamEncoder::new(to, &c)
            })
            .collect();
        let mut decoded = Vec::new();
        let mut out = BytesMut::new();
        for ev in events {
            dec.feed(ev, &mut decoded);
            for e in decoded.drain(..) {
                for enc in &mut encoders {
                    enc.encode(&e, &mut out);
                }
            }
        }
        dec.finish(&mut decoded);
        for e in decoded.drain(..) {
            for enc in &mut encoders {
                enc.encode(&e, &mut out);
            }
        }
        let failure = ApiError::new(ErrorKind::Api, "cut");
        for enc in &mut encoders {
            enc.fail(&failure, &mut out);
        }
    }
}

/// Every kind of stream transcoder on the same reads.
fn transcoders() -> Vec<StreamTranscoder> {
    let mut all = Vec::new();
    for up in DIALECTS {
        for client in DIALECTS {
            all.push(StreamTranscoder::translate(up, client, "m", true, 3));
            all.push(StreamTranscoder::translate(up, client, "m", false, 0));
        }
        all.push(StreamTranscoder::pass_through(up, None));
        all.push(StreamTranscoder::pass_through(up, Some("renamed")));
        all.push(StreamTranscoder::pass_through(up, None).with_json_array());
        all.push(StreamTranscoder::translate(up, Dialect::Gemini, "m", false, 0).with_json_array());
        all.push(
            StreamTranscoder::translate(up, Dialect::OpenAiResponses, "m", false, 0)
                .with_accumulator(),
        );
    }
    all
}

fn transcode(pieces: &[&[u8]]) {
    for mut t in transcoders() {
        let mut out = BytesMut::new();
        for p in pieces {
            let _ = t.feed(p, &mut out);
            t.keepalive(&mut out);
        }
        let _ = t.finish(&mut out);
        let _ = (t.usage(), t.has_content(), t.progress());
        t.fail(&ApiError::new(ErrorKind::Timeout, "late"), &mut out);
    }
}

// ------------------------------------------------------------ properties

// Default case counts keep `cargo nextest run --workspace` quick; the
// shaped generators make the first block's cases the costly ones.
proptest! {
    #![proptest_config(config(100))]

    #[test]
    fn requests_decode_or_fail_cleanly(
        body in prop_oneof![request(OPENAI), request(ANTHROPIC), request(MIXED), junk()],
        opts in any::<u8>(),
        max_out in proptest::option::of(0u64..100_000),
    ) {
        decode_requests(body.to_string().as_bytes(), opts, max_out);
    }

    #[test]
    fn stream_decoders_take_any_events(events in proptest::collection::vec(sse_event(), 0..12)) {
        decode_stream(&events);
    }

    #[test]
    fn transcoders_take_any_stream_cut_anywhere(
        events in proptest::collection::vec(sse_event(), 0..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let bytes = wire(&events);
        transcode(&chunks(&bytes, &cuts));
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn responses_decode_or_fail_cleanly(
        body in prop_oneof![response(OPENAI), response(ANTHROPIC), response(MIXED), junk()],
    ) {
        decode_responses(body.to_string().as_bytes());
    }

    #[test]
    fn bodies_of_any_bytes_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_requests(&bytes, 0, None);
        decode_responses(&bytes);
    }

    #[test]
    fn cut_bodies_fail_cleanly(body in request(MIXED), cut in any::<prop::sample::Index>()) {
        let bytes = body.to_string().into_bytes();
        let cut = cut.index(bytes.len() + 1);
        decode_requests(&bytes[..cut], 0, None);
        decode_responses(&bytes[..cut]);
    }

    #[test]
    fn transcoders_take_any_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let pieces: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        transcode(&pieces);
    }
}
