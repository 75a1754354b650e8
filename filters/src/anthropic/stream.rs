//! Anthropic Messages streams: the upstream side (events → canonical) and
//! the client side (canonical → events with `event:` lines, 0-based
//! contiguous block indices, tool arguments only in `input_json_delta`,
//! every block stopped, always finished), because the Anthropic SDKs and
//! Claude Code lose output, crash or retry on a stream that breaks any of
//! these. A text or thinking block closes before a tool block opens, tool
//! blocks stay open until the end, and `message_delta` waits for the final
//! usage.

use super::request::sanitize_tool_id;
use super::response::{
    stop_from_wire, stop_to_wire, synthetic_signature, usage_from_wire, usage_to_wire,
};
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::{json, Value};
use std::collections::HashMap;

// ------------------------------------------------------------------ decoder

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Anthropic block index → canonical tool ordinal.
    tool_blocks: HashMap<u64, usize>,
    next_ordinal: usize,
    usage: Usage,
    finish: Option<(FinishReason, Option<String>)>,
    done: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => {
                self.done = true;
                out.push(StreamEvent::Error(ApiError::new(
                    ErrorKind::Api,
                    format!("upstream sent a malformed stream event: {e}"),
                )));
                return;
            }
        };
        // Dispatch on the event line, as the SDKs do; fall back to the type.
        let kind = if ev.event.is_empty() {
            v.get("type").and_then(Value::as_str).unwrap_or_default()
        } else {
            ev.event.as_str()
        };
        match kind {
            "message_start" => self.on_message_start(&v, out),
            "content_block_start" => self.on_block_start(&v, out),
            "content_block_delta" => self.on_block_delta(&v, out),
            "message_delta" => self.on_message_delta(&v, out),
            "message_stop" => self.end(out),
            "error" => {
                self.done = true;
                out.push(StreamEvent::Error(ApiError::from_stream_payload(&v)));
            }
            _ => {} // ping, content_block_stop, future events
        }
    }

    /// Handles `message_start`: the start, with the upstream's input usage.
    fn on_message_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        if self.started {
            return; // duplicated / spliced message_start
        }
        self.started = true;
        if let Some(u) = v.pointer("/message/usage") {
            self.usage = usage_from_wire(u, self.usage);
        }
        out.push(StreamEvent::Start {
            usage: Some(self.usage),
        });
    }

    /// Handles `content_block_start`: text, thinking or a tool call opening.
    fn on_block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let block = v.get("content_block").unwrap_or(&Value::Null);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(StreamEvent::Text(t.to_owned()));
                }
            }
            Some("thinking") => {
                if let Some(t) = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(StreamEvent::Reasoning(t.to_owned()));
                }
            }
            Some("tool_use") => self.on_tool_start(idx, block, out),
            _ => {} // server tools, redacted thinking, unknown blocks
        }
    }

    /// Handles a `tool_use` block start: a new tool call ordinal.
    fn on_tool_start(&mut self, idx: u64, block: &Value, out: &mut Vec<StreamEvent>) {
        let index = self.next_ordinal;
        self.next_ordinal += 1;
        self.tool_blocks.insert(idx, index);
        let id = block
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        out.push(StreamEvent::ToolCallStart {
            index,
            id: id.map_or_else(|| new_id("toolu_"), str::to_owned),
            name: str_at(block, "name").to_owned(),
        });
        // Some "compatible" upstreams put the arguments here.
        if let Some(input) = block
            .get("input")
            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
        {
            out.push(StreamEvent::ToolCallArgs {
                index,
                fragment: input.to_string(),
            });
        }
    }

    /// Handles `content_block_delta`: text, thinking, signature or tool arguments.
    fn on_block_delta(&self, v: &Value, out: &mut Vec<StreamEvent>) {
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let d = v.get("delta").unwrap_or(&Value::Null);
        let s = |k: &str| {
            d.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match d.get("type").and_then(Value::as_str) {
            Some("text_delta") => out.extend(s("text").map(StreamEvent::Text)),
            Some("thinking_delta") => out.extend(s("thinking").map(StreamEvent::Reasoning)),
            Some("signature_delta") => {
                out.extend(s("signature").map(StreamEvent::ReasoningSignature))
            }
            Some("input_json_delta") => {
                if let (Some(&index), Some(fragment)) =
                    (self.tool_blocks.get(&idx), s("partial_json"))
                {
                    out.push(StreamEvent::ToolCallArgs { index, fragment });
                }
            }
            _ => {}
        }
    }

    /// Handles `message_delta`: usage so far and the stop reason.
    fn on_message_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        if let Some(u) = v.get("usage") {
            self.usage = usage_from_wire(u, self.usage);
            out.push(StreamEvent::Usage(self.usage));
        }
        if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
            let seq = v
                .pointer("/delta/stop_sequence")
                .and_then(Value::as_str)
                .map(str::to_owned);
            self.finish = Some((stop_from_wire(r), seq));
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { usage: None });
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        self.done = true;
        let (mut reason, stop_sequence) = self.finish.take().unwrap_or((FinishReason::Stop, None));
        if self.next_ordinal > 0 {
            reason = FinishReason::ToolCalls;
        }
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence,
        });
        out.push(StreamEvent::Done);
    }

    /// EOF: without `message_stop` the upstream died, which must reach the
    /// client as an error, never as a clean-looking end.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done {
            self.done = true;
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::Api,
                "upstream closed the stream before message_stop",
            )));
        }
    }
}

// ------------------------------------------------------------------ encoder

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
}

/// Canonical events → Anthropic SSE for an Anthropic client.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    estimated_input: u64,
    started: bool,
    next_block: u64,
    open: Option<(OpenKind, u64)>,
    signature: Option<String>,
    /// Canonical tool ordinal → (block index, still open).
    tools: Vec<(u64, bool)>,
    usage: Option<Usage>,
    finish: Option<(FinishReason, Option<String>)>,
    scratch: Vec<u8>,
}

impl StreamEncoder {
    /// `estimated_input` fills `message_start.usage.input_tokens` when the
    /// upstream has not said (Claude Code reads context size from it).
    pub fn new(model: &str, estimated_input: u64) -> Self {
        Self {
            model: model.to_owned(),
            estimated_input: estimated_input.max(1),
            started: false,
            next_block: 0,
            open: None,
            signature: None,
            tools: Vec::new(),
            usage: None,
            finish: None,
            scratch: Vec::with_capacity(256),
        }
    }

    fn emit(&mut self, out: &mut BytesMut, name: &str, v: &Value) {
        self.scratch.clear();
        if serde_json::to_writer(&mut self.scratch, v).is_ok() {
            encode_event(out, Some(name), &self.scratch);
        }
    }

    /// A text or thinking delta, the hot path, written without a JSON
    /// tree; `kind_and_field` closes the delta type's string and names its
    /// text member.
    fn delta(&mut self, out: &mut BytesMut, idx: u64, kind_and_field: &str, t: &str) {
        let b = &mut self.scratch;
        b.clear();
        b.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":");
        // The number through serde_json: itoa, no allocation.
        let ok = serde_json::to_writer(&mut *b, &idx).is_ok();
        b.extend_from_slice(b",\"delta\":{\"type\":\"");
        b.extend_from_slice(kind_and_field.as_bytes());
        b.extend_from_slice(b"\":");
        if ok && serde_json::to_writer(&mut *b, t).is_ok() {
            b.extend_from_slice(b"}}");
            encode_event(out, Some("content_block_delta"), &self.scratch);
        }
    }

    fn start(&mut self, out: &mut BytesMut, usage: Option<Usage>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut u = usage.unwrap_or(Usage {
            input_uncached: self.estimated_input,
            ..Usage::default()
        });
        if u.input_total() == 0 {
            u.input_uncached = self.estimated_input;
        }
        let v = json!({"type": "message_start", "message": {
            "id": new_id("msg_"), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage_to_wire(&Usage { output_total: 1, ..u }),
        }});
        self.emit(out, "message_start", &v);
    }

    fn close_open(&mut self, out: &mut BytesMut) {
        let Some((kind, idx)) = self.open.take() else {
            return;
        };
        if kind == OpenKind::Thinking {
            let sig = self.signature.take().unwrap_or_else(synthetic_signature);
            let v = json!({"type": "content_block_delta", "index": idx, "delta": {"type": "signature_delta", "signature": sig}});
            self.emit(out, "content_block_delta", &v);
        }
        self.emit(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": idx}),
        );
    }

    fn close_tools(&mut self, out: &mut BytesMut) {
        for i in 0..self.tools.len() {
            let (idx, open) = self.tools[i];
            if open {
                self.tools[i].1 = false;
                self.emit(
                    out,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": idx}),
                );
            }
        }
    }

    fn ensure_open(&mut self, out: &mut BytesMut, kind: OpenKind) -> u64 {
        if let Some((k, idx)) = self.open {
            if k == kind {
                return idx;
            }
        }
        self.close_open(out);
        self.close_tools(out);
        let idx = self.next_block;
        self.next_block += 1;
        self.open = Some((kind, idx));
        let block = match kind {
            OpenKind::Text => json!({"type": "text", "text": ""}),
            OpenKind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
        };
        self.emit(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": idx, "content_block": block}),
        );
        idx
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if let StreamEvent::Start { usage } = ev {
            self.start(out, *usage);
            return;
        }
        self.start(out, None);
        match ev {
            StreamEvent::Start { .. } => {}
            StreamEvent::Text(t) => {
                let idx = self.ensure_open(out, OpenKind::Text);
                self.delta(out, idx, "text_delta\",\"text", t);
            }
            StreamEvent::Reasoning(t) => {
                let idx = self.ensure_open(out, OpenKind::Thinking);
                self.delta(out, idx, "thinking_delta\",\"thinking", t);
            }
            StreamEvent::ReasoningSignature(s) => {
                // One signature per thinking block. A second one (Gemini
                // signs a thought and then the function call after it), or
                // one with no thinking open, gets a block of its own: the
                // signature must reach the client to come back.
                let thinking = matches!(self.open, Some((OpenKind::Thinking, _)));
                if !thinking || self.signature.is_some() {
                    self.close_open(out);
                    self.ensure_open(out, OpenKind::Thinking);
                }
                self.signature = Some(s.clone());
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                // A text or thinking block never stays open under a tool.
                self.close_open(out);
                let idx = self.next_block;
                self.next_block += 1;
                if self.tools.len() <= *index {
                    self.tools.resize(*index + 1, (u64::MAX, false));
                }
                self.tools[*index] = (idx, true);
                let block = json!({"type": "tool_use", "id": sanitize_tool_id(id), "name": name, "input": {}});
                self.emit(
                    out,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": idx, "content_block": block}),
                );
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                // Tool blocks stay open until the end so interleaved
                // parallel calls each reach their own block.
                if let Some(&(idx, true)) = self.tools.get(*index) {
                    self.emit(out, "content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": fragment}}));
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish {
                reason,
                stop_sequence,
            } => self.finish = Some((*reason, stop_sequence.clone())),
            StreamEvent::Done => {
                self.close_open(out);
                self.close_tools(out);
                let (mut reason, seq) = self.finish.take().unwrap_or((FinishReason::Stop, None));
                if !self.tools.is_empty() {
                    reason = FinishReason::ToolCalls;
                }
                let mut usage = self.usage.unwrap_or(Usage {
                    input_uncached: self.estimated_input,
                    ..Usage::default()
                });
                if usage.input_total() == 0 {
                    usage.input_uncached = self.estimated_input;
                }
                let v = json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_to_wire(reason), "stop_sequence": seq},
                    "usage": usage_to_wire(&usage)});
                self.emit(out, "message_delta", &v);
                self.emit(out, "message_stop", &json!({"type": "message_stop"}));
            }
            StreamEvent::Error(e) => self.fail(e, out),
        }
    }

    /// The in-stream error for a failure after commit; no `message_stop`
    /// follows, so no client mistakes the cut for a finished answer.
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        let v = super::error::body(e);
        self.emit(out, "error", &v);
    }

    pub fn keepalive(out: &mut BytesMut) {
        encode_event(out, Some("ping"), br#"{"type":"ping"}"#);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sse::SseDecoder;

    /// Checks an encoded stream the way strict clients read it: `event:`
    /// lines, contiguous 0-based blocks, deltas only to open blocks of their
    /// type, tool input only via `input_json_delta`, every block stopped
    /// before the finish; returns the events.
    pub(crate) fn check_anthropic_stream(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut d = SseDecoder::new();
        let mut evs = Vec::new();
        d.feed(bytes, &mut evs);
        d.finish(&mut evs);
        let parsed: Vec<(String, Value)> = evs
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(v["type"], e.event.as_str(), "event line equals data.type");
                (e.event, v)
            })
            .collect();
        let mut open: HashMap<u64, String> = HashMap::new();
        let mut next = 0;
        for (name, v) in &parsed {
            match name.as_str() {
                "content_block_start" => {
                    assert_eq!(v["index"], next, "contiguous 0-based block indices");
                    next += 1;
                    let ty = v["content_block"]["type"].as_str().unwrap().to_owned();
                    if ty == "tool_use" {
                        assert_eq!(v["content_block"]["input"], json!({}));
                    }
                    open.insert(v["index"].as_u64().unwrap(), ty);
                }
                "content_block_delta" => {
                    let ty = open
                        .get(&v["index"].as_u64().unwrap())
                        .expect("delta to an open block");
                    let want = match v["delta"]["type"].as_str().unwrap() {
                        "text_delta" => "text",
                        "thinking_delta" | "signature_delta" => "thinking",
                        "input_json_delta" => "tool_use",
                        other => panic!("unexpected delta {other}"),
                    };
                    assert_eq!(ty, want);
                }
                "content_block_stop" => {
                    open.remove(&v["index"].as_u64().unwrap())
                        .expect("stop of an open block");
                }
                _ => {}
            }
        }
        if parsed.last().map(|(n, _)| n.as_str()) == Some("message_stop") {
            assert!(open.is_empty(), "every block stopped");
            assert_eq!(parsed[parsed.len() - 2].0, "message_delta");
        }
        assert_eq!(parsed[0].0, "message_start");
        parsed
    }

    fn encode_all(evs: &[StreamEvent]) -> BytesMut {
        let mut enc = StreamEncoder::new("client-model", 42);
        let mut out = BytesMut::new();
        for e in evs {
            enc.encode(e, &mut out);
        }
        out
    }

    #[test]
    fn every_signature_reaches_the_client_in_a_block_of_its_own() {
        // Gemini signs the thought and then the call after it.
        let out = encode_all(&[
            StreamEvent::Start { usage: None },
            StreamEvent::ReasoningSignature("sig-thought".into()),
            StreamEvent::Reasoning("think".into()),
            StreamEvent::ReasoningSignature("sig-call".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "a".into(),
            },
            StreamEvent::Done,
        ]);
        let evs = check_anthropic_stream(&out);
        let sigs: Vec<&Value> = evs
            .iter()
            .filter(|(_, v)| v["delta"]["type"] == "signature_delta")
            .map(|(_, v)| &v["delta"]["signature"])
            .collect();
        assert_eq!(sigs, ["sig-thought", "sig-call"]);
        let thinking = evs
            .iter()
            .filter(|(n, v)| n == "content_block_start" && v["content_block"]["type"] == "thinking")
            .count();
        assert_eq!(thinking, 2);
    }

    #[test]
    fn reasoning_text_and_interleaved_parallel_tools() {
        let out = encode_all(&[
            StreamEvent::Start { usage: None },
            StreamEvent::Reasoning("think".into()),
            StreamEvent::Text("Hello".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "functions.a:0".into(),
                name: "a".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "b".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"x\":".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: "{}".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "1}".into(),
            },
            StreamEvent::Usage(Usage {
                input_uncached: 7,
                cache_read: 3,
                output_total: 9,
                ..Usage::default()
            }),
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            },
            StreamEvent::Done,
        ]);
        let evs = check_anthropic_stream(&out);
        assert_eq!(evs[0].1["message"]["usage"]["input_tokens"], 42);
        assert_eq!(evs[0].1["message"]["model"], "client-model");
        let tool_ids: Vec<&Value> = evs
            .iter()
            .filter(|(n, v)| n == "content_block_start" && v["content_block"]["type"] == "tool_use")
            .map(|(_, v)| &v["content_block"]["id"])
            .collect();
        assert_eq!(tool_ids, vec!["functions_a_0", "call_b"]);
        let delta = &evs[evs.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["input_tokens"], 7);
        assert_eq!(delta["usage"]["cache_read_input_tokens"], 3);
        assert_eq!(delta["usage"]["output_tokens"], 9);
        let sig = evs
            .iter()
            .find(|(_, v)| v["delta"]["type"] == "signature_delta")
            .unwrap();
        assert!(is_synthetic_signature(
            sig.1["delta"]["signature"].as_str().unwrap()
        ));
    }

    #[test]
    fn error_after_commit_has_no_message_stop() {
        let out = encode_all(&[
            StreamEvent::Start { usage: None },
            StreamEvent::Text("partial".into()),
            StreamEvent::Error(ApiError::new(ErrorKind::Overloaded, "gone")),
        ]);
        let evs = check_anthropic_stream(&out);
        let last = evs.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(last.1["error"]["type"], "overloaded_error");
        assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    }

    #[test]
    fn decoder_tolerates_duplicates_and_restated_usage() {
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n",
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":99}}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"f\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":12}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let mut d = SseDecoder::new();
        let mut raw = Vec::new();
        d.feed(sse.as_bytes(), &mut raw);
        let mut dec = StreamDecoder::new();
        let mut evs = Vec::new();
        for e in &raw {
            dec.feed(e, &mut evs);
        }
        dec.finish(&mut evs);
        assert_eq!(
            evs[0],
            StreamEvent::Start {
                usage: Some(Usage {
                    input_uncached: 5,
                    cache_read: 2,
                    output_total: 1,
                    ..Usage::default()
                })
            }
        );
        assert_eq!(evs[1], StreamEvent::Text("hi".into()));
        assert_eq!(
            evs[2],
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_9".into(),
                name: "f".into()
            }
        );
        assert_eq!(
            evs[3],
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into()
            }
        );
        assert_eq!(
            evs[4],
            StreamEvent::Usage(Usage {
                input_uncached: 5,
                cache_read: 2,
                output_total: 12,
                ..Usage::default()
            })
        );
        assert_eq!(
            evs[5],
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            }
        );
        assert_eq!(evs[6], StreamEvent::Done);
    }
}
