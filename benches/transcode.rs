//! Stream hot paths against baselines: SSE framing vs a naive split,
//! cross-dialect transcoding vs same-dialect pass-through.
//! Run: `cargo bench --bench transcode`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use filters::sse::SseDecoder;
use filters::stream::StreamTranscoder;
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
            let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, Some("client".into()));
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

criterion_group!(benches, sse, transcode);
criterion_main!(benches);
