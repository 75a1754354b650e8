//! OpenAI Chat streams: the upstream side (chunks → canonical events,
//! tolerating what OpenAI-compatible upstreams really send: missing, gapped
//! or reused tool indices, ids and names repeated on every delta, arguments
//! as objects or cumulative strings, usage chunks without choices) and the
//! client side (canonical events → chunks that strict SDKs accept: `role` on
//! the first chunk, 0-based tool indices with id and name only on a call's
//! first delta, `choices: []` on the usage chunk, a `finish_reason`, then
//! `[DONE]`).

use super::response::{finish_from_wire, finish_to_wire, unix_now, usage_from_wire, usage_to_wire};
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::sse::{encode_event, SseEvent, OPENAI_DONE};
use bytes::BytesMut;
use serde_json::{json, Value};

// ------------------------------------------------------------------ decoder

#[derive(Debug, Default)]
struct ToolState {
    /// The upstream's index for this call (if it sent one).
    wire_index: Option<u64>,
    id: String,
    name: String,
    /// Arguments received before the name was known.
    pending_args: String,
    /// Everything received so far (to spot cumulative re-sends).
    args_seen: String,
    /// Canonical ordinal once started.
    ordinal: Option<usize>,
}

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    tools: Vec<ToolState>,
    next_ordinal: usize,
    finish: Option<FinishReason>,
    saw_output: bool,
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
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.end(out);
            return;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.done = true;
                out.push(StreamEvent::Error(ApiError::new(
                    ErrorKind::Api,
                    format!("upstream sent a malformed stream chunk: {e}"),
                )));
                return;
            }
        };
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { usage: None });
        }
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            self.done = true;
            out.push(StreamEvent::Error(ApiError::from_stream_payload(&chunk)));
            return;
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            out.push(StreamEvent::Usage(usage_from_wire(u)));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        // n > 1 is refused before a cross-dialect stream starts; choice 0 only.
        let Some(choice) = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return;
        };
        if let Some(d) = choice.get("delta") {
            let reasoning = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| d.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()));
            if let Some(r) = reasoning {
                self.saw_output = true;
                out.push(StreamEvent::Reasoning(r.to_owned()));
            }
            if let Some(t) = d
                .get("content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.saw_output = true;
                out.push(StreamEvent::Text(t.to_owned()));
            }
            if let Some(calls) = d.get("tool_calls").and_then(Value::as_array) {
                for (pos, tc) in calls.iter().enumerate() {
                    self.tool_delta(tc, pos, out);
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish_from_wire(f));
        }
    }

    fn tool_delta(&mut self, tc: &Value, pos_in_chunk: usize, out: &mut Vec<StreamEvent>) {
        let wire_index = tc.get("index").and_then(Value::as_u64);
        let id = tc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let name = tc
            .pointer("/function/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let frag = match tc.pointer("/function/arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        // Which call is this? By index, unless the same index arrives with
        // a different id (a new call); without an index, by id, else the
        // n-th call of this chunk continues the n-th open call.
        let slot = match wire_index {
            Some(wi) => self.tools.iter().rposition(|t| {
                t.wire_index == Some(wi)
                    && (id.is_none() || t.id.is_empty() || Some(t.id.as_str()) == id)
            }),
            None => match id {
                Some(id) => self.tools.iter().position(|t| t.id == id),
                None => {
                    let unindexed: Vec<usize> = (0..self.tools.len())
                        .filter(|&i| self.tools[i].wire_index.is_none())
                        .collect();
                    unindexed
                        .get(pos_in_chunk)
                        .copied()
                        .or(unindexed.last().copied())
                }
            },
        };
        let slot = slot.unwrap_or_else(|| {
            self.tools.push(ToolState {
                wire_index,
                ..ToolState::default()
            });
            self.tools.len() - 1
        });
        let t = &mut self.tools[slot];
        if t.id.is_empty() {
            if let Some(id) = id {
                t.id = id.to_owned();
            }
        }
        if t.name.is_empty() {
            if let Some(n) = name {
                t.name = n.to_owned();
            }
        }
        // Cumulative senders repeat everything so far: keep only the news.
        let frag = if t.args_seen.len() >= 2 && frag.starts_with(t.args_seen.as_str()) {
            frag[t.args_seen.len()..].to_owned()
        } else {
            frag
        };
        t.args_seen.push_str(&frag);
        self.saw_output = true;
        match t.ordinal {
            Some(index) => {
                if !frag.is_empty() {
                    out.push(StreamEvent::ToolCallArgs {
                        index,
                        fragment: frag,
                    });
                }
            }
            None => {
                t.pending_args.push_str(&frag);
                if !t.name.is_empty() {
                    let index = self.next_ordinal;
                    self.next_ordinal += 1;
                    t.ordinal = Some(index);
                    if t.id.is_empty() {
                        t.id = new_id("call_");
                    }
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: t.id.clone(),
                        name: t.name.clone(),
                    });
                    let pending = std::mem::take(&mut t.pending_args);
                    if !pending.is_empty() {
                        out.push(StreamEvent::ToolCallArgs {
                            index,
                            fragment: pending,
                        });
                    }
                }
            }
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        self.done = true;
        if !self.started {
            out.push(StreamEvent::Start { usage: None });
        }
        let saw_tool = self.next_ordinal > 0;
        let reason = match self.finish {
            _ if saw_tool => FinishReason::ToolCalls,
            Some(f) => f,
            None => FinishReason::Stop,
        };
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence: None,
        });
        out.push(StreamEvent::Done);
    }

    /// The upstream closed the connection. A stream that said how it
    /// finished is complete even without `[DONE]`; one that did not is a
    /// failure, never a clean-looking end (a client would take the cut
    /// output for the whole answer).
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if self.finish.is_some() {
            self.end(out);
        } else {
            self.done = true;
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::Api,
                "upstream closed the stream before it finished",
            )));
        }
    }
}

// ------------------------------------------------------------------ encoder

/// How reasoning reaches an OpenAI Chat client, which has no standard
/// field for it (`reasoning_content` is DeepSeek's, adopted widely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningOutput {
    /// As it arrives, one `reasoning_content` delta per upstream piece:
    /// what chat UIs that show thinking live expect.
    #[default]
    Delta,
    /// Held back and sent as one delta when the reasoning ends: stream
    /// helpers that overwrite unknown delta fields instead of appending
    /// them (the Node `openai` SDK's `finalChatCompletion()`) then hold
    /// it whole rather than its last fragment.
    Whole,
    /// Never sent.
    Omit,
}

/// Canonical events → `chat.completion.chunk` SSE for an OpenAI client.
#[derive(Debug)]
pub struct StreamEncoder {
    reasoning_output: ReasoningOutput,
    /// Reasoning held back in `Whole` mode.
    held_reasoning: String,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    saw_tool: bool,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    scratch: Vec<u8>,
    /// Every content chunk up to its delta, serialised once: a text delta
    /// is the hot path, and building a JSON tree per chunk was most of it.
    delta_prefix: Vec<u8>,
}

/// What follows a content chunk's delta.
const DELTA_SUFFIX: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}";

impl StreamEncoder {
    pub fn new(model: &str, include_usage: bool) -> Self {
        let id = new_id("chatcmpl-");
        let created = unix_now();
        let head = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": null});
        // `{…head…,"choices":[{"index":0,"delta":` — the head's closing brace
        // replaced by the choices member.
        let mut delta_prefix = serde_json::to_vec(&head).unwrap_or_default();
        delta_prefix.pop();
        delta_prefix.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        Self {
            delta_prefix,
            reasoning_output: ReasoningOutput::Delta,
            held_reasoning: String::new(),
            id,
            model: model.to_owned(),
            created,
            include_usage,
            role_sent: false,
            saw_tool: false,
            usage: None,
            finish: None,
            scratch: Vec::with_capacity(256),
        }
    }

    pub fn with_reasoning(mut self, mode: ReasoningOutput) -> Self {
        self.reasoning_output = mode;
        self
    }

    /// Sends reasoning held back in `Whole` mode: the reasoning is over
    /// once anything else arrives.
    fn flush_reasoning(&mut self, out: &mut BytesMut) {
        if !self.held_reasoning.is_empty() {
            let text = std::mem::take(&mut self.held_reasoning);
            self.text_chunk(out, "reasoning_content", &text);
        }
    }

    /// A chunk whose delta is one text member (`content`,
    /// `reasoning_content`), written without a JSON tree.
    fn text_chunk(&mut self, out: &mut BytesMut, field: &str, text: &str) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.delta_prefix);
        self.scratch.extend_from_slice(b"{\"");
        self.scratch.extend_from_slice(field.as_bytes());
        self.scratch.extend_from_slice(b"\":");
        if serde_json::to_writer(&mut self.scratch, text).is_ok() {
            self.scratch.extend_from_slice(b"}");
            self.scratch.extend_from_slice(DELTA_SUFFIX);
            encode_event(out, None, &self.scratch);
        }
    }

    fn chunk(&mut self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        self.emit(out, &v);
    }

    fn emit(&mut self, out: &mut BytesMut, v: &Value) {
        self.scratch.clear();
        if serde_json::to_writer(&mut self.scratch, v).is_ok() {
            encode_event(out, None, &self.scratch);
        }
    }

    fn ensure_role(&mut self, out: &mut BytesMut) {
        if !self.role_sent {
            self.role_sent = true;
            self.chunk(out, json!({"role": "assistant", "content": ""}), None);
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if matches!(
            ev,
            StreamEvent::Text(_) | StreamEvent::ToolCallStart { .. } | StreamEvent::Done
        ) {
            self.flush_reasoning(out);
        }
        match ev {
            StreamEvent::Start { usage } => {
                if usage.is_some() {
                    self.usage = *usage;
                }
                self.ensure_role(out);
            }
            StreamEvent::Text(t) => {
                self.ensure_role(out);
                self.text_chunk(out, "content", t);
            }
            StreamEvent::Reasoning(t) => {
                self.ensure_role(out);
                match self.reasoning_output {
                    ReasoningOutput::Delta => self.text_chunk(out, "reasoning_content", t),
                    ReasoningOutput::Whole => self.held_reasoning.push_str(t),
                    ReasoningOutput::Omit => {}
                }
            }
            StreamEvent::ReasoningSignature(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_role(out);
                self.saw_tool = true;
                self.chunk(
                    out,
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                );
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                self.chunk(
                    out,
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                    None,
                );
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason, .. } => self.finish = Some(*reason),
            StreamEvent::Done => {
                self.ensure_role(out);
                let reason = if self.saw_tool {
                    FinishReason::ToolCalls
                } else {
                    self.finish.unwrap_or(FinishReason::Stop)
                };
                self.chunk(out, json!({}), Some(finish_to_wire(reason)));
                if self.include_usage {
                    let v = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "system_fingerprint": null, "choices": [],
                        "usage": usage_to_wire(&self.usage.unwrap_or_default()),
                    });
                    self.emit(out, &v);
                }
                out.extend_from_slice(OPENAI_DONE);
            }
            StreamEvent::Error(e) => self.fail(e, out),
        }
    }

    /// The in-stream error for a failure after commit: openai-python raises
    /// `APIError` on it; no `[DONE]` follows.
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        let v = super::error::body(e);
        self.emit(out, &v);
    }

    pub fn keepalive(out: &mut BytesMut) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sse::SseDecoder;

    fn reasoning_deltas(mode: ReasoningOutput) -> Vec<String> {
        let mut enc = StreamEncoder::new("m", false).with_reasoning(mode);
        let mut out = BytesMut::new();
        for ev in [
            StreamEvent::Start { usage: None },
            StreamEvent::Reasoning("think ".into()),
            StreamEvent::Reasoning("hard".into()),
            StreamEvent::Text("answer".into()),
            StreamEvent::Done,
        ] {
            enc.encode(&ev, &mut out);
        }
        let text = String::from_utf8(out.to_vec()).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["delta"]["reasoning_content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn text_chunks_written_directly_equal_the_tree_built_ones() {
        let mut enc = StreamEncoder::new("m\"odel", false);
        let (mut fast, mut tree) = (BytesMut::new(), BytesMut::new());
        enc.text_chunk(&mut fast, "content", "hé \"quoted\"\n");
        enc.chunk(&mut tree, json!({"content": "hé \"quoted\"\n"}), None);
        let parse = |b: &BytesMut| -> Value {
            let text = std::str::from_utf8(b).unwrap();
            serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap()
        };
        assert_eq!(parse(&fast), parse(&tree));
    }

    #[test]
    fn reasoning_output_modes() {
        assert_eq!(reasoning_deltas(ReasoningOutput::Delta), ["think ", "hard"]);
        assert_eq!(reasoning_deltas(ReasoningOutput::Whole), ["think hard"]);
        assert!(reasoning_deltas(ReasoningOutput::Omit).is_empty());
    }

    fn events(sse: &str) -> Vec<StreamEvent> {
        let mut d = SseDecoder::new();
        let mut raw = Vec::new();
        d.feed(sse.as_bytes(), &mut raw);
        d.finish(&mut raw);
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        for e in &raw {
            dec.feed(e, &mut out);
        }
        dec.finish(&mut out);
        out
    }

    fn data(lines: &[Value]) -> String {
        lines.iter().map(|l| format!("data: {l}\n\n")).collect()
    }

    #[test]
    fn parallel_interleaved_tool_calls_with_gaps_and_repeats() {
        let sse = data(&[
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            // index starts at 1, name and arguments in the same chunk
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 2, "id": "b", "function": {"name": "g", "arguments": ""}}]}}]}),
            // id and name repeated on a later delta
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "a", "function": {"name": "f", "arguments": ":1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 2, "function": {"arguments": {"y": 2}}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}),
        ]) + "data: [DONE]\n\n";
        let ev = events(&sse);
        assert_eq!(ev[0], StreamEvent::Start { usage: None });
        assert_eq!(
            ev[1],
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into()
            }
        );
        assert_eq!(
            ev[2],
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"x\"".into()
            }
        );
        assert_eq!(
            ev[3],
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "g".into()
            }
        );
        assert_eq!(
            ev[4],
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: ":1}".into()
            }
        );
        assert_eq!(
            ev[5],
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: "{\"y\":2}".into()
            }
        );
        assert!(matches!(ev[6], StreamEvent::Usage(u) if u.output_total == 7));
        assert_eq!(
            ev[7],
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            }
        );
        assert_eq!(ev[8], StreamEvent::Done);
    }

    #[test]
    fn missing_index_same_index_new_id_and_cumulative_arguments() {
        let sse = data(&[
            json!({"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{\"a\":1}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "h"}}]}}], "finish_reason": null}),
        ]) + "data: [DONE]\n\n";
        let ev = events(&sse);
        let starts: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallStart { index, id, .. } => Some((*index, id.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            starts,
            vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
        );
        let args0: String = ev
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallArgs { index: 0, fragment } => Some(fragment.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(args0, "{\"a\":1}");
    }

    #[test]
    fn eof_without_finish_is_an_error_and_with_finish_is_done() {
        let ev = events(&data(&[
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
        ]));
        assert!(matches!(ev.last(), Some(StreamEvent::Error(_))));
        let ev = events(&data(&[
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]}),
        ]));
        assert_eq!(
            ev[ev.len() - 2],
            StreamEvent::Finish {
                reason: FinishReason::Length,
                stop_sequence: None
            }
        );
        assert_eq!(ev.last(), Some(&StreamEvent::Done));
        let ev = events(
            "data: {\"error\": {\"message\": \"boom\", \"type\": \"overloaded_error\"}}\n\n",
        );
        assert!(
            matches!(&ev[1], StreamEvent::Error(e) if e.message == "boom" && e.kind == ErrorKind::Overloaded)
        );
        let ev = events("data: {nope\n\n");
        assert!(matches!(&ev[0], StreamEvent::Error(_)));
    }

    #[test]
    fn encoder_follows_the_sdk_rules() {
        let mut enc = StreamEncoder::new("client-model", true);
        let mut out = BytesMut::new();
        for ev in [
            StreamEvent::Start { usage: None },
            StreamEvent::Text("hi".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into(),
            },
            StreamEvent::Usage(Usage {
                input_uncached: 3,
                output_total: 4,
                ..Usage::default()
            }),
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            },
            StreamEvent::Done,
        ] {
            enc.encode(&ev, &mut out);
        }
        let text = String::from_utf8(out.to_vec()).unwrap();
        let frames: Vec<&str> = text.split("\n\n").filter(|s| !s.is_empty()).collect();
        let first: Value = serde_json::from_str(&frames[0][6..]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["model"], "client-model");
        let fin: Value = serde_json::from_str(&frames[4][6..]).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "tool_calls");
        let usage: Value = serde_json::from_str(&frames[5][6..]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert_eq!(frames[6], "data: [DONE]");
    }
}
