use super::*;
use crate::wire::sse::SseDecoder;

// ------------------------------------------------------------ the checker

/// Checks an encoded stream the way the SDK helpers and Codex read it and
/// returns its events: `event:` equals `data.type`; `sequence_number`
/// counts up from 0 by one; `response.created` then `response.in_progress`
/// first; items added at contiguous output indexes, each done before the
/// next is added; every delta aimed at the open item of its kind with its
/// id and index; the end carries the same id and exactly the done items.
pub(crate) fn check_responses_stream(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut d = SseDecoder::new();
    let mut raw = Vec::new();
    d.feed(bytes, &mut raw);
    d.finish(&mut raw);
    let evs: Vec<(String, Value)> = raw
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["type"], e.event.as_str(), "event line equals data.type");
            (e.event, v)
        })
        .collect();
    for (i, (_, v)) in evs.iter().enumerate() {
        assert_eq!(v["sequence_number"], i, "sequence numbers count from 0");
    }
    assert_eq!(evs[0].0, "response.created");
    assert_eq!(evs[1].0, "response.in_progress");
    let id = evs[0].1["response"]["id"].clone();
    let mut done_items: Vec<Value> = Vec::new();
    let mut open: Option<Value> = None;
    for (name, v) in &evs[2..] {
        match name.as_str() {
            "response.output_item.added" => {
                assert!(open.is_none(), "an item is done before the next is added");
                assert_eq!(
                    v["output_index"],
                    done_items.len(),
                    "contiguous output indexes"
                );
                open = Some(v["item"].clone());
            }
            "response.output_item.done" => {
                let item = open.take().expect("done for an added item");
                assert_eq!(v["output_index"], done_items.len());
                assert_eq!(v["item"]["id"], item["id"]);
                assert_eq!(v["item"]["type"], item["type"]);
                done_items.push(v["item"].clone());
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                assert_eq!(v["response"]["id"], id, "one response id throughout");
                if name != "response.failed" {
                    assert!(open.is_none(), "every added item is done");
                    assert!(v["response"]["usage"].is_object());
                }
                assert_eq!(v["response"]["output"], Value::Array(done_items.clone()));
                assert_eq!(name, &evs.last().unwrap().0, "the end is last");
            }
            other => check_item_event(other, v, open.as_ref()),
        }
    }
    evs
}

/// A delta or part event: aimed at the open item, of the right kind.
fn check_item_event(name: &str, v: &Value, open: Option<&Value>) {
    let item = open.unwrap_or_else(|| panic!("{name} with no open item"));
    assert_eq!(v["item_id"], item["id"], "{name}: item_id of the open item");
    let kind = item["type"].as_str().unwrap();
    let expected =
        if name.starts_with("response.output_text") || name.starts_with("response.content_part") {
            assert_eq!(v["content_index"], 0);
            "message"
        } else if name.starts_with("response.reasoning_summary") {
            assert_eq!(v["summary_index"], 0);
            "reasoning"
        } else if name.starts_with("response.function_call_arguments") {
            "function_call"
        } else {
            panic!("unexpected event {name}")
        };
    assert_eq!(kind, expected, "{name} on a {kind} item");
}

fn encode_all(events: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut enc = StreamEncoder::new("client-model", "resp_test");
    let mut out = BytesMut::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    check_responses_stream(&out)
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

fn text(s: &str) -> StreamEvent {
    StreamEvent::Text(s.into())
}

fn finish(reason: FinishReason) -> StreamEvent {
    StreamEvent::Finish {
        reason,
        stop_sequence: None,
    }
}

fn usage() -> StreamEvent {
    StreamEvent::Usage(Usage {
        input_uncached: 7,
        cache_read: 3,
        output_total: 5,
        reasoning: 2,
        ..Usage::default()
    })
}

// ---------------------------------------------------------------- encoder

#[test]
fn text_stream_has_the_full_sequence() {
    let evs = encode_all(&[
        StreamEvent::Start { usage: None },
        text("Hel"),
        text("lo"),
        usage(),
        finish(FinishReason::Stop),
        StreamEvent::Done,
    ]);
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let created = &evs[0].1["response"];
    assert_eq!(created["id"], "resp_test");
    assert_eq!(created["model"], "client-model");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(evs[6].1["text"], "Hello");
    assert_eq!(evs[7].1["part"]["text"], "Hello");
    let done = &evs[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][0]["status"], "completed");
    assert_eq!(done["usage"]["input_tokens"], 10);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 3);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        2
    );
    assert_eq!(done["usage"]["total_tokens"], 15);
}

#[test]
fn reasoning_then_text_carries_the_signature() {
    let sig = signature_minted(Issuer::OpenAi, "ENC");
    let evs = encode_all(&[
        StreamEvent::Start { usage: None },
        StreamEvent::Reasoning("think".into()),
        StreamEvent::Reasoning("ing".into()),
        StreamEvent::ReasoningSignature(sig),
        text("answer"),
        finish(FinishReason::Stop),
        StreamEvent::Done,
    ]);
    assert_eq!(
        names(&evs)[2..9],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
        ]
    );
    let out = &evs.last().unwrap().1["response"]["output"];
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(
        out[0]["summary"],
        json!([{"type": "summary_text", "text": "thinking"}])
    );
    assert_eq!(out[0]["encrypted_content"], "ENC");
    assert_eq!(out[1]["type"], "message");
}

#[test]
fn a_signature_without_reasoning_text_is_its_own_item() {
    let evs = encode_all(&[
        StreamEvent::ReasoningSignature("anthropic-sig".into()),
        text("hi"),
        StreamEvent::Done,
    ]);
    let out = &evs.last().unwrap().1["response"]["output"];
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[0]["summary"], json!([]));
    let enc = out[0]["encrypted_content"].as_str().unwrap();
    assert_eq!(signature_from_client(enc, Issuer::OpenAi), "anthropic-sig");
}

#[test]
fn parallel_tool_calls_close_in_order_even_when_interleaved() {
    let start = |index: usize, id: &str| StreamEvent::ToolCallStart {
        index,
        id: id.into(),
        name: "f".into(),
    };
    let args = |index: usize, f: &str| StreamEvent::ToolCallArgs {
        index,
        fragment: f.into(),
    };
    let evs = encode_all(&[
        StreamEvent::Start { usage: None },
        text("calling"),
        start(0, "call_a"),
        args(0, "{\"x\""),
        start(1, "call_b"),
        args(1, "{\"y\":2}"),
        args(0, ":1}"),
        start(2, "call_c"),
        StreamEvent::ReasoningSignature(signature_minted(Issuer::Gemini, "g")),
        finish(FinishReason::ToolCalls),
        StreamEvent::Done,
    ]);
    let out = evs.last().unwrap().1["response"]["output"]
        .as_array()
        .unwrap()
        .clone();
    let kinds: Vec<&str> = out.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "function_call",
            "function_call",
            "function_call",
            "reasoning"
        ]
    );
    let calls: Vec<(&str, &str)> = out[1..4]
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap(),
                c["arguments"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("call_a", "{\"x\":1}"),
            ("call_b", "{\"y\":2}"),
            ("call_c", "{}")
        ]
    );
    assert!(out[1..4]
        .iter()
        .all(|c| c["id"].as_str().unwrap().starts_with("fc_")));
    // The SDK rebuilds arguments from the deltas: they must add up.
    for (i, call) in out.iter().enumerate().skip(1).take(3) {
        let streamed: String = evs
            .iter()
            .filter(|(n, v)| {
                n == "response.function_call_arguments.delta" && v["output_index"] == i
            })
            .map(|(_, v)| v["delta"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, call["arguments"].as_str().unwrap());
    }
    assert_eq!(evs.last().unwrap().0, "response.completed");
}

#[test]
fn a_cut_answer_ends_incomplete() {
    for (reason, wire) in [
        (FinishReason::Length, "max_output_tokens"),
        (FinishReason::ContentFilter, "content_filter"),
    ] {
        let evs = encode_all(&[text("par"), usage(), finish(reason), StreamEvent::Done]);
        let (name, v) = evs.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(v["response"]["status"], "incomplete");
        assert_eq!(v["response"]["incomplete_details"]["reason"], wire);
        assert_eq!(v["response"]["output"][0]["status"], "incomplete");
    }
}

#[test]
fn failure_after_commit_is_response_failed_and_nothing_after() {
    let mut enc = StreamEncoder::new("m", "resp_f");
    let mut out = BytesMut::new();
    for ev in [text("partial"), usage()] {
        enc.encode(&ev, &mut out);
    }
    let mut e = ApiError::new(ErrorKind::RateLimited, "Rate limited.");
    e.retry_after = Some("3".into());
    enc.fail(&e, &mut out);
    enc.encode(&StreamEvent::Done, &mut out);
    enc.fail(&e, &mut out);
    let evs = check_responses_stream(&out);
    let (name, v) = evs.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(
        evs.iter()
            .filter(|(n, _)| n.starts_with("response.failed"))
            .count(),
        1
    );
    assert!(!evs.iter().any(|(n, _)| n == "response.completed"));
    assert_eq!(v["response"]["status"], "failed");
    assert_eq!(v["response"]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        v["response"]["error"]["message"],
        "Rate limited. Please try again in 3s."
    );

    // A failure before anything else still starts with response.created.
    let mut enc = StreamEncoder::new("m", "resp_g");
    let mut out = BytesMut::new();
    enc.encode(
        &StreamEvent::Error(ApiError::new(ErrorKind::Api, "boom")),
        &mut out,
    );
    let evs = check_responses_stream(&out);
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    assert_eq!(evs[2].1["response"]["error"]["code"], "server_error");
}

#[test]
fn keepalive_is_a_comment() {
    let mut out = BytesMut::new();
    StreamEncoder::keepalive(&mut out);
    assert_eq!(&out[..], b": keep-alive\n\n");
}

// ---------------------------------------------------------------- decoder

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<StreamEvent> {
    let mut sse = SseDecoder::new();
    let mut raw = Vec::new();
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for c in input.chunks(piece) {
        sse.feed(c, &mut raw);
        for e in raw.drain(..) {
            dec.feed(&e, &mut out);
        }
    }
    sse.finish(&mut raw);
    for e in raw.drain(..) {
        dec.feed(&e, &mut out);
    }
    dec.finish(&mut out);
    out
}

/// What OpenAI streams for reasoning, text and two calls (abridged).
fn openai_fixture() -> String {
    let resp = |status: &str| json!({"id": "resp_up", "object": "response", "status": status, "model": "gpt-5", "output": []});
    let mut completed = resp("completed");
    completed["usage"] = json!({"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8},
        "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 29});
    sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": resp("in_progress")}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": resp("in_progress")}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Plan é"}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 1}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 1, "delta": "more"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Plan é"}, {"type": "summary_text", "text": "more"}], "encrypted_content": "ENC"}}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Hi 😀"}),
        json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": "Hi 😀"}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi 😀"}]}}),
        json!({"type": "response.output_item.added", "output_index": 2, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "f", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "{\"a\""}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": ":1}"}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": "{\"a\":1}"}),
        json!({"type": "response.output_item.done", "output_index": 2, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "f", "arguments": "{\"a\":1}"}}),
        // A call whose arguments come only with its done events.
        json!({"type": "response.output_item.added", "output_index": 3, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "g", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_2", "output_index": 3, "arguments": "{\"b\":2}"}),
        json!({"type": "response.output_item.done", "output_index": 3, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "g", "arguments": "{\"b\":2}"}}),
        json!({"type": "response.completed", "sequence_number": 99, "response": completed}),
    ])
}

#[test]
fn decodes_an_openai_stream_at_every_split() {
    let input = openai_fixture();
    let want = vec![
        StreamEvent::Start { usage: None },
        StreamEvent::Reasoning("Plan é".into()),
        StreamEvent::Reasoning("\n\n".into()),
        StreamEvent::Reasoning("more".into()),
        StreamEvent::ReasoningSignature(signature_minted(Issuer::OpenAi, "ENC")),
        StreamEvent::Text("Hi 😀".into()),
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_a".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: "{\"a\"".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: ":1}".into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: "call_b".into(),
            name: "g".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 1,
            fragment: "{\"b\":2}".into(),
        },
        StreamEvent::Usage(Usage {
            input_uncached: 12,
            cache_read: 8,
            cache_write: 0,
            output_total: 9,
            reasoning: 4,
        }),
        finish(FinishReason::ToolCalls),
        StreamEvent::Done,
    ];
    assert_eq!(decode_in_pieces(input.as_bytes(), input.len()), want);
    for piece in 1..=64 {
        assert_eq!(
            decode_in_pieces(input.as_bytes(), piece),
            want,
            "piece={piece}"
        );
    }
}

#[test]
fn items_only_in_done_events_or_only_in_completed() {
    let input = sse(&[
        json!({"type": "response.created", "response": {"id": "r"}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "m1",
            "content": [{"type": "output_text", "text": "whole"}]}}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "id": "fc_9",
            "call_id": "c9", "name": "h", "arguments": ""}}),
        json!({"type": "response.completed", "response": {"id": "r", "output": [
            {"type": "message", "id": "m1", "content": [{"type": "output_text", "text": "whole"}]},
            {"type": "reasoning", "id": "rs_late", "summary": [{"type": "summary_text", "text": "late"}]}]}}),
    ]);
    let ev = decode_in_pieces(input.as_bytes(), 5);
    assert_eq!(
        ev,
        vec![
            StreamEvent::Start { usage: None },
            StreamEvent::Text("whole".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "c9".into(),
                name: "h".into()
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into()
            },
            StreamEvent::Reasoning("late".into()),
            finish(FinishReason::ToolCalls),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn incomplete_failed_error_eof_and_garbage() {
    let ev = decode_in_pieces(
        sse(&[json!({"type": "response.incomplete", "response": {"id": "r", "output": [],
            "incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 1, "output_tokens": 2}}})])
        .as_bytes(),
        7,
    );
    assert!(matches!(ev[1], StreamEvent::Usage(u) if u.output_total == 2));
    assert_eq!(ev[2], finish(FinishReason::Length));
    assert_eq!(ev[3], StreamEvent::Done);

    let ev = decode_in_pieces(
        sse(&[
            json!({"type": "response.created", "response": {"id": "r"}}),
            json!({"type": "response.failed", "response": {"id": "r", "status": "failed",
                "error": {"code": "context_length_exceeded", "message": "too long"}}}),
            json!({"type": "response.completed", "response": {"id": "r"}}),
        ])
        .as_bytes(),
        3,
    );
    assert_eq!(ev.len(), 2, "nothing after the failure");
    assert!(
        matches!(&ev[1], StreamEvent::Error(e) if e.kind == ErrorKind::InvalidRequest && e.code.as_deref() == Some("context_length_exceeded"))
    );

    let ev = decode_in_pieces(
        b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow\"}\n\n",
        4,
    );
    assert!(
        matches!(&ev[0], StreamEvent::Error(e) if e.kind == ErrorKind::RateLimited && e.message == "slow")
    );

    let ev = decode_in_pieces(
        sse(&[json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "delta": "cut"})]).as_bytes(),
        9,
    );
    assert_eq!(ev[1], StreamEvent::Text("cut".into()));
    assert!(matches!(&ev[2], StreamEvent::Error(e) if e.message.contains("response.completed")));

    let ev = decode_in_pieces(b"data: {nope\n\n", 2);
    assert!(matches!(&ev[0], StreamEvent::Error(_)));
    assert_eq!(ev.len(), 1);
}

#[test]
fn raw_reasoning_text_is_used_when_there_are_no_summaries() {
    let input = sse(&[
        json!({"type": "response.reasoning_text.delta", "item_id": "rs", "output_index": 0, "content_index": 0, "delta": "raw"}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs", "output_index": 0, "summary_index": 0, "delta": "dup"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs",
            "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]}}),
        json!({"type": "response.completed", "response": {"id": "r"}}),
    ]);
    let ev = decode_in_pieces(input.as_bytes(), 11);
    let reasoning: Vec<&StreamEvent> = ev
        .iter()
        .filter(|e| matches!(e, StreamEvent::Reasoning(_)))
        .collect();
    assert_eq!(reasoning, [&StreamEvent::Reasoning("raw".into())]);
}

#[test]
fn what_the_encoder_writes_the_decoder_reads_back() {
    let events = vec![
        StreamEvent::Start { usage: None },
        StreamEvent::Reasoning("r".into()),
        StreamEvent::ReasoningSignature(signature_minted(Issuer::OpenAi, "ENC")),
        text("t"),
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: "{}".into(),
        },
        StreamEvent::Usage(Usage {
            input_uncached: 1,
            output_total: 2,
            ..Usage::default()
        }),
        finish(FinishReason::ToolCalls),
        StreamEvent::Done,
    ];
    let mut enc = StreamEncoder::new("m", "resp_rt");
    let mut out = BytesMut::new();
    for ev in &events {
        enc.encode(ev, &mut out);
    }
    assert_eq!(decode_in_pieces(&out, 13), events);
}
