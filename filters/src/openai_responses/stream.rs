//! OpenAI Responses streams: the upstream side (typed events → canonical,
//! tolerating upstreams that put arguments or text only in the `done`
//! events or only in `response.completed`) and the client side (canonical →
//! the full event sequence the SDK helpers and Codex replay into a final
//! response: `response.created` first, every item added then done in order,
//! strictly increasing `sequence_number`, and `response.completed` carrying
//! the whole response — without it Codex reconnects and retries).

use super::response::{
    call_arguments, envelope, finish_from_incomplete, function_call_item, incomplete_reason,
    message_item, message_text, output_text_part, reasoning_item, reasoning_text, unix_now,
    usage_from_wire, usage_to_wire,
};
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::{json, Value};
use std::collections::HashSet;

// ------------------------------------------------------------------ decoder

/// A function call item of the upstream, by its ids on the wire.
#[derive(Debug)]
struct UpstreamCall {
    item_id: String,
    output_index: Option<u64>,
    ordinal: usize,
    args_sent: bool,
}

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    calls: Vec<UpstreamCall>,
    /// Items whose text came as deltas, so their `done` repeats nothing.
    streamed: HashSet<String>,
    /// Items already handled at their `output_item.done`.
    finished: HashSet<String>,
    /// Whether reasoning comes as summaries (true) or raw text (false):
    /// the first kind seen wins, so an upstream sending both is not doubled.
    summaries: Option<bool>,
    done: bool,
}

fn item_key(v: &Value, id_key: &str) -> String {
    match v
        .get(id_key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => id.to_owned(),
        None => format!(
            "#{}",
            v.get("output_index").and_then(Value::as_u64).unwrap_or(0)
        ),
    }
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
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(ev.event.as_str());
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.ensure_started(out)
            }
            "response.output_item.added" => self.on_item_added(&v, out),
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(d) = self.delta(&v, out) {
                    out.push(StreamEvent::Text(d));
                }
            }
            "response.reasoning_summary_text.delta" => self.on_reasoning_delta(&v, true, out),
            "response.reasoning_text.delta" => self.on_reasoning_delta(&v, false, out),
            "response.reasoning_summary_part.added" => self.on_summary_part(&v, out),
            "response.function_call_arguments.delta" => self.on_args(&v, "delta", out),
            "response.function_call_arguments.done" => self.on_args(&v, "arguments", out),
            "response.output_item.done" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                self.on_item_done(item, v.get("output_index").and_then(Value::as_u64), out);
            }
            "response.completed" | "response.incomplete" => self.on_end(&v, kind, out),
            "response.failed" | "error" => self.on_error(&v, out),
            _ if v.get("error").is_some_and(Value::is_object) => self.on_error(&v, out),
            _ => {} // in_progress markers, annotations, hosted tool progress
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { usage: None });
        }
    }

    /// A non-empty `delta`, noting that its item streamed.
    fn delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Option<String> {
        let d = v
            .get("delta")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())?;
        self.ensure_started(out);
        self.streamed.insert(item_key(v, "item_id"));
        Some(d.to_owned())
    }

    fn on_reasoning_delta(&mut self, v: &Value, summary: bool, out: &mut Vec<StreamEvent>) {
        if *self.summaries.get_or_insert(summary) != summary {
            return;
        }
        if let Some(d) = self.delta(v, out) {
            out.push(StreamEvent::Reasoning(d));
        }
    }

    /// Summary parts after the first are separate paragraphs.
    fn on_summary_part(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let later = v.get("summary_index").and_then(Value::as_u64).unwrap_or(0) > 0;
        if later && self.summaries == Some(true) && self.streamed.contains(&item_key(v, "item_id"))
        {
            out.push(StreamEvent::Reasoning("\n\n".into()));
        }
    }

    /// The call a delta or item belongs to: by item id, else by position.
    fn find_call(&self, item_id: Option<&str>, output_index: Option<u64>) -> Option<usize> {
        let by_id = item_id
            .filter(|id| !id.is_empty())
            .and_then(|id| self.calls.iter().position(|c| c.item_id == id));
        by_id.or_else(|| {
            output_index.and_then(|i| self.calls.iter().position(|c| c.output_index == Some(i)))
        })
    }

    fn on_item_added(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        let item = v.get("item").unwrap_or(&Value::Null);
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            let slot = self.start_call(item, v.get("output_index").and_then(Value::as_u64), out);
            // Some upstreams send the whole call at once.
            if let Some(args) = item
                .get("arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                self.send_args(slot, args.to_owned(), out);
            }
        }
    }

    /// Opens a call: the next canonical ordinal, id = the upstream's `call_id`.
    fn start_call(
        &mut self,
        item: &Value,
        output_index: Option<u64>,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        let index = self.calls.len();
        let id = ["call_id", "id"]
            .iter()
            .find_map(|k| {
                item.get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map_or_else(|| new_id("call_"), str::to_owned);
        out.push(StreamEvent::ToolCallStart {
            index,
            id,
            name: str_at(item, "name").to_owned(),
        });
        self.calls.push(UpstreamCall {
            item_id: str_at(item, "id").to_owned(),
            output_index,
            ordinal: index,
            args_sent: false,
        });
        index
    }

    fn send_args(&mut self, slot: usize, fragment: String, out: &mut Vec<StreamEvent>) {
        if let Some(c) = self.calls.get_mut(slot) {
            c.args_sent = true;
            out.push(StreamEvent::ToolCallArgs {
                index: c.ordinal,
                fragment,
            });
        }
    }

    /// `function_call_arguments.delta` (`key` = "delta") streams; `.done`
    /// (`key` = "arguments") counts only when no delta came.
    fn on_args(&mut self, v: &Value, key: &str, out: &mut Vec<StreamEvent>) {
        let Some(slot) = self.find_call(
            v.get("item_id").and_then(Value::as_str),
            v.get("output_index").and_then(Value::as_u64),
        ) else {
            return; // arguments of a call never announced: no name to give them
        };
        let text = v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(text) = text {
            if key == "delta" || !self.calls[slot].args_sent {
                self.send_args(slot, text.to_owned(), out);
            }
        }
    }

    /// `output_item.done`: whatever of the item did not stream, and the
    /// reasoning state, which arrives only here.
    fn on_item_done(
        &mut self,
        item: &Value,
        output_index: Option<u64>,
        out: &mut Vec<StreamEvent>,
    ) {
        self.ensure_started(out);
        let key = item_key(item, "id");
        if !self.finished.insert(key.clone()) {
            return;
        }
        match item.get("type").and_then(Value::as_str) {
            Some("message") if !self.streamed.contains(&key) => {
                let text = message_text(item);
                if !text.is_empty() {
                    out.push(StreamEvent::Text(text));
                }
            }
            Some("reasoning") => {
                let text = reasoning_text(item);
                if !self.streamed.contains(&key) && !text.is_empty() {
                    out.push(StreamEvent::Reasoning(text));
                }
                if let Some(enc) = item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    out.push(StreamEvent::ReasoningSignature(signature_minted(
                        Issuer::OpenAi,
                        enc,
                    )));
                }
            }
            Some("function_call") => {
                let slot =
                    match self.find_call(item.get("id").and_then(Value::as_str), output_index) {
                        Some(slot) => slot,
                        None => self.start_call(item, output_index, out),
                    };
                if !self.calls[slot].args_sent {
                    self.send_args(slot, call_arguments(item), out);
                }
            }
            _ => {}
        }
    }

    /// `response.completed` / `response.incomplete`: items only listed
    /// here, the usage, the finish.
    fn on_end(&mut self, v: &Value, kind: &str, out: &mut Vec<StreamEvent>) {
        self.ensure_started(out);
        let resp = v.get("response").unwrap_or(&Value::Null);
        let output = resp.get("output").and_then(Value::as_array);
        for (i, item) in output.into_iter().flatten().enumerate() {
            if item
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| !id.is_empty())
            {
                self.on_item_done(item, Some(i as u64), out);
            }
        }
        if let Some(u) = resp.get("usage").filter(|u| u.is_object()) {
            out.push(StreamEvent::Usage(usage_from_wire(u)));
        }
        let reason = if kind == "response.incomplete" {
            finish_from_incomplete(
                resp.pointer("/incomplete_details/reason")
                    .and_then(Value::as_str),
            )
        } else if self.calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        };
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence: None,
        });
        out.push(StreamEvent::Done);
        self.done = true;
    }

    /// `response.failed` (`response.error`) or an `error` event (its own
    /// members, or an `error` object).
    fn on_error(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        self.done = true;
        let err = v
            .pointer("/response/error")
            .or_else(|| v.get("error"))
            .filter(|e| e.is_object())
            .unwrap_or(v);
        out.push(StreamEvent::Error(super::error::from_wire(err)));
    }

    /// EOF: without `response.completed` the upstream died, which reaches
    /// the client as an error, never as a clean-looking end.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done {
            self.done = true;
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::Api,
                "upstream closed the stream before response.completed",
            )));
        }
    }
}

// ------------------------------------------------------------------ encoder

/// The message or reasoning item open on the wire.
#[derive(Debug)]
enum OpenItem {
    Message {
        id: String,
        index: usize,
        text: String,
    },
    Reasoning {
        id: String,
        index: usize,
        text: String,
        signature: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallWire {
    /// Known, not yet added: another call is open.
    Queued,
    /// Added, open, its argument deltas go out as they come.
    Live {
        index: usize,
    },
    Closed,
}

#[derive(Debug)]
struct ClientCall {
    call_id: String,
    name: String,
    item_id: String,
    args: String,
    wire: CallWire,
}

/// Canonical events → Responses SSE for a Responses client. One item is
/// open at a time and items close in order. Parallel calls may interleave
/// their arguments upstream, so only one call streams live; the others
/// are buffered and sent whole once it closes.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created_at: u64,
    seq: u64,
    started: bool,
    ended: bool,
    /// Every item done so far, as its `output_item.done` carried it.
    output: Vec<Value>,
    open: Option<OpenItem>,
    calls: Vec<ClientCall>,
    /// Reasoning state that came while a call was open: it becomes its
    /// own reasoning item once the calls close.
    pending_signature: Option<String>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    scratch: Vec<u8>,
    /// Echoed in every response object, as OpenAI does.
    previous_response_id: Option<String>,
}

impl StreamEncoder {
    /// `model` is what the client asked for; `response_id` the `resp_…`
    /// id every lifecycle event repeats.
    pub fn new(model: &str, response_id: &str) -> Self {
        Self {
            id: response_id.to_owned(),
            model: model.to_owned(),
            created_at: unix_now(),
            seq: 0,
            started: false,
            ended: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            pending_signature: None,
            usage: None,
            finish: None,
            scratch: Vec::with_capacity(256),
            previous_response_id: None,
        }
    }

    /// The conversation this response continues, echoed like OpenAI does.
    pub fn with_previous_response_id(mut self, id: Option<&str>) -> Self {
        self.previous_response_id = id.map(str::to_owned);
        self
    }

    fn envelope(&self, status: &str) -> Value {
        let mut v = envelope(&self.id, &self.model, self.created_at, status);
        if let Some(p) = &self.previous_response_id {
            v["previous_response_id"] = json!(p);
        }
        v
    }

    /// One event: `type` and `sequence_number` added, named by `event:`.
    fn emit(&mut self, out: &mut BytesMut, name: &str, mut v: Value) {
        v["type"] = json!(name);
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.scratch.clear();
        if serde_json::to_writer(&mut self.scratch, &v).is_ok() {
            encode_event(out, Some(name), &self.scratch);
        }
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let resp = self.envelope("in_progress");
        self.emit(out, "response.created", json!({"response": resp}));
        self.emit(out, "response.in_progress", json!({"response": resp}));
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { usage } => {
                if usage.is_some() {
                    self.usage = *usage;
                }
                self.ensure_started(out);
            }
            StreamEvent::Text(t) => self.text(t, out),
            StreamEvent::Reasoning(t) => self.reasoning(t, out),
            StreamEvent::ReasoningSignature(s) => self.signature(s, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.call_start(*index, id, name, out)
            }
            StreamEvent::ToolCallArgs { index, fragment } => self.call_args(*index, fragment, out),
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason, .. } => self.finish = Some(*reason),
            StreamEvent::Done => self.done(out),
            StreamEvent::Error(e) => self.fail(e, out),
        }
    }

    fn text(&mut self, t: &str, out: &mut BytesMut) {
        self.ensure_started(out);
        if !matches!(self.open, Some(OpenItem::Message { .. })) {
            self.close_all(out);
            let (id, index) = (new_id("msg_"), self.output.len());
            let item = json!({"type": "message", "id": id, "status": "in_progress",
                "role": "assistant", "content": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index,
                "content_index": 0, "part": output_text_part("")}),
            );
            self.open = Some(OpenItem::Message {
                id,
                index,
                text: String::new(),
            });
        }
        if let Some(OpenItem::Message { id, index, text }) = &mut self.open {
            text.push_str(t);
            let name = "response.output_text.delta";
            delta_event(&mut self.scratch, &mut self.seq, out, name, id, *index, t);
        }
    }

    fn reasoning(&mut self, t: &str, out: &mut BytesMut) {
        self.ensure_started(out);
        if !matches!(self.open, Some(OpenItem::Reasoning { .. })) {
            self.close_all(out);
            let (id, index) = (new_id("rs_"), self.output.len());
            let item = json!({"type": "reasoning", "id": id, "summary": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(out, "response.reasoning_summary_part.added", json!({"item_id": id,
                "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
            self.open = Some(OpenItem::Reasoning {
                id,
                index,
                text: String::new(),
                signature: None,
            });
        }
        if let Some(OpenItem::Reasoning {
            id, index, text, ..
        }) = &mut self.open
        {
            text.push_str(t);
            let name = "response.reasoning_summary_text.delta";
            delta_event(&mut self.scratch, &mut self.seq, out, name, id, *index, t);
        }
    }

    /// Reasoning state belongs to the open reasoning item; without one it
    /// becomes a reasoning item of its own (after any open call).
    fn signature(&mut self, s: &str, out: &mut BytesMut) {
        self.ensure_started(out);
        if let Some(OpenItem::Reasoning { signature, .. }) = &mut self.open {
            *signature = Some(s.to_owned());
            return;
        }
        self.pending_signature = Some(s.to_owned());
        if !self.calls.iter().any(|c| c.wire != CallWire::Closed) {
            self.close_all(out);
        }
    }

    fn call_start(&mut self, ordinal: usize, id: &str, name: &str, out: &mut BytesMut) {
        self.ensure_started(out);
        if self
            .calls
            .get(ordinal)
            .is_some_and(|c| !c.item_id.is_empty())
        {
            return; // a repeated start: the call is already known
        }
        self.close_open(out);
        if self.calls.len() <= ordinal {
            self.calls.resize_with(ordinal + 1, || ClientCall {
                call_id: String::new(),
                name: String::new(),
                item_id: String::new(),
                args: String::new(),
                wire: CallWire::Closed,
            });
        }
        self.calls[ordinal] = ClientCall {
            call_id: id.to_owned(),
            name: name.to_owned(),
            item_id: new_id("fc_"),
            args: String::new(),
            wire: CallWire::Queued,
        };
        if !self
            .calls
            .iter()
            .any(|c| matches!(c.wire, CallWire::Live { .. }))
        {
            self.add_call(ordinal, out);
        }
    }

    /// `output_item.added` for a call; it is live from now on.
    fn add_call(&mut self, ordinal: usize, out: &mut BytesMut) {
        let index = self.output.len();
        let Some(c) = self.calls.get_mut(ordinal) else {
            return;
        };
        c.wire = CallWire::Live { index };
        let item = function_call_item(&c.item_id, &c.call_id, &c.name, "", "in_progress");
        // A queued call's buffered arguments go out as one delta.
        let buffered = (!c.args.is_empty())
            .then(|| json!({"item_id": c.item_id, "output_index": index, "delta": c.args}));
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        if let Some(v) = buffered {
            self.emit(out, "response.function_call_arguments.delta", v);
        }
    }

    fn call_args(&mut self, ordinal: usize, fragment: &str, out: &mut BytesMut) {
        let Some(c) = self.calls.get_mut(ordinal) else {
            return;
        };
        match c.wire {
            CallWire::Live { index } => {
                c.args.push_str(fragment);
                let v = json!({"item_id": c.item_id, "output_index": index, "delta": fragment});
                self.emit(out, "response.function_call_arguments.delta", v);
            }
            CallWire::Queued => c.args.push_str(fragment),
            // Arguments after the call was sent whole: nothing can carry them.
            CallWire::Closed => {}
        }
    }

    /// Items close as the answer ends; a cut answer's last items are incomplete.
    fn item_status(&self) -> &'static str {
        match self.finish.and_then(incomplete_reason) {
            Some(_) => "incomplete",
            None => "completed",
        }
    }

    /// Closes the open message or reasoning item.
    fn close_open(&mut self, out: &mut BytesMut) {
        match self.open.take() {
            None => {}
            Some(OpenItem::Message { id, index, text }) => {
                let base = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = base.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                self.emit(out, "response.output_text.done", done);
                let mut part = base;
                part["part"] = output_text_part(&text);
                self.emit(out, "response.content_part.done", part);
                let item = message_item(&id, &text, self.item_status());
                self.item_done(index, item, out);
            }
            Some(OpenItem::Reasoning {
                id,
                index,
                text,
                signature,
            }) => {
                let base = json!({"item_id": id, "output_index": index, "summary_index": 0});
                let mut done = base.clone();
                done["text"] = json!(text);
                self.emit(out, "response.reasoning_summary_text.done", done);
                let mut part = base;
                part["part"] = json!({"type": "summary_text", "text": text});
                self.emit(out, "response.reasoning_summary_part.done", part);
                let item = reasoning_item(&id, &text, signature.as_deref());
                self.item_done(index, item, out);
            }
        }
    }

    fn item_done(&mut self, index: usize, item: Value, out: &mut BytesMut) {
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    /// Closes the open call, then adds and closes each queued one.
    fn close_calls(&mut self, out: &mut BytesMut) {
        for ordinal in 0..self.calls.len() {
            if self.calls[ordinal].wire == CallWire::Queued {
                self.add_call(ordinal, out);
            }
            if let CallWire::Live { index } = self.calls[ordinal].wire {
                self.close_call(ordinal, index, out);
            }
        }
    }

    fn close_call(&mut self, ordinal: usize, index: usize, out: &mut BytesMut) {
        let Some(c) = self.calls.get_mut(ordinal) else {
            return;
        };
        c.wire = CallWire::Closed;
        let (item_id, call_id, name) = (c.item_id.clone(), c.call_id.clone(), c.name.clone());
        // Codex parses the arguments: a call without any gets `{}`.
        let empty = c.args.is_empty();
        if empty {
            c.args.push_str("{}");
        }
        let args = c.args.clone();
        if empty {
            let v = json!({"item_id": item_id, "output_index": index, "delta": args});
            self.emit(out, "response.function_call_arguments.delta", v);
        }
        let v = json!({"item_id": item_id, "output_index": index, "name": name, "arguments": args});
        self.emit(out, "response.function_call_arguments.done", v);
        let item = function_call_item(&item_id, &call_id, &name, &args, "completed");
        self.item_done(index, item, out);
    }

    /// Closes everything open, then any reasoning state left waiting.
    fn close_all(&mut self, out: &mut BytesMut) {
        self.close_open(out);
        self.close_calls(out);
        if let Some(sig) = self.pending_signature.take() {
            let (id, index) = (new_id("rs_"), self.output.len());
            let added = json!({"type": "reasoning", "id": id, "summary": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            self.item_done(index, reasoning_item(&id, "", Some(&sig)), out);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        self.ensure_started(out);
        self.close_all(out);
        self.ended = true;
        let incomplete = self.finish.and_then(incomplete_reason);
        let (status, name) = match incomplete {
            Some(_) => ("incomplete", "response.incomplete"),
            None => ("completed", "response.completed"),
        };
        let mut resp = self.envelope(status);
        resp["output"] = Value::Array(std::mem::take(&mut self.output));
        resp["usage"] = usage_to_wire(&self.usage.unwrap_or_default());
        if let Some(reason) = incomplete {
            resp["incomplete_details"] = json!({"reason": reason});
        }
        self.emit(out, name, json!({"response": resp}));
    }

    /// The in-stream end for a failure after commit: `response.failed`,
    /// never a completed-looking end (Codex retries the turn on it, or
    /// stops for good on context-length and quota codes).
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.ensure_started(out);
        self.ended = true;
        let mut resp = self.envelope("failed");
        resp["output"] = Value::Array(std::mem::take(&mut self.output));
        resp["error"] = json!({"code": super::error::failed_code(e),
            "message": super::error::failed_message(e)});
        if let Some(u) = &self.usage {
            resp["usage"] = usage_to_wire(u);
        }
        self.emit(out, "response.failed", json!({"response": resp}));
    }

    /// A comment line: both SDKs and Codex skip it.
    pub fn keepalive(out: &mut BytesMut) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}

/// A text or summary delta, the hot path, written without a JSON tree
/// (the same members `emit` would write). A free function over the
/// encoder's scratch buffer and counter, so it can run while the open item
/// is borrowed.
fn delta_event(
    b: &mut Vec<u8>,
    seq: &mut u64,
    out: &mut BytesMut,
    name: &str,
    id: &str,
    index: usize,
    t: &str,
) {
    let text_delta = name == "response.output_text.delta";
    b.clear();
    b.extend_from_slice(b"{\"type\":\"");
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(b"\",\"sequence_number\":");
    // Numbers through serde_json: itoa, no allocation.
    let mut ok = serde_json::to_writer(&mut *b, &*seq).is_ok();
    b.extend_from_slice(b",\"item_id\":");
    ok &= serde_json::to_writer(&mut *b, id).is_ok();
    b.extend_from_slice(b",\"output_index\":");
    ok &= serde_json::to_writer(&mut *b, &index).is_ok();
    b.extend_from_slice(if text_delta {
        b",\"content_index\":0,\"delta\":".as_slice()
    } else {
        b",\"summary_index\":0,\"delta\":".as_slice()
    });
    if !ok || serde_json::to_writer(&mut *b, t).is_err() {
        return;
    }
    if text_delta {
        b.extend_from_slice(b",\"logprobs\":[]");
    }
    b.push(b'}');
    *seq += 1;
    encode_event(out, Some(name), b);
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
