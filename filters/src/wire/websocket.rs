//! The OpenAI Responses WebSocket protocol (Codex's `supports_websockets`
//! transport), the Pingora-free half: what a client text frame asks for,
//! the POST body it stands for, the frames an answer becomes, and the
//! socket's own memory of its last responses.
//!
//! Checked against the Codex source (codex-rs `codex-api`
//! `endpoint/responses_websocket.rs` and `common.rs`, `core` `client.rs`):
//! the client opens `GET {base_url}/responses` with
//! `OpenAI-Beta: responses_websockets=2026-02-06`, then sends one JSON
//! object per text frame, `{"type":"response.create", …Responses body…}`
//! (`ResponsesWsRequest`; newer clients also send
//! `{"type":"response.processed","response_id":…}`, which asks for no
//! answer). The server sends each SSE event's JSON as one text frame until
//! `response.completed` (or `response.failed`/`response.incomplete`); an
//! error is `{"type":"error","status":N,"error":{"type","code","message"}}`
//! (Codex reads `status`, alias `status_code`, and maps it to an HTTP
//! error). A `426` to the upgrade makes Codex fall back to SSE for good.
//! Codex offers `permessage-deflate`; a 101 that names no extension (as
//! ours) leaves the frames uncompressed. The 101's optional headers it
//! reads (`x-reasoning-included`, `x-models-etag`, `openai-model`,
//! `x-codex-turn-state`) are not needed. The pinned CLI (0.171.0) is run
//! against this in `tests/cli/test_cli.py`.
//!
//! Two things the WebSocket mode does that the POST does not:
//! - a warm-up `response.create` with `"generate": false` before the first
//!   turn: nothing is generated, but the response id it gets is the
//!   `previous_response_id` of the next request, whose `input` then holds
//!   only what is new (possibly nothing);
//! - `previous_response_id` works with `store: false` (Codex always sends
//!   it) for responses made on the same socket: the server keeps the
//!   socket's latest turns in memory. [`SocketHistory`] is that memory;
//!   a request continuing one of them is sent to the gateway's POST path
//!   with the whole conversation as its input, exactly what Codex sends
//!   over HTTP.

use serde_json::{Map, Value};
use std::collections::VecDeque;

/// The beta header value Codex sends on the upgrade; the POST the frame
/// becomes must not carry it to an HTTP upstream.
pub const BETA: &str = "responses_websockets=";

/// What one client text frame asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A response: the Responses request body (no `type`, `generate` or
    /// `client_metadata`; `stream: true`).
    Create {
        body: Map<String, Value>,
        /// `"generate": false`: a warm-up, answered without a model call.
        warmup: bool,
    },
    /// `response.processed`: an acknowledgement, answered with nothing.
    Processed,
}

/// Why a frame was refused (the socket stays open: an `error` frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub message: String,
    pub param: Option<&'static str>,
}

fn refuse(message: impl Into<String>, param: Option<&'static str>) -> FrameError {
    FrameError {
        message: message.into(),
        param,
    }
}

/// Reads a client text frame.
pub fn parse_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| refuse(format!("the frame is not valid JSON: {e}"), None))?;
    let Value::Object(mut body) = value else {
        return Err(refuse("the frame must be a JSON object", None));
    };
    let kind = match body.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(refuse("type: must be a string", Some("type"))),
        None => return Err(refuse("type: is required", Some("type"))),
    };
    match kind.as_str() {
        "response.create" => {}
        "response.processed" => return Ok(ClientFrame::Processed),
        "response.append" => {
            return Err(refuse(
                "response.append is not supported: send response.create with \
                 previous_response_id",
                Some("type"),
            ))
        }
        other => {
            return Err(refuse(
                format!("unknown frame type '{other}': expected response.create"),
                Some("type"),
            ))
        }
    }
    let warmup = match body.remove("generate") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => false,
        Some(Value::Bool(false)) => true,
        Some(_) => return Err(refuse("generate: must be true or false", Some("generate"))),
    };
    // Client-side telemetry the HTTP transport sends as headers; no
    // Responses upstream takes it as a body member.
    body.remove("client_metadata");
    // Over a socket every response streams: the events are the frames.
    body.insert("stream".into(), Value::Bool(true));
    Ok(ClientFrame::Create { body, warmup })
}

/// `input` as a list of items (a bare string is one user message).
fn input_items(input: Option<Value>) -> Vec<Value> {
    match input {
        Some(Value::Array(items)) => items,
        Some(Value::String(text)) => vec![serde_json::json!({
            "type": "message",
            "role": "user",
            "content": text,
        })],
        _ => Vec::new(),
    }
}

/// The socket's latest responses: each id with the whole conversation up
/// to and including its output, ready to be the input the next turn
/// extends. Only the last few are kept, as OpenAI keeps only a socket's
/// latest; an older id goes to the gateway's own store like any other.
#[derive(Debug, Default)]
pub struct SocketHistory {
    turns: VecDeque<(String, Vec<Value>)>,
}

/// How many of a socket's responses can be continued from memory.
const KEPT: usize = 2;

impl SocketHistory {
    /// Replaces a `previous_response_id` this socket answered with the
    /// conversation it stands for. Returns the request's whole input (to
    /// remember with the answer).
    pub fn expand(&self, body: &mut Map<String, Value>) -> Vec<Value> {
        let previous = body
            .get("previous_response_id")
            .and_then(Value::as_str)
            .and_then(|id| self.turns.iter().rev().find(|(t, _)| t == id))
            .map(|(_, items)| items.clone());
        let mut input = match &previous {
            Some(items) => items.clone(),
            None => Vec::new(),
        };
        if previous.is_some() {
            body.remove("previous_response_id");
            input.extend(input_items(body.remove("input")));
            body.insert("input".into(), Value::Array(input.clone()));
            input
        } else {
            // Not one of ours: the gateway's store or a Responses provider
            // knows it (or answers that no one does). Only what was sent
            // is known here.
            input.extend(input_items(body.get("input").cloned()));
            input
        }
    }

    /// A response ended: `input` (as [`Self::expand`] returned it) plus
    /// what the model answered, kept under the response's id.
    pub fn remember(&mut self, id: String, mut input: Vec<Value>, output: Vec<Value>) {
        input.extend(output);
        self.turns.retain(|(t, _)| *t != id);
        self.turns.push_back((id, input));
        while self.turns.len() > KEPT {
            self.turns.pop_front();
        }
    }

    /// Whether `id` is one this socket can continue from memory.
    pub fn knows(&self, id: &str) -> bool {
        self.turns.iter().any(|(t, _)| t == id)
    }
}

/// An `error` frame, from a JSON error body (`{"error":{…}}`) and its
/// HTTP status.
pub fn error_frame(status: u16, body: &[u8]) -> String {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(Value::take))
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            serde_json::json!({
                "type": "api_error",
                "code": Value::Null,
                "message": String::from_utf8_lossy(&body[..body.len().min(1024)]),
            })
        });
    serde_json::json!({"type": "error", "status": status, "error": error}).to_string()
}

/// What a relayed event means for the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Nothing to note.
    Other,
    /// `response.output_item.done`: one output item, in order.
    ItemDone(Value),
    /// The response ended (`completed`, `incomplete`, `failed`): its id
    /// and, when it says, its whole output.
    Ended {
        id: Option<String>,
        output: Option<Vec<Value>>,
        /// `completed` or `incomplete`: a turn the client may continue.
        continuable: bool,
    },
    /// An `error` event: the response is over.
    Error,
}

/// Classifies one event's JSON (`data` of an SSE event).
pub fn classify_event(data: &str) -> EventKind {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(data) else {
        return EventKind::Other;
    };
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "response.output_item.done" => {
            EventKind::ItemDone(event.remove("item").unwrap_or(Value::Null))
        }
        "response.completed" | "response.incomplete" | "response.failed" => {
            let mut response = event.remove("response").unwrap_or(Value::Null);
            let id = response
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let output = match response.get_mut("output").map(Value::take) {
                Some(Value::Array(items)) if !items.is_empty() => Some(items),
                _ => None,
            };
            EventKind::Ended {
                id,
                output,
                continuable: kind != "response.failed",
            }
        }
        "error" => EventKind::Error,
        _ => EventKind::Other,
    }
}

/// The two events that answer a warm-up (`"generate": false`): the
/// response exists, with no output, and can be continued.
pub fn warmup_events(id: &str, body: &Map<String, Value>, created_at: u64) -> [String; 2] {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let response = |status: &str| {
        serde_json::json!({
            "id": id,
            "object": "response",
            "created_at": created_at,
            "status": status,
            "model": model,
            "output": [],
            "previous_response_id": body.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "usage": if status == "completed" {
                serde_json::json!({
                    "input_tokens": 0,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 0,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 0,
                })
            } else {
                Value::Null
            },
        })
    };
    [
        serde_json::json!({
            "type": "response.created",
            "sequence_number": 0,
            "response": response("in_progress"),
        })
        .to_string(),
        serde_json::json!({
            "type": "response.completed",
            "sequence_number": 1,
            "response": response("completed"),
        })
        .to_string(),
    ]
}

/// Whether an upgrade request header is carried over to the POST each
/// frame becomes: the caller's auth, session and client headers are;
/// the upgrade's own, the body framing and the WebSocket beta are not.
pub fn forwarded_header(name: &str, value: &[u8]) -> bool {
    let name = name.to_ascii_lowercase();
    if name == "openai-beta" {
        return find_ignore_case(value, BETA.as_bytes()).is_none();
    }
    !(name.starts_with("sec-websocket-")
        || matches!(
            name.as_str(),
            "upgrade"
                | "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "content-length"
                | "content-type"
                | "accept"
                | "accept-encoding"
                | "expect"
                | "proxy-connection"
        ))
}

fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1))
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn create(v: Value) -> (Map<String, Value>, bool) {
        match parse_frame(&v.to_string()) {
            Ok(ClientFrame::Create { body, warmup }) => (body, warmup),
            other => panic!("not a create: {other:?}"),
        }
    }

    #[test]
    fn a_create_frame_is_the_post_body_streaming() {
        let (body, warmup) = create(json!({
            "type": "response.create", "model": "m", "input": [], "stream": false,
            "client_metadata": {"a": "b"}, "store": false,
        }));
        assert!(!warmup);
        assert_eq!(
            Value::Object(body),
            json!({"model": "m", "input": [], "stream": true, "store": false})
        );
        let (body, warmup) = create(json!({"type": "response.create", "generate": false}));
        assert!(warmup);
        assert!(!body.contains_key("generate"));
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        for (text, want) in [
            ("not json", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"model":"m"}"#, "type: is required"),
            (r#"{"type":7}"#, "type: must be a string"),
            (r#"{"type":"session.update"}"#, "unknown frame type"),
            (r#"{"type":"response.append","input":[]}"#, "not supported"),
            (
                r#"{"type":"response.create","generate":"no"}"#,
                "generate: must be",
            ),
        ] {
            let e = parse_frame(text).expect_err(text);
            assert!(e.message.contains(want), "{text}: {}", e.message);
        }
        assert_eq!(
            parse_frame(r#"{"type":"response.processed","response_id":"r"}"#),
            Ok(ClientFrame::Processed)
        );
    }

    #[test]
    fn a_socket_continues_its_own_responses_from_memory() {
        let mut h = SocketHistory::default();
        let (mut first, _) = create(json!({
            "type": "response.create", "model": "m",
            "input": [{"type": "message", "role": "user", "content": "hi"}],
        }));
        let sent = h.expand(&mut first);
        assert_eq!(sent.len(), 1);
        let call =
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
        h.remember("resp_1".into(), sent, vec![call.clone()]);
        assert!(h.knows("resp_1"));

        let out = json!({"type": "function_call_output", "call_id": "c1", "output": "ok"});
        let (mut second, _) = create(json!({
            "type": "response.create", "model": "m", "previous_response_id": "resp_1",
            "input": [out.clone()],
        }));
        let sent = h.expand(&mut second);
        assert!(!second.contains_key("previous_response_id"));
        assert_eq!(sent.len(), 3);
        assert_eq!(second["input"][1], call);
        assert_eq!(second["input"][2], out);

        // Someone else's id is left for the gateway's store.
        let (mut other, _) = create(json!({
            "type": "response.create", "previous_response_id": "resp_x", "input": "yo",
        }));
        let sent = h.expand(&mut other);
        assert_eq!(other["previous_response_id"], "resp_x");
        assert_eq!(other["input"], "yo");
        assert_eq!(sent[0]["content"], "yo");

        // Only the latest few are kept.
        for i in 0..5 {
            h.remember(format!("r{i}"), Vec::new(), Vec::new());
        }
        assert!(!h.knows("resp_1") && h.knows("r4") && h.knows("r3") && !h.knows("r2"));
    }

    #[test]
    fn an_empty_delta_after_a_warmup_is_the_warmup_input() {
        let mut h = SocketHistory::default();
        let (mut warm, warmup) = create(json!({
            "type": "response.create", "generate": false,
            "input": [{"type": "message", "role": "user", "content": "hi"}],
        }));
        assert!(warmup);
        let sent = h.expand(&mut warm);
        h.remember("resp_w".into(), sent, Vec::new());
        let (mut next, _) = create(json!({
            "type": "response.create", "previous_response_id": "resp_w", "input": [],
        }));
        h.expand(&mut next);
        assert_eq!(
            next["input"],
            json!([{"type": "message", "role": "user", "content": "hi"}])
        );
    }

    #[test]
    fn error_frames_carry_status_and_error() {
        let f: Value = serde_json::from_str(&error_frame(
            404,
            br#"{"error":{"type":"invalid_request_error","code":"model_not_found","message":"no"}}"#,
        ))
        .unwrap();
        assert_eq!(
            f,
            json!({"type": "error", "status": 404, "error":
                {"type": "invalid_request_error", "code": "model_not_found", "message": "no"}})
        );
        let f: Value = serde_json::from_str(&error_frame(502, b"bad gateway")).unwrap();
        assert_eq!(f["error"]["message"], "bad gateway");
        assert_eq!(f["status"], 502);
    }

    #[test]
    fn events_are_classified() {
        assert_eq!(
            classify_event(r#"{"type":"response.output_item.done","item":{"type":"message"}}"#),
            EventKind::ItemDone(json!({"type": "message"}))
        );
        assert_eq!(
            classify_event(
                r#"{"type":"response.completed","response":{"id":"r","output":[{"a":1}]}}"#
            ),
            EventKind::Ended {
                id: Some("r".into()),
                output: Some(vec![json!({"a": 1})]),
                continuable: true
            }
        );
        assert_eq!(
            classify_event(r#"{"type":"response.failed","response":{"id":"r","output":[]}}"#),
            EventKind::Ended {
                id: Some("r".into()),
                output: None,
                continuable: false
            }
        );
        assert_eq!(classify_event(r#"{"type":"error"}"#), EventKind::Error);
        assert_eq!(classify_event("{"), EventKind::Other);
    }

    #[test]
    fn warmup_answers_created_then_completed() {
        let body = json!({"model": "m"});
        let [a, b] = warmup_events("resp_w", body.as_object().unwrap(), 5);
        let a: Value = serde_json::from_str(&a).unwrap();
        let b: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(a["type"], "response.created");
        assert_eq!(b["type"], "response.completed");
        assert_eq!(b["response"]["id"], "resp_w");
        assert_eq!(b["response"]["output"], json!([]));
        assert_eq!(b["response"]["usage"]["total_tokens"], 0);
    }

    #[test]
    fn upgrade_headers_are_not_forwarded() {
        assert!(forwarded_header("Authorization", b"Bearer k"));
        assert!(forwarded_header("session_id", b"s"));
        assert!(forwarded_header("openai-beta", b"assistants=v2"));
        assert!(!forwarded_header(
            "OpenAI-Beta",
            b"responses_websockets=2026-02-06"
        ));
        for h in [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Key",
            "content-length",
            "accept",
        ] {
            assert!(!forwarded_header(h, b"x"), "{h}");
        }
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(!has_token(b"keep-alive", "upgrade"));
    }

    proptest! {
        /// Whatever a client sends, parsing never panics, and a create
        /// always streams and never carries the socket-only members.
        #[test]
        fn any_frame_parses_or_is_refused(text in ".{0,200}", model in "[a-z]{0,8}", gen in any::<Option<bool>>()) {
            let _ = parse_frame(&text);
            let mut v = json!({"type": "response.create", "model": model, "client_metadata": {}});
            if let Some(g) = gen {
                v["generate"] = g.into();
            }
            let (body, warmup) = create(v);
            prop_assert_eq!(warmup, gen == Some(false));
            prop_assert_eq!(&body["stream"], &Value::Bool(true));
            prop_assert!(!body.contains_key("type") && !body.contains_key("generate")
                && !body.contains_key("client_metadata"));
        }

        /// Remembered turns chain: each continuation's input is the last
        /// conversation plus the new items, in order.
        #[test]
        fn histories_chain(turns in proptest::collection::vec((0usize..3, 0usize..3), 1..6)) {
            let mut h = SocketHistory::default();
            let mut previous: Option<String> = None;
            let mut whole = Vec::new();
            for (i, (new, out)) in turns.into_iter().enumerate() {
                let items: Vec<Value> = (0..new).map(|k| json!({"in": i, "k": k})).collect();
                let mut v = json!({"type": "response.create", "input": items.clone()});
                if let Some(p) = &previous {
                    v["previous_response_id"] = p.clone().into();
                }
                let (mut body, _) = create(v);
                let sent = h.expand(&mut body);
                whole.extend(items);
                prop_assert_eq!(&sent, &whole);
                let output: Vec<Value> = (0..out).map(|k| json!({"out": i, "k": k})).collect();
                whole.extend(output.clone());
                let id = format!("r{i}");
                h.remember(id.clone(), sent, output);
                previous = Some(id);
            }
        }
    }
}
