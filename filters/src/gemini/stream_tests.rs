use super::*;
use crate::wire::sse::SseDecoder;

/// A stream shaped like Google's (CRLF framing, usage on every chunk, the
/// signature on the call, finishReason and final usage on the last chunk).
fn recorded() -> String {
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me think", "thought": true}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}, "modelVersion": "gemini-2.5-flash", "responseId": "abc"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hé"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13}, "modelVersion": "gemini-2.5-flash", "responseId": "abc"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "llo 😀"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13}, "modelVersion": "gemini-2.5-flash", "responseId": "abc"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get", "args": {"city": "Paris"}}, "thoughtSignature": "SIG"},
                {"functionCall": {"name": "now", "args": {}}}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "thoughtsTokenCount": 4, "totalTokenCount": 25},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc"}),
    ];
    chunks
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
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

/// Ids of calls without one are random: blank them to compare runs.
fn blank_ids(evs: Vec<StreamEvent>) -> Vec<StreamEvent> {
    evs.into_iter()
        .map(|e| match e {
            StreamEvent::ToolCallStart { index, name, id } => {
                assert!(id.starts_with("call_"), "{id}");
                StreamEvent::ToolCallStart {
                    index,
                    id: String::new(),
                    name,
                }
            }
            e => e,
        })
        .collect()
}

#[test]
fn decoder_gives_the_same_events_at_every_split() {
    let input = recorded();
    let whole = blank_ids(decode_in_pieces(input.as_bytes(), input.len()));
    let start_usage = Usage {
        input_uncached: 12,
        ..Usage::default()
    };
    let want = vec![
        StreamEvent::Start {
            usage: Some(start_usage),
        },
        StreamEvent::Reasoning("Let me think".into()),
        StreamEvent::Text("Hé".into()),
        StreamEvent::Usage(Usage {
            output_total: 1,
            ..start_usage
        }),
        StreamEvent::Text("llo 😀".into()),
        StreamEvent::ReasoningSignature("modelswitch-gemini:SIG".into()),
        StreamEvent::ToolCallStart {
            index: 0,
            id: String::new(),
            name: "get".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: r#"{"city":"Paris"}"#.into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: String::new(),
            name: "now".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 1,
            fragment: "{}".into(),
        },
        StreamEvent::Usage(Usage {
            input_uncached: 12,
            output_total: 13,
            reasoning: 4,
            ..Usage::default()
        }),
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            stop_sequence: None,
        },
        StreamEvent::Done,
    ];
    assert_eq!(whole, want);
    for piece in 1..64 {
        assert_eq!(
            blank_ids(decode_in_pieces(input.as_bytes(), piece)),
            want,
            "piece={piece}"
        );
    }
}

#[test]
fn a_stream_cut_before_its_finish_is_an_error() {
    let input = recorded();
    let cut = &input[..input.rfind("data:").unwrap()];
    let evs = decode_in_pieces(cut.as_bytes(), 7);
    assert!(
        matches!(evs.last(), Some(StreamEvent::Error(e)) if e.message.contains("before it finished"))
    );
    assert!(!evs.contains(&StreamEvent::Done));
    assert!(matches!(
        decode_in_pieces(b"", 1).as_slice(),
        [StreamEvent::Error(_)]
    ));
}

#[test]
fn error_events_blocks_and_garbage() {
    let err = "data: {\"error\": {\"code\": 429, \"message\": \"Resource exhausted\", \"status\": \"RESOURCE_EXHAUSTED\"}}\n\n";
    let evs = decode_in_pieces(err.as_bytes(), 5);
    assert!(
        matches!(evs.as_slice(), [StreamEvent::Error(e)] if e.kind == ErrorKind::RateLimited && e.message == "Resource exhausted")
    );

    let blocked = "data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"}, \"usageMetadata\": {\"promptTokenCount\": 3}}\n\n";
    let evs = decode_in_pieces(blocked.as_bytes(), 4);
    assert_eq!(
        &evs[1..],
        &[
            StreamEvent::Finish {
                reason: FinishReason::ContentFilter,
                stop_sequence: None
            },
            StreamEvent::Done
        ]
    );

    let evs = decode_in_pieces(b"data: {nope\n\ndata: {\"candidates\": []}\n\n", 3);
    assert!(matches!(evs.as_slice(), [StreamEvent::Error(e)] if e.message.contains("malformed")));
}

/// Checks an encoded stream the way google-genai reads it: only `data: `
/// lines and blank lines, each payload one JSON chunk; returns the chunks.
fn check_gemini_stream(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut chunks = Vec::new();
    for block in text.split_terminator("\n\n") {
        assert!(!block.contains('\n'), "one line per event: {block:?}");
        let data = block.strip_prefix("data: ").expect("only data: lines");
        let v: Value = serde_json::from_str(data).unwrap();
        chunks.push(v);
    }
    assert!(text.ends_with("\n\n") || text.is_empty());
    chunks
}

fn encode_all(evs: &[StreamEvent]) -> BytesMut {
    let mut enc = StreamEncoder::new("client-model");
    let mut out = BytesMut::new();
    for e in evs {
        enc.encode(e, &mut out);
    }
    out
}

#[test]
fn gemini_to_gemini_keeps_signatures_on_their_parts() {
    let evs = decode_in_pieces(recorded().as_bytes(), 9);
    let out = encode_all(&evs);
    let chunks = check_gemini_stream(&out);
    let parts: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().unwrap())
        .collect();
    assert_eq!(parts[0], &json!({"text": "Let me think", "thought": true}));
    assert_eq!(parts[1], &json!({"text": "Hé"}));
    assert_eq!(parts[3]["functionCall"]["name"], "get");
    assert_eq!(parts[3]["functionCall"]["args"], json!({"city": "Paris"}));
    assert_eq!(parts[3]["thoughtSignature"], "SIG");
    assert!(parts[4].get("thoughtSignature").is_none());
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 12, "candidatesTokenCount": 9, "thoughtsTokenCount": 4, "totalTokenCount": 25})
    );
    assert!(chunks.iter().all(|c| c["modelVersion"] == "client-model"));
    let id = &chunks[0]["responseId"];
    assert!(chunks.iter().all(|c| &c["responseId"] == id));
    // and what was encoded decodes to the same content and final usage
    let content = |evs: Vec<StreamEvent>| -> Vec<StreamEvent> {
        blank_ids(evs)
            .into_iter()
            .filter(StreamEvent::is_content)
            .collect()
    };
    let again = decode_in_pieces(&out, 11);
    assert_eq!(content(again.clone()), content(evs.clone()));
    let last_usage = |evs: &[StreamEvent]| {
        evs.iter().rev().find_map(|e| match e {
            StreamEvent::Usage(u) => Some(*u),
            _ => None,
        })
    };
    assert_eq!(last_usage(&again), last_usage(&evs));
}

#[test]
fn streamed_openai_style_tool_calls_are_sent_whole() {
    let out = encode_all(&[
        StreamEvent::Start { usage: None },
        StreamEvent::Text("checking".into()),
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_a".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: "call_b".into(),
            name: "g".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: "{\"x\":".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 1,
            fragment: "".into(),
        },
        StreamEvent::ToolCallArgs {
            index: 0,
            fragment: "1}".into(),
        },
        StreamEvent::Usage(Usage {
            input_uncached: 7,
            cache_read: 3,
            output_total: 9,
            reasoning: 2,
            ..Usage::default()
        }),
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            stop_sequence: None,
        },
        StreamEvent::Done,
    ]);
    let chunks = check_gemini_stream(&out);
    assert_eq!(chunks.len(), 2);
    let last = &chunks[1]["candidates"][0];
    assert_eq!(
        last["content"]["parts"],
        json!([{"functionCall": {"name": "f", "args": {"x": 1}, "id": "call_a"}},
               {"functionCall": {"name": "g", "args": {}, "id": "call_b"}}])
    );
    assert_eq!(last["finishReason"], "STOP");
    assert_eq!(
        chunks[1]["usageMetadata"],
        json!({"promptTokenCount": 10, "cachedContentTokenCount": 3, "candidatesTokenCount": 7,
            "thoughtsTokenCount": 2, "totalTokenCount": 19})
    );
}

#[test]
fn anthropic_thinking_reaches_a_gemini_client_and_comes_back_whole() {
    let out = encode_all(&[
        StreamEvent::Start { usage: None },
        StreamEvent::Reasoning("pla".into()),
        StreamEvent::Reasoning("n".into()),
        StreamEvent::ReasoningSignature("asig".into()),
        StreamEvent::Text("answer".into()),
        StreamEvent::Finish {
            reason: FinishReason::Length,
            stop_sequence: None,
        },
        StreamEvent::Done,
    ]);
    let chunks = check_gemini_stream(&out);
    let parts: Vec<Value> = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        parts[2],
        json!({"text": "", "thought": true, "thoughtSignature": "bW9kZWxzd2l0Y2gtYW50aHJvcGljOmFzaWc="})
    );
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "MAX_TOKENS"
    );
    // the client replays the parts it got as one model turn
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": parts}, {"role": "user", "parts": [{"text": "go on"}]}]});
    let req = super::super::request::decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.messages[1].parts[0],
        Part::Reasoning(Reasoning {
            text: "plan".into(),
            signature: Some("asig".into()),
            redacted: None
        })
    );
}

#[test]
fn errors_after_commit_and_no_keepalive() {
    let out = encode_all(&[
        StreamEvent::Start { usage: None },
        StreamEvent::Text("partial".into()),
        StreamEvent::Error(ApiError::new(ErrorKind::Overloaded, "gone")),
    ]);
    let chunks = check_gemini_stream(&out);
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[1],
        json!({"error": {"code": 503, "message": "gone", "status": "UNAVAILABLE"}})
    );
    assert!(!String::from_utf8_lossy(&out).contains("finishReason"));
    let mut ka = BytesMut::new();
    StreamEncoder::keepalive(&mut ka);
    assert!(ka.is_empty());
    // an empty answer still ends with a well-formed last chunk
    let chunks = check_gemini_stream(&encode_all(&[StreamEvent::Done]));
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"],
        json!([{"text": ""}])
    );
}

#[test]
fn text_chunks_written_directly_equal_the_tree_built_ones() {
    let mut enc = StreamEncoder::new("m\"odel");
    for thought in [false, true] {
        let (mut fast, mut tree) = (BytesMut::new(), BytesMut::new());
        enc.text_part(&mut fast, "hé \"q\"\n", thought);
        let mut part = json!({"text": "hé \"q\"\n"});
        if thought {
            part["thought"] = json!(true);
        }
        enc.chunk(&mut tree, vec![part], false);
        let parse = |b: &BytesMut| -> Value {
            let text = std::str::from_utf8(b).unwrap();
            serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap()
        };
        assert_eq!(parse(&fast), parse(&tree));
    }
}
