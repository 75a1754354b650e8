//! Request-path hot spots against baselines: SSE framing vs a naive split,
//! cross-dialect stream transcoding vs pass-through vs a plain copy, request
//! and response translation, the pass-through model splice vs a full JSON
//! round trip, and key / route lookups vs a linear scan.
//! Run: `cargo bench --bench transcode`; numbers in benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use filters::stream::StreamTranscoder;
use filters::wire::sse::SseDecoder;
use filters::Dialect;

/// A 200-chunk OpenAI stream, as an upstream sends it.
fn openai_stream() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for i in 0..200 {
        s.push_str(&format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":200}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

/// Reads as a TCP socket would deliver them: fixed-size pieces that cut
/// events anywhere.
fn pieces(b: &[u8]) -> Vec<&[u8]> {
    b.chunks(1460).collect()
}

fn sse(c: &mut Criterion) {
    let input = openai_stream();
    let reads = pieces(&input);
    let mut g = c.benchmark_group("sse_decode");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("SseDecoder", |b| {
        b.iter(|| {
            let mut d = SseDecoder::new();
            let mut out = Vec::with_capacity(256);
            for r in &reads {
                d.feed(r, &mut out);
            }
            d.finish(&mut out);
            black_box(out.len())
        })
    });
    // Baseline: the whole body in hand, split on blank lines (what a
    // buffering gateway does; wrong for CRLF and split reads).
    g.bench_function("baseline_split_whole_body", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(&input).unwrap();
            black_box(
                text.split("\n\n")
                    .filter_map(|e| e.strip_prefix("data: "))
                    .count(),
            )
        })
    });
    g.finish();
}

fn transcode(c: &mut Criterion) {
    let input = openai_stream();
    let reads = pieces(&input);
    let mut g = c.benchmark_group("stream_200_chunks");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("openai_to_anthropic", |b| {
        b.iter(|| {
            let mut t = StreamTranscoder::translate(
                Dialect::OpenAiChat,
                Dialect::Anthropic,
                "client",
                false,
                10,
            );
            let mut out = BytesMut::with_capacity(64 * 1024);
            for r in &reads {
                t.feed(r, &mut out);
            }
            t.finish(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("openai_pass_through_renamed", |b| {
        b.iter(|| {
            let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, Some("client"));
            let mut out = BytesMut::with_capacity(64 * 1024);
            for r in &reads {
                t.feed(r, &mut out);
            }
            t.finish(&mut out);
            black_box(out.len())
        })
    });
    // Baseline: copy bytes through untouched (the floor for any proxy).
    g.bench_function("baseline_copy", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(64 * 1024);
            for r in &reads {
                out.extend_from_slice(r);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

/// A 200-chunk upstream stream in `dialect`, written by that dialect's own
/// encoder (so every dialect's stream carries the same content).
fn stream_in(dialect: Dialect) -> Vec<u8> {
    use filters::canonical::{FinishReason, StreamEvent, Usage};
    use filters::dialect::{ClientStream, StreamEncoder};
    if dialect == Dialect::OpenAiChat {
        return openai_stream();
    }
    let c = ClientStream {
        model: "up",
        include_usage: true,
        estimated_input: 10,
        response_id: "resp_bench",
        ..ClientStream::default()
    };
    let mut enc = StreamEncoder::new(dialect, &c);
    let mut out = BytesMut::new();
    enc.encode(&StreamEvent::Start { usage: None }, &mut out);
    for i in 0..200 {
        enc.encode(&StreamEvent::Text(format!("word{i} ")), &mut out);
    }
    let usage = Usage {
        input_uncached: 10,
        output_total: 200,
        ..Usage::default()
    };
    enc.encode(&StreamEvent::Usage(usage), &mut out);
    let finish = StreamEvent::Finish {
        reason: FinishReason::Stop,
        stop_sequence: None,
    };
    enc.encode(&finish, &mut out);
    enc.encode(&StreamEvent::Done, &mut out);
    out.to_vec()
}

/// CPU per chunk of every translated pair, beside the Chat ⇄ Anthropic
/// pairs that were measured first: a new dialect should cost at most
/// 1.2× theirs.
fn dialect_pairs(c: &mut Criterion) {
    use Dialect::*;
    let pairs = [
        (OpenAiChat, Anthropic),
        (Anthropic, OpenAiChat),
        (Gemini, OpenAiChat),
        (Gemini, Anthropic),
        (OpenAiResponses, OpenAiChat),
        (OpenAiResponses, Anthropic),
        (OpenAiChat, Gemini),
        (Anthropic, Gemini),
        (OpenAiChat, OpenAiResponses),
        (Anthropic, OpenAiResponses),
        (Gemini, OpenAiResponses),
        (OpenAiResponses, Gemini),
    ];
    let mut g = c.benchmark_group("translate_200_chunks");
    g.throughput(Throughput::Elements(200));
    for (up, client) in pairs {
        let input = stream_in(up);
        let reads = pieces(&input);
        let name = format!("{}_to_{}", up.name(), client.name());
        g.bench_function(name, |b| {
            b.iter(|| {
                let c = filters::dialect::ClientStream {
                    model: "client",
                    estimated_input: 10,
                    response_id: "resp_x",
                    ..Default::default()
                };
                let mut t = StreamTranscoder::translate_for(up, client, &c);
                let mut out = BytesMut::with_capacity(64 * 1024);
                for r in &reads {
                    t.feed(r, &mut out);
                }
                t.finish(&mut out);
                assert_eq!(t.progress(), &filters::stream::Progress::Done);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// A Claude Code-sized request: system prompt, tools, a few turns.
fn anthropic_request() -> Vec<u8> {
    let tools: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"name": format!("Tool{i}"), "description": "x".repeat(400),
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}}, "required": ["command"]}}))
        .collect();
    let mut messages = Vec::new();
    for i in 0..6 {
        messages.push(serde_json::json!({"role": "user", "content": [{"type": "text", "text": "please ".repeat(200)}]}));
        messages.push(serde_json::json!({"role": "assistant", "content": [
            {"type": "text", "text": "sure ".repeat(100)},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Tool1", "input": {"command": "ls -la"}}]}));
        messages.push(serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": "file ".repeat(300)}]}));
    }
    serde_json::to_vec(&serde_json::json!({"model": "claude-x", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code. ".repeat(300), "cache_control": {"type": "ephemeral"}}],
        "tools": tools, "messages": messages}))
    .unwrap()
}

fn requests(c: &mut Criterion) {
    let body = anthropic_request();
    let mut g = c.benchmark_group("request_40KB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("anthropic_to_openai", |b| {
        b.iter(|| {
            let req = filters::anthropic::request::decode(&body).unwrap();
            let v = filters::openai_chat::request::encode(&req, "up", &Default::default(), None);
            black_box(serde_json::to_vec(&v).unwrap().len())
        })
    });
    let oa = serde_json::to_vec(&filters::openai_chat::request::encode(
        &filters::anthropic::request::decode(&body).unwrap(),
        "client",
        &Default::default(),
        None,
    ))
    .unwrap();
    g.bench_function("openai_to_anthropic", |b| {
        b.iter(|| {
            let req = filters::openai_chat::request::decode(&oa).unwrap();
            let v =
                filters::anthropic::request::encode(&req, "up", &Default::default(), None).unwrap();
            black_box(serde_json::to_vec(&v).unwrap().len())
        })
    });
    // Same dialect: splice the model name in place…
    g.bench_function("pass_through_splice", |b| {
        b.iter(|| {
            let m = filters::wire::json_peek::members(&body).unwrap();
            black_box(m.replace("model", b"\"up\"").unwrap().len())
        })
    });
    // …against the baseline a naive gateway pays: parse, set, serialise.
    g.bench_function("baseline_parse_and_reserialize", |b| {
        b.iter(|| {
            let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["model"] = serde_json::Value::String("up".into());
            black_box(serde_json::to_vec(&v).unwrap().len())
        })
    });
    g.finish();
}

fn responses(c: &mut Criterion) {
    let body = serde_json::to_vec(&serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "word ".repeat(200),
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}))
    .unwrap();
    c.bench_function("response_openai_to_anthropic", |b| {
        b.iter(|| {
            let r = filters::openai_chat::response::decode(&body).unwrap();
            black_box(
                serde_json::to_vec(&filters::anthropic::response::encode(&r, "client"))
                    .unwrap()
                    .len(),
            )
        })
    });
}

fn lookups(c: &mut Criterion) {
    let keys: Vec<String> = (0..500)
        .map(|i| format!("sk-team-member-{i:04}-0123456789abcdef"))
        .collect();
    let map: std::collections::HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let header = format!("Bearer {}", keys[371]);
    let mut g = c.benchmark_group("auth_lookup_500_keys");
    g.bench_function("credential_then_hashmap", |b| {
        b.iter(|| {
            let cred = filters::auth::credential(Some(black_box(header.as_bytes())), None).unwrap();
            black_box(map.get(cred).copied())
        })
    });
    g.bench_function("baseline_linear_scan", |b| {
        b.iter(|| {
            let cred = filters::auth::credential(Some(black_box(header.as_bytes())), None).unwrap();
            black_box(keys.iter().position(|k| k == cred))
        })
    });
    g.finish();
    let models: Vec<String> = (0..200)
        .map(|i| format!("vendor/model-family-{i}"))
        .collect();
    let routes: std::collections::HashMap<&str, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut g = c.benchmark_group("route_lookup_200_models");
    g.bench_function("hashmap", |b| {
        b.iter(|| black_box(routes.get(black_box("vendor/model-family-150")).copied()))
    });
    g.bench_function("baseline_linear_scan", |b| {
        b.iter(|| {
            black_box(
                models
                    .iter()
                    .position(|m| m == black_box("vendor/model-family-150")),
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    sse,
    transcode,
    dialect_pairs,
    requests,
    responses,
    lookups
);
criterion_main!(benches);
